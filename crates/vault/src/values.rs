//! Field values: validation and normalization per kind (card rules from fieldseal-core), tokens,
//! fingerprints and masking.

use base64ct::{Base64UrlUnpadded, Encoding};
use fieldseal_core::at_rest::random_bytes;
use fieldseal_core::card;
use fieldseal_core::envelope::{CardBrand, FieldKind};
use fieldseal_core::secret::SecretValue;

/// Why a value was refused for its kind. Messages never contain the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A card rule failed.
    #[error("{}", .0)]
    Card(card::CardError),
    /// Not valid UTF-8.
    #[error("value is not UTF-8 text")]
    NotText,
    /// Empty after trimming, or holding control characters.
    #[error("value is empty or holds control characters")]
    BadText,
    /// Not an e-mail address.
    #[error("not an e-mail address")]
    BadEmail,
    /// Not a telephone number.
    #[error("not a telephone number")]
    BadPhone,
}

impl ValueError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Card(e) => e.code(),
            Self::NotText => "value_not_text",
            Self::BadText => "value_invalid",
            Self::BadEmail => "email_invalid",
            Self::BadPhone => "phone_invalid",
        }
    }
}

/// A value checked and normalized for its kind, with the public facts the vault derives itself.
pub struct Normalized {
    /// The normalized value (card numbers: digits only; e-mail: lowercase).
    pub value: SecretValue,
    /// Card brand.
    pub brand: Option<CardBrand>,
    /// First six digits.
    pub bin: Option<String>,
    /// Last four digits.
    pub last4: Option<String>,
}

fn plain(value: String) -> Normalized {
    Normalized {
        value: SecretValue::new(value.into_bytes()),
        brand: None,
        bin: None,
        last4: None,
    }
}

fn clean_text(s: &str) -> Result<String, ValueError> {
    let t = s.trim();
    if t.is_empty() || t.chars().any(char::is_control) {
        return Err(ValueError::BadText);
    }
    Ok(t.to_owned())
}

fn email_ok(e: &str) -> bool {
    let Some((local, domain)) = e.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
}

/// Checks and normalizes a value of `kind`. `now` (Unix seconds) judges expiry dates.
pub fn normalize(kind: FieldKind, raw: &SecretValue, now: u64) -> Result<Normalized, ValueError> {
    let text = raw.expose_str().ok_or(ValueError::NotText)?;
    match kind {
        FieldKind::Pan => {
            let pan = card::validate_pan(text).map_err(ValueError::Card)?;
            Ok(Normalized {
                value: SecretValue::from_slice(pan.expose_digits().as_bytes()),
                brand: pan.brand(),
                bin: Some(pan.bin6().to_owned()),
                last4: Some(pan.last4().to_owned()),
            })
        }
        FieldKind::Cvc => {
            card::validate_cvc(text, None).map_err(ValueError::Card)?;
            Ok(plain(text.trim().to_owned()))
        }
        FieldKind::Expiry => {
            let e = card::validate_expiry(text, now).map_err(ValueError::Card)?;
            Ok(plain(format!("{:02}/{:04}", e.month, e.year)))
        }
        FieldKind::Email => {
            let e = text.trim().to_lowercase();
            if !email_ok(&e) {
                return Err(ValueError::BadEmail);
            }
            Ok(plain(e))
        }
        FieldKind::Phone => {
            let t = text.trim();
            let digits = t.chars().filter(char::is_ascii_digit).count();
            let allowed = t
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if !allowed
                || !(7..=15).contains(&digits)
                || t.get(1..).is_some_and(|r| r.contains('+'))
            {
                return Err(ValueError::BadPhone);
            }
            Ok(plain(t.to_owned()))
        }
        _ => Ok(plain(clean_text(text)?)),
    }
}

/// Token formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// `tok_` and 128 random bits (default).
    Random,
    /// Card numbers only: same length, BIN and last four kept, random middle, never Luhn-valid.
    FormatPreserving,
    /// `tokd_` and a keyed hash: the same value and kind always give the same token.
    Deterministic,
}

impl TokenFormat {
    /// Its name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::FormatPreserving => "format_preserving",
            Self::Deterministic => "deterministic",
        }
    }
}

/// A random opaque token.
pub fn random_token() -> Option<String> {
    let r: [u8; 16] = random_bytes().ok()?;
    Some(format!("tok_{}", Base64UrlUnpadded::encode_string(&r)))
}

/// A format-preserving token for a card number (digits only): same length, the first six and
/// last four digits kept, the middle random, adjusted so the token fails Luhn.
pub fn format_preserving_token(pan: &str) -> Option<String> {
    let n = pan.len();
    if n < 12 || !pan.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let middle = n - 10;
    let mut out: Vec<u8> = pan.as_bytes().to_vec();
    let mut slots = out[6..6 + middle].iter_mut();
    // Uniform digits by rejection sampling: bytes of 250 and above are dropped (250 = 25 * 10).
    while slots.len() > 0 {
        let r: [u8; 32] = random_bytes().ok()?;
        for b in r.into_iter().filter(|b| *b < 250) {
            match slots.next() {
                Some(slot) => *slot = b'0' + b % 10,
                None => break,
            }
        }
    }
    if card::luhn_valid(&out) {
        // Changing one digit by one changes the Luhn sum by 1 or 2 (mod 10): never valid again.
        let at = 6 + middle - 1;
        out[at] = if out[at] == b'9' { b'0' } else { out[at] + 1 };
    }
    String::from_utf8(out).ok()
}

/// Whether a string looks like one of our tokens (bounded length, safe characters) and not like a
/// card number: format-preserving tokens are digits too, but never pass Luhn.
pub fn plausible_token(t: &str) -> bool {
    (1..=64).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        && !looks_like_card_number(t)
}

/// A string of 12 to 19 digits that passes Luhn.
pub fn looks_like_card_number(t: &str) -> bool {
    (card::MIN_PAN_LEN..=card::MAX_PAN_LEN).contains(&t.len()) && card::luhn_valid(t.as_bytes())
}

/// Keeps at most `keep` trailing characters, and never more than a third of the value; values of
/// four characters or fewer are hidden entirely.
fn mask_keep_last(s: &str, keep: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let shown = if n <= 4 { 0 } else { keep.min(n / 3) };
    let hidden = n - shown;
    let mut out: String = "*".repeat(hidden.max(4));
    out.extend(chars[hidden..].iter());
    out
}

/// Kinds with so few possible values that a keyed fingerprint or a deterministic token would let
/// anyone who can tokenize recover them by enumeration: no fingerprint, no deterministic tokens.
pub fn low_entropy(kind: FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::Cvc | FieldKind::Expiry | FieldKind::PostalCode | FieldKind::BirthDate
    )
}

/// The masked form of a normalized value.
pub fn mask(kind: FieldKind, value: &SecretValue) -> String {
    let text = value.expose_str().unwrap_or_default();
    match kind {
        FieldKind::Pan => {
            let n = text.len();
            if n >= 12 {
                format!(
                    "{}{}{}",
                    text.get(..6).unwrap_or_default(),
                    "*".repeat(n - 10),
                    text.get(n - 4..).unwrap_or_default()
                )
            } else {
                "*".repeat(n)
            }
        }
        FieldKind::Email => match text.rsplit_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".into(),
        },
        FieldKind::Phone => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            mask_keep_last(&digits, 2)
        }
        FieldKind::Name => text
            .split_whitespace()
            .map(|w| {
                let first: String = w.chars().take(1).collect();
                format!("{first}***")
            })
            .collect::<Vec<_>>()
            .join(" "),
        FieldKind::Cvc => "***".into(),
        FieldKind::Expiry => "**/****".into(),
        _ => mask_keep_last(text, 2),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_795_305_600; // 2026-11-22

    fn s(v: &str) -> SecretValue {
        SecretValue::from_slice(v.as_bytes())
    }

    #[test]
    fn card_brands_are_fieldseal_cores() {
        // The same card rules as the page: RuPay, Mir and Elo numbers get their brand, and a
        // RuPay number longer than the 16 digits RuPay issues is refused here as in the browser.
        for (number, brand) in [
            ("6073 8497 0000 4947", CardBrand::RuPay),
            ("2200 0000 0000 0004", CardBrand::Mir),
            ("6362 9700 0045 7013", CardBrand::Elo),
        ] {
            assert_eq!(
                normalize(FieldKind::Pan, &s(number), NOW).unwrap().brand,
                Some(brand)
            );
        }
        assert_eq!(
            normalize(FieldKind::Pan, &s("60738497000049474"), NOW)
                .err()
                .unwrap()
                .code(),
            "card_too_long"
        );
    }

    #[test]
    fn normalizes_per_kind() {
        let n = normalize(FieldKind::Pan, &s("4111 1111 1111 1111"), NOW).unwrap();
        assert_eq!(n.value.expose(), b"4111111111111111");
        assert_eq!(n.brand, Some(CardBrand::Visa));
        assert_eq!(n.last4.as_deref(), Some("1111"));
        assert_eq!(
            normalize(FieldKind::Pan, &s("4111111111111112"), NOW)
                .err()
                .unwrap()
                .code(),
            "card_luhn_mismatch"
        );
        assert_eq!(
            normalize(FieldKind::Expiry, &s("3/29"), NOW)
                .unwrap()
                .value
                .expose(),
            b"03/2029"
        );
        assert!(normalize(FieldKind::Expiry, &s("10/26"), NOW).is_err());
        assert_eq!(
            normalize(FieldKind::Email, &s(" Jane@Example.COM "), NOW)
                .unwrap()
                .value
                .expose(),
            b"jane@example.com"
        );
        assert!(normalize(FieldKind::Email, &s("jane@"), NOW).is_err());
        assert!(normalize(FieldKind::Email, &s("ja ne@x.io"), NOW).is_err());
        assert!(normalize(FieldKind::Phone, &s("+1 (415) 555-0100"), NOW).is_ok());
        assert!(normalize(FieldKind::Phone, &s("call me"), NOW).is_err());
        assert!(normalize(FieldKind::Phone, &s("12+345678"), NOW).is_err());
        assert!(normalize(FieldKind::Cvc, &s("12"), NOW).is_err());
        assert!(normalize(FieldKind::Name, &s("  "), NOW).is_err());
        assert!(normalize(FieldKind::Name, &s("a\u{0}b"), NOW).is_err());
    }

    #[test]
    fn format_preserving_tokens_keep_bin_and_last4_and_fail_luhn() {
        for pan in [
            "4111111111111111",
            "378282246310005",
            "6759649826438453",
            "5018000000009",
        ] {
            for _ in 0..200 {
                let t = format_preserving_token(pan).unwrap();
                assert_eq!(t.len(), pan.len());
                assert_eq!(&t[..6], &pan[..6]);
                assert_eq!(&t[t.len() - 4..], &pan[pan.len() - 4..]);
                assert!(!card::luhn_valid(t.as_bytes()), "{t}");
            }
        }
        assert!(format_preserving_token("41111").is_none());
        // The middle digits are uniform: each digit appears about a tenth of the time.
        let mut counts = [0u32; 10];
        for _ in 0..2000 {
            let t = format_preserving_token("4111111111111111").unwrap();
            for d in t[6..12].bytes() {
                counts[usize::from(d - b'0')] += 1;
            }
        }
        assert!(counts.iter().all(|c| (900..1500).contains(c)), "{counts:?}");
    }

    #[test]
    fn tokens_look_like_tokens() {
        assert_ne!(random_token(), random_token());
        assert!(plausible_token(&random_token().unwrap()));
        assert!(plausible_token(
            &format_preserving_token("4111111111111111").unwrap()
        ));
        assert!(
            !plausible_token("4111111111111111"),
            "a card number is not a token"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(
            mask(FieldKind::Pan, &s("4111111111111111")),
            "411111******1111"
        );
        assert_eq!(
            mask(FieldKind::Email, &s("jane.doe@example.com")),
            "j***@example.com"
        );
        assert_eq!(mask(FieldKind::Phone, &s("+1 415 555 0100")), "*********00");
        assert_eq!(mask(FieldKind::Name, &s("Jane Doe")), "J*** D***");
        assert_eq!(mask(FieldKind::Cvc, &s("123")), "***");
        // Short values are hidden entirely; longer ones show at most a third.
        assert_eq!(mask(FieldKind::Text, &s("ab")), "****");
        assert_eq!(mask(FieldKind::Text, &s("abcd")), "****");
        assert_eq!(mask(FieldKind::Text, &s("abcdef")), "****ef");
        assert_eq!(mask(FieldKind::Phone, &s("12345")), "****5");
    }
}
