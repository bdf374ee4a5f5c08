//! Envelope parsing and opening on arbitrary input: the binary form, the text form, and a full
//! open attempt with the keys of tests/vectors/envelope-v1.json (so seeds taken from that file
//! reach decryption). Nothing may panic, and a parsed envelope's header must be a prefix of its
//! input.
#![no_main]

use std::sync::OnceLock;

use fieldseal_core::ecdh::P256;
use fieldseal_core::envelope::{Envelope, Opener, OpeningKey};
use fieldseal_core::keyset::KeyId;
use libfuzzer_sys::fuzz_target;

const VECTORS: &str = include_str!("../../tests/vectors/envelope-v1.json");

fn opener() -> &'static Opener<P256> {
    static OPENER: OnceLock<Opener<P256>> = OnceLock::new();
    OPENER.get_or_init(|| {
        let doc: serde_json::Value = serde_json::from_str(VECTORS).expect("vector file");
        let mut opener = Opener::new();
        for key in doc["keys"].as_array().expect("keys") {
            let hex = key["private_key"].as_str().expect("private_key");
            let mut scalar = [0u8; 32];
            for (i, byte) in scalar.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
            }
            let kid = KeyId::new(key["kid"].as_str().expect("kid")).expect("kid");
            opener.insert(OpeningKey::from_scalar(kid, &scalar).expect("key"));
        }
        opener
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::from_bytes(data) {
        assert!(data.starts_with(env.header_bytes()));
        assert!(env.ciphertext().len() > 16);
        let _ = opener().open_envelope(&env);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(env) = Envelope::parse(text) {
            let _ = opener().open_envelope(&env);
        }
    }
});
