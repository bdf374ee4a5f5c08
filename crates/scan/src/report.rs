//! What a scan found, gathered per location and kind, and the two ways to print it: JSON for
//! pipelines and a summary for people, the worst locations first. Neither holds a value: findings
//! carry masked samples and locations only.

use crate::detect::{Confidence, Hit, Masked};
use fieldseal_core::classify::{PiiKind, Sensitivity};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Examples kept per location and kind.
pub const EXAMPLES: usize = 3;

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Location {
    /// A file (a `.gz` file's decompressed text counts as the file).
    File {
        /// The path, as reached from the scanned root.
        path: String,
    },
    /// A column of a database table.
    Column {
        /// The database: `sqlite:PATH` or the PostgreSQL URL without its password.
        database: String,
        /// The table, with its schema for PostgreSQL.
        table: String,
        /// The column.
        column: String,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { path } => f.write_str(path),
            Self::Column {
                database,
                table,
                column,
            } => write!(f, "{database} {table}.{column}"),
        }
    }
}

/// Where in a location one example is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A 1-based line of a file.
    Line(u64),
    /// A row of a table, by its key (`id=42`), or by its position when the key itself is personal
    /// data (`row 17`).
    Row(String),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Row(key) => f.write_str(key),
        }
    }
}

/// One example of a finding: where, and the masked value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// Where in the location.
    #[serde(flatten)]
    pub place: PlaceJson,
    /// The value, masked.
    pub masked: String,
}

/// [`Place`] as JSON: `{"line": 3}` or `{"row": "id=42"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlaceJson {
    /// The line, for files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The row key, for tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
}

impl From<Place> for PlaceJson {
    fn from(p: Place) -> Self {
        match p {
            Place::Line(n) => Self {
                line: Some(n),
                row: None,
            },
            Place::Row(r) => Self {
                line: None,
                row: Some(r),
            },
        }
    }
}

/// The findings of one kind (and brand and confidence) in one location.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Where.
    pub location: Location,
    /// `card_number`, `email`, `phone`, `us_ssn`, `iban`.
    pub kind: &'static str,
    /// The card brand, for card numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<&'static str>,
    /// `high`, `medium` or `low`.
    pub confidence: &'static str,
    /// `payment_card` or `personal`.
    pub sensitivity: &'static str,
    /// How many values were found.
    pub count: u64,
    /// The first few, masked, with where they are.
    pub examples: Vec<Example>,
    #[serde(skip)]
    rank: (Sensitivity, Confidence),
}

/// Why part of the input was not scanned, or not to its end. Every problem makes the scan
/// incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The path does not exist.
    NotFound,
    /// Permission denied.
    PermissionDenied,
    /// A directory could not be listed, or a file opened or read.
    Unreadable,
    /// A `.gz` file is truncated or corrupt; what came before the damage was scanned.
    CorruptGzip,
    /// A database could not be opened or connected to.
    DatabaseUnavailable,
    /// The database connection was lost during the scan.
    ConnectionLost,
    /// A table could not be read.
    TableUnreadable,
}

impl ProblemKind {
    /// A stable machine-readable code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::PermissionDenied => "permission_denied",
            Self::Unreadable => "unreadable",
            Self::CorruptGzip => "corrupt_gzip",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::ConnectionLost => "connection_lost",
            Self::TableUnreadable => "table_unreadable",
        }
    }
}

/// Something that kept part of the input from being scanned.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The file, directory, database or table.
    pub location: String,
    /// What went wrong.
    pub kind: ProblemKind,
    /// A message for people. Never holds a value or a password.
    pub message: String,
}

/// Counts of what was read and skipped.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    /// Files scanned (including `.gz` files and SQLite files found in directories).
    pub files: u64,
    /// Bytes of text scanned (decompressed for `.gz`).
    pub bytes: u64,
    /// Files skipped as binary (a NUL byte in their first 8 KiB).
    pub binary_skipped: u64,
    /// Symbolic links not followed.
    pub symlinks_skipped: u64,
    /// Sockets, pipes and devices skipped.
    pub special_skipped: u64,
    /// Files that are not valid UTF-8 (scanned as bytes all the same).
    pub invalid_utf8: u64,
    /// Tables scanned.
    pub tables: u64,
    /// Columns scanned.
    pub columns: u64,
    /// Rows read.
    pub rows: u64,
}

/// Everything found so far, in a form that merges: each worker thread has one.
#[derive(Debug, Default)]
pub struct Tally {
    /// Counts.
    pub stats: Stats,
    /// Findings per location, then per kind, brand and confidence.
    groups: BTreeMap<Location, BTreeMap<GroupKey, Group>>,
    /// Problems.
    pub problems: Vec<Problem>,
}

type GroupKey = (&'static str, Option<&'static str>, Confidence);

#[derive(Debug)]
struct Group {
    kind: PiiKind,
    count: u64,
    examples: Vec<(Place, Masked)>,
}

impl Tally {
    /// Records one finding at `place` in `location`.
    pub fn add(&mut self, location: &Location, place: Place, hit: Hit) {
        // The location is copied once, not for every finding.
        if !self.groups.contains_key(location) {
            self.groups.insert(location.clone(), BTreeMap::new());
        }
        let Some(kinds) = self.groups.get_mut(location) else {
            return;
        };
        let key = (
            hit.kind.as_str(),
            hit.brand.map(|b| b.as_str()),
            hit.confidence,
        );
        let group = kinds.entry(key).or_insert_with(|| Group {
            kind: hit.kind,
            count: 0,
            examples: Vec::new(),
        });
        group.count += 1;
        if group.examples.len() < EXAMPLES {
            group.examples.push((place, hit.masked));
        }
    }

    /// Records a problem.
    pub fn problem(&mut self, location: impl Into<String>, kind: ProblemKind, message: String) {
        self.problems.push(Problem {
            location: location.into(),
            kind,
            message,
        });
    }

    /// Adds `other`'s findings, counts and problems to this one.
    pub fn merge(&mut self, other: Tally) {
        let s = &mut self.stats;
        let o = other.stats;
        s.files += o.files;
        s.bytes += o.bytes;
        s.binary_skipped += o.binary_skipped;
        s.symlinks_skipped += o.symlinks_skipped;
        s.special_skipped += o.special_skipped;
        s.invalid_utf8 += o.invalid_utf8;
        s.tables += o.tables;
        s.columns += o.columns;
        s.rows += o.rows;
        for (location, kinds) in other.groups {
            let mine = self.groups.entry(location).or_default();
            for (key, g) in kinds {
                match mine.get_mut(&key) {
                    Some(m) => {
                        m.count += g.count;
                        let room = EXAMPLES.saturating_sub(m.examples.len());
                        m.examples.extend(g.examples.into_iter().take(room));
                    }
                    None => {
                        mine.insert(key, g);
                    }
                }
            }
        }
        self.problems.extend(other.problems);
    }

    /// The finished report.
    pub fn into_report(self, targets: Vec<String>, seconds: f64) -> Report {
        let mut findings: Vec<Finding> = self
            .groups
            .into_iter()
            .flat_map(|(location, kinds)| {
                kinds
                    .into_iter()
                    .map(move |(key, g)| (location.clone(), key, g))
            })
            .map(|(location, (kind, brand, confidence), g)| Finding {
                location,
                kind,
                brand,
                confidence: confidence.as_str(),
                sensitivity: g.kind.sensitivity().as_str(),
                count: g.count,
                examples: g
                    .examples
                    .into_iter()
                    .map(|(place, masked)| Example {
                        place: place.into(),
                        masked: masked.as_str().to_owned(),
                    })
                    .collect(),
                rank: (g.kind.sensitivity(), confidence),
            })
            .collect();
        // Worst first: payment cards before personal data, surer before less sure, more before
        // fewer.
        findings.sort_by(|a, b| {
            b.rank
                .cmp(&a.rank)
                .then(b.count.cmp(&a.count))
                .then(a.location.cmp(&b.location))
        });
        let mut problems = self.problems;
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
        for f in &findings {
            *totals.entry(f.kind).or_default() += f.count;
        }
        Report {
            complete: problems.is_empty(),
            targets,
            seconds,
            stats: self.stats,
            totals,
            findings,
            problems,
        }
    }
}

/// A finished scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether everything was read: false when any problem was met.
    pub complete: bool,
    /// What was scanned, as given (PostgreSQL URLs without their password).
    pub targets: Vec<String>,
    /// Wall time of the scan.
    pub seconds: f64,
    /// Counts of what was read and skipped.
    pub stats: Stats,
    /// Values found per kind.
    pub totals: BTreeMap<&'static str, u64>,
    /// Findings per location and kind, worst first.
    pub findings: Vec<Finding>,
    /// What could not be scanned, and why.
    pub problems: Vec<Problem>,
}

impl Report {
    /// How many values of `kind` were found.
    pub fn count(&self, kind: PiiKind) -> u64 {
        self.totals.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// The summary for people: totals, then one line per location and kind, worst first, then the
    /// problems.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let s = &self.stats;
        let mut read = format!("{} files ({})", s.files, human_bytes(s.bytes));
        if s.tables > 0 {
            let _ = write!(read, ", {} tables, {} rows", s.tables, s.rows);
        }
        let _ = writeln!(out, "fieldseal scan: {read} in {:.1} s", self.seconds);
        let skipped = [
            (s.binary_skipped, "binary"),
            (s.symlinks_skipped, "symlinks"),
            (s.special_skipped, "special files"),
        ];
        let skipped: Vec<String> = skipped
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !skipped.is_empty() {
            let _ = writeln!(out, "skipped: {}", skipped.join(", "));
        }
        if s.invalid_utf8 > 0 {
            let _ = writeln!(
                out,
                "{} files are not valid UTF-8 (scanned as bytes)",
                s.invalid_utf8
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "\nNo card numbers or personal data found.");
        } else {
            let totals: Vec<String> = self
                .totals
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let _ = writeln!(out, "\nFound: {}\n", totals.join(", "));
            let rows: Vec<[String; 4]> = self
                .findings
                .iter()
                .map(|f| {
                    let what = match f.brand {
                        Some(b) => format!("{} ({b}, {})", f.kind, f.confidence),
                        None => format!("{} ({})", f.kind, f.confidence),
                    };
                    let examples: Vec<String> = f
                        .examples
                        .iter()
                        .map(|e| {
                            let place = match (&e.place.line, &e.place.row) {
                                (Some(l), _) => format!("line {l}"),
                                (None, Some(r)) => r.clone(),
                                (None, None) => String::new(),
                            };
                            format!("{place}: {}", e.masked)
                        })
                        .collect();
                    [
                        f.location.to_string(),
                        what,
                        f.count.to_string(),
                        examples.join(", "),
                    ]
                })
                .collect();
            let header = [
                "location".to_owned(),
                "kind".to_owned(),
                "count".to_owned(),
                "examples".to_owned(),
            ];
            let width = |i: usize| {
                rows.iter()
                    .chain(std::iter::once(&header))
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            };
            let (w0, w1, w2) = (width(0), width(1), width(2));
            for r in std::iter::once(&header).chain(&rows) {
                let _ = writeln!(out, "{:<w0$}  {:<w1$}  {:>w2$}  {}", r[0], r[1], r[2], r[3]);
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(
                out,
                "\nIncomplete: {} problems (those parts were not scanned, or not to the end):",
                self.problems.len()
            );
            for p in &self.problems {
                let _ = writeln!(out, "  {} [{}]: {}", p.location, p.kind.code(), p.message);
            }
        }
        out
    }
}

/// `1.5 MB`, `12 KB`, `812 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
