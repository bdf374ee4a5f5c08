//! The vault's storage contract, with no database in it: the [`Store`] trait every backend
//! implements, the records it stores, [`StoreError`], the audit chain as pure logic (numbering,
//! hashing, MACs, the head check before every append, verification), and the authentication of
//! the rows a decision reads ([`rows`]). Backends (`fieldseal-vault-sqlite`, and PostgreSQL next)
//! hold only queries and migrations; everything that makes a row trustworthy lives here, once.
//!
//! ```
//! use fieldseal_core::at_rest::SymmetricKey;
//! use fieldseal_vault_store::audit::{Action, Actor, AuditChain, AuditDraft, Outcome};
//!
//! // A new log: the genesis append is the only one allowed on an empty log.
//! let chain = AuditChain::new(SymmetricKey::generate().unwrap());
//! let mut appender = chain.begin(None, None, None, true).unwrap();
//! let first = appender.append(&AuditDraft::new(1_800_000_000, Actor::Cli, Action::VaultInit, Outcome::Ok));
//! let head = appender.head();
//! // Every later append starts from the stored last entry and head, which must agree.
//! assert!(chain.begin(Some(&first), Some(&head), None, false).is_ok());
//! assert!(chain.begin(None, None, None, false).is_err(), "an emptied log is a break");
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
pub mod fs;
pub mod group;
pub mod records;
pub mod rows;
mod store;
pub mod verify;

pub use error::StoreError;
pub use records::{
    ApiKeyRecord, DataKeyRecord, HpkeKeyRecord, InsertOutcome, KeyUse, NewToken, OperatorLog,
    OperatorRecord, Reencrypted, SessionRecord, SubjectKeyRecord, TokenRecord,
};
pub use store::{PoolUse, Store};
