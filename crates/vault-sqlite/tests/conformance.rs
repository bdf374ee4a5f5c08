//! The store conformance suite on a real SQLite file per case.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use fieldseal_vault_sqlite::{SqliteStore, Synchronous};
use fieldseal_vault_store::Store;
use fieldseal_vault_store::conformance::Backend;

struct Sqlite;

fn fresh_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fieldseal-conformance-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("vault.db")
}

impl Backend for Sqlite {
    type S = SqliteStore;

    async fn fresh(&self) -> SqliteStore {
        let s = SqliteStore::open(&fresh_path(), Synchronous::Normal).unwrap();
        s.migrate().await.unwrap();
        s
    }

    async fn fill(&self, store: &SqliteStore) {
        let pages = store.page_count().await.unwrap();
        store.limit_pages(pages + 2).await.unwrap();
    }

    async fn raw_contains(&self, store: &SqliteStore, needle: &[u8]) -> bool {
        let base = store.path().to_path_buf();
        let mut files = vec![base.clone()];
        for suffix in ["-wal", "-journal"] {
            let mut p = base.clone().into_os_string();
            p.push(suffix);
            files.push(PathBuf::from(p));
        }
        files.iter().any(|f| {
            std::fs::read(f)
                .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
    }
}

fieldseal_vault_store::conformance_tests!(Sqlite);
