//! The vault over real HTTP on 127.0.0.1 with a real SQLite file: tokenize, reveal by role, the
//! authorization matrix, replay, freshness, tampering, unknown keys, rotation, token formats,
//! fingerprints, API errors and the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeSet;

use common::{Keys, Server, TempDir, init, seal_to};
use fieldseal_core::card::luhn_valid;
use fieldseal_core::ecdh::P256;
use fieldseal_core::envelope::{FieldKind, OpeningKey};
use fieldseal_core::keyset::{KeyId, KeySet};
use serde_json::{Value, json};

const VISA: &str = "4111111111111111";
const MC2: &str = "2223003122003222";
const AMEX: &str = "378282246310005";
const EMAIL: &str = "jane.doe@example.com";

async fn setup(tag: &str) -> (TempDir, Keys, Server) {
    let dir = TempDir::new(tag);
    let keys = init(&dir.0).await;
    let server = Server::start(&dir.0).await;
    (dir, keys, server)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn tokenize_then_reveal_by_role() {
    let (_dir, keys, s) = setup("roles").await;
    let pan = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    assert_eq!(pan["ok"], true, "{pan}");
    assert_eq!(pan["brand"], "visa");
    assert_eq!(pan["last4"], "1111");
    // The built-in checkout role gets no BIN and no fingerprint (see
    // `least_privilege_stops_card_number_enumeration`).
    assert!(
        pan.get("bin").is_none() && pan.get("fingerprint").is_none(),
        "{pan}"
    );
    assert!(pan["token"].as_str().unwrap().starts_with("tok_"));
    let email = s
        .tokenize_value(&keys, FieldKind::Email, EMAIL, "random")
        .await;
    let cvc = s
        .tokenize_value(&keys, FieldKind::Cvc, "123", "random")
        .await;
    let (pt, et, ct) = (
        pan["token"].as_str().unwrap(),
        email["token"].as_str().unwrap(),
        cvc["token"].as_str().unwrap(),
    );

    // payments: the card in the clear, e-mail masked.
    let (status, body) = s
        .detokenize(&keys.payments, &[pt, et], "capture order 1042")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["reveal"], "plain");
    assert_eq!(body["results"][0]["value"], VISA);
    assert_eq!(body["results"][1]["reveal"], "masked");
    assert_eq!(body["results"][1]["value"], "j***@example.com");

    // support: masked card and e-mail, no CVC.
    let (status, body) = s
        .detokenize(&keys.support, &[pt, et, ct], "customer call")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["value"], "411111******1111");
    assert_eq!(body["results"][1]["value"], "j***@example.com");
    assert_eq!(body["results"][2]["ok"], false);
    assert_eq!(code(&body["results"][2]), "forbidden");

    // checkout: may not reveal at all.
    let (status, body) = s.detokenize(&keys.checkout, &[pt], "curious").await;
    assert_eq!(status, 403);
    assert_eq!(code(&body), "forbidden");

    // A CVC revealed in the clear is used up.
    let (_, body) = s
        .detokenize(&keys.payments, &[ct], "authorize payment")
        .await;
    assert_eq!(body["results"][0]["value"], "123");
    let (_, body) = s
        .detokenize(&keys.payments, &[ct], "authorize payment again")
        .await;
    assert_eq!(code(&body["results"][0]), "not_found");

    // Unknown tokens and a missing purpose.
    let (_, body) = s.detokenize(&keys.payments, &["tok_nope"], "x").await;
    assert_eq!(code(&body["results"][0]), "not_found");
    let (status, body) = s.detokenize(&keys.payments, &[pt], "  ").await;
    assert_eq!((status, code(&body)), (400, "purpose_required"));
}

/// The endpoints of the authorization matrix, in its columns' order: every operation of the
/// OpenAPI document (`authorization_matrix` checks that none is missing).
const ENDPOINTS: [&str; 17] = [
    "GET /v1/keys",
    "POST /v1/tokenize",
    "POST /v1/detokenize",
    "DELETE /v1/tokens/{token}",
    "GET /v1/me",
    "GET /v1/audit",
    "GET /v1/audit/verify",
    "GET /v1/openapi.json",
    "GET /healthz",
    "GET /readyz",
    "DELETE /v1/subjects/{id}",
    "GET /v1/subjects/{id}/export",
    "GET /v1/locks",
    "POST /v1/locks/unlock",
    "POST /v1/operators/sign-in",
    "POST /v1/operators/step-up",
    "POST /v1/operators/sign-out",
];

/// The authorization matrix: per caller, the status each endpoint answers a well-formed request
/// with. This table is the single statement of who may do what; `authorization_matrix` checks
/// every cell against the server, and that every denial (401, 403, 429) is in the audit log as
/// one entry of that caller and action. Callers: no key; keys that do not authenticate (malformed,
/// unknown id, wrong secret, revoked, expired, idle past `api_key_max_idle_days`, the secret a
/// rotation without overlap replaced); each built-in
/// role; each built-in role's key over its rate limit (`*-limited`); a valid key from an
/// address throttled after repeated failed authentications; and operators' sessions: signed in
/// (their TOTP code within `step_up_secs`), signed in longer ago than that (`operator-stale`: a
/// plain reveal needs a step-up), locked after failed sign-ins, and signed out. The sign-in
/// column signs in an unknown operator (the same for every caller); the step-up column sends a
/// fresh code for operators; the sign-out column ends the row's session.
#[rustfmt::skip]
const MATRIX: &[(&str, [u16; 17])] = &[
    //                     keys  tokenize detok  delete  me   audit verify  openapi healthz readyz erase export  locks unlock sign-in step-up sign-out
    ("anonymous",         [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("malformed",         [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("unknown",           [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("wrong-secret",      [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("revoked",           [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("expired",           [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("idle",              [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("rotated-out",       [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("checkout",          [200,  200,     403,   403,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("support",           [200,  403,     200,   403,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("payments",          [200,  403,     200,   204,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("auditor",           [200,  403,     403,   403,    200, 200,  200,    200,    200,    200,   403,  403,  200,  403,  401,    403,    403]),
    ("security",          [200,  403,     403,   403,    200, 200,  200,    200,    200,    200,   403,  403,  200,  403,  401,    403,    403]),
    ("privacy",           [200,  403,     200,   403,    200, 403,  403,    200,    200,    200,   200,  200,  403,  403,  401,    403,    403]),
    ("checkout-limited",  [200,  429,     403,   403,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("support-limited",   [200,  403,     429,   403,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("payments-limited",  [200,  403,     429,   204,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    403,    403]),
    ("throttled-address", [200,  429,     429,   429,    429, 429,  429,    200,    200,    200,   429,  429,  429,  429,  429,    429,    429]),
    ("operator-support",  [200,  403,     200,   403,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    200,    204]),
    ("operator-payments", [200,  403,     200,   204,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    200,    204]),
    ("operator-security", [200,  403,     403,   403,    200, 200,  200,    200,    200,    200,   403,  403,  200,  404,  401,    200,    204]),
    ("operator-stale",    [200,  403,     403,   204,    200, 403,  403,    200,    200,    200,   403,  403,  403,  403,  401,    200,    204]),
    ("operator-locked",   [200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
    ("operator-signed-out",[200,  401,     401,   401,    401, 401,  401,    200,    200,    200,   401,  401,  401,  401,  401,    401,    401]),
];

/// The audit action a denial at an endpoint is recorded under (failed authentications: `auth`).
fn denied_action(endpoint: &str, status: u16) -> &'static str {
    if endpoint == "POST /v1/operators/sign-in" {
        return "operator.sign_in";
    }
    if status == 401 {
        return "auth";
    }
    match endpoint {
        "POST /v1/tokenize" => "tokenize",
        "POST /v1/detokenize" => "reveal",
        "DELETE /v1/tokens/{token}" => "delete",
        "GET /v1/audit" => "audit.read",
        "GET /v1/audit/verify" => "audit.verify",
        "DELETE /v1/subjects/{id}" => "subject.erase",
        "GET /v1/subjects/{id}/export" => "subject.export",
        "POST /v1/operators/step-up" => "operator.step_up",
        "POST /v1/operators/sign-out" => "operator.sign_out",
        "GET /v1/locks" => "audit.read",
        "POST /v1/locks/unlock" => "reveal.unlock",
        other => panic!("no denial expected at {other}"),
    }
}

#[tokio::test]
async fn authorization_matrix() {
    let dir = TempDir::new("matrix");
    authorization_matrix_on(&dir.0, common::settings(&dir.0)).await;
}

#[tokio::test]
async fn authorization_matrix_on_postgres() {
    let dir = TempDir::new("matrix-pg");
    let schema = fieldseal_vault_postgres::testing::TestSchema::new();
    let settings = fieldseal_vault::config::Settings {
        database_url: Some(schema.url()),
        ..common::settings(&dir.0)
    };
    authorization_matrix_on(&dir.0, settings).await;
}

/// Checks every cell of [`MATRIX`] on a vault with these settings (its database), in `dir`.
async fn authorization_matrix_on(
    dir: &std::path::Path,
    mut settings: fieldseal_vault::config::Settings,
) {
    use fieldseal_vault::store::Store;

    let keys = common::init_with(&settings).await;
    // The built-in roles with their bursts, refilled at one item a minute: a key emptied once
    // stays over its limit for the whole test.
    let policy = fieldseal_vault::policy::DEFAULT_POLICY
        .lines()
        .map(|l| match l.split_once("per_minute = ") {
            Some((head, tail)) if head.starts_with("rate.") => {
                let rest = tail.split_once(',').map_or("", |(_, r)| r);
                format!("{head}per_minute = 1,{rest}")
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let policy_file = dir.join("policy.toml");
    std::fs::write(&policy_file, policy).unwrap();
    settings.policy_file = Some(policy_file);
    settings.auth_failures_before_throttle = 5;
    settings.step_up_secs = 5;
    let admin = fieldseal_vault::admin::Admin::open(&settings)
        .await
        .unwrap();
    let key = |role: &'static str, label: &'static str, days: Option<u64>| {
        let admin = &admin;
        async move { admin.create_api_key(role, label, days).await.unwrap().full }
    };
    // Expired (no days left), idle (last used 91 days ago; 90 allowed), and one key per role to
    // empty its bucket.
    let expired = key("payments", "expired", Some(0)).await;
    let idle = key("payments", "idle", None).await;
    let checkout_limited = key("checkout", "limited", None).await;
    let support_limited = key("support", "limited", None).await;
    let payments_limited = key("payments", "limited", None).await;
    let privacy = key("privacy", "privacy", None).await;
    let security = key("security", "security", None).await;
    // A secret replaced by a rotation with no overlap.
    let rotated_out = key("payments", "rotated", None).await;
    admin.rotate_api_key(&rotated_out[4..16], 0).await.unwrap();
    // One operator per operator row.
    let mut enrolled = std::collections::BTreeMap::new();
    for (who, name, role) in [
        ("operator-support", "m-support", "support"),
        ("operator-payments", "m-payments", "payments"),
        ("operator-security", "m-security", "security"),
        ("operator-stale", "m-stale", "payments"),
        ("operator-locked", "m-locked", "payments"),
        ("operator-signed-out", "m-out", "support"),
    ] {
        enrolled.insert(who, admin.add_operator(name, role).await.unwrap());
    }
    drop(admin);
    let s = Server::start_with(settings).await;
    let long_ago = fieldseal_vault::vault::now() - 91 * 86_400;
    s.vault
        .store()
        .touch_api_key(&idle[4..16], long_ago)
        .await
        .unwrap();
    let bearer = |k: &str| format!("Bearer {k}");
    // Empty the limited keys' buckets: a full burst of items each (unknown tokens and
    // malformed envelopes cost the same as real ones).
    for (k, path, n) in [
        (&checkout_limited, "/v1/tokenize", 1000),
        (&support_limited, "/v1/detokenize", 30),
        (&payments_limited, "/v1/detokenize", 100),
    ] {
        for chunk in 0..n / 100 + usize::from(n % 100 != 0) {
            let size = (n - chunk * 100).min(100);
            let body = if path == "/v1/tokenize" {
                json!({ "items": (0..size).map(|_| json!({ "envelope": "x" })).collect::<Vec<_>>() })
            } else {
                json!({ "tokens": (0..size).map(|i| format!("tok_none{chunk}_{i}")).collect::<Vec<_>>(), "purpose": "empty the bucket" })
            };
            let r = s
                .client
                .post(s.url(path))
                .header("authorization", bearer(k))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "emptying a bucket: {}",
                r.text().await.unwrap()
            );
        }
    }
    let wrong_secret = {
        let last = if keys.payments.ends_with('x') {
            'y'
        } else {
            'x'
        };
        format!("{}{last}", &keys.payments[..keys.payments.len() - 1])
    };
    let mut sessions: std::collections::BTreeMap<&str, String> = std::collections::BTreeMap::new();
    let caller_key = |who: &str, sessions: &std::collections::BTreeMap<&str, String>| -> String {
        if let Some(session) = sessions.get(who) {
            return session.clone();
        }
        match who {
            "anonymous" => String::new(),
            "malformed" => "not-a-key".to_owned(),
            "unknown" => "fsk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            "wrong-secret" => wrong_secret.clone(),
            "revoked" => keys.revoked.clone(),
            "expired" => expired.clone(),
            "idle" => idle.clone(),
            "rotated-out" => rotated_out.clone(),
            "checkout" => keys.checkout.clone(),
            "support" => keys.support.clone(),
            "payments" | "throttled-address" => keys.payments.clone(),
            "auditor" => keys.auditor.clone(),
            "privacy" => privacy.clone(),
            "security" => security.clone(),
            "checkout-limited" => checkout_limited.clone(),
            "support-limited" => support_limited.clone(),
            "payments-limited" => payments_limited.clone(),
            other => panic!("caller {other} has no key"),
        }
    };
    // Who the audit log names for a caller: the key id it presented, if it presented one; the
    // operator of a session it knows.
    let mut session_actors: std::collections::BTreeMap<String, String> =
        std::collections::BTreeMap::new();
    let actor = |k: &str, session_actors: &std::collections::BTreeMap<String, String>| {
        if let Some(a) = session_actors.get(k) {
            a.clone()
        } else if k.starts_with("fsk_") && k.len() > 16 {
            format!("apikey:{}", &k[4..16])
        } else {
            "anonymous".to_owned()
        }
    };

    // Every operation of the served document is a column, and nothing else is.
    let doc: Value = s
        .client
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    assert_eq!(
        documented,
        ENDPOINTS.iter().map(|e| (*e).to_owned()).collect()
    );

    let shared = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A data subject with one value, for the exports; a fresh one per erasure.
    let subject_with_a_value = |id: String| {
        let (s, keys) = (&s, &keys);
        async move {
            let env = s.seal(FieldKind::Email, "jane@example.com").await;
            let (status, body) = s
                .tokenize(&keys.checkout, json!([{ "envelope": env, "subject": id }]))
                .await;
            assert_eq!(
                (status, &body["results"][0]["ok"]),
                (200, &json!(true)),
                "{body}"
            );
            id
        }
    };
    let exported = subject_with_a_value("cust-matrix".to_owned()).await;
    let mut fresh_subjects = 0;
    let mut mismatches = Vec::new();
    let unix = || u64::try_from(fieldseal_vault::vault::now()).unwrap();
    let totp = |who: &str, steps: u64| {
        fieldseal_vault::operators::code_from_uri(&enrolled[who].totp_uri, unix() + 30 * steps)
            .unwrap()
    };
    for (who, expected) in MATRIX {
        if let Some(e) = enrolled.get(who) {
            s.vault.flush_denials(true).await.unwrap();
            let r = s
                .client
                .post(s.url("/v1/operators/sign-in"))
                .json(&json!({ "name": e.name, "password": e.password.expose(), "totp": totp(who, 0) }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let session = r.json::<Value>().await.unwrap()["session"]
                .as_str()
                .unwrap()
                .to_owned();
            session_actors.insert(session.clone(), format!("operator:{}", e.name));
            match *who {
                "operator-stale" => {
                    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
                }
                "operator-locked" => {
                    for _ in 0..5 {
                        let r = s
                            .client
                            .post(s.url("/v1/operators/sign-in"))
                            .json(&json!({ "name": e.name, "password": "guess", "totp": "000000" }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), 401);
                    }
                }
                "operator-signed-out" => {
                    let r = s
                        .client
                        .post(s.url("/v1/operators/sign-out"))
                        .header("authorization", bearer(&session))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 204);
                    // An ended session names no operator.
                    session_actors.remove(&session);
                }
                _ => {}
            }
            sessions.insert(*who, session);
        }
        let k = caller_key(who, &sessions);
        for (endpoint, want) in ENDPOINTS.iter().zip(expected) {
            let (method, path) = endpoint.split_once(' ').unwrap();
            let subject = if *endpoint == "DELETE /v1/subjects/{id}" {
                fresh_subjects += 1;
                subject_with_a_value(format!("cust-erase-{fresh_subjects}")).await
            } else {
                exported.clone()
            };
            let path = &path.replace("{id}", &subject);
            // A fresh PAN token per delete, tokenized by the (unlimited) checkout key.
            let token = if *endpoint == "DELETE /v1/tokens/{token}" {
                s.tokenize_value(&keys, FieldKind::Pan, VISA, "random")
                    .await["token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            } else {
                shared.clone()
            };
            s.vault.flush_denials(true).await.unwrap();
            if *who == "throttled-address" {
                // This address has just failed to authenticate as often as it may in a minute.
                for _ in 0..5 {
                    let r = s
                        .client
                        .get(s.url("/v1/me"))
                        .header("authorization", bearer("not-a-key"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 401);
                }
            }
            let before = common::audit_all(s.vault.store()).await.len();
            let mut req = match method {
                "GET" => s.client.get(s.url(path)),
                "POST" => s.client.post(s.url(path)),
                _ => s.client.delete(s.url(&path.replace("{token}", &token))),
            };
            if !k.is_empty() {
                req = req.header("authorization", bearer(&k));
            }
            req = match path.as_str() {
                "/v1/tokenize" => {
                    let env = s.seal(FieldKind::Pan, VISA).await;
                    req.json(&json!({ "items": [{ "envelope": env }] }))
                }
                "/v1/detokenize" => req.json(&json!({ "tokens": [token], "purpose": "matrix" })),
                // Nobody is locked: an operator who may unlock hears so (404).
                "/v1/locks/unlock" => req.json(&json!({ "caller": "apikey:0123456789ab" })),
                "/v1/operators/sign-in" => {
                    req.json(&json!({ "name": "nobody", "password": "not it", "totp": "000000" }))
                }
                "/v1/operators/step-up" => {
                    let code = if enrolled.contains_key(who) {
                        totp(who, 1)
                    } else {
                        "000000".to_owned()
                    };
                    req.json(&json!({ "totp": code }))
                }
                _ => req,
            };
            let got = req.send().await.unwrap().status().as_u16();
            if got != *want {
                mismatches.push(format!("{who} x {endpoint}: {got}, expected {want}"));
                continue;
            }
            // The request's audit entries: a denial is one entry of this caller and action.
            s.vault.flush_denials(true).await.unwrap();
            let log = common::audit_all(s.vault.store()).await;
            let denied: Vec<_> = log[before..]
                .iter()
                .filter(|e| e.outcome == "denied")
                .collect();
            if *who == "throttled-address" && *want == 429 {
                // Refused before its key is looked at: counted with the address's failures
                // (one summary entry, no key id), the reason named.
                let ok = denied.len() == 1
                    && denied[0].action == "auth"
                    && denied[0].actor == "anonymous"
                    && denied[0].detail.contains("throttled address: 1)");
                if !ok {
                    mismatches.push(format!("{who} x {endpoint}: not audited: {denied:?}"));
                }
            } else if matches!(want, 401 | 403 | 429) {
                let action = denied_action(endpoint, *want);
                let expected_actor = if *endpoint == "POST /v1/operators/sign-in" {
                    "operator:nobody".to_owned()
                } else {
                    actor(&k, &session_actors)
                };
                let ok = denied.iter().map(|e| common::denials_in(e)).sum::<u64>() == 1
                    && denied
                        .iter()
                        .all(|e| e.action == action && e.actor == expected_actor);
                if !ok {
                    mismatches.push(format!(
                        "{who} x {endpoint}: {want} not audited as one {action} denial of {expected_actor}: {denied:?}"
                    ));
                }
            } else if !denied.is_empty() && *who != "throttled-address" {
                mismatches.push(format!("{who} x {endpoint}: {want} audited as a denial"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // The deletes took only their own tokens.
    let (_, body) = s
        .detokenize(&keys.payments, &[&shared], "after the matrix")
        .await;
    assert_eq!(body["results"][0]["ok"], true, "{body}");
}

/// Where schemathesis (`scripts/api-fuzz.sh`) found the document and the server apart: each
/// request here is answered as the document says.
#[tokio::test]
async fn document_and_server_agree_on_the_edges() {
    let (_dir, keys, s) = setup("edges").await;
    let pan = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    let token = pan["token"].as_str().unwrap();

    // `format: null` is the default format.
    let env = s.seal(FieldKind::Email, EMAIL).await;
    let (status, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": env, "format": null }]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["format"], "random", "{body}");

    // `ttl_secs` is a JSON Schema integer: `60.0` is 60, null is none; a fraction or a negative
    // number is not one (400). `subject: null` is no subject.
    for (ttl, subject) in [(json!(60.0), json!(null)), (json!(null), json!("cust-1"))] {
        let env = s.seal(FieldKind::Email, EMAIL).await;
        let (status, body) = s
            .tokenize(
                &keys.checkout,
                json!([{ "envelope": env, "ttl_secs": ttl, "subject": subject }]),
            )
            .await;
        assert_eq!(
            (status, &body["results"][0]["ok"]),
            (200, &json!(true)),
            "{body}"
        );
    }
    for ttl in [json!(60.5), json!(-1)] {
        let env = s.seal(FieldKind::Email, EMAIL).await;
        let (status, body) = s
            .tokenize(
                &keys.checkout,
                json!([{ "envelope": env, "ttl_secs": ttl }]),
            )
            .await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{ttl}");
    }

    // A purpose of 200 characters (`maxLength` counts characters, not bytes) is accepted; 201,
    // white space only, or a control character are refused.
    let long = "é".repeat(200);
    let (status, body) = s.detokenize(&keys.payments, &[token], &long).await;
    assert_eq!(status, 200, "{body}");
    for bad in [&"é".repeat(201), "\u{3000} \u{a0}", "refund\u{7}"] {
        let (status, body) = s.detokenize(&keys.payments, &[token], bad).await;
        assert_eq!((status, code(&body)), (400, "purpose_required"), "{bad:?}");
    }
    // The same token twice: `uniqueItems`.
    let (status, body) = s.detokenize(&keys.payments, &[token, token], "twice").await;
    assert_eq!((status, code(&body)), (400, "duplicate_tokens"));

    // `expect_head` exactly as its pattern `^[1-9][0-9]{0,17}:[0-9a-f]{64}$`.
    let (_, verified) = s.get(&keys.auditor, "/v1/audit/verify").await;
    let head = verified["head"].as_str().unwrap().to_owned();
    let (seq, hash) = head.split_once(':').unwrap();
    let (status, body) = s
        .get(
            &keys.auditor,
            &format!("/v1/audit/verify?expect_head={head}"),
        )
        .await;
    assert_eq!((status, &body["intact"]), (200, &json!(true)), "{body}");
    for bad in [
        format!("0{seq}:{hash}"),
        format!("{seq}:{}", hash.to_uppercase()),
        format!("+{seq}:{hash}"),
        format!("1234567890123456789:{hash}"),
        format!("0:{hash}"),
    ] {
        let (status, body) = s
            .get(
                &keys.auditor,
                &format!("/v1/audit/verify?expect_head={}", bad.replace('+', "%2B")),
            )
            .await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }

    // What the document says of these parameters.
    let (_, doc) = s.get("", "/v1/openapi.json").await;
    let detok = &doc["components"]["schemas"]["DetokenizeRequest"]["properties"];
    assert_eq!(detok["tokens"]["uniqueItems"], true);
    assert_eq!(detok["purpose"]["maxLength"], 200);
    let audit = &doc["paths"]["/v1/audit"]["get"]["parameters"][0]["schema"];
    assert_eq!(audit["maximum"], i64::MAX);
}

#[tokio::test]
async fn replayed_envelopes_are_refused_also_after_restart() {
    let dir = TempDir::new("replay");
    let keys = init(&dir.0).await;
    let s = Server::start(&dir.0).await;
    let env = s.seal(FieldKind::Pan, VISA).await;
    let (_, first) = s
        .tokenize(&keys.checkout, json!([{ "envelope": env }]))
        .await;
    assert_eq!(first["results"][0]["ok"], true);
    let (_, again) = s
        .tokenize(&keys.checkout, json!([{ "envelope": env }]))
        .await;
    assert_eq!(code(&again["results"][0]), "replayed");
    // In one batch too.
    let env2 = s.seal(FieldKind::Pan, VISA).await;
    let (_, batch) = s
        .tokenize(
            &keys.checkout,
            json!([{ "envelope": env2 }, { "envelope": env2 }]),
        )
        .await;
    assert_eq!(batch["results"][0]["ok"], true);
    assert_eq!(code(&batch["results"][1]), "replayed");
    s.stop().await;

    let s = Server::start(&dir.0).await;
    let (_, after) = s
        .tokenize(&keys.checkout, json!([{ "envelope": env }]))
        .await;
    assert_eq!(code(&after["results"][0]), "replayed");
    s.stop().await;
}

#[tokio::test]
async fn stale_future_tampered_and_unknown_key_envelopes_are_refused() {
    let (_dir, keys, s) = setup("refusals").await;
    let ks = s.key_set().await;
    let t = ks.server_time();
    let stale = seal_to(&ks, FieldKind::Email, EMAIL, t - 601);
    let fresh_edge = seal_to(&ks, FieldKind::Email, EMAIL, t - 500);
    let future = seal_to(&ks, FieldKind::Email, EMAIL, t + 120);
    let skew_ok = seal_to(&ks, FieldKind::Email, EMAIL, t + 30);

    let good = seal_to(&ks, FieldKind::Email, EMAIL, t);
    let flip = |env: &str, at: usize| {
        let mut b = env.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let tampered_ct = flip(&good, good.len() - 3);
    // Inside the envelope id (after a 20-character kid): the header is authenticated too.
    let tampered_header = flip(&good, 66);

    let foreign = OpeningKey::<P256>::generate(KeyId::new("k-not-here").unwrap()).unwrap();
    let foreign_set = KeySet::new(vec![foreign.recipient(t - 10, t + 1000)], t).unwrap();
    let unknown = seal_to(&foreign_set, FieldKind::Email, EMAIL, t);

    let (status, body) = s
        .tokenize(
            &keys.checkout,
            json!([
                { "envelope": stale }, { "envelope": fresh_edge }, { "envelope": future },
                { "envelope": skew_ok }, { "envelope": tampered_ct }, { "envelope": tampered_header },
                { "envelope": unknown }, { "envelope": "fse1.AQ" }, { "envelope": "hello" },
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| if r["ok"] == true { "ok" } else { code(r) })
        .collect();
    assert_eq!(
        codes,
        [
            "stale",
            "ok",
            "future_dated",
            "ok",
            "authentication_failed",
            "authentication_failed",
            "unknown_key",
            "malformed_envelope",
            "malformed_envelope",
        ]
    );
    // Tampering is reported identically wherever it happened.
    assert_eq!(body["results"][4]["error"], body["results"][5]["error"]);

    // Values are validated for their kind after opening.
    let bad_pan = s.seal(FieldKind::Pan, "4111111111111112").await;
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": bad_pan }]))
        .await;
    assert_eq!(code(&body["results"][0]), "card_luhn_mismatch");
}

#[tokio::test]
async fn rotation_keeps_old_envelopes_opening_until_retirement() {
    let (_dir, keys, s) = setup("rotation").await;
    let old = s.key_set().await;
    let old_kid = old.primary().kid.as_str().to_owned();
    let before = seal_to(&old, FieldKind::Name, "Jane Doe", old.server_time());
    let before2 = seal_to(&old, FieldKind::Name, "Jane Doe", old.server_time());

    let vault = &s.vault;
    let admin = common::admin_of(&s).await;
    let new_kid = admin.rotate_key().await.unwrap();
    vault.reload_keys().await.unwrap();

    let ks = s.key_set().await;
    assert_eq!(ks.primary().kid.as_str(), new_kid);
    assert_eq!(ks.keys().len(), 2);
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": before }]))
        .await;
    assert_eq!(
        body["results"][0]["ok"], true,
        "old-key envelope after rotation: {body}"
    );
    let after = s
        .tokenize_value(&keys, FieldKind::Name, "Jane Doe", "random")
        .await;
    assert_eq!(after["ok"], true);

    admin.retire_key_now(&old_kid).await.unwrap();
    vault.reload_keys().await.unwrap();
    let (_, body) = s
        .tokenize(&keys.checkout, json!([{ "envelope": before2 }]))
        .await;
    assert_eq!(code(&body["results"][0]), "unknown_key");
    assert_eq!(s.key_set().await.keys().len(), 1);
    // The last live key cannot be retired.
    assert!(admin.retire_key(&new_kid).await.is_err());
}

#[tokio::test]
async fn token_formats_and_fingerprints() {
    let dir = TempDir::new("formats");
    let keys = init(&dir.0).await;
    // Fingerprints and deterministic tokens are permissions of their own.
    let policy =
        common::policy_granting("checkout", "fingerprint = [\"*\"]\ndeterministic = [\"*\"]");
    let s = Server::start_with(common::settings_with_policy(&dir.0, &policy)).await;
    for pan in [VISA, MC2, AMEX] {
        let r = s
            .tokenize_value(&keys, FieldKind::Pan, pan, "format_preserving")
            .await;
        let t = r["token"].as_str().unwrap();
        assert_eq!(t.len(), pan.len(), "{t}");
        assert_eq!(&t[..6], &pan[..6]);
        assert_eq!(&t[t.len() - 4..], &pan[pan.len() - 4..]);
        assert!(
            !luhn_valid(t.as_bytes()),
            "format-preserving token {t} passes Luhn"
        );
        assert_ne!(t, pan);
        let (_, body) = s.detokenize(&keys.payments, &[t], "verify fpe").await;
        assert_eq!(body["results"][0]["value"], pan);
    }
    let r = s
        .tokenize_value(&keys, FieldKind::Email, EMAIL, "format_preserving")
        .await;
    assert_eq!(code(&r), "unsupported_format");

    let d1 = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "deterministic")
        .await;
    let d2 = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "deterministic")
        .await;
    let d3 = s
        .tokenize_value(&keys, FieldKind::Pan, MC2, "deterministic")
        .await;
    assert_eq!(d1["token"], d2["token"]);
    assert_ne!(d1["token"], d3["token"]);
    assert!(d1["token"].as_str().unwrap().starts_with("tokd_"));

    let r1 = s
        .tokenize_value(&keys, FieldKind::Email, EMAIL, "random")
        .await;
    let r2 = s
        .tokenize_value(&keys, FieldKind::Email, "Jane.Doe@Example.com", "random")
        .await;
    let r3 = s
        .tokenize_value(&keys, FieldKind::Email, "john@example.com", "random")
        .await;
    assert_ne!(r1["token"], r2["token"]);
    assert_eq!(
        r1["fingerprint"], r2["fingerprint"],
        "same e-mail, same fingerprint"
    );
    assert_ne!(r1["fingerprint"], r3["fingerprint"]);
    assert_eq!(
        d1["fingerprint"],
        s.tokenize_value(&keys, FieldKind::Pan, VISA, "random")
            .await["fingerprint"]
    );
}

#[tokio::test]
async fn api_errors_are_json_with_codes() {
    let (_dir, keys, s) = setup("errors").await;
    let post = |path: &str, body: String| {
        s.client
            .post(s.url(path))
            .bearer_auth(&keys.payments)
            .header("content-type", "application/json")
            .body(body)
    };
    let r = post("/v1/tokenize", "{not json".into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(code(&b), "bad_request");

    let r = post(
        "/v1/tokenize",
        format!(
            "{{\"items\":[{{\"envelope\":\"{}\"}}]}}",
            "A".repeat(2_000_000)
        ),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(code(&r.json().await.unwrap()), "payload_too_large");

    let items: Vec<Value> = (0..101).map(|_| json!({ "envelope": "fse1.AQ" })).collect();
    let (status, body) = s.tokenize(&keys.checkout, json!(items)).await;
    assert_eq!((status, code(&body)), (413, "batch_too_large"));
    let (status, body) = s.tokenize(&keys.checkout, json!([])).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    let r = s.client.get(s.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let id = r
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 16);
    assert_eq!(code(&r.json().await.unwrap()), "not_found");
    let r = s
        .client
        .get(s.url("/healthz"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let r = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.client.get(s.url("/v1/keys")).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "public, no-cache");

    // Well-formed JSON of the wrong shape is a 400 that quotes nothing back.
    let r = post("/v1/tokenize", r#"{"items":"4111111111111111"}"#.into())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(!text.contains("4111111111111111"), "{text}");
    let r = post(
        "/v1/detokenize",
        r#"{"tokens":["a"],"purpose":"x","extra":1}"#.into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .post(s.url("/v1/tokenize"))
        .bearer_auth(&keys.payments)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let (_dir, keys, s) = setup("openapi").await;
    let doc: Value = s
        .client
        .get(s.url("/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = fieldseal_vault::http::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Every listed route exists on the server (a matched route never answers the fallback 404).
    for (method, path) in &routed {
        let url = s.url(&path.replace("{token}", "tok_x"));
        let r = s
            .client
            .request(fieldseal_vault::http::method(method).unwrap(), url)
            .bearer_auth(&keys.payments)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            !(status == 404 && body["error"]["message"] == "no such endpoint"),
            "{method} {path} is documented but not routed"
        );
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let (_dir, keys, mut s) = setup("shutdown").await;
    let ks = s.key_set().await;
    let items: Vec<Value> = (0..100)
        .map(|_| json!({ "envelope": seal_to(&ks, FieldKind::Pan, VISA, ks.server_time()) }))
        .collect();
    let request = s
        .client
        .post(s.url("/v1/tokenize"))
        .bearer_auth(&keys.checkout)
        .json(&json!({ "items": items }))
        .send();
    let pending = tokio::spawn(request);
    // Let the request reach the server, then ask it to stop while the batch is being processed.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    s.shutdown().await;
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let ok = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == true)
        .count();
    assert_eq!(ok, 100);
}

#[tokio::test]
async fn a_full_disk_gets_a_clear_error_and_loses_nothing() {
    let (_dir, keys, s) = setup("full").await;
    let kept = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    let kept = kept["token"].as_str().unwrap().to_owned();
    let store = s.vault.store().sqlite().unwrap();
    let pages = store.page_count().await.unwrap();
    store.limit_pages(pages).await.unwrap();

    let ks = s.key_set().await;
    let mut refused = Vec::new();
    for _ in 0..200 {
        let envelopes: Vec<String> = (0..50)
            .map(|_| seal_to(&ks, FieldKind::Email, EMAIL, ks.server_time()))
            .collect();
        let items: Vec<Value> = envelopes.iter().map(|e| json!({ "envelope": e })).collect();
        let (status, body) = s.tokenize(&keys.checkout, json!(items)).await;
        assert_eq!(status, 200, "{body}");
        for (env, r) in envelopes.iter().zip(body["results"].as_array().unwrap()) {
            if r["ok"] != true {
                assert_eq!(code(r), "storage_full", "{r}");
                refused.push(env.clone());
            }
        }
        if !refused.is_empty() {
            break;
        }
    }
    assert!(!refused.is_empty(), "the capped database never filled up");

    // What was stored before is intact and still revealed.
    store.limit_pages(1_000_000).await.unwrap();
    let (_, body) = s
        .detokenize(&keys.payments, &[&kept], "after disk full")
        .await;
    assert_eq!(body["results"][0]["value"], VISA);
    // The refused envelopes were not consumed: they go through once there is room.
    let items: Vec<Value> = refused.iter().map(|e| json!({ "envelope": e })).collect();
    let (_, body) = s.tokenize(&keys.checkout, json!(items)).await;
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["ok"] == true),
        "{body}"
    );
    let v = common::admin_of(&s).await.verify_audit(None).await.unwrap();
    assert!(v.intact(), "{v:?}");
}

#[tokio::test]
async fn card_security_codes_are_revealed_once_and_never_fingerprinted() {
    let (_dir, keys, s) = setup("cvc").await;
    let cvc = s
        .tokenize_value(&keys, FieldKind::Cvc, "737", "random")
        .await;
    assert_eq!(cvc["ok"], true);
    assert!(
        cvc.get("fingerprint").is_none(),
        "a CVC fingerprint would reveal it: {cvc}"
    );
    let det = s
        .tokenize_value(&keys, FieldKind::Cvc, "737", "deterministic")
        .await;
    assert_eq!(code(&det), "unsupported_format");
    let exp = s
        .tokenize_value(&keys, FieldKind::Expiry, "12/30", "deterministic")
        .await;
    assert_eq!(code(&exp), "unsupported_format");
    let token = cvc["token"].as_str().unwrap().to_owned();

    let (status, body) = s
        .detokenize(&keys.payments, &[&token, &token], "twice in one")
        .await;
    assert_eq!((status, code(&body)), (400, "duplicate_tokens"));

    // Many concurrent reveals: exactly one sees the code.
    let mut pending = Vec::new();
    for _ in 0..8 {
        let (client, url, key, token) = (
            s.client.clone(),
            s.url("/v1/detokenize"),
            keys.payments.clone(),
            token.clone(),
        );
        pending.push(tokio::spawn(async move {
            let r: Value = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "tokens": [token], "purpose": "authorize" }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["results"][0]["value"] == "737"
        }));
    }
    let mut disclosed = 0;
    for p in pending {
        disclosed += usize::from(p.await.unwrap());
    }
    assert_eq!(disclosed, 1);
}

#[tokio::test]
async fn malformed_field_values_get_clear_errors_and_the_vault_keeps_serving() {
    let (_dir, keys, s) = setup("values").await;
    for (kind, value, want) in [
        (FieldKind::Expiry, "1é1", "expiry_invalid"),
        (FieldKind::Expiry, "1\u{ff12}29", "expiry_invalid"),
        (FieldKind::Expiry, "13/30", "expiry_invalid_month"),
        (FieldKind::Cvc, "12a", "cvc_invalid"),
        (FieldKind::Phone, "☎ 555", "phone_invalid"),
        (FieldKind::Name, "\u{7}", "value_invalid"),
        (FieldKind::Pan, "41111111111111", "card_invalid_length"),
    ] {
        let r = s.tokenize_value(&keys, kind, value, "random").await;
        assert_eq!(code(&r), want, "{kind} {value:?}: {r}");
    }
    let r = s.client.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn per_kind_permissions_refuse_items_not_requests() {
    let dir = TempDir::new("perkind");
    let _keys = init(&dir.0).await;
    let policy = dir.0.join("policy.toml");
    std::fs::write(
        &policy,
        "[roles.emails]\ntokenize = [\"email\"]\nreveal_masked = [\"email\"]\ndelete = [\"email\"]\n\n\
         [roles.payments]\ntokenize = [\"*\"]\nreveal_plain = [\"*\"]\n",
    )
    .unwrap();
    let mut settings = common::settings(&dir.0);
    settings.policy_file = Some(policy);
    let emails = common::add_key(&settings, "emails").await;
    let payments = common::add_key(&settings, "payments").await;
    let s = Server::start_with(settings).await;
    let pan = s.seal(FieldKind::Pan, VISA).await;
    let email = s.seal(FieldKind::Email, EMAIL).await;
    let (status, body) = s
        .tokenize(&emails, json!([{ "envelope": pan }, { "envelope": email }]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(code(&body["results"][0]), "forbidden");
    assert_eq!(body["results"][1]["ok"], true);
    let email_token = body["results"][1]["token"].as_str().unwrap().to_owned();
    let (_, body) = s
        .tokenize(
            &payments,
            json!([{ "envelope": s.seal(FieldKind::Pan, VISA).await }]),
        )
        .await;
    let pan_token = body["results"][0]["token"].as_str().unwrap().to_owned();
    // May delete e-mail tokens, not card tokens.
    assert_eq!(s.delete(&emails, &pan_token).await, 403);
    assert_eq!(s.delete(&emails, &email_token).await, 204);
    // A card number sent where a token belongs never reaches the audit log.
    let (_, body) = s.detokenize(&payments, &[VISA], "mistake").await;
    assert_eq!(code(&body["results"][0]), "not_found");
    let log = common::audit_all(s.vault.store()).await;
    assert!(
        log.iter()
            .all(|e| e.token.as_deref() != Some(VISA) && !e.detail.contains(VISA))
    );
}

#[tokio::test]
async fn audit_log_is_paged_and_verified_over_http() {
    let (dir, keys, s) = setup("audit-http").await;
    let pan = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    let token = pan["token"].as_str().unwrap();
    let (status, _) = s
        .detokenize(&keys.support, &[token], "audit-http-call-77")
        .await;
    assert_eq!(status, 200);

    // Who a key is: role and permissions, for a console.
    let (status, me) = s.get(&keys.support, "/v1/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["role"], "support");
    assert_eq!(
        me["permissions"]["reveal_masked"],
        json!(["pan", "email", "phone", "name"])
    );
    assert_eq!(me["permissions"]["audit"], false);
    assert!(keys.support.contains(me["key_id"].as_str().unwrap()));
    assert_eq!(s.get(&keys.revoked, "/v1/me").await.0, 401);
    assert_eq!(s.get("", "/v1/me").await.0, 401);

    // Paged in order; the reveal is there with who, why and the outcome, and no value.
    let (status, first) = s.get(&keys.auditor, "/v1/audit?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    assert_eq!(first["entries"][0]["seq"], 1);
    let next = first["next_after"].as_i64().unwrap();
    assert_eq!(next, 2);
    let (_, rest) = s
        .get(&keys.auditor, &format!("/v1/audit?after={next}&limit=1000"))
        .await;
    let rest = rest["entries"].as_array().unwrap();
    assert_eq!(rest[0]["seq"], 3);
    let reveal = rest
        .iter()
        .find(|e| e["action"] == "reveal")
        .expect("the reveal is audited");
    assert_eq!(reveal["token"], token);
    assert_eq!(reveal["purpose"], "audit-http-call-77");
    assert_eq!(reveal["outcome"], "masked");
    let all = serde_json::to_string(&rest).unwrap();
    assert!(!all.contains(VISA) && !all.contains("411111******1111"));
    for bad in [
        "/v1/audit?limit=0",
        "/v1/audit?after=-1",
        "/v1/audit?limit=x",
        "/v1/audit?x=1",
    ] {
        let (status, body) = s.get(&keys.auditor, bad).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }

    // Each read of the log is audited, before it happens.
    let reads: Vec<_> = rest
        .iter()
        .filter(|e| e["action"] == "audit.read")
        .collect();
    assert_eq!(reads.len(), 2, "{rest:?}");
    assert!(
        keys.auditor
            .contains(&reads[0]["actor"].as_str().unwrap()[7..])
    );

    let (status, v) = s.get(&keys.auditor, "/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(v["intact"], true, "{v}");
    // Everything listed, plus the verification's own entry.
    let total = rest.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(v["verified"], total + 1);

    // Verifying while other requests append entries: never a false alarm.
    let appenders: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, key) = (
                s.client.clone(),
                s.url("/v1/audit?limit=1"),
                keys.auditor.clone(),
            );
            tokio::spawn(async move {
                for _ in 0..50 {
                    // Each read of the log is itself audited: an append.
                    let r = client.get(&url).bearer_auth(&key).send().await;
                    assert_eq!(r.unwrap().status().as_u16(), 200);
                }
            })
        })
        .collect();
    for _ in 0..20 {
        let (_, v) = s.get(&keys.auditor, "/v1/audit/verify").await;
        assert_eq!(
            v["intact"], true,
            "a live vault reported a broken chain: {v}"
        );
    }
    for a in appenders {
        a.await.unwrap();
    }

    // One changed purpose in the database: the verification names that entry.
    let seq = reveal["seq"].as_i64().unwrap();
    let conn = rusqlite::Connection::open(dir.0.join("vault.db")).unwrap();
    conn.execute(
        "UPDATE audit SET purpose = 'audit-http-call-78' WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    drop(conn);
    let (_, v) = s.get(&keys.auditor, "/v1/audit/verify").await;
    assert_eq!(v["intact"], false, "{v}");
    assert_eq!(v["broken"]["seq"], seq, "{v}");
    assert_eq!(v["verified"], seq - 1);
}

/// The enumeration a key able to tokenize could run: seal every card number with a known BIN and
/// last four (about 10^5 for 16 digits) and compare what comes back with what a real card gave.
/// The built-in checkout role gets nothing to compare (no fingerprint, no deterministic token,
/// no BIN). A role granted fingerprints is held to its rate: see the next test.
#[tokio::test]
async fn least_privilege_stops_card_number_enumeration() {
    let (_dir, keys, s) = setup("enumerate").await;
    let victim = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    let det = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "deterministic")
        .await;
    assert_eq!(code(&det), "forbidden", "{det}");
    // Candidates sharing the victim's BIN and last four, the right one among them: every result
    // has the same fields with the same public values, the token aside.
    let ks = s.key_set().await;
    let candidates: Vec<String> = (0..10_000u32)
        .map(|m| format!("411111{m:06}1111"))
        .filter(|n| luhn_valid(n.as_bytes()))
        .take(99)
        .chain([VISA.to_owned()])
        .collect();
    let items: Vec<Value> = candidates
        .iter()
        .map(|n| json!({ "envelope": seal_to(&ks, FieldKind::Pan, n, ks.server_time()) }))
        .collect();
    let (status, body) = s.tokenize(&keys.checkout, json!(items)).await;
    assert_eq!(status, 200, "{body}");
    let public = |r: &Value| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("token");
        r
    };
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 100);
    for r in results {
        assert_eq!(
            public(r),
            public(&victim),
            "a result tells candidates apart"
        );
        assert_ne!(r["token"], victim["token"]);
    }
}

/// A role granted fingerprints could enumerate, so its rate is what bounds it; hints beyond
/// brand and last four come only when granted.
#[tokio::test]
async fn granted_fingerprints_and_reveals_are_rate_limited() {
    let dir = TempDir::new("rates");
    let keys = init(&dir.0).await;
    let policy = common::policy_granting("checkout", "fingerprint = [\"pan\"]")
        .replace("hints = [\"brand\", \"last4\"]", "hints = [\"*\"]")
        .replace(
            "rate.tokenize = { per_minute = 6000, burst = 1000 }",
            // One a minute: nothing comes back while the test runs.
            "rate.tokenize = { per_minute = 1, burst = 20 }",
        )
        .replace(
            "rate.reveal = { per_minute = 600, burst = 100 }",
            "rate.reveal = { per_minute = 1, burst = 3 }",
        );
    let s = Server::start_with(common::settings_with_policy(&dir.0, &policy)).await;
    let r = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await;
    assert!(r["fingerprint"].as_str().unwrap().starts_with("fp_"), "{r}");
    assert_eq!(r["bin"], "411111");
    let email = s
        .tokenize_value(&keys, FieldKind::Email, EMAIL, "random")
        .await;
    assert!(email.get("fingerprint").is_none(), "{email}");
    let ks = s.key_set().await;
    let batch =
        |n: usize| -> Value {
            json!((0..n)
            .map(|_| json!({ "envelope": seal_to(&ks, FieldKind::Pan, VISA, ks.server_time()) }))
            .collect::<Vec<_>>())
        };
    // 2 used, 18 left of 20: a batch of 21 can never pass, one of 19 must wait.
    let (status, body) = s.tokenize(&keys.checkout, batch(21)).await;
    assert_eq!((status, code(&body)), (413, "batch_too_large"), "{body}");
    let refused = s
        .client
        .post(s.url("/v1/tokenize"))
        .bearer_auth(&keys.checkout)
        .json(&json!({ "items": batch(19) }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(code(&refused.json().await.unwrap()), "rate_limited");
    let (status, _) = s.tokenize(&keys.checkout, batch(18)).await;
    assert_eq!(status, 200);

    let token = r["token"].as_str().unwrap();
    for _ in 0..3 {
        let (status, body) = s.detokenize(&keys.payments, &[token], "capture").await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = s.detokenize(&keys.payments, &[token], "capture").await;
    assert_eq!((status, code(&body)), (429, "rate_limited"), "{body}");
    // support has a bucket of its own.
    let (status, _) = s.detokenize(&keys.support, &[token], "call").await;
    assert_eq!(status, 200);
    // Audited: the first refusal of each minute at once, with the client address, the rest
    // counted in one entry when the minute is over (here: at once).
    let log = common::audit_all(s.vault.store()).await;
    assert!(
        log.iter().any(|e| e.action == "tokenize"
            && e.outcome == "denied"
            && e.detail.contains("21 items at once, burst 20")
            && e.detail.ends_with("from 127.0.0.1")),
        "the refusal is not audited"
    );
    s.vault.flush_denials(true).await.unwrap();
    let log = common::audit_all(s.vault.store()).await;
    assert!(
        log.iter().any(|e| e.action == "tokenize"
            && e.outcome == "denied"
            && e.detail
                .starts_with("1 more tokenize requests over the rate from 127.0.0.1")
            && e.detail.contains("rate limited: 1")),
        "the refusal is not counted"
    );
    let me = s.get(&keys.checkout, "/v1/me").await.1;
    assert_eq!(me["permissions"]["fingerprint"], json!(["pan"]));
    assert_eq!(me["permissions"]["hints"], json!(["brand", "bin", "last4"]));
}

/// Where the OpenAPI document and the server used to disagree: 405 and query errors answer in
/// the API's error shape, 415 is documented, request bodies refuse unknown members and say so.
#[tokio::test]
async fn errors_are_in_the_documented_shape() {
    let (_dir, keys, s) = setup("shape").await;
    let r = s.client.put(s.url("/v1/tokenize")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(code(&r.json().await.unwrap()), "method_not_allowed");
    let (status, body) = s
        .get(&keys.auditor, "/v1/audit?after=99999999999999999999")
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the query takes")
    );
    let doc = fieldseal_vault::openapi::document();
    for path in ["/v1/tokenize", "/v1/detokenize"] {
        assert!(
            doc["paths"][path]["post"]["responses"]["415"].is_object(),
            "{path}"
        );
    }
    for schema in ["TokenizeRequest", "DetokenizeRequest"] {
        assert_eq!(
            doc["components"]["schemas"][schema]["additionalProperties"], false,
            "{schema}"
        );
    }
    let (status, body) = s
        .tokenize(
            &keys.checkout,
            json!([{ "envelope": "fse1.x", "extra": 1 }]),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "bad_request"), "{body}");
}
