//! The `fieldseal-vault` binary end to end, as an operator runs it: `init`, `apikey create`, `serve`
//! (real process, real HTTP), a graceful stop, `audit verify` and `audit export`; then proof that no
//! test card number, e-mail or API key secret reached the logs or, in the clear, the database files;
//! and that changing one byte of one audit row in the SQLite file is caught and named.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Command;

use common::bin::{ok, start, vault};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::envelope::FieldKind;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const MC2: &str = "2223003122003222";
const EMAIL: &str = "leak.check@example.com";
const PURPOSE: &str = "dispute-7781-zq";

/// POSTs JSON with an API key and returns the JSON answer (`null` if it is not JSON).
async fn post(
    http: &reqwest::Client,
    url: &str,
    key: impl std::fmt::Display,
    body: &Value,
) -> Value {
    http.post(url)
        .header("authorization", format!("Bearer {key}"))
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn operator_flow_leaves_no_value_in_logs_or_database_and_catches_audit_tampering() {
    let tmp = TempDir::new("cli");
    let dir = tmp.0.join("data");

    // init: data directory, master key file (owner-only, outside the data directory), first
    // key. A second init refuses.
    let out = ok(&vault(&dir, &["init"]));
    assert!(!dir.join("master.key").exists());
    assert!(out.contains("first key:"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(common::bin::kek_file(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "master.key is readable by others");
        let mode = std::fs::metadata(dir.join("vault.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "vault.db is readable by others");
    }
    assert!(!vault(&dir, &["init"]).status.success());

    let checkout = ok(&vault(&dir, &["apikey", "create", "--role", "checkout"]))
        .trim()
        .to_owned();
    let payments = ok(&vault(
        &dir,
        &["apikey", "create", "--role", "payments", "--label", "jobs"],
    ))
    .trim()
    .to_owned();
    let support = ok(&vault(&dir, &["apikey", "create", "--role", "support"]))
        .trim()
        .to_owned();
    assert!(checkout.starts_with("fsk_"));
    assert!(
        !vault(&dir, &["apikey", "create", "--role", "root"])
            .status
            .success()
    );
    let list = ok(&vault(&dir, &["apikey", "list"]));
    assert!(list.contains("payments") && list.contains("jobs"));
    assert!(
        !list.contains(&checkout[17..]),
        "apikey list shows a secret"
    );
    let shown = ok(&vault(&dir, &["settings"]));
    assert!(shown.contains("data_dir"));

    let log = tmp.0.join("serve.log");
    let (mut child, base) = start(&dir, &log);
    let http = reqwest::Client::new();
    let ks = key_set(&http, &base).await;
    let t = ks.server_time();
    let items = json!({ "items": [
        { "envelope": seal_to(&ks, FieldKind::Pan, VISA, t) },
        { "envelope": seal_to(&ks, FieldKind::Pan, MC2, t), "format": "format_preserving" },
        { "envelope": seal_to(&ks, FieldKind::Email, EMAIL, t) },
        { "envelope": seal_to(&ks, FieldKind::Pan, "4111111111111112", t) },
    ]});
    let r = post(&http, &format!("{base}/v1/tokenize"), &checkout, &items).await;
    let tokens: Vec<String> = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|x| x["token"].as_str().unwrap().to_owned())
        .collect();
    for who in [&payments, &support, &checkout] {
        let _ = post(
            &http,
            &format!("{base}/v1/detokenize"),
            who,
            &json!({ "tokens": tokens, "purpose": PURPOSE }),
        )
        .await;
    }
    let _ = post(
        &http,
        &format!("{base}/v1/detokenize"),
        format!("{}{}", &payments[..20], "A".repeat(payments.len() - 20)),
        &json!({ "tokens": tokens, "purpose": PURPOSE }),
    )
    .await;
    let status = http
        .delete(format!("{base}/v1/tokens/{}", tokens[0]))
        .bearer_auth(&payments)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);

    // Graceful stop on SIGTERM.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        child.wait().unwrap().success(),
        "serve did not exit cleanly on SIGTERM"
    );

    let verify = ok(&vault(&dir, &["audit", "verify"]));
    assert!(verify.contains("intact"), "{verify}");
    let export_path = tmp.0.join("audit.jsonl");
    ok(&vault(
        &dir,
        &["audit", "export", "--output", export_path.to_str().unwrap()],
    ));
    let export = std::fs::read_to_string(&export_path).unwrap();
    let entries: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reveal = entries
        .iter()
        .find(|e| e["action"] == "reveal" && e["purpose"] == PURPOSE && e["outcome"] == "plain")
        .expect("a plain reveal with its purpose is audited");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "auth" && e["outcome"] == "denied")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "delete" && e["outcome"] == "ok")
    );

    // No value, spaced or not, and no API key secret anywhere.
    let mut files = vec![log.clone(), export_path.clone()];
    for name in ["vault.db", "vault.db-wal", "vault.db-shm"] {
        if dir.join(name).exists() {
            files.push(dir.join(name));
        }
    }
    let needles = [
        VISA.to_owned(),
        "4111 1111 1111 1111".into(),
        MC2.to_owned(),
        "4111111111111112".into(),
        EMAIL.to_owned(),
        checkout[17..].to_owned(),
        payments[17..].to_owned(),
        // Nor the KEK, in the clear or as its file's text.
        std::fs::read_to_string(common::bin::kek_file(&dir))
            .unwrap()
            .trim()
            .to_owned(),
    ];
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for n in &needles {
            assert!(
                !contains(&bytes, n),
                "{} contains a secret value",
                f.display()
            );
        }
    }
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("\"route\":\"/v1/detokenize\""),
        "access log missing"
    );

    // Change one byte of one audit row in the file: verify names that entry.
    let db = dir.join("vault.db");
    assert!(
        !dir.join("vault.db-wal").exists()
            || std::fs::metadata(dir.join("vault.db-wal")).unwrap().len() == 0
    );
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes
        .windows(PURPOSE.len())
        .position(|w| w == PURPOSE.as_bytes())
        .expect("purpose stored in the audit table");
    bytes[at + 8] ^= 0x01; // "dispute-7781-zq" becomes "dispute-6781-zq"
    std::fs::write(&db, &bytes).unwrap();
    let out = vault(&dir, &["audit", "verify"]);
    assert!(!out.status.success(), "tampered chain verified");
    let text = String::from_utf8_lossy(&out.stdout);
    // Which entry was hit: the one whose purpose now reads differently.
    let tampered_export = tmp.0.join("tampered.jsonl");
    ok(&vault(
        &dir,
        &[
            "audit",
            "export",
            "--output",
            tampered_export.to_str().unwrap(),
        ],
    ));
    let hit = std::fs::read_to_string(&tampered_export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["purpose"] == "dispute-6781-zq")
        .expect("the changed row");
    let seq = hit["seq"].as_i64().unwrap();
    assert!(
        text.contains(&format!("BROKEN at entry {seq}:")),
        "verify did not name entry {seq}: {text}"
    );
    let _ = reveal;

    // Restore the byte, then cut the newest two entries off: the anchored head catches it.
    bytes[at + 8] ^= 0x01;
    std::fs::write(&db, &bytes).unwrap();
    assert!(ok(&vault(&dir, &["audit", "verify"])).contains("intact"));
    let total = entries.len() as i64;
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute("DELETE FROM audit WHERE seq > ?1", [total - 2])
        .unwrap();
    drop(conn);
    let out = vault(&dir, &["audit", "verify"]);
    assert!(!out.status.success(), "a truncated log verified");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("BROKEN at entry {}:", total - 1)) && text.contains("cut short"),
        "{text}"
    );
}

#[tokio::test]
async fn a_killed_process_loses_no_committed_token() {
    let tmp = TempDir::new("kill");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let checkout = ok(&vault(&dir, &["apikey", "create", "--role", "checkout"]))
        .trim()
        .to_owned();
    let payments = ok(&vault(&dir, &["apikey", "create", "--role", "payments"]))
        .trim()
        .to_owned();
    let log = tmp.0.join("serve.log");
    let (mut child, base) = start(&dir, &log);
    let http = reqwest::Client::new();
    let ks = key_set(&http, &base).await;
    let env = seal_to(&ks, FieldKind::Pan, VISA, ks.server_time());
    let r = post(
        &http,
        &format!("{base}/v1/tokenize"),
        &checkout,
        &json!({ "items": [{ "envelope": env }] }),
    )
    .await;
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();
    child.kill().unwrap(); // SIGKILL: no shutdown path runs
    child.wait().unwrap();

    let (mut child, base) = start(&dir, &log);
    let r = post(
        &http,
        &format!("{base}/v1/detokenize"),
        &payments,
        &json!({ "tokens": [token], "purpose": "after crash" }),
    )
    .await;
    assert_eq!(r["results"][0]["value"], VISA);
    let r = post(
        &http,
        &format!("{base}/v1/tokenize"),
        &checkout,
        &json!({ "items": [{ "envelope": env }] }),
    )
    .await;
    assert_eq!(r["results"][0]["error"]["code"], "replayed");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(ok(&vault(&dir, &["audit", "verify"])).contains("intact"));
}

#[tokio::test]
async fn the_next_key_is_published_ahead_of_use_and_keys_pins_prints_every_published_key() {
    let tmp = TempDir::new("pins");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let out = ok(&vault(&dir, &["keys", "rotate", "--ahead-hours", "48"]));
    assert!(out.contains("next key"), "{out}");
    let listed = ok(&vault(&dir, &["keys", "list"]));
    assert!(
        listed.contains("primary") && listed.contains("next"),
        "{listed}"
    );

    // The pins: a JSON array on standard output, one RFC 7638 thumbprint per published key.
    let pins: Vec<String> = serde_json::from_str(&ok(&vault(&dir, &["keys", "pins"]))).unwrap();
    assert_eq!(pins.len(), 2);

    // GET /v1/keys publishes both; the primary stays the current key until the next one's nbf.
    let (mut child, base) = start(&dir, &tmp.0.join("vault.log"));
    let ks = key_set(&reqwest::Client::new(), &base).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(ks.keys().len(), 2);
    let next = ks
        .keys()
        .iter()
        .find(|k| k.kid != ks.primary().kid)
        .unwrap();
    assert!(next.not_before >= ks.server_time() + 47 * 3600);
    let mut served: Vec<String> = ks
        .keys()
        .iter()
        .map(|k| {
            fieldseal_core::keyset::KeyId::thumbprint(&k.public_key)
                .as_str()
                .to_owned()
        })
        .collect();
    let mut printed = pins.clone();
    served.sort();
    printed.sort();
    assert_eq!(served, printed, "the pins are the served keys' thumbprints");
}

#[test]
fn the_current_key_cannot_be_retired_while_the_only_other_key_is_not_valid_yet() {
    let tmp = TempDir::new("retire-ahead");
    let dir = tmp.0.join("data");
    let first = ok(&vault(&dir, &["init"]));
    let current = first
        .lines()
        .find_map(|l| l.trim().strip_prefix("first key:"))
        .unwrap()
        .trim()
        .to_owned();
    let out = ok(&vault(&dir, &["keys", "rotate", "--ahead-hours", "48"]));
    let next = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(',')
        .to_owned();
    assert_ne!(current, next);

    // The next key is published but not valid for 48 hours: retiring the current key would leave
    // the key set without a primary, so it is refused, and the current key stays the primary.
    let refused = vault(&dir, &["keys", "retire", &current]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("no other key is valid now"), "{err}");
    let listed = ok(&vault(&dir, &["keys", "list"]));
    let status = |kid: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(kid))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(status(&current), "primary", "{listed}");
    assert_eq!(status(&next), "next", "{listed}");

    // The next key itself can be withdrawn (a pin list that lost it, say): the current key stays.
    ok(&vault(&dir, &["keys", "retire", &next]));
    assert!(!vault(&dir, &["keys", "retire", &current]).status.success());
    // Once a key valid now exists besides it, the current key can go.
    ok(&vault(&dir, &["keys", "rotate"]));
    ok(&vault(&dir, &["keys", "retire", &current]));
}

/// `serve` with `metrics_listen` opens a second listener for `GET /metrics` and says where;
/// without it there is none.
#[tokio::test]
async fn serve_opens_the_metrics_listener_only_when_asked() {
    use std::io::{BufRead, BufReader};
    let tmp = TempDir::new("cli-metrics");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let mut child = common::bin::command(&dir)
        .env("FIELDSEAL_METRICS_LISTEN", "127.0.0.1:0")
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("fieldseal-vault listening on http://"),
        "{first}"
    );
    let url = second
        .strip_prefix("fieldseal-vault metrics on ")
        .unwrap_or_else(|| panic!("{second}"))
        .to_owned();
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("fieldseal_audit_head_seq"));
    let _ = child.kill();
    let _ = child.wait();
    // The API's listener has no metrics, with or without the setting.
    let log = tmp.0.join("serve.log");
    let (mut child, base) = start(&dir, &log);
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(r.status(), 404);
    let _ = child.kill();
    let _ = child.wait();
}

/// Incident commands through the binary: every live key of a role revoked at once, an operator
/// locked until reset, and the report of who revealed what (plain or not, why, from where) and who
/// was active in a time range, drawn from the audit log without a value, and itself audited.
#[tokio::test]
async fn incident_commands_revoke_a_role_lock_an_operator_and_report_the_reveals() {
    let tmp = TempDir::new("cli-incident");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let create = |role: &str| {
        ok(&vault(&dir, &["apikey", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let (c1, c2, payments) = (create("checkout"), create("checkout"), create("payments"));
    let from = fieldseal_vault::vault::now() - 1;
    let log = tmp.0.join("serve.log");
    let (mut child, base) = start(&dir, &log);
    let http = reqwest::Client::new();
    let ks = key_set(&http, &base).await;
    let items =
        json!({ "items": [{ "envelope": seal_to(&ks, FieldKind::Pan, VISA, ks.server_time()) }] });
    let r = post(&http, &format!("{base}/v1/tokenize"), &c1, &items).await;
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();
    let body = json!({ "tokens": [token], "purpose": PURPOSE });
    let r = post(&http, &format!("{base}/v1/detokenize"), &payments, &body).await;
    assert_eq!(r["results"][0]["reveal"], "plain");

    // A role's keys leaked: all of them revoked, the other roles' keys keep working.
    let out = ok(&vault(&dir, &["apikey", "revoke", "--role", "checkout"]));
    assert!(
        out.starts_with("revoked 2 keys of role checkout: "),
        "{out}"
    );
    let status = |key: String| {
        let (http, base) = (&http, &base);
        async move {
            http.get(format!("{base}/v1/me"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(c1.clone()).await, 401);
    assert_eq!(status(c2.clone()).await, 401);
    assert_eq!(status(payments.clone()).await, 200);
    assert!(
        !vault(&dir, &["apikey", "revoke"]).status.success(),
        "an id or --role"
    );

    // An operator suspected: locked at once, until a reset.
    let enrolled = ok(&vault(
        &dir,
        &["operator", "add", "ivy", "--role", "payments"],
    ));
    let field = |out: &str, p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap()
            .to_owned()
    };
    let (password, uri) = (field(&enrolled, "password: "), field(&enrolled, "totp: "));
    ok(&vault(&dir, &["operator", "lock", "ivy"]));
    let code = |uri: &str| {
        let t = u64::try_from(fieldseal_vault::vault::now()).unwrap();
        fieldseal_vault::operators::code_from_uri(uri, t).unwrap()
    };
    let sign_in = |password: String, totp: String| {
        let (http, base) = (&http, &base);
        async move {
            let r = http
                .post(format!("{base}/v1/operators/sign-in"))
                .json(&json!({ "name": "ivy", "password": password, "totp": totp }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status_, body) = sign_in(password, code(&uri)).await;
    assert_eq!(status_, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked by an administrator")
    );
    assert!(ok(&vault(&dir, &["operator", "list"])).contains("locked"));
    let reset = ok(&vault(&dir, &["operator", "reset", "ivy"]));
    let (password, uri) = (field(&reset, "password: "), field(&reset, "totp: "));
    let (status_, body) = sign_in(password, code(&uri)).await;
    assert_eq!(status_, 200, "{body}");

    // The report: the reveal (plain, its purpose, from where), the actors, no value.
    let to = fieldseal_vault::vault::now() + 1;
    let range = [from.to_string(), to.to_string()];
    let json_out = ok(&vault(
        &dir,
        &[
            "incident", "report", "--from", &range[0], "--to", &range[1], "--json",
        ],
    ));
    let report: Value = serde_json::from_str(&json_out).unwrap();
    let reveals = report["reveals"].as_array().unwrap();
    assert_eq!(reveals.len(), 1, "{report}");
    assert_eq!(reveals[0]["actor"], format!("apikey:{}", &payments[4..16]));
    assert_eq!(reveals[0]["token"], json!(token));
    assert_eq!(reveals[0]["outcome"], "plain");
    assert_eq!(reveals[0]["purpose"], PURPOSE);
    assert_eq!(reveals[0]["from"], "127.0.0.1");
    let actors = &report["actors"];
    assert_eq!(
        actors[format!("apikey:{}", &c1[4..16])]["actions"]["tokenize"],
        1
    );
    assert!(
        actors["operator:ivy"]["actions"]["operator.sign_in"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(!json_out.contains(VISA));
    let summary = ok(&vault(
        &dir,
        &["incident", "report", "--from", &range[0], "--to", &range[1]],
    ));
    assert!(summary.contains("1 reveals, 1 in the clear"), "{summary}");
    // Before the traffic: nothing.
    let before = (from - 100).to_string();
    let empty = ok(&vault(
        &dir,
        &[
            "incident", "report", "--from", &before, "--to", &before, "--json",
        ],
    ));
    assert_eq!(
        serde_json::from_str::<Value>(&empty).unwrap()["reveals"],
        json!([])
    );
    assert!(ok(&vault(&dir, &["audit", "export"])).contains("\"incident.report\""));
    let _ = child.kill();
    let _ = child.wait();
    // Someone with database access edits the reveal's purpose: the report says the log is
    // broken and fails rather than hand over a clean-looking report.
    rusqlite::Connection::open(dir.join("vault.db"))
        .unwrap()
        .execute(
            "UPDATE audit SET purpose = 'routine' WHERE action = 'reveal'",
            [],
        )
        .unwrap();
    let out = vault(
        &dir,
        &["incident", "report", "--from", &range[0], "--to", &range[1]],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("THE AUDIT LOG IS BROKEN at entry"), "{err}");
}

/// `audit export --since SEQ --follow` writes the entries after SEQ, then each new one as it is
/// appended, in order, each once (a JSON line with its `seq`).
#[test]
fn audit_export_follows_the_log_from_a_sequence_number() {
    use std::io::{BufRead, BufReader};
    let tmp = TempDir::new("cli-follow");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let head = ok(&vault(&dir, &["audit", "head"]));
    let since: i64 = head.trim().split(':').next().unwrap().parse().unwrap();
    let mut child = common::bin::command(&dir)
        .args([
            "audit",
            "export",
            "--since",
            &(since - 2).to_string(),
            "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).unwrap();
            if tx.send(v["seq"].as_i64().unwrap()).is_err() {
                return;
            }
        }
    });
    // Entries appended while it follows: three API keys made.
    for _ in 0..3 {
        ok(&vault(&dir, &["apikey", "create", "--role", "support"]));
    }
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 5 && std::time::Instant::now() < deadline {
        if let Ok(seq) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            seen.push(seq);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let expected: Vec<i64> = (since - 1..since + 4).collect();
    assert_eq!(
        seen, expected,
        "the two before, then the three new ones, each once"
    );
}

/// Seals `value` to the key set `ks` and tokenizes it with `key`: the answer's first result.
async fn tokenize_sealed(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    ks: &fieldseal_core::keyset::KeySet,
    value: &str,
) -> Value {
    let items =
        json!({ "items": [{ "envelope": seal_to(ks, FieldKind::Pan, value, ks.server_time()) }] });
    post(http, &format!("{base}/v1/tokenize"), key, &items).await["results"][0].clone()
}

/// docs/incident-response.md, drill 1: the vault's HPKE private key may have leaked. A new key
/// becomes the primary, the old one is retired at once, a page still sealing to it is found by
/// `keys check-retired` (its envelope refused), the pages are reloaded, and the check then finds
/// none; the report covers the window and the log verifies.
#[tokio::test]
async fn drill_a_suspected_hpke_key_leak() {
    let tmp = TempDir::new("drill-key-leak");
    let dir = tmp.0.join("data");
    let keys = common::bin::init_with_keys(&dir, &["checkout"]);
    let checkout = &keys[0];
    let from = fieldseal_vault::vault::now() - 1;
    let (mut child, base) = start(&dir, &tmp.0.join("serve.log"));
    let http = reqwest::Client::new();
    let stale = key_set(&http, &base).await;
    let old = stale.primary().kid.as_str().to_owned();
    let r = tokenize_sealed(&http, &base, checkout, &stale, VISA).await;
    assert_eq!(r["ok"], true, "{r}");

    // Step 1: a new primary; step 2: the suspected key retired at once.
    ok(&vault(&dir, &["keys", "rotate"]));
    let out = ok(&vault(&dir, &["keys", "retire", &old, "--now"]));
    assert!(out.contains("opens nothing from now on"), "{out}");
    // A copy of the database as it was then, for the attack at the end.
    let then = tmp.0.join("then.db");
    ok(&vault(&dir, &["backup", then.to_str().unwrap()]));
    // A page that kept the old key set: its envelopes are refused (the node takes the
    // retirement up within its key upkeep, every few seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = tokenize_sealed(&http, &base, checkout, &stale, MC2).await;
        if r["error"]["code"] == "unknown_key" {
            break;
        }
        assert_eq!(r["ok"], true, "{r}");
        assert!(std::time::Instant::now() < deadline, "still opening {old}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    // Step 3: the check names the page still sealing to it.
    let out = vault(&dir, &["keys", "check-retired", &old]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("sealed to it at") && text.contains("by apikey:"),
        "{text}"
    );
    // Step 4: pages reloaded: the published set no longer holds the key, and envelopes sealed
    // to the new one are stored.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reloaded_at = fieldseal_vault::vault::now();
    let fresh = key_set(&http, &base).await;
    let published = common::key_set_text(&http, &base).await;
    assert!(!published.contains(&old), "{published}");
    let r = tokenize_sealed(&http, &base, checkout, &fresh, VISA).await;
    assert_eq!(r["ok"], true, "{r}");
    let since = reloaded_at.to_string();
    let out = ok(&vault(
        &dir,
        &["keys", "check-retired", &old, "--since", &since],
    ));
    assert!(out.contains("no page has sealed to"), "{out}");
    // Step 5: the report of the window, and the log.
    let to = (fieldseal_vault::vault::now() + 1).to_string();
    let report = incident_json(&dir, &[], from, &to);
    assert_eq!(report["log_intact"], true, "{report}");
    ok(&vault(&dir, &["audit", "verify"]));
    child.kill().unwrap();
    child.wait().unwrap();
    let log = ok(&vault(&dir, &["audit", "export"]));
    assert!(log.contains("\"key.check_retired\""), "{log}");
    let head = ok(&vault(&dir, &["audit", "head"])).trim().to_owned();
    // Someone with database access deletes the refusals to hide the page still sealing to the
    // key: the check says the log is broken and does not come back clear.
    let deleted = rusqlite::Connection::open(dir.join("vault.db"))
        .unwrap()
        .execute(
            "DELETE FROM audit WHERE action = 'tokenize' AND detail LIKE 'unknown_key;%'",
            [],
        )
        .unwrap();
    assert!(deleted > 0);
    let out = vault(&dir, &["keys", "check-retired", &old]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("THE AUDIT LOG IS BROKEN at entry"), "{err}");
    // Or puts back the copy from just after the retirement, whole and consistent: the log
    // verifies, and only the head recorded outside the database shows the rollback.
    for f in ["vault.db-wal", "vault.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    std::fs::copy(&then, dir.join("vault.db")).unwrap();
    let out = ok(&vault(&dir, &["keys", "check-retired", &old]));
    assert!(out.contains("no page has sealed to"), "{out}");
    let out = vault(
        &dir,
        &["keys", "check-retired", &old, "--expect-head", &head],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("THE AUDIT LOG IS BROKEN at entry"), "{err}");
    let out = vault(
        &dir,
        &[
            "incident",
            "report",
            "--from",
            &from.to_string(),
            "--to",
            &to,
            "--expect-head",
            &head,
        ],
    );
    assert!(!out.status.success());
}

/// docs/incident-response.md, drill 2: an insider sweeps customers' data through a support
/// operator's session. The vault locks the operator's reveals by itself (`423`); the on-call
/// operator finds the lock (`locks list`), reads who revealed what (`incident report`), locks the
/// operator's sign-in and revokes the role's API keys; the log verifies; after the
/// investigation, `locks unlock` and `operator reset`.
#[tokio::test]
async fn drill_a_suspected_insider() {
    let tmp = TempDir::new("drill-insider");
    let dir = tmp.0.join("data");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let policy = tmp.0.join("policy.toml");
    std::fs::write(
        &policy,
        fieldseal_vault::policy::DEFAULT_POLICY.replace(
            "[roles.support]\n",
            "[roles.support]\nanomaly = { per_minute = 10, floor = 10 }\n",
        ),
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let env = [("FIELDSEAL_POLICY_FILE", policy)];
    ok(&vault_with(&dir, &env, &["init"]));
    let create = |role: &str| {
        ok(&vault_with(
            &dir,
            &env,
            &["apikey", "create", "--role", role],
        ))
        .trim()
        .to_owned()
    };
    let (checkout, support) = (create("checkout"), create("support"));
    let enrolled = ok(&vault_with(
        &dir,
        &env,
        &["operator", "add", "mal", "--role", "support"],
    ));
    let field = |out: &str, p: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(p))
            .unwrap()
            .to_owned()
    };
    let (password, uri) = (field(&enrolled, "password: "), field(&enrolled, "totp: "));
    let from = fieldseal_vault::vault::now() - 1;
    // The vault pages the on-call operator through a signed webhook.
    let hook = common::webhook::Receiver::start(&[]).await;
    let hook_secret = "whsec-drill-0123456789abcdef";
    let serve_env = [
        env[0],
        ("FIELDSEAL_ALERT_WEBHOOK_URL", hook.url.as_str()),
        ("FIELDSEAL_ALERT_WEBHOOK_SECRET", hook_secret),
    ];
    let (mut child, base) = common::bin::start_with(&dir, &tmp.0.join("serve.log"), &serve_env);
    let http = reqwest::Client::new();
    let ks = key_set(&http, &base).await;
    let mut tokens = Vec::new();
    for i in 0..15 {
        let items = json!({ "items": [{ "envelope": seal_to(&ks, FieldKind::Email, &format!("c{i}@example.com"), ks.server_time()) }] });
        let r = post(&http, &format!("{base}/v1/tokenize"), &checkout, &items).await;
        tokens.push(r["results"][0]["token"].as_str().unwrap().to_owned());
    }
    let t = u64::try_from(fieldseal_vault::vault::now()).unwrap();
    let code = fieldseal_vault::operators::code_from_uri(&uri, t).unwrap();
    let session = post(
        &http,
        &format!("{base}/v1/operators/sign-in"),
        "-",
        &json!({ "name": "mal", "password": password, "totp": code }),
    )
    .await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    // The sweep: one token after another, each never revealed before.
    let mut statuses = Vec::new();
    for token in &tokens {
        let r = http
            .post(format!("{base}/v1/detokenize"))
            .bearer_auth(&session)
            .json(&json!({ "tokens": [token], "purpose": "ticket 1" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // Locked at the 11th, by the vault itself; the support API key (another caller) is not.
    assert_eq!(
        &statuses[..11],
        &[200; 10].iter().copied().chain([423]).collect::<Vec<_>>()[..]
    );
    assert!(statuses[11..].iter().all(|&s| s == 423), "{statuses:?}");
    let r = post(
        &http,
        &format!("{base}/v1/detokenize"),
        &support,
        &json!({ "tokens": [tokens[0]], "purpose": "ticket 2" }),
    )
    .await;
    assert_eq!(r["results"][0]["reveal"], "masked", "{r}");
    // The page: one lockout alert naming the operator, signed with the shared secret.
    let alert = hook.wait("lockout", 1, 10).await.remove(0);
    assert_eq!(
        alert.header("X-Fieldseal-Signature"),
        common::webhook::expected_signature(hook_secret, &alert)
    );
    assert_eq!(alert.json()["subject"], "operator:mal", "{}", alert.json());
    assert!(
        alert.json()["message"]
            .as_str()
            .unwrap()
            .contains("sweep: 11 tokens never revealed before"),
        "{}",
        alert.json()
    );

    // Step 1: what is locked, and why.
    let out = ok(&vault_with(&dir, &env, &["locks", "list"]));
    assert!(
        out.contains("operator:mal") && out.contains("sweep: 11 tokens never revealed before"),
        "{out}"
    );
    // Step 2: who revealed what, from where.
    let to = (fieldseal_vault::vault::now() + 1).to_string();
    let report = incident_json(&dir, &env, from, &to);
    let by_mal: Vec<&Value> = report["reveals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["actor"] == "operator:mal")
        .collect();
    assert_eq!(
        by_mal.iter().filter(|r| r["outcome"] == "masked").count(),
        10,
        "{report}"
    );
    assert!(by_mal.iter().any(|r| r["outcome"] == "denied"), "{report}");
    // Step 3: stop the person and the role's shared keys.
    ok(&vault_with(&dir, &env, &["operator", "lock", "mal"]));
    let r = post(
        &http,
        &format!("{base}/v1/operators/sign-in"),
        "-",
        &json!({ "name": "mal", "password": "whatever", "totp": "000000" }),
    )
    .await;
    assert_eq!(r["error"]["code"], "operator_locked", "{r}");
    ok(&vault_with(
        &dir,
        &env,
        &["apikey", "revoke", "--role", "support"],
    ));
    let status = http
        .get(format!("{base}/v1/me"))
        .bearer_auth(&support)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    // Step 4: the log is whole.
    ok(&vault_with(&dir, &env, &["audit", "verify"]));
    // Step 5, after the investigation: the reveal lock lifted, new credentials.
    assert!(
        ok(&vault_with(
            &dir,
            &env,
            &["locks", "unlock", "operator:mal"]
        ))
        .contains("unlocked")
    );
    assert!(ok(&vault_with(&dir, &env, &["locks", "list"])).contains("no caller is locked"));
    ok(&vault_with(&dir, &env, &["operator", "reset", "mal"]));
    // Still one lockout alert: the refusals while locked raised none (time for a late one).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(hook.of("lockout").len(), 1, "one alert per lockout");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `incident report --from FROM --to TO --json`, which must succeed, parsed.
fn incident_json(dir: &std::path::Path, env: &[(&str, &str)], from: i64, to: &str) -> Value {
    let from = from.to_string();
    let args = ["incident", "report", "--from", &from, "--to", to, "--json"];
    serde_json::from_str(&ok(&vault_with(dir, env, &args))).unwrap()
}

/// The binary with extra environment variables (settings).
fn vault_with(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    common::bin::command(dir)
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}
