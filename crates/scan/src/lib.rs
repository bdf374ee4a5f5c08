//! `fieldseal scan` finds card numbers and personal data stored in the clear: in directories of
//! files (logs, JSON, NDJSON, CSV, any text, and `.gz` files), in SQLite files and in PostgreSQL
//! databases. What counts as a card number, an e-mail address, a phone number, a US SSN or an IBAN
//! is decided by fieldseal-core, the same rules the browser SDK's stray-card-number guard and the
//! vault use; this crate cuts candidates out of text and adds context rules against false
//! positives ([`detect`]).
//!
//! ```
//! use fieldseal_scan::{Options, Progress, Target, scan};
//! let dir = std::env::temp_dir().join(format!("fieldseal-scan-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("app.log"), "paid with 4111 1111 1111 1111 by jane@example.com\n")?;
//! let report = scan(&[Target::Path(dir.clone())], &Options::default(), &Progress::default());
//! assert_eq!(report.totals["card_number"], 1);
//! assert_eq!(report.findings[0].examples[0].masked, "411111******1111");
//! assert!(!report.to_json().contains("4111 1111 1111 1111"));
//! std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Reports hold masked samples and locations only (file and line, table, column and row key),
//! never a value. Memory stays bounded: files are read in 1 MiB chunks whatever their lines.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod corpus;
pub mod db;
pub mod detect;
pub mod files;
pub mod report;
pub mod stream;

use fieldseal_core::classify::PiiKind;
use report::{Report, Tally};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// What the detector reports.
    pub rules: detect::Rules,
    /// Rows read per table (`--sample N`); all when `None`.
    pub sample: Option<u64>,
    /// Worker threads for files.
    pub threads: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rules: detect::Rules::default(),
            sample: None,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// One thing to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory (walked) or a file (text, `.gz` or SQLite, told apart by their first bytes).
    Path(PathBuf),
    /// A PostgreSQL database: `postgres://user@host:port/db`.
    Postgres(String),
}

impl Target {
    /// A command-line argument: a `postgres://` or `postgresql://` URL, `sqlite:PATH`, or a path.
    pub fn parse(arg: &str) -> Self {
        if arg.starts_with("postgres://") || arg.starts_with("postgresql://") {
            Self::Postgres(arg.to_owned())
        } else {
            Self::Path(PathBuf::from(arg.strip_prefix("sqlite:").unwrap_or(arg)))
        }
    }

    /// How the report names it: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Postgres(url) => db::redact_url(url),
        }
    }
}

/// Counters a progress display reads while the scan runs.
#[derive(Debug)]
pub struct Progress {
    files: AtomicU64,
    bytes: AtomicU64,
    rows: AtomicU64,
    started: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl Progress {
    fn file_done(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// One line for a terminal: files and rows done, bytes and bytes per second.
    pub fn line(&self) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "{} files, {} rows, {} ({}/s)",
            self.files.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
            report::human_bytes(bytes),
            report::human_bytes((bytes as f64 / secs) as u64),
        )
    }
}

/// Scans every target: the paths on [`Options::threads`] workers, then each PostgreSQL database.
pub fn scan(targets: &[Target], options: &Options, progress: &Progress) -> Report {
    let started = Instant::now();
    let roots: Vec<PathBuf> = targets
        .iter()
        .filter_map(|t| match t {
            Target::Path(p) => Some(p.clone()),
            Target::Postgres(_) => None,
        })
        .collect();
    let mut tally = files::scan_roots(&roots, options, progress);
    for t in targets {
        if let Target::Postgres(url) = t {
            let mut mine = Tally::default();
            db::scan_postgres(url, options, &mut mine, progress);
            tally.merge(mine);
        }
    }
    let names = targets.iter().map(Target::display).collect();
    tally.into_report(names, started.elapsed().as_secs_f64())
}

/// Exit status: no finding `--fail-on` names and a complete scan.
pub const EXIT_CLEAN: u8 = 0;
/// Exit status bit: a kind named by `--fail-on` was found.
pub const EXIT_FOUND: u8 = 1;
/// Exit status bit: part of the input could not be scanned (see the report's problems).
pub const EXIT_INCOMPLETE: u8 = 2;
/// Exit status: the command line is wrong (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// The exit status for `report` when the kinds in `fail_on` must not be found: [`EXIT_FOUND`] and
/// [`EXIT_INCOMPLETE`] combined (3 when both).
pub fn exit_status(report: &Report, fail_on: &[PiiKind]) -> u8 {
    let found = fail_on.iter().any(|k| report.count(*k) > 0);
    let mut status = EXIT_CLEAN;
    if found {
        status |= EXIT_FOUND;
    }
    if !report.complete {
        status |= EXIT_INCOMPLETE;
    }
    status
}

/// The kind a `--fail-on` name stands for: `pan` (or `card_number`), `email`, `phone`, `ssn` (or
/// `us_ssn`), `iban`; `any` for all of them.
pub fn fail_on_kinds(name: &str) -> Option<Vec<PiiKind>> {
    let name = name.trim().to_ascii_lowercase();
    if name == "any" || name == "all" {
        return Some(PiiKind::ALL.to_vec());
    }
    let alias = match name.as_str() {
        "pan" | "card" => "card_number",
        "ssn" => "us_ssn",
        other => other,
    };
    PiiKind::ALL
        .into_iter()
        .find(|k| k.as_str() == alias)
        .map(|k| vec![k])
}
