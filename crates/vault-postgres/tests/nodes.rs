//! Several stores (as several vault nodes hold them) on one schema: migrations applied once when
//! nodes start together, the purge run by one node at a time, one chain from all writers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fieldseal_vault_postgres::testing::{TestSchema, admin_rows};
use fieldseal_vault_postgres::{PgOptions, PgStore};
use fieldseal_vault_store::audit::{Action, Actor, AuditDraft, Outcome};
use fieldseal_vault_store::conformance::{audit_key, new_token};
use fieldseal_vault_store::verify::verify_chain;
use fieldseal_vault_store::{Store, StoreError};

fn node(schema: &TestSchema) -> PgStore {
    let s = PgStore::open(&schema.url(), PgOptions::default()).unwrap();
    s.set_audit_key(audit_key());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_apply_the_migrations_once() {
    let schema = TestSchema::new();
    let nodes: Vec<PgStore> = (0..6).map(|_| node(&schema)).collect();
    let mut starts = Vec::new();
    for n in &nodes {
        let n = n.clone();
        starts.push(tokio::spawn(async move { n.migrate().await }));
    }
    for s in starts {
        s.await.unwrap().unwrap();
    }
    let versions = admin_rows(&format!(
        // The table's integer column, not the text output column of the same name.
        "SELECT version::text FROM {}.schema_migrations m ORDER BY m.version",
        schema.name()
    ))
    .unwrap();
    // Every migration once: one version per file of migrations/.
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    let want: Vec<String> = (1..=files).map(|v| v.to_string()).collect();
    assert_eq!(versions, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_purge_runs_on_one_node_at_a_time() {
    let schema = TestSchema::new();
    let (a, b) = (node(&schema), node(&schema));
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    let first = AuditDraft::new(1, Actor::Cli, Action::SecretCreate, Outcome::Ok);
    assert!(
        a.begin_audit_log("audit-key", vec![1], first)
            .await
            .unwrap()
    );
    // 300 card security codes, all expired at time 1000.
    for batch in 0..3u8 {
        let items = (0..100u8)
            .map(|i| {
                let mut t = new_token(&format!("tok_{batch}_{i}"), "cvc", 0, b"ct");
                t.token.expires_at = Some(1000);
                let id = [batch, i, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7];
                t.envelope.id = id;
                t.audit.envelope = Some(t.envelope);
                t
            })
            .collect();
        a.insert_tokens(items).await.unwrap();
    }
    // Both nodes purge at once, several cycles: each token is deleted and audited exactly once
    // (in its batch's entry, whose count includes it).
    let mut purged = 0;
    for _ in 0..3 {
        let (x, y) = tokio::join!(a.purge(2000), b.purge(2000));
        purged += x.unwrap() + y.unwrap();
    }
    assert_eq!(purged, 300);
    let batches = admin_rows(&format!(
        "SELECT detail FROM {}.audit WHERE action = 'delete'",
        schema.name()
    ))
    .unwrap();
    let audited: usize = batches
        .iter()
        .map(|d| {
            d.strip_prefix("retention period over: ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("not a purge batch entry: {d}"))
        })
        .sum();
    assert_eq!(audited, 300, "{batches:?}");
    let v = verify_chain(&a, &audit_key(), None).await.unwrap();
    assert!(v.intact(), "{v:?}");
}

/// Every connection of the pool taken (requests stuck on a slow database): the next call fails
/// with `Unavailable` once the timeout has passed, instead of waiting; and works again once a
/// connection is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_pool_fails_within_the_timeout() {
    let schema = TestSchema::new();
    let options = PgOptions {
        pool_size: 2,
        timeout: std::time::Duration::from_millis(300),
    };
    // Migrated by another store with the default timeout: the bound under test is the pool's,
    // and the migrations alone may take longer than 3 x 300 ms on a busy machine.
    let setup = PgStore::open(&schema.url(), PgOptions::default()).unwrap();
    setup.migrate().await.unwrap();
    let s = PgStore::open(&schema.url(), options).unwrap();
    let held = s.hold_connections(2).await.unwrap();
    let asked = std::time::Instant::now();
    let err = s.token("tok_x", 0).await.unwrap_err();
    let waited = asked.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("pool exhausted"), "{err}");
    assert!(
        waited >= std::time::Duration::from_millis(250)
            && waited < std::time::Duration::from_secs(2),
        "{waited:?}"
    );
    drop(held);
    assert!(s.token("tok_x", 0).await.unwrap().is_none());
}
