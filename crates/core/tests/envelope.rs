//! Envelope v1 behaviour beyond the fixed vectors: random sealing on each backend, the limits, the
//! refusals at seal time, retirement, and redaction.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fieldseal_core::ecdh::{AwsLc, EcdhSecret, P256};
use fieldseal_core::envelope::{
    AEAD, CardBrand, Envelope, EnvelopeContext, FieldKind, Hints, INFO, MAX_ORIGIN_LEN,
    MAX_SESSION_LEN, MAX_TEXT_LEN, MAX_VALUE_LEN, OpenError, Opener, OpeningKey, PreparedContext,
    SealError, SealParams,
};
use fieldseal_core::keyset::{KeyId, KeySet, RecipientKey};

const NOW: u64 = 1_795_000_000;

fn key<S: EcdhSecret>(kid: &str) -> OpeningKey<S> {
    OpeningKey::generate(KeyId::new(kid).unwrap()).unwrap()
}

fn recipient<S: EcdhSecret>(k: &OpeningKey<S>) -> RecipientKey {
    k.recipient(NOW - 10, NOW + 1000)
}

fn opener_with<S: EcdhSecret>(keys: Vec<OpeningKey<S>>) -> Opener<S> {
    let mut o = Opener::new();
    for k in keys {
        o.insert(k);
    }
    o
}

fn pan_params() -> SealParams {
    SealParams {
        kind: FieldKind::Pan,
        created_at: NOW,
        context: EnvelopeContext {
            session: Some("cs_123".into()),
            origin: Some("https://shop.example".into()),
        },
        hints: Hints {
            brand: Some(CardBrand::Mastercard),
            bin: Some("222300".into()),
            last4: Some("0011".into()),
        },
    }
}

fn roundtrip<Sealer: EcdhSecret, Recipient: EcdhSecret>() {
    let k = key::<Recipient>("k1");
    let r = recipient(&k);
    let opener = opener_with(vec![k]);
    let text = PreparedContext::prepare_with::<Sealer>(&r)
        .unwrap()
        .seal(b"2223000048400011", &pan_params())
        .unwrap();
    let opened = opener.open(&text).unwrap();
    assert_eq!(opened.value.expose(), b"2223000048400011");
    assert_eq!(opened.header.kind, FieldKind::Pan);
    assert_eq!(opened.header.created_at, NOW);
    assert_eq!(opened.header.hints, pan_params().hints);
    assert_eq!(opened.header.context, pan_params().context);
}

#[test]
fn backends_interoperate_in_both_directions() {
    roundtrip::<P256, P256>();
    roundtrip::<P256, AwsLc>();
    roundtrip::<AwsLc, P256>();
    roundtrip::<AwsLc, AwsLc>();
}

#[test]
fn every_envelope_is_fresh() {
    let k = key::<P256>("k1");
    let r = recipient(&k);
    let p = SealParams::new(FieldKind::Cvc, NOW);
    let a = PreparedContext::prepare(&r).unwrap();
    let b = PreparedContext::prepare(&r).unwrap();
    assert_ne!(a.envelope_id(), b.envelope_id());
    let (ta, tb) = (a.seal(b"123", &p).unwrap(), b.seal(b"123", &p).unwrap());
    assert_ne!(ta, tb);
    let (ea, eb) = (Envelope::parse(&ta).unwrap(), Envelope::parse(&tb).unwrap());
    assert_ne!(ea.enc(), eb.enc());
    assert_ne!(ea.header().id, eb.header().id);
}

#[test]
fn text_form_is_url_and_form_safe() {
    let k = key::<P256>("k1");
    let text = PreparedContext::prepare(&recipient(&k))
        .unwrap()
        .seal(
            "Ünïcødé name".as_bytes(),
            &SealParams::new(FieldKind::Name, NOW),
        )
        .unwrap();
    assert!(text.starts_with("fse1."));
    assert!(
        text.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')),
        "only unreserved URL characters: {text}"
    );
}

#[test]
fn largest_envelope_fits_the_bounds() {
    let kid = "k".repeat(64);
    let k = key::<P256>(&kid);
    let params = SealParams {
        kind: FieldKind::Pan,
        created_at: u64::MAX,
        context: EnvelopeContext {
            session: Some("s".repeat(MAX_SESSION_LEN)),
            origin: Some("o".repeat(MAX_ORIGIN_LEN)),
        },
        hints: Hints {
            brand: Some(CardBrand::Maestro),
            bin: Some("12345678".into()),
            last4: Some("5678".into()),
        },
    };
    let mut value = vec![b'1'; MAX_VALUE_LEN];
    value[..8].copy_from_slice(b"12345678");
    value[MAX_VALUE_LEN - 4..].copy_from_slice(b"5678");
    let text = PreparedContext::prepare(&recipient(&k))
        .unwrap()
        .seal(&value, &params)
        .unwrap();
    assert!(
        text.len() <= MAX_TEXT_LEN,
        "{} > {MAX_TEXT_LEN}",
        text.len()
    );
    assert!(text.len() + 4 > MAX_TEXT_LEN, "MAX_TEXT_LEN is not tight");
    let opened = opener_with(vec![k]).open(&text).unwrap();
    assert_eq!(opened.value.expose(), value.as_slice());
}

#[test]
fn seal_refuses_bad_input_with_the_failed_check() {
    let k = key::<P256>("k1");
    let r = recipient(&k);
    let seal = |value: &[u8], params: SealParams| {
        PreparedContext::prepare(&r).unwrap().seal(value, &params)
    };
    let base = || SealParams::new(FieldKind::Email, NOW);
    assert_eq!(seal(b"", base()), Err(SealError::EmptyValue));
    assert_eq!(
        seal(&vec![b'a'; MAX_VALUE_LEN + 1], base()),
        Err(SealError::ValueTooLong)
    );
    let mut p = base();
    p.context.session = Some("has space".into());
    assert_eq!(seal(b"a@b.c", p), Err(SealError::InvalidContext));
    let mut p = base();
    p.context.origin = Some("o".repeat(MAX_ORIGIN_LEN + 1));
    assert_eq!(seal(b"a@b.c", p), Err(SealError::InvalidContext));
    let mut p = base();
    p.context.session = Some(String::new());
    assert_eq!(seal(b"a@b.c", p), Err(SealError::InvalidContext));
    let mut p = base();
    p.hints.last4 = Some("1111".into());
    assert_eq!(seal(b"a@b.c", p), Err(SealError::HintsNotAllowed));
    let mut p = pan_params();
    p.hints.bin = Some("2223000".into());
    assert_eq!(seal(b"2223000048400011", p), Err(SealError::InvalidHints));
    let mut p = pan_params();
    p.hints.last4 = Some("00a3".into());
    assert_eq!(seal(b"2223000048400011", p), Err(SealError::InvalidHints));
    assert_eq!(
        seal(b"2223000048400012", pan_params()),
        Err(SealError::HintMismatch)
    );
    assert_eq!(
        "cc-number".parse::<FieldKind>(),
        Err(SealError::UnknownKind)
    );
}

/// Seals `value` under `header` (the AAD, as bytes) to `r`, as a page of another version would.
fn seal_raw(r: &RecipientKey, header: &[u8], value: &[u8]) -> String {
    let (enc, mut ctx) =
        fieldseal_core::hpke::setup_base_sender::<AwsLc>(AEAD, &r.public_key, INFO).unwrap();
    let ct = ctx.seal(header, value).unwrap();
    let mut bin = header.to_vec();
    bin.extend_from_slice(&enc);
    bin.extend_from_slice(&u16::try_from(ct.len()).unwrap().to_be_bytes());
    bin.extend_from_slice(&ct);
    format!("fse1.{}", fieldseal_core::encoding::base64url(&bin))
}

#[test]
fn a_brand_code_this_version_does_not_know_reads_as_no_brand() {
    // A page newer than the vault sends a brand added to table 3.4 later: the envelope opens,
    // without a brand hint; the other hints stay. The header is the AAD exactly as sent.
    let k = key::<AwsLc>("k1");
    let r = recipient(&k);
    let opener = opener_with(vec![k]);
    let sealed = PreparedContext::prepare(&r)
        .unwrap()
        .seal(b"2223000048400011", &pan_params())
        .unwrap();
    let mut header = Envelope::parse(&sealed).unwrap().header_bytes().to_vec();
    // The brand byte, then the BIN (length byte and 6 digits) and the last four (1 and 4).
    let at = header.len() - 1 - 7 - 5;
    assert_eq!(header[at], CardBrand::Mastercard.code());
    for code in [14, 0xee, 0xff] {
        header[at] = code;
        let opened = opener
            .open(&seal_raw(&r, &header, b"2223000048400011"))
            .unwrap();
        assert_eq!(opened.header.hints.brand, None, "{code}");
        assert_eq!(opened.header.hints.bin.as_deref(), Some("222300"));
        assert_eq!(opened.header.hints.last4.as_deref(), Some("0011"));
    }
    assert_eq!(CardBrand::from_code(14), None);
    assert_eq!(CardBrand::from_code(13), Some(CardBrand::Troy));

    // A brand byte, known or not, is still a hint, which only a card number may carry.
    let cvc = PreparedContext::prepare(&r)
        .unwrap()
        .seal(b"737", &SealParams::new(FieldKind::Cvc, NOW))
        .unwrap();
    let mut header = Envelope::parse(&cvc).unwrap().header_bytes().to_vec();
    let at = header.len() - 3;
    assert_eq!(header[at..], [0, 0, 0]);
    for code in [1, 0xee] {
        header[at] = code;
        assert_eq!(
            Envelope::parse(&seal_raw(&r, &header, b"737")).err(),
            Some(fieldseal_core::envelope::ParseError::HintsNotAllowed),
            "{code}"
        );
    }
}

#[test]
fn retired_key_no_longer_opens_and_rotation_keeps_old_envelopes() {
    let old = key::<AwsLc>("old");
    let new = key::<AwsLc>("new");
    let old_r = recipient(&old);
    let text_old = PreparedContext::prepare(&old_r)
        .unwrap()
        .seal(b"123", &SealParams::new(FieldKind::Cvc, NOW))
        .unwrap();
    let mut opener = opener_with(vec![old]);
    opener.insert(new);
    assert!(
        opener.open(&text_old).is_ok(),
        "old key opens after rotation"
    );
    assert!(opener.remove(&KeyId::new("old").unwrap()));
    assert_eq!(opener.open(&text_old).unwrap_err(), OpenError::UnknownKey);
}

#[test]
fn sealing_follows_the_key_set_primary() {
    let a = key::<P256>("a");
    let b = key::<P256>("b");
    let ks = KeySet::new(
        vec![
            a.recipient(NOW - 100, NOW + 100),
            b.recipient(NOW - 50, NOW + 100),
        ],
        NOW,
    )
    .unwrap();
    let prepared = PreparedContext::prepare(ks.primary()).unwrap();
    assert_eq!(prepared.key_id().as_str(), "b");
}

#[test]
fn nothing_secret_in_debug_output() {
    let k = key::<P256>("k1");
    let text = PreparedContext::prepare(&recipient(&k))
        .unwrap()
        .seal(b"5555555555554444", &SealParams::new(FieldKind::Pan, NOW))
        .unwrap();
    let opened = opener_with(vec![k]).open(&text).unwrap();
    let shown = format!(
        "{opened:?} {:?} {}",
        Envelope::parse(&text).unwrap(),
        opened.value
    );
    assert!(!shown.contains("5555555555554444"), "{shown}");
    assert!(shown.contains("[REDACTED]"));
}
