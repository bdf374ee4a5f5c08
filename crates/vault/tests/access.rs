//! Failed authentications against the real server: a flood of bad keys grows the audit log by a
//! bounded amount, throttles the address it comes from and leaves other clients served; client
//! addresses (and forwarded ones from a trusted proxy only) reach the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::IpAddr;
use std::sync::Arc;

use common::{Server, TempDir, init};
use fieldseal_core::envelope::FieldKind;
use fieldseal_vault::store::Store;
use serde_json::json;

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("vault.db"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_keys_grow_the_log_by_a_bounded_amount() {
    let dir = TempDir::new("badkeys");
    let keys = init(&dir.0).await;
    let s = Server::start(&dir.0).await;
    let token = s
        .tokenize_value(&keys, FieldKind::Pan, "4111111111111111", "random")
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let entries_before = common::audit_all(s.vault.store()).await.len();
    let bytes_before = db_bytes(&dir.0);

    // The attacker, from 127.0.0.2: unknown key ids, malformed keys, a real id with a wrong
    // secret, 16 connections at a time.
    const REQUESTS: usize = 10_000;
    const TASKS: usize = 16;
    let attacker = client_from("127.0.0.2");
    let real_id = keys.payments[4..16].to_owned();
    let url = s.url("/v1/detokenize");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (http, url, real_id) = (attacker.clone(), url.clone(), real_id.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in (t..REQUESTS).step_by(TASKS) {
                let key = match i % 3 {
                    0 => format!("fsk_{i:012x}_{}", "A".repeat(43)),
                    1 => "not-a-key".to_owned(),
                    _ => format!("fsk_{real_id}_{}", "B".repeat(43)),
                };
                let r = http
                    .post(&url)
                    .bearer_auth(key)
                    .json(&json!({ "tokens": ["tok_x"], "purpose": "guess" }))
                    .send()
                    .await
                    .unwrap();
                statuses.push(r.status().as_u16());
            }
            statuses
        }));
    }
    // Meanwhile a valid client from another address keeps being served.
    let valid = client_from("127.0.0.1");
    let mut served = 0;
    while tasks.iter().any(|t| !t.is_finished()) {
        let r = valid
            .post(s.url("/v1/detokenize"))
            .bearer_auth(&keys.payments)
            .json(&json!({ "tokens": [token], "purpose": "capture" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "a valid client was refused during the flood"
        );
        served += 1;
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    assert_eq!(statuses.len(), REQUESTS);
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "unexpected statuses"
    );
    assert!(throttled >= REQUESTS - 100, "only {throttled} throttled");
    assert!(served > 0);
    // The throttled address is refused even with a valid key until its minute ends; others not.
    let r = attacker
        .get(s.url("/v1/me"))
        .bearer_auth(&keys.support)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failures");

    // The log grew by a few entries, not by one per request; every failure is still counted.
    s.vault.flush_denials(true).await.unwrap();
    let log = common::audit_all(s.vault.store()).await;
    let new: Vec<_> = log[entries_before..]
        .iter()
        .filter(|e| e.action == "auth")
        .collect();
    assert!(new.len() <= 40, "{} audit entries for the flood", new.len());
    let summed: u64 = new
        .iter()
        .map(|e| {
            e.detail
                .split_once(" more failed authentications")
                .map_or(1, |(n, _)| n.parse::<u64>().unwrap())
        })
        .sum();
    assert_eq!(
        summed,
        REQUESTS as u64 + 1,
        "failures not all counted (the refused valid key included)"
    );
    assert!(new.iter().all(|e| e.detail.contains("127.0.0.2")));
    let grown = db_bytes(&dir.0).saturating_sub(bytes_before);
    assert!(grown < 1024 * 1024, "database grew by {grown} bytes");
    let v = common::admin_of(&s).await.verify_audit(None).await.unwrap();
    assert!(v.intact());
}

#[tokio::test]
async fn the_client_address_is_audited_and_forwarded_only_by_a_trusted_proxy() {
    let dir = TempDir::new("forwarded");
    let keys = init(&dir.0).await;
    let mut settings = common::settings(&dir.0);
    settings.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let s = Arc::new(Server::start_with(settings).await);
    for (from, forwarded) in [("127.0.0.1", "203.0.113.5"), ("127.0.0.3", "203.0.113.6")] {
        let r = client_from(from)
            .get(s.url("/v1/me"))
            .header("x-forwarded-for", forwarded)
            .bearer_auth("not-a-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let log = common::audit_all(s.vault.store()).await;
    let details: Vec<&str> = log
        .iter()
        .filter(|e| e.action == "auth")
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.ends_with("from 203.0.113.5 via 127.0.0.1")),
        "{details:?}"
    );
    // From a peer that is no trusted proxy, the header is ignored.
    assert!(
        details.iter().any(|d| d.ends_with("from 127.0.0.3")),
        "{details:?}"
    );
    assert!(!details.iter().any(|d| d.contains("203.0.113.6")));

    // Every entry of a request says where it came from: a tokenization and a reveal too.
    let proxied = client_from("127.0.0.1");
    let envelope = s.seal(FieldKind::Pan, "4111111111111111").await;
    let r: serde_json::Value = proxied
        .post(s.url("/v1/tokenize"))
        .header("x-forwarded-for", "203.0.113.7")
        .bearer_auth(&keys.checkout)
        .json(&json!({ "items": [{ "envelope": envelope }] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["results"][0]["token"].as_str().unwrap().to_owned();
    let r = proxied
        .post(s.url("/v1/detokenize"))
        .header("x-forwarded-for", "203.0.113.7")
        .bearer_auth(&keys.payments)
        .json(&json!({ "tokens": [token], "purpose": "client address" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = common::audit_all(s.vault.store()).await;
    for action in ["tokenize", "reveal"] {
        let e = log
            .iter()
            .find(|e| e.action == action && e.token.as_deref() == Some(token.as_str()))
            .unwrap();
        assert!(
            e.detail.ends_with("from 203.0.113.7 via 127.0.0.1"),
            "{action}: {}",
            e.detail
        );
    }
}

mod slow {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn server(
        tag: &str,
        edit: impl FnOnce(&mut fieldseal_vault::config::Settings),
    ) -> (TempDir, Server) {
        let dir = TempDir::new(tag);
        let _keys = init(&dir.0).await;
        let mut settings = common::settings(&dir.0);
        edit(&mut settings);
        let s = Server::start_with(settings).await;
        (dir, s)
    }

    fn addr(s: &Server) -> String {
        s.base.trim_start_matches("http://").to_owned()
    }

    /// Whether the server closed the connection: reads until end of stream, an error, or `limit`.
    async fn closed_within(conn: &mut TcpStream, limit: std::time::Duration) -> bool {
        let mut buf = [0u8; 512];
        let read = async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, read).await.is_ok()
    }

    /// Hundreds of clients sending a header a byte at a time: each is closed when its header read
    /// time is up, and a normal client is served all along.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_closed_and_others_served() {
        let (_dir, s) = server("slowloris", |st| {
            st.header_read_timeout_ms = 1000;
            st.max_connections = 1000;
        })
        .await;
        let target = addr(&s);
        let mut slow = Vec::new();
        for _ in 0..300 {
            let target = target.clone();
            slow.push(tokio::spawn(async move {
                let mut conn = TcpStream::connect(&target).await.unwrap();
                // An endless header, one byte every 100 ms: 20 s for 200 bytes unless closed.
                let header = b"GET /healthz HTTP/1.1\r\nHost: vault\r\n"
                    .iter()
                    .chain(
                        b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                            .iter()
                            .cycle(),
                    )
                    .take(200);
                for byte in header {
                    if conn.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                    let mut probe = [0u8; 64];
                    match tokio::time::timeout(
                        std::time::Duration::from_millis(100),
                        conn.read(&mut probe),
                    )
                    .await
                    {
                        Ok(Ok(0) | Err(_)) => return true,
                        Ok(Ok(_)) => {
                            // A response (408): the server ends the connection after it.
                            return closed_within(&mut conn, std::time::Duration::from_secs(5))
                                .await;
                        }
                        Err(_) => {}
                    }
                }
                false
            }));
        }
        // Others are served while the slow ones hold their connections.
        for _ in 0..20 {
            let r = s.client.get(s.url("/healthz")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut closed = 0;
        for t in slow {
            closed += usize::from(t.await.unwrap());
        }
        assert_eq!(closed, 300, "slow clients left open");
        // On a new connection: the pooled one of the loop above may have been closed by the
        // server's idle timeout meanwhile, a race of keep-alive, not of the listener.
        let r = reqwest::Client::new()
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed() {
        let (_dir, s) = server("conncap", |st| st.max_connections = 4).await;
        let target = addr(&s);
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut c = TcpStream::connect(&target).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            let n = c.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            held.push(c);
        }
        let mut fifth = TcpStream::connect(&target).await.unwrap();
        let _ = fifth
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n")
            .await;
        assert!(
            closed_within(&mut fifth, std::time::Duration::from_secs(10)).await,
            "a connection past max_connections was served"
        );
        drop(held);
        // Once they are gone, new connections are served again.
        let mut ok = false;
        for _ in 0..50 {
            if let Ok(r) = reqwest::Client::new().get(s.url("/healthz")).send().await {
                ok = r.status() == 200;
                if ok {
                    break;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(ok);
    }

    #[tokio::test]
    async fn bodies_that_do_not_arrive_time_out_and_in_flight_requests_are_capped() {
        let dir = TempDir::new("bodies");
        let keys = init(&dir.0).await;
        let mut settings = common::settings(&dir.0);
        settings.body_read_timeout_ms = 2000;
        settings.max_in_flight = 1;
        let s = Server::start_with(settings).await;
        let target = addr(&s);
        // A body promised and never sent holds the only in-flight slot until its read times out.
        let mut stalled = TcpStream::connect(&target).await.unwrap();
        stalled
            .write_all(
                format!(
                    "POST /v1/tokenize HTTP/1.1\r\nHost: vault\r\nContent-Type: application/json\r\n\
                     Authorization: Bearer {}\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{",
                    keys.checkout
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        // Meanwhile other requests find the vault at its cap and are told to come back.
        let mut overloaded = false;
        for _ in 0..400 {
            let r = s.client.get(s.url("/healthz")).send().await.unwrap();
            if r.status() == 503 {
                assert_eq!(r.headers()["retry-after"], "1");
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["error"]["code"], "overloaded");
                overloaded = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(overloaded, "no request was refused at max_in_flight");
        let mut response = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stalled.read_to_end(&mut response),
        )
        .await;
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
        // The slot is free again.
        let r = s.client.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}

mod tls {
    use super::*;
    use std::path::Path;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use common::certs::{make_ca, make_cert, make_leaf};

    fn der(path: &Path) -> Vec<u8> {
        CertificateDer::from_pem_file(path).unwrap().to_vec()
    }

    /// GET /healthz over TLS trusting only the test CA: the status line and the server's
    /// certificate.
    async fn get_healthz(addr: &str, ca: &Path) -> (String, Vec<u8>) {
        get(addr, ca, None, "/healthz", None).await
    }

    /// GET `path` over TLS trusting only the test CA, with the client certificate `client` (the
    /// name of its `.pem` and `.key` files in the CA's directory) and API key `key`.
    async fn get(
        addr: &str,
        ca: &Path,
        client: Option<&str>,
        path: &str,
        key: Option<&str>,
    ) -> (String, Vec<u8>) {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match client {
            None => config.with_no_client_auth(),
            Some(name) => {
                let dir = ca.parent().unwrap();
                let chain =
                    vec![CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap()];
                let key =
                    rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key")))
                        .unwrap();
                config.with_client_auth_cert(chain, key).unwrap()
            }
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(
                ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into()),
                tcp,
            )
            .await
            .unwrap();
        let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        let auth = key.map_or_else(String::new, |k| format!("Authorization: Bearer {k}\r\n"));
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: vault\r\n{auth}Connection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        (text.lines().next().unwrap_or_default().to_owned(), cert)
    }

    fn replace(dir: &Path, from: &str) {
        for ext in ["pem", "key"] {
            let tmp = dir.join(format!("serving.{ext}.tmp"));
            std::fs::copy(dir.join(format!("{from}.{ext}")), &tmp).unwrap();
            std::fs::rename(&tmp, dir.join(format!("serving.{ext}"))).unwrap();
        }
    }

    #[tokio::test]
    async fn tls_serves_and_takes_up_a_renewed_certificate_without_restart() {
        let dir = TempDir::new("tls");
        let _keys = init(&dir.0).await;
        make_ca(&dir.0);
        make_leaf(&dir.0, "first");
        make_leaf(&dir.0, "second");
        replace(&dir.0, "first");
        let mut settings = common::settings(&dir.0);
        settings.tls_cert_file = Some(dir.0.join("serving.pem"));
        settings.tls_key_file = Some(dir.0.join("serving.key"));
        let s = Server::start_with(settings).await;
        let addr = s.base.trim_start_matches("http://").to_owned();
        let ca = dir.0.join("ca.pem");

        let (status, cert) = get_healthz(&addr, &ca).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(cert, der(&dir.0.join("first.pem")));
        // Plain HTTP on the TLS port gets no answer.
        assert!(
            reqwest::get(s.url("/healthz"))
                .await
                .is_ok_and(|r| r.status().is_success())
                .eq(&false)
        );

        // Renewed on disk: the next handshake presents the new certificate.
        replace(&dir.0, "second");
        let (status, cert) = get_healthz(&addr, &ca).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(
            cert,
            der(&dir.0.join("second.pem")),
            "the renewed certificate was not taken up"
        );

        // A key that does not load leaves the certificate in use.
        std::fs::write(dir.0.join("serving.key"), "not a key").unwrap();
        let (status, cert) = get_healthz(&addr, &ca).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(cert, der(&dir.0.join("second.pem")));
    }

    /// An API key bound to a client certificate authenticates only on a mutual-TLS connection
    /// presenting that certificate; keys not bound work with or without one.
    #[tokio::test]
    async fn a_key_bound_to_a_client_certificate_needs_that_certificate() {
        let dir = TempDir::new("mtls");
        let keys = init(&dir.0).await;
        make_ca(&dir.0);
        make_leaf(&dir.0, "server");
        make_cert(&dir.0, "job", "clientAuth");
        make_cert(&dir.0, "other", "clientAuth");
        let mut settings = common::settings(&dir.0);
        settings.tls_cert_file = Some(dir.0.join("server.pem"));
        settings.tls_key_file = Some(dir.0.join("server.key"));
        settings.tls_client_ca_file = Some(dir.0.join("ca.pem"));
        let bound = fieldseal_vault::admin::Admin::open(&settings)
            .await
            .unwrap()
            .create_bound_api_key(
                "payments",
                "job",
                None,
                Some(fieldseal_vault::tls::certificate_sha256(&dir.0.join("job.pem")).unwrap()),
            )
            .await
            .unwrap()
            .full;
        let s = Server::start_with(settings).await;
        let addr = s.base.trim_start_matches("http://").to_owned();
        let ca = dir.0.join("ca.pem");
        let status = |client, key: String| {
            let (addr, ca) = (addr.clone(), ca.clone());
            async move { get(&addr, &ca, client, "/v1/me", Some(&key)).await.0 }
        };
        assert_eq!(status(Some("job"), bound.clone()).await, "HTTP/1.1 200 OK");
        assert_eq!(
            status(None, bound.clone()).await,
            "HTTP/1.1 401 Unauthorized"
        );
        assert_eq!(
            status(Some("other"), bound.clone()).await,
            "HTTP/1.1 401 Unauthorized"
        );
        assert_eq!(status(None, keys.support.clone()).await, "HTTP/1.1 200 OK");
        assert_eq!(
            status(Some("other"), keys.support.clone()).await,
            "HTTP/1.1 200 OK"
        );
        let log = common::audit_all(s.vault.store()).await;
        assert!(
            log.iter().any(|e| e.action == "auth"
                && e.detail
                    .starts_with("API key bound to a client certificate")),
            "the refusal is not audited"
        );
    }

    #[tokio::test]
    async fn plain_http_only_on_loopback_unless_allowed() {
        use fieldseal_vault::listener::check_plain_http;
        let lan = "192.0.2.10:8700".parse().unwrap();
        assert!(check_plain_http(lan, false, false).is_err());
        assert!(check_plain_http(lan, true, false).is_ok());
        assert!(check_plain_http(lan, false, true).is_ok());
        assert!(check_plain_http("127.0.0.1:8700".parse().unwrap(), false, false).is_ok());
        assert!(check_plain_http("[::1]:8700".parse().unwrap(), false, false).is_ok());
        // The server itself refuses to start on such an address.
        let dir = TempDir::new("plain");
        let _keys = init(&dir.0).await;
        let vault = Arc::new(
            fieldseal_vault::vault::Vault::open(common::settings(&dir.0))
                .await
                .unwrap(),
        );
        let Ok(listener) = tokio::net::TcpListener::bind("0.0.0.0:0").await else {
            return;
        };
        let err = fieldseal_vault::http::serve(listener, vault, async {})
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("refusing to serve plain HTTP"),
            "{err}"
        );
    }
}

/// An API key rotated with an overlap answers to both secrets until the overlap ends; its last
/// use is recorded; a key unused for `api_key_max_idle_days` stops authenticating.
#[tokio::test]
async fn api_keys_rotate_with_an_overlap_and_idle_keys_stop() {
    let dir = TempDir::new("rotate");
    let keys = init(&dir.0).await;
    let s = Server::start(&dir.0).await;
    let admin = common::admin_of(&s).await;
    let id = keys.support[4..16].to_owned();
    let me = |key: String| {
        let s = &s;
        async move { s.get(&key, "/v1/me").await.0 }
    };
    let second = admin.rotate_api_key(&id, 24).await.unwrap();
    assert!(second.full.starts_with(&format!("fsk_{id}_")));
    assert_eq!(me(keys.support.clone()).await, 200, "the overlap");
    assert_eq!(me(second.full.clone()).await, 200);
    // Rotated again without overlap: only the newest secret works.
    let third = admin.rotate_api_key(&id, 0).await.unwrap();
    assert_eq!(me(keys.support.clone()).await, 401);
    assert_eq!(me(second.full.clone()).await, 401);
    assert_eq!(me(third.full.clone()).await, 200);
    let listed = admin.api_keys().await.unwrap();
    let support = listed.iter().find(|k| k.record.id == id).unwrap();
    assert!(support.record.last_used_at.is_some());
    assert_eq!(support.status, "active");
    let log = common::audit_all(s.vault.store()).await;
    assert_eq!(
        log.iter().filter(|e| e.action == "apikey.rotate").count(),
        2
    );

    // A key last used 91 days ago (the default allows 90) is disabled.
    let idle_id = keys.auditor[4..16].to_owned();
    let long_ago = fieldseal_vault::vault::now() - 91 * 86_400;
    s.vault
        .store()
        .touch_api_key(&idle_id, long_ago)
        .await
        .unwrap();
    assert_eq!(me(keys.auditor.clone()).await, 401);
    let listed = admin.api_keys().await.unwrap();
    let auditor = listed.iter().find(|k| k.record.id == idle_id).unwrap();
    assert_eq!(auditor.status, "idle");
    let log = common::audit_all(s.vault.store()).await;
    assert!(
        log.iter()
            .any(|e| e.action == "auth" && e.detail.contains("unused for longer than")),
        "the refusal is not audited"
    );
    // A revoked key cannot be rotated back to life.
    admin.revoke_api_key(&id).await.unwrap();
    assert!(admin.rotate_api_key(&id, 24).await.is_err());
}

/// Metrics are served on a listener of their own (the API's has no `/metrics`), count the
/// traffic (requests by route template and status, tokenize and reveal items by role, kind,
/// format and outcome, refusals by code), read the audit head and key ages at each scrape, and no
/// label holds a value, a token or an API key's secret.
#[tokio::test]
async fn metrics_count_the_traffic_on_their_own_listener_and_name_no_secret() {
    const VISA: &str = "4111111111111111";
    let dir = TempDir::new("metrics");
    let keys = init(&dir.0).await;
    let s = Server::start(&dir.0).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(fieldseal_vault::http::serve_metrics(
        listener,
        Arc::clone(&s.vault),
    ));
    let scrape = || async {
        let r = s
            .client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        r.text().await.unwrap()
    };
    // The value of one series (0 when absent).
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let before = scrape().await;

    let token = s
        .tokenize_value(&keys, FieldKind::Pan, VISA, "random")
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.tokenize_value(&keys, FieldKind::Pan, "5555555555554444", "random")
        .await;
    let (_, body) = s
        .tokenize(
            &keys.checkout,
            json!([{ "envelope": "fse1.not-an-envelope" }]),
        )
        .await;
    let refused = body["results"][0]["error"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = s.detokenize(&keys.payments, &[&token], "metrics").await;
    assert_eq!(body["results"][0]["reveal"], "plain");
    s.detokenize(&keys.support, &[&token], "metrics").await;
    let (status, body) = s
        .get(
            "fsk_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "/v1/me",
        )
        .await;
    assert_eq!(status, 401);
    let unauthorized = body["error"]["code"].as_str().unwrap().to_owned();
    assert_eq!(s.delete(&keys.payments, &token).await, 204);
    // Made-up methods (any token is a method in HTTP) all count as one label value.
    for m in ["FOO123", "BAR456"] {
        let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        s.client
            .request(method, s.url("/v1/keys"))
            .send()
            .await
            .unwrap();
    }
    // The node's encryption count reaches the database with its key upkeep (every 5 s).
    s.vault.maintain_data_keys().await.unwrap();
    let after = scrape().await;

    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(
        moved(
            r#"fieldseal_tokenize_items_total{role="checkout",kind="pan",format="random",outcome="ok"}"#
        ),
        2.0,
        "{after}"
    );
    assert_eq!(
        moved(&format!(
            r#"fieldseal_tokenize_items_total{{role="checkout",kind="-",format="random",outcome="{refused}"}}"#
        )),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"fieldseal_reveal_items_total{role="payments",kind="pan",outcome="plain"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"fieldseal_reveal_items_total{role="support",kind="pan",outcome="masked"}"#),
        1.0
    );
    assert_eq!(
        moved(&format!(
            r#"fieldseal_refusals_total{{code="{unauthorized}"}}"#
        )),
        1.0
    );
    assert_eq!(
        moved(r#"fieldseal_http_requests_total{route="/v1/tokenize",method="POST",status="200"}"#),
        3.0
    );
    assert_eq!(
        moved(
            r#"fieldseal_http_requests_total{route="/v1/tokens/{token}",method="DELETE",status="204"}"#
        ),
        1.0
    );
    assert!(
        moved(r#"fieldseal_http_request_duration_seconds_count{route="/v1/detokenize"}"#) >= 2.0,
        "{after}"
    );
    // Read at the scrape: the audit head moved, keys have ages, the data key counted its values.
    assert!(moved("fieldseal_audit_head_seq") >= 6.0, "{after}");
    assert!(after.contains("fieldseal_key_age_seconds{kind=\"hpke\",id=\""));
    assert!(value(&after, "fieldseal_data_key_encryptions{id=\"data-key:1\"}") >= 2.0);
    assert_eq!(value(&after, "fieldseal_operators_locked"), 0.0);
    assert_eq!(value(&after, "fieldseal_reveal_locks"), 0.0);
    // SQLite: one connection.
    assert_eq!(
        value(&after, r#"fieldseal_database_connections{state="max"}"#),
        1.0
    );
    assert!(after.contains("method=\"OTHER\""), "{after}");
    // Never a value, a token, a key's secret, or a caller's made-up text.
    for secret in [
        "FOO123",
        VISA,
        "5555555555554444",
        &token,
        &keys.checkout[17..],
        &keys.payments[17..],
    ] {
        assert!(!after.contains(secret), "{secret} in the metrics");
    }
    // The API's listener serves no metrics; the metrics listener nothing else.
    let (status, _) = s.get(&keys.payments, "/metrics").await;
    assert_eq!(status, 404);
    let r = s
        .client
        .get(format!("{base}/v1/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    serving.abort();
}
