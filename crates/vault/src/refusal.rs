//! Why an item of a batch was refused: one enum with a stable `code()` and a message that never
//! holds a value, instead of strings assembled at each call site.

use fieldseal_core::envelope::{FieldKind, OpenError};
use fieldseal_vault_store::StoreError;
use serde::Serialize;

use crate::values::ValueError;

/// A refused tokenize or reveal item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Sealed to a key this vault does not hold (unknown or retired).
    UnknownKey,
    /// Sealed to a key past its expiry plus the freshness window.
    ExpiredKey,
    /// The envelope failed authentication.
    AuthenticationFailed,
    /// The envelope's public hints do not match its value.
    HintMismatch,
    /// The envelope does not parse (the parser's reason, which never quotes the value).
    Malformed(String),
    /// Older than the freshness window (seconds).
    Stale(i64),
    /// Created in the future, beyond the allowed clock skew.
    FutureDated,
    /// The role may not tokenize (or reveal) this kind.
    Forbidden {
        /// The role.
        role: String,
        /// What it may not do, e.g. `tokenize pan`.
        what: String,
    },
    /// The value is not valid for its kind.
    Value(ValueError),
    /// The token format is not offered for this value (why).
    UnsupportedFormat(&'static str),
    /// The envelope was already submitted.
    Replayed,
    /// No free format-preserving token for this number.
    TokenSpaceExhausted,
    /// `ttl_secs` is zero, or longer than the kind's retention period (seconds, if any).
    BadTtl(Option<i64>),
    /// `subject` is empty, longer than 256 characters, holds control characters, or is only white space.
    BadSubject,
    /// Not stored because another item of its all-or-nothing batch was refused; the envelope was
    /// not consumed.
    BatchAborted,
    /// No such token (unknown, expired, deleted, already used, or failing its integrity check).
    NotFound,
    /// The disk is full; nothing was stored.
    StorageFull,
    /// The database is busy; nothing was stored.
    StorageBusy,
    /// The database cannot be reached; nothing was stored.
    StorageUnavailable,
    /// Anything else; details in the log.
    Internal,
}

impl Refusal {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown_key",
            Self::ExpiredKey => "expired_key",
            Self::AuthenticationFailed => "authentication_failed",
            Self::HintMismatch => "hint_mismatch",
            Self::Malformed(_) => "malformed_envelope",
            Self::Stale(_) => "stale",
            Self::FutureDated => "future_dated",
            Self::Forbidden { .. } => "forbidden",
            Self::Value(e) => e.code(),
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::Replayed => "replayed",
            Self::TokenSpaceExhausted => "token_space_exhausted",
            Self::BadTtl(Some(_)) => "ttl_exceeds_retention",
            Self::BadTtl(None) => "ttl_invalid",
            Self::BadSubject => "subject_invalid",
            Self::BatchAborted => "batch_aborted",
            Self::NotFound => "not_found",
            Self::StorageFull => "storage_full",
            Self::StorageBusy => "storage_busy",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Internal => "internal",
        }
    }

    /// The human-readable message; never holds a value.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownKey => {
                "envelope is sealed to a key this vault does not hold (unknown or retired)".into()
            }
            Self::ExpiredKey => {
                "envelope is sealed to an expired key; reload the key set and seal again".into()
            }
            Self::AuthenticationFailed => "envelope failed authentication".into(),
            Self::HintMismatch => "envelope hints do not match its value".into(),
            Self::Malformed(why) if why.is_empty() => "malformed envelope".into(),
            Self::Malformed(why) => format!("malformed envelope: {why}"),
            Self::Stale(window) => format!("envelope is older than {window} seconds"),
            Self::FutureDated => "envelope creation time is in the future".into(),
            Self::Forbidden { role, what } => format!("role {role} may not {what}"),
            Self::Value(e) => e.to_string(),
            Self::UnsupportedFormat(why) => (*why).into(),
            Self::Replayed => "this envelope was already submitted".into(),
            Self::TokenSpaceExhausted => {
                "no free format-preserving token for this number; use a random token".into()
            }
            Self::BadTtl(Some(max)) => format!(
                "ttl_secs is longer than this kind's retention period ({max} seconds); nothing was \
                 stored"
            ),
            Self::BadTtl(None) => "ttl_secs must be at least 1; nothing was stored".into(),
            Self::BadSubject => {
                "subject must be 1 to 256 characters without control characters, not only white space; nothing was stored"
                    .into()
            }
            Self::BatchAborted => {
                "not stored: another item of this all-or-nothing batch was refused; this envelope \
                 was not consumed and can be submitted again with the others"
                    .into()
            }
            Self::NotFound => "no such token".into(),
            Self::StorageFull => {
                "the vault's storage is full; this envelope was not stored and can be submitted \
                 again"
                    .into()
            }
            Self::StorageBusy => {
                "the vault's storage is busy; this envelope was not stored and can be submitted \
                 again"
                    .into()
            }
            Self::StorageUnavailable => {
                "the vault's database cannot be reached; submit this envelope again (if it was \
                 stored as the connection was cut, the new submission answers replayed)"
                    .into()
            }
            Self::Internal => "internal error; this envelope was not stored".into(),
        }
    }

    /// The refusal for an opening failure.
    pub fn from_open(e: &OpenError) -> Self {
        match e {
            OpenError::UnknownKey => Self::UnknownKey,
            OpenError::Authentication => Self::AuthenticationFailed,
            OpenError::HintMismatch => Self::HintMismatch,
            OpenError::Parse(p) => Self::Malformed(p.to_string()),
            _ => Self::Malformed(String::new()),
        }
    }

    /// The per-item refusal for a storage failure that leaves the rest of the request standing.
    pub fn from_store(e: &StoreError) -> Self {
        match e {
            StoreError::Full => Self::StorageFull,
            StoreError::Busy => Self::StorageBusy,
            StoreError::Unavailable(why) => {
                tracing::error!(error = %why, "storage unavailable");
                Self::StorageUnavailable
            }
            other => {
                tracing::error!(error = %other, "storage error");
                Self::Internal
            }
        }
    }

    /// A forbidden kind.
    pub fn forbidden(role: &str, verb: &str, kind: FieldKind) -> Self {
        Self::Forbidden {
            role: role.into(),
            what: format!("{verb} {kind}"),
        }
    }
}

/// A per-item error as the API returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ItemError {
    /// Stable code.
    pub code: &'static str,
    /// Human-readable message; never holds a value.
    pub message: String,
}

impl From<Refusal> for ItemError {
    fn from(r: Refusal) -> Self {
        Self {
            code: r.code(),
            message: r.message(),
        }
    }
}
