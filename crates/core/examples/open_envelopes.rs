//! Opens envelopes read from standard input (one per line) with the test keys of
//! `tests/vectors/envelope-v1.json`, and prints one JSON line per envelope: the authenticated
//! header (kind, key id, creation time, context, hints) and the SHA-256 of the value, never the
//! value itself. The browser tests use it to prove that envelopes sealed in Chromium open natively.
//!
//! ```sh
//! cargo run -q -p fieldseal-core --features open --example open_envelopes < envelopes.txt
//! ```
//! An envelope that fails to open prints `{"error": "<OpenError variant>"}` and the exit status is 1.

use std::io::{BufRead, Write};

use fieldseal_core::ecdh::P256;
use fieldseal_core::envelope::{Opener, OpeningKey};
use fieldseal_core::keyset::KeyId;
use sha2::{Digest, Sha256};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/envelope-v1.json"
    );
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut opener = Opener::<P256>::new();
    for key in doc["keys"].as_array().ok_or("no keys")? {
        let kid = KeyId::new(key["kid"].as_str().ok_or("kid")?)?;
        let hex = key["private_key"].as_str().ok_or("private_key")?;
        let mut scalar = [0u8; 32];
        for (i, b) in scalar.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or("short key")?, 16)?;
        }
        opener.insert(OpeningKey::from_scalar(kid, &scalar)?);
    }
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let json = match opener.open(line) {
            Ok(opened) => {
                let h = &opened.header;
                let digest: String = Sha256::digest(opened.value.expose())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                serde_json::json!({
                    "kind": h.kind.as_str(),
                    "kid": h.key_id.as_str(),
                    "created_at": h.created_at,
                    "session": h.context.session,
                    "origin": h.context.origin,
                    "brand": h.hints.brand.map(|b| b.as_str()),
                    "bin": h.hints.bin,
                    "last4": h.hints.last4,
                    "value_sha256": digest,
                })
            }
            Err(e) => {
                failed = true;
                serde_json::json!({ "error": format!("{e:?}") })
            }
        };
        writeln!(out, "{json}")?;
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
