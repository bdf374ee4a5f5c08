//! Finding personal data in a byte buffer: the candidates are cut out of running text here, and
//! fieldseal-core decides what they are (card numbers by brand, length and Luhn; e-mail, phone,
//! US SSN and IBAN by their structure and checksums).
//!
//! The search is triggered by digits (and full-width digits) and by `@` only; everything else is
//! skipped eight bytes at a time, and so are runs of digits. Short numbers with nothing around them
//! that could start a telephone number or an IBAN (`10:00:01`, `2026-11-22`, `10.1.2.3`) are passed
//! over once their length is known. Around each trigger:
//!
//! | kind | candidate | context rules on top of fieldseal-core's |
//! |---|---|---|
//! | card number | the digit groups core would join (up to [`MAX_CARD_SEPARATORS`] separators) | not glued to a letter, digit or `_`; not after a label naming another number (`order`, `invoice`, `tracking` ...); not part of a UUID |
//! | e-mail | the address characters around `@` | core's `is_email` |
//! | phone | digits with spaces, `-`, `.`, `(`, `)` | `+` and E.164, or the North American shapes `(415) 555-2671`, `415-555-2671`, `415.555.2671`, `415 555 2671`; a bare block of 10 to 15 digits only after a label such as `phone`, `tel`, `mobile` |
//! | US SSN | `AAA-GG-SSSS` or `AAA GG SSSS` | nine bare digits only after a label such as `ssn` |
//! | IBAN | two letters and two digits, then one block or groups of four | core's country length and mod-97 check |
//!
//! No candidate is kept: a finding carries its kind, its brand, its confidence, where it starts and
//! a masked sample, never the value.

use fieldseal_core::card::{self, Pan};
use fieldseal_core::classify::{
    self, MAX_CARD_SEPARATORS, PiiKind, card_digit, find_card_numbers, is_card_separator,
};
use fieldseal_core::envelope::CardBrand;
use std::fmt;

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Confidence {
    /// A card number with a known brand's prefix and length whose Luhn check digit does not match
    /// (UnionPay issues such numbers): digit-shaped, reported only with `--low-confidence`.
    Low,
    /// The value has the structure of its kind (e-mail, phone, SSN), without a checksum.
    Medium,
    /// A checksum agrees: a card number with a known brand's prefix and length and a valid Luhn
    /// check digit, or an IBAN whose mod-97 check gives 1.
    High,
}

impl Confidence {
    /// A stable name: `low`, `medium`, `high`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// A value masked for a report: `411111******1111`, `j***@example.com`, `+1 *** *** **71`. Built
/// only by this module's maskers, so a report can hold nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Masked(String);

impl Masked {
    /// The masked text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One value found: what it is and where it starts. Holds no part of the value but its masked
/// form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The kind of personal data.
    pub kind: PiiKind,
    /// The card brand, for card numbers.
    pub brand: Option<CardBrand>,
    /// How sure the finding is.
    pub confidence: Confidence,
    /// Byte offset of the value in the scanned buffer.
    pub offset: usize,
    /// The value, masked.
    pub masked: Masked,
}

/// Labels after which a card-shaped number is another kind of number: order and invoice numbers,
/// shipment tracking, references. Matched against the words of the label just before the number
/// (`order_id=`, `"invoiceNumber": "`, `Tracking no. `, an `order_id` column).
const NOT_CARD_LABELS: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "shipment",
    "parcel",
    "consignment",
    "ticket",
    "confirmation",
    "booking",
    "reference",
    "ref",
    "txn",
    "transaction",
    "trace",
    "request",
    "serial",
    "sku",
    "isbn",
    "ean",
    "gtin",
    "upc",
    "imei",
    "iccid",
];

/// Labels that make a bare block of 10 to 15 digits a telephone number.
const PHONE_LABELS: &[&str] = &[
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cell",
    "cellphone",
    "fax",
    "msisdn",
    "whatsapp",
];

/// Labels that make nine bare digits a US SSN.
const SSN_LABELS: &[&str] = &["ssn", "social", "socialsecurity", "taxpayer", "tin"];

/// Words that end a label without naming anything (`order no.`, `tracking_number`, `orderId`).
const LABEL_SUFFIXES: &[&str] = &["id", "no", "nr", "num", "number", "code", "nummer"];

/// How far back a label is looked for, in bytes, on the same line.
const LABEL_REACH: usize = 48;

/// Longest run of digits and separators examined as one card-number candidate: far longer than
/// any card number written with separators, short enough to keep memory bounded.
pub const MAX_REGION: usize = 512;

/// Bytes before a trigger that the context rules may read (labels, an e-mail's local part, an
/// IBAN's country). A streaming caller keeps this much of the previous chunk.
pub const LOOKBEHIND: usize = 80;

/// Bytes after a trigger a candidate may extend to (an e-mail's domain is the longest). A
/// streaming caller does not start candidates closer than this to the end of a chunk it has not
/// finished reading.
pub const LOOKAHEAD: usize = 2 * MAX_REGION;

/// Bytes that may start a candidate: ASCII digits, `@`, and the first byte of the full-width
/// digits' UTF-8 encoding.
const TRIGGER: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b'@' as usize] = true;
    t[0xEF] = true;
    t
};

/// Where the first [`TRIGGER`] byte of `bytes` is, eight bytes at a time.
fn next_trigger(bytes: &[u8]) -> Option<usize> {
    let mut n = 0;
    while let Some(word) = bytes.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        let x = u64::from_le_bytes(*word);
        // Digits and `@` exactly, and every non-ASCII byte (the full-width digits' first byte
        // among them): the first of these, then the table decides.
        let maybe = (!non_digit_bytes(x) & HIGH_BITS)
            | zero_bytes(x ^ 0x4040_4040_4040_4040)
            | (x & HIGH_BITS);
        if maybe != 0 {
            let k = (maybe.trailing_zeros() / 8) as usize;
            if let Some(j) = word[k..].iter().position(|&b| TRIGGER[usize::from(b)]) {
                return Some(n + k + j);
            }
        }
        n += 8;
    }
    bytes[n..]
        .iter()
        .position(|&b| TRIGGER[usize::from(b)])
        .map(|j| n + j)
}

/// What to look for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    /// Report card numbers that fail Luhn but have a brand that issues such numbers
    /// ([`Confidence::Low`]).
    pub low_confidence: bool,
}

/// Scans `buf` for candidates starting in `from..to` (they may extend to the end of `buf`); the
/// bytes before `from` are context only. `field` names the field the buffer is the value of (a
/// database column), used as the label when the text itself has none. Calls `hit` for each
/// finding, in order of position, and returns where a following scan must resume (at least `to`).
pub fn scan(
    buf: &[u8],
    from: usize,
    to: usize,
    field: Option<&str>,
    rules: Rules,
    hit: &mut dyn FnMut(Hit),
) -> usize {
    let mut s = Scan {
        buf,
        field,
        rules,
        hit,
    };
    let mut i = from;
    let to = to.min(buf.len());
    while i < to {
        let Some(found) = next_trigger(&buf[i..to]) else {
            return to;
        };
        i += found;
        i = if buf[i] == b'@' {
            s.email(i)
        } else {
            s.digits(i)
        };
    }
    i
}

/// The state of one [`scan`] call.
struct Scan<'a, 'h> {
    buf: &'a [u8],
    field: Option<&'a str>,
    rules: Rules,
    hit: &'h mut dyn FnMut(Hit),
}

#[inline]
/// A character of `buf` at `i`: the char and its length in bytes; `None` for invalid UTF-8 or the
/// end of the buffer.
fn char_at(buf: &[u8], i: usize) -> Option<(char, usize)> {
    let b = *buf.get(i)?;
    if b < 0x80 {
        return Some((char::from(b), 1));
    }
    let width = match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let bytes = buf.get(i..i + width)?;
    let c = std::str::from_utf8(bytes).ok()?.chars().next()?;
    Some((c, width))
}

/// Whether `b` continues a word: an ASCII letter or digit, or `_`.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The byte before `i`, if any.
fn before(buf: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| buf.get(j).copied())
}

impl Scan<'_, '_> {
    fn report(
        &mut self,
        kind: PiiKind,
        brand: Option<CardBrand>,
        c: Confidence,
        at: usize,
        m: String,
    ) {
        (self.hit)(Hit {
            kind,
            brand,
            confidence: c,
            offset: at,
            masked: Masked(m),
        });
    }

    /// A trigger on a digit (ASCII or full-width) at `p`: card numbers, phones, SSNs, IBANs.
    /// Returns where to go on.
    fn digits(&mut self, p: usize) -> usize {
        let w = if self.buf[p].is_ascii_digit() {
            1
        } else {
            match char_at(self.buf, p) {
                Some((c, w)) if card_digit(c).is_some() => w,
                Some((_, w)) => return p + w,
                None => return p + 1,
            }
        };
        let prev = before(self.buf, p);
        // The digits of an IBAN are nothing else (groups of four inside one can pass for a card).
        // Its check digits follow two letters.
        if prev.is_some_and(|b| b.is_ascii_alphabetic())
            && p.checked_sub(2)
                .is_some_and(|c| self.buf[c].is_ascii_alphabetic())
            && let Some(end) = self.iban(p)
        {
            return end.max(p + w);
        }
        let (region_end, digits, runs) = ascii_region(self.buf, p).unwrap_or_else(|| {
            let (end, digits) = self.walk_region(p, |_, _| {});
            (end, digits, u32::MAX)
        });
        let mut next = region_end.max(p + w);
        let after_phone_prefix = matches!(prev, Some(b'+' | b'('));
        // The short numbers logs are full of (`10:00:01`, `2026-11-22`, `10.1.2.3`) are nothing
        // when nothing before them starts a phone number.
        if digits < 9 && !after_phone_prefix {
            return next;
        }
        // Phones and SSNs may start at any digit group of the region, if one has a length they
        // can start with (a date after the previous line's last number has none).
        let mut q = if runs & PHONE_OR_SSN_RUNS != 0 || prev == Some(b'+') {
            p
        } else {
            region_end
        };
        while q < region_end {
            let run = digit_run(self.buf, q);
            let ssn = if ssn_may_start(run) {
                self.ssn(q)
            } else {
                None
            };
            let phone = if phone_may_start(self.buf, q, run) {
                self.phone(q)
            } else {
                None
            };
            if let Some(end) = ssn.max(phone) {
                next = next.max(end);
                q = end;
                continue;
            }
            q = next_digit(self.buf, q + run.max(1), region_end);
        }
        if self.card_candidate(p, region_end, digits) {
            self.cards(p, region_end);
        }
        next
    }

    /// Whether some run of whole groups of the region from `p` (the digits and separators
    /// fieldseal-core would read as one sequence of groups; `end` and `digits` are its shape from
    /// [`Scan::walk_region`]) has a card number's length and passes Luhn (or Luhn does not
    /// matter): only then is fieldseal-core asked, which decides. A prefilter for speed: most
    /// digit runs in logs are ids and timestamps.
    fn card_candidate(&self, p: usize, end: usize, digits: usize) -> bool {
        digits >= card::MIN_PAN_LEN
            && (self.rules.low_confidence || {
                // Second pass, for the few long regions only: the digits, grouped.
                let mut scratch = Scratch::default();
                let text = &self.buf[p..end];
                if text.is_ascii() {
                    // Groups are the runs of digits between separators.
                    let mut in_group = false;
                    for &b in text {
                        let digit = b.is_ascii_digit();
                        if digit {
                            if !in_group {
                                scratch.start_group();
                            }
                            scratch.push(b);
                        }
                        in_group = digit;
                    }
                } else {
                    self.walk_region(p, |d, new_group| {
                        if new_group {
                            scratch.start_group();
                        }
                        scratch.push(d);
                    });
                }
                scratch.overflowed || scratch.some_run_passes_luhn()
            })
    }

    /// Walks the region from `p`, giving each digit (and whether it starts a group) to `digit`;
    /// returns where the last digit ends and how many there are.
    fn walk_region(&self, p: usize, mut digit: impl FnMut(u8, bool)) -> (usize, usize) {
        let mut i = p;
        let mut end = p;
        let mut digits = 0;
        let mut separators = 0;
        while i - p < MAX_REGION {
            let Some(&b) = self.buf.get(i) else { break };
            // ASCII directly; other characters (no-break spaces, full-width digits) decoded.
            let (c, w) = if b < 0x80 {
                (char::from(b), 1)
            } else {
                match char_at(self.buf, i) {
                    Some(cw) => cw,
                    None => break,
                }
            };
            if let Some(d) = card_digit(c) {
                digit(d, separators > 0 || digits == 0);
                digits += 1;
                separators = 0;
                end = i + w;
            } else if is_card_separator(c) && separators < MAX_CARD_SEPARATORS {
                separators += 1;
            } else {
                break;
            }
            i += w;
        }
        (end, digits)
    }

    /// Card numbers in the region `p..end`.
    fn cards(&mut self, p: usize, end: usize) {
        // A `+` right before the region is part of what core judges (a phone number's prefix).
        let start = if before(self.buf, p) == Some(b'+') {
            p - 1
        } else {
            p
        };
        let Ok(window) = std::str::from_utf8(&self.buf[start..end]) else {
            return;
        };
        for m in find_card_numbers(window) {
            let (s, e) = (start + m.start, start + m.end);
            if before(self.buf, s).is_some_and(is_word)
                || self.buf.get(e).copied().is_some_and(is_word)
                || !printed_grouping(&window[m.start..m.end], &m.pan)
                || in_uuid(self.buf, s, e)
                || self.labelled(s, NOT_CARD_LABELS)
            {
                continue;
            }
            let confidence = if card::luhn_valid(m.pan.expose_digits().as_bytes()) {
                Confidence::High
            } else if self.rules.low_confidence {
                Confidence::Low
            } else {
                continue;
            };
            let masked = mask_pan(&m.pan);
            self.report(PiiKind::CardNumber, m.pan.brand(), confidence, s, masked);
        }
    }

    /// An SSN starting at `q`; returns its end.
    fn ssn(&mut self, q: usize) -> Option<usize> {
        if !boundary_before(self.buf, q) {
            return None;
        }
        let run = digit_run(self.buf, q);
        let end = match run {
            3 => {
                let sep = *self.buf.get(q + 3)?;
                let shaped = matches!(sep, b'-' | b' ')
                    && digit_run(self.buf, q + 4) == 2
                    && self.buf.get(q + 6) == Some(&sep)
                    && digit_run(self.buf, q + 7) == 4;
                if !shaped {
                    return None;
                }
                q + 11
            }
            9 if self.labelled(q, SSN_LABELS) => q + 9,
            _ => return None,
        };
        if !boundary_after(self.buf, end) {
            return None;
        }
        let text = std::str::from_utf8(&self.buf[q..end]).ok()?;
        if !classify::is_ssn(text) {
            return None;
        }
        self.report(
            PiiKind::UsSsn,
            None,
            Confidence::Medium,
            q,
            mask_middle(text, 0, 2),
        );
        Some(end)
    }

    /// A telephone number whose first digit is at `q`; returns its end.
    fn phone(&mut self, q: usize) -> Option<usize> {
        let mut start = q;
        let plus = match before(self.buf, q) {
            Some(b'+') => {
                start = q - 1;
                true
            }
            Some(b'(') => {
                start = q - 1;
                false
            }
            _ => false,
        };
        if !boundary_before(self.buf, start) {
            return None;
        }
        let mut groups = [0usize; 5];
        let mut ngroups = 0;
        let mut i = q;
        let mut end = q;
        let mut gap = 0;
        let mut total = 0;
        while let Some(&b) = self.buf.get(i) {
            if b.is_ascii_digit() {
                let n = digit_run(self.buf, i);
                *groups.get_mut(ngroups)? = n;
                ngroups += 1;
                total += n;
                i += n;
                end = i;
                gap = 0;
                if total > 15 {
                    return None;
                }
            } else if matches!(b, b' ' | b'-' | b'.' | b'(' | b')') && gap < 2 {
                gap += 1;
                i += 1;
            } else {
                break;
            }
        }
        if !boundary_after(self.buf, end) {
            return None;
        }
        let groups = &groups[..ngroups];
        let nanp =
            matches!(groups, [3, 3, 4]) || (matches!(groups, [1, 3, 3, 4]) && self.buf[q] == b'1');
        let bare =
            matches!(groups, [n] if (10..=15).contains(n)) && self.labelled(start, PHONE_LABELS);
        if !(plus || nanp || bare) {
            return None;
        }
        let text = std::str::from_utf8(&self.buf[start..end]).ok()?;
        // As core's classify: a phone number is not also an SSN or a card number.
        if !classify::is_phone(text) || classify::is_ssn(text) || card::validate_pan(text).is_ok() {
            return None;
        }
        self.report(
            PiiKind::Phone,
            None,
            Confidence::Medium,
            start,
            mask_middle(text, 0, 2),
        );
        Some(end)
    }

    /// An IBAN whose check digits start at `p` (the country code is the two letters before);
    /// returns its end.
    fn iban(&mut self, p: usize) -> Option<usize> {
        let start = p.checked_sub(2)?;
        let country = &self.buf[start..p];
        if !country.iter().all(u8::is_ascii_alphabetic) || !boundary_before(self.buf, start) {
            return None;
        }
        let token = alnum_run(self.buf, start);
        let mut candidates: Vec<usize> = Vec::new();
        if (15..=34).contains(&token) {
            candidates.push(start + token);
        } else if token == 4 {
            // Groups of four separated by single spaces, the last one shorter or not.
            let mut end = start + 4;
            let mut len = 4;
            while self.buf.get(end) == Some(&b' ') && len < 34 {
                let n = alnum_run(self.buf, end + 1);
                if n == 0 || n > 4 {
                    break;
                }
                end += 1 + n;
                len += n;
                if len >= 15 {
                    candidates.push(end);
                }
                if n < 4 {
                    break;
                }
            }
        }
        for end in candidates.into_iter().rev() {
            if self.buf.get(end).copied().is_some_and(is_word) {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&self.buf[start..end]) else {
                continue;
            };
            if classify::is_iban(text) {
                let compact: String = text.chars().filter(|c| *c != ' ').collect();
                let masked = mask_middle(&compact.to_ascii_uppercase(), 4, 2);
                self.report(PiiKind::Iban, None, Confidence::High, start, masked);
                return Some(end);
            }
        }
        None
    }

    /// An e-mail address around the `@` at `at`; returns where to go on.
    fn email(&mut self, at: usize) -> usize {
        let local_char = |b: u8| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b);
        let domain_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        let mut s = at;
        while s > 0 && at - s < 64 && local_char(self.buf[s - 1]) {
            s -= 1;
        }
        while s < at && self.buf[s] == b'.' {
            s += 1;
        }
        let mut e = at + 1;
        while e < self.buf.len() && e - at <= 253 && domain_char(self.buf[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(self.buf[e - 1], b'.' | b'-') {
            e -= 1;
        }
        if s == at || e == at + 1 {
            return at + 1;
        }
        let Ok(text) = std::str::from_utf8(&self.buf[s..e]) else {
            return at + 1;
        };
        if !classify::is_email(text) {
            return at + 1;
        }
        let (local, domain) = text.split_at(at - s);
        let mut masked = String::with_capacity(text.len() + 4);
        masked.extend(local.chars().take(1));
        masked.push_str("***");
        masked.push_str(domain);
        self.report(PiiKind::Email, None, Confidence::Medium, s, masked);
        e
    }

    /// Whether the label before `at` (on the same line), or else the field's name, is one of
    /// `words`.
    fn labelled(&self, at: usize, words: &[&str]) -> bool {
        let from = at.saturating_sub(LABEL_REACH);
        let line = &self.buf[from..at];
        let line = match memchr::memrchr(b'\n', line) {
            Some(n) => &line[n + 1..],
            None => line,
        };
        match Label::at_end(line) {
            Some(label) => label.is(words),
            None => self
                .field
                .and_then(|f| Label::at_end(f.as_bytes()))
                .is_some_and(|l| l.is(words)),
        }
    }
}

/// The digits of a region, grouped, on the stack.
struct Scratch {
    digits: [u8; 64],
    len: usize,
    /// Where each group starts in `digits`.
    groups: [u8; 24],
    ngroups: usize,
    /// More digits or groups than fit: the prefilter gives up and core decides.
    overflowed: bool,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            digits: [0; 64],
            len: 0,
            groups: [0; 24],
            ngroups: 0,
            overflowed: false,
        }
    }
}

impl Scratch {
    fn start_group(&mut self) {
        match self.groups.get_mut(self.ngroups) {
            Some(g) => {
                *g = self.len as u8;
                self.ngroups += 1;
            }
            None => self.overflowed = true,
        }
    }

    fn push(&mut self, d: u8) {
        match self.digits.get_mut(self.len) {
            Some(slot) => {
                *slot = d;
                self.len += 1;
            }
            None => self.overflowed = true,
        }
    }

    /// Whether some run of consecutive whole groups has 12 to 19 digits that pass Luhn and, when
    /// it has several groups, starts with a group of a size cards are printed with.
    fn some_run_passes_luhn(&self) -> bool {
        let starts = &self.groups[..self.ngroups];
        // Where group `g` ends (the next one's start, or the last digit's end).
        let end_of = |g: usize| starts.get(g + 1).map_or(self.len, |e| usize::from(*e));
        let printed = first_groups_printed();
        (0..starts.len()).any(|i| {
            let from = usize::from(starts[i]);
            let several_ok = printed & (1u32 << (end_of(i) - from).min(31)) != 0;
            let last = if several_ok { starts.len() } else { i + 1 };
            (i..last)
                .map(end_of)
                .take_while(|e| e - from <= card::MAX_PAN_LEN)
                .any(|e| e - from >= card::MIN_PAN_LEN && card::luhn_valid(&self.digits[from..e]))
        })
    }
}

/// The sizes a card number printed in several groups can start with, as a bit set: four, and the
/// first group of every brand's grouping in fieldseal-core (so brands added there count).
fn first_groups_printed() -> u32 {
    static SIZES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SIZES.get_or_init(|| {
        let mut set = 1u32 << 4;
        for b in CardBrand::ALL {
            for len in card::lengths(b) {
                if let Some(n) = card::grouping(Some(b), *len).first() {
                    set |= 1u32 << (*n).min(31);
                }
            }
        }
        set
    })
}

/// [`Scan::walk_region`]'s shape of the region from `p` (where its last digit ends, how many
/// digits it holds), and the lengths of its groups as a bit set (bit `n` for `n` digits, bit 16
/// for 16 or more), when every byte the walk reads is ASCII; `None` when it meets another
/// character (a full-width digit, a no-break space ...), which the general walk decodes.
fn ascii_region(buf: &[u8], p: usize) -> Option<(usize, usize, u32)> {
    let buf = &buf[..buf.len().min(p + MAX_REGION)];
    let mut i = p;
    let mut end = p;
    let mut digits = 0;
    let mut runs = 0u32;
    loop {
        let run = digit_run(buf, i);
        if run > 0 {
            i += run;
            digits += run;
            end = i;
            runs |= 1 << run.min(16);
        }
        // Up to three separators, then a digit goes on with the region.
        let mut separators = 0;
        loop {
            let Some(&b) = buf.get(i) else {
                return Some((end, digits, runs));
            };
            if b.is_ascii_digit() {
                break;
            }
            if b >= 0x80 {
                return None;
            }
            if separators == MAX_CARD_SEPARATORS || !is_card_separator(char::from(b)) {
                return Some((end, digits, runs));
            }
            separators += 1;
            i += 1;
        }
    }
}

/// Where the first ASCII digit from `i` is (or `end`).
fn next_digit(buf: &[u8], i: usize, end: usize) -> usize {
    buf.get(i..end)
        .and_then(|rest| rest.iter().position(u8::is_ascii_digit))
        .map_or(end, |n| i + n)
}

/// The lengths of the digit groups a telephone number or an SSN can start at (other than after a
/// `+`), as a bit set: [`ssn_may_start`] and [`phone_may_start`].
const PHONE_OR_SSN_RUNS: u32 = 1 << 1 | 1 << 3 | 1 << 9 | 0b11_1111 << 10;

/// Whether [`Scan::ssn`] may find an SSN at a group of `run` ASCII digits: `AAA-GG-SSSS` starts
/// with three, a labelled bare one has nine.
fn ssn_may_start(run: usize) -> bool {
    matches!(run, 3 | 9)
}

/// Whether [`Scan::phone`] may find a telephone number at `q`, where a group of `run` ASCII digits
/// starts: after a `+`, or with a first group of one of its shapes (`415 555 2671`,
/// `1 415 555 2671`, a labelled block of 10 to 15 digits).
fn phone_may_start(buf: &[u8], q: usize, run: usize) -> bool {
    before(buf, q) == Some(b'+')
        || run == 3
        || (run == 1 && buf.get(q) == Some(&b'1'))
        || (10..=15).contains(&run)
}

/// The number of ASCII digits from `i`, eight bytes at a time.
fn digit_run(buf: &[u8], i: usize) -> usize {
    let Some(rest) = buf.get(i..) else {
        return 0;
    };
    let mut n = 0;
    while let Some(word) = rest.get(n..).and_then(<[u8]>::first_chunk::<8>) {
        let others = non_digit_bytes(u64::from_le_bytes(*word));
        if others != 0 {
            return n + (others.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    n + rest[n..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len() - n)
}

/// The high bit of each byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `x` that is not an ASCII digit (SWAR: no carry crosses a byte).
const fn non_digit_bytes(x: u64) -> u64 {
    let low = x & !HIGH_BITS;
    // 0x80 where the low seven bits are at least `0`, and where they are above `9`.
    let from_zero = low.wrapping_add(0x5050_5050_5050_5050) & HIGH_BITS;
    let above_nine = low.wrapping_add(0x4646_4646_4646_4646) & HIGH_BITS;
    !(from_zero & !above_nine & !(x & HIGH_BITS)) & HIGH_BITS
}

/// The high bit of every zero byte of `x` (SWAR, exact).
const fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH_BITS).wrapping_add(!HIGH_BITS)) | x | !HIGH_BITS)
}

/// The number of ASCII letters and digits from `i`, at most 35.
fn alnum_run(buf: &[u8], i: usize) -> usize {
    buf.get(i..).map_or(0, |rest| {
        rest.iter()
            .take(35)
            .take_while(|b| b.is_ascii_alphanumeric())
            .count()
    })
}

/// Whether a value may start at `i`: not inside a word, a longer number, or a dotted or dashed
/// token.
fn boundary_before(buf: &[u8], i: usize) -> bool {
    match before(buf, i) {
        None => true,
        Some(b) if is_word(b) => false,
        Some(b'-' | b'.') => !before(buf, i - 1).is_some_and(is_word),
        Some(_) => true,
    }
}

/// Whether a value may end at `i`: not followed by a word character, or by `-`, `.` or `/` and a
/// digit (a longer number).
fn boundary_after(buf: &[u8], i: usize) -> bool {
    match buf.get(i) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(b'-' | b'.' | b'/') => !buf.get(i + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// Whether a card number written in several digit groups is grouped as cards are printed: in
/// fours (the last group shorter or not), or as its brand's grouping (Amex 4-6-5, Diners 4-6-4).
/// Core's guard joins groups of any size, which in running text also joins unrelated numbers
/// (`line 5612 2345678901`).
fn printed_grouping(text: &str, pan: &Pan) -> bool {
    let sizes = || {
        text.split(|c| card_digit(c).is_none())
            .filter(|g| !g.is_empty())
            .map(|g| g.chars().count())
    };
    let (count, last) = sizes().fold((0, 0), |(n, _), size| (n + 1, size));
    if count <= 1 {
        return count == 1;
    }
    let fours = sizes().take(count - 1).all(|n| n == 4) && last <= 4;
    let brand = card::grouping(pan.brand(), pan.expose_digits().len());
    let branded = count <= brand.len() && sizes().zip(brand).all(|(a, b)| a == *b);
    fours || branded
}

/// Whether `s..e` lies inside a UUID (`8-4-4-4-12` hexadecimal digits).
fn in_uuid(buf: &[u8], s: usize, e: usize) -> bool {
    let hex = |b: &u8| b.is_ascii_hexdigit() || *b == b'-';
    let mut a = s;
    while a > 0 && s - a < 36 && hex(&buf[a - 1]) {
        a -= 1;
    }
    let mut b = e;
    while b < buf.len() && b - a < 37 && hex(&buf[b]) {
        b += 1;
    }
    let token = &buf[a..b];
    token.len() == 36
        && token
            .iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 13 | 18 | 23) == (*c == b'-'))
}

/// The label at the end of a text: the last identifier before trailing punctuation
/// (`"order_id": "` gives `order_id`), or, when that one is only a suffix (`Order No. `), the
/// identifier before it too. Read in place, without copying.
struct Label<'a> {
    /// The identifiers, the last one first; the second is empty unless the first is only a
    /// suffix.
    idents: [&'a [u8]; 2],
}

impl<'a> Label<'a> {
    /// The label `text` ends in; `None` when it ends in no word.
    fn at_end(text: &'a [u8]) -> Option<Self> {
        let mut end = text.len();
        let mut idents: [&[u8]; 2] = [&[], &[]];
        for ident in &mut idents {
            while end > 0
                && matches!(
                    text[end - 1],
                    b'\\'
                        | b' '
                        | b'\t'
                        | b':'
                        | b'='
                        | b'#'
                        | b'"'
                        | b'\''
                        | b'.'
                        | b','
                        | b'('
                        | b'['
                        | b'{'
                        | b'>'
                        | b'/'
                )
            {
                end -= 1;
            }
            let mut start = end;
            while start > 0
                && (text[start - 1].is_ascii_alphanumeric()
                    || matches!(text[start - 1], b'_' | b'-'))
            {
                start -= 1;
            }
            if start == end {
                break;
            }
            *ident = &text[start..end];
            if !identifier_words(ident).all(is_label_suffix) {
                break;
            }
            end = start;
        }
        let label = Self { idents };
        let has_words = label.words().next().is_some();
        has_words.then_some(label)
    }

    /// The label's words: its identifiers split at `_`, `-` and case changes (`order_id`,
    /// `orderId`, `Order-Number`), in their original case.
    fn words(&self) -> impl Iterator<Item = &'a [u8]> {
        self.idents.into_iter().flat_map(identifier_words)
    }

    /// Whether one of the label's words names one of `words`.
    fn is(&self, words: &[&str]) -> bool {
        self.words().any(|w| word_is(w, words))
    }
}

/// The words of an identifier: its runs of ASCII letters and digits, split before an uppercase
/// letter that follows a lowercase letter or a digit.
fn identifier_words(ident: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while ident.get(i).is_some_and(|b| !b.is_ascii_alphanumeric()) {
            i += 1;
        }
        let start = i;
        while let Some(&b) = ident.get(i)
            && b.is_ascii_alphanumeric()
            && !(i > start
                && b.is_ascii_uppercase()
                && (ident[i - 1].is_ascii_lowercase() || ident[i - 1].is_ascii_digit()))
        {
            i += 1;
        }
        (i > start).then(|| &ident[start..i])
    })
}

/// Whether `word` (any case) only ends a label ([`LABEL_SUFFIXES`]).
fn is_label_suffix(word: &[u8]) -> bool {
    LABEL_SUFFIXES
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s.as_bytes()))
}

/// Whether a label's word (any case) names one of `words` (plurals and a fused suffix such as
/// `orderid` included).
fn word_is(word: &[u8], words: &[&str]) -> bool {
    let w = match word.split_last() {
        Some((b's' | b'S', singular)) if singular.len() > 2 => singular,
        _ => word,
    };
    words.iter().map(|k| k.as_bytes()).any(|k| {
        let head = w.get(..k.len());
        let tail = w.len().checked_sub(k.len()).map(|n| &w[n..]);
        w.eq_ignore_ascii_case(k)
            || (head.is_some_and(|h| h.eq_ignore_ascii_case(k)) && is_label_suffix(&w[k.len()..]))
            // Compounds of the longer words (`homephone`, `workorder`); not of short ones
            // (`hotel` is no `tel`).
            || (k.len() >= 5 && tail.is_some_and(|t| t.eq_ignore_ascii_case(k)))
    })
}

/// A card number masked as PCI DSS allows it to be shown: BIN and last four.
fn mask_pan(pan: &Pan) -> String {
    pan.masked()
}

/// `text` with every letter and digit replaced by `*`, except the first `keep_first` and the last
/// `keep_last` of them; other characters (`+`, spaces, dashes) stay.
pub(crate) fn mask_middle(text: &str, keep_first: usize, keep_last: usize) -> String {
    let total = text.chars().filter(char::is_ascii_alphanumeric).count();
    let mut seen = 0;
    let mut masked = String::with_capacity(text.len());
    masked.extend(text.chars().map(|c| {
        if !c.is_ascii_alphanumeric() {
            return c;
        }
        seen += 1;
        if seen <= keep_first || seen > total.saturating_sub(keep_last) {
            c
        } else {
            '*'
        }
    }));
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds found in `text` (with `field` as its column name), in order.
    fn found_in(text: &str, field: Option<&str>, rules: Rules) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        scan(text.as_bytes(), 0, text.len(), field, rules, &mut |h| {
            out.push((h.kind.as_str(), h.masked.as_str().to_owned()));
        });
        out
    }

    fn kinds(text: &str) -> Vec<&'static str> {
        found_in(text, None, Rules::default())
            .into_iter()
            .map(|k| k.0)
            .collect()
    }

    /// Cases as data: the text, and the kinds that must be found in it.
    fn check(cases: &[(&str, &[&str])]) {
        for (text, want) in cases {
            assert_eq!(kinds(text), *want, "{text:?}");
        }
    }

    #[test]
    fn card_numbers_in_the_spellings_cards_are_written() {
        check(&[
            ("4111111111111111", &["card_number"]),
            ("card: 4111 1111 1111 1111.", &["card_number"]),
            ("pan=4111-1111-1111-1111&x=1", &["card_number"]),
            ("\"pan\":\"4111.1111.1111.1111\"", &["card_number"]),
            ("4111\u{a0}1111\u{a0}1111\u{a0}1111", &["card_number"]),
            ("4111\n1111\n1111\n1111", &["card_number"]),
            ("3782 822463 10005", &["card_number"]),
            ("4111 1111 1111 1111 12/30 737", &["card_number"]),
            (
                "\u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111",
                &["card_number"],
            ),
            ("a,4111111111111111,b", &["card_number"]),
        ]);
        let m = found_in("x 5555555555554444 y", None, Rules::default());
        assert_eq!(m, [("card_number", "555555******4444".to_owned())]);
    }

    #[test]
    fn a_number_glued_to_a_word_is_not_a_card_number() {
        check(&[
            ("x4111111111111111", &[]),
            ("4111111111111111x", &[]),
            ("id_4111111111111111", &[]),
            ("x 4111111111111111 y", &["card_number"]),
        ]);
    }

    #[test]
    fn a_number_after_an_order_or_tracking_label_is_not_a_card_number() {
        check(&[
            ("order 4111111111111111", &[]),
            ("order_id=4111111111111111", &[]),
            ("Order No. 4111 1111 1111 1111", &[]),
            ("{\"invoiceNumber\": \"4111111111111111\"}", &[]),
            ("tracking number: 4111111111111111", &[]),
            ("GET /orders/4111111111111111 200", &[]),
            ("workorder=4111111111111111", &[]),
            ("{\"order\": {\"id\": \"4111111111111111\"}}", &[]),
            // JSON inside a JSON string, as logged.
            (
                "{\"msg\":\"\\\"invoiceNumber\\\":\\\"4111111111111111\\\"\"}",
                &[],
            ),
            // Other labels, and an order label further back, do not hide a card number.
            ("card=4111111111111111", &["card_number"]),
            ("order 12 paid with 4111111111111111", &["card_number"]),
        ]);
        assert!(found_in("4111111111111111", Some("order_id"), Rules::default()).is_empty());
        assert_eq!(
            found_in("4111111111111111", Some("card_pan"), Rules::default()).len(),
            1
        );
    }

    #[test]
    fn a_card_shaped_group_inside_a_uuid_is_not_a_card_number() {
        // The UUID's last group is a Luhn-valid 12-digit Maestro number.
        let maestro = format!(
            "58930000000{}",
            char::from(card::luhn_check_digit(b"58930000000"))
        );
        assert_eq!(kinds(&maestro), ["card_number"]);
        check(&[(&format!("id d4a1b2c3-aaaa-4bbb-8ccc-{maestro} ok"), &[])]);
    }

    #[test]
    fn groups_of_unprinted_sizes_are_not_joined() {
        check(&[
            ("4111 11111111 1111", &[]),
            ("411 1111 1111 11111", &[]),
            ("4111 1111 1111 1111", &["card_number"]),
            ("3056 930902 5904", &["card_number"]),
        ]);
    }

    #[test]
    fn luhn_failures_are_low_confidence_and_off_by_default() {
        let bad = "6200000000000001";
        assert!(!card::luhn_valid(bad.as_bytes()));
        assert!(kinds(bad).is_empty());
        let low = Rules {
            low_confidence: true,
        };
        let mut confidences = Vec::new();
        scan(bad.as_bytes(), 0, bad.len(), None, low, &mut |h| {
            confidences.push(h.confidence)
        });
        assert_eq!(confidences, [Confidence::Low]);
        // Brands that always carry a check digit stay unreported either way.
        assert!(found_in("4111111111111112", None, low).is_empty());
    }

    #[test]
    fn phones_in_the_shapes_they_are_written() {
        check(&[
            ("+1 415 555 2671", &["phone"]),
            ("call +44 20 7946 0958 now", &["phone"]),
            ("(415) 555-2671", &["phone"]),
            ("tel 415-555-2671", &["phone"]),
            ("415.555.2671", &["phone"]),
            ("1 415 555 2671", &["phone"]),
            ("phone: 4155552671", &["phone"]),
            ("\"mobileNumber\":\"4155552671\"", &["phone"]),
            // Bare digit blocks without a phone label: timestamps, amounts, ids.
            ("4155552671", &[]),
            ("ts=1700000000123", &[]),
            ("hotel 4155552671", &[]),
            ("2026-11-22 10:00:00", &[]),
            ("v1.415.555.2671", &[]),
            ("415-555-2671-9", &[]),
        ]);
        assert_eq!(
            found_in("+1 415 555 2671", None, Rules::default())[0].1,
            "+* *** *** **71"
        );
    }

    #[test]
    fn ssns_dashed_or_labelled() {
        check(&[
            ("ssn 123-45-6789", &["us_ssn"]),
            ("123 45 6789", &["us_ssn"]),
            ("ssn=123456789", &["us_ssn"]),
            ("123456789", &[]),
            ("123-45-6789-1", &[]),
            ("ID-123-45-6789", &[]),
            ("666-12-3456", &[]),
        ]);
        assert_eq!(
            found_in("123-45-6789", None, Rules::default())[0].1,
            "***-**-**89"
        );
    }

    #[test]
    fn ibans_compact_or_in_groups_of_four() {
        check(&[
            ("DE89370400440532013000", &["iban"]),
            ("iban: DE89 3704 0044 0532 0130 00.", &["iban"]),
            ("GB82 WEST 1234 5698 7654 32", &["iban"]),
            ("DE89370400440532013001", &[]),
            ("XDE89370400440532013000", &[]),
            ("DE89370400440532013000X", &[]),
        ]);
        assert_eq!(
            found_in("DE89370400440532013000", None, Rules::default())[0].1,
            "DE89****************00"
        );
    }

    #[test]
    fn the_digits_of_an_iban_are_not_a_card_number() {
        // A German IBAN whose account digits hold a Luhn-valid Visa number in groups of four.
        let bban = "411111111111111111";
        let digits: String = format!("{bban}131400");
        let rem = digits
            .bytes()
            .fold(0u32, |acc, c| (acc * 10 + u32::from(c - b'0')) % 97);
        let iban = format!("DE{:02}{bban}", 98 - rem);
        let grouped: Vec<&str> = iban
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        check(&[(&format!("iban {}", grouped.join(" ")), &["iban"])]);
    }

    #[test]
    fn emails_in_text() {
        check(&[
            ("mail jane.doe@example.com.", &["email"]),
            ("<a.b+tag@sub.example.co.uk>", &["email"]),
            ("user@localhost", &[]),
            ("pkg@1.2.3", &[]),
            ("@mention", &[]),
        ]);
        assert_eq!(
            found_in("to: jane@example.com", None, Rules::default())[0].1,
            "j***@example.com"
        );
    }

    /// The words of the label at the end of `text`, lowercased, in reading order.
    fn label_words(text: &[u8]) -> Option<Vec<String>> {
        let label = Label::at_end(text)?;
        let mut idents = label.idents;
        idents.reverse();
        Some(
            idents
                .into_iter()
                .flat_map(identifier_words)
                .map(|w| String::from_utf8_lossy(w).to_lowercase())
                .collect(),
        )
    }

    #[test]
    fn word_at_a_time_searches_agree_with_byte_at_a_time() {
        // Every byte value at every position of a word, after digits and before a tail.
        for b in 0..=255u8 {
            for at in 0..12 {
                let mut buf = vec![b'7'; 12];
                buf[at] = b;
                buf.extend_from_slice(b"x1\xef\xbc\x91@");
                for from in [0, 1, at] {
                    let naive_run = buf[from..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    assert_eq!(
                        digit_run(&buf, from),
                        naive_run,
                        "{b:#x} at {at} from {from}"
                    );
                    let mut text = vec![b'x'; 12];
                    text[at] = b;
                    text.extend_from_slice(&buf[from..]);
                    let naive = text.iter().position(|&c| TRIGGER[usize::from(c)]);
                    assert_eq!(next_trigger(&text), naive, "{b:#x} at {at} from {from}");
                }
            }
        }
        assert_eq!(digit_run(b"123", 5), 0);
        assert_eq!(next_trigger(b""), None);
    }

    #[test]
    fn labels_are_read_as_words() {
        assert_eq!(
            label_words(b"\"order_id\": \""),
            Some(vec!["order".to_owned(), "id".to_owned()])
        );
        assert_eq!(
            label_words(b"Order No. "),
            Some(vec!["order".to_owned(), "no".to_owned()])
        );
        assert_eq!(
            label_words(b"trackingNumber="),
            Some(vec!["tracking".to_owned(), "number".to_owned()])
        );
        assert_eq!(
            label_words(b"x-Order2Id__ID: "),
            Some(vec![
                "x".to_owned(),
                "order2".to_owned(),
                "id".to_owned(),
                "id".to_owned()
            ])
        );
        assert_eq!(label_words(b"   "), None);
        assert_eq!(label_words(b"a: __ "), Some(vec!["a".to_owned()]));
        assert!(word_is(b"orderid", NOT_CARD_LABELS));
        assert!(word_is(b"ORDERS", NOT_CARD_LABELS));
        assert!(!word_is(b"hotel", PHONE_LABELS));
        assert!(word_is(b"homePhone", PHONE_LABELS));
        assert!(!word_is(b"ids", NOT_CARD_LABELS));
    }
}
