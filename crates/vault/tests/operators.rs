//! Operators over HTTP on the real server, on SQLite and on PostgreSQL: sign-in with password and
//! TOTP, wrong password or code, a replayed code, lockout after 5 failures and its release,
//! step-up expiry for plain reveals (masked ones need none), idle and absolute session expiry,
//! sign-out, disable and reset; every step in the audit log under the operator's name. Short
//! windows are configured so the test can wait them out. The CLI's `operator` commands through the
//! real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Server, TempDir};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault::admin::Admin;
use fieldseal_vault::config::Settings;
use fieldseal_vault::operators::{Enrolment, code_from_uri};
use fieldseal_vault::store::audit::AuditRecord;
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";

fn unix() -> u64 {
    u64::try_from(fieldseal_vault::vault::now()).unwrap()
}

/// The TOTP code of `steps` steps after the current one.
fn code(e: &Enrolment, steps: u64) -> String {
    code_from_uri(&e.totp_uri, unix() + 30 * steps).unwrap()
}

struct Answer {
    status: u16,
    body: Value,
    cookie: Option<String>,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status: r.status().as_u16(),
        cookie,
        body: r.json().await.unwrap_or(Value::Null),
    }
}

async fn sign_in(s: &Server, name: &str, password: &str, totp: &str) -> Answer {
    send(
        s.client
            .post(s.url("/v1/operators/sign-in"))
            .json(&json!({ "name": name, "password": password, "totp": totp })),
    )
    .await
}

async fn signed_in(s: &Server, e: &Enrolment, totp: &str) -> String {
    let a = sign_in(s, &e.name, e.password.expose(), totp).await;
    assert_eq!(a.status, 200, "{}: {}", e.name, a.body);
    a.body["session"].as_str().unwrap().to_owned()
}

fn err(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}

async fn log(s: &Server) -> Vec<AuditRecord> {
    s.vault.flush_denials(true).await.unwrap();
    common::audit_all(s.vault.store()).await
}

#[tokio::test]
async fn operators_on_sqlite() {
    let dir = TempDir::new("operators");
    operators_on(common::settings(&dir.0)).await;
}

#[tokio::test]
async fn operators_on_postgres() {
    let dir = TempDir::new("operators-pg");
    let schema = fieldseal_vault_postgres::testing::TestSchema::new();
    operators_on(Settings {
        database_url: Some(schema.url()),
        ..common::settings(&dir.0)
    })
    .await;
}

async fn operators_on(mut settings: Settings) {
    let keys = common::init_with(&settings).await;
    settings.operator_lockout_secs = 3;
    settings.step_up_secs = 2;
    settings.session_idle_secs = 6;
    settings.session_max_secs = 12;
    settings.auth_failures_before_throttle = 100;
    let admin = Admin::open(&settings).await.unwrap();
    let pat = admin.add_operator("pat", "payments").await.unwrap();
    let sam = admin.add_operator("sam", "support").await.unwrap();
    let lou = admin.add_operator("lou", "payments").await.unwrap();
    let ida = admin.add_operator("ida", "support").await.unwrap();
    let eve = admin.add_operator("eve", "support").await.unwrap();
    let ada = admin.add_operator("ada", "privacy").await.unwrap();
    assert!(matches!(
        admin.add_operator("pat", "support").await,
        Err(fieldseal_vault::admin::AdminError::OperatorExists(_))
    ));
    assert!(admin.add_operator("Bad Name", "support").await.is_err());
    assert!(admin.add_operator("zed", "nosuchrole").await.is_err());
    drop(admin);
    let s = Server::start_with(settings).await;
    let token = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reveal = |session: String| {
        let (s, token) = (&s, &token);
        async move {
            send(
                s.client
                    .post(s.url("/v1/detokenize"))
                    .bearer_auth(session)
                    .json(&json!({ "tokens": [token], "purpose": "operator test" })),
            )
            .await
        }
    };

    // Sign-in: the session as a cookie (HttpOnly, Secure, SameSite=Strict) and in the body.
    let first = code(&pat, 0);
    let a = sign_in(&s, "pat", pat.password.expose(), &first).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let session = a.body["session"].as_str().unwrap().to_owned();
    assert!(session.starts_with("fso_"));
    let cookie = a.cookie.unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(cookie.starts_with(&format!("fieldseal_session={session};")));
    assert_eq!(a.body["role"], "payments");

    // The same code again is refused (replay), as are a wrong code and a wrong password.
    let replay = sign_in(&s, "pat", pat.password.expose(), &first).await;
    assert_eq!((replay.status, err(&replay)), (401, "sign_in_failed"));
    let wrong_code = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    let a = sign_in(&s, "pat", pat.password.expose(), wrong_code).await;
    assert_eq!((a.status, err(&a)), (401, "sign_in_failed"));
    let a = sign_in(&s, "pat", "wrong password", &code(&pat, 1)).await;
    assert_eq!((a.status, err(&a)), (401, "sign_in_failed"));
    let a = sign_in(&s, "nobody", "x", "123456").await;
    assert_eq!((a.status, err(&a)), (401, "sign_in_failed"));

    // The session authenticates as bearer and as cookie, with the role's permissions.
    let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&session)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["operator"]["name"], "pat");
    assert_eq!(me.body["role"], "payments");
    let me = send(
        s.client
            .get(s.url("/v1/me"))
            .header("cookie", format!("theme=dark; fieldseal_session={session}")),
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    let a = send(s.client.get(s.url("/v1/audit")).bearer_auth(&session)).await;
    assert_eq!((a.status, err(&a)), (403, "forbidden"));

    // A plain reveal right after sign-in (its code is a second factor) ...
    let a = reveal(session.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["results"][0]["reveal"], "plain");
    assert_eq!(a.body["results"][0]["value"], VISA);
    // A subject's export in the clear by a privacy operator, right after sign-in ...
    let email = s.seal(FieldKind::Email, "ada.subject@example.com").await;
    let stored = send(
        s.client
            .post(s.url("/v1/tokenize"))
            .bearer_auth(&keys.checkout)
            .json(&json!({ "items": [{ "envelope": email, "subject": "cust-42" }] })),
    )
    .await;
    assert_eq!(stored.body["results"][0]["ok"], true, "{}", stored.body);
    let ada_session = signed_in(&s, &ada, &code(&ada, 0)).await;
    let export = |session: String| {
        let s = &s;
        async move {
            send(
                s.client
                    .get(s.url("/v1/subjects/cust-42/export"))
                    .bearer_auth(session),
            )
            .await
        }
    };
    let a = export(ada_session.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["values"][0]["reveal"], "plain");
    // ... and a masked one by a support operator, whatever the time since its code.
    let sam_session = signed_in(&s, &sam, &code(&sam, 0)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Past step_up_secs, the export in the clear needs a step-up too; nothing is exported.
    let a = export(ada_session.clone()).await;
    assert_eq!((a.status, err(&a)), (403, "step_up_required"), "{}", a.body);
    assert!(a.body.get("values").is_none());
    let a = reveal(sam_session.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["results"][0]["reveal"], "masked");
    // Past step_up_secs, a plain reveal needs a step-up; nothing is revealed meanwhile.
    let a = reveal(session.clone()).await;
    assert_eq!((a.status, err(&a)), (403, "step_up_required"), "{}", a.body);
    assert!(a.body.get("results").is_none());
    // A used code does not step up; a new one does, once.
    let step_up = |session: String, totp: String| {
        let s = &s;
        async move {
            send(
                s.client
                    .post(s.url("/v1/operators/step-up"))
                    .bearer_auth(session)
                    .json(&json!({ "totp": totp })),
            )
            .await
        }
    };
    let a = step_up(session.clone(), first.clone()).await;
    assert_eq!((a.status, err(&a)), (401, "step_up_failed"));
    let next = code(&pat, 1);
    let a = step_up(session.clone(), next.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = reveal(session.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["results"][0]["reveal"], "plain");
    let a = step_up(session.clone(), next).await;
    assert_eq!((a.status, err(&a)), (401, "step_up_failed"));
    // An API key cannot step up or sign out.
    let a = step_up(keys.payments.clone(), code(&pat, 1)).await;
    assert_eq!((a.status, err(&a)), (403, "not_an_operator"));

    // Lockout: 5 failures in a row lock the operator, who is then refused even with the right
    // password and code; the lock ends after operator_lockout_secs.
    for i in 1..=5 {
        let a = sign_in(&s, "lou", "guess", &code(&lou, 0)).await;
        assert_eq!((a.status, err(&a)), (401, "sign_in_failed"), "attempt {i}");
    }
    let a = sign_in(&s, "lou", lou.password.expose(), &code(&lou, 0)).await;
    assert_eq!((a.status, err(&a)), (403, "operator_locked"), "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retry after")
    );

    // Idle expiry: 6 s without a request ends a session. (The wait also outlasts lou's lock.)
    let ida_session = signed_in(&s, &ida, &code(&ida, 0)).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&ida_session)).await;
    assert_eq!(me.status, 401);
    // The lock has ended: the right password and code sign lou in.
    let lou_session = signed_in(&s, &lou, &code(&lou, 0)).await;
    // Absolute expiry: used every 2 s, the session still ends 12 s after its sign-in.
    let lou_started = std::time::Instant::now();
    loop {
        let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&lou_session)).await;
        let elapsed = lou_started.elapsed();
        if me.status == 401 {
            assert!(elapsed >= Duration::from_secs(10), "{elapsed:?}");
            break;
        }
        assert_eq!(me.status, 200);
        assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    // Sign-out ends the session and clears the cookie; an API key cannot sign out.
    let a = send(
        s.client
            .post(s.url("/v1/operators/sign-out"))
            .bearer_auth(&keys.payments),
    )
    .await;
    assert_eq!((a.status, err(&a)), (403, "not_an_operator"));
    let eve_session = signed_in(&s, &eve, &code(&eve, 0)).await;
    let out = send(
        s.client
            .post(s.url("/v1/operators/sign-out"))
            .header("cookie", format!("fieldseal_session={eve_session}")),
    )
    .await;
    assert_eq!(out.status, 204);
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
    let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&eve_session)).await;
    assert_eq!(me.status, 401);

    // Disable ends the sessions and refuses sign-in; reset gives new credentials and lifts a lock.
    let admin = common::admin_of(&s).await.acting_as("root-ops");
    admin.disable_operator("sam").await.unwrap();
    let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&sam_session)).await;
    assert_eq!(me.status, 401);
    let a = sign_in(&s, "sam", sam.password.expose(), &code(&sam, 1)).await;
    assert_eq!(a.status, 401);
    admin.enable_operator("sam").await.unwrap();
    // Enabled again with the credentials it had (its sessions stay ended).
    let me = send(s.client.get(s.url("/v1/me")).bearer_auth(&sam_session)).await;
    assert_eq!(me.status, 401);
    signed_in(&s, &sam, &code(&sam, 1)).await;
    let reset = admin.reset_operator("sam").await.unwrap();
    let a = sign_in(&s, "sam", sam.password.expose(), &code(&reset, 0)).await;
    assert_eq!(a.status, 401, "the old password is gone");
    signed_in(&s, &reset, &code(&reset, 0)).await;
    let listed = admin.operators().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.record.name.as_str(), o.status))
            .collect::<Vec<_>>(),
        [
            ("ada", "active"),
            ("eve", "active"),
            ("ida", "active"),
            ("lou", "active"),
            ("pat", "active"),
            ("sam", "active")
        ]
    );

    // The audit log names the operator in every entry, holds the failures and the lock, and no
    // password or TOTP secret.
    let entries = log(&s).await;
    let has = |actor: &str, action: &str, outcome: &str, detail: &str| {
        entries.iter().any(|e| {
            e.actor == actor
                && e.action == action
                && e.outcome == outcome
                && e.detail.contains(detail)
        })
    };
    assert!(has(
        "operator:pat",
        "operator.sign_in",
        "ok",
        "role payments"
    ));
    assert!(has(
        "operator:pat",
        "operator.sign_in",
        "denied",
        "failure 1 of 5"
    ));
    assert!(has("operator:pat", "reveal", "plain", ""));
    assert!(has("operator:pat", "reveal", "denied", "step-up required"));
    assert!(has("operator:pat", "operator.step_up", "ok", "session"));
    assert!(has(
        "operator:pat",
        "operator.step_up",
        "denied",
        "wrong password or code"
    ));
    assert!(has("operator:eve", "operator.sign_out", "ok", "session"));
    assert!(has("operator:sam", "reveal", "masked", ""));
    assert!(has(
        "operator:lou",
        "operator.sign_in",
        "denied",
        "failure 5 of 5: locked until"
    ));
    assert!(
        entries.iter().any(|e| e.actor == "vault"
            && e.action == "operator.lock"
            && e.detail == "operator lou"),
        "the lock's detail is exactly the operator (the log is read with the row)"
    );
    // Refusals of a locked operator are counted with the address's failed authentications:
    // audited at once when first in the minute, else in the minute's summary.
    assert!(entries.iter().any(|e| e.actor == "operator:lou"
        && e.outcome == "denied"
        && e.detail.contains("sign-in while locked")));
    assert!(has(
        "operator:nobody",
        "operator.sign_in",
        "denied",
        "unknown or disabled"
    ));
    assert!(has(
        "cli",
        "operator.add",
        "ok",
        "operator pat role payments"
    ));
    assert!(has(
        "cli:root-ops",
        "operator.disable",
        "ok",
        "operator sam"
    ));
    assert!(has("cli:root-ops", "operator.reset", "ok", "operator sam"));
    let all = format!("{entries:?}");
    for e in [&pat, &sam, &lou, &ida, &eve, &reset] {
        assert!(!all.contains(e.password.expose()));
        let secret = e.totp_uri.split("secret=").nth(1).unwrap();
        assert!(!all.contains(&secret[..32]));
    }
    assert!(!all.contains(&session[4..]));
    s.stop().await;
}

/// A code is accepted once even when two sign-ins race with it: one session, one refusal.
#[tokio::test]
async fn concurrent_sign_ins_with_one_code_give_one_session() {
    let dir = TempDir::new("operators-race");
    let settings = common::settings(&dir.0);
    common::init_with(&settings).await;
    let admin = Admin::open(&settings).await.unwrap();
    let ann = admin.add_operator("ann", "support").await.unwrap();
    drop(admin);
    let s = Server::start_with(settings).await;
    let totp = code(&ann, 0);
    let attempts = (0..4).map(|_| sign_in(&s, "ann", ann.password.expose(), &totp));
    let answers = futures_join(attempts).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        1,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    s.stop().await;
}

async fn futures_join<F: Future<Output = Answer>>(futures: impl Iterator<Item = F>) -> Vec<Answer> {
    let mut set = Vec::new();
    for f in futures {
        set.push(f);
    }
    let mut out = Vec::new();
    // Polled together: each future is pinned and driven by one select loop.
    let mut pinned: Vec<_> = set.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<Answer>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(done.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(a) => *slot = Some(a),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().flatten());
    out
}

/// `operator add`, `list`, `disable`, `enable`, `reset` through the real binary: the enrolment
/// secret printed once on standard output, never in the database in the clear.
#[test]
fn operator_commands_through_the_binary() {
    use common::bin::{ok, vault};
    let tmp = TempDir::new("operators-cli");
    let dir = tmp.0.join("data");
    ok(&vault(&dir, &["init"]));
    let out = ok(&vault(
        &dir,
        &["operator", "add", "alice", "--role", "support"],
    ));
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("totp: "))
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 22);
    assert!(
        uri.starts_with("otpauth://totp/fieldseal:alice?secret=") && uri.contains("period=30"),
        "{uri}"
    );
    assert!(code_from_uri(&uri, unix()).is_some());
    let again = vault(&dir, &["operator", "add", "alice", "--role", "support"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = vault(&dir, &["operator", "add", "bob", "--role", "nosuch"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
    let list = ok(&vault(&dir, &["operator", "list"]));
    assert!(list.contains("alice") && list.contains("active"), "{list}");
    ok(&vault(&dir, &["operator", "disable", "alice"]));
    assert!(ok(&vault(&dir, &["operator", "list"])).contains("disabled"));
    ok(&vault(&dir, &["operator", "enable", "alice"]));
    let reset = ok(&vault(&dir, &["operator", "reset", "alice"]));
    let new_password = reset
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    assert_ne!(new_password, password);
    let missing = vault(&dir, &["operator", "reset", "nobody"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no operator named nobody"));
    // Changes name who made them: --operator, else the OS user; reads change nothing.
    ok(&vault(
        &dir,
        &[
            "operator",
            "add",
            "bob",
            "--role",
            "payments",
            "--operator",
            "carol",
        ],
    ));
    let out = common::bin::command(&dir)
        .args(["operator", "disable", "bob"])
        .env("USER", "dave")
        .output()
        .unwrap();
    ok(&out);
    let bad = vault(&dir, &["operator", "list", "--operator", "no spaces"]);
    assert!(!bad.status.success());
    let log: Vec<Value> = ok(&vault(&dir, &["audit", "export"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actor_of = |action: &str, detail: &str| {
        log.iter()
            .filter(|e| e["action"] == action && e["detail"].as_str().unwrap().contains(detail))
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(actor_of("operator.add", "operator bob"), ["cli:carol"]);
    assert_eq!(actor_of("operator.disable", "operator bob"), ["cli:dave"]);
    // Without either, the OS user ($USER, $LOGNAME, or the name of the process's uid).
    let init = actor_of("vault.init", "");
    assert_eq!(init.len(), 1);
    assert!(init[0].starts_with("cli:") && init[0].len() > 4, "{init:?}");
    assert_eq!(actor_of("operator.add", "operator alice"), init);
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => assert_eq!(init[0], format!("cli:{user}")),
        _ => {}
    }
    // Neither password nor TOTP secret is in the database files in the clear.
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let raw = fieldseal_core::operator::base32_decode(secret).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [
            password.as_bytes(),
            new_password.as_bytes(),
            secret.as_bytes(),
            &raw,
        ] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle));
        }
    }
}

/// Reveal anomaly lockout over HTTP: a key that sweeps tokens it never revealed is locked at the
/// first token past its role's limit (`423 locked`, nothing of that request revealed), stays
/// locked for every token and for subject export while it still tokenizes; the lock is in the
/// audit log with its reason; an API key cannot unlock, nor an operator without the permission or
/// with a stale second factor; an operator of `security` with a fresh one can; then the CLI's
/// `locks unlock` lifts a second lock. An operator's own reveals are watched the same way.
#[tokio::test]
async fn reveal_anomalies_lock_the_caller_until_an_operator_with_a_fresh_factor_unlocks() {
    let dir = TempDir::new("lockout");
    let policy = format!(
        "{}\n[roles.agent]\ntokenize = [\"*\"]\nreveal_masked = [\"*\"]\nexport = true\n\
         anomaly = {{ per_minute = 5, floor = 5 }}\n",
        fieldseal_vault::policy::DEFAULT_POLICY
    );
    let mut settings = common::settings_with_policy(&dir.0, &policy);
    let keys = common::init_with(&settings).await;
    settings.step_up_secs = 2;
    let agent = common::add_key(&settings, "agent").await;
    let auditor = common::add_key(&settings, "auditor").await;
    let security_key = common::add_key(&settings, "security").await;
    let admin = Admin::open(&settings).await.unwrap();
    let sec = admin.add_operator("sec", "security").await.unwrap();
    let aud = admin.add_operator("aud", "auditor").await.unwrap();
    let ann = admin.add_operator("ann", "agent").await.unwrap();
    drop(admin);
    let s = Server::start_with(settings).await;
    let mut tokens = Vec::new();
    for i in 0..12 {
        let env = s
            .seal(FieldKind::Email, &format!("user{i}@example.com"))
            .await;
        let (status, body) = s
            .tokenize(
                &keys.checkout,
                json!([{ "envelope": env, "subject": "cust-1" }]),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["results"][0]["token"].as_str().unwrap().to_owned());
    }
    let caller = format!("apikey:{}", &agent[4..16]);
    // Five tokens never revealed before: within the limit.
    for t in &tokens[..5] {
        let (status, body) = s.detokenize(&agent, &[t], "support case").await;
        assert_eq!(status, 200, "{body}");
    }
    // The sixth is past it: locked, and nothing of the request is shown.
    let (status, body) = s.detokenize(&agent, &[&tokens[5]], "support case").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (423, Some("locked")),
        "{body}"
    );
    assert!(!body.to_string().contains("example.com"), "{body}");
    // Every reveal is refused now, a token seen before too, and the subject's export.
    let (status, _) = s.detokenize(&agent, &[&tokens[0]], "support case").await;
    assert_eq!(status, 423);
    let (status, body) = s.get(&agent, "/v1/subjects/cust-1/export").await;
    assert_eq!(status, 423, "{body}");
    // It still tokenizes.
    let env = s.seal(FieldKind::Email, "new@example.com").await;
    let (status, body) = s.tokenize(&agent, json!([{ "envelope": env }])).await;
    assert_eq!(status, 200, "{body}");
    // The log: the lock with its reason, and the refused reveals.
    let entries = log(&s).await;
    let lock = entries
        .iter()
        .find(|e| e.action == "reveal.lock")
        .expect("a lock entry");
    let key_id = lock.detail.split(' ').next().unwrap().to_owned();
    assert!(key_id.starts_with("apikey:"), "{}", lock.detail);
    assert!(
        lock.detail.contains("within a minute (limit 5"),
        "{}",
        lock.detail
    );
    assert!(
        entries.iter().any(|e| e.action == "reveal"
            && e.outcome == "denied"
            && e.token.as_deref() == Some(tokens[5].as_str())
            && e.detail.starts_with("anomaly: ")),
        "the refused reveal is audited with the reason"
    );
    assert_eq!(key_id, caller);
    // Consoles see it (audit or unlock permission).
    let (status, body) = s.get(&auditor, "/v1/locks").await;
    assert_eq!(status, 200, "{body}");
    let state = body["callers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["caller"] == key_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(state["role"], "agent");
    assert!(
        state["reveal_lock"]["reason"]
            .as_str()
            .unwrap()
            .contains("limit 5")
    );
    let (status, _) = s.get(&agent, "/v1/locks").await;
    assert_eq!(status, 403);

    let unlock = |bearer: String| {
        let (s, key_id) = (&s, key_id.clone());
        async move {
            send(
                s.client
                    .post(s.url("/v1/locks/unlock"))
                    .bearer_auth(bearer)
                    .json(&json!({ "caller": key_id })),
            )
            .await
        }
    };
    // An API key, even of the security role, cannot unlock; nor an auditor operator.
    assert_eq!(unlock(security_key.clone()).await.status, 403);
    let aud_session = signed_in(&s, &aud, &code(&aud, 0)).await;
    assert_eq!(unlock(aud_session).await.status, 403);
    // A security operator whose second factor is older than step_up_secs must step up first.
    let sec_session = signed_in(&s, &sec, &code(&sec, 0)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = unlock(sec_session.clone()).await;
    assert_eq!((a.status, err(&a)), (403, "step_up_required"), "{}", a.body);
    let (status, _) = s.detokenize(&agent, &[&tokens[0]], "support case").await;
    assert_eq!(status, 423, "still locked");
    let a = send(
        s.client
            .post(s.url("/v1/operators/step-up"))
            .bearer_auth(&sec_session)
            .json(&json!({ "totp": code(&sec, 1) })),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = unlock(sec_session.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        unlock(sec_session.clone()).await.status,
        404,
        "no longer locked"
    );
    // Unlocked: it reveals again, and starts learning anew.
    let (status, body) = s.detokenize(&agent, &[&tokens[5]], "support case").await;
    assert_eq!(status, 200, "{body}");
    let entries = log(&s).await;
    let unlocked = entries
        .iter()
        .find(|e| e.action == "reveal.unlock" && e.outcome == "ok")
        .expect("an unlock entry");
    assert!(
        entries
            .iter()
            .filter(|e| e.action == "reveal.unlock" && e.outcome == "denied")
            .count()
            >= 3,
        "the refused unlocks are audited"
    );
    assert_eq!(unlocked.actor, "operator:sec");
    assert!(
        unlocked.detail.starts_with(&format!("{key_id} lock "))
            && unlocked.detail.contains("; from "),
        "{}",
        unlocked.detail
    );

    // Locked again by a second sweep; the CLI lifts it.
    let batch: Vec<&str> = tokens[6..12].iter().map(String::as_str).collect();
    let (status, _) = s.detokenize(&agent, &batch, "support case").await;
    assert_eq!(status, 423);
    let admin = common::admin_of(&s).await;
    assert!(admin.reveal_locks().await.unwrap().contains_key(&key_id));
    assert!(admin.unlock(&key_id).await.unwrap());
    assert!(!admin.unlock(&key_id).await.unwrap());
    // The node takes the unlock up within a second.
    tokio::time::sleep(fieldseal_vault::locks::LOCKS_READ_EVERY + Duration::from_millis(100)).await;
    let (status, body) = s.detokenize(&agent, &[&tokens[6]], "support case").await;
    assert_eq!(status, 200, "{body}");
    // An operator may not lift its own lock.
    let a = send(
        s.client
            .post(s.url("/v1/locks/unlock"))
            .bearer_auth(&sec_session)
            .json(&json!({ "caller": "operator:sec" })),
    )
    .await;
    assert_eq!((a.status, err(&a)), (403, "forbidden"), "{}", a.body);

    // An operator is watched as itself: locked, while the role's API key is not.
    let ann_session = signed_in(&s, &ann, &code(&ann, 0)).await;
    let reveal_as_ann = |t: &str| {
        send(
            s.client
                .post(s.url("/v1/detokenize"))
                .bearer_auth(&ann_session)
                .json(&json!({ "tokens": [t], "purpose": "operator sweep" })),
        )
    };
    let mut statuses = Vec::new();
    for t in &tokens[..6] {
        statuses.push(reveal_as_ann(t).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 423]);
    let (status, _) = s.detokenize(&agent, &[&tokens[7]], "support case").await;
    assert_eq!(status, 200);
    let admin = common::admin_of(&s).await;
    assert!(
        admin
            .reveal_locks()
            .await
            .unwrap()
            .contains_key("operator:ann")
    );

    // A subject export shows values too: the key's export of twelve e-mails at once is past its
    // limit of five a minute, and locks it (nothing exported).
    let (status, body) = s.get(&agent, "/v1/subjects/cust-1/export").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (423, Some("locked")),
        "{body}"
    );
    assert!(!body.to_string().contains("example.com"), "{body}");
    let admin = common::admin_of(&s).await;
    let locks = admin.reveal_locks().await.unwrap();
    assert!(
        locks[&key_id].reason.contains("masked reveals of email"),
        "{}",
        locks[&key_id].reason
    );
    s.stop().await;
}
