//! A generated, labelled corpus for measuring the scanner: application logs, NDJSON events and CSV
//! exports with planted card numbers of every brand fieldseal-core knows (in the spellings the
//! stray-card-number guard accepts, grouped as cards are printed), e-mail addresses, phone
//! numbers, US SSNs and IBANs, among as many look-alikes: order and invoice numbers, tracking
//! numbers, timestamps, UUIDs, long digit strings, numbers failing Luhn or mod-97, invalid SSNs,
//! addresses that are not e-mail addresses.
//!
//! Every planted value is written down in `labels.jsonl` (file, line, kind, brand, spelling),
//! never its digits; [`evaluate`] scans the files and gives recall and precision per kind. The
//! values are random, so a corpus holds no real person's data; the same seed gives the same
//! corpus.

use crate::detect::{self, Rules};
use crate::stream;
use fieldseal_core::card;
use fieldseal_core::envelope::CardBrand;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The folder of the corpus's files, inside the corpus folder.
pub const DATA_DIR: &str = "data";
/// The labels file, inside the corpus folder (next to `data/`, so it is not scanned).
pub const LABELS_FILE: &str = "labels.jsonl";
/// Size of each generated file.
const FILE_BYTES: u64 = 16 << 20;
/// One line in this many carries a planted value, and about as many a look-alike; the others are
/// ordinary log lines (timestamps, durations, addresses, ports).
const PLANT_EVERY: u64 = 8;

/// One planted value: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The file, relative to `data/`.
    pub file: String,
    /// The 1-based line where the value starts.
    pub line: u64,
    /// The kind (`card_number`, `email`, `phone`, `us_ssn`, `iban`).
    pub kind: String,
    /// The card brand, for card numbers.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub brand: Option<String>,
    /// How it is written (`fours_space`, `compact`, ...).
    pub spelling: String,
}

/// What [`generate`] wrote.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Values planted.
    pub planted: usize,
    /// Look-alikes written.
    pub lookalikes: u64,
}

/// SplitMix64: small, fast, deterministic; not for anything secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
}

/// Card-number prefixes per brand, found through fieldseal-core's own brand detection, so that a
/// brand added to core is planted here too: every 4-digit prefix core settles on one brand, and the
/// 6-digit extensions of those it leaves open.
fn brand_prefixes() -> Vec<(CardBrand, Vec<String>)> {
    let mut by_brand: Vec<(CardBrand, Vec<String>)> =
        CardBrand::ALL.iter().map(|b| (*b, Vec::new())).collect();
    let mut add = |brand: CardBrand, prefix: String| {
        if let Some((_, list)) = by_brand.iter_mut().find(|(b, _)| *b == brand) {
            list.push(prefix);
        }
    };
    for p4 in 0..10_000u32 {
        let p4 = format!("{p4:04}");
        match card::detect_brand(&p4) {
            Some(b) => add(b, p4),
            None => {
                for ext in 0..100u32 {
                    let p6 = format!("{p4}{ext:02}");
                    if let Some(b) = card::detect_brand(&p6) {
                        add(b, p6);
                    }
                }
            }
        }
    }
    by_brand
}

/// A card number of `brand` with a valid (or, when `luhn_ok` is false, a wrong) check digit.
fn card_number(
    rng: &mut Rng,
    brand: CardBrand,
    prefixes: &[String],
    luhn_ok: bool,
) -> Option<String> {
    let lengths = card::lengths(brand);
    for _ in 0..100 {
        let prefix = rng.pick(prefixes);
        let len = *rng.pick(lengths);
        if prefix.len() >= len {
            continue;
        }
        let mut body = prefix.clone();
        body.push_str(&rng.digits(len - prefix.len() - 1));
        let check = card::luhn_check_digit(body.as_bytes());
        let digit = if luhn_ok {
            check
        } else {
            b'0' + ((check - b'0' + 1 + rng.below(9) as u8) % 10)
        };
        body.push(char::from(digit));
        let valid = card::validate_pan(&body).is_ok_and(|p| p.brand() == Some(brand));
        if card::detect_brand(&body) == Some(brand) && (valid || !luhn_ok) {
            return Some(body);
        }
    }
    None
}

/// The spellings a card number is planted in: `(name, text)`. `newlines` only where the format
/// allows raw line breaks.
fn spell_card(
    rng: &mut Rng,
    digits: &str,
    brand: CardBrand,
    newlines: bool,
) -> (&'static str, String) {
    let groups = |sep: &str, sizes: &[usize]| -> String {
        let mut out = String::new();
        let mut rest = digits;
        for (i, n) in sizes.iter().enumerate() {
            if rest.is_empty() {
                break;
            }
            let (g, r) = rest.split_at((*n).min(rest.len()));
            if i > 0 {
                out.push_str(sep);
            }
            out.push_str(g);
            rest = r;
        }
        if !rest.is_empty() {
            out.push_str(sep);
            out.push_str(rest);
        }
        out
    };
    let fours = [4, 4, 4, 4, 4];
    let printed = card::grouping(Some(brand), digits.len());
    let spellings: &[&str] = if newlines {
        &[
            "compact",
            "fours_space",
            "fours_dash",
            "fours_dot",
            "printed",
            "nbsp",
            "double_space",
            "fullwidth",
            "with_expiry",
            "with_cvc",
            "newlines",
        ]
    } else {
        &[
            "compact",
            "fours_space",
            "fours_dash",
            "fours_dot",
            "printed",
            "nbsp",
            "double_space",
            "fullwidth",
            "with_expiry",
            "with_cvc",
        ]
    };
    let name = *rng.pick(spellings);
    let text = match name {
        "compact" => digits.to_owned(),
        "fours_space" => groups(" ", &fours),
        "fours_dash" => groups("-", &fours),
        "fours_dot" => groups(".", &fours),
        "printed" => groups(" ", printed),
        "nbsp" => groups("\u{a0}", &fours),
        "double_space" => groups("  ", &fours),
        "fullwidth" => digits
            .chars()
            .map(|c| char::from_u32(0xff10 + (c as u32 - '0' as u32)).unwrap_or(c))
            .collect(),
        "with_expiry" => format!(
            "{} {:02}/{}",
            groups(" ", &fours),
            1 + rng.below(12),
            27 + rng.below(8)
        ),
        "with_cvc" => format!(
            "{} {}",
            groups(" ", &fours),
            rng.digits(card::cvc_length(brand))
        ),
        _ => groups("\n", &fours),
    };
    (name, text)
}

/// A valid IBAN of one of a few countries, compact.
fn iban(rng: &mut Rng) -> String {
    let (country, bban) = match rng.below(4) {
        0 => ("DE", rng.digits(18)),
        1 => (
            "GB",
            format!(
                "{}{}",
                *rng.pick(&["WEST", "NWBK", "BARC", "MIDL"]),
                rng.digits(14)
            ),
        ),
        2 => (
            "NL",
            format!("{}{}", *rng.pick(&["ABNA", "INGB", "RABO"]), rng.digits(10)),
        ),
        _ => ("ES", rng.digits(20)),
    };
    let check = 98 - mod97(&format!("{bban}{country}00"));
    format!("{country}{check:02}{bban}")
}

/// An IBAN's mod-97 remainder (letters as 10..35).
fn mod97(s: &str) -> u32 {
    s.bytes().fold(0u32, |acc, c| {
        if c.is_ascii_digit() {
            (acc * 10 + u32::from(c - b'0')) % 97
        } else {
            (acc * 100 + u32::from(c.to_ascii_uppercase() - b'A') + 10) % 97
        }
    })
}

/// A planted value: kind, brand, spelling and the text (with its label, as a log line has it).
struct Plant {
    kind: &'static str,
    brand: Option<CardBrand>,
    spelling: &'static str,
    text: String,
}

/// The file formats written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Log,
    Ndjson,
    Csv,
}

struct Generator {
    rng: Rng,
    prefixes: Vec<(CardBrand, Vec<String>)>,
    lookalikes: u64,
}

const FIRST: &[&str] = &[
    "jane", "john", "maria", "li", "ahmed", "olga", "sam", "noor", "kenji", "ana",
];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "chen", "khan", "ivanova", "lee", "haddad", "sato", "silva",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.org",
    "shop.example.co.uk",
    "example.net",
];
const WORDS: &[&str] = &[
    "checkout", "cart", "session", "render", "cache", "queue", "worker", "retry", "db", "http",
];

impl Generator {
    fn plant(&mut self, format: Format) -> Plant {
        let kind = match self.rng.below(10) {
            0..=4 => "card_number",
            5 => "email",
            6 => "phone",
            7 => "us_ssn",
            _ => "iban",
        };
        let (spelling, text, brand) = match kind {
            "card_number" => {
                let i = self.rng.below(self.prefixes.len() as u64) as usize;
                let (brand, prefixes) = (self.prefixes[i].0, &self.prefixes[i].1);
                let digits = card_number(&mut self.rng, brand, prefixes, true).unwrap_or_default();
                let (spelling, text) =
                    spell_card(&mut self.rng, &digits, brand, format == Format::Log);
                let label =
                    *self
                        .rng
                        .pick(&["card=", "paid with ", "pan: ", "card number ", "cc "]);
                (spelling, format!("{label}{text}"), Some(brand))
            }
            "email" => {
                let e = format!(
                    "{}.{}{}@{}",
                    self.rng.pick(FIRST),
                    self.rng.pick(LAST),
                    self.rng.below(100),
                    self.rng.pick(DOMAINS)
                );
                ("address", format!("notify {e} sent"), None)
            }
            "phone" => {
                let area = 200 + self.rng.below(800);
                let exch = 200 + self.rng.below(800);
                let line = self.rng.digits(4);
                match self.rng.below(5) {
                    0 => ("e164", format!("sms to +1 {area} {exch} {line}"), None),
                    1 => ("nanp_parens", format!("call ({area}) {exch}-{line}"), None),
                    2 => ("nanp_dash", format!("call {area}-{exch}-{line}"), None),
                    3 => ("nanp_dot", format!("call {area}.{exch}.{line}"), None),
                    _ => ("labelled_bare", format!("phone: {area}{exch}{line}"), None),
                }
            }
            "us_ssn" => {
                let area = 1 + self.rng.below(665);
                let group = 1 + self.rng.below(99);
                let serial = 1 + self.rng.below(9999);
                match self.rng.below(3) {
                    0 => (
                        "dashed",
                        format!("ssn {area:03}-{group:02}-{serial:04}"),
                        None,
                    ),
                    1 => (
                        "spaced",
                        format!("tax id {area:03} {group:02} {serial:04}"),
                        None,
                    ),
                    _ => (
                        "labelled_bare",
                        format!("ssn={area:03}{group:02}{serial:04}"),
                        None,
                    ),
                }
            }
            _ => {
                let iban = iban(&mut self.rng);
                if self.rng.below(2) == 0 {
                    ("compact", format!("iban {iban}"), None)
                } else {
                    let grouped: Vec<String> = iban
                        .as_bytes()
                        .chunks(4)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect();
                    (
                        "groups_of_four",
                        format!("iban {}", grouped.join(" ")),
                        None,
                    )
                }
            }
        };
        Plant {
            kind,
            brand,
            spelling,
            text,
        }
    }

    /// Text that looks like personal data and is not.
    fn lookalike(&mut self) -> String {
        self.lookalikes += 1;
        let i = self.rng.below(self.prefixes.len() as u64) as usize;
        let (brand, prefixes) = (self.prefixes[i].0, &self.prefixes[i].1);
        let luhn_ok = card_number(&mut self.rng, brand, prefixes, true).unwrap_or_default();
        match self.rng.below(16) {
            0 => format!("order_id={luhn_ok}"),
            1 => format!("Order #{luhn_ok} shipped"),
            2 => format!("\"invoiceNumber\":\"{luhn_ok}\""),
            3 => format!("tracking number: {luhn_ok}"),
            4 => {
                let bad = card_number(&mut self.rng, brand, prefixes, false).unwrap_or_default();
                format!("card={bad}")
            }
            5 => format!(
                "ts={} epoch_ms={}",
                1_600_000_000 + self.rng.below(200_000_000),
                1_600_000_000_000 + self.rng.below(200_000_000_000)
            ),
            6 => format!(
                "request {}-{}-4{}-a{}-{}",
                self.rng.hex(8),
                self.rng.hex(4),
                self.rng.hex(3),
                self.rng.hex(3),
                self.rng.hex(12)
            ),
            7 => format!("usps {}", self.rng.digits(22)),
            8 => format!(
                "ups 1Z{}{}",
                self.rng.hex(6).to_uppercase(),
                self.rng.digits(10)
            ),
            9 => {
                let n = 20 + self.rng.below(5) as usize;
                format!("batch {}", self.rng.digits(n))
            }
            // A `+` makes a number an international phone number's shape, not a card number; only
            // numbers too long for a phone number, so that the line holds no phone either.
            10 if luhn_ok.len() > 15 => format!("intl +{luhn_ok}"),
            10 => format!("intl +{}", self.rng.digits(16)),
            11 => format!(
                "ssn 000-{:02}-{:04} or 666-{:02}-{:04}",
                1 + self.rng.below(99),
                1 + self.rng.below(9999),
                1 + self.rng.below(99),
                1 + self.rng.below(9999)
            ),
            12 => {
                let mut iban = iban(&mut self.rng);
                let last = iban.pop().unwrap_or('0');
                iban.push(if last == '9' {
                    '0'
                } else {
                    char::from(last as u8 + 1)
                });
                format!("iban {iban}")
            }
            13 => format!(
                "git@{} user@localhost pkg@1.{}.{}",
                self.rng.pick(WORDS),
                self.rng.below(10),
                self.rng.below(10)
            ),
            14 => format!("zip {} id {}", self.rng.digits(5), self.rng.digits(9)),
            // Sixteen digits starting with 1: no brand issues such numbers.
            _ => format!("sha1 {} build 1{}", self.rng.hex(40), self.rng.digits(15)),
        }
    }

    fn background(&mut self) -> String {
        format!(
            "{} {} in {} ms from 10.{}.{}.{}:{}",
            self.rng.pick(WORDS),
            self.rng.pick(&["ok", "done", "queued", "skipped"]),
            self.rng.below(5000),
            self.rng.below(256),
            self.rng.below(256),
            self.rng.below(256),
            1024 + self.rng.below(60_000)
        )
    }

    fn timestamp(&mut self, n: u64) -> String {
        let s = n % 86_400;
        format!(
            "2026-11-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + (n / 86_400) % 28,
            s / 3600,
            (s / 60) % 60,
            s % 60,
            self.rng.below(1000)
        )
    }
}

/// Writes a corpus of about `bytes` bytes into `dir` (`data/` and `labels.jsonl`).
pub fn generate(dir: &Path, bytes: u64, seed: u64) -> io::Result<Summary> {
    let data = dir.join(DATA_DIR);
    fs::create_dir_all(&data)?;
    let mut labels = BufWriter::new(File::create(dir.join(LABELS_FILE))?);
    let mut g = Generator {
        rng: Rng(seed),
        prefixes: brand_prefixes()
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .collect(),
        lookalikes: 0,
    };
    let mut summary = Summary::default();
    // At least six files, so that a small corpus has every format too.
    let file_bytes = FILE_BYTES.min((bytes / 6).max(1));
    let mut n = 0u64;
    while summary.bytes < bytes {
        let format = [Format::Log, Format::Ndjson, Format::Csv][summary.files % 3];
        let name = match format {
            Format::Log => format!("app-{:03}.log", summary.files),
            Format::Ndjson => format!("events-{:03}.ndjson", summary.files),
            Format::Csv => format!("export-{:03}.csv", summary.files),
        };
        let mut out = BufWriter::new(File::create(data.join(&name))?);
        let mut written = 0u64;
        let mut line = 1u64;
        if format == Format::Csv {
            let header = "id,created,status,note\n";
            out.write_all(header.as_bytes())?;
            written += header.len() as u64;
            line += 1;
        }
        while written < file_bytes && summary.bytes + written < bytes {
            n += 1;
            let ts = g.timestamp(n);
            let planted = (g.rng.below(PLANT_EVERY) == 0).then(|| g.plant(format));
            let body = match &planted {
                Some(p) => p.text.clone(),
                // As many look-alikes as planted values.
                None if g.rng.below(PLANT_EVERY - 1) == 0 => g.lookalike(),
                None => g.background(),
            };
            let text = match format {
                Format::Log => format!("{ts} INFO [{}] {body}\n", g.rng.pick(WORDS)),
                Format::Ndjson => format!(
                    "{{\"ts\":\"{ts}\",\"level\":\"info\",\"msg\":{}}}\n",
                    serde_json::to_string(&body).unwrap_or_default()
                ),
                Format::Csv => format!("{n},{ts},ok,\"{}\"\n", body.replace('"', "\"\"")),
            };
            if let Some(p) = planted {
                let label = Label {
                    file: name.clone(),
                    line,
                    kind: p.kind.to_owned(),
                    brand: p.brand.map(|b| b.as_str().to_owned()),
                    spelling: p.spelling.to_owned(),
                };
                serde_json::to_writer(&mut labels, &label)?;
                labels.write_all(b"\n")?;
                summary.planted += 1;
            }
            line += text.bytes().filter(|b| *b == b'\n').count() as u64;
            written += text.len() as u64;
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        summary.bytes += written;
        summary.files += 1;
    }
    labels.flush()?;
    summary.lookalikes = g.lookalikes;
    Ok(summary)
}

/// Recall and precision for one kind (or one brand or spelling).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Score {
    /// Planted values found.
    pub found: u64,
    /// Planted values missed.
    pub missed: u64,
    /// Findings where nothing of that kind was planted.
    pub false_positives: u64,
}

impl Score {
    /// Found over planted (1 when nothing was planted).
    pub fn recall(&self) -> f64 {
        let planted = self.found + self.missed;
        if planted == 0 {
            1.0
        } else {
            self.found as f64 / planted as f64
        }
    }

    /// True findings over findings (1 when nothing was found).
    pub fn precision(&self) -> f64 {
        let all = self.found + self.false_positives;
        if all == 0 {
            1.0
        } else {
            self.found as f64 / all as f64
        }
    }
}

/// The scores of a corpus scan.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Evaluation {
    /// Per kind.
    pub kinds: BTreeMap<String, Score>,
    /// Card numbers per brand (recall; false positives are not attributed to a brand).
    pub brands: BTreeMap<String, Score>,
    /// Planted values per kind and spelling (recall).
    pub spellings: BTreeMap<String, Score>,
    /// Bytes scanned.
    pub bytes: u64,
}

/// Scans the corpus in `dir` file by file and compares each finding with the labels.
pub fn evaluate(dir: &Path, rules: Rules) -> io::Result<Evaluation> {
    let labels_text = fs::read_to_string(dir.join(LABELS_FILE))?;
    // (file, line, kind) -> labels planted there.
    let mut planted: HashMap<(String, u64, String), Vec<Label>> = HashMap::new();
    for l in labels_text.lines().filter(|l| !l.is_empty()) {
        let label: Label = serde_json::from_str(l).map_err(io::Error::other)?;
        planted
            .entry((label.file.clone(), label.line, label.kind.clone()))
            .or_default()
            .push(label);
    }
    let mut eval = Evaluation::default();
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join(DATA_DIR))?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut hits: Vec<(u64, &'static str)> = Vec::new();
        let outcome = stream::scan_stream(
            File::open(&path)?,
            rules,
            &mut |h: detect::Hit, line| hits.push((line, h.kind.as_str())),
            &mut |_| {},
        )
        .map_err(|e| match e {
            stream::StreamError::Binary => io::Error::other("a corpus file looks binary"),
            stream::StreamError::Read { error, .. } => error,
        })?;
        eval.bytes += outcome.bytes;
        for (line, kind) in hits {
            let key = (name.clone(), line, kind.to_owned());
            let score = eval.kinds.entry(kind.to_owned()).or_default();
            match planted.get_mut(&key).and_then(Vec::pop) {
                Some(label) => {
                    score.found += 1;
                    if let Some(b) = &label.brand {
                        eval.brands.entry(b.clone()).or_default().found += 1;
                    }
                    let s = format!("{}/{}", label.kind, label.spelling);
                    eval.spellings.entry(s).or_default().found += 1;
                }
                None => score.false_positives += 1,
            }
        }
    }
    for labels in planted.into_values() {
        for label in labels {
            eval.kinds.entry(label.kind.clone()).or_default().missed += 1;
            if let Some(b) = &label.brand {
                eval.brands.entry(b.clone()).or_default().missed += 1;
            }
            let s = format!("{}/{}", label.kind, label.spelling);
            eval.spellings.entry(s).or_default().missed += 1;
        }
    }
    Ok(eval)
}

impl Evaluation {
    /// A table: per kind, then per brand and per spelling.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "kind                          found  missed  false+  recall  precision\n",
        );
        let mut rows = |title: &str, map: &BTreeMap<String, Score>, precision: bool| {
            for (k, s) in map {
                let p = if precision {
                    format!("{:.4}", s.precision())
                } else {
                    "-".to_owned()
                };
                out.push_str(&format!(
                    "{:<29} {:>6} {:>7} {:>7}  {:.4}  {p}\n",
                    format!("{title}{k}"),
                    s.found,
                    s.missed,
                    if precision {
                        s.false_positives.to_string()
                    } else {
                        "-".to_owned()
                    },
                    s.recall()
                ));
            }
        };
        rows("", &self.kinds, true);
        rows("card/", &self.brands, false);
        rows("", &self.spellings, false);
        out
    }
}
