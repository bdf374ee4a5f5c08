//! `fieldseal scan` end to end: files of every kind, bad input of every kind, SQLite, the machine's
//! PostgreSQL, the command's exit status and output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use fieldseal_scan::report::{ProblemKind, Report};
use fieldseal_scan::{Options, Progress, Target, scan};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

const VISA: &str = "4111111111111111";
const MC: &str = "5555555555554444";
const EMAIL: &str = "jane.doe@example.com";

fn scan_dir(dir: &Path) -> Report {
    scan(
        &[Target::Path(dir.to_path_buf())],
        &Options::default(),
        &Progress::default(),
    )
}

/// The count of `kind` findings whose location ends with `name`.
fn count_in(report: &Report, name: &str, kind: &str) -> u64 {
    report
        .findings
        .iter()
        .filter(|f| f.kind == kind && f.location.to_string().ends_with(name))
        .map(|f| f.count)
        .sum()
}

/// Neither output form holds any of `values`, with or without separators.
fn assert_no_values(report: &Report, values: &[&str]) {
    let json = report.to_json();
    let text = report.to_text();
    for v in values {
        assert!(!json.contains(v), "JSON report holds a value");
        assert!(!text.contains(v), "text report holds a value");
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn finds_values_in_logs_json_csv_and_gzip_and_reports_them_masked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("app.log"),
        format!("2026-11-22T10:00:01Z INFO charge card={VISA} ok\n2026-11-22T10:00:02Z INFO mail to {EMAIL}\n"),
    )
    .unwrap();
    fs::write(
        d.join("events.ndjson"),
        "{\"pan\":\"5555 5555 5555 4444\",\"phone\":\"+44 20 7946 0958\"}\n{\"iban\":\"DE89370400440532013000\"}\n",
    )
    .unwrap();
    fs::write(
        d.join("export.csv"),
        format!("id,name,card,ssn\n1,Jane,{MC},123-45-6789\n"),
    )
    .unwrap();
    fs::create_dir(d.join("old")).unwrap();
    fs::write(
        d.join("old/app.log.1.gz"),
        gzip(format!("line one\nrefund {VISA}\n").as_bytes()),
    )
    .unwrap();
    let report = scan_dir(d);
    assert!(report.complete, "{:?}", report.problems);
    assert_eq!(report.stats.files, 4);
    assert_eq!(count_in(&report, "app.log", "card_number"), 1);
    assert_eq!(count_in(&report, "app.log.1.gz", "card_number"), 1);
    assert_eq!(count_in(&report, "app.log", "email"), 1);
    assert_eq!(count_in(&report, "events.ndjson", "card_number"), 1);
    assert_eq!(count_in(&report, "events.ndjson", "phone"), 1);
    assert_eq!(count_in(&report, "events.ndjson", "iban"), 1);
    assert_eq!(count_in(&report, "export.csv", "card_number"), 1);
    assert_eq!(count_in(&report, "export.csv", "us_ssn"), 1);
    let gz = report
        .findings
        .iter()
        .find(|f| f.location.to_string().ends_with("app.log.1.gz"))
        .unwrap();
    assert_eq!(gz.brand, Some("visa"));
    assert_eq!(gz.examples[0].place.line, Some(2));
    assert_eq!(gz.examples[0].masked, "411111******1111");
    let mail = report.findings.iter().find(|f| f.kind == "email").unwrap();
    assert_eq!(mail.examples[0].masked, "j***@example.com");
    // Payment cards first.
    assert_eq!(report.findings[0].kind, "card_number");
    assert_no_values(
        &report,
        &[
            VISA,
            MC,
            "5555 5555 5555 4444",
            EMAIL,
            "123-45-6789",
            "DE89370400440532013000",
            "7946 0958",
        ],
    );
}

#[test]
fn skips_binary_files_symlinks_and_special_files_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.log"), format!("card {VISA}\n")).unwrap();
    let root = dir.path();
    fs::write(root.join("image.bin"), [b'\x89', b'P', 0, 0, b'4', b'1']).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.log"), root.join("s.log")).unwrap();
    let fifo = root.join("pipe");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let report = scan_dir(root);
    assert!(report.complete);
    assert_eq!(report.stats.binary_skipped, 1);
    assert_eq!(report.stats.symlinks_skipped, 2);
    assert_eq!(report.stats.special_skipped, 1);
    assert_eq!(
        report.count(fieldseal_core::classify::PiiKind::CardNumber),
        0,
        "a link was followed"
    );
}

#[test]
fn truncated_gzip_keeps_what_came_before_and_marks_the_scan_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("card {VISA}\n").into_bytes();
    // Enough incompressible-ish text after the card that the cut lands well after it.
    for i in 0..20_000u32 {
        text.extend_from_slice(format!("line {i} {}\n", i.wrapping_mul(2_654_435_761)).as_bytes());
    }
    let mut gz = gzip(&text);
    gz.truncate(gz.len() / 2);
    fs::write(dir.path().join("cut.log.gz"), gz).unwrap();
    fs::write(dir.path().join("ok.log"), format!("mail {EMAIL}\n")).unwrap();
    let report = scan_dir(dir.path());
    assert!(!report.complete);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].kind, ProblemKind::CorruptGzip);
    assert!(report.problems[0].location.ends_with("cut.log.gz"));
    assert_eq!(
        count_in(&report, "cut.log.gz", "card_number"),
        1,
        "findings before the damage"
    );
    assert_eq!(count_in(&report, "ok.log", "email"), 1, "the scan went on");
}

#[test]
fn unreadable_and_missing_inputs_are_reported_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ok.log"), format!("card {VISA}\n")).unwrap();
    // Reading /proc/self/mem at offset 0 fails with EIO: a file that opens but cannot be read.
    let targets = [
        Target::Path("/proc/self/mem".into()),
        Target::Path(dir.path().join("missing")),
        Target::Path(dir.path().to_path_buf()),
    ];
    let report = scan(&targets, &Options::default(), &Progress::default());
    assert!(!report.complete);
    let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::Unreadable), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::NotFound), "{kinds:?}");
    assert_eq!(
        report.count(fieldseal_core::classify::PiiKind::CardNumber),
        1
    );
}

#[test]
fn permission_denied_is_reported_per_file() {
    let dir = tempfile::Builder::new().tempdir_in("/tmp").unwrap();
    let root = dir.path();
    fs::write(root.join("open.log"), format!("card {VISA}\n")).unwrap();
    fs::write(root.join("closed.log"), format!("card {MC}\n")).unwrap();
    fs::create_dir(root.join("closed")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("open.log"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(root.join("closed.log"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    let bin = env!("CARGO_BIN_EXE_fieldseal");
    // Root reads everything: run the scanner as `nobody` then.
    let mut cmd = if running_as_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd
        .args(["scan", "--format", "json"])
        .arg(root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = json["problems"].as_array().unwrap();
    let denied: Vec<&str> = problems
        .iter()
        .filter(|p| p["kind"] == "permission_denied")
        .map(|p| p["location"].as_str().unwrap())
        .collect();
    assert_eq!(denied.len(), 2, "{problems:?}");
    assert_eq!(
        json["totals"]["card_number"], 1,
        "the readable file was scanned"
    );
    fs::set_permissions(root.join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether this process runs as root (from /proc, without libc).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn invalid_utf8_is_scanned_as_bytes_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = b"caf\xe9 \xff\xfe card ".to_vec();
    data.extend_from_slice(VISA.as_bytes());
    data.push(b'\n');
    fs::write(dir.path().join("latin1.log"), data).unwrap();
    let report = scan_dir(dir.path());
    assert!(report.complete);
    assert_eq!(report.stats.invalid_utf8, 1);
    assert_eq!(count_in(&report, "latin1.log", "card_number"), 1);
}

#[test]
fn a_huge_line_is_read_in_bounded_memory() {
    // 160 MB without a newline, card numbers at the start, across chunk boundaries and at the end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one-line.log");
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let filler = "lorem ipsum dolor sit amet ".repeat(40);
    let mut written = 0usize;
    let mut planted = 0;
    let chunk = fieldseal_scan::stream::CHUNK;
    while written < 160_000_000 {
        let near_boundary = chunk - (written % chunk);
        if near_boundary < filler.len() {
            // Cut the card by the chunk boundary: 7 digits before it.
            let pad = near_boundary.saturating_sub(8);
            let s = format!("{} {VISA} ", &filler[..pad]);
            written += s.len();
            f.write_all(s.as_bytes()).unwrap();
            planted += 1;
        } else {
            written += filler.len();
            f.write_all(filler.as_bytes()).unwrap();
        }
    }
    write!(f, " {MC}").unwrap();
    planted += 1;
    f.flush().unwrap();
    drop(f);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .args(["scan", "--threads", "1", "--format", "json"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = fs::read_to_string(&status_path) {
            for line in status.lines().filter(|l| l.starts_with("VmRSS:")) {
                let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                peak_kb = peak_kb.max(kb);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["totals"]["card_number"], planted);
    assert_eq!(json["stats"]["bytes"], written as u64 + 1 + MC.len() as u64);
    println!("peak RSS {peak_kb} KiB scanning a {written}-byte line");
    assert!(peak_kb > 0 && peak_kb < 48 * 1024, "peak RSS {peak_kb} KiB");
}

#[test]
fn sqlite_tables_are_scanned_per_column_with_row_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, order_id TEXT, card TEXT, card_int INTEGER, note TEXT, total REAL);
         INSERT INTO orders VALUES (1, '{VISA}', '{VISA}', {MC}, 'call me at +1 415 555 2671', 12.5);
         INSERT INTO orders VALUES (2, '4012888888881881', NULL, NULL, 'nothing here', 1.0);
         INSERT INTO orders VALUES (3, NULL, '{MC}', NULL, NULL, 2.0);
         CREATE TABLE customers (email TEXT PRIMARY KEY, phone TEXT, ssn TEXT) WITHOUT ROWID;
         INSERT INTO customers VALUES ('{EMAIL}', '4155552671', '123456789');"
    ))
    .unwrap();
    drop(conn);
    let report = scan_dir(dir.path());
    assert!(report.complete, "{:?}", report.problems);
    assert_eq!(report.stats.tables, 2);
    assert_eq!(report.stats.rows, 4);
    assert_eq!(count_in(&report, "orders.card", "card_number"), 2);
    assert_eq!(count_in(&report, "orders.card_int", "card_number"), 1);
    assert_eq!(
        count_in(&report, "orders.order_id", "card_number"),
        0,
        "an order_id column"
    );
    assert_eq!(count_in(&report, "orders.note", "phone"), 1);
    assert_eq!(
        count_in(&report, "customers.phone", "phone"),
        1,
        "a phone column's bare digits"
    );
    assert_eq!(
        count_in(&report, "customers.ssn", "us_ssn"),
        1,
        "an ssn column's bare digits"
    );
    let card = report
        .findings
        .iter()
        .find(|f| f.location.to_string().ends_with("orders.card") && f.brand == Some("visa"))
        .unwrap();
    assert_eq!(card.examples[0].place.row.as_deref(), Some("id=1"));
    // The key is itself personal data: the row is named by position.
    let email = report.findings.iter().find(|f| f.kind == "email").unwrap();
    assert_eq!(email.examples[0].place.row.as_deref(), Some("row 1"));
    assert_no_values(&report, &[VISA, MC, EMAIL, "4155552671", "123456789"]);
    // --sample 1 reads one row per table.
    let options = Options {
        sample: Some(1),
        ..Options::default()
    };
    let sampled = scan(&[Target::Path(path)], &options, &Progress::default());
    assert_eq!(sampled.stats.rows, 2);
}

#[test]
fn a_corrupt_sqlite_file_is_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = fieldseal_scan::files::SQLITE_MAGIC.to_vec();
    data.extend_from_slice(&[0xAB; 3000]);
    fs::write(dir.path().join("broken.db"), data).unwrap();
    fs::write(dir.path().join("ok.log"), format!("{EMAIL}\n")).unwrap();
    let report = scan_dir(dir.path());
    assert!(!report.complete);
    assert_eq!(report.problems[0].kind, ProblemKind::DatabaseUnavailable);
    assert_eq!(count_in(&report, "ok.log", "email"), 1);
}

/// A PostgreSQL database of its own on the machine's server, dropped afterwards.
struct PgDatabase {
    name: String,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

impl PgDatabase {
    fn create(tag: &str) -> Self {
        let name = format!("fieldseal_scan_{tag}_{}", std::process::id());
        let mut admin = postgres::Client::connect(PG_ADMIN, postgres::NoTls)
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres, database test)");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url(), postgres::NoTls).unwrap()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(PG_ADMIN, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[test]
fn postgres_text_columns_are_scanned_with_row_keys() {
    let db = PgDatabase::create("cols");
    db.client()
        .batch_execute(&format!(
            "CREATE SCHEMA shop;
             CREATE TABLE shop.payments (id bigint PRIMARY KEY, pan varchar(19), pan_num numeric,
                 details jsonb, order_id text, amount double precision);
             INSERT INTO shop.payments VALUES
                 (1, '{VISA}', {MC}, '{{\"email\": \"{EMAIL}\", \"iban\": \"GB82 WEST 1234 5698 7654 32\"}}', '{VISA}', 9.5),
                 (2, 'none', NULL, '{{}}', NULL, 1);
             CREATE TABLE public.notes (body text);
             INSERT INTO public.notes VALUES ('ssn 123-45-6789'), ('nothing');"
        ))
        .unwrap();
    let report = scan(
        &[Target::Postgres(db.url())],
        &Options::default(),
        &Progress::default(),
    );
    assert!(report.complete, "{:?}", report.problems);
    assert_eq!(report.stats.tables, 2);
    assert_eq!(report.stats.rows, 4);
    assert_eq!(count_in(&report, "shop.payments.pan", "card_number"), 1);
    assert_eq!(count_in(&report, "shop.payments.pan_num", "card_number"), 1);
    assert_eq!(count_in(&report, "shop.payments.details", "email"), 1);
    assert_eq!(count_in(&report, "shop.payments.details", "iban"), 1);
    assert_eq!(
        count_in(&report, "shop.payments.order_id", "card_number"),
        0
    );
    assert_eq!(count_in(&report, "public.notes.body", "us_ssn"), 1);
    let pan = report
        .findings
        .iter()
        .find(|f| f.location.to_string().ends_with("shop.payments.pan"))
        .unwrap();
    assert_eq!(pan.examples[0].place.row.as_deref(), Some("id=1"));
    let notes = report.findings.iter().find(|f| f.kind == "us_ssn").unwrap();
    assert!(
        notes.examples[0]
            .place
            .row
            .as_deref()
            .unwrap()
            .starts_with("ctid=(")
    );
    assert_no_values(&report, &[VISA, MC, EMAIL]);
}

#[test]
fn postgres_connection_lost_mid_scan_is_reported_incomplete() {
    let db = PgDatabase::create("lost");
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE a_big (id int PRIMARY KEY, body text);
             INSERT INTO a_big SELECT g, 'row ' || g || ' card {VISA}' FROM generate_series(1, 400000) g;
             CREATE TABLE b_small (body text);
             INSERT INTO b_small VALUES ('{EMAIL}');"
        ))
        .unwrap();
    let url = db.url();
    let name = db.name.clone();
    let scanner = std::thread::spawn(move || {
        scan(
            &[Target::Postgres(url)],
            &Options::default(),
            &Progress::default(),
        )
    });
    // Terminate the scanner's backend as soon as it is reading.
    let mut admin = db.client();
    let mut killed = false;
    for _ in 0..2000 {
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'fieldseal-scan' AND query LIKE 'SELECT \"id\"%'",
                &[&name],
            )
            .unwrap();
        if !rows.is_empty() {
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let report = scanner.join().unwrap();
    assert!(
        killed,
        "the scan finished before its backend could be terminated"
    );
    assert!(!report.complete);
    let lost: Vec<&str> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::ConnectionLost)
        .map(|p| p.location.as_str())
        .collect();
    assert!(
        lost.iter().any(|l| l.ends_with("public.a_big")),
        "{:?}",
        report.problems
    );
    assert!(
        lost.iter().any(|l| l.ends_with("public.b_small")),
        "{:?}",
        report.problems
    );
    assert_eq!(
        fieldseal_scan::exit_status(&report, &[]),
        fieldseal_scan::EXIT_INCOMPLETE
    );
}

#[test]
fn an_unreachable_database_is_a_problem_and_its_password_never_shows() {
    let report = scan(
        &[Target::Postgres(
            "postgres://scanner:s3cretpw@127.0.0.1:1/none".into(),
        )],
        &Options::default(),
        &Progress::default(),
    );
    assert!(!report.complete);
    assert_eq!(report.problems[0].kind, ProblemKind::DatabaseUnavailable);
    assert!(!report.to_json().contains("s3cretpw"));
    assert!(
        report
            .to_json()
            .contains("postgres://scanner:***@127.0.0.1:1/none")
    );
}

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldseal"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn exit_status_tells_clean_found_incomplete_and_usage_apart() {
    let clean = tempfile::tempdir().unwrap();
    fs::write(
        clean.path().join("a.log"),
        "nothing to see 2026-11-22 12345\n",
    )
    .unwrap();
    let found = tempfile::tempdir().unwrap();
    fs::write(found.path().join("a.log"), format!("card {VISA} {EMAIL}\n")).unwrap();
    let c = clean.path().to_str().unwrap();
    let f = found.path().to_str().unwrap();
    let missing = "/nonexistent/fieldseal-scan-test";
    assert_eq!(run(&["scan", "--fail-on", "pan", c]).0, Some(0));
    assert_eq!(
        run(&["scan", f]).0,
        Some(0),
        "without --fail-on, findings are not failures"
    );
    assert_eq!(run(&["scan", "--fail-on", "pan", f]).0, Some(1));
    assert_eq!(run(&["scan", "--fail-on", "ssn,iban", f]).0, Some(0));
    assert_eq!(run(&["scan", "--fail-on", "email", f]).0, Some(1));
    assert_eq!(run(&["scan", "--fail-on", "pan", c, missing]).0, Some(2));
    assert_eq!(run(&["scan", "--fail-on", "any", f, missing]).0, Some(3));
    assert_eq!(run(&["scan", "--fail-on", "cvv", c]).0, Some(64));
    assert_eq!(run(&["scan", "--bogus", c]).0, Some(64));
    assert_eq!(run(&["scan"]).0, Some(64));
    assert_eq!(run(&["--help"]).0, Some(0));
}

#[test]
fn output_holds_no_values_and_progress_stays_off_when_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("a.log"),
        format!("card {VISA} mail {EMAIL}\n"),
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    for format in ["text", "json"] {
        let (code, stdout, stderr) = run(&["scan", "--format", format, d]);
        assert_eq!(code, Some(0));
        assert!(stderr.is_empty(), "progress on a pipe: {stderr}");
        assert!(stdout.contains("411111******1111"));
        assert!(!stdout.contains(VISA) && !stdout.contains(EMAIL));
    }
    let (_, _, stderr) = run(&["scan", "--progress", "always", d]);
    assert!(stderr.contains("files"), "{stderr}");
    let out = dir.path().join("report.json");
    let (code, stdout, _) = run(&["scan", "--format", "json", "-o", out.to_str().unwrap(), d]);
    assert_eq!(code, Some(0));
    assert!(stdout.is_empty());
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(json["complete"], true);
}
