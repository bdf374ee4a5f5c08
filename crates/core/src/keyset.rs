//! Key sets: the vault's public keys as JSON, JWK-compatible (RFC 7517), with validity times and
//! the server's clock.
//!
//! ```json
//! {
//!   "keys": [{
//!     "kty": "EC", "crv": "P-256", "use": "enc", "alg": "HPKE-7",
//!     "kid": "2026-11-a", "x": "<base64url, 32 bytes>", "y": "<base64url, 32 bytes>",
//!     "nbf": 1795000000, "exp": 1826536000
//!   }],
//!   "server_time": 1795000100
//! }
//! ```
//!
//! `alg: HPKE-7` is the JOSE name of DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM. Parsing
//! refuses anything else: other key types, curves or algorithms, off-curve points, private key
//! members, duplicate key ids, expired keys, unknown members. The primary key is the one with the
//! latest `nbf` that is already valid at `server_time` (the first listed wins a tie); keys whose
//! `nbf` is still ahead are published early and not used yet.

use alloc::{borrow::ToOwned, string::String, vec::Vec};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ecdh::PublicKey;
use crate::encoding::base64url;

mod json;

/// Largest key-set document accepted, in bytes.
pub const MAX_KEY_SET_LEN: usize = 16 * 1024;
/// Largest number of keys in a set.
pub const MAX_KEYS: usize = 16;
/// Longest key id, in bytes.
pub const MAX_KEY_ID_LEN: usize = 64;
/// The JOSE algorithm name of the envelope suite.
pub const JOSE_ALG: &str = "HPKE-7";

/// Why a key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The document is larger than [`MAX_KEY_SET_LEN`].
    #[error("key set is larger than {MAX_KEY_SET_LEN} bytes")]
    TooLarge,
    /// Not JSON of the expected shape (a missing or unknown member, a wrong type ...).
    #[error("key set is malformed: {0}")]
    Malformed(String),
    /// No keys.
    #[error("key set has no keys")]
    Empty,
    /// More than [`MAX_KEYS`] keys.
    #[error("key set has more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// A key id is empty, too long or uses characters other than `A-Z a-z 0-9 . _ -`.
    #[error("invalid key id")]
    InvalidKeyId,
    /// Two keys share a key id.
    #[error("duplicate key id {0}")]
    DuplicateKeyId(String),
    /// `kty` is not `EC`.
    #[error("key {0}: key type is not EC")]
    UnsupportedKeyType(String),
    /// `crv` is not `P-256`.
    #[error("key {0}: curve is not P-256")]
    UnsupportedCurve(String),
    /// `alg` is not `HPKE-7`.
    #[error("key {0}: algorithm is not HPKE-7")]
    UnsupportedAlgorithm(String),
    /// `use` is not `enc`.
    #[error("key {0}: use is not enc")]
    WrongUse(String),
    /// The key carries private material (`d`): a key set must hold public keys only.
    #[error("key {0}: private key material in a public key set")]
    PrivateKeyMaterial(String),
    /// `x` or `y` is not 32 bytes of unpadded, canonical base64url.
    #[error("key {0}: coordinate is not 32 bytes of base64url")]
    InvalidCoordinate(String),
    /// The coordinates are not a point on P-256.
    #[error("key {0}: not a point on P-256")]
    InvalidPoint(String),
    /// `nbf` is not before `exp`.
    #[error("key {0}: nbf is not before exp")]
    InvalidValidity(String),
    /// The key expired at or before `server_time`.
    #[error("key {0}: expired")]
    Expired(String),
    /// No key is valid yet at `server_time`.
    #[error("no key is valid at the server time")]
    NoUsableKey,
}

impl KeySetError {
    /// A stable machine-readable code, such as `keyset_expired`.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "keyset_too_large",
            Self::Malformed(_) => "keyset_malformed",
            Self::Empty => "keyset_empty",
            Self::TooManyKeys => "keyset_too_many_keys",
            Self::InvalidKeyId => "keyset_invalid_key_id",
            Self::DuplicateKeyId(_) => "keyset_duplicate_key_id",
            Self::UnsupportedKeyType(_) => "keyset_unsupported_key_type",
            Self::UnsupportedCurve(_) => "keyset_unsupported_curve",
            Self::UnsupportedAlgorithm(_) => "keyset_unsupported_algorithm",
            Self::WrongUse(_) => "keyset_wrong_use",
            Self::PrivateKeyMaterial(_) => "keyset_private_key_material",
            Self::InvalidCoordinate(_) => "keyset_invalid_coordinate",
            Self::InvalidPoint(_) => "keyset_invalid_point",
            Self::InvalidValidity(_) => "keyset_invalid_validity",
            Self::Expired(_) => "keyset_expired",
            Self::NoUsableKey => "keyset_no_usable_key",
        }
    }

    /// What the error names, without the message around it: the key id for the errors about
    /// one key, what and where for [`KeySetError::Malformed`], `None` otherwise. The browser SDK
    /// passes the code and this to JavaScript, which words the message.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Malformed(d)
            | Self::DuplicateKeyId(d)
            | Self::UnsupportedKeyType(d)
            | Self::UnsupportedCurve(d)
            | Self::UnsupportedAlgorithm(d)
            | Self::WrongUse(d)
            | Self::PrivateKeyMaterial(d)
            | Self::InvalidCoordinate(d)
            | Self::InvalidPoint(d)
            | Self::InvalidValidity(d)
            | Self::Expired(d) => Some(d),
            Self::TooLarge
            | Self::Empty
            | Self::TooManyKeys
            | Self::InvalidKeyId
            | Self::NoUsableKey => None,
        }
    }
}

/// A key identifier: 1 to 64 characters from `A-Z a-z 0-9 . _ -`. Compared in constant time.
#[derive(Clone)]
pub struct KeyId(String);

impl KeyId {
    /// Validates a key id.
    pub fn new(kid: &str) -> Result<Self, KeySetError> {
        if Self::is_valid(kid.as_bytes()) {
            Ok(Self(kid.to_owned()))
        } else {
            Err(KeySetError::InvalidKeyId)
        }
    }

    /// Whether `kid` is a well-formed key id.
    pub fn is_valid(kid: &[u8]) -> bool {
        !kid.is_empty()
            && kid.len() <= MAX_KEY_ID_LEN
            && kid
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    }

    /// The RFC 7638 JWK thumbprint of a P-256 key (SHA-256, base64url): a key id derived from the
    /// key itself, 43 characters. Also what a page pins (`load({ pins })` in the browser SDK, which
    /// computes it with WebCrypto; `fieldseal-vault keys pins` prints it).
    pub fn thumbprint(key: &PublicKey) -> Self {
        // Built by concatenation, not `format!`: the browser wasm carries no formatting code.
        let canonical = [
            r#"{"crv":"P-256","kty":"EC","x":""#,
            &base64url(&key.x()),
            r#"","y":""#,
            &base64url(&key.y()),
            r#""}"#,
        ]
        .concat();
        Self(base64url(&Sha256::digest(canonical.as_bytes())))
    }

    /// The key id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for KeyId {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for KeyId {}

impl core::hash::Hash for KeyId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl core::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One public key of a key set: what a sealer needs to address the vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientKey {
    /// The key id every envelope sealed to this key carries.
    pub kid: KeyId,
    /// The P-256 public key.
    pub public_key: PublicKey,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: u64,
    /// End of validity (exclusive), seconds since the Unix epoch.
    pub expires: u64,
}

impl RecipientKey {
    fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            key_use: "enc".into(),
            alg: JOSE_ALG.into(),
            kid: self.kid.as_str().into(),
            x: base64url(&self.public_key.x()),
            y: base64url(&self.public_key.y()),
            d: None,
            nbf: self.not_before,
            exp: self.expires,
        }
    }

    fn from_jwk(jwk: &Jwk, server_time: u64) -> Result<Self, KeySetError> {
        let kid = KeyId::new(&jwk.kid)?;
        let name = || jwk.kid.clone();
        if jwk.d.is_some() {
            return Err(KeySetError::PrivateKeyMaterial(name()));
        }
        if jwk.kty != "EC" {
            return Err(KeySetError::UnsupportedKeyType(name()));
        }
        if jwk.crv != "P-256" {
            return Err(KeySetError::UnsupportedCurve(name()));
        }
        if jwk.alg != JOSE_ALG {
            return Err(KeySetError::UnsupportedAlgorithm(name()));
        }
        if jwk.key_use != "enc" {
            return Err(KeySetError::WrongUse(name()));
        }
        let x = decode_coordinate(&jwk.x).ok_or_else(|| KeySetError::InvalidCoordinate(name()))?;
        let y = decode_coordinate(&jwk.y).ok_or_else(|| KeySetError::InvalidCoordinate(name()))?;
        let public_key =
            PublicKey::from_coordinates(&x, &y).map_err(|_| KeySetError::InvalidPoint(name()))?;
        if jwk.nbf >= jwk.exp {
            return Err(KeySetError::InvalidValidity(name()));
        }
        if jwk.exp <= server_time {
            return Err(KeySetError::Expired(name()));
        }
        Ok(Self {
            kid,
            public_key,
            not_before: jwk.nbf,
            expires: jwk.exp,
        })
    }
}

/// Decodes exactly 32 bytes of canonical unpadded base64url (43 characters).
fn decode_coordinate(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 43 {
        return None;
    }
    let decoded = Base64UrlUnpadded::decode(text, &mut out).ok()?;
    if decoded.len() != 32 {
        return None;
    }
    Some(out)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Jwk {
    kty: String,
    crv: String,
    #[serde(rename = "use")]
    key_use: String,
    alg: String,
    kid: String,
    x: String,
    y: String,
    /// Present only to refuse it with a precise error.
    #[serde(default, skip_serializing)]
    d: Option<serde::de::IgnoredAny>,
    nbf: u64,
    exp: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetDoc {
    keys: Vec<Jwk>,
    server_time: u64,
}

/// A validated key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<RecipientKey>,
    primary: RecipientKey,
    server_time: u64,
}

impl KeySet {
    /// Builds a key set from keys, checking it as [`KeySet::parse`] does.
    pub fn new(keys: Vec<RecipientKey>, server_time: u64) -> Result<Self, KeySetError> {
        if keys.is_empty() {
            return Err(KeySetError::Empty);
        }
        if keys.len() > MAX_KEYS {
            return Err(KeySetError::TooManyKeys);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().take(i).any(|earlier| earlier.kid == key.kid) {
                return Err(KeySetError::DuplicateKeyId(key.kid.as_str().into()));
            }
            if key.not_before >= key.expires {
                return Err(KeySetError::InvalidValidity(key.kid.as_str().into()));
            }
            if key.expires <= server_time {
                return Err(KeySetError::Expired(key.kid.as_str().into()));
            }
        }
        let mut primary: Option<&RecipientKey> = None;
        for key in keys.iter().filter(|k| k.not_before <= server_time) {
            if primary.is_none_or(|best| key.not_before > best.not_before) {
                primary = Some(key);
            }
        }
        let primary = primary.ok_or(KeySetError::NoUsableKey)?.clone();
        Ok(Self {
            keys,
            primary,
            server_time,
        })
    }

    /// Parses and validates a key-set document.
    pub fn parse(json: &str) -> Result<Self, KeySetError> {
        if json.len() > MAX_KEY_SET_LEN {
            return Err(KeySetError::TooLarge);
        }
        // A strict reader of this one document shape (see `json`), so that the browser build
        // carries no general-purpose JSON parser; it accepts exactly what serde_json would.
        let doc = json::read(json).map_err(KeySetError::Malformed)?;
        if doc.keys.len() > MAX_KEYS {
            return Err(KeySetError::TooManyKeys);
        }
        let keys = doc
            .keys
            .iter()
            .map(|jwk| RecipientKey::from_jwk(jwk, doc.server_time))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, doc.server_time)
    }

    /// The key-set document, as `GET /v1/keys` serves it.
    pub fn to_json(&self) -> String {
        let doc = KeySetDoc {
            keys: self.keys.iter().map(RecipientKey::to_jwk).collect(),
            server_time: self.server_time,
        };
        // Serializing strings and integers into a String cannot fail.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// The key new envelopes are sealed to.
    pub fn primary(&self) -> &RecipientKey {
        &self.primary
    }

    /// All keys, in document order.
    pub fn keys(&self) -> &[RecipientKey] {
        &self.keys
    }

    /// The key with this id.
    pub fn get(&self, kid: &KeyId) -> Option<&RecipientKey> {
        self.keys.iter().find(|k| &k.kid == kid)
    }

    /// The server's clock when it issued the set, seconds since the Unix epoch. A sealer adds the
    /// difference between this and its own clock to its timestamps, so a wrong device clock does
    /// not make envelopes look stale.
    pub fn server_time(&self) -> u64 {
        self.server_time
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use crate::ecdh::{EcdhSecret, P256};

    fn key(seed: u8) -> PublicKey {
        P256::from_scalar(&[seed; 32])
            .unwrap()
            .public_key()
            .unwrap()
    }

    fn jwk_json(kid: &str, pk: &PublicKey, extra: &str, nbf: u64, exp: u64) -> String {
        format!(
            r#"{{"kty":"EC","crv":"P-256","use":"enc","alg":"HPKE-7","kid":"{kid}","x":"{}","y":"{}","nbf":{nbf},"exp":{exp}{extra}}}"#,
            Base64UrlUnpadded::encode_string(&pk.x()),
            Base64UrlUnpadded::encode_string(&pk.y()),
        )
    }

    fn set(keys: &[String], now: u64) -> String {
        format!(r#"{{"keys":[{}],"server_time":{now}}}"#, keys.join(","))
    }

    #[test]
    fn parses_and_picks_newest_valid_key_as_primary() {
        let doc = set(
            &[
                jwk_json("old", &key(1), "", 100, 10_000),
                jwk_json("new", &key(2), "", 500, 10_000),
                jwk_json("next", &key(3), "", 2_000, 10_000),
            ],
            1_000,
        );
        let ks = KeySet::parse(&doc).unwrap();
        assert_eq!(ks.primary().kid.as_str(), "new");
        assert_eq!(ks.server_time(), 1_000);
        assert_eq!(ks.keys().len(), 3);
        assert_eq!(KeySet::parse(&ks.to_json()).unwrap(), ks);
    }

    #[test]
    fn refuses_bad_sets_with_the_failed_check() {
        let pk = key(1);
        let cases: Vec<(String, KeySetError)> = vec![
            (set(&[], 10), KeySetError::Empty),
            (
                set(
                    &[
                        jwk_json("a", &pk, "", 1, 100),
                        jwk_json("a", &key(2), "", 1, 100),
                    ],
                    10,
                ),
                KeySetError::DuplicateKeyId("a".into()),
            ),
            (
                set(&[jwk_json("a", &pk, "", 1, 10)], 10),
                KeySetError::Expired("a".into()),
            ),
            (
                set(&[jwk_json("a", &pk, "", 50, 100)], 10),
                KeySetError::NoUsableKey,
            ),
            (
                set(&[jwk_json("a", &pk, "", 100, 100)], 10),
                KeySetError::InvalidValidity("a".into()),
            ),
            (
                set(&[jwk_json("a", &pk, r#","d":"AAAA""#, 1, 100)], 10),
                KeySetError::PrivateKeyMaterial("a".into()),
            ),
            (
                set(
                    &[jwk_json("a", &pk, "", 1, 100).replace("P-256", "P-384")],
                    10,
                ),
                KeySetError::UnsupportedCurve("a".into()),
            ),
            (
                set(
                    &[jwk_json("a", &pk, "", 1, 100).replace("HPKE-7", "HPKE-0")],
                    10,
                ),
                KeySetError::UnsupportedAlgorithm("a".into()),
            ),
            (
                set(
                    &[jwk_json("a", &pk, "", 1, 100).replace(r#""EC""#, r#""OKP""#)],
                    10,
                ),
                KeySetError::UnsupportedKeyType("a".into()),
            ),
            (
                set(
                    &[jwk_json("a", &pk, "", 1, 100).replace(r#""enc""#, r#""sig""#)],
                    10,
                ),
                KeySetError::WrongUse("a".into()),
            ),
            (
                set(&[jwk_json("a b", &pk, "", 1, 100)], 10),
                KeySetError::InvalidKeyId,
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(KeySet::parse(&doc).unwrap_err(), want, "{doc}");
        }
    }

    #[test]
    fn refuses_off_curve_and_non_canonical_coordinates() {
        let pk = key(1);
        let mut y = pk.y();
        y[31] ^= 1;
        let doc = set(&[jwk_json("a", &pk, "", 1, 100)], 10).replace(
            &Base64UrlUnpadded::encode_string(&pk.y()),
            &Base64UrlUnpadded::encode_string(&y),
        );
        assert_eq!(
            KeySet::parse(&doc).unwrap_err(),
            KeySetError::InvalidPoint("a".into())
        );
        let x = Base64UrlUnpadded::encode_string(&pk.x());
        let padded = set(&[jwk_json("a", &pk, "", 1, 100)], 10).replace(&x, &format!("{x}="));
        assert_eq!(
            KeySet::parse(&padded).unwrap_err(),
            KeySetError::InvalidCoordinate("a".into())
        );
    }

    #[test]
    fn refuses_unknown_members_and_oversized_documents() {
        let doc = set(&[jwk_json("a", &key(1), r#","extra":1"#, 1, 100)], 10);
        assert!(matches!(
            KeySet::parse(&doc).unwrap_err(),
            KeySetError::Malformed(_)
        ));
        let big = " ".repeat(MAX_KEY_SET_LEN + 1);
        assert_eq!(KeySet::parse(&big).unwrap_err(), KeySetError::TooLarge);
    }

    #[test]
    fn thumbprint_matches_rfc7638_shape() {
        let kid = KeyId::thumbprint(&key(7));
        assert_eq!(kid.as_str().len(), 43);
        assert!(KeyId::is_valid(kid.as_str().as_bytes()));
        assert_ne!(kid, KeyId::thumbprint(&key(8)));
    }

    /// The envelope vectors' two test keys, their thumbprints computed independently (SHA-256 of
    /// the RFC 7638 member string, with Python's hashlib).
    fn vector_keys() -> (String, [&'static str; 2]) {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/vectors/envelope-v1.json")).unwrap();
        let keys: Vec<String> = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["jwk"].to_string())
            .collect();
        (
            set(&keys, 1_800_000_000),
            [
                "Xw8bHmsf10M-8Vw3paJ6iB8mMg6_xrsqzUvUbAhorX4",
                "2J_yEVvTkQdIp0zseK8AGTPsEPK_QhqxHrBxTIcLIeE",
            ],
        )
    }

    #[test]
    fn thumbprints_are_rfc7638() {
        let (doc, prints) = vector_keys();
        let set = KeySet::parse(&doc).unwrap();
        for (k, print) in set.keys().iter().zip(prints) {
            assert_eq!(KeyId::thumbprint(&k.public_key).as_str(), print);
        }
    }
}
