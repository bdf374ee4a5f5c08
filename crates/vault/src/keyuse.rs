//! Key uses, for the key inventory (`keys status`: use count and last use of every key, PCI DSS
//! 3.6/3.7 custodians' evidence that a retired key is no longer used). Each node counts in memory
//! (a map lookup per use) and adds its counts to the database with its key upkeep, every few
//! seconds; a node killed loses at most those seconds of counts. Bookkeeping only: not
//! authenticated, and nothing depends on it.

use std::collections::HashMap;
use std::sync::Mutex;

use fieldseal_vault_store::{KeyUse, Store, StoreError};

/// Counted uses by kind, then key id: (count, last use).
type Counted = HashMap<&'static str, HashMap<String, (i64, i64)>>;

/// Uses counted since the last flush.
#[derive(Default)]
pub struct KeyUses {
    pending: Mutex<Counted>,
}

impl KeyUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counted> {
        match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Counts one use of key `id` of `kind` at `t`.
    pub fn record(&self, kind: &'static str, id: &str, t: i64) {
        self.add(kind, id, 1, t);
    }

    fn add(&self, kind: &'static str, id: &str, n: i64, t: i64) {
        let mut pending = self.lock();
        let by_id = pending.entry(kind).or_default();
        match by_id.get_mut(id) {
            Some((count, last)) => {
                *count = count.saturating_add(n);
                *last = (*last).max(t);
            }
            None => {
                by_id.insert(id.to_owned(), (n, t));
            }
        }
    }

    /// Adds the counted uses to the database; kept for the next flush if that fails.
    pub async fn flush<S: Store>(&self, store: &S) -> Result<(), StoreError> {
        let taken = std::mem::take(&mut *self.lock());
        let uses: Vec<KeyUse> = taken
            .iter()
            .flat_map(|(kind, ids)| {
                ids.iter().map(|(id, &(uses, last_used_at))| KeyUse {
                    kind: (*kind).to_owned(),
                    id: id.clone(),
                    uses,
                    last_used_at,
                })
            })
            .collect();
        if uses.is_empty() {
            return Ok(());
        }
        if let Err(e) = store.record_key_uses(uses).await {
            for (kind, ids) in taken {
                for (id, (n, t)) in ids {
                    self.add(kind, &id, n, t);
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uses_add_up_per_key_and_keep_the_latest() {
        let k = KeyUses::default();
        k.record("hpke", "a", 10);
        k.record("hpke", "a", 5);
        k.record("data", "data-key:1", 7);
        let p = k.lock();
        assert_eq!(p["hpke"]["a"], (2, 10));
        assert_eq!(p["data"]["data-key:1"], (1, 7));
    }
}
