//! The fieldseal browser SDK's wasm surface: thin `#[wasm_bindgen]` adapters that let a checkout page
//! load the vault's key set and seal field values into envelope v1 with fieldseal-core.
//!
//! Only the sealing side is compiled in: this crate depends on fieldseal-core without its `open`
//! feature, so the shipped wasm cannot open an envelope.
//!
//! ```
//! # use fieldseal_core::{ecdh::{EcdhSecret, P256}, keyset::{KeyId, KeySet, RecipientKey}};
//! # let pk = P256::from_scalar(&[7; 32]).unwrap().public_key().unwrap();
//! # let key = RecipientKey { kid: KeyId::new("k1").unwrap(), public_key: pk, not_before: 0, expires: 2 };
//! # let json = KeySet::new(vec![key], 1).unwrap().to_json();
//! // In the page, from JavaScript: `const keys = Keys.parse(json); new Prepared(keys).seal(...)`.
//! let keys = fieldseal::Keys::parse_native(&json).unwrap();
//! assert_eq!(keys.primary_kid(), "k1");
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use fieldseal_core::envelope::{FieldKind, PreparedContext, SealParams};
use fieldseal_core::keyset::{KeySet, KeySetError};
use wasm_bindgen::prelude::*;

/// A validated key set (see `fieldseal_core::keyset`).
#[wasm_bindgen]
pub struct Keys(KeySet);

#[wasm_bindgen]
impl Keys {
    /// Parses and validates a key-set document.
    pub fn parse(json: &str) -> Result<Keys, JsError> {
        Self::parse_native(json).map_err(|e| JsError::new(&e.to_string()))
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
    pub fn parse_native(json: &str) -> Result<Keys, KeySetError> {
        KeySet::parse(json).map(Keys)
    }
}

/// A sealing context prepared ahead of time for the key set's primary key: the ECDH is done, so
/// sealing is symmetric work only. It seals one value; a second call is refused.
#[wasm_bindgen]
pub struct Prepared(Option<PreparedContext>);

#[wasm_bindgen]
impl Prepared {
    /// Prepares a context for the primary key of `keys`.
    #[wasm_bindgen(constructor)]
    pub fn new(keys: &Keys) -> Result<Prepared, JsError> {
        PreparedContext::prepare(keys.0.primary())
            .map(|ctx| Prepared(Some(ctx)))
            .map_err(|e| JsError::new(&e.to_string()))
    }

    /// Seals `value` as a field of `kind` (`pan`, `cvc`, `exp`, `email` ...) stamped with
    /// `created_at` (seconds, server time) and returns the envelope text.
    pub fn seal(&mut self, value: &str, kind: &str, created_at: f64) -> Result<String, JsError> {
        let ctx = self
            .0
            .take()
            .ok_or_else(|| JsError::new("sealing context already used"))?;
        let kind: FieldKind = kind
            .parse()
            .map_err(|e: fieldseal_core::envelope::SealError| JsError::new(&e.to_string()))?;
        if !(created_at.is_finite() && created_at >= 0.0 && created_at <= 2f64.powi(53)) {
            return Err(JsError::new(
                "created_at must be a non-negative whole number of seconds",
            ));
        }
        // Checked above: finite, non-negative and exactly representable.
        let params = SealParams::new(kind, created_at as u64);
        ctx.seal(value.as_bytes(), &params)
            .map_err(|e| JsError::new(&e.to_string()))
    }
}
