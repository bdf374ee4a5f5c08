//! API keys: `fsk_<id>_<secret>`, where `id` is 12 hex characters (public, names the key in lists
//! and the audit log) and `secret` is 256 random bits in base64url. Shown once at creation; the
//! vault stores only the SHA-256 digest of the secret and compares digests in constant time.

use base64ct::{Base64UrlUnpadded, Encoding};
use fieldseal_core::at_rest::{api_key_digest, ct_eq, random_bytes};

/// The recognisable prefix of every API key.
pub const PREFIX: &str = "fsk_";

/// A freshly made API key. `Debug` hides the secret.
pub struct NewApiKey {
    /// Public id.
    pub id: String,
    /// The full key, to show once.
    pub full: String,
    /// Digest to store.
    pub digest: [u8; 32],
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewApiKey({PREFIX}{}_[REDACTED])", self.id)
    }
}

/// Makes a new key.
pub fn generate() -> Option<NewApiKey> {
    let id: [u8; 6] = random_bytes().ok()?;
    generate_for(&fieldseal_core::encoding::hex(&id))
}

/// Makes a new secret for the key id `id` (a rotation).
pub fn generate_for(id: &str) -> Option<NewApiKey> {
    let id = id.to_owned();
    let secret: [u8; 32] = random_bytes().ok()?;
    let secret = Base64UrlUnpadded::encode_string(&secret);
    Some(NewApiKey {
        full: format!("{PREFIX}{id}_{secret}"),
        digest: api_key_digest(secret.as_bytes()),
        id,
    })
}

/// A presented key split into id and secret digest. `Debug` hides the secret.
pub struct Presented {
    /// Public id.
    pub id: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Presented({})", self.id)
    }
}

impl Presented {
    /// Whether the presented secret matches a stored digest (constant time).
    pub fn matches(&self, stored_digest: &[u8]) -> bool {
        ct_eq(&self.digest, stored_digest)
    }
}

/// Parses `Bearer fsk_<id>_<secret>` (or the bare key).
pub fn parse(header: &str) -> Option<Presented> {
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let key = match header.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest,
        _ => header,
    }
    .trim();
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_at_checked(12)?;
    let secret = secret.strip_prefix('_')?;
    if !id
        .bytes()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        || secret.len() != 43
        || !secret
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return None;
    }
    Some(Presented {
        id: id.to_owned(),
        digest: api_key_digest(secret.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_only_themselves() {
        let k = generate().unwrap();
        assert!(k.full.starts_with("fsk_"));
        let p = parse(&format!("Bearer {}", k.full)).unwrap();
        assert_eq!(p.id, k.id);
        assert!(
            parse(&format!("bearer {}", k.full))
                .unwrap()
                .matches(&k.digest)
        );
        assert!(p.matches(&k.digest));
        let other = generate().unwrap();
        assert!(!parse(&other.full).unwrap().matches(&k.digest));
        assert!(!format!("{k:?}").contains(&k.full[17..]));
    }

    #[test]
    fn refuses_malformed_keys() {
        let k = generate().unwrap();
        for bad in [
            "",
            "Bearer ",
            "fsk_",
            &k.full[..k.full.len() - 1],
            &k.full.replace("fsk_", "fsx_"),
            &format!("{}x", k.full),
            "fsk_ABCDEF012345_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
