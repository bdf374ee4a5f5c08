//! Backups of a vault on SQLite: `backup` writes a consistent online snapshot with SQLite's backup
//! API while the vault serves; `restore` puts a snapshot in place of the database, after checking
//! its audit chain in full, and refuses a snapshot older than a head recorded elsewhere (the live
//! database's, or one an operator or SIEM kept from `audit head`) unless forced: restoring an
//! older snapshot rolls back revocations, retirements, deletions and erasures. Both are audited
//! (`vault.backup` in the database and its snapshot; `vault.restore` in the restored database).
//!
//! On PostgreSQL, use `pg_dump` of the vault's schema (see the README, "Backups"): the commands
//! here say so.

use std::path::{Path, PathBuf};

use fieldseal_vault_sqlite::{SqliteStore, Synchronous, copy_database};
use fieldseal_vault_store::audit::{Action, AuditDraft, ExpectedHead, Head, Outcome};
use fieldseal_vault_store::verify::verify_chain;
use fieldseal_vault_store::{Store, StoreError};

use crate::AnyStore;
use crate::admin::{Admin, AdminError};
use crate::config::Settings;
use crate::keys;
use crate::vault::{kek_from_settings, now};

const POSTGRES: &str = "the vault's database is PostgreSQL: back it up with pg_dump of the \
                        vault's schema and restore with pg_restore (see the README, Backups)";

/// What `restore` did.
#[derive(Debug)]
pub struct Restored {
    /// The restored snapshot's head.
    pub head: Head,
    /// Recorded heads the snapshot is older than, restored over with `force`.
    pub forced_over: Vec<String>,
    /// Why the live database's head could not be read, if it could not (then only an expected
    /// head given by the operator guards against an older snapshot).
    pub live_unchecked: Option<String>,
}

/// The SQLite file the settings name.
fn sqlite_path(settings: &Settings) -> Result<PathBuf, AdminError> {
    match settings.database_url().strip_prefix("sqlite://") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Err(AdminError::Backup(POSTGRES.into())),
    }
}

/// Opens a snapshot file (never the live database) and verifies its whole audit chain under this
/// vault's KEK; returns the store and its head.
async fn checked_snapshot(
    settings: &Settings,
    path: &Path,
    expect: Option<ExpectedHead>,
) -> Result<(SqliteStore, Head, Option<String>), AdminError> {
    let snap = SqliteStore::open(path, Synchronous::Normal)?;
    // A copy: taking the key text out of the settings is for the serving process's own.
    let kek = kek_from_settings(&mut settings.clone())?;
    let secrets = keys::load_secrets(&snap, kek.as_ref()).await?;
    let whole = verify_chain(&snap, &secrets.audit_key, None).await?;
    if let Some(b) = &whole.broken {
        return Err(AdminError::Backup(format!(
            "the snapshot's audit chain is broken at entry {}: {}",
            b.seq, b.reason
        )));
    }
    let head = whole
        .head
        .ok_or_else(|| AdminError::Backup("the snapshot has no anchored audit head".into()))?;
    let older = match expect {
        None => None,
        Some(e) => verify_chain(&snap, &secrets.audit_key, Some(e))
            .await?
            .broken
            .map(|b| b.reason),
    };
    Ok((snap, head, older))
}

/// Removes a SQLite file and its WAL and shared-memory files.
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Writes a consistent snapshot of the running vault's database to `dest` (a new file, mode
/// 0600), audited first so that the snapshot records its own making; returns the snapshot's
/// verified audit head, for the operator to keep with it.
pub async fn backup(settings: &Settings, dest: &Path) -> Result<Head, AdminError> {
    sqlite_path(settings)?;
    let admin = Admin::open(settings).await?;
    let AnyStore::Sqlite(store) = admin.store() else {
        return Err(AdminError::Backup(POSTGRES.into()));
    };
    if dest.exists() {
        return Err(AdminError::Backup(format!(
            "{} exists: a backup is written to a new file",
            dest.display()
        )));
    }
    store
        .append_audit(
            AuditDraft::new(
                now(),
                crate::admin::cli_actor(),
                Action::Backup,
                Outcome::Ok,
            )
            .detail(format!("to {}", dest.display())),
        )
        .await?;
    store.backup_to(dest).await?;
    let (snap, head, _) = checked_snapshot(settings, dest, None).await?;
    drop(snap);
    Ok(head)
}

/// Replaces the vault's database by `snapshot`: checks the snapshot's whole audit chain (a broken
/// one is never restored), then that it holds every recorded head: `expect` and the live
/// database's own head (if it has one that verifies). A snapshot older than one of them is
/// refused unless `force`. Stop every vault process first. The restore is audited in the restored
/// database.
pub async fn restore(
    settings: &Settings,
    snapshot: &Path,
    expect: Option<ExpectedHead>,
    force: bool,
) -> Result<Restored, AdminError> {
    let live = sqlite_path(settings)?;
    if !snapshot.is_file() {
        return Err(AdminError::Backup(format!(
            "no snapshot at {}",
            snapshot.display()
        )));
    }
    // The live database's head: the newest state this vault is known to have reached.
    let mut recorded: Vec<ExpectedHead> = expect.into_iter().collect();
    let mut live_unchecked = None;
    if live.exists() {
        match Admin::open(settings).await {
            Ok(admin) => match admin.audit_head().await {
                Ok(h) => recorded.push(ExpectedHead {
                    seq: h.seq,
                    hash: h.hash,
                }),
                Err(e) => live_unchecked = Some(e.to_string()),
            },
            Err(e) => live_unchecked = Some(e.to_string()),
        }
    }
    // Checked on a staging copy next to the database: the snapshot itself is left as it is.
    let mut staging = live.as_os_str().to_owned();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    remove_database(&staging);
    if let Some(dir) = live.parent() {
        fieldseal_vault_store::fs::create_private_dir(dir)?;
    }
    fieldseal_vault_store::fs::create_private_file(&staging)?;
    let result = async {
        copy_database(snapshot, &staging)?;
        let mut forced_over = Vec::new();
        let mut head = None;
        for r in &recorded {
            let (snap, h, older) = checked_snapshot(settings, &staging, Some(r.clone())).await?;
            drop(snap);
            head = Some(h.clone());
            if let Some(why) = older {
                let what = format!("{}:{}", r.seq, r.hash);
                if !force {
                    return Err(AdminError::Backup(format!(
                        "the snapshot (head {h}) does not hold the recorded head {what} ({why}): \
                         it is older, and restoring it would roll back what happened since \
                         (revocations, retirements, deletions, erasures); restore it anyway with \
                         --force"
                    )));
                }
                forced_over.push(what);
            }
        }
        let head = match head {
            Some(h) => h,
            None => checked_snapshot(settings, &staging, None).await?.1,
        };
        Ok::<_, AdminError>((head, forced_over))
    }
    .await;
    let (head, forced_over) = match result {
        Ok(r) => r,
        Err(e) => {
            remove_database(&staging);
            return Err(e);
        }
    };
    if !live.exists() {
        fieldseal_vault_store::fs::create_private_file(&live)?;
    }
    let copied = copy_database(&staging, &live);
    remove_database(&staging);
    copied?;
    let admin = Admin::open(settings).await?;
    let mut detail = format!("from {} (head {head})", snapshot.display());
    if !forced_over.is_empty() {
        detail.push_str(&format!(
            "; forced over the recorded head {}",
            forced_over.join(", ")
        ));
    }
    admin
        .store()
        .append_audit(
            AuditDraft::new(
                now(),
                crate::admin::cli_actor(),
                Action::Restore,
                Outcome::Ok,
            )
            .detail(detail),
        )
        .await
        .map_err(|e: StoreError| AdminError::Store(e))?;
    Ok(Restored {
        head,
        forced_over,
        live_unchecked,
    })
}
