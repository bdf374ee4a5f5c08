//! The whole envelope flow in one process: a vault key pair and its key set, a page that seals a
//! card number with a prepared context, and the vault opening it. Run with
//! `cargo run -p fieldseal-core --features open --example seal_and_open`.
//!
//! It prints what a merchant would see (the key set and the envelope) and facts about the opened
//! value, never the value itself.
#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use fieldseal_core::ecdh::{NativeBackend, P256};
use fieldseal_core::envelope::{
    CardBrand, Envelope, EnvelopeContext, FieldKind, Hints, Opener, OpeningKey, PreparedContext,
    SealParams,
};
use fieldseal_core::keyset::{KeyId, KeySet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    // Vault: a fresh key pair, published as a key set.
    let key = OpeningKey::<NativeBackend>::generate(KeyId::new("demo-1")?)?;
    let published = KeySet::new(vec![key.recipient(now, now + 90 * 86_400)], now)?.to_json();
    println!("vault key set (GET /v1/keys):\n  {published}\n");

    // Page: load the key set, prepare a context while the shopper types, seal on submit.
    let keys = KeySet::parse(&published)?;
    let started = Instant::now();
    let prepared = PreparedContext::prepare_with::<P256>(keys.primary())?;
    let prepare_time = started.elapsed();
    let card = "4111111111111111";
    let params = SealParams {
        kind: FieldKind::Pan,
        created_at: keys.server_time(),
        context: EnvelopeContext {
            session: Some("cs_demo".into()),
            origin: Some("http://127.0.0.1".into()),
        },
        hints: Hints {
            brand: Some(CardBrand::Visa),
            bin: Some(card[..6].into()),
            last4: Some(card[card.len() - 4..].into()),
        },
    };
    let started = Instant::now();
    let envelope = prepared.seal(card.as_bytes(), &params)?;
    let seal_time = started.elapsed();
    println!(
        "envelope the merchant receives ({} characters):\n  {envelope}\n",
        envelope.len()
    );
    println!("prepare (ECDH, ahead of submit): {prepare_time:?}; seal at submit: {seal_time:?}\n");

    // Merchant: can read the public header, not the value.
    let header = Envelope::parse(&envelope)?.header().clone();
    println!(
        "public header: key {}, kind {}, brand {:?}, last four {:?}, envelope id {}\n",
        header.key_id,
        header.kind,
        header.hints.brand.map(CardBrand::as_str),
        header.hints.last4,
        header.id.to_hex()
    );

    // Vault: open it.
    let mut opener = Opener::<NativeBackend>::new();
    opener.insert(key);
    let opened = opener.open(&envelope)?;
    println!(
        "vault opened it: {} bytes, equal to what was typed: {}, value shown as {}",
        opened.value.len(),
        opened.value.expose() == card.as_bytes(),
        opened.value
    );
    Ok(())
}
