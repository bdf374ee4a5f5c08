//! The fieldseal browser SDK's wasm surface: thin `#[wasm_bindgen]` adapters that let a checkout page
//! load the vault's key set, seal field values into envelope v1, check card fields and classify
//! values, all with fieldseal-core. This crate has no cryptography or rules of its own.
//!
//! Only the sealing side is compiled in: this crate depends on fieldseal-core without its `open`
//! feature, so the shipped wasm cannot open an envelope.
//!
//! ```
//! # use fieldseal_core::{ecdh::{EcdhSecret, P256}, keyset::{KeyId, KeySet, RecipientKey}};
//! # let pk = P256::from_scalar(&[7; 32]).unwrap().public_key().unwrap();
//! # let key = RecipientKey { kid: KeyId::new("k1").unwrap(), public_key: pk, not_before: 0, expires: 2 };
//! # let json = KeySet::new(vec![key], 1).unwrap().to_json();
//! // In the page, from JavaScript (the npm package's `load()` does this for you):
//! //   const keys = Keys.parse(json);
//! //   const envelope = new Prepared(keys).seal(bytes, "pan", keys.serverTime, null, null);
//! let keys = fieldseal::Keys::parse_native(&json).unwrap();
//! let mut prepared = fieldseal::Prepared::new_native(&keys).unwrap();
//! let mut value = b"4111 1111 1111 1111".to_vec();
//! let envelope = prepared.seal_native(&mut value, "pan", 1.0, None, None).unwrap();
//! assert!(envelope.starts_with("fse1."));
//! assert!(value.iter().all(|b| *b == 0), "the plaintext copy is wiped");
//! assert!(prepared.seal_native(&mut b"4111111111111111".to_vec(), "pan", 1.0, None, None).is_err());
//! ```
//!
//! # Errors
//!
//! Every failure reaches JavaScript as a thrown `Error` whose `name` is `FieldsealError` and whose
//! `code` is a stable machine-readable string (`card_luhn_mismatch`, `seal_context_used`,
//! `keyset_expired` ...), with a `detail` when the error names something (the key id of a refused
//! key, what and where in a malformed key set). The wasm carries no messages and no formatting
//! code: its error's `message` is the code, and the npm package's JavaScript words the readable
//! message from code and detail, in the same words as fieldseal-core's errors (a test here holds
//! the two together). Neither ever contains the value.
//!
//! # Wiping
//!
//! [`Prepared::seal`] takes the value as bytes (`&mut [u8]`): wasm-bindgen copies the caller's
//! `Uint8Array` into wasm memory, the seal reads it there, and this crate zeroes it before
//! returning, success or failure; wasm-bindgen then copies the zeroed bytes back into the caller's
//! array. The digits-only card number core derives from it is wiped on drop (`card::Pan`), as are
//! the HPKE key and nonce. What cannot be wiped from here: the JavaScript string the value came
//! from (strings are immutable and garbage-collected) and the input element's own value.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// Without `std` (the shipped wasm), a panic traps at once, as std's handler ends on this target
/// too, but without formatting a message nobody could read, so the formatting code is left out.
#[cfg(all(target_arch = "wasm32", not(feature = "std"), not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

/// Without `std`, dlmalloc (the allocator std uses on wasm32), wrapped so that every block is
/// zeroed when it is freed: the copies of a value that wasm-bindgen passes in, the strings a helper
/// returns and every intermediate buffer are wiped, not only the value a seal consumes.
#[cfg(all(target_arch = "wasm32", not(feature = "std"), not(test)))]
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<dlmalloc::GlobalDlmalloc> =
    zeroizing_alloc::ZeroAlloc(dlmalloc::GlobalDlmalloc);

use alloc::{borrow::ToOwned, string::String, vec::Vec};
use fieldseal_core::card::{self, CardError};
use fieldseal_core::classify as pii;
use fieldseal_core::envelope::{
    CardBrand, EnvelopeContext, FieldKind, PreparedContext, SealError, SealParams,
};
use fieldseal_core::keyset::{KeySet, KeySetError};
use wasm_bindgen::prelude::*;
use zeroize::Zeroize;

#[wasm_bindgen]
extern "C" {
    /// JavaScript's `Error`, given a `name`, a `code` and maybe a `detail` before it is thrown.
    #[wasm_bindgen(js_name = Error)]
    type JsErrorObject;

    #[wasm_bindgen(constructor, js_class = "Error")]
    fn new(message: &str) -> JsErrorObject;

    #[wasm_bindgen(method, setter = name, js_class = "Error")]
    fn set_name(this: &JsErrorObject, name: &str);

    #[wasm_bindgen(method, setter = code, js_class = "Error")]
    fn set_code(this: &JsErrorObject, code: &str);

    #[wasm_bindgen(method, setter = detail, js_class = "Error")]
    fn set_detail(this: &JsErrorObject, detail: &str);
}

/// An error as it crosses into JavaScript: a stable code, and what it names, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Machine-readable, stable: `card_luhn_mismatch`, `seal_context_used` ...
    pub code: &'static str,
    /// What the error names: the key id of a refused key, what and where in a malformed key
    /// set. Never the value.
    pub detail: Option<String>,
}

impl Error {
    fn new(code: &'static str) -> Self {
        Self { code, detail: None }
    }
}

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let js = JsErrorObject::new(e.code);
        js.set_name("FieldsealError");
        js.set_code(e.code);
        if let Some(detail) = &e.detail {
            js.set_detail(detail);
        }
        js.into()
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Self {
        Self::new(e.code())
    }
}

impl From<SealError> for Error {
    fn from(e: SealError) -> Self {
        Self::new(e.code())
    }
}

impl From<KeySetError> for Error {
    fn from(e: KeySetError) -> Self {
        Self {
            code: e.code(),
            detail: e.detail().map(str::to_owned),
        }
    }
}

/// A validated key set (see `fieldseal_core::keyset`).
#[wasm_bindgen]
pub struct Keys(KeySet);

#[wasm_bindgen]
impl Keys {
    /// Parses and validates a key-set document.
    pub fn parse(json: &str) -> Result<Keys, JsValue> {
        Ok(Self::parse_native(json)?)
    }

    /// The id of the key new envelopes are sealed to.
    #[wasm_bindgen(getter, js_name = primaryKid)]
    pub fn primary_kid(&self) -> String {
        self.0.primary().kid.as_str().to_owned()
    }

    /// The server's clock when it issued the set, seconds since the Unix epoch.
    #[wasm_bindgen(getter, js_name = serverTime)]
    pub fn server_time(&self) -> f64 {
        // Seconds since 1970 stay far below 2^53, where f64 is exact.
        self.0.server_time() as f64
    }
}

impl Keys {
    /// [`Keys::parse`] without JavaScript error conversion.
    pub fn parse_native(json: &str) -> Result<Keys, Error> {
        Ok(KeySet::parse(json).map(Keys)?)
    }
}

/// A sealing context prepared ahead of time for the key set's primary key: the ECDH is done, so
/// sealing is symmetric work only. It seals one value; a second call is refused
/// (`seal_context_used`).
#[wasm_bindgen]
pub struct Prepared(Option<PreparedContext>);

#[wasm_bindgen]
impl Prepared {
    /// Prepares a context for the primary key of `keys` (one P-256 key generation and ECDH).
    #[wasm_bindgen(constructor)]
    pub fn new(keys: &Keys) -> Result<Prepared, JsValue> {
        Ok(Self::new_native(keys)?)
    }

    /// Whether the context has sealed its value (or was refused one) and can no longer seal.
    #[wasm_bindgen(getter)]
    pub fn used(&self) -> bool {
        self.0.is_none()
    }

    /// Seals `value` (UTF-8 bytes) as a field of `kind` (`pan`, `cvc`, `exp`, `email` ...) stamped
    /// with `created_at` (seconds, server time) and the optional checkout `session` and page
    /// `origin`; returns the envelope text. A card number is checked (length, Luhn) and sealed as
    /// its digits, with brand, BIN and last four as public hints. `value` is zeroed before this
    /// returns, whatever the outcome; the context is consumed even when sealing fails.
    pub fn seal(
        &mut self,
        value: &mut [u8],
        kind: &str,
        created_at: f64,
        session: Option<String>,
        origin: Option<String>,
    ) -> Result<String, JsValue> {
        Ok(self.seal_native(value, kind, created_at, session, origin)?)
    }
}

impl Prepared {
    /// [`Prepared::new`] without JavaScript error conversion.
    pub fn new_native(keys: &Keys) -> Result<Prepared, Error> {
        Ok(PreparedContext::prepare(keys.0.primary()).map(|ctx| Prepared(Some(ctx)))?)
    }

    /// [`Prepared::seal`] without JavaScript error conversion.
    pub fn seal_native(
        &mut self,
        value: &mut [u8],
        kind: &str,
        created_at: f64,
        session: Option<String>,
        origin: Option<String>,
    ) -> Result<String, Error> {
        let result = self.seal_inner(value, kind, created_at, session, origin);
        value.zeroize();
        scrub_stack();
        result
    }

    fn seal_inner(
        &mut self,
        value: &[u8],
        kind: &str,
        created_at: f64,
        session: Option<String>,
        origin: Option<String>,
    ) -> Result<String, Error> {
        let ctx = self
            .0
            .take()
            .ok_or_else(|| Error::new("seal_context_used"))?;
        let kind: FieldKind = kind.parse()?;
        // 2^53: up to there every whole number of seconds is exact in an f64.
        if !(0.0..=9_007_199_254_740_992.0).contains(&created_at) {
            return Err(Error::new("seal_invalid_time"));
        }
        // Truncation is the floor here: the time is finite and not negative.
        let mut params = SealParams::new(kind, created_at as u64);
        params.context = EnvelopeContext { session, origin };
        if kind == FieldKind::Pan {
            let text = core::str::from_utf8(value)
                .map_err(|_| Error::from(CardError::InvalidCharacters))?;
            let pan = card::validate_pan(text)?;
            params.hints = pan.hints();
            return Ok(ctx.seal(pan.expose_digits().as_bytes(), &params)?);
        }
        if core::str::from_utf8(value).is_err() {
            return Err(Error::new("seal_invalid_utf8"));
        }
        Ok(ctx.seal(value, &params)?)
    }
}

fn brand_name(brand: Option<CardBrand>) -> Option<String> {
    brand.map(|b| b.as_str().to_owned())
}

/// Overwrites the stack below the caller's frame, where the frames of the sealing code just were:
/// values moved between frames leave copies there (a card number's digits, say) that no `Drop`
/// can reach. 32 KiB covers the deepest sealing path with room to spare.
/// The zeros are written as one bulk fill (not byte by byte like `zeroize`): `black_box` makes the
/// compiler assume they are read, so the fill cannot be left out.
#[inline(never)]
fn scrub_stack() {
    let area = [0u8; 32 * 1024];
    core::hint::black_box(&area);
}

fn parse_brand(name: Option<String>) -> Option<CardBrand> {
    let name = name?;
    CardBrand::ALL.into_iter().find(|b| b.as_str() == name)
}

/// The brand of a card number or of its first digits, once only one brand is possible
/// (`visa`, `mastercard`, `amex`, `discover`, `diners`, `jcb`, `unionpay`, `maestro`, `rupay`,
/// `mir`, `elo`, `verve`, `troy`).
#[wasm_bindgen(js_name = cardBrand)]
pub fn card_brand(number: &str) -> Option<String> {
    brand_name(card::detect_brand(number))
}

/// Whether `digits` (digits only) pass the Luhn check.
#[wasm_bindgen]
pub fn luhn(digits: &str) -> bool {
    card::luhn_valid(digits.as_bytes())
}

/// The security code length of a brand: 4 for `amex`, 3 for the others, 0 when unknown.
#[wasm_bindgen(js_name = cvcLength)]
pub fn cvc_length(brand: Option<String>) -> u32 {
    parse_brand(brand).map_or(0, |b| card::cvc_length(b) as u32)
}

/// A card number formatted as typed (see [`format_pan`]). Read-only in JavaScript, as are
/// [`PanInfo`] and [`ExpiryDate`]: results, not inputs (and no setters in the wasm).
#[wasm_bindgen(getter_with_clone)]
pub struct FormattedPan {
    /// The digits grouped for the brand.
    #[wasm_bindgen(readonly)]
    pub text: String,
    /// Where the caret goes in `text`.
    #[wasm_bindgen(readonly)]
    pub caret: u32,
    /// The brand, once known.
    #[wasm_bindgen(readonly)]
    pub brand: Option<String>,
}

/// Formats a card number field's content as typed, mapping the caret (a character index in
/// `input`) to the position after the same digit in the result.
#[wasm_bindgen(js_name = formatPan)]
pub fn format_pan(input: &str, caret: u32) -> FormattedPan {
    let f = card::format_pan(input, caret as usize);
    FormattedPan {
        caret: f.caret as u32,
        brand: brand_name(f.brand),
        text: f.text,
    }
}

/// What is public about a valid card number.
#[wasm_bindgen(getter_with_clone)]
pub struct PanInfo {
    /// The brand, when the number is in a known range.
    #[wasm_bindgen(readonly)]
    pub brand: Option<String>,
    /// The first six digits.
    #[wasm_bindgen(readonly)]
    pub bin: String,
    /// The last four digits.
    #[wasm_bindgen(readonly)]
    pub last4: String,
}

/// Checks a card number (length for the brand, Luhn); throws a `FieldsealError` with a `card_*`
/// code otherwise.
#[wasm_bindgen(js_name = validatePan)]
pub fn validate_pan(input: &str) -> Result<PanInfo, JsValue> {
    let pan = card::validate_pan(input).map_err(Error::from)?;
    Ok(PanInfo {
        brand: brand_name(pan.brand()),
        bin: pan.bin6().to_owned(),
        last4: pan.last4().to_owned(),
    })
}

/// Checks a security code for `brand` (3 or 4 digits when the brand is unknown); throws
/// `cvc_invalid` otherwise.
#[wasm_bindgen(js_name = validateCvc)]
pub fn validate_cvc(cvc: &str, brand: Option<String>) -> Result<(), JsValue> {
    Ok(card::validate_cvc(cvc, parse_brand(brand)).map_err(Error::from)?)
}

/// A card expiry date.
#[wasm_bindgen]
pub struct ExpiryDate {
    /// Four-digit year.
    #[wasm_bindgen(readonly)]
    pub year: u16,
    /// Month, 1 to 12.
    #[wasm_bindgen(readonly)]
    pub month: u8,
}

/// Parses an expiry (`MM/YY`, `MM/YYYY`, `MM / YY`) and checks it against `now` (seconds since
/// the epoch): not past, not more than 20 years ahead. Throws an `expiry_*` code otherwise.
#[wasm_bindgen(js_name = validateExpiry)]
pub fn validate_expiry(input: &str, now: f64) -> Result<ExpiryDate, JsValue> {
    let now = if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    };
    let e = card::validate_expiry(input, now).map_err(Error::from)?;
    Ok(ExpiryDate {
        year: e.year,
        month: e.month,
    })
}

/// Which kinds of personal data `value` looks like: the sensitivity class first (`none`,
/// `personal`, `payment_card`), then the kinds (`card_number`, `email`, `phone`, `us_ssn`,
/// `iban`).
#[wasm_bindgen]
pub fn classify(value: &str) -> Vec<String> {
    let c = pii::classify(value);
    core::iter::once(c.sensitivity.as_str())
        .chain(c.kinds.iter().map(|k| k.as_str()))
        .map(str::to_owned)
        .collect()
}

/// Whether `text` contains a Luhn-valid card number of a known brand (the stray-PAN guard).
#[wasm_bindgen(js_name = containsCardNumber)]
pub fn contains_card_number(text: &str) -> bool {
    pii::contains_card_number(text)
}

/// The envelope field kind a value of a classified kind is sealed as, such as `national-id` for
/// `us_ssn`; `None` for unknown names.
#[wasm_bindgen(js_name = fieldKindFor)]
pub fn field_kind_for(pii_kind: &str) -> Option<String> {
    pii::PiiKind::ALL
        .into_iter()
        .find(|k| k.as_str() == pii_kind)
        .map(|k| k.field_kind().as_str().to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use fieldseal_core::keyset::KeySetError as K;
    use fieldseal_core::{card::CardError as C, envelope::SealError as S};

    /// The `MESSAGES` table of js/index.js: code -> message template (`{}` for the detail).
    fn js_messages() -> Vec<(String, String)> {
        let js = include_str!("../js/index.js");
        let start = js
            .find("const MESSAGES = {")
            .expect("MESSAGES in js/index.js");
        let table = &js[start..start + js[start..].find("\n};").unwrap()];
        table
            .lines()
            .skip(1)
            // The table has no prototype (a code such as `constructor` finds nothing).
            .filter(|line| line.trim() != "__proto__: null,")
            .map(|line| {
                let (code, text) = line.trim().split_once(": '").expect(line);
                (code.to_owned(), text.strip_suffix("',").expect(line).into())
            })
            .collect()
    }

    /// The codes fieldseal-core's errors define: every string returned by a `fn code`.
    fn core_codes() -> Vec<String> {
        let mut codes = Vec::new();
        for src in [
            include_str!("../crates/core/src/card.rs"),
            include_str!("../crates/core/src/envelope.rs"),
            include_str!("../crates/core/src/keyset.rs"),
        ] {
            for (i, _) in src.match_indices("fn code(") {
                let body = &src[i..i + src[i..].find("\n    }\n").unwrap()];
                codes.extend(body.split('"').skip(1).step_by(2).map(str::to_owned));
            }
        }
        codes
    }

    #[test]
    fn javascript_words_every_error_as_core_does() {
        let js = js_messages();
        let word = |e: &Error| {
            let (_, text) = js.iter().find(|(c, _)| c == e.code).expect(e.code);
            text.replace("{}", e.detail.as_deref().unwrap_or(""))
        };
        let kid = || "2026-11-a".to_owned();
        let key_set = [
            K::TooLarge,
            K::Malformed("expected `:` at byte 12".into()),
            K::Empty,
            K::TooManyKeys,
            K::InvalidKeyId,
            K::DuplicateKeyId(kid()),
            K::UnsupportedKeyType(kid()),
            K::UnsupportedCurve(kid()),
            K::UnsupportedAlgorithm(kid()),
            K::WrongUse(kid()),
            K::PrivateKeyMaterial(kid()),
            K::InvalidCoordinate(kid()),
            K::InvalidPoint(kid()),
            K::InvalidValidity(kid()),
            K::Expired(kid()),
            K::NoUsableKey,
        ];
        let card = [
            C::EmptyNumber,
            C::InvalidCharacters,
            C::TooShort,
            C::TooLong,
            C::InvalidLength,
            C::LuhnMismatch,
            C::InvalidCvc,
            C::InvalidExpiry,
            C::InvalidMonth,
            C::Expired,
            C::ExpiryTooFar,
        ];
        let seal = [
            S::EmptyValue,
            S::ValueTooLong,
            S::UnknownKind,
            S::InvalidContext,
            S::HintsNotAllowed,
            S::InvalidHints,
            S::HintMismatch,
            S::InvalidRecipient,
            S::Randomness,
        ];
        let mut checked: Vec<&str> = Vec::new();
        for e in key_set {
            let ours = Error::from(e.clone());
            assert_eq!(word(&ours), e.to_string());
            checked.push(ours.code);
        }
        for e in card {
            assert_eq!(word(&Error::from(e)), e.to_string());
            checked.push(e.code());
        }
        for e in seal {
            assert_eq!(word(&Error::from(e)), e.to_string());
            checked.push(e.code());
        }
        // The adapter's own codes.
        checked.extend([
            "seal_context_used",
            "seal_invalid_time",
            "seal_invalid_utf8",
        ]);

        // Every code core defines was checked above, and the table holds nothing else.
        let core = core_codes();
        assert!(core.len() >= 36, "{core:?}");
        for code in &core {
            assert!(checked.contains(&code.as_str()), "{code} not checked");
        }
        let mut table: Vec<&str> = js.iter().map(|(c, _)| c.as_str()).collect();
        table.sort_unstable();
        checked.sort_unstable();
        assert_eq!(table, checked);
    }
}
