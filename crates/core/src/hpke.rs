//! HPKE, RFC 9180, base mode, for DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-{128,256}-GCM.
//!
//! The key schedule is written here once, on `p256` (or AWS-LC for ECDH), `hkdf`, `sha2` and
//! `aes-gcm`, rather than taken from an HPKE crate: the envelope needs the KEM step (the only
//! expensive part) split from sealing, so that the browser can prepare it before the value is known,
//! and the vault needs to swap the ECDH backend. Published HPKE crates do neither, and the ones on
//! the current RustCrypto releases would bring a second copy of `p256` into the wasm.
//!
//! Envelopes use AES-256-GCM only; AES-128-GCM (feature `aes128`) is here so that both RFC 9180 vectors for this KEM and
//! KDF are checked in full.

#[cfg(feature = "aes128")]
use aes_gcm::Aes128Gcm;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit};
use alloc::{boxed::Box, vec, vec::Vec};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::ecdh::{EcdhError, EcdhSecret, POINT_LEN, PublicKey, SCALAR_LEN};

/// KEM identifier of DHKEM(P-256, HKDF-SHA256).
pub const KEM_ID: u16 = 0x0010;
/// KDF identifier of HKDF-SHA256.
pub const KDF_ID: u16 = 0x0001;
/// Length of the KEM's shared secret (`Nsecret`) and of the KDF's output (`Nh`).
pub const NH: usize = 32;
/// Length of the AEAD nonce (`Nn`).
pub const NN: usize = 12;
/// Length of the AEAD tag (`Nt`).
pub const NT: usize = 16;
/// Length of `enc` for this KEM (`Nenc`).
pub const NENC: usize = POINT_LEN;

const MODE_BASE: u8 = 0x00;
const KEM_SUITE_ID: [u8; 5] = [b'K', b'E', b'M', 0x00, 0x10];

/// Why an HPKE operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HpkeError {
    /// A public key or `enc` is not an uncompressed point on P-256.
    #[error("public key is not an uncompressed P-256 point")]
    InvalidPublicKey,
    /// A private key is zero or not below the group order.
    #[error("private key is out of range")]
    InvalidPrivateKey,
    /// `DeriveKeyPair` found no valid scalar in 256 candidates.
    #[error("DeriveKeyPair found no valid key")]
    DeriveKeyPair,
    /// The random source failed.
    #[error("random source unavailable")]
    Randomness,
    /// Decryption failed: wrong key, wrong AAD or altered ciphertext. Deliberately not more precise.
    #[error("authentication failed")]
    Authentication,
    /// The context's sequence number is exhausted.
    #[error("message limit reached")]
    MessageLimit,
    /// An export or expansion asked for more than 255 * Nh bytes.
    #[error("requested length too long")]
    LengthTooLong,
    /// The AEAD identifier is not one this implementation supports.
    #[error("unsupported AEAD")]
    UnsupportedAead,
    /// An AEAD key of the wrong length.
    #[error("AEAD key has the wrong length")]
    InvalidKeyLength,
}

impl From<EcdhError> for HpkeError {
    fn from(e: EcdhError) -> Self {
        match e {
            EcdhError::InvalidPublicKey => Self::InvalidPublicKey,
            EcdhError::InvalidPrivateKey => Self::InvalidPrivateKey,
            EcdhError::Randomness => Self::Randomness,
        }
    }
}

/// The AEADs supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aead {
    /// AES-128-GCM, id 0x0001 (feature `aes128`, for the RFC 9180 vectors; envelopes never use
    /// it, and the browser build leaves it out).
    #[cfg(feature = "aes128")]
    Aes128Gcm,
    /// AES-256-GCM, id 0x0002 (envelope v1).
    Aes256Gcm,
}

impl Aead {
    /// The RFC 9180 AEAD identifier.
    pub const fn id(self) -> u16 {
        match self {
            #[cfg(feature = "aes128")]
            Self::Aes128Gcm => 0x0001,
            Self::Aes256Gcm => 0x0002,
        }
    }

    /// Looks an AEAD up by identifier.
    pub fn from_id(id: u16) -> Result<Self, HpkeError> {
        match id {
            #[cfg(feature = "aes128")]
            0x0001 => Ok(Self::Aes128Gcm),
            0x0002 => Ok(Self::Aes256Gcm),
            _ => Err(HpkeError::UnsupportedAead),
        }
    }

    /// Key length `Nk`.
    pub const fn key_len(self) -> usize {
        match self {
            #[cfg(feature = "aes128")]
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }

    fn suite_id(self) -> [u8; 10] {
        let a = self.id().to_be_bytes();
        [b'H', b'P', b'K', b'E', 0x00, 0x10, 0x00, 0x01, a[0], a[1]]
    }
}

/// An AEAD key with its AES key schedule; the expanded key is wiped on drop.
enum AeadKey {
    #[cfg(feature = "aes128")]
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl AeadKey {
    fn new(aead: Aead, key: &[u8]) -> Result<Self, HpkeError> {
        Ok(match aead {
            #[cfg(feature = "aes128")]
            Aead::Aes128Gcm => Self::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).map_err(|_| HpkeError::InvalidKeyLength)?,
            )),
            Aead::Aes256Gcm => Self::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).map_err(|_| HpkeError::InvalidKeyLength)?,
            )),
        })
    }

    fn seal(&self, nonce: &[u8; NN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(pt.len() + NT);
        buf.extend_from_slice(pt);
        let nonce = (*nonce).into();
        // AES-GCM encryption fails only for messages over 2^36 bytes, far above any input here.
        let tag = match self {
            #[cfg(feature = "aes128")]
            Self::Aes128(c) => c.encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into()),
            Self::Aes256(c) => c.encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into()),
        };
        match tag {
            Ok(tag) => buf.extend_from_slice(&tag),
            Err(_) => buf.clear(),
        }
        buf
    }

    #[cfg(feature = "open")]
    fn open(
        &self,
        nonce: &[u8; NN],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let body_len = ct.len().checked_sub(NT).ok_or(HpkeError::Authentication)?;
        let (body, tag) = ct.split_at(body_len);
        let mut buf = Zeroizing::new(body.to_vec());
        let nonce = (*nonce).into();
        let tag: [u8; NT] = tag.try_into().map_err(|_| HpkeError::Authentication)?;
        let tag = tag.into();
        let res = match self {
            #[cfg(feature = "aes128")]
            Self::Aes128(c) => {
                c.decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
            }
            Self::Aes256(c) => {
                c.decrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into(), &tag)
            }
        };
        res.map_err(|_| HpkeError::Authentication)?;
        Ok(buf)
    }
}

/// `LabeledExtract(salt, label, ikm)` of RFC 9180 §4, streamed without copying `ikm`.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Hkdf<Sha256> {
    let mut ext = HkdfExtract::<Sha256>::new(Some(salt));
    ext.input_ikm(b"HPKE-v1");
    ext.input_ikm(suite_id);
    ext.input_ikm(label);
    ext.input_ikm(ikm);
    ext.finalize().1
}

/// `LabeledExtract` returning the PRK bytes, for values the RFC vectors publish.
fn labeled_extract_bytes(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; NH] {
    let mut ext = HkdfExtract::<Sha256>::new(Some(salt));
    ext.input_ikm(b"HPKE-v1");
    ext.input_ikm(suite_id);
    ext.input_ikm(label);
    ext.input_ikm(ikm);
    ext.finalize().0.into()
}

/// `LabeledExpand(prk, label, info, L)` of RFC 9180 §4.
fn labeled_expand(
    prk: &Hkdf<Sha256>,
    suite_id: &[u8],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), HpkeError> {
    let len = u16::try_from(out.len()).map_err(|_| HpkeError::LengthTooLong)?;
    prk.expand_multi_info(
        &[&len.to_be_bytes(), b"HPKE-v1", suite_id, label, info],
        out,
    )
    .map_err(|_| HpkeError::LengthTooLong)
}

/// `ExtractAndExpand(dh, kem_context)` of DHKEM (RFC 9180 §4.1).
fn extract_and_expand(dh: &[u8], kem_context: &[u8]) -> Result<Zeroizing<[u8; NH]>, HpkeError> {
    let prk = labeled_extract(&KEM_SUITE_ID, b"", b"eae_prk", dh);
    let mut shared = Zeroizing::new([0u8; NH]);
    labeled_expand(
        &prk,
        &KEM_SUITE_ID,
        b"shared_secret",
        kem_context,
        shared.as_mut_slice(),
    )?;
    Ok(shared)
}

/// `DeriveKeyPair(ikm)` for P-256 (RFC 9180 §7.1.3): deterministic key generation from seed bytes.
pub fn derive_key_pair<S: EcdhSecret>(ikm: &[u8]) -> Result<(S, PublicKey), HpkeError> {
    let prk = labeled_extract(&KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    for counter in 0u8..=255 {
        let mut candidate = Zeroizing::new([0u8; SCALAR_LEN]);
        labeled_expand(
            &prk,
            &KEM_SUITE_ID,
            b"candidate",
            &[counter],
            candidate.as_mut_slice(),
        )?;
        // bitmask is 0xff for P-256: the first byte is kept whole.
        if let Ok(sk) = S::from_scalar(&candidate) {
            let pk = sk.public_key()?;
            return Ok((sk, pk));
        }
    }
    Err(HpkeError::DeriveKeyPair)
}

/// The result of `Encap`: the shared secret and the encapsulated key `enc`.
pub struct Encapsulated {
    /// The KEM shared secret, wiped on drop.
    pub shared_secret: Zeroizing<[u8; NH]>,
    /// `enc`: the ephemeral public key, serialized.
    pub enc: [u8; NENC],
}

fn encap_with<S: EcdhSecret>(
    ephemeral: &S,
    pk_e: &PublicKey,
    pk_r: &PublicKey,
) -> Result<Encapsulated, HpkeError> {
    let dh = ephemeral.diffie_hellman(pk_r)?;
    let enc = pk_e.to_bytes();
    let mut kem_context = [0u8; 2 * NENC];
    kem_context[..NENC].copy_from_slice(&enc);
    kem_context[NENC..].copy_from_slice(pk_r.as_bytes());
    let shared_secret = extract_and_expand(dh.as_slice(), &kem_context)?;
    Ok(Encapsulated { shared_secret, enc })
}

/// `Encap(pkR)` with a fresh random ephemeral key.
pub fn encap<S: EcdhSecret>(pk_r: &PublicKey) -> Result<Encapsulated, HpkeError> {
    let ephemeral = S::generate()?;
    let pk_e = ephemeral.public_key()?;
    encap_with(&ephemeral, &pk_e, pk_r)
}

/// `Encap(pkR)` with the ephemeral key derived from `ikm_e` (`DeriveKeyPair`), as the RFC's test
/// vectors do. Deterministic: only for generating and checking vectors.
pub fn encap_derived<S: EcdhSecret>(
    pk_r: &PublicKey,
    ikm_e: &[u8],
) -> Result<Encapsulated, HpkeError> {
    let (ephemeral, pk_e) = derive_key_pair::<S>(ikm_e)?;
    encap_with(&ephemeral, &pk_e, pk_r)
}

/// `Decap(enc, skR)`; `pk_r` is `pk(skR)`, computed once by the caller.
#[cfg(feature = "open")]
pub fn decap<S: EcdhSecret>(
    enc: &[u8],
    sk_r: &S,
    pk_r: &PublicKey,
) -> Result<Zeroizing<[u8; NH]>, HpkeError> {
    let pk_e = PublicKey::from_sec1(enc)?;
    let dh = sk_r.diffie_hellman(&pk_e)?;
    let mut kem_context = [0u8; 2 * NENC];
    kem_context[..NENC].copy_from_slice(pk_e.as_bytes());
    kem_context[NENC..].copy_from_slice(pk_r.as_bytes());
    extract_and_expand(dh.as_slice(), &kem_context)
}

/// The intermediate values of the key schedule, as published in the RFC 9180 vectors.
pub struct KeyScheduleValues {
    /// `key_schedule_context = mode || psk_id_hash || info_hash`.
    pub key_schedule_context: Vec<u8>,
    /// `secret`.
    pub secret: Zeroizing<[u8; NH]>,
    /// The AEAD key.
    pub key: Zeroizing<Vec<u8>>,
    /// The base nonce.
    pub base_nonce: [u8; NN],
    /// The exporter secret.
    pub exporter_secret: Zeroizing<[u8; NH]>,
}

/// `KeySchedule(mode_base, shared_secret, info, "", "")` (RFC 9180 §5.1).
pub fn key_schedule(
    aead: Aead,
    shared_secret: &[u8; NH],
    info: &[u8],
) -> Result<KeyScheduleValues, HpkeError> {
    let suite_id = aead.suite_id();
    let psk_id_hash = labeled_extract_bytes(&suite_id, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract_bytes(&suite_id, b"", b"info_hash", info);
    let mut key_schedule_context = Vec::with_capacity(1 + 2 * NH);
    key_schedule_context.push(MODE_BASE);
    key_schedule_context.extend_from_slice(&psk_id_hash);
    key_schedule_context.extend_from_slice(&info_hash);

    // secret = LabeledExtract(shared_secret, "secret", psk) with an empty psk.
    let secret = Zeroizing::new(labeled_extract_bytes(
        &suite_id,
        shared_secret,
        b"secret",
        b"",
    ));
    let prk = Hkdf::<Sha256>::from_prk(secret.as_slice()).map_err(|_| HpkeError::LengthTooLong)?;
    let mut key = Zeroizing::new(vec![0u8; aead.key_len()]);
    labeled_expand(&prk, &suite_id, b"key", &key_schedule_context, &mut key)?;
    let mut base_nonce = [0u8; NN];
    labeled_expand(
        &prk,
        &suite_id,
        b"base_nonce",
        &key_schedule_context,
        &mut base_nonce,
    )?;
    let mut exporter_secret = Zeroizing::new([0u8; NH]);
    labeled_expand(
        &prk,
        &suite_id,
        b"exp",
        &key_schedule_context,
        exporter_secret.as_mut_slice(),
    )?;
    Ok(KeyScheduleValues {
        key_schedule_context,
        secret,
        key,
        base_nonce,
        exporter_secret,
    })
}

/// An HPKE encryption context (RFC 9180 §5.2): the AEAD key, base nonce, sequence number and
/// exporter secret. No `Debug`, no `Clone`: a context must never be duplicated, or nonces repeat.
pub struct Context {
    aead: Aead,
    key: AeadKey,
    base_nonce: [u8; NN],
    seq: u64,
    exporter_secret: Zeroizing<[u8; NH]>,
}

impl Drop for Context {
    fn drop(&mut self) {
        self.base_nonce.zeroize();
    }
}

impl Context {
    /// Runs the key schedule and builds the context.
    pub fn new(aead: Aead, shared_secret: &[u8; NH], info: &[u8]) -> Result<Self, HpkeError> {
        let mut v = key_schedule(aead, shared_secret, info)?;
        let ctx = Self {
            aead,
            key: AeadKey::new(aead, &v.key)?,
            base_nonce: v.base_nonce,
            seq: 0,
            exporter_secret: v.exporter_secret,
        };
        v.base_nonce.zeroize();
        Ok(ctx)
    }

    /// The context's AEAD.
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// The next sequence number.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    fn next_nonce(&mut self) -> Result<[u8; NN], HpkeError> {
        let mut nonce = self.base_nonce;
        for (n, s) in nonce[NN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        // Nn = 12 bytes allows 2^96 messages; a u64 counter is exhausted first.
        self.seq = self.seq.checked_add(1).ok_or(HpkeError::MessageLimit)?;
        Ok(nonce)
    }

    /// `ContextS.Seal(aad, pt)`: ciphertext with the tag appended.
    pub fn seal(&mut self, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let nonce = self.next_nonce()?;
        Ok(self.key.seal(&nonce, aad, pt))
    }

    /// `ContextR.Open(aad, ct)`. The sequence number advances only on success, as the RFC requires.
    #[cfg(feature = "open")]
    pub fn open(&mut self, aad: &[u8], ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        let mut nonce = self.base_nonce;
        for (n, s) in nonce[NN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        let pt = self.key.open(&nonce, aad, ct)?;
        self.seq = self.seq.checked_add(1).ok_or(HpkeError::MessageLimit)?;
        Ok(pt)
    }

    /// `Context.Export(exporter_context, L)`.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<(), HpkeError> {
        let prk = Hkdf::<Sha256>::from_prk(self.exporter_secret.as_slice())
            .map_err(|_| HpkeError::LengthTooLong)?;
        labeled_expand(&prk, &self.aead.suite_id(), b"sec", exporter_context, out)
    }
}

/// `SetupBaseS(pkR, info)` with a random ephemeral key: returns `enc` and the sender context.
pub fn setup_base_sender<S: EcdhSecret>(
    aead: Aead,
    pk_r: &PublicKey,
    info: &[u8],
) -> Result<([u8; NENC], Context), HpkeError> {
    let encapsulated = encap::<S>(pk_r)?;
    let ctx = Context::new(aead, &encapsulated.shared_secret, info)?;
    Ok((encapsulated.enc, ctx))
}

/// `SetupBaseR(enc, skR, info)`.
#[cfg(feature = "open")]
pub fn setup_base_recipient<S: EcdhSecret>(
    aead: Aead,
    enc: &[u8],
    sk_r: &S,
    pk_r: &PublicKey,
    info: &[u8],
) -> Result<Context, HpkeError> {
    let shared_secret = decap(enc, sk_r, pk_r)?;
    Context::new(aead, &shared_secret, info)
}

/// Single-use primitives exposed so that the published vectors can test exactly the code the
/// envelope uses. Not needed to seal or open envelopes.
pub mod hazmat {
    use super::{Aead, AeadKey, HpkeError, NN};
    use alloc::vec::Vec;
    #[cfg(feature = "open")]
    use zeroize::Zeroizing;

    /// AES-GCM encryption as the HPKE context performs it: ciphertext with the tag appended.
    pub fn aead_seal(
        aead: Aead,
        key: &[u8],
        nonce: &[u8; NN],
        aad: &[u8],
        pt: &[u8],
    ) -> Result<Vec<u8>, HpkeError> {
        Ok(AeadKey::new(aead, key)?.seal(nonce, aad, pt))
    }

    /// AES-GCM decryption as the HPKE context performs it.
    #[cfg(feature = "open")]
    pub fn aead_open(
        aead: Aead,
        key: &[u8],
        nonce: &[u8; NN],
        aad: &[u8],
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
        AeadKey::new(aead, key)?.open(nonce, aad, ct)
    }

    /// Plain HKDF-SHA256 (RFC 5869) extract-then-expand, through the same crate calls as the
    /// labeled functions.
    pub fn hkdf_sha256(
        salt: &[u8],
        ikm: &[u8],
        info: &[u8],
        out: &mut [u8],
    ) -> Result<(), HpkeError> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm);
        hk.expand_multi_info(&[info], out)
            .map_err(|_| HpkeError::LengthTooLong)
    }
}
