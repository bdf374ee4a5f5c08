//! fieldseal-vault opens envelopes sealed in the browser, stores the values encrypted, issues
//! tokens, and reveals values only to authorized roles, auditing every access in a hash chain.
//!
//! The binary `fieldseal-vault` wraps this library (`init`, `serve`, `keys`, `apikey`, `audit`):
//! it parses arguments and prints what [`admin`] returns. Storage is a layer below: the store
//! trait, records and the audit chain in `fieldseal-vault-store` (re-exported as [`store`]), the
//! embedded SQLite backend in `fieldseal-vault-sqlite` ([`sqlite`]) and the PostgreSQL backend for
//! several nodes in `fieldseal-vault-postgres` ([`postgres`]), one of them chosen at start from the
//! database URL's scheme ([`AnyStore`]).
//! Tests and embedders start the real server with [`http::serve`] on any listener:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fieldseal_vault::{config::Settings, http, vault::Vault};
//!
//! let settings = Settings::load(None)?;            // vault.toml / FIELDSEAL_* variables
//! let vault = Arc::new(Vault::open(settings).await?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! http::serve(listener, vault, http::shutdown_signal()).await?;
//! # Ok(()) }
//! ```
//!
//! All cryptography comes from `fieldseal-core`; this crate holds none of its own.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod alerts;
pub mod anomaly;
pub mod apikeys;
pub mod backend;
pub mod backup;
pub mod batch;
pub mod client;
pub mod config;
pub mod datakeys;
pub mod denials;
pub mod fields;
pub mod forward;
pub mod http;
pub mod kek;
pub mod keys;
pub mod keyuse;
pub mod listener;
pub mod locks;
pub mod lookup;
pub mod metrics;
pub mod openapi;
pub mod operators;
pub mod overload;
pub mod policy;
pub mod ratelimit;
pub mod refusal;
pub mod retention;
pub mod subjects;
pub mod tls;
pub mod values;
pub mod vault;

pub use backend::AnyStore;
pub use fieldseal_vault_postgres as postgres;
pub use fieldseal_vault_sqlite as sqlite;
pub use fieldseal_vault_store as store;
