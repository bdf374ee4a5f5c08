//! Key-encryption key providers: where the KEK lives and how keys are wrapped under it.
//!
//! - `file`: a 32-byte key in a file (base64url), outside the data directory unless the vault was
//!   made with `init --dev`.
//! - `env`: the same key in `FIELDSEAL_MASTER_KEY`.
//! - `pkcs11`: a non-extractable AES-256 key inside a PKCS#11 token (an HSM; SoftHSM2 in the
//!   tests). Wrapping and unwrapping are AES-256-GCM (`CKM_AES_GCM`) computed inside the token:
//!   the KEK never enters the vault's memory. The PIN comes from a file or
//!   `FIELDSEAL_PKCS11_PIN`, and is never logged.
//!
//! Every provider implements [`KekProvider`]; [`from_settings`] picks one.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use fieldseal_core::secret::SecretValue;
use zeroize::Zeroizing;

use crate::config::{KekKind, Settings};
use crate::keys::{KekProvider, KeyError, LocalKek};

/// Length of the GCM nonce of a token-wrapped key.
const IV_LEN: usize = 12;
/// Length of the GCM tag, in bits.
const TAG_BITS: u64 = 128;

/// The KEK provider the settings name. The master key text (`FIELDSEAL_MASTER_KEY`) is taken
/// out of `settings` and wiped once the key is loaded; a PKCS#11 PIN is read here from its file or
/// variable and kept only inside the provider.
pub fn from_settings(settings: &mut Settings) -> Result<Box<dyn KekProvider>, KeyError> {
    let kind = settings.kek_kind();
    settings.kek_provider = Some(kind);
    let text = settings.master_key.take();
    match kind {
        KekKind::Env => {
            let text = text.ok_or_else(|| {
                KeyError::NoMasterKey("kek_provider = \"env\" needs FIELDSEAL_MASTER_KEY".into())
            })?;
            Ok(Box::new(LocalKek::from_base64(
                text.expose(),
                "FIELDSEAL_MASTER_KEY",
            )?))
        }
        KekKind::File => Ok(Box::new(LocalKek::from_file(&settings.master_key_file())?)),
        KekKind::Pkcs11 => Ok(Box::new(Pkcs11Kek::from_settings(settings)?)),
    }
}

/// The PKCS#11 settings, checked.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The module (shared library) of the token's vendor.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The KEK's label inside the token.
    pub key_label: String,
}

impl std::fmt::Display for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pkcs11 token {:?} key {:?} via {}",
            self.token,
            self.key_label,
            self.module.display()
        )
    }
}

/// A KEK inside a PKCS#11 token.
pub struct Pkcs11Kek {
    config: Pkcs11Config,
    pin: AuthPin,
    /// The open session and the key's handle; `None` after the token was lost, reopened at the
    /// next use.
    conn: Mutex<Option<Conn>>,
}

struct Conn {
    session: Session,
    key: ObjectHandle,
}

/// Modules loaded in this process: PKCS#11 allows one `C_Initialize` per module and process, so
/// every provider on the same module shares it.
fn contexts() -> Result<std::sync::MutexGuard<'static, Vec<(PathBuf, Pkcs11)>>, String> {
    static CONTEXTS: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    CONTEXTS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .map_err(|_| "PKCS#11 module registry poisoned".to_owned())
}

/// Finalizes a module whose token went away, so that the next use initializes it afresh: a
/// module lists its slots and tokens at `C_Initialize`, and sees a token that came back only then.
/// Sessions other providers hold on it fail at their next use and reopen.
fn reset_context(module: &Path) {
    let Ok(mut loaded) = contexts() else { return };
    if let Some(i) = loaded.iter().position(|(p, _)| p == module) {
        let (_, ctx) = loaded.swap_remove(i);
        // Failing to finalize a module that lost its token changes nothing for the next start.
        let _ = ctx.finalize();
    }
}

fn context(module: &Path) -> Result<Pkcs11, String> {
    let mut loaded = contexts()?;
    if let Some((_, ctx)) = loaded.iter().find(|(p, _)| p == module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| format!("cannot load PKCS#11 module {}: {e}", module.display()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(format!("C_Initialize failed: {e}")),
    }
    loaded.push((module.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

impl Pkcs11Kek {
    /// The provider the settings describe, connected to its token (which must hold the key).
    pub fn from_settings(settings: &Settings) -> Result<Self, KeyError> {
        let kek = Self::configure(settings)?;
        kek.with_conn(|_| Ok(()))?;
        Ok(kek)
    }

    /// The provider the settings describe, not yet connected.
    pub fn configure(settings: &Settings) -> Result<Self, KeyError> {
        let config = settings.pkcs11_config()?;
        let pin = read_pin(settings)?;
        Ok(Self {
            config,
            pin,
            conn: Mutex::new(None),
        })
    }

    /// Makes the KEK inside the token unless a key with its label is there (a key made at a key
    /// ceremony); in both cases checks that it is a sensitive, non-extractable AES-256 key.
    /// Returns whether it was made now.
    pub fn ensure_key(&self) -> Result<bool, KeyError> {
        let session = self.open_session()?;
        let made = match find_key(&session, &self.config.key_label)? {
            Some(_) => false,
            None => {
                let template = [
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(self.config.key_label.as_bytes().to_vec()),
                ];
                session
                    .generate_key(&Mechanism::AesKeyGen, &template)
                    .map_err(|e| self.unavailable(&format!("generating the key failed: {e}")))?;
                true
            }
        };
        drop(session);
        self.with_conn(|_| Ok(()))?;
        Ok(made)
    }

    fn unavailable(&self, why: &str) -> KeyError {
        KeyError::KekUnavailable(format!("{}: {why}", self.config))
    }

    /// The slot holding the token, found afresh after a reset if the module does not list it.
    fn slot(&self) -> Result<(Pkcs11, cryptoki::slot::Slot), KeyError> {
        for attempt in 0..2 {
            let ctx = context(&self.config.module).map_err(|e| self.unavailable(&e))?;
            let slots = ctx
                .get_slots_with_token()
                .map_err(|e| self.unavailable(&format!("listing slots failed: {e}")))?;
            let found = slots.into_iter().find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == self.config.token)
            });
            match found {
                Some(slot) => return Ok((ctx, slot)),
                None if attempt == 0 => reset_context(&self.config.module),
                None => {}
            }
        }
        Err(self.unavailable("no token with this label"))
    }

    fn open_session(&self) -> Result<Session, KeyError> {
        let (ctx, slot) = self.slot()?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| self.unavailable(&format!("opening a session failed: {e}")))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(P11Error::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => Err(
                KeyError::KekUnavailable(format!("{}: the PIN was refused", self.config)),
            ),
            Err(e) => Err(self.unavailable(&format!("login failed: {e}"))),
        }
    }

    fn connect(&self) -> Result<Conn, KeyError> {
        let session = self.open_session()?;
        let key = find_key(&session, &self.config.key_label)?.ok_or_else(|| {
            self.unavailable("no such key in the token (run `fieldseal-vault init` or create it)")
        })?;
        check_key(&session, key)
            .map_err(|why| KeyError::KekUnsafe(format!("{}: {why}", self.config)))?;
        Ok(Conn { session, key })
    }

    /// Runs `op` on the open session, connecting first if needed. A failure other than a
    /// decryption that does not authenticate drops the session, so the next use reconnects: the
    /// vault resumes by itself once the token is back.
    fn with_conn<T>(&self, op: impl FnOnce(&Conn) -> Result<T, P11Error>) -> Result<T, KeyError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| self.unavailable("session lock poisoned"))?;
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        let Some(conn) = guard.as_ref() else {
            return Err(self.unavailable("not connected"));
        };
        match op(conn) {
            Ok(v) => Ok(v),
            Err(P11Error::Pkcs11(
                RvError::EncryptedDataInvalid
                | RvError::EncryptedDataLenRange
                | RvError::DataInvalid
                | RvError::DataLenRange,
                _,
            )) => Err(KeyError::WrongMasterKey),
            Err(e) => {
                *guard = None;
                Err(self.unavailable(&e.to_string()))
            }
        }
    }
}

fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, KeyError> {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| KeyError::KekUnavailable(format!("finding key {label:?} failed: {e}")))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(KeyError::KekUnsafe(format!(
            "{} keys are labelled {label:?} in the token: which one wraps this vault's keys is ambiguous",
            found.len()
        ))),
    }
}

/// The KEK must be an AES-256 key the token never lets out.
fn check_key(session: &Session, key: ObjectHandle) -> Result<(), String> {
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::KeyType,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::ValueLen,
            ],
        )
        .map_err(|e| format!("reading the key's attributes failed: {e}"))?;
    for a in attrs {
        match a {
            Attribute::KeyType(t) if t != KeyType::AES => return Err("not an AES key".into()),
            Attribute::Sensitive(false) => return Err("the key is not sensitive".into()),
            Attribute::Extractable(true) => {
                return Err("the key is extractable: make a non-extractable one".into());
            }
            Attribute::ValueLen(n) if u64::from(n) != 32 => {
                return Err("the key is not 256 bits".into());
            }
            _ => {}
        }
    }
    Ok(())
}

/// The PIN from `pkcs11_pin_file`, else `FIELDSEAL_PKCS11_PIN`.
fn read_pin(settings: &Settings) -> Result<AuthPin, KeyError> {
    let text = match &settings.pkcs11_pin_file {
        Some(path) => Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyError::NoMasterKey(format!("cannot read the PIN file {}: {e}", path.display()))
        })?),
        None => Zeroizing::new(std::env::var("FIELDSEAL_PKCS11_PIN").map_err(|_| {
            KeyError::NoMasterKey(
                "kek_provider = \"pkcs11\" needs pkcs11_pin_file or FIELDSEAL_PKCS11_PIN".into(),
            )
        })?),
    };
    let pin = text.trim_end_matches(['\r', '\n']);
    if pin.is_empty() {
        return Err(KeyError::NoMasterKey("the PKCS#11 PIN is empty".into()));
    }
    Ok(AuthPin::from(pin.to_owned()))
}

impl KekProvider for Pkcs11Kek {
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let iv: [u8; IV_LEN] =
            fieldseal_core::at_rest::random_bytes().map_err(|_| KeyError::Crypto)?;
        let sealed = self.with_conn(|c| {
            let mut nonce = iv;
            let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())?;
            c.session
                .encrypt(&Mechanism::AesGcm(params), c.key, plaintext)
        })?;
        let mut out = Vec::with_capacity(IV_LEN + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<SecretValue, KeyError> {
        if wrapped.len() < IV_LEN + 16 {
            return Err(KeyError::WrongMasterKey);
        }
        let (iv, sealed) = wrapped.split_at(IV_LEN);
        let plain = self.with_conn(|c| {
            let mut nonce = [0u8; IV_LEN];
            nonce.copy_from_slice(iv);
            let params = GcmParams::new(&mut nonce, aad, TAG_BITS.into())?;
            c.session.decrypt(&Mechanism::AesGcm(params), c.key, sealed)
        })?;
        Ok(SecretValue::from(Zeroizing::new(plain)))
    }

    fn describe(&self) -> String {
        self.config.to_string()
    }
}
