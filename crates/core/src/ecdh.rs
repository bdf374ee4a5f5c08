//! P-256 points and the Diffie-Hellman backends behind DHKEM(P-256, HKDF-SHA256).
//!
//! Two backends compute the same function:
//! - [`P256`], the pure-Rust `p256` crate: always compiled, the only one in the browser build;
//! - [`AwsLc`] (feature `aws-lc`): AWS-LC's assembly P-256, for the vault's opening side.
//!
//! Both are checked against the RFC 9180 and Wycheproof vectors. [`NativeBackend`] names the fastest
//! one compiled in.

use p256::elliptic_curve::point::AffineCoordinates;
use zeroize::Zeroizing;

/// Length of an uncompressed SEC1 P-256 point: `0x04 || X || Y`.
pub const POINT_LEN: usize = 65;
/// Length of a P-256 private scalar and of the ECDH shared x-coordinate.
pub const SCALAR_LEN: usize = 32;

/// Why a point, a scalar or a Diffie-Hellman computation was refused. The HPKE layer converts it
/// into its own error (`From<EcdhError> for HpkeError`), so this module depends on nothing above
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EcdhError {
    /// Not an uncompressed point on P-256, or the identity, or a shared point at infinity.
    #[error("public key is not an uncompressed P-256 point")]
    InvalidPublicKey,
    /// A private key is zero or not below the group order.
    #[error("private key is out of range")]
    InvalidPrivateKey,
    /// The random source failed.
    #[error("random source unavailable")]
    Randomness,
}

/// A P-256 public key: an uncompressed SEC1 point, checked to lie on the curve and not to be the
/// identity. Compressed and hybrid encodings are refused: RFC 9180 §7.1.1 serializes public keys
/// uncompressed only.
#[derive(Clone, Copy)]
pub struct PublicKey {
    raw: [u8; POINT_LEN],
    point: p256::PublicKey,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for PublicKey {}

impl core::hash::Hash for PublicKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}

impl PublicKey {
    /// Parses and validates an uncompressed SEC1 point (65 bytes starting with `0x04`).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, EcdhError> {
        let raw: [u8; POINT_LEN] = bytes.try_into().map_err(|_| EcdhError::InvalidPublicKey)?;
        if raw[0] != 0x04 {
            return Err(EcdhError::InvalidPublicKey);
        }
        // Straight from the coordinates: each must be a canonical field element (below p) and
        // the point must satisfy the curve equation, the checks SEC1 decoding of an uncompressed
        // point makes, without linking the compressed-point decoder (a square root) this
        // function never needs. The identity has no affine coordinates, so it cannot pass.
        let mut x = p256::FieldBytes::default();
        let mut y = p256::FieldBytes::default();
        x.copy_from_slice(&raw[1..33]);
        y.copy_from_slice(&raw[33..]);
        let point = p256::AffinePoint::from_coordinates(&x, &y)
            .into_option()
            .and_then(|point| p256::PublicKey::from_affine(point).ok())
            .ok_or(EcdhError::InvalidPublicKey)?;
        Ok(Self { raw, point })
    }

    /// Builds a public key from its affine coordinates (as in a JWK's `x` and `y`).
    pub fn from_coordinates(x: &[u8; 32], y: &[u8; 32]) -> Result<Self, EcdhError> {
        let mut raw = [0u8; POINT_LEN];
        raw[0] = 0x04;
        raw[1..33].copy_from_slice(x);
        raw[33..].copy_from_slice(y);
        Self::from_sec1(&raw)
    }

    /// The 65-byte uncompressed encoding (RFC 9180 `SerializePublicKey`).
    pub fn to_bytes(&self) -> [u8; POINT_LEN] {
        self.raw
    }

    /// The encoding as a slice.
    pub fn as_bytes(&self) -> &[u8; POINT_LEN] {
        &self.raw
    }

    /// The affine x coordinate (JWK `x`).
    pub fn x(&self) -> [u8; 32] {
        let mut x = [0u8; 32];
        x.copy_from_slice(&self.raw[1..33]);
        x
    }

    /// The affine y coordinate (JWK `y`).
    pub fn y(&self) -> [u8; 32] {
        let mut y = [0u8; 32];
        y.copy_from_slice(&self.raw[33..]);
        y
    }
}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey(04")?;
        for b in &self.raw[1..9] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The x-coordinate of an ECDH shared point (RFC 9180 `DH()` output), wiped on drop.
pub type SharedPoint = Zeroizing<[u8; SCALAR_LEN]>;

/// A P-256 private key held by one ECDH backend.
///
/// Implementations hold the scalar in memory that is wiped on drop and deliberately implement
/// neither `Debug` nor `Clone`.
pub trait EcdhSecret: Sized + Send + Sync {
    /// A short name for reports and test output.
    const BACKEND: &'static str;

    /// Imports a big-endian scalar; refuses 0 and values not below the group order.
    fn from_scalar(scalar: &[u8; SCALAR_LEN]) -> Result<Self, EcdhError>;

    /// Generates a fresh key from the operating system's (or the page's) random source.
    fn generate() -> Result<Self, EcdhError>;

    /// The public key `pk(self)`.
    fn public_key(&self) -> Result<PublicKey, EcdhError>;

    /// `DH(self, peer)`: the x-coordinate of `self * peer`.
    fn diffie_hellman(&self, peer: &PublicKey) -> Result<SharedPoint, EcdhError>;
}

/// The pure-Rust `p256` backend.
pub struct P256(p256::SecretKey);

/// Draws random scalars until one is a valid private key (probability of a retry: about 2^-32).
fn random_scalar<T>(
    import: impl Fn(&[u8; SCALAR_LEN]) -> Result<T, EcdhError>,
) -> Result<T, EcdhError> {
    for _ in 0..64 {
        let mut candidate = Zeroizing::new([0u8; SCALAR_LEN]);
        getrandom::fill(candidate.as_mut_slice()).map_err(|_| EcdhError::Randomness)?;
        if let Ok(key) = import(&candidate) {
            return Ok(key);
        }
    }
    Err(EcdhError::Randomness)
}

impl EcdhSecret for P256 {
    const BACKEND: &'static str = "p256";

    fn from_scalar(scalar: &[u8; SCALAR_LEN]) -> Result<Self, EcdhError> {
        p256::SecretKey::from_bytes(&(*scalar).into())
            .map(Self)
            .map_err(|_| EcdhError::InvalidPrivateKey)
    }

    fn generate() -> Result<Self, EcdhError> {
        random_scalar(Self::from_scalar)
    }

    fn public_key(&self) -> Result<PublicKey, EcdhError> {
        let point = self.0.public_key();
        let mut raw = [0u8; POINT_LEN];
        raw.copy_from_slice(p256::Sec1Point::from(point).as_bytes());
        Ok(PublicKey { raw, point })
    }

    fn diffie_hellman(&self, peer: &PublicKey) -> Result<SharedPoint, EcdhError> {
        let shared = self.0.diffie_hellman(&peer.point);
        let mut out = Zeroizing::new([0u8; SCALAR_LEN]);
        out.copy_from_slice(shared.raw_secret_bytes());
        // P-256 has prime order: a validated point times a non-zero scalar is never the identity.
        // An all-zero x-coordinate is a legitimate point (RFC 9180's zero check is for X25519/X448).
        Ok(out)
    }
}

/// The AWS-LC backend (feature `aws-lc`).
#[cfg(feature = "aws-lc")]
pub struct AwsLc(aws_lc_rs::agreement::PrivateKey);

#[cfg(feature = "aws-lc")]
impl EcdhSecret for AwsLc {
    const BACKEND: &'static str = "aws-lc";

    fn from_scalar(scalar: &[u8; SCALAR_LEN]) -> Result<Self, EcdhError> {
        // AWS-LC accepts scalars >= n by reducing them; RFC 9180 keys must be in [1, n-1], so the
        // range is checked with the same rule as the p256 backend first.
        P256::from_scalar(scalar)?;
        aws_lc_rs::agreement::PrivateKey::from_private_key(&aws_lc_rs::agreement::ECDH_P256, scalar)
            .map(Self)
            .map_err(|_| EcdhError::InvalidPrivateKey)
    }

    fn generate() -> Result<Self, EcdhError> {
        aws_lc_rs::agreement::PrivateKey::generate(&aws_lc_rs::agreement::ECDH_P256)
            .map(Self)
            .map_err(|_| EcdhError::Randomness)
    }

    fn public_key(&self) -> Result<PublicKey, EcdhError> {
        let public = self
            .0
            .compute_public_key()
            .map_err(|_| EcdhError::InvalidPrivateKey)?;
        PublicKey::from_sec1(public.as_ref())
    }

    fn diffie_hellman(&self, peer: &PublicKey) -> Result<SharedPoint, EcdhError> {
        let peer = aws_lc_rs::agreement::UnparsedPublicKey::new(
            &aws_lc_rs::agreement::ECDH_P256,
            peer.as_bytes(),
        );
        let out = aws_lc_rs::agreement::agree(&self.0, peer, EcdhError::InvalidPublicKey, |z| {
            let mut out = Zeroizing::new([0u8; SCALAR_LEN]);
            if z.len() != SCALAR_LEN {
                return Err(EcdhError::InvalidPublicKey);
            }
            out.copy_from_slice(z);
            Ok(out)
        })?;
        Ok(out)
    }
}

/// The fastest backend compiled in: AWS-LC with feature `aws-lc`, otherwise `p256`.
#[cfg(feature = "aws-lc")]
pub type NativeBackend = AwsLc;
/// The fastest backend compiled in: AWS-LC with feature `aws-lc`, otherwise `p256`.
#[cfg(not(feature = "aws-lc"))]
pub type NativeBackend = P256;
