//! Audit forwarding to a syslog receiver, with the real binary: Debian's rsyslogd (imtcp only, on
//! a free loopback port, writing each message as received to a file) stopped and restarted under
//! a tokenize load, the cursor kept across a vault restart, and TLS against a rustls receiver in
//! the test (rsyslog's TLS driver is the separate package rsyslog-gnutls, which the setup does
//! not install). The forwarder in-process on PostgreSQL through a relay that a test cuts: the
//! database going away under appends. Every wait polls against a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::bin::{init_with_keys, ok, start_with, vault};
use common::{TempDir, free_port, key_set, seal_to};
use fieldseal_core::envelope::FieldKind;
use regex::Regex;
use serde_json::{Value, json};

/// The batch the tests' vaults forward: more than the test load appends in one round, so the
/// forwarder idles between rounds as a vault not at its limit does, and a receiver that stops
/// during the pause gets the next batch written into a connection it already closed (which only
/// the resend from the cursor repairs). Also the window: the most entries one failure repeats.
const BATCH: usize = 100;

/// Polls `f` every 50 ms until it holds, for at most `limit`; panics with `what` otherwise.
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `pid`.
fn term(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) for a child to exit; kills it if it does not.
fn reap(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's rsyslogd as the receiver: only `imtcp` on 127.0.0.1:`port`, each message written as
/// received (`%rawmsg%`, the RFC 5424 line without its octet count) to `received.log`.
struct Rsyslog {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    fn start(dir: &Path, port: u16) -> Self {
        let mut r = Self {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        r.restart();
        r
    }

    fn received(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    /// Starts rsyslogd (again) on the same port and file; returns once it accepts connections.
    fn restart(&mut self) {
        assert!(self.child.is_none());
        let work = self.dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = self.dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\" maxMessageSize=\"64k\")\n\
                 module(load=\"imtcp\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
                 ruleset(name=\"siem\") {{\n\
                 \x20   action(type=\"omfile\" file=\"{file}\" template=\"raw\")\n\
                 }}\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"siem\")\n",
                work = work.display(),
                file = self.received().display(),
                port = self.port,
            ),
        )
        .unwrap();
        let pid = self.dir.join("rsyslogd.pid");
        let _ = std::fs::remove_file(&pid);
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(&pid)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.err")).unwrap())
            .spawn()
            .expect("rsyslogd (Debian package rsyslog)");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(10), "rsyslogd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM, and waits for it to exit.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        term(child.id());
        assert!(
            reap(&mut child, Duration::from_secs(10)),
            "rsyslogd did not stop"
        );
    }

    /// The messages written so far.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.received())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One received message, parsed: the structured data's seq and hash, and MSG.
#[derive(Debug)]
struct Received {
    seq: i64,
    hash: String,
    actor: String,
    action: String,
    outcome: String,
    msg: String,
}

/// Parses an RFC 5424 message as the vault writes it; panics on anything else.
fn parse(line: &str) -> Received {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        let value = r#""((?:[^"\\\]]|\\["\\\]])*)""#;
        Regex::new(&format!(
            r"^<(\d{{1,3}})>1 (\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+) fieldseal-vault (\d+) audit \[fieldseal@32473 seq={value} hash={value} actor={value} action={value} outcome={value}\] (\{{.*\}})$"
        ))
        .unwrap()
    });
    let c = pattern
        .captures(line)
        .unwrap_or_else(|| panic!("not a message of the vault: {line:?}"));
    let unescape = |i: usize| {
        let mut out = String::new();
        let mut chars = c[i].chars();
        while let Some(ch) = chars.next() {
            out.push(if ch == '\\' {
                chars.next().unwrap()
            } else {
                ch
            });
        }
        out
    };
    let pri: u8 = c[1].parse().unwrap();
    assert_eq!(pri / 8, 13, "facility log audit: {line}");
    Received {
        seq: c[5].parse().unwrap(),
        hash: unescape(6),
        actor: unescape(7),
        action: unescape(8),
        outcome: unescape(9),
        msg: c[10].to_owned(),
    }
}

/// The vault's log as `audit export` prints it: each entry's line by seq.
fn exported(dir: &Path) -> BTreeMap<i64, String> {
    ok(&vault(dir, &["audit", "export"]))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["seq"].as_i64().unwrap(), l.to_owned())
        })
        .collect()
}

/// The anchored head's seq (`audit head`).
fn head(dir: &Path) -> i64 {
    ok(&vault(dir, &["audit", "head"]))
        .trim()
        .split_once(':')
        .unwrap()
        .0
        .parse()
        .unwrap()
}

/// Checks every received message against the export: its structured data agrees with the entry
/// and MSG is the export's line exactly. Returns the seqs in the order received.
fn check_messages(lines: &[String], export: &BTreeMap<i64, String>) -> Vec<i64> {
    lines
        .iter()
        .map(|line| {
            let r = parse(line);
            let want = export
                .get(&r.seq)
                .unwrap_or_else(|| panic!("seq {} is not in the log", r.seq));
            assert_eq!(&r.msg, want, "MSG of seq {}", r.seq);
            let entry: Value = serde_json::from_str(want).unwrap();
            assert_eq!(r.hash, entry["hash"].as_str().unwrap());
            assert_eq!(r.actor, entry["actor"].as_str().unwrap());
            assert_eq!(r.action, entry["action"].as_str().unwrap());
            assert_eq!(r.outcome, entry["outcome"].as_str().unwrap());
            r.seq
        })
        .collect()
}

/// The delivery guarantee over the seqs in the order received, from `first`: each is the next
/// one, or a step back that repeats at most [`BATCH`] entries (the batch written since the
/// cursor's last commit, sent again on a new connection), never a step forward over a gap.
/// Returns how many steps back there were and how many entries came twice.
fn check_delivery(order: &[i64], first: i64) -> (usize, usize) {
    let (mut steps_back, mut repeated) = (0, 0);
    let mut newest = first - 1;
    let mut prev = first - 1;
    for &seq in order {
        if seq != prev + 1 {
            assert!(
                seq <= prev,
                "gap: {seq} received after {prev} (entries {}..={} never came)",
                prev + 1,
                seq - 1
            );
            let again = (newest - seq + 1) as usize;
            assert!(
                again <= BATCH,
                "{seq} received after {prev}: {again} entries sent again, more than the window \
                 of {BATCH}"
            );
            steps_back += 1;
            repeated += again;
        }
        newest = newest.max(seq);
        prev = seq;
    }
    (steps_back, repeated)
}

/// Whether one of the messages `lines` is entry `seq`.
fn has(lines: &[String], seq: i64) -> bool {
    lines.iter().any(|l| parse(l).seq == seq)
}

/// An initialized vault with a checkout key and no rate limits, in `tmp`.
struct Vault {
    dir: PathBuf,
    checkout: String,
    policy: String,
}

impl Vault {
    fn new(tmp: &TempDir) -> Self {
        let dir = tmp.0.join("vault");
        let [checkout]: [String; 1] = init_with_keys(&dir, &["checkout"]).try_into().unwrap();
        let policy = tmp.0.join("policy.toml");
        std::fs::write(&policy, common::policy_without_rates()).unwrap();
        Self {
            dir,
            checkout,
            policy: policy.to_string_lossy().into_owned(),
        }
    }

    /// Serves, forwarding to `to` with `extra` settings; the log in `name`.log.
    fn serve(&self, name: &str, to: &str, extra: &[(&str, &str)]) -> (Child, String) {
        let batch = BATCH.to_string();
        let mut env = vec![
            ("FIELDSEAL_POLICY_FILE", self.policy.as_str()),
            ("FIELDSEAL_SYSLOG_FORWARD", to),
            ("FIELDSEAL_SYSLOG_BATCH", &batch),
            ("FIELDSEAL_SYSLOG_HOSTNAME", "vault-test"),
        ];
        env.extend_from_slice(extra);
        start_with(&self.dir, &self.dir.join(format!("{name}.log")), &env)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

/// Tokenizes `n` values one after the other on `base`.
async fn tokenize(base: &str, key: &str, n: usize, tag: &str) {
    let http = reqwest::Client::new();
    let ks = key_set(&http, base).await;
    for i in 0..n {
        let env = seal_to(
            &ks,
            FieldKind::Email,
            &format!("{tag}{i}@example.com"),
            ks.server_time(),
        );
        let r = http
            .post(format!("{base}/v1/tokenize"))
            .bearer_auth(key)
            .json(&json!({ "items": [{ "envelope": env }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// A tokenize load on `base` from `workers` clients until `stop` is set; counts the tokens.
fn load(
    base: &str,
    key: &str,
    workers: usize,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|w| {
            let (base, key, stop, done) = (
                base.to_owned(),
                key.to_owned(),
                Arc::clone(&stop),
                Arc::clone(&done),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let ks = key_set(&http, &base).await;
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let env = seal_to(
                        &ks,
                        FieldKind::Email,
                        &format!("load{w}.{i}@example.com"),
                        ks.server_time(),
                    );
                    i += 1;
                    let r = http
                        .post(format!("{base}/v1/tokenize"))
                        .bearer_auth(&key)
                        .json(&json!({ "items": [{ "envelope": env }] }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        r.status(),
                        200,
                        "the vault serves while the receiver is down"
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

/// rsyslogd stopped in the middle of a tokenize load and started again a few seconds later: once
/// the load stops, the receiver's file holds every entry from 1 to the head, each message's MSG
/// is exactly the entry as `audit export` prints it, and entries came twice only within the
/// window (the one batch written since the cursor's last commit), never with a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_reaches_rsyslog_across_a_receiver_restart() {
    let tmp = TempDir::new("fwd-restart");
    let v = Vault::new(&tmp);
    let mut rsyslog = Rsyslog::start(&tmp.0, free_port());
    let to = format!("tcp://127.0.0.1:{}", rsyslog.port);
    let (mut child, base) = v.serve("vault", &to, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers = load(&base, &v.checkout, 2, Arc::clone(&stop), Arc::clone(&done));
    // The load reaches the receiver; then it goes away just after a batch landed (between the
    // forwarder's commit and its next write), for a few seconds of load.
    let lines = || rsyslog.lines().len();
    wait_for(Duration::from_secs(20), "forwarded entries", || {
        lines() > 60
    });
    let seen = lines();
    wait_for(Duration::from_secs(5), "another batch", || lines() > seen);
    std::thread::sleep(Duration::from_millis(100));
    rsyslog.stop();
    let at_stop = done.load(Ordering::Relaxed);
    let down = rsyslog.lines().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        done.load(Ordering::Relaxed) > at_stop + 20,
        "the load went on while the receiver was down"
    );
    assert_eq!(rsyslog.lines().len(), down);
    rsyslog.restart();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let head = head(&v.dir);
    wait_for(
        Duration::from_secs(20),
        "every entry up to the head",
        || has(&rsyslog.lines(), head),
    );
    let export = exported(&v.dir);
    let order = check_messages(&rsyslog.lines(), &export);
    let (steps_back, repeated) = check_delivery(&order, 1);
    let distinct: BTreeSet<i64> = order.iter().copied().collect();
    assert!(
        (1..=head).all(|s| distinct.contains(&s)),
        "every entry from 1 to the head"
    );
    assert!(
        steps_back <= 2,
        "one receiver restart: at most two failed connections ({steps_back})"
    );
    let log = v.log("vault");
    assert!(
        log.contains("syslog connection failed") || log.contains("syslog receiver not reachable"),
        "the vault noticed the receiver was gone"
    );
    eprintln!(
        "{} tokenizations, {head} entries, {} messages: {steps_back} steps back, {repeated} entries twice",
        done.load(Ordering::Relaxed),
        order.len()
    );
    term(child.id());
    assert!(reap(&mut child, Duration::from_secs(15)), "serve stopped");
}

/// The cursor in the vault's SQLite database.
fn cursor(dir: &Path) -> Option<i64> {
    let c = rusqlite::Connection::open(dir.join("vault.db")).unwrap();
    c.query_row(
        "SELECT seq FROM forward_cursors WHERE name = 'syslog'",
        [],
        |r| r.get(0),
    )
    .ok()
}

/// A vault stopped (SIGTERM) commits its cursor at the last entry sent; started again, it
/// resumes after it: every entry reaches the receiver exactly once across the restart. Killed
/// (SIGKILL), it resumes after its last commit: at most one batch comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_vault_resumes_after_its_cursor() {
    let tmp = TempDir::new("fwd-cursor");
    let v = Vault::new(&tmp);
    let rsyslog = Rsyslog::start(&tmp.0, free_port());
    let to = format!("tcp://127.0.0.1:{}", rsyslog.port);

    let (mut child, base) = v.serve("first", &to, &[]);
    tokenize(&base, &v.checkout, 30, "first").await;
    let first_head = head(&v.dir);
    wait_for(Duration::from_secs(10), "the first entries", || {
        has(&rsyslog.lines(), first_head)
    });
    term(child.id());
    assert!(reap(&mut child, Duration::from_secs(15)), "serve stopped");
    let last = *exported(&v.dir).keys().last().unwrap();
    assert_eq!(cursor(&v.dir), Some(last), "the cursor at the last entry");
    let sent = rsyslog.lines().len();

    let (mut child, base) = v.serve("second", &to, &[]);
    tokenize(&base, &v.checkout, 30, "second").await;
    let second_head = head(&v.dir);
    wait_for(Duration::from_secs(10), "the second entries", || {
        has(&rsyslog.lines(), second_head)
    });
    assert!(
        v.log("second").contains(&format!("\"after\":{last}")),
        "resumed after {last}"
    );
    let export = exported(&v.dir);
    let order = check_messages(&rsyslog.lines(), &export);
    let newest = *order.last().unwrap();
    assert!(newest >= second_head);
    assert_eq!(
        order,
        (1..=newest).collect::<Vec<_>>(),
        "each entry once, in order, none sent again after the restart ({sent} before it)"
    );

    // Killed: no shutdown path runs. The next start repeats at most the uncommitted batch.
    child.kill().unwrap();
    child.wait().unwrap();
    let committed = cursor(&v.dir).unwrap();
    assert!(committed <= second_head);
    let (mut child, base) = v.serve("third", &to, &[]);
    tokenize(&base, &v.checkout, 5, "third").await;
    let third_head = head(&v.dir);
    wait_for(Duration::from_secs(10), "the third entries", || {
        has(&rsyslog.lines(), third_head)
    });
    let order = check_messages(&rsyslog.lines(), &exported(&v.dir));
    let (_, repeated) = check_delivery(&order, 1);
    assert!(
        repeated <= (second_head - committed) as usize,
        "only entries after the commit came again"
    );
    term(child.id());
    assert!(reap(&mut child, Duration::from_secs(15)), "serve stopped");
}

/// What the TLS receiver got: its messages in order, and the connections it accepted.
#[derive(Default)]
struct Inbox {
    messages: Vec<String>,
    handshakes: usize,
}

/// A syslog receiver over TLS in the test (rustls): accepts on `listener` with the certificate
/// `name`.pem of `dir`, reads octet-counted frames, and keeps each message.
async fn tls_receiver(
    listener: tokio::net::TcpListener,
    dir: &Path,
    name: &str,
    inbox: Arc<Mutex<Inbox>>,
) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let chain = vec![CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut tls) = acceptor.accept(tcp).await else {
            continue;
        };
        inbox.lock().unwrap().handshakes += 1;
        read_frames(&mut tls, &inbox).await;
    }
}

/// Reads octet-counted frames (RFC 6587 §3.4.1: LEN SP MSG) from `stream` until it ends, keeping
/// each message in `inbox`.
async fn read_frames(stream: &mut (impl tokio::io::AsyncRead + Unpin), inbox: &Mutex<Inbox>) {
    use tokio::io::AsyncReadExt;

    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(sp) = buf.iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
            if buf.len() < sp + 1 + len {
                break;
            }
            let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
            buf.drain(..sp + 1 + len);
            inbox.lock().unwrap().messages.push(msg);
        }
    }
}

/// `tls://`: the vault checks the receiver's certificate against `syslog_ca_file` (a receiver
/// with a certificate from another authority gets nothing), then every entry arrives over TLS,
/// framed and formatted as over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_a_tls_receiver_that_the_ca_file_vouches_for() {
    let tmp = TempDir::new("fwd-tls");
    let (trusted, other) = (tmp.0.join("trusted"), tmp.0.join("other"));
    for dir in [&trusted, &other] {
        std::fs::create_dir_all(dir).unwrap();
        common::certs::make_ca(dir);
        common::certs::make_leaf(dir, "receiver");
    }
    let v = Vault::new(&tmp);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let impostor = tokio::spawn({
        let (inbox, other) = (Arc::clone(&inbox), other.clone());
        async move { tls_receiver(listener, &other, "receiver", inbox).await }
    });
    let ca = trusted.join("ca.pem").to_string_lossy().into_owned();
    let (mut child, base) = v.serve(
        "vault",
        &format!("tls://{addr}"),
        &[("FIELDSEAL_SYSLOG_CA_FILE", &ca)],
    );
    tokenize(&base, &v.checkout, 5, "tls").await;
    wait_for(Duration::from_secs(10), "a refused handshake", || {
        v.log("vault").contains("syslog receiver not reachable")
    });
    assert_eq!(inbox.lock().unwrap().handshakes, 0);
    assert!(inbox.lock().unwrap().messages.is_empty());
    impostor.abort();
    let _ = impostor.await;

    // The receiver the CA vouches for, on the same address.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let receiver = tokio::spawn({
        let (inbox, trusted) = (Arc::clone(&inbox), trusted.clone());
        async move { tls_receiver(listener, &trusted, "receiver", inbox).await }
    });
    let head = head(&v.dir);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got: Vec<i64> = inbox
            .lock()
            .unwrap()
            .messages
            .iter()
            .map(|m| parse(m).seq)
            .collect();
        if got.contains(&head) {
            break;
        }
        assert!(Instant::now() < deadline, "entries over TLS: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = inbox.lock().unwrap().messages.clone();
    let order = check_messages(&messages, &exported(&v.dir));
    assert_eq!(order, (1..=head).collect::<Vec<_>>());
    term(child.id());
    assert!(reap(&mut child, Duration::from_secs(15)), "serve stopped");
    receiver.abort();
}

/// The seqs `inbox` holds, in the order they arrived.
fn seqs(inbox: &Mutex<Inbox>) -> Vec<i64> {
    inbox
        .lock()
        .unwrap()
        .messages
        .iter()
        .map(|m| parse(m).seq)
        .collect()
}

/// The database goes away under a forwarding vault on PostgreSQL (the network to it cut while
/// entries are being appended) and comes back: the forwarder neither stops nor skips. Once the
/// database is back, every entry from 1 to the head reaches the receiver, and entries come twice
/// only within the window (the batch whose cursor could not be stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entry_arrives_across_a_database_outage() {
    use fieldseal_vault::forward::Forwarder;
    use fieldseal_vault::store::Store;
    use fieldseal_vault::store::audit::{Action, Actor, AuditDraft, Outcome};

    let tmp = TempDir::new("fwd-db");
    let schema = fieldseal_vault_postgres::testing::TestSchema::new();
    let (relay, through) = common::relay::to_test_postgres().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to = format!("tcp://{}", listener.local_addr().unwrap());
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let receiver = tokio::spawn({
        let inbox = Arc::clone(&inbox);
        async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                read_frames(&mut tcp, &inbox).await;
            }
        }
    });
    let s = fieldseal_vault::config::Settings {
        database_url: Some(fieldseal_vault_postgres::testing::url_with_schema(
            &through,
            schema.name(),
        )),
        database_timeout_ms: 1000,
        syslog_forward: Some(to),
        syslog_batch: 20,
        ..common::settings(&tmp.0)
    };
    common::init_with(&s).await;
    let vault = fieldseal_vault::vault::Vault::open(s.clone())
        .await
        .unwrap();
    let store = vault.store().clone();
    let forwarder = Forwarder::from_settings(store.clone(), &s, Arc::clone(vault.metrics()))
        .unwrap()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let forwarding = tokio::spawn(forwarder.run(async {
        let _ = stop_rx.await;
    }));
    // A writer appends an entry every 10 ms; while the database is away its appends fail.
    let writing = Arc::new(AtomicBool::new(true));
    let failed = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn({
        let (store, writing, failed) = (store.clone(), Arc::clone(&writing), Arc::clone(&failed));
        async move {
            while writing.load(Ordering::Relaxed) {
                let draft = AuditDraft::new(
                    fieldseal_vault::vault::now(),
                    Actor::Cli,
                    Action::SecretCreate,
                    Outcome::Ok,
                );
                if store.append_audit(draft).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while seqs(&inbox).len() < 60 {
        assert!(Instant::now() < deadline, "forwarded entries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.cut();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "appends failed: the database was away"
    );
    let during = seqs(&inbox).len();
    relay.restore();
    tokio::time::sleep(Duration::from_secs(1)).await;
    writing.store(false, Ordering::Relaxed);
    writer.await.unwrap();

    let head = store.audit_head().await.unwrap().unwrap().seq;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seqs(&inbox).contains(&head) {
        assert!(
            Instant::now() < deadline,
            "entries up to {head} after the database came back ({during} before)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let order = seqs(&inbox);
    let distinct: BTreeSet<i64> = order.iter().copied().collect();
    let missing: Vec<i64> = (1..=head).filter(|s| !distinct.contains(s)).collect();
    assert!(missing.is_empty(), "missing entries: {missing:?}");
    let (_, repeated) = check_delivery(&order, 1);
    assert!(
        repeated <= 20,
        "at most one batch came again ({repeated} entries twice)"
    );
    stop_tx.send(()).unwrap();
    forwarding.await.unwrap();
    receiver.abort();
}
