//! Versioned data keys: the keys values are encrypted under at rest.
//!
//! Each version is a random AES-256 key stored wrapped under the KEK as `data-key:<id>`, with a
//! bookkeeping row counting the encryptions made under it. New values use the newest version;
//! older versions stay loaded so that every stored value keeps opening while a background
//! re-encryption moves them, in bounded batches, to the newest. A version is replaced
//! automatically before it reaches `data_key_max_encryptions` (default 2^30, a quarter of the
//! 2^32 NIST SP 800-38D allows one AES-GCM key with random 96-bit nonces), and on demand
//! (`keys rotate-data`). Every node counts its encryptions in memory and adds them to the
//! database every few seconds.
//!
//! Access to a data key goes through [`DataKeys::for_new_value`] (encrypting) and
//! [`DataKeys::get`] (decrypting) only.

use std::sync::{Arc, Mutex, RwLock};

use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_vault_store::audit::{Action, Actor, AuditDraft, Outcome};
use fieldseal_vault_store::{DataKeyRecord, Store};

use crate::keys::{KekProvider, KeyError};

/// The wrapped secret's name (and associated data) of data key `id`.
pub fn secret_name(id: i64) -> String {
    format!("data-key:{id}")
}

/// The data keys this node has unwrapped, and the encryptions it made under them that the
/// database has not counted yet.
#[derive(Default)]
pub struct DataKeys {
    keys: RwLock<Vec<(i64, Arc<SymmetricKey>)>>,
    pending: Mutex<Vec<(i64, i64)>>,
}

impl DataKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(i64, Arc<SymmetricKey>)>> {
        match self.keys.read() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The newest key, for a new value: its id and the key. Counts one encryption.
    pub fn for_new_value(&self) -> Option<(i64, Arc<SymmetricKey>)> {
        let (id, key) = self.read().last().map(|(id, k)| (*id, Arc::clone(k)))?;
        self.count(id, 1);
        Some((id, key))
    }

    /// The key of version `id`, if loaded: for opening a value stored under it.
    pub fn get(&self, id: i64) -> Option<Arc<SymmetricKey>> {
        self.read()
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, k)| Arc::clone(k))
    }

    /// The newest version loaded.
    pub fn current(&self) -> Option<i64> {
        self.read().last().map(|(id, _)| *id)
    }

    /// Whether version `id` is loaded.
    pub fn has(&self, id: i64) -> bool {
        self.read().iter().any(|(k, _)| *k == id)
    }

    fn insert(&self, id: i64, key: SymmetricKey) {
        let mut keys = match self.keys.write() {
            Ok(k) => k,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !keys.iter().any(|(k, _)| *k == id) {
            keys.push((id, Arc::new(key)));
            keys.sort_by_key(|(k, _)| *k);
        }
    }

    /// Counts `n` encryptions under `id`, to be added to the database.
    pub fn count(&self, id: i64, n: i64) {
        let mut pending = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        match pending.iter_mut().find(|(k, _)| *k == id) {
            Some((_, c)) => *c = c.saturating_add(n),
            None => pending.push((id, n)),
        }
    }

    /// Adds the encryptions counted since the last call to the database. On failure they are
    /// kept for the next call.
    pub async fn flush<S: Store>(&self, store: &S) -> Result<(), KeyError> {
        let taken = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for (i, (id, n)) in taken.iter().enumerate() {
            if let Err(e) = store.count_encryptions(*id, *n).await {
                for (id, n) in taken.iter().skip(i) {
                    self.count(*id, *n);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Unwraps the versions the database lists that this node has not loaded yet; returns the
    /// bookkeeping rows.
    pub async fn load_new<S: Store>(
        &self,
        store: &S,
        kek: &dyn KekProvider,
    ) -> Result<Vec<DataKeyRecord>, KeyError> {
        let records = store.data_keys().await?;
        for r in &records {
            if self.has(r.id) {
                continue;
            }
            let name = secret_name(r.id);
            let wrapped = store
                .secret(&name)
                .await?
                .ok_or_else(|| KeyError::Damaged(name.clone()))?;
            let plain = kek.unwrap(&wrapped, name.as_bytes())?;
            let key = SymmetricKey::from_bytes(plain.expose())
                .map_err(|_| KeyError::Damaged(name.clone()))?;
            self.insert(r.id, key);
        }
        Ok(records)
    }
}

/// Makes data key version `after + 1` (wrapped under the KEK, audited as `datakey.rotate` with
/// `why`); if another node made that version first, keeps theirs. Returns the version.
pub async fn rotate<S: Store>(
    store: &S,
    kek: &dyn KekProvider,
    after: i64,
    (now, actor, why): (i64, Actor, &str),
) -> Result<i64, KeyError> {
    let id = after.saturating_add(1);
    let key = SymmetricKey::generate().map_err(|_| KeyError::Crypto)?;
    let name = secret_name(id);
    let wrapped = kek.wrap(key.expose(), name.as_bytes())?;
    let audit = AuditDraft::new(now, actor, Action::DataKeyRotate, Outcome::Ok)
        .detail(format!("{name}: {why}"));
    store.add_data_key(id, wrapped, audit).await?;
    Ok(id)
}
