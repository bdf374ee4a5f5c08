//! Where the key-encryption key lives, with real parts: a SoftHSM2 token (PKCS#11) made by
//! `softhsm2-util` in a temporary directory, the real `fieldseal-vault` binary, real HTTP.
//! `init` and `serve` with the KEK in the token; a token unreachable at start (the vault refuses
//! to start) and lost while serving (`503 kek_unavailable`, then service resumes); `init` keeps
//! the key file out of the data directory unless `--dev`; the data directory alone opens nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output};

use common::bin::{command, kek_file, ok};
use common::hsm::{Hsm, PIN};
use common::{TempDir, key_set, seal_to};
use fieldseal_core::envelope::FieldKind;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";

/// Runs an operator command with extra settings.
fn vault_env(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    command(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .unwrap()
}

/// The standard error of a command that must have failed.
fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn serve(dir: &Path, log: &Path, env: &[(String, String)]) -> (Child, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    common::bin::start_with(dir, log, &env)
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

async fn post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn tokenize(http: &reqwest::Client, base: &str, key: &str, envelope: &str) -> (u16, Value) {
    post(
        http,
        &format!("{base}/v1/tokenize"),
        key,
        &json!({ "items": [{ "envelope": envelope }] }),
    )
    .await
}

/// Seals a card number to the key set `base` serves, as a page would, and tokenizes it.
async fn tokenize_card(http: &reqwest::Client, base: &str, key: &str, pan: &str) -> (u16, Value) {
    let ks = key_set(http, base).await;
    tokenize(
        http,
        base,
        key,
        &seal_to(&ks, FieldKind::Pan, pan, ks.server_time()),
    )
    .await
}

async fn reveal(http: &reqwest::Client, base: &str, key: &str, token: &str) -> (u16, Value) {
    post(
        http,
        &format!("{base}/v1/detokenize"),
        key,
        &json!({ "tokens": [token], "purpose": "kek test" }),
    )
    .await
}

fn apikey(dir: &Path, env: &[(String, String)], role: &str) -> String {
    ok(&vault_env(dir, env, &["apikey", "create", "--role", role]))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn pkcs11_kek_init_serve_tokenize_reveal_and_no_key_file_anywhere() {
    let hsm = Hsm::new("hsm-serve");
    hsm.add_token("vault-a");
    let tmp = TempDir::new("kek-serve");
    let dir = tmp.0.join("data");
    let env = hsm.env("vault-a", "kek-1");
    let out = ok(&vault_env(&dir, &env, &["init"]));
    assert!(out.contains("pkcs11 token \"vault-a\""), "{out}");
    assert!(!kek_file(&dir).exists() && !dir.join("master.key").exists());
    let checkout = apikey(&dir, &env, "checkout");
    let payments = apikey(&dir, &env, "payments");

    let log = tmp.0.join("serve.log");
    let (child, base) = serve(&dir, &log, &env);
    let http = reqwest::Client::new();
    let (status, r) = tokenize_card(&http, &base, &checkout, VISA).await;
    assert_eq!(status, 200, "{r}");
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();
    let (status, r) = reveal(&http, &base, &payments, &token).await;
    assert_eq!((status, &r["results"][0]["value"]), (200, &json!(VISA)));
    stop(child);

    // Nothing secret in the log or in `settings`: not the PIN, not the card number.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(PIN) && !logged.contains(VISA));
    let mut with_pin_env = env.clone();
    with_pin_env.retain(|(k, _)| k != "FIELDSEAL_PKCS11_PIN_FILE");
    with_pin_env.push(("FIELDSEAL_PKCS11_PIN".into(), PIN.into()));
    with_pin_env.push((
        "FIELDSEAL_MASTER_KEY".into(),
        "c2VjcmV0LWtleS1tYXRlcmlhbC1ub3QtcHJpbnRlZA".into(),
    ));
    let shown = ok(&vault_env(&dir, &with_pin_env, &["settings"]));
    assert!(
        !shown.contains(PIN) && !shown.contains("c2VjcmV0"),
        "{shown}"
    );
    assert!(shown.contains("Pkcs11"), "{shown}");
    // The PIN from the environment works too.
    ok(&vault_env(&dir, &with_pin_env, &["keys", "list"]));
    // The inventory names where each key lives, never a key.
    let status = ok(&vault_env(&dir, &env, &["keys", "status"]));
    for line in [
        "kek ",
        "hpke ",
        "data-key:1",
        "fingerprint-key",
        "audit-key",
        "row-key",
    ] {
        assert!(status.contains(line), "{line}: {status}");
    }
    assert!(status.contains("pkcs11 token \"vault-a\""), "{status}");
    assert!(status.contains("current, 1 value "), "{status}");
}

#[tokio::test]
async fn an_unreachable_or_refused_token_at_start_stops_the_vault_with_a_clear_message() {
    let hsm = Hsm::new("hsm-start");
    hsm.add_token("vault-b");
    let tmp = TempDir::new("kek-start");
    let dir = tmp.0.join("data");
    let env = hsm.env("vault-b", "kek-1");
    ok(&vault_env(&dir, &env, &["init"]));

    hsm.remove();
    let err = fails(&vault_env(&dir, &env, &["serve"]));
    assert!(
        err.contains("refusing to start") && err.contains("key-encryption key is unavailable"),
        "{err}"
    );
    assert!(err.contains("vault-b"), "{err}");
    hsm.restore();

    let mut wrong_pin = env.clone();
    let pin_file = tmp.0.join("wrong-pin");
    std::fs::write(&pin_file, "0000").unwrap();
    wrong_pin.retain(|(k, _)| k != "FIELDSEAL_PKCS11_PIN_FILE");
    wrong_pin.push((
        "FIELDSEAL_PKCS11_PIN_FILE".into(),
        pin_file.display().to_string(),
    ));
    let err = fails(&vault_env(&dir, &wrong_pin, &["serve"]));
    assert!(
        err.contains("PIN was refused") && !err.contains(PIN),
        "{err}"
    );

    // Another key in the same token does not open this vault.
    let other = hsm.env("vault-b", "kek-other");
    let err = fails(&vault_env(&dir, &other, &["serve"]));
    assert!(err.contains("no such key in the token"), "{err}");
}

#[tokio::test]
async fn a_token_lost_while_serving_answers_503_kek_unavailable_and_service_resumes() {
    let hsm = Hsm::new("hsm-lost");
    hsm.add_token("vault-c");
    let tmp = TempDir::new("kek-lost");
    let dir = tmp.0.join("data");
    let env = hsm.env("vault-c", "kek-1");
    ok(&vault_env(&dir, &env, &["init"]));
    let checkout = apikey(&dir, &env, "checkout");
    let payments = apikey(&dir, &env, "payments");
    let log = tmp.0.join("serve.log");
    let (child, base) = serve(&dir, &log, &env);
    let http = reqwest::Client::new();
    let (_, r) = tokenize_card(&http, &base, &checkout, VISA).await;
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();

    // The token goes away; an operator rotates the HPKE key meanwhile from a host that still
    // reaches the HSM (a copy of the token here), so the serving vault must unwrap a key it has
    // not loaded yet.
    let copy = Hsm::new("hsm-lost-copy");
    hsm.remove();
    copy_dir(&hsm.dir.0.join("tokens.away"), &copy.tokens);
    let copy_env = copy.env("vault-c", "kek-1");
    ok(&vault_env(&dir, &copy_env, &["keys", "rotate"]));
    let new_kid = ok(&vault_env(&dir, &copy_env, &["keys", "list"]))
        .lines()
        .find(|l| l.contains("primary"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let new_key = fieldseal_core::keyset::KeyId::new(&new_kid).unwrap();

    // The key set it serves still names the old key; a page with the new key set seals to it.
    let fresh = wait_for_key_set_with(&http, &base, &new_key, &copy, &dir).await;
    let envelope = seal_to(
        &fresh,
        FieldKind::Pan,
        "5555555555554444",
        fresh.server_time(),
    );
    // An unknown key id makes the node reload its keys, at most once a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, r) = tokenize(&http, &base, &checkout, &envelope).await;
    assert_eq!(status, 503, "{r}");
    assert_eq!(r["error"]["code"], "kek_unavailable", "{r}");
    // Values unwrapped at start stay readable: reveals do not need the KEK.
    let (status, r) = reveal(&http, &base, &payments, &token).await;
    assert_eq!((status, &r["results"][0]["value"]), (200, &json!(VISA)));

    // The token comes back: the same envelope is accepted (nothing of it was kept before).
    hsm.restore();
    let mut accepted = None;
    for _ in 0..40 {
        let (status, r) = tokenize(&http, &base, &checkout, &envelope).await;
        if status == 200 {
            accepted = Some(r);
            break;
        }
        assert_eq!(r["error"]["code"], "kek_unavailable", "{r}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let r = accepted.unwrap_or_else(|| {
        panic!(
            "service did not resume after the token came back; log:\n{}",
            std::fs::read_to_string(&log).unwrap()
        )
    });
    assert!(r["results"][0]["token"].is_string(), "{r}");
    stop(child);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("kek_unavailable") && logged.contains("kek_available"));
    assert!(!logged.contains(PIN));
}

/// The key set the vault would publish once it loads `kid`: built from a second vault process on
/// the same database that still reaches the token (its copy), as a page loaded from another node.
async fn wait_for_key_set_with(
    http: &reqwest::Client,
    _base: &str,
    kid: &fieldseal_core::keyset::KeyId,
    copy: &Hsm,
    dir: &Path,
) -> fieldseal_core::keyset::KeySet {
    let log = copy.dir.0.join("node2.log");
    let (child, base) = serve(dir, &log, &copy.env("vault-c", "kek-1"));
    let ks = key_set(http, &base).await;
    stop(child);
    assert!(ks.keys().iter().any(|k| &k.kid == kid));
    ks
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn init_keeps_the_key_file_out_of_the_data_directory_unless_dev() {
    let tmp = TempDir::new("kek-dev");
    let dir = tmp.0.join("data");
    let inside = dir.join("master.key");
    let out = command(&dir)
        .env("FIELDSEAL_MASTER_KEY_FILE", &inside)
        .arg("init")
        .output()
        .unwrap();
    let err = fails(&out);
    assert!(
        err.contains("inside the data directory") && err.contains("--dev"),
        "{err}"
    );
    assert!(!inside.exists());
    // The default key file is in the data directory: only `--dev` makes it.
    let err = fails(
        &command(&dir)
            .env_remove("FIELDSEAL_MASTER_KEY_FILE")
            .arg("init")
            .output()
            .unwrap(),
    );
    assert!(err.contains("inside the data directory"), "{err}");
    let out = ok(&command(&dir)
        .env_remove("FIELDSEAL_MASTER_KEY_FILE")
        .args(["init", "--dev"])
        .output()
        .unwrap());
    assert!(out.contains("master.key"), "{out}");
    assert!(inside.exists());
}

#[test]
fn the_data_directory_alone_opens_nothing() {
    let tmp = TempDir::new("kek-alone");
    let dir = tmp.0.join("data");
    ok(&common::bin::vault(&dir, &["init"]));
    ok(&common::bin::vault(&dir, &["keys", "list"]));
    let kek_text = std::fs::read_to_string(kek_file(&dir)).unwrap();

    // A backup of the data directory, restored elsewhere without the KEK.
    let stolen = tmp.0.join("stolen");
    copy_dir(&dir, &stolen);
    for args in [&["keys", "list"][..], &["serve"], &["audit", "verify"]] {
        let err = fails(
            &command(&stolen)
                .env_remove("FIELDSEAL_MASTER_KEY_FILE")
                .args(args)
                .output()
                .unwrap(),
        );
        assert!(err.contains("no master key"), "{err}");
    }
    // Any other key is refused: the data was wrapped under this vault's KEK only.
    let guess = tmp.0.join("guess.key");
    std::fs::write(&guess, "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio").unwrap();
    let err = fails(
        &command(&stolen)
            .env("FIELDSEAL_MASTER_KEY_FILE", &guess)
            .args(["keys", "list"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("does not match this vault"), "{err}");
    // And the KEK is nowhere in the copy.
    for entry in std::fs::read_dir(&stolen).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(kek_text.trim().len())
                .any(|w| w == kek_text.trim().as_bytes())
        );
    }
}

/// `kek rotate` to `to`, killed (SIGKILL) once `kill_after` keys are rewrapped, if given.
fn kek_rotate(
    dir: &Path,
    env: &[(String, String)],
    to: &[&str],
    kill_after: Option<usize>,
) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let mut child = command(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["kek", "rotate"])
        .args(to)
        .args(["--pause-ms", "300"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut rewrapped = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        out.push_str(&line);
        out.push('\n');
        if line.starts_with("rewrapped ") {
            rewrapped += 1;
            if kill_after == Some(rewrapped) {
                child.kill().unwrap();
                child.wait().unwrap();
                return None;
            }
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "kek rotate failed: {err}\n{out}");
    Some(out)
}

#[tokio::test]
async fn kek_rotation_file_to_hsm_killed_half_way_resumes_then_hsm_key_to_hsm_key() {
    let hsm = Hsm::new("hsm-rotate");
    hsm.add_token("rot-a");
    hsm.add_token("rot-b");
    let tmp = TempDir::new("kek-rotate");
    let dir = tmp.0.join("data");
    let file_env: Vec<(String, String)> = Vec::new();
    ok(&vault_env(&dir, &file_env, &["init"]));
    // More keys to rewrap: three more HPKE key pairs (one retired), a second version of the
    // lookup keys.
    for _ in 0..3 {
        ok(&vault_env(&dir, &file_env, &["keys", "rotate"]));
    }
    ok(&vault_env(&dir, &file_env, &["keys", "rotate-lookup"]));
    let checkout = apikey(&dir, &file_env, "checkout");
    let payments = apikey(&dir, &file_env, "payments");
    let log = tmp.0.join("serve.log");
    let (node, base) = serve(&dir, &log, &file_env);
    let http = reqwest::Client::new();
    let (_, r) = tokenize_card(&http, &base, &checkout, VISA).await;
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();

    // File -> HSM key A, killed after three keys, while the node serves.
    let hsm_a = hsm.env("rot-a", "kek-a");
    let pin = hsm.pin_file.display().to_string();
    let to_a = [
        "--to",
        "pkcs11",
        "--pkcs11-module",
        common::hsm::MODULE,
        "--pkcs11-token",
        "rot-a",
        "--pkcs11-key-label",
        "kek-a",
        "--pkcs11-pin-file",
        &pin,
    ];
    let conf = [("SOFTHSM2_CONF".to_owned(), hsm.conf.display().to_string())];
    assert!(kek_rotate(&dir, &conf, &to_a, Some(3)).is_none());
    // Half-way: neither KEK opens the vault alone, and the serving node goes on serving.
    fails(&vault_env(&dir, &file_env, &["keys", "list"]));
    fails(&vault_env(&dir, &hsm_a, &["keys", "list"]));
    let (status, r) = reveal(&http, &base, &payments, &token).await;
    assert_eq!((status, &r["results"][0]["value"]), (200, &json!(VISA)));
    // Run again: it continues where it stopped.
    let out = kek_rotate(&dir, &conf, &to_a, None).unwrap();
    assert!(
        out.contains("3 already") || out.contains("already"),
        "{out}"
    );
    let (status, _) = reveal(&http, &base, &payments, &token).await;
    assert_eq!(status, 200);
    stop(node);

    // The old key file is destroyed; everything opens under the HSM key.
    let kek_text = std::fs::read_to_string(kek_file(&dir)).unwrap();
    std::fs::remove_file(kek_file(&dir)).unwrap();
    let (node, base) = serve(&dir, &log, &hsm_a);
    let (status, r) = reveal(&http, &base, &payments, &token).await;
    assert_eq!((status, &r["results"][0]["value"]), (200, &json!(VISA)));
    let (_, r) = tokenize_card(&http, &base, &checkout, "5555555555554444").await;
    let second = r["results"][0]["token"].as_str().unwrap().to_owned();

    // HSM key A -> HSM key B in another token, while serving; then token A is deleted.
    let to_b = [
        "--to",
        "pkcs11",
        "--pkcs11-token",
        "rot-b",
        "--pkcs11-key-label",
        "kek-b",
    ];
    kek_rotate(&dir, &hsm_a, &to_b, None).unwrap();
    let (status, _) = reveal(&http, &base, &payments, &second).await;
    assert_eq!(status, 200);
    stop(node);
    let deleted = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &hsm.conf)
        .args(["--delete-token", "--token", "rot-a"])
        .output()
        .unwrap();
    assert!(deleted.status.success());
    let hsm_b = hsm.env("rot-b", "kek-b");
    let (node, base) = serve(&dir, &log, &hsm_b);
    for (t, v) in [(&token, VISA), (&second, "5555555555554444")] {
        let (status, r) = reveal(&http, &base, &payments, t).await;
        assert_eq!((status, &r["results"][0]["value"]), (200, &json!(v)));
    }
    stop(node);
    // Every rotation is in the audit log, which verifies.
    assert!(ok(&vault_env(&dir, &hsm_b, &["audit", "verify"])).contains("intact"));
    let exported = ok(&vault_env(&dir, &hsm_b, &["audit", "export"]));
    assert_eq!(exported.matches("\"kek.rotate\"").count(), 5, "{exported}");
    assert!(exported.matches("\"key.rewrap\"").count() >= 2 * 10);
    for name in ["fingerprint-key:2", "deterministic-key:2"] {
        assert!(
            exported.contains(&format!("{name} under")),
            "{name} rewrapped"
        );
    }
    // Neither the destroyed key file's text nor the PIN is in the nodes' log or the audit log.
    let logged = std::fs::read_to_string(&log).unwrap();
    for text in [&logged, &exported] {
        assert!(!text.contains(kek_text.trim()) && !text.contains(PIN));
    }
}
