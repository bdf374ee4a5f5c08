//! `fieldseal-loadgen`: measures the vault over real HTTP on 127.0.0.1 (SQLite, or PostgreSQL with
//! one or more nodes), next to the raw P-256 ECDH rate of the fastest backend measured in the same
//! run on the same cores.
//!
//! It initializes a fresh vault with the real `fieldseal-vault` binary (SQLite in a temporary
//! directory, or a schema of its own on PostgreSQL, dropped afterwards), starts `--nodes` servers
//! as separate processes (requests spread over them as a load balancer would), seals envelopes
//! ahead of time (every envelope can be tokenized once: replays are refused), then runs each
//! scenario at rising concurrency until throughput stops rising: tokenize with batches of 1, of 6
//! (what a checkout sends: card number, expiry, CVC, name, e-mail, phone) and of 100 envelopes,
//! and detokenize one token per request. It reports requests and envelopes per second, p50/p99/p999
//! latency, errors, and the server's peak resident memory, as a table and as JSON. With `--tls`,
//! every scenario runs twice on the same vault: over plain HTTP, then over TLS (a certificate the
//! run makes with `openssl`), each step with new connections, so both tables come from one run.
//! With `--monitoring`, every scenario runs with monitoring off, then on (metrics scraped every
//! second, reveal anomaly detection, the audit trail forwarded to a syslog receiver of the run's
//! own), then off again, on the same vault (the passes before and after "on" bracket the growth
//! of the database over the run). Reveal anomaly detection is off in every other pass.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use fieldseal_core::ecdh::{AwsLc, EcdhSecret, P256};
use fieldseal_core::envelope::{FieldKind, Hints, PreparedContext, SealParams};
use fieldseal_core::keyset::KeySet;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(about = "Load test of fieldseal-vault over HTTP on 127.0.0.1")]
struct Args {
    /// The vault binary.
    #[arg(long, default_value = "target/release/fieldseal-vault")]
    vault: PathBuf,
    /// Seconds measured per concurrency level.
    #[arg(long, default_value_t = 3.0)]
    step_secs: f64,
    /// Highest concurrency tried.
    #[arg(long, default_value_t = 64)]
    max_concurrency: usize,
    /// Envelopes sealed ahead of the run (with `--tls`, half for each transport).
    #[arg(long, default_value_t = 600_000)]
    envelopes: usize,
    /// JSON results file.
    #[arg(long, default_value = "bench-results/vault.json")]
    out: PathBuf,
    /// The vault's database: `sqlite` (a file in a temporary directory) or `postgres`.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    database: String,
    /// The PostgreSQL server for `--database postgres` (a schema of the run's own is made there).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Vault nodes serving the one database (PostgreSQL only for more than one).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where the vault's KEK lives: `file` (a development vault's key file) or `pkcs11` (a
    /// SoftHSM2 token made for the run with `softhsm2-util`; unwrapping happens at start only).
    #[arg(long, default_value = "file", value_parser = ["file", "pkcs11"])]
    kek: String,
    /// The PKCS#11 module for `--kek pkcs11`.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pkcs11_module: PathBuf,
    /// Also measure every scenario over TLS, after plain HTTP, on the same vault (restarted with
    /// a P-256 certificate for 127.0.0.1 made for the run with `openssl`).
    #[arg(long)]
    tls: bool,
    /// Also measure every scenario with monitoring on, after all of it off, on the same vault
    /// (restarted): the metrics listener scraped every second, reveal anomaly detection (ceilings
    /// the run never reaches), and the audit trail forwarded to a syslog receiver on 127.0.0.1
    /// (a TCP sink of the run's own).
    #[arg(long)]
    monitoring: bool,
    /// With `--monitoring`: which parts are on in its second pass (to tell their costs apart).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "metrics,anomaly,forwarding"
    )]
    monitoring_parts: Vec<String>,
}

/// How the load generator talks to the nodes.
#[derive(Clone)]
enum Transport {
    Plain,
    /// TLS, trusting only the run's own CA (PEM).
    Tls(reqwest::Certificate),
}

impl Transport {
    fn client(&self, idle_per_host: usize) -> Result<reqwest::Client, Error> {
        let b = reqwest::Client::builder().pool_max_idle_per_host(idle_per_host);
        Ok(match self {
            Self::Plain => b,
            Self::Tls(ca) => b.tls_certs_only([ca.clone()]),
        }
        .build()?)
    }
}

/// Runs `openssl` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), Error> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// A CA and a server certificate for 127.0.0.1 it issued, P-256, in `dir`: the settings of a
/// listener serving it, and the CA for the client.
fn tls_certificate(dir: &Path) -> Result<(Vec<(String, String)>, reqwest::Certificate), Error> {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend_from_slice(&key);
    ca.extend_from_slice(&["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"]);
    ca.extend_from_slice(&["-subj", "/CN=fieldseal-loadgen CA"]);
    openssl(dir, &ca)?;
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    let mut req = vec!["req"];
    req.extend_from_slice(&key);
    req.extend_from_slice(&[
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        "/CN=vault",
    ]);
    openssl(dir, &req)?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.pem",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
    )?;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem"))?)?;
    let text = |name: &str| dir.join(name).display().to_string();
    Ok((
        vec![
            ("FIELDSEAL_TLS_CERT_FILE".into(), text("tls.pem")),
            ("FIELDSEAL_TLS_KEY_FILE".into(), text("tls.key")),
        ],
        ca,
    ))
}

type Error = Box<dyn std::error::Error + Send + Sync>;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The policy of the vault under test, in its data directory.
const POLICY_FILE: &str = "bench-policy.toml";

/// The built-in roles without their rate limits: the run measures the vault's throughput, which
/// a per-key limit would cap.
const POLICY: &str = r#"
[roles.checkout]
tokenize = ["*"]
hints = ["brand", "last4"]
rate.tokenize = { unlimited = true }

[roles.payments]
reveal_plain = ["pan", "exp", "cvc", "name"]
reveal_masked = ["*"]
delete = ["*"]
rate.reveal = { unlimited = true }
"#;

/// Reveal anomaly detection off (every pass but `--monitoring`'s second).
const ANOMALY_OFF: &str = "\n[anomaly]\nenabled = false\n";

/// With `--monitoring`: detection on, with ceilings the run never reaches (it measures the cost
/// of watching, not of refusing).
const ANOMALY_ON: &str = "\n[anomaly]\nper_minute = 4000000000\nplain_per_hour = 4000000000\n\
     new_tokens_per_hour = 4000000000\n";

/// A syslog receiver that reads and discards (counting bytes): the far end of forwarding.
fn syslog_sink() -> Result<(String, Arc<std::sync::atomic::AtomicU64>), Error> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&bytes);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 65536];
                while let Ok(n) = std::io::Read::read(&mut conn, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    counted.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
    });
    Ok((addr, bytes))
}

/// Where the vault under test keeps its data.
struct Target {
    dir: PathBuf,
    /// `FIELDSEAL_DATABASE_URL`, unless SQLite in `dir`.
    database_url: Option<String>,
    /// The KEK settings (`FIELDSEAL_*` and `SOFTHSM2_CONF`), for `--kek pkcs11`.
    kek_env: Vec<(String, String)>,
}

impl Target {
    fn command(&self, vault: &Path) -> Command {
        let mut c = Command::new(vault);
        c.env("FIELDSEAL_DATA_DIR", &self.dir)
            .env("FIELDSEAL_POLICY_FILE", self.dir.join(POLICY_FILE))
            .env_remove("FIELDSEAL_MASTER_KEY")
            .env_remove("FIELDSEAL_CONFIG")
            .envs(self.kek_env.iter().map(|(k, v)| (k, v)));
        match &self.database_url {
            Some(url) => c.env("FIELDSEAL_DATABASE_URL", url),
            None => c.env_remove("FIELDSEAL_DATABASE_URL"),
        };
        c
    }
}

fn cli(vault: &Path, target: &Target, args: &[&str]) -> Result<String, Error> {
    let out = target.command(vault).args(args).output()?;
    if !out.status.success() {
        return Err(format!(
            "fieldseal-vault {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Server {
    child: Child,
    base: String,
    /// The metrics listener's URL, when the settings open one.
    metrics: Option<String>,
}

impl Server {
    fn start(
        vault: &Path,
        target: &Target,
        name: &str,
        env: &[(String, String)],
    ) -> Result<Self, Error> {
        let log = std::fs::File::create(target.dir.join(format!("{name}.log")))?;
        let mut child = target
            .command(vault)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("FIELDSEAL_LISTEN", "127.0.0.1:0")
            // Envelopes are sealed before the run: keep them fresh for its whole length.
            .env("FIELDSEAL_FRESHNESS_WINDOW_SECS", "3600")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("fieldseal-vault listening on ")
            .ok_or_else(|| format!("unexpected output from serve: {line:?}"))?
            .to_owned();
        let metrics = if env.iter().any(|(k, _)| k == "FIELDSEAL_METRICS_LISTEN") {
            line.clear();
            stdout.read_line(&mut line)?;
            Some(
                line.trim()
                    .strip_prefix("fieldseal-vault metrics on ")
                    .ok_or_else(|| format!("unexpected output from serve: {line:?}"))?
                    .to_owned(),
            )
        } else {
            None
        };
        Ok(Self {
            child,
            base,
            metrics,
        })
    }

    /// Peak resident set size of the server process, in MiB (Linux).
    fn peak_rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Raw P-256 ECDH operations per second with AWS-LC on `threads` threads.
fn ecdh_rate(threads: usize, secs: f64) -> Result<f64, Error> {
    let peer = P256::generate()?.public_key()?;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || -> Result<u64, fieldseal_core::hpke::HpkeError> {
                let sk = AwsLc::generate()?;
                let mut n = 0u64;
                let end = Instant::now() + Duration::from_secs_f64(secs);
                while Instant::now() < end {
                    for _ in 0..64 {
                        std::hint::black_box(sk.diffie_hellman(std::hint::black_box(&peer))?);
                    }
                    n += 64;
                }
                Ok(n)
            })
        })
        .collect();
    let mut total = 0u64;
    for h in handles {
        total += h.join().map_err(|_| "ECDH thread panicked")??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Seals `n` card-number envelopes to the key set's primary key, on all cores.
fn seal_envelopes(ks: &KeySet, n: usize, threads: usize) -> Result<Vec<String>, Error> {
    let ks = Arc::new(ks.clone());
    let per = n.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let ks = Arc::clone(&ks);
            std::thread::spawn(move || -> Result<Vec<String>, Error> {
                let pan = "4111111111111111";
                let mut params = SealParams::new(FieldKind::Pan, ks.server_time());
                params.hints = Hints {
                    brand: fieldseal_core::card::detect_brand(pan),
                    bin: Some(pan[..6].into()),
                    last4: Some(pan[12..].into()),
                };
                (0..per)
                    .map(|_| {
                        let p = PreparedContext::prepare_with::<AwsLc>(ks.primary())?;
                        Ok(p.seal(pan.as_bytes(), &params)?)
                    })
                    .collect()
            })
        })
        .collect();
    let mut out = Vec::with_capacity(per * threads);
    for h in handles {
        out.extend(h.join().map_err(|_| "sealing thread panicked")??);
    }
    out.truncate(n);
    Ok(out)
}

/// The run's own schema on PostgreSQL.
struct Schema(String);

impl Schema {
    async fn admin(url: &str, sql: &str) -> Result<(), Error> {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(conn);
        client.batch_execute(sql).await?;
        drop(client);
        let _ = task.await;
        Ok(())
    }

    async fn create(url: &str) -> Result<Self, Error> {
        let name = format!("fieldseal_bench_{}", std::process::id());
        Self::admin(
            url,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        )
        .await?;
        Ok(Self(name))
    }

    fn url(&self, server: &str) -> String {
        let sep = if server.contains('?') { '&' } else { '?' };
        format!("{server}{sep}schema={}", self.0)
    }

    async fn drop_schema(self, url: &str) -> Result<(), Error> {
        Self::admin(url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0)).await
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Tokenize(usize),
    Detokenize,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Self::Tokenize(b) => format!("tokenize, batch of {b}"),
            Self::Detokenize => "detokenize, 1 token per request".into(),
        }
    }
}

struct Work {
    envelopes: Vec<String>,
    next_envelope: AtomicUsize,
    tokens: Vec<String>,
    next_token: AtomicUsize,
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u64>,
    items_ok: u64,
    errors: u64,
}

struct StepResult {
    concurrency: usize,
    requests_per_sec: f64,
    items_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    requests: usize,
    exhausted: bool,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn one_request(
    client: &reqwest::Client,
    base: &str,
    scenario: Scenario,
    work: &Work,
    checkout: &str,
    payments: &str,
) -> Option<Result<(u64, u64), Error>> {
    let (url, key, body, expected) = match scenario {
        Scenario::Tokenize(batch) => {
            let start = work.next_envelope.fetch_add(batch, Ordering::Relaxed);
            let items: Vec<Value> = work
                .envelopes
                .get(start..start + batch)?
                .iter()
                .map(|e| json!({ "envelope": e }))
                .collect();
            (
                format!("{base}/v1/tokenize"),
                checkout,
                json!({ "items": items }),
                batch,
            )
        }
        Scenario::Detokenize => {
            let i = work.next_token.fetch_add(1, Ordering::Relaxed);
            let token = &work.tokens[i % work.tokens.len()];
            (
                format!("{base}/v1/detokenize"),
                payments,
                json!({ "tokens": [token], "purpose": "load test" }),
                1,
            )
        }
    };
    Some(
        async {
            let r = client.post(url).bearer_auth(key).json(&body).send().await?;
            if !r.status().is_success() {
                return Ok((0, expected as u64));
            }
            let v: Value = r.json().await?;
            let ok = v["results"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|x| x["ok"] == true).count())
                as u64;
            Ok((ok, expected as u64 - ok))
        }
        .await,
    )
}

async fn run_step(
    transport: &Transport,
    bases: &[String],
    scenario: Scenario,
    concurrency: usize,
    secs: f64,
    work: Arc<Work>,
    keys: (String, String),
) -> Result<StepResult, Error> {
    // New connections at each level: over TLS, each worker's handshake is part of the step.
    let client = transport.client(concurrency)?;
    let warmup = Duration::from_millis(300);
    let started = Instant::now();
    let measure_from = started + warmup;
    let end = measure_from + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, base, work, keys) = (
            client.clone(),
            // Workers spread over the nodes, as a load balancer would spread connections.
            bases[worker % bases.len()].clone(),
            Arc::clone(&work),
            keys.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut s = WorkerStats::default();
            let mut exhausted = false;
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                match one_request(&client, &base, scenario, &work, &keys.0, &keys.1).await {
                    None => {
                        exhausted = true;
                        break;
                    }
                    Some(r) => {
                        let t1 = Instant::now();
                        if t0 >= measure_from && t1 <= end {
                            s.latencies_us
                                .push(t1.duration_since(t0).as_micros() as u64);
                            match r {
                                Ok((ok, failed)) => {
                                    s.items_ok += ok;
                                    s.errors += failed;
                                }
                                Err(_) => s.errors += 1,
                            }
                        }
                    }
                }
            }
            (s, exhausted)
        }));
    }
    let mut all = WorkerStats::default();
    let mut exhausted = false;
    for t in tasks {
        let (s, e) = t.await?;
        all.latencies_us.extend(s.latencies_us);
        all.items_ok += s.items_ok;
        all.errors += s.errors;
        exhausted |= e;
    }
    let measured = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    Ok(StepResult {
        concurrency,
        requests_per_sec: n as f64 / measured,
        items_per_sec: all.items_ok as f64 / measured,
        p50_ms: percentile(&all.latencies_us, 50.0),
        p99_ms: percentile(&all.latencies_us, 99.0),
        p999_ms: percentile(&all.latencies_us, 99.9),
        errors: all.errors,
        requests: n,
        exhausted,
    })
}

/// Rising concurrency until throughput stops rising (two levels without a 5 % gain).
async fn sweep(
    transport: &Transport,
    bases: &[String],
    scenario: Scenario,
    args: &Args,
    work: &Arc<Work>,
    keys: &(String, String),
) -> Result<Vec<StepResult>, Error> {
    let mut steps: Vec<StepResult> = Vec::new();
    let mut best = 0.0f64;
    let mut flat = 0;
    let mut c = 1;
    while c <= args.max_concurrency {
        let r = run_step(
            transport,
            bases,
            scenario,
            c,
            args.step_secs,
            Arc::clone(work),
            keys.clone(),
        )
        .await?;
        if r.requests == 0 {
            // The envelopes sealed ahead ran out before this level measured anything.
            println!(
                "  {:<34} c={c:<3} not measured: no envelopes left",
                scenario.name()
            );
            break;
        }
        println!(
            "  {:<34} c={:<3} {:>9.0} req/s {:>9.0} items/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms  errors {}",
            scenario.name(),
            c,
            r.requests_per_sec,
            r.items_per_sec,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.errors
        );
        let exhausted = r.exhausted;
        if r.items_per_sec > best * 1.05 {
            best = r.items_per_sec;
            flat = 0;
        } else {
            flat += 1;
        }
        steps.push(r);
        if flat >= 2 || exhausted {
            break;
        }
        c *= 2;
    }
    Ok(steps)
}

fn step_json(s: &StepResult) -> Value {
    json!({
        "concurrency": s.concurrency,
        "requests_per_sec": s.requests_per_sec,
        "items_per_sec": s.items_per_sec,
        "p50_ms": s.p50_ms, "p99_ms": s.p99_ms, "p999_ms": s.p999_ms,
        "errors": s.errors, "requests": s.requests, "envelopes_exhausted": s.exhausted,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    if args.nodes == 0 || (args.nodes > 1 && args.database != "postgres") {
        return Err("--nodes above 1 needs --database postgres (SQLite is one process)".into());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir =
        TempDir(std::env::temp_dir().join(format!("fieldseal-loadgen-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let schema = match args.database.as_str() {
        "postgres" => Some(Schema::create(&args.postgres_url).await?),
        _ => None,
    };
    // Reveal anomaly detection off, but in the pass that measures it: the run's reveals of the
    // same 2,000 tokens thousands of times a second are a burst by any measure.
    std::fs::write(dir.0.join(POLICY_FILE), format!("{POLICY}{ANOMALY_OFF}"))?;
    let kek_env = match args.kek.as_str() {
        "pkcs11" => softhsm_token(&dir.0, &args.pkcs11_module)?,
        _ => Vec::new(),
    };
    let target = Target {
        dir: dir.0.clone(),
        database_url: schema.as_ref().map(|s| s.url(&args.postgres_url)),
        kek_env,
    };
    let outcome = run(&args, &target, threads).await;
    // The run's schema is dropped whether the run succeeded or not; the run's error comes first.
    if let Some(schema) = schema
        && let Err(e) = schema.drop_schema(&args.postgres_url).await
    {
        if outcome.is_ok() {
            return Err(e);
        }
        eprintln!("fieldseal-loadgen: the run's schema was not dropped: {e}");
    }
    outcome
}

/// A SoftHSM2 token of the run's own in `dir`; the settings of a vault whose KEK it holds.
fn softhsm_token(dir: &Path, module: &Path) -> Result<Vec<(String, String)>, Error> {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens)?;
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )?;
    let pin = dir.join("pin");
    std::fs::write(&pin, "loadgen-pin-4711\n")?;
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", "loadgen"])
        .args(["--pin", "loadgen-pin-4711", "--so-pin", "loadgen-so-4711"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "softhsm2-util failed (is softhsm2 installed? scripts/setup.sh): {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = |p: &Path| p.display().to_string();
    Ok(vec![
        ("SOFTHSM2_CONF".into(), text(&conf)),
        ("FIELDSEAL_KEK_PROVIDER".into(), "pkcs11".into()),
        ("FIELDSEAL_PKCS11_MODULE".into(), text(module)),
        ("FIELDSEAL_PKCS11_TOKEN".into(), "loadgen".into()),
        ("FIELDSEAL_PKCS11_PIN_FILE".into(), text(&pin)),
    ])
}

/// Starts the nodes, measures every scenario, and writes the results.
async fn run(args: &Args, target: &Target, threads: usize) -> Result<(), Error> {
    // With a key file, a development vault (the file next to the data): the load generator
    // measures serving, not key custody.
    match args.kek.as_str() {
        "pkcs11" => cli(&args.vault, target, &["init"])?,
        _ => cli(&args.vault, target, &["init", "--dev"])?,
    };
    let checkout = cli(
        &args.vault,
        target,
        &["apikey", "create", "--role", "checkout"],
    )?;
    let payments = cli(
        &args.vault,
        target,
        &["apikey", "create", "--role", "payments"],
    )?;
    // Passes over the same vault: (name, transport, settings, policy).
    let mut transports = vec![(
        if args.monitoring {
            "monitoring off"
        } else {
            "plain HTTP"
        },
        Transport::Plain,
        Vec::new(),
        None,
    )];
    if args.tls {
        let (env, ca) = tls_certificate(&target.dir)?;
        transports.push(("TLS", Transport::Tls(ca), env, None));
    }
    let sink = if args.monitoring {
        let (addr, bytes) = syslog_sink()?;
        let on = |part: &str| args.monitoring_parts.iter().any(|p| p == part);
        let mut env = Vec::new();
        if on("metrics") {
            env.push((
                "FIELDSEAL_METRICS_LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ));
        }
        if on("forwarding") {
            env.push((
                "FIELDSEAL_SYSLOG_FORWARD".to_owned(),
                format!("tcp://{addr}"),
            ));
        }
        let anomaly = if on("anomaly") {
            ANOMALY_ON
        } else {
            ANOMALY_OFF
        };
        transports.push((
            "monitoring on",
            Transport::Plain,
            env,
            Some(format!("{POLICY}{anomaly}")),
        ));
        // Off once more, after: each pass runs on a database the passes before it grew, so the
        // second pass is slower for that alone; "on" is compared with the passes before and
        // after it.
        transports.push((
            "monitoring off, again",
            Transport::Plain,
            Vec::new(),
            Some(format!("{POLICY}{ANOMALY_OFF}")),
        ));
        Some(bytes)
    } else {
        None
    };
    let start_nodes = |env: &[(String, String)]| {
        (0..args.nodes)
            .map(|i| Server::start(&args.vault, target, &format!("node{i}"), env))
            .collect::<Result<Vec<_>, _>>()
    };
    let mut servers = start_nodes(&[])?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let server = &servers[0];
    println!(
        "vault: {} on {} ({} node{}), {threads} cores",
        bases.join(" "),
        args.database,
        args.nodes,
        if args.nodes == 1 { "" } else { "s" }
    );

    let ecdh = tokio::task::spawn_blocking(move || ecdh_rate(threads, 3.0)).await??;
    println!("reference: raw P-256 ECDH (AWS-LC) on {threads} threads: {ecdh:.0} ops/s");

    let ks_text = reqwest::get(format!("{}/v1/keys", server.base))
        .await?
        .text()
        .await?;
    let ks = KeySet::parse(&ks_text)?;
    let sealing = Instant::now();
    let n = args.envelopes;
    let envelopes = tokio::task::spawn_blocking(move || seal_envelopes(&ks, n, threads)).await??;
    println!(
        "sealed {} envelopes ahead of the run in {:.1} s",
        envelopes.len(),
        sealing.elapsed().as_secs_f64()
    );

    // Tokens to reveal: tokenize a first slice of envelopes outside the measurement.
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for chunk in envelopes[..2000].chunks(100) {
        let items: Vec<Value> = chunk.iter().map(|e| json!({ "envelope": e })).collect();
        let v: Value = client
            .post(format!("{}/v1/tokenize", server.base))
            .bearer_auth(&checkout)
            .json(&json!({ "items": items }))
            .send()
            .await?
            .json()
            .await?;
        for r in v["results"].as_array().into_iter().flatten() {
            if let Some(t) = r["token"].as_str() {
                tokens.push(t.to_owned());
            }
        }
    }
    if tokens.len() != 2000 {
        return Err(format!("setup tokenize returned {} tokens of 2000", tokens.len()).into());
    }
    // Each transport tokenizes its own equal share of the envelopes.
    let share = (envelopes.len() - 2000) / transports.len();
    let keys = (checkout, payments);
    // Per transport: the scenarios' steps and the nodes' peak memory.
    let mut results = Vec::new();
    let mut peaks = Vec::new();
    for (i, (name, transport, env, policy)) in transports.iter().enumerate() {
        if i > 0 {
            // The same vault (data, keys, tokens), restarted with this pass's settings.
            drop(std::mem::take(&mut servers));
            if let Some(p) = policy {
                std::fs::write(target.dir.join(POLICY_FILE), p)?;
            }
            servers = start_nodes(env)?;
            println!(
                "\nvault restarted, {name}: {}",
                servers
                    .iter()
                    .map(|s| s.base.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
        let from = 2000 + i * share;
        let work = Arc::new(Work {
            envelopes: envelopes[from..from + share].to_vec(),
            next_envelope: AtomicUsize::new(0),
            tokens: tokens.clone(),
            next_token: AtomicUsize::new(0),
        });
        // Prometheus scraping every node's metrics every second while the pass runs.
        let scraper = {
            let urls: Vec<String> = servers.iter().filter_map(|s| s.metrics.clone()).collect();
            (!urls.is_empty()).then(|| {
                tokio::spawn(async move {
                    let client = reqwest::Client::new();
                    loop {
                        for url in &urls {
                            if let Ok(r) = client.get(url).send().await {
                                let _ = r.bytes().await;
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            })
        };
        for scenario in [
            Scenario::Tokenize(1),
            Scenario::Tokenize(6),
            Scenario::Tokenize(100),
            Scenario::Detokenize,
        ] {
            let steps = sweep(transport, &bases, scenario, args, &work, &keys).await?;
            results.push((*name, scenario, steps));
        }
        if let Some(task) = scraper {
            task.abort();
        }
        peaks.push((
            *name,
            servers
                .iter()
                .filter_map(Server::peak_rss_mib)
                .reduce(f64::max),
        ));
    }
    drop(servers);

    println!();
    println!(
        "| transport | scenario | best concurrency | requests/s | envelopes or tokens/s | x raw ECDH | p50 ms | p99 ms | p99.9 ms | errors |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_scenarios = Vec::new();
    for (transport, scenario, steps) in &results {
        let best = steps
            .iter()
            .max_by(|a, b| a.items_per_sec.total_cmp(&b.items_per_sec));
        if let Some(b) = best {
            println!(
                "| {transport} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                scenario.name(),
                b.concurrency,
                b.requests_per_sec,
                b.items_per_sec,
                b.items_per_sec / ecdh,
                b.p50_ms,
                b.p99_ms,
                b.p999_ms,
                steps.iter().map(|s| s.errors).sum::<u64>()
            );
        }
        json_scenarios.push(json!({
            "transport": transport,
            "scenario": scenario.name(),
            "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        }));
    }
    if let Some(bytes) = &sink {
        println!(
            "syslog receiver: {} bytes of audit trail forwarded",
            bytes.load(Ordering::Relaxed)
        );
    }
    let peak = peaks.iter().filter_map(|(_, p)| *p).reduce(f64::max);
    println!(
        "\nKEK: {}; reference: raw ECDH {ecdh:.0}/s on {threads} cores; server peak RSS {}",
        args.kek,
        peaks
            .iter()
            .map(|(t, p)| format!(
                "{} ({t})",
                p.map_or("unknown".into(), |m| format!("{m:.1} MiB"))
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let doc = json!({
        "machine": { "cores": threads },
        "database": args.database,
        "nodes": args.nodes,
        "kek": args.kek,
        "tls": args.tls,
        "monitoring": args.monitoring.then_some(&args.monitoring_parts),
        "reference": { "raw_ecdh_aws_lc_per_sec": ecdh, "threads": threads },
        "server_peak_rss_mib": peak,
        "scenarios": json_scenarios,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&doc)? + "\n")?;
    println!("results written to {}", args.out.display());
    Ok(())
}
