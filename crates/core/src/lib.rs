//! fieldseal-core seals checkout field values to a vault's P-256 key with HPKE (RFC 9180) and opens
//! them in the vault; all of fieldseal's cryptography lives here.
//!
//! ```
//! # #[cfg(feature = "open")] {
//! use fieldseal_core::envelope::{FieldKind, Opener, OpeningKey, PreparedContext, SealParams};
//! use fieldseal_core::ecdh::P256;
//! use fieldseal_core::keyset::{KeyId, KeySet};
//!
//! // The vault: a key pair, published as a key set.
//! let key = OpeningKey::<P256>::generate(KeyId::new("2026-11-a")?)?;
//! let keys = KeySet::new(vec![key.recipient(1_795_000_000, 1_826_536_000)], 1_795_000_100)?;
//! let published = keys.to_json();
//!
//! // The page: parse the key set, prepare a context ahead of time, seal on submit.
//! let keys = KeySet::parse(&published)?;
//! let prepared = PreparedContext::prepare(keys.primary())?;
//! let params = SealParams::new(FieldKind::Email, keys.server_time());
//! let envelope = prepared.seal(b"jane@example.com", &params)?;
//! assert!(envelope.starts_with("fse1."));
//!
//! // The vault again: open it.
//! let mut opener = Opener::<P256>::new();
//! opener.insert(key);
//! let opened = opener.open(&envelope)?;
//! assert_eq!(opened.value.expose(), b"jane@example.com");
//! assert_eq!(opened.header.kind, FieldKind::Email);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! - [`hpke`]: RFC 9180 base mode for DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM,
//!   written once on the RustCrypto `p256`, `hkdf`, `sha2` and `aes-gcm` crates. An HPKE crate was
//!   not used because the envelope needs the KEM split from sealing (a context is prepared before
//!   the value is known and consumed by one seal) and a swappable ECDH backend; and the maintained
//!   HPKE crates pin older RustCrypto releases, which would put a second `p256` in the wasm. The
//!   module passes both official RFC 9180 vectors for this KEM and KDF in full.
//! - [`ecdh`]: the P-256 point type (uncompressed, on-curve, checked once) and two ECDH backends
//!   that agree on every vector: `p256` (always; the browser's) and AWS-LC (feature `aws-lc`,
//!   several times faster natively; the vault's).
//! - [`keyset`]: the JWK-compatible key set a vault publishes and a page loads.
//! - [`envelope`]: envelope v1, its text form and strict parser; opening behind feature `open`.
//! - [`card`]: card rules shared by the browser and the vault: brands, lengths, Luhn, CVC, expiry,
//!   as-you-type formatting.
//! - `at_rest` (feature `open`): the vault's symmetric cryptography: values and keys encrypted at
//!   rest (AES-256-GCM), keyed fingerprints (HMAC-SHA256), API key digests, the audit hash chain.
//! - [`classify`]: which kinds of personal data a value looks like (card number, e-mail, phone,
//!   US SSN, IBAN) and its sensitivity class.
//! - `operator` (feature `operators`): operator credentials for the vault: Argon2id password
//!   hashes and TOTP codes (RFC 6238).
//! - [`secret`]: [`secret::SecretValue`], whose `Debug` and `Display` redact and which is wiped on
//!   drop.
//!
//! # Features
//!
//! - `open`: the recipient side (decapsulation, [`envelope::Opener`]). The browser SDK never
//!   enables it, so the shipped wasm holds no code that can open an envelope.
//! - `aws-lc`: the AWS-LC ECDH backend, and [`ecdh::NativeBackend`] pointing to it.
//! - `operators`: operator credentials (Argon2id, TOTP); vault side only.
//! - `test-vectors`: deterministic preparation for generating the published envelope vectors.
//!
//! # Errors
//!
//! One `#[non_exhaustive]` enum per operation, whose variants name the failed check:
//! [`keyset::KeySetError`], [`envelope::SealError`], [`envelope::ParseError`], `OpenError` and
//! [`hpke::HpkeError`]. Every authentication failure is the single opaque
//! `OpenError::Authentication`.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// `no_std` with `alloc`: the crate uses nothing of the standard library, so that the browser's
// wasm, which links no `std`, can carry it. The vault's crates link `std` themselves.
extern crate alloc;

#[cfg(feature = "open")]
pub mod at_rest;
pub mod card;
pub mod classify;
pub mod ecdh;
pub mod encoding;
pub mod envelope;
pub mod hpke;
pub mod keyset;
#[cfg(feature = "operators")]
pub mod operator;
pub mod secret;
