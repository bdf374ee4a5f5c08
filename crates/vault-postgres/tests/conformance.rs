//! The store conformance suite on the test PostgreSQL, a schema of its own per case.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use fieldseal_vault_postgres::testing::{TestSchema, admin_rows, admin_sql};
use fieldseal_vault_postgres::{PgOptions, PgStore};
use fieldseal_vault_store::Store;
use fieldseal_vault_store::conformance::Backend;

/// The schemas a case made, and the small file systems its `fill` mounted; all removed at the
/// end of the case.
#[derive(Default)]
struct Postgres {
    schemas: Mutex<Vec<(TestSchema, PgStore)>>,
    mounts: Mutex<Vec<(String, String)>>,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Schemas first (their tables may live in a mounted tablespace), then the tablespaces.
        self.schemas.lock().map(|mut s| s.clear()).ok();
        for (space, dir) in self.mounts.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = admin_sql(&format!("DROP TABLESPACE IF EXISTS {space}"));
            let _ = std::process::Command::new("umount").arg(&dir).status();
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

impl Backend for Postgres {
    type S = PgStore;

    async fn fresh(&self) -> PgStore {
        let schema = TestSchema::new();
        let s = PgStore::open(&schema.url(), PgOptions::default()).unwrap();
        s.migrate().await.unwrap();
        self.schemas.lock().unwrap().push((schema, s.clone()));
        s
    }

    /// Moves the store's tables into a tablespace on a 1 MiB tmpfs: the next large write fails
    /// as on a full disk (SQLSTATE 53100), as it would on a full volume in production.
    async fn fill(&self, store: &PgStore) {
        static N: AtomicU32 = AtomicU32::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_stale_tablespaces);
        let schema = store.schema().to_owned();
        let tag = format!(
            "{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let space = format!("fieldseal_full_{tag}");
        let dir = std::env::temp_dir().join(format!("fieldseal-full-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.to_string_lossy().into_owned();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", &dir])
            .status()
            .expect("mount");
        assert!(mounted.success(), "mounting a small tmpfs needs root");
        self.mounts
            .lock()
            .unwrap()
            .push((space.clone(), dir.clone()));
        let owner = admin_rows("SELECT current_setting('data_directory')").unwrap();
        let status = std::process::Command::new("chown")
            .arg("--reference")
            .arg(&owner[0])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        admin_sql(&format!("CREATE TABLESPACE {space} LOCATION '{dir}'")).unwrap();
        admin_sql(&format!(
            "ALTER TABLE {schema}.tokens SET TABLESPACE {space}; ALTER TABLE {schema}.audit SET \
             TABLESPACE {space}"
        ))
        .unwrap();
    }

    async fn raw_contains(&self, _store: &PgStore, _needle: &[u8]) -> bool {
        unreachable!("erases_deleted_bytes says no")
    }

    fn erases_deleted_bytes(&self) -> Result<(), &'static str> {
        Err(
            "PostgreSQL leaves a deleted row's bytes in the page's free space until the space is \
             reused (VACUUM does not zero it) and in WAL segments until they are recycled; see \
             docs/threat-model.md",
        )
    }
}

/// Drops the tablespaces (and unmounts the file systems) a killed run of this suite left.
fn sweep_stale_tablespaces() {
    let spaces = admin_rows(
        "SELECT spcname::text || ' ' || pg_tablespace_location(oid) FROM pg_tablespace WHERE \
         starts_with(spcname::text, 'fieldseal_full_')",
    )
    .unwrap_or_default();
    for line in spaces {
        let (space, dir) = line.split_once(' ').unwrap_or((&line, ""));
        let pid = space
            .trim_start_matches("fieldseal_full_")
            .split('_')
            .next();
        if pid.is_some_and(|p| !std::path::Path::new("/proc").join(p).exists()) {
            let _ = admin_sql(&format!("DROP TABLESPACE IF EXISTS {space}"));
            let _ = std::process::Command::new("umount").arg(dir).status();
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fieldseal_vault_store::conformance_tests!(Postgres::default());
