//! The vault's symmetric cryptography, kept here with the rest of the project's cryptography
//! (feature `open`): values at rest, wrapped keys, keyed fingerprints, API key digests and the
//! audit chain.
//!
//! - [`SymmetricKey::encrypt`] / [`SymmetricKey::decrypt`]: AES-256-GCM with a random 96-bit nonce,
//!   `nonce || ciphertext || tag`, the caller's associated data bound (the token for values, the key
//!   id for wrapped keys). Used for data keys, the key-encryption key and everything they wrap.
//! - [`SymmetricKey::mac`]: HMAC-SHA256 over length-prefixed parts under a domain label, for
//!   fingerprints and deterministic tokens.
//! - [`api_key_digest`]: SHA-256 of an API key secret (secrets are 256-bit random, so a fast hash
//!   is the right tool; a password hash would add nothing).
//! - [`chain_hash`]: SHA-256 link of the audit log.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::secret::SecretValue;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why an at-rest operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AtRestError {
    /// The blob was altered, or the key or associated data is wrong. Deliberately not more precise.
    #[error("authentication failed")]
    Authentication,
    /// A key that is not 32 bytes.
    #[error("key must be 32 bytes")]
    InvalidKeyLength,
    /// The random source failed.
    #[error("random source unavailable")]
    Randomness,
}

/// Fills an array from the operating system's secure random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AtRestError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| AtRestError::Randomness)?;
    Ok(out)
}

/// A 256-bit symmetric key. No `Debug`, no `Clone`; wiped on drop.
pub struct SymmetricKey(Zeroizing<[u8; 32]>);

impl SymmetricKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, AtRestError> {
        Ok(Self(Zeroizing::new(random_bytes()?)))
    }

    /// Imports key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AtRestError> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| AtRestError::InvalidKeyLength)?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// The key bytes, to wrap them under another key. Handle with care.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// AES-256-GCM: returns `nonce || ciphertext || tag`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, AtRestError> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice())
            .map_err(|_| AtRestError::InvalidKeyLength)?;
        let nonce: [u8; NONCE_LEN] = random_bytes()?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(&nonce.into(), aad, (&mut out[NONCE_LEN..]).into())
            .map_err(|_| AtRestError::Authentication)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Reverses [`SymmetricKey::encrypt`].
    pub fn decrypt(&self, blob: &[u8], aad: &[u8]) -> Result<SecretValue, AtRestError> {
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(AtRestError::Authentication);
        }
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice())
            .map_err(|_| AtRestError::InvalidKeyLength)?;
        let (nonce, rest) = blob.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| AtRestError::Authentication)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| AtRestError::Authentication)?;
        let mut buf = Zeroizing::new(body.to_vec());
        cipher
            .decrypt_inout_detached(&nonce.into(), aad, buf.as_mut_slice().into(), &tag.into())
            .map_err(|_| AtRestError::Authentication)?;
        Ok(SecretValue::from(buf))
    }

    /// HMAC-SHA256 under a domain label over length-prefixed parts, so that no two different
    /// inputs (or domains) share a MAC input.
    pub fn mac(&self, domain: &str, parts: &[&[u8]]) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_slice()) else {
            unreachable!("HMAC accepts keys of any length")
        };
        for part in core::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Plain HMAC-SHA256 (RFC 2104) of `message` under `key`, for MACs other systems check with
/// their own HMAC (the vault's signed alert webhooks): no domain label, no length prefixes.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The digest under which an API key secret is stored.
pub fn api_key_digest(secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fieldseal api key v1\0");
    h.update(secret);
    h.finalize().into()
}

/// SHA-256 of `data` (the policy file's digest in the audit log).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The audit chain: `hash_n = SHA-256("fieldseal audit v1" || hash_{n-1} || entry_n)`.
pub fn chain_hash(previous: &[u8; 32], entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fieldseal audit v1\0");
    h.update(previous);
    h.update(entry);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        assert_eq!(
            crate::encoding::hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn encrypt_binds_key_and_aad() {
        let k = SymmetricKey::generate().unwrap();
        let blob = k.encrypt(b"4111111111111111", b"tok_1").unwrap();
        assert_eq!(
            k.decrypt(&blob, b"tok_1").unwrap().expose(),
            b"4111111111111111"
        );
        assert_eq!(
            k.decrypt(&blob, b"tok_2").unwrap_err(),
            AtRestError::Authentication
        );
        let other = SymmetricKey::generate().unwrap();
        assert_eq!(
            other.decrypt(&blob, b"tok_1").unwrap_err(),
            AtRestError::Authentication
        );
        let mut flipped = blob.clone();
        flipped[14] ^= 1;
        assert_eq!(
            k.decrypt(&flipped, b"tok_1").unwrap_err(),
            AtRestError::Authentication
        );
        assert_eq!(
            k.decrypt(&blob[..20], b"tok_1").unwrap_err(),
            AtRestError::Authentication
        );
        assert_ne!(
            blob,
            k.encrypt(b"4111111111111111", b"tok_1").unwrap(),
            "fresh nonce"
        );
    }

    #[test]
    fn mac_separates_domains_and_parts() {
        let k = SymmetricKey::from_bytes(&[7; 32]).unwrap();
        assert_eq!(
            k.mac("fp", &[b"pan", b"4111"]),
            k.mac("fp", &[b"pan", b"4111"])
        );
        assert_ne!(
            k.mac("fp", &[b"pan", b"4111"]),
            k.mac("det", &[b"pan", b"4111"])
        );
        assert_ne!(
            k.mac("fp", &[b"pan4", b"111"]),
            k.mac("fp", &[b"pan", b"4111"])
        );
        let other = SymmetricKey::from_bytes(&[8; 32]).unwrap();
        assert_ne!(k.mac("fp", &[b"x"]), other.mac("fp", &[b"x"]));
    }

    #[test]
    fn chain_and_digest_are_deterministic_and_distinct() {
        let a = chain_hash(&[0; 32], b"entry");
        assert_eq!(a, chain_hash(&[0; 32], b"entry"));
        assert_ne!(a, chain_hash(&[1; 32], b"entry"));
        assert!(ct_eq(&api_key_digest(b"s"), &api_key_digest(b"s")));
        assert!(!ct_eq(&api_key_digest(b"s"), &api_key_digest(b"t")));
    }
}
