//! Envelope v1: one field value sealed to the vault's key, with its authenticated header.
//!
//! The byte layout is specified in `docs/envelope-v1.md`; this module is its reference
//! implementation. In short:
//!
//! ```text
//! "fse1." || base64url_unpadded( header || enc || u16 ct_len || ct )
//! ct = HPKE base-mode Seal(pkR, info = "fieldseal envelope v1", aad = header, pt = value)
//! ```
//!
//! Sealing is split in two. [`PreparedContext::prepare`] does the KEM (an ephemeral P-256 key and one
//! ECDH) and the key schedule before the value is known; [`PreparedContext::seal`] consumes the
//! context and does one AES-256-GCM encryption, so a context can never seal twice.

use alloc::{string::String, vec::Vec};
use base64ct::{Base64UrlUnpadded, Encoding};
use zeroize::Zeroizing;

use crate::ecdh::{EcdhSecret, P256, PublicKey};
use crate::hpke::{self, Aead, HpkeError, KDF_ID, KEM_ID, NENC, NT};
use crate::keyset::{KeyId, MAX_KEY_ID_LEN, RecipientKey};

/// The text form's prefix: envelope format, version 1.
pub const PREFIX: &str = "fse1.";
/// The format version byte.
pub const VERSION: u8 = 1;
/// The HPKE `info` of every v1 envelope.
pub const INFO: &[u8] = b"fieldseal envelope v1";
/// The AEAD of envelope v1.
pub const AEAD: Aead = Aead::Aes256Gcm;
/// Longest value that can be sealed, in bytes.
pub const MAX_VALUE_LEN: usize = 1024;
/// Longest checkout-session context, in bytes.
pub const MAX_SESSION_LEN: usize = 128;
/// Longest origin context, in bytes.
pub const MAX_ORIGIN_LEN: usize = 255;
/// Length of the envelope id.
pub const ENVELOPE_ID_LEN: usize = 16;

const SUITE_LEN: usize = 6;
/// Longest header: every optional member at its maximum.
pub const MAX_HEADER_LEN: usize = 1
    + SUITE_LEN
    + 1
    + MAX_KEY_ID_LEN
    + 1
    + 8
    + ENVELOPE_ID_LEN
    + 1
    + MAX_SESSION_LEN
    + 1
    + MAX_ORIGIN_LEN
    + 1
    + 1
    + 8
    + 1
    + 4;
/// Longest binary envelope.
pub const MAX_ENVELOPE_LEN: usize = MAX_HEADER_LEN + NENC + 2 + MAX_VALUE_LEN + NT;
/// Longest text envelope, prefix included.
pub const MAX_TEXT_LEN: usize = PREFIX.len() + (MAX_ENVELOPE_LEN * 4).div_ceil(3);

/// What kind of value an envelope holds. The vault validates, stores, masks and authorizes by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldKind {
    /// Primary account number (card number), digits only.
    Pan,
    /// Card security code.
    Cvc,
    /// Card expiry date.
    Expiry,
    /// Cardholder or person name.
    Name,
    /// E-mail address.
    Email,
    /// Telephone number.
    Phone,
    /// Postal address.
    Address,
    /// Postal code.
    PostalCode,
    /// Date of birth.
    BirthDate,
    /// National identifier (SSN, tax id ...).
    NationalId,
    /// International bank account number.
    Iban,
    /// Any other personal text.
    Text,
}

impl FieldKind {
    /// Every kind, in code order.
    pub const ALL: [FieldKind; 12] = [
        Self::Pan,
        Self::Cvc,
        Self::Expiry,
        Self::Name,
        Self::Email,
        Self::Phone,
        Self::Address,
        Self::PostalCode,
        Self::BirthDate,
        Self::NationalId,
        Self::Iban,
        Self::Text,
    ];

    /// The byte that encodes the kind in the header.
    pub const fn code(self) -> u8 {
        match self {
            Self::Pan => 1,
            Self::Cvc => 2,
            Self::Expiry => 3,
            Self::Name => 4,
            Self::Email => 5,
            Self::Phone => 6,
            Self::Address => 7,
            Self::PostalCode => 8,
            Self::BirthDate => 9,
            Self::NationalId => 10,
            Self::Iban => 11,
            Self::Text => 12,
        }
    }

    /// The kind for a header byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind's name, as in `data-seal="pan"` and the vault's API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pan => "pan",
            Self::Cvc => "cvc",
            Self::Expiry => "exp",
            Self::Name => "name",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Address => "address",
            Self::PostalCode => "postal-code",
            Self::BirthDate => "birth-date",
            Self::NationalId => "national-id",
            Self::Iban => "iban",
            Self::Text => "text",
        }
    }
}

impl core::str::FromStr for FieldKind {
    type Err = SealError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(SealError::UnknownKind)
    }
}

impl core::fmt::Display for FieldKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Card brands a PAN hint can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CardBrand {
    /// Visa.
    Visa,
    /// Mastercard.
    Mastercard,
    /// American Express.
    Amex,
    /// Discover.
    Discover,
    /// Diners Club.
    Diners,
    /// JCB.
    Jcb,
    /// UnionPay.
    UnionPay,
    /// Maestro.
    Maestro,
    /// RuPay (India).
    RuPay,
    /// Mir (Russia).
    Mir,
    /// Elo (Brazil).
    Elo,
    /// Verve (Nigeria).
    Verve,
    /// Troy (Türkiye).
    Troy,
}

impl CardBrand {
    /// Every brand, in code order.
    pub const ALL: [CardBrand; 13] = [
        Self::Visa,
        Self::Mastercard,
        Self::Amex,
        Self::Discover,
        Self::Diners,
        Self::Jcb,
        Self::UnionPay,
        Self::Maestro,
        Self::RuPay,
        Self::Mir,
        Self::Elo,
        Self::Verve,
        Self::Troy,
    ];

    /// The byte that encodes the brand in the header (0 means no brand).
    pub const fn code(self) -> u8 {
        match self {
            Self::Visa => 1,
            Self::Mastercard => 2,
            Self::Amex => 3,
            Self::Discover => 4,
            Self::Diners => 5,
            Self::Jcb => 6,
            Self::UnionPay => 7,
            Self::Maestro => 8,
            Self::RuPay => 9,
            Self::Mir => 10,
            Self::Elo => 11,
            Self::Verve => 12,
            Self::Troy => 13,
        }
    }

    /// The brand for a header byte; `None` for 0 and for a code this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.code() == code)
    }

    /// The brand's name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
            Self::Amex => "amex",
            Self::Discover => "discover",
            Self::Diners => "diners",
            Self::Jcb => "jcb",
            Self::UnionPay => "unionpay",
            Self::Maestro => "maestro",
            Self::RuPay => "rupay",
            Self::Mir => "mir",
            Self::Elo => "elo",
            Self::Verve => "verve",
            Self::Troy => "troy",
        }
    }
}

/// A random 128-bit envelope id: the vault refuses an id it has seen (replay protection).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvelopeId(pub [u8; ENVELOPE_ID_LEN]);

impl EnvelopeId {
    /// A fresh random id.
    pub fn random() -> Result<Self, SealError> {
        let mut id = [0u8; ENVELOPE_ID_LEN];
        getrandom::fill(&mut id).map_err(|_| SealError::Randomness)?;
        Ok(Self(id))
    }

    /// Lowercase hex, 32 characters.
    pub fn to_hex(&self) -> String {
        crate::encoding::hex(&self.0)
    }
}

impl core::fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "EnvelopeId({})", self.to_hex())
    }
}

/// Where an envelope was sealed. Both members are public and authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvelopeContext {
    /// The merchant's checkout session id (visible ASCII, at most 128 bytes).
    pub session: Option<String>,
    /// The page's origin, such as `https://shop.example` (visible ASCII, at most 255 bytes).
    pub origin: Option<String>,
}

/// Public facts about a card number, sealed in the clear but authenticated. PAN envelopes only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The card brand.
    pub brand: Option<CardBrand>,
    /// The first 6 or 8 digits.
    pub bin: Option<String>,
    /// The last 4 digits.
    pub last4: Option<String>,
}

impl Hints {
    fn is_empty(&self) -> bool {
        self.brand.is_none() && self.bin.is_none() && self.last4.is_none()
    }

    /// Whether `value` starts with the BIN and ends with the last four.
    fn consistent_with(&self, value: &[u8]) -> bool {
        let bin_ok = self
            .bin
            .as_ref()
            .is_none_or(|bin| value.starts_with(bin.as_bytes()));
        let last4_ok = self
            .last4
            .as_ref()
            .is_none_or(|l4| value.ends_with(l4.as_bytes()));
        bin_ok && last4_ok
    }
}

/// The authenticated header of an envelope. Everything in it is public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The vault key the envelope is sealed to.
    pub key_id: KeyId,
    /// The kind of value.
    pub kind: FieldKind,
    /// Creation time, seconds since the Unix epoch, in the server's time.
    pub created_at: u64,
    /// The random envelope id.
    pub id: EnvelopeId,
    /// Optional context.
    pub context: EnvelopeContext,
    /// Optional public hints (PAN only).
    pub hints: Hints,
}

fn visible_ascii(s: &[u8]) -> bool {
    s.iter().all(|c| (0x21..=0x7e).contains(c))
}

fn digits(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_digit)
}

impl Header {
    fn check(&self) -> Result<(), SealError> {
        fn text_ok(s: Option<&String>, max: usize) -> bool {
            s.is_none_or(|s| !s.is_empty() && s.len() <= max && visible_ascii(s.as_bytes()))
        }
        fn digits_ok(s: Option<&String>, lengths: &[usize]) -> bool {
            s.is_none_or(|s| lengths.contains(&s.len()) && digits(s.as_bytes()))
        }
        let (ctx, hints) = (&self.context, &self.hints);
        if !text_ok(ctx.session.as_ref(), MAX_SESSION_LEN)
            || !text_ok(ctx.origin.as_ref(), MAX_ORIGIN_LEN)
        {
            return Err(SealError::InvalidContext);
        }
        // In field order: the hint fields themselves, then whether the kind may carry hints.
        if !digits_ok(hints.bin.as_ref(), &[6, 8]) || !digits_ok(hints.last4.as_ref(), &[4]) {
            return Err(SealError::InvalidHints);
        }
        if !hints.is_empty() && self.kind != FieldKind::Pan {
            return Err(SealError::HintsNotAllowed);
        }
        Ok(())
    }

    /// The header's bytes: the AAD of the HPKE seal. Call only on a checked header.
    fn encode(&self) -> Vec<u8> {
        fn opt(out: &mut Vec<u8>, s: Option<&String>) {
            let s = s.map_or(&[][..], |s| s.as_bytes());
            // Lengths were bounded by `check` (or by the parser): they fit in a byte.
            out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(s);
        }
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        out.push(VERSION);
        out.extend_from_slice(&KEM_ID.to_be_bytes());
        out.extend_from_slice(&KDF_ID.to_be_bytes());
        out.extend_from_slice(&AEAD.id().to_be_bytes());
        let kid = self.key_id.as_str().as_bytes();
        out.push(u8::try_from(kid.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(kid);
        out.push(self.kind.code());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.id.0);
        opt(&mut out, self.context.session.as_ref());
        opt(&mut out, self.context.origin.as_ref());
        out.push(self.hints.brand.map_or(0, CardBrand::code));
        opt(&mut out, self.hints.bin.as_ref());
        opt(&mut out, self.hints.last4.as_ref());
        out
    }
}

/// Why sealing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The value is empty.
    #[error("value is empty")]
    EmptyValue,
    /// The value is longer than [`MAX_VALUE_LEN`] bytes.
    #[error("value is longer than {MAX_VALUE_LEN} bytes")]
    ValueTooLong,
    /// Not a known field kind name.
    #[error("unknown field kind")]
    UnknownKind,
    /// A context member is empty, too long or not visible ASCII.
    #[error("context must be visible ASCII (session up to 128 bytes, origin up to 255)")]
    InvalidContext,
    /// Hints were given for a kind other than `pan`.
    #[error("hints are allowed on card numbers only")]
    HintsNotAllowed,
    /// A BIN that is not 6 or 8 digits, or a last four that is not 4 digits.
    #[error("BIN must be 6 or 8 digits and last four 4 digits")]
    InvalidHints,
    /// The hints do not match the value's first or last digits.
    #[error("hints do not match the value")]
    HintMismatch,
    /// The recipient key could not be used.
    #[error("recipient key is unusable")]
    InvalidRecipient,
    /// The random source failed.
    #[error("random source unavailable")]
    Randomness,
}

impl SealError {
    /// A stable machine-readable code, such as `seal_empty_value`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::EmptyValue => "seal_empty_value",
            Self::ValueTooLong => "seal_value_too_long",
            Self::UnknownKind => "seal_unknown_kind",
            Self::InvalidContext => "seal_invalid_context",
            Self::HintsNotAllowed => "seal_hints_not_allowed",
            Self::InvalidHints => "seal_invalid_hints",
            Self::HintMismatch => "seal_hint_mismatch",
            Self::InvalidRecipient => "seal_invalid_recipient",
            Self::Randomness => "seal_randomness",
        }
    }
}

/// The public parameters of one seal.
#[derive(Debug, Clone)]
pub struct SealParams {
    /// The kind of value.
    pub kind: FieldKind,
    /// Creation time in server time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Optional context.
    pub context: EnvelopeContext,
    /// Optional hints (PAN only).
    pub hints: Hints,
}

impl SealParams {
    /// Parameters with no context and no hints.
    pub fn new(kind: FieldKind, created_at: u64) -> Self {
        Self {
            kind,
            created_at,
            context: EnvelopeContext::default(),
            hints: Hints::default(),
        }
    }
}

/// A sealing context prepared ahead of time: the KEM is done and the key schedule run, for one
/// recipient key. Sealing consumes it, so it seals exactly one value. No `Clone`, no `Debug`.
pub struct PreparedContext {
    key_id: KeyId,
    enc: [u8; NENC],
    id: EnvelopeId,
    ctx: hpke::Context,
}

impl PreparedContext {
    /// Prepares a context for `recipient` with the `p256` backend (the browser's).
    pub fn prepare(recipient: &RecipientKey) -> Result<Self, SealError> {
        Self::prepare_with::<P256>(recipient)
    }

    /// Prepares a context with a chosen ECDH backend.
    pub fn prepare_with<S: EcdhSecret>(recipient: &RecipientKey) -> Result<Self, SealError> {
        let id = EnvelopeId::random()?;
        let (enc, ctx) =
            hpke::setup_base_sender::<S>(AEAD, &recipient.public_key, INFO).map_err(seal_error)?;
        Ok(Self {
            key_id: recipient.kid.clone(),
            enc,
            id,
            ctx,
        })
    }

    /// Prepares a context deterministically: the ephemeral key from `ikm_e` (RFC 9180
    /// `DeriveKeyPair`) and a fixed envelope id. For generating test vectors only; never in a
    /// product, where both must be random.
    #[cfg(feature = "test-vectors")]
    pub fn derive<S: EcdhSecret>(
        recipient: &RecipientKey,
        ikm_e: &[u8],
        id: EnvelopeId,
    ) -> Result<Self, SealError> {
        let encapsulated =
            hpke::encap_derived::<S>(&recipient.public_key, ikm_e).map_err(seal_error)?;
        let ctx =
            hpke::Context::new(AEAD, &encapsulated.shared_secret, INFO).map_err(seal_error)?;
        Ok(Self {
            key_id: recipient.kid.clone(),
            enc: encapsulated.enc,
            id,
            ctx,
        })
    }

    /// The key this context seals to.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The id the envelope sealed with this context will carry.
    pub fn envelope_id(&self) -> EnvelopeId {
        self.id
    }

    /// Seals `value` and returns the envelope's text form. Symmetric work only.
    ///
    /// The context is consumed, so it cannot seal a second value:
    ///
    /// ```compile_fail,E0382
    /// # use fieldseal_core::envelope::{FieldKind, PreparedContext, SealParams};
    /// # fn twice(prepared: PreparedContext) {
    /// let params = SealParams::new(FieldKind::Cvc, 0);
    /// let first = prepared.seal(b"123", &params);
    /// let second = prepared.seal(b"456", &params); // error[E0382]: use of moved value
    /// # }
    /// ```
    pub fn seal(mut self, value: &[u8], params: &SealParams) -> Result<String, SealError> {
        if value.is_empty() {
            return Err(SealError::EmptyValue);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(SealError::ValueTooLong);
        }
        let header = Header {
            key_id: self.key_id.clone(),
            kind: params.kind,
            created_at: params.created_at,
            id: self.id,
            context: params.context.clone(),
            hints: params.hints.clone(),
        };
        header.check()?;
        if !header.hints.consistent_with(value) {
            return Err(SealError::HintMismatch);
        }
        let aad = header.encode();
        let ct = self.ctx.seal(&aad, value).map_err(seal_error)?;
        let ct_len = u16::try_from(ct.len()).map_err(|_| SealError::ValueTooLong)?;
        let mut bin = Zeroizing::new(aad);
        bin.extend_from_slice(&self.enc);
        bin.extend_from_slice(&ct_len.to_be_bytes());
        bin.extend_from_slice(&ct);
        let mut text = String::with_capacity(PREFIX.len() + bin.len().div_ceil(3) * 4);
        text.push_str(PREFIX);
        text.push_str(&crate::encoding::base64url(&bin));
        Ok(text)
    }
}

fn seal_error(e: HpkeError) -> SealError {
    match e {
        HpkeError::Randomness => SealError::Randomness,
        _ => SealError::InvalidRecipient,
    }
}

/// Why an envelope's text or bytes were refused, before any decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is longer than [`MAX_TEXT_LEN`].
    #[error("envelope is too long")]
    TooLong,
    /// The text does not start with `fse1.`.
    #[error("not an envelope: missing the fse1. prefix")]
    MissingPrefix,
    /// Not canonical unpadded base64url.
    #[error("envelope is not canonical base64url")]
    InvalidEncoding,
    /// The bytes end before a member is complete.
    #[error("envelope is truncated")]
    Truncated,
    /// Bytes follow the ciphertext.
    #[error("envelope has trailing bytes")]
    TrailingBytes,
    /// A version other than 1.
    #[error("unsupported envelope version")]
    UnsupportedVersion,
    /// A KEM, KDF or AEAD other than 0x0010, 0x0001, 0x0002.
    #[error("unsupported HPKE suite")]
    UnsupportedSuite,
    /// The key id is empty, too long or has characters outside `A-Z a-z 0-9 . _ -`.
    #[error("invalid key id")]
    InvalidKeyId,
    /// An unknown field kind code.
    #[error("unknown field kind")]
    UnknownKind,
    /// A context member is empty, too long or not visible ASCII.
    #[error("invalid context")]
    InvalidContext,
    /// A BIN not of 6 or 8 digits or a last four not of 4 digits. (An unknown brand code is read
    /// as no brand.)
    #[error("invalid hints")]
    InvalidHints,
    /// Hints on a kind other than `pan`.
    #[error("hints on a kind other than pan")]
    HintsNotAllowed,
    /// `enc` is not an uncompressed point on P-256.
    #[error("encapsulated key is not a P-256 point")]
    InvalidPoint,
    /// The ciphertext is shorter than a tag plus one byte, or longer than the largest value.
    #[error("invalid ciphertext length")]
    InvalidCiphertextLength,
}

impl From<SealError> for ParseError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::HintsNotAllowed => Self::HintsNotAllowed,
            SealError::InvalidHints => Self::InvalidHints,
            _ => Self::InvalidContext,
        }
    }
}

/// A parsed envelope: header checked, `enc` validated, ciphertext not yet opened.
#[derive(Clone)]
pub struct Envelope {
    header: Header,
    header_bytes: Vec<u8>,
    enc: PublicKey,
    ciphertext: Vec<u8>,
}

impl core::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Envelope")
            .field("header", &self.header)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if self.bytes.len() < n {
            return Err(ParseError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A `u8` length then that many bytes; 0 means absent.
    fn opt_str(&mut self, max: usize) -> Result<Option<String>, ParseError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        if len == 0 {
            return Ok(None);
        }
        if len > max || !visible_ascii(bytes) {
            return Err(ParseError::InvalidContext);
        }
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }
}

impl Envelope {
    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ParseError::TooLong);
        }
        let body = text.strip_prefix(PREFIX).ok_or(ParseError::MissingPrefix)?;
        let bytes = Base64UrlUnpadded::decode_vec(body).map_err(|_| ParseError::InvalidEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// Parses the binary form (the text form without prefix, base64url-decoded).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(ParseError::TooLong);
        }
        let mut r = Reader { bytes };
        if r.u8()? != VERSION {
            return Err(ParseError::UnsupportedVersion);
        }
        let (kem, kdf, aead) = (r.u16()?, r.u16()?, r.u16()?);
        if (kem, kdf, aead) != (KEM_ID, KDF_ID, AEAD.id()) {
            return Err(ParseError::UnsupportedSuite);
        }
        let kid_len = usize::from(r.u8()?);
        let kid = r.take(kid_len)?;
        if !KeyId::is_valid(kid) {
            return Err(ParseError::InvalidKeyId);
        }
        let key_id = KeyId::new(core::str::from_utf8(kid).map_err(|_| ParseError::InvalidKeyId)?)
            .map_err(|_| ParseError::InvalidKeyId)?;
        let kind = FieldKind::from_code(r.u8()?).ok_or(ParseError::UnknownKind)?;
        let created_at = u64::from_be_bytes(r.array()?);
        let id = EnvelopeId(r.array()?);
        let session = r.opt_str(MAX_SESSION_LEN)?;
        let origin = r.opt_str(MAX_ORIGIN_LEN)?;
        // A brand code this reader does not know (a brand added to table 3.4 after it was built)
        // reads as no brand: the hint is public, the vault takes the brand from the value, and the
        // header bytes stay the AAD exactly as sent.
        let brand_code = r.u8()?;
        let brand = CardBrand::from_code(brand_code);
        let hint = |e| match e {
            ParseError::InvalidContext => ParseError::InvalidHints,
            other => other,
        };
        let bin = r.opt_str(8).map_err(hint)?;
        let last4 = r.opt_str(4).map_err(hint)?;
        let header = Header {
            key_id,
            kind,
            created_at,
            id,
            context: EnvelopeContext { session, origin },
            hints: Hints { brand, bin, last4 },
        };
        header.check()?;
        if brand_code != 0 && kind != FieldKind::Pan {
            return Err(ParseError::HintsNotAllowed);
        }
        let header_len = bytes.len() - r.bytes.len();
        let header_bytes = bytes
            .get(..header_len)
            .ok_or(ParseError::Truncated)?
            .to_vec();
        let enc = PublicKey::from_sec1(r.take(NENC)?).map_err(|_| ParseError::InvalidPoint)?;
        let ct_len = usize::from(r.u16()?);
        if !(NT + 1..=NT + MAX_VALUE_LEN).contains(&ct_len) {
            return Err(ParseError::InvalidCiphertextLength);
        }
        let ciphertext = r.take(ct_len)?.to_vec();
        if !r.bytes.is_empty() {
            return Err(ParseError::TrailingBytes);
        }
        Ok(Self {
            header,
            header_bytes,
            enc,
            ciphertext,
        })
    }

    /// The authenticated header. Authentic only once [`Opener::open`] has succeeded.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The header's exact bytes: the AAD the ciphertext is bound to.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }

    /// The encapsulated key.
    pub fn enc(&self) -> &PublicKey {
        &self.enc
    }

    /// The HPKE ciphertext (value plus tag).
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }
}

#[cfg(feature = "open")]
pub use opening::{OpenError, Opened, Opener, OpeningKey};

#[cfg(feature = "open")]
mod opening {
    use alloc::vec::Vec;
    use zeroize::Zeroizing;

    use super::{AEAD, Envelope, Header, INFO, ParseError};
    use crate::ecdh::{EcdhSecret, NativeBackend, PublicKey, SCALAR_LEN};
    use crate::hpke::{self, HpkeError};
    use crate::keyset::{KeyId, RecipientKey};
    use crate::secret::SecretValue;

    /// Why opening an envelope failed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    #[non_exhaustive]
    pub enum OpenError {
        /// The envelope is malformed; the variant names the check.
        #[error(transparent)]
        Parse(#[from] ParseError),
        /// No opening key has the envelope's key id (unknown or retired).
        #[error("no key with this key id")]
        UnknownKey,
        /// Decryption failed. A wrong key, an altered header and an altered ciphertext all look
        /// the same.
        #[error("envelope failed authentication")]
        Authentication,
        /// The value does not begin with the BIN hint or end with the last-four hint.
        #[error("hints do not match the value")]
        HintMismatch,
    }

    /// A recipient private key with its id. No `Debug`, no `Clone`; the scalar is wiped on drop.
    pub struct OpeningKey<S: EcdhSecret = NativeBackend> {
        kid: KeyId,
        scalar: Zeroizing<[u8; SCALAR_LEN]>,
        secret: S,
        public: PublicKey,
    }

    impl<S: EcdhSecret> OpeningKey<S> {
        /// Imports a private scalar (32 bytes, big-endian).
        pub fn from_scalar(kid: KeyId, scalar: &[u8; SCALAR_LEN]) -> Result<Self, HpkeError> {
            let secret = S::from_scalar(scalar)?;
            let public = secret.public_key()?;
            Ok(Self {
                kid,
                scalar: Zeroizing::new(*scalar),
                secret,
                public,
            })
        }

        /// Generates a new key.
        pub fn generate(kid: KeyId) -> Result<Self, HpkeError> {
            let mut scalar = Zeroizing::new([0u8; SCALAR_LEN]);
            for _ in 0..64 {
                getrandom::fill(scalar.as_mut_slice()).map_err(|_| HpkeError::Randomness)?;
                if let Ok(key) = Self::from_scalar(kid.clone(), &scalar) {
                    return Ok(key);
                }
            }
            Err(HpkeError::Randomness)
        }

        /// The key id.
        pub fn kid(&self) -> &KeyId {
            &self.kid
        }

        /// The public key.
        pub fn public_key(&self) -> &PublicKey {
            &self.public
        }

        /// The private scalar, for wrapping it under a key-encryption key. Handle with care.
        pub fn expose_scalar(&self) -> &[u8; SCALAR_LEN] {
            &self.scalar
        }

        /// The public half as a key-set entry.
        pub fn recipient(&self, not_before: u64, expires: u64) -> RecipientKey {
            RecipientKey {
                kid: self.kid.clone(),
                public_key: self.public,
                not_before,
                expires,
            }
        }
    }

    /// An opened envelope: its authenticated header and the value.
    #[derive(Debug)]
    pub struct Opened {
        /// The header, now authenticated.
        pub header: Header,
        /// The value; `Debug` redacts it.
        pub value: SecretValue,
    }

    /// Opens envelopes with a set of private keys, chosen by key id.
    pub struct Opener<S: EcdhSecret = NativeBackend> {
        keys: Vec<OpeningKey<S>>,
    }

    impl<S: EcdhSecret> Default for Opener<S> {
        fn default() -> Self {
            Self { keys: Vec::new() }
        }
    }

    impl<S: EcdhSecret> Opener<S> {
        /// An opener with no keys.
        pub fn new() -> Self {
            Self::default()
        }

        /// Adds a key; a key with the same id is replaced.
        pub fn insert(&mut self, key: OpeningKey<S>) {
            self.keys.retain(|k| k.kid != key.kid);
            self.keys.push(key);
        }

        /// Removes the key with this id (retirement); returns whether it was there.
        pub fn remove(&mut self, kid: &KeyId) -> bool {
            let before = self.keys.len();
            self.keys.retain(|k| &k.kid != kid);
            before != self.keys.len()
        }

        /// The keys.
        pub fn keys(&self) -> &[OpeningKey<S>] {
            &self.keys
        }

        /// Parses and opens an envelope's text form.
        pub fn open(&self, text: &str) -> Result<Opened, OpenError> {
            self.open_envelope(&Envelope::parse(text)?)
        }

        /// Opens a parsed envelope.
        pub fn open_envelope(&self, envelope: &Envelope) -> Result<Opened, OpenError> {
            let key = self
                .keys
                .iter()
                .find(|k| k.kid == envelope.header.key_id)
                .ok_or(OpenError::UnknownKey)?;
            let mut ctx = hpke::setup_base_recipient(
                AEAD,
                envelope.enc.as_bytes(),
                &key.secret,
                &key.public,
                INFO,
            )
            .map_err(|_| OpenError::Authentication)?;
            let value = ctx
                .open(&envelope.header_bytes, &envelope.ciphertext)
                .map_err(|_| OpenError::Authentication)?;
            if !envelope.header.hints.consistent_with(&value) {
                return Err(OpenError::HintMismatch);
            }
            Ok(Opened {
                header: envelope.header.clone(),
                value: SecretValue::from(value),
            })
        }
    }
}
