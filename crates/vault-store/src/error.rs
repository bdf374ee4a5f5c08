//! The storage error every backend maps its database's errors into.

use crate::audit::Broken;

/// Why a storage operation failed. Nothing was written by an operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The disk (or the configured size cap) is full: nothing was written.
    #[error("storage is full")]
    Full,
    /// The database is locked by another process for too long.
    #[error("storage is busy")]
    Busy,
    /// The database cannot be reached (down, restarting, unreachable, no connection free in the
    /// pool in time, no answer within the configured timeout). Nothing was written unless the
    /// connection was cut while a commit was under way, which no client can tell apart. Service
    /// resumes by itself when the database answers again.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The audit chain failed its check before an append: nothing that must be audited can be
    /// done until an operator has looked (fail closed).
    #[error("audit log broken at entry {}: {}", .0.seq, .0.reason)]
    AuditBroken(Broken),
    /// The database's schema or migration record was changed outside the vault (a trigger, a
    /// view, an altered table): nothing is written until an operator has looked (fail closed).
    #[error("database tampered with: {0}")]
    Tampered(String),
    /// The database was made by a version of the vault this one cannot safely read.
    #[error("incompatible database: {0}")]
    Incompatible(String),
    /// Anything else the database reported.
    #[error("storage error: {0}")]
    Database(String),
}
