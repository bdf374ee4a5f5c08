//! Native cost of envelope v1 per ECDH backend, next to raw P-256 ECDH in the same run:
//! `cargo bench -p fieldseal-core --bench seal_open`.
//!
//! - `ecdh/<backend>`: one `DH(sk, pk)`: the reference;
//! - `prepare/<backend>`: a sealing context (ephemeral key, one ECDH, key schedule);
//! - `seal_prepared`: sealing a card number with a prepared context (symmetric work only);
//! - `seal/<backend>`: prepare plus seal, what a seal costs with no prepared context;
//! - `open/<backend>`: parse, decapsulate (one ECDH) and decrypt.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fieldseal_core::ecdh::{AwsLc, EcdhSecret, P256};
use fieldseal_core::envelope::{
    CardBrand, EnvelopeContext, FieldKind, Hints, Opener, OpeningKey, PreparedContext, SealParams,
};
use fieldseal_core::keyset::{KeyId, RecipientKey};

const PAN: &[u8] = b"4111111111111111";

fn params() -> SealParams {
    SealParams {
        kind: FieldKind::Pan,
        created_at: 1_795_000_000,
        context: EnvelopeContext {
            session: Some("cs_7Hq2ZkP0".into()),
            origin: Some("https://shop.example".into()),
        },
        hints: Hints {
            brand: Some(CardBrand::Visa),
            bin: Some("411111".into()),
            last4: Some("1111".into()),
        },
    }
}

fn backend<S: EcdhSecret>(c: &mut Criterion) {
    let name = S::BACKEND;
    let key = OpeningKey::<S>::generate(KeyId::new("bench").unwrap()).unwrap();
    let recipient: RecipientKey = key.recipient(0, u64::MAX);
    let peer = P256::generate().unwrap().public_key().unwrap();
    let sk = S::generate().unwrap();

    c.bench_function(&format!("ecdh/{name}"), |b| {
        b.iter(|| sk.diffie_hellman(black_box(&peer)).unwrap())
    });
    c.bench_function(&format!("prepare/{name}"), |b| {
        b.iter(|| PreparedContext::prepare_with::<S>(black_box(&recipient)).unwrap())
    });
    let p = params();
    c.bench_function(&format!("seal/{name}"), |b| {
        b.iter(|| {
            PreparedContext::prepare_with::<S>(&recipient)
                .unwrap()
                .seal(black_box(PAN), &p)
                .unwrap()
        })
    });
    let envelope = PreparedContext::prepare_with::<S>(&recipient)
        .unwrap()
        .seal(PAN, &p)
        .unwrap();
    let mut opener = Opener::<S>::new();
    opener.insert(key);
    c.bench_function(&format!("open/{name}"), |b| {
        b.iter(|| opener.open(black_box(&envelope)).unwrap())
    });
}

fn seal_prepared(c: &mut Criterion) {
    let key = OpeningKey::<P256>::generate(KeyId::new("bench").unwrap()).unwrap();
    let recipient = key.recipient(0, u64::MAX);
    let p = params();
    c.bench_function("seal_prepared", |b| {
        b.iter_batched(
            || PreparedContext::prepare(&recipient).unwrap(),
            |prepared| prepared.seal(black_box(PAN), &p).unwrap(),
            BatchSize::SmallInput,
        )
    });
}

fn benches(c: &mut Criterion) {
    backend::<P256>(c);
    backend::<AwsLc>(c);
    seal_prepared(c);
}

criterion_group!(seal_open, benches);
criterion_main!(seal_open);
