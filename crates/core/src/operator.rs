//! Operator credentials (feature `operators`, vault side only): the password, hashed with
//! Argon2id (RFC 9106), and the TOTP second factor (RFC 6238 over RFC 4226's HOTP: HMAC-SHA1, 30 s
//! steps, 6 digits), which authenticator apps compute from an `otpauth://totp/...` URI.
//!
//! ```
//! use fieldseal_core::operator::{Password, TotpSecret, hash_password, verify_password};
//!
//! let password = Password::generate()?;
//! let stored = hash_password(&password)?;            // `$argon2id$v=19$m=19456,t=2,p=1$...`
//! assert!(verify_password(&password, &stored));
//! assert!(!verify_password(&Password::new("guess".into()), &stored));
//!
//! let secret = TotpSecret::generate()?;
//! let now = 1_800_000_000;
//! let code = secret.code_at(now);
//! // Accepted once: the step it matched must be later than the last step accepted.
//! let step = secret.verify(&code, now, None).ok_or("refused")?;
//! assert_eq!(secret.verify(&code, now, Some(step)), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Both secret types print `[REDACTED]` in `Debug` and `Display` and are wiped on drop.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::{Base64Unpadded, Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::at_rest::{AtRestError, random_bytes};

/// Seconds per TOTP step (RFC 6238 §4.1, the default `X`).
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift, RFC 6238 §5.2).
pub const DRIFT_STEPS: u64 = 1;

/// Argon2id cost: 19 MiB, 2 passes, 1 lane (OWASP's first recommended setting).
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const HASH_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// Why a credential could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The random source failed.
    #[error("random source unavailable")]
    Randomness,
    /// Argon2 refused its input (a password longer than 2^32 - 1 bytes).
    #[error("the password cannot be hashed")]
    Hash,
}

impl From<AtRestError> for CredentialError {
    fn from(_: AtRestError) -> Self {
        Self::Randomness
    }
}

/// An operator's password in the clear: shown once at enrolment, then only hashed.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Takes a password typed or sent by an operator.
    pub fn new(password: String) -> Self {
        Self(Zeroizing::new(password))
    }

    /// A new random password: 128 bits, 22 characters of base64url.
    pub fn generate() -> Result<Self, CredentialError> {
        let bytes: Zeroizing<[u8; 16]> = Zeroizing::new(random_bytes()?);
        Ok(Self(Zeroizing::new(Base64UrlUnpadded::encode_string(
            bytes.as_ref(),
        ))))
    }

    /// The password. Named so that every place reading it is easy to find.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

fn argon2() -> Result<Argon2<'static>, CredentialError> {
    let params =
        Params::new(M_COST, T_COST, P_COST, Some(HASH_LEN)).map_err(|_| CredentialError::Hash)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id and a random 128-bit salt, as a PHC string:
/// `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (salt and hash in unpadded base64).
pub fn hash_password(password: &Password) -> Result<String, CredentialError> {
    let salt: [u8; SALT_LEN] = random_bytes()?;
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon2()?
        .hash_password_into(password.expose().as_bytes(), &salt, out.as_mut())
        .map_err(|_| CredentialError::Hash)?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        Base64Unpadded::encode_string(&salt),
        Base64Unpadded::encode_string(out.as_ref())
    ))
}

/// Whether `password` matches a hash [`hash_password`] made (constant-time comparison). A hash
/// in any other form (other algorithm, version or cost) does not match.
pub fn verify_password(password: &Password, stored: &str) -> bool {
    let expected_params = format!("m={M_COST},t={T_COST},p={P_COST}");
    let mut parts = stored.split('$');
    let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    if params != expected_params {
        return false;
    }
    let (Ok(salt), Ok(hash)) = (
        Base64Unpadded::decode_vec(salt),
        Base64Unpadded::decode_vec(hash),
    ) else {
        return false;
    };
    if salt.len() != SALT_LEN || hash.len() != HASH_LEN {
        return false;
    }
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    let Ok(a) = argon2() else { return false };
    if a.hash_password_into(password.expose().as_bytes(), &salt, out.as_mut())
        .is_err()
    {
        return false;
    }
    out.as_slice().ct_eq(&hash).into()
}

/// RFC 4226 HOTP: HMAC-SHA1 of the big-endian counter, dynamic truncation, `digits` decimal
/// digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        // HMAC takes keys of any length.
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(digits)
}

/// An operator's TOTP secret (160 random bits, RFC 4226's recommended length).
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Result<Self, CredentialError> {
        let bytes: Zeroizing<[u8; 20]> = Zeroizing::new(random_bytes()?);
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A stored secret's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret's bytes (to store wrapped).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 (RFC 4648, unpadded), as authenticator apps take it.
    pub fn base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The enrolment URI authenticator apps read (Key Uri Format): `account` under `issuer`,
    /// SHA1, 6 digits, 30 s. Both names must be URI-safe (the vault's operator names are).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.base32().as_str()
        ))
    }

    /// Reads the secret back from an `otpauth://totp/` URI (tests and tools).
    pub fn from_otpauth_uri(uri: &str) -> Option<Self> {
        let query = uri.strip_prefix("otpauth://totp/")?.split_once('?')?.1;
        let secret = query.split('&').find_map(|p| p.strip_prefix("secret="))?;
        Some(Self(Zeroizing::new(base32_decode(secret)?)))
    }

    /// The code for Unix time `now`.
    pub fn code_at(&self, now: u64) -> String {
        self.code_for_step(now / STEP_SECS)
    }

    /// The code of a time step.
    pub fn code_for_step(&self, step: u64) -> String {
        format!("{:06}", hotp(&self.0, step, DIGITS))
    }

    /// Checks `code` at Unix time `now`: six ASCII digits matching the current step or one
    /// either side, and later than `after` (the last step accepted: a code is usable once).
    /// Returns the step it matched.
    pub fn verify(&self, code: &str, now: u64, after: Option<u64>) -> Option<u64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now / STEP_SECS;
        let mut matched = None;
        // Every candidate is computed and compared, so the time taken does not say which matched.
        for step in current.saturating_sub(DRIFT_STEPS)..=current.saturating_add(DRIFT_STEPS) {
            let ok: bool = self
                .code_for_step(step)
                .as_bytes()
                .ct_eq(code.as_bytes())
                .into();
            if ok && after.is_none_or(|a| step > a) {
                matched = Some(step);
            }
        }
        matched
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

impl fmt::Display for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// RFC 4648 base32 (either case, padding optional).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = BASE32.iter().position(|&a| a == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// RFC 6238 appendix B, the SHA-1 rows: time, and the 8-digit TOTP for the ASCII secret
    /// "12345678901234567890".
    const RFC6238_SHA1: [(u64, u32); 6] = [
        (59, 94_287_082),
        (1_111_111_109, 7_081_804),
        (1_111_111_111, 14_050_471),
        (1_234_567_890, 89_005_924),
        (2_000_000_000, 69_279_037),
        (20_000_000_000, 65_353_130),
    ];

    #[test]
    fn rfc6238_appendix_b_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        for (time, expected) in RFC6238_SHA1 {
            assert_eq!(
                hotp(secret.expose(), time / STEP_SECS, 8),
                expected,
                "{time}"
            );
            // The 6-digit code is the same truncation modulo 10^6.
            assert_eq!(
                secret.code_at(time),
                format!("{:06}", expected % 1_000_000),
                "{time}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), code);
        }
    }

    #[test]
    fn codes_are_accepted_within_one_step_and_once() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890");
        let now = 1_111_111_111;
        let step = now / STEP_SECS;
        let code = secret.code_at(now);
        assert_eq!(secret.verify(&code, now, None), Some(step));
        assert_eq!(secret.verify(&code, now + STEP_SECS, None), Some(step));
        assert_eq!(secret.verify(&code, now - STEP_SECS, None), Some(step));
        assert_eq!(secret.verify(&code, now + 2 * STEP_SECS, None), None);
        assert_eq!(secret.verify(&code, now - 2 * STEP_SECS, None), None);
        // Replay: not after the last step accepted.
        assert_eq!(secret.verify(&code, now, Some(step)), None);
        assert_eq!(secret.verify(&code, now, Some(step - 1)), Some(step));
        for bad in ["", "12345", "1234567", "12345a", " 12345", "１２３４５６"] {
            assert_eq!(secret.verify(bad, now, None), None, "{bad}");
        }
        let other = TotpSecret::from_bytes(b"12345678901234567891");
        assert_eq!(other.verify(&code, now, None), None);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let p = Password::new("correct horse battery staple".into());
        let stored = hash_password(&p).unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password(&p, &stored));
        assert!(!verify_password(
            &Password::new("correct horse battery stapler".into()),
            &stored
        ));
        // A fresh salt each time.
        assert_ne!(hash_password(&p).unwrap(), stored);
        // Any change to the stored form fails.
        let mut flipped = stored.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(!verify_password(&p, &String::from_utf8(flipped).unwrap()));
        assert!(!verify_password(
            &p,
            &stored.replace("t=2", "t=1").replace("argon2id", "argon2i")
        ));
        assert!(!verify_password(&p, &stored.replace("m=19456", "m=8")));
        assert!(!verify_password(&p, ""));
        assert!(!verify_password(&p, &format!("{stored}$x")));
    }

    #[test]
    fn secrets_redact_and_round_trip() {
        let p = Password::generate().unwrap();
        assert_eq!(p.expose().len(), 22);
        assert!(!format!("{p:?}{p}").contains(p.expose()));
        assert_eq!(format!("{p}"), "[REDACTED]");
        let s = TotpSecret::generate().unwrap();
        let b32 = s.base32();
        assert_eq!(b32.len(), 32);
        assert!(!format!("{s:?}{s}").contains(b32.as_str()));
        let uri = s.otpauth_uri("fieldseal", "alice");
        assert!(uri.starts_with("otpauth://totp/fieldseal:alice?secret="));
        let back = TotpSecret::from_otpauth_uri(&uri).unwrap();
        assert_eq!(back.expose(), s.expose());
        // RFC 4648 §10 vectors.
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert!(base32_decode("MZ1").is_none());
    }
}
