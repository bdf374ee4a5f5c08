//! The wasm bindings, run by wasm-bindgen-test in Node (`cargo test --target
//! wasm32-unknown-unknown --test bindings`) and in headless Chromium (the same with
//! `WASM_BINDGEN_USE_BROWSER=1`); scripts/test.sh runs both.
#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fieldseal::{Keys, Prepared};
use fieldseal_core::ecdh::{EcdhSecret, P256};
use fieldseal_core::envelope::{CardBrand, Envelope, FieldKind};
use fieldseal_core::keyset::{KeyId, KeySet, RecipientKey};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen]
extern "C" {
    type ErrorLike;
    #[wasm_bindgen(method, getter, structural)]
    fn code(this: &ErrorLike) -> String;
    #[wasm_bindgen(method, getter, structural)]
    fn name(this: &ErrorLike) -> String;
    #[wasm_bindgen(method, getter, structural)]
    fn message(this: &ErrorLike) -> String;
}

const SERVER_TIME: u64 = 1_795_000_000;

fn key_set_json() -> String {
    let pk = P256::from_scalar(&[7; 32]).unwrap().public_key().unwrap();
    let key = RecipientKey {
        kid: KeyId::new("wasm-test-key").unwrap(),
        public_key: pk,
        not_before: SERVER_TIME - 10,
        expires: SERVER_TIME + 1_000_000,
    };
    KeySet::new(vec![key], SERVER_TIME).unwrap().to_json()
}

fn keys() -> Keys {
    Keys::parse(&key_set_json()).map_err(|_| "parse").unwrap()
}

/// The JS error a binding threw: (name, code, message).
fn js_error(e: JsValue) -> (String, String, String) {
    let e: ErrorLike = e.unchecked_into();
    (e.name(), e.code(), e.message())
}

#[wasm_bindgen_test]
fn key_set_loads_and_reports_primary_and_server_time() {
    let k = keys();
    assert_eq!(k.primary_kid(), "wasm-test-key");
    assert_eq!(k.server_time(), SERVER_TIME as f64);
}

#[wasm_bindgen_test]
fn bad_key_sets_throw_typed_errors() {
    let (name, code, message) = js_error(Keys::parse("{").err().unwrap());
    assert_eq!(name, "FieldsealError");
    assert_eq!(code, "keyset_malformed");
    assert!(message.contains("malformed"), "{message}");
    let (_, code, _) = js_error(Keys::parse(r#"{"keys":[],"server_time":1}"#).err().unwrap());
    assert_eq!(code, "keyset_empty");
}

#[wasm_bindgen_test]
fn seals_a_card_number_with_hints_and_wipes_the_input() {
    let k = keys();
    let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
    assert!(!p.used());
    let mut value = b"4111 1111 1111 1111".to_vec();
    let text = p
        .seal(
            &mut value,
            "pan",
            SERVER_TIME as f64 + 5.7,
            Some("cs_123".into()),
            Some("https://shop.example".into()),
        )
        .map_err(|_| "seal")
        .unwrap();
    assert!(value.iter().all(|b| *b == 0), "plaintext copy wiped");
    assert!(p.used());
    let env = Envelope::parse(&text).unwrap();
    let h = env.header();
    assert_eq!(h.kind, FieldKind::Pan);
    assert_eq!(h.created_at, SERVER_TIME + 5);
    assert_eq!(h.key_id.as_str(), "wasm-test-key");
    assert_eq!(h.hints.brand, Some(CardBrand::Visa));
    assert_eq!(h.hints.bin.as_deref(), Some("411111"));
    assert_eq!(h.hints.last4.as_deref(), Some("1111"));
    assert_eq!(h.context.session.as_deref(), Some("cs_123"));
    assert_eq!(h.context.origin.as_deref(), Some("https://shop.example"));
    // Digits only are sealed: 16 bytes plus the 16-byte tag.
    assert_eq!(env.ciphertext().len(), 32);
}

#[wasm_bindgen_test]
fn a_context_seals_once() {
    let k = keys();
    let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
    p.seal(&mut b"123".to_vec(), "cvc", 1.0, None, None)
        .map_err(|_| "seal")
        .unwrap();
    let mut again = b"456".to_vec();
    let (name, code, _) = js_error(p.seal(&mut again, "cvc", 1.0, None, None).err().unwrap());
    assert_eq!(
        (name.as_str(), code.as_str()),
        ("FieldsealError", "seal_context_used")
    );
    assert!(again.iter().all(|b| *b == 0), "wiped on failure too");
}

#[wasm_bindgen_test]
fn refused_values_consume_the_context_and_are_wiped() {
    let k = keys();
    let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
    let mut bad = b"4111111111111112".to_vec();
    let (_, code, message) = js_error(p.seal(&mut bad, "pan", 1.0, None, None).err().unwrap());
    assert_eq!(code, "card_luhn_mismatch");
    assert!(!message.contains("4111"), "messages never carry the value");
    assert!(bad.iter().all(|b| *b == 0));
    assert!(p.used(), "a refused seal still uses the context");

    for (kind, value, want) in [
        ("nope", &b"x"[..], "seal_unknown_kind"),
        ("text", &b""[..], "seal_empty_value"),
        ("text", &b"\xff\xfe"[..], "seal_invalid_utf8"),
    ] {
        let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
        let (_, code, _) = js_error(
            p.seal(&mut value.to_vec(), kind, 1.0, None, None)
                .err()
                .unwrap(),
        );
        assert_eq!(code, want, "{kind}");
    }
    let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
    let (_, code, _) = js_error(
        p.seal(&mut b"x".to_vec(), "text", -1.0, None, None)
            .err()
            .unwrap(),
    );
    assert_eq!(code, "seal_invalid_time");
    let mut p = Prepared::new(&k).map_err(|_| "prepare").unwrap();
    let (_, code, _) = js_error(
        p.seal(
            &mut b"x".to_vec(),
            "text",
            1.0,
            Some("bad session".into()),
            None,
        )
        .err()
        .unwrap(),
    );
    assert_eq!(code, "seal_invalid_context");
}

#[wasm_bindgen_test]
fn card_helpers() {
    assert_eq!(fieldseal::card_brand("37").as_deref(), Some("amex"));
    assert_eq!(fieldseal::card_brand("2221").as_deref(), Some("mastercard"));
    assert_eq!(fieldseal::card_brand("9792").as_deref(), Some("troy"));
    assert_eq!(fieldseal::card_brand("7"), None);
    assert!(fieldseal::luhn("4242424242424242"));
    assert!(!fieldseal::luhn("4242424242424241"));
    assert_eq!(fieldseal::cvc_length(Some("amex".into())), 4);
    assert_eq!(fieldseal::cvc_length(Some("visa".into())), 3);
    assert_eq!(fieldseal::cvc_length(None), 0);

    // Amex groups 4-6-5; the caret stays after the digit it followed.
    let f = fieldseal::format_pan("3782822463", 10);
    assert_eq!(f.text, "3782 822463");
    assert_eq!(f.caret, 11);
    assert_eq!(f.brand.as_deref(), Some("amex"));
    let f = fieldseal::format_pan("4111 1111 11", 4);
    assert_eq!(f.text, "4111 1111 11");
    assert_eq!(f.caret, 4);

    let info = fieldseal::validate_pan("5555 5555 5555 4444")
        .map_err(|_| "valid")
        .unwrap();
    assert_eq!(info.brand.as_deref(), Some("mastercard"));
    assert_eq!((info.bin.as_str(), info.last4.as_str()), ("555555", "4444"));
    let (_, code, _) = js_error(fieldseal::validate_pan("4111").err().unwrap());
    assert_eq!(code, "card_too_short");

    assert!(fieldseal::validate_cvc("1234", Some("amex".into())).is_ok());
    let (_, code, _) = js_error(
        fieldseal::validate_cvc("123", Some("amex".into()))
            .err()
            .unwrap(),
    );
    assert_eq!(code, "cvc_invalid");

    let e = fieldseal::validate_expiry("12 / 30", SERVER_TIME as f64)
        .map_err(|_| "expiry")
        .unwrap();
    assert_eq!((e.month, e.year), (12, 2030));
    let (_, code, _) = js_error(
        fieldseal::validate_expiry("01/20", SERVER_TIME as f64)
            .err()
            .unwrap(),
    );
    assert_eq!(code, "expiry_past");
    let (_, code, _) = js_error(
        fieldseal::validate_expiry("13/30", SERVER_TIME as f64)
            .err()
            .unwrap(),
    );
    assert_eq!(code, "expiry_invalid_month");
}

#[wasm_bindgen_test]
fn classification() {
    assert_eq!(
        fieldseal::classify("my card 4111 1111 1111 1111"),
        ["payment_card", "card_number"]
    );
    assert_eq!(
        fieldseal::classify("jane@example.com"),
        ["personal", "email"]
    );
    assert_eq!(
        fieldseal::classify("DE89 3704 0044 0532 0130 00"),
        ["personal", "iban"]
    );
    assert_eq!(fieldseal::classify("123-45-6789"), ["personal", "us_ssn"]);
    assert_eq!(fieldseal::classify("blue"), ["none"]);
    assert!(fieldseal::contains_card_number("x 5555-5555-5555-4444 y"));
    assert!(!fieldseal::contains_card_number("order 12345"));
    assert_eq!(
        fieldseal::field_kind_for("us_ssn").as_deref(),
        Some("national-id")
    );
    assert_eq!(
        fieldseal::field_kind_for("card_number").as_deref(),
        Some("pan")
    );
    assert_eq!(fieldseal::field_kind_for("nope"), None);
}
