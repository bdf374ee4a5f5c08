//! Which kinds of personal data a value looks like, and how sensitive it is: used by the browser
//! SDK's stray-card-number guard and by the vault to refuse or tag values sent under the wrong
//! field kind.
//!
//! The checks are structural, with the checksums each format carries, so that random text is rarely
//! taken for personal data:
//!
//! | kind | recognised when |
//! |---|---|
//! | card number | 12 to 19 digits (in groups separated by up to three spaces, dashes, dots, slashes or underscores), anywhere in the value: a known brand's prefix and length with its check ([`crate::card`]), or Luhn-valid with an issuer's major industry identifier (first digit 1 to 6, 8 or 9) that is not a device's IMEI ([`is_imei`]) |
//! | e-mail | the whole value is `local@domain`: RFC 5321 lengths, dot-atom local part, a domain of at least two labels with an alphabetic top-level label |
//! | phone | the whole value is a telephone number: `+` and 8 to 15 digits (E.164), or 10 to 15 digits; digits, spaces, `-`, `.`, `(`, `)` only |
//! | US SSN | the whole value is `AAA-GG-SSSS` (or nine digits, or spaces for dashes) with area not 000, 666 or 900-999, group not 00, serial not 0000 |
//! | IBAN | the whole value is an IBAN (spaces allowed) of its country's length whose mod-97 check (ISO 13616) gives 1 |
//!
//! A value can match several kinds (a ten-digit number can be a phone number and, with luck, not
//! much else); the sensitivity is the highest of its kinds.

use crate::card;
use crate::envelope::{CardBrand, FieldKind};
use alloc::vec::Vec;

/// A kind of personal data a value can look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PiiKind {
    /// A payment card number (PAN) with a known brand, a valid length and a Luhn check digit.
    CardNumber,
    /// An e-mail address.
    Email,
    /// A telephone number.
    Phone,
    /// A United States Social Security number.
    UsSsn,
    /// An international bank account number with a valid check.
    Iban,
}

impl PiiKind {
    /// Every kind, in the order [`classify`] reports them.
    pub const ALL: [PiiKind; 5] = [
        Self::CardNumber,
        Self::Email,
        Self::Phone,
        Self::UsSsn,
        Self::Iban,
    ];

    /// A stable name: `card_number`, `email`, `phone`, `us_ssn`, `iban`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CardNumber => "card_number",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::UsSsn => "us_ssn",
            Self::Iban => "iban",
        }
    }

    /// The envelope field kind a value of this kind is sealed as.
    pub const fn field_kind(self) -> FieldKind {
        match self {
            Self::CardNumber => FieldKind::Pan,
            Self::Email => FieldKind::Email,
            Self::Phone => FieldKind::Phone,
            Self::UsSsn => FieldKind::NationalId,
            Self::Iban => FieldKind::Iban,
        }
    }

    /// How sensitive a value of this kind is.
    pub const fn sensitivity(self) -> Sensitivity {
        match self {
            Self::CardNumber => Sensitivity::PaymentCard,
            _ => Sensitivity::Personal,
        }
    }
}

/// How a value must be handled, from least to most restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sensitivity {
    /// Nothing recognised.
    None,
    /// Personal data (GDPR): e-mail, phone, national id, bank account.
    Personal,
    /// Payment card data (PCI DSS cardholder data).
    PaymentCard,
}

impl Sensitivity {
    /// A stable name: `none`, `personal`, `payment_card`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Personal => "personal",
            Self::PaymentCard => "payment_card",
        }
    }
}

/// What [`classify`] found. Holds no part of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// The kinds the value looks like, in [`PiiKind::ALL`] order.
    pub kinds: Vec<PiiKind>,
    /// The highest sensitivity among `kinds`, or [`Sensitivity::None`].
    pub sensitivity: Sensitivity,
}

impl Classification {
    /// Whether the value looks like `kind`.
    pub fn is(&self, kind: PiiKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// Which kinds of personal data `value` looks like, and its sensitivity class.
///
/// ```
/// use fieldseal_core::classify::{classify, PiiKind, Sensitivity};
/// let c = classify("my card: 4111 1111 1111 1111");
/// assert_eq!(c.kinds, [PiiKind::CardNumber]);
/// assert_eq!(c.sensitivity, Sensitivity::PaymentCard);
/// assert_eq!(classify("jane@example.com").sensitivity, Sensitivity::Personal);
/// assert_eq!(classify("blue").sensitivity, Sensitivity::None);
/// ```
pub fn classify(value: &str) -> Classification {
    let v = value.trim();
    let kinds: Vec<PiiKind> = PiiKind::ALL
        .into_iter()
        .filter(|k| match k {
            PiiKind::CardNumber => contains_card_number(v),
            PiiKind::Email => is_email(v),
            PiiKind::Phone => is_phone(v) && !is_ssn(v) && card::validate_pan(v).is_err(),
            PiiKind::UsSsn => is_ssn(v),
            PiiKind::Iban => is_iban(v),
        })
        .collect();
    let sensitivity = kinds
        .iter()
        .map(|k| k.sensitivity())
        .max()
        .unwrap_or(Sensitivity::None);
    Classification { kinds, sensitivity }
}

/// Whether `text` contains a card number: 12 to 19 digits, written in one block or in groups,
/// that are a known brand's number (prefix, length, check digit) or any Luhn-valid number whose
/// first digit is an issuer's major industry identifier (1 to 6, 8 or 9: not 0, ISO's own, nor 7,
/// petroleum): 19-digit numbers and brands without a row in [`crate::card`] included. Groups may be
/// separated by up to three spaces, no-break spaces, tabs, line breaks, dashes, dots, slashes or
/// underscores, and every run of whole groups is checked, so a number followed by its expiry or
/// security code (`4111 1111 1111 1111 737`) is still found; full-width digits count as digits.
/// Right after a `+` a run counts only from 16 digits on: shorter ones are international phone
/// numbers (E.164 allows 15), longer ones are not. One block of more than 19 digits (an order
/// number) is not a card number. Nor is a device's IMEI, or any part of one: a number that is no
/// known brand's number and whose whole digit run (every group around it) is 15 digits starting
/// with a reporting body's two digits and no known brand's number either ([`is_imei`]).
pub fn contains_card_number(text: &str) -> bool {
    find_cards(text, Issuers::Any)
        .iter()
        .any(|m| !in_imei(text, m))
}

/// Whether `m` is no known brand's number and the run of digit groups around it (its digits and
/// the card separators between them) is an IMEI ([`is_imei`]). A known brand's shorter number
/// inside a 15-digit run (a 13-digit Visa and two more digits) is not exempt. At most 16 digits
/// are kept: a longer run is no IMEI.
fn in_imei(text: &str, m: &CardMatch) -> bool {
    // A known brand's number by its rules (prefix, length, check digit), not only by its prefix.
    if card::validate_pan(m.pan.expose_digits()).is_ok_and(|p| p.brand().is_some()) {
        return false;
    }
    let mut digits = zeroize::Zeroizing::new(Vec::with_capacity(16));
    for (i, c) in text.char_indices() {
        match card_digit(c) {
            Some(_) if digits.len() > 15 => {
                if i >= m.start {
                    return false;
                }
            }
            Some(d) => digits.push(d),
            None if is_card_separator(c) => {}
            None if i < m.start => digits.clear(),
            None => break,
        }
    }
    is_imei(&digits)
}

/// Whether `digits` look like a mobile device's IMEI (3GPP TS 23.003, GSMA TS.06) rather than a
/// card number: 15 digits with a Luhn check digit, starting with the two digits of a reporting
/// body that allocates or allocated type approval codes (30, 33, 35, 44, 45, 49, 50-54, 86, 91, 98,
/// 99; 0x are not an issuer's first digit anyway, and 10 is left to UATP cards), and not a known
/// brand's number of that length (Amex, Diners, Maestro keep theirs).
pub fn is_imei(digits: &[u8]) -> bool {
    let body = matches!(
        digits,
        [b'3', b'0' | b'3' | b'5', ..]
            | [b'4', b'4' | b'5' | b'9', ..]
            | [b'5', b'0'..=b'4', ..]
            | [b'8', b'6', ..]
            | [b'9', b'1' | b'8' | b'9', ..]
    );
    let known = core::str::from_utf8(digits)
        .ok()
        .and_then(|t| card::validate_pan(t).ok())
        .is_some_and(|p| p.brand().is_some());
    digits.len() == 15 && body && card::luhn_valid(digits) && !known
}

/// Which numbers count as card numbers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Issuers {
    /// A known brand's numbers only, none right after a `+` ([`find_card_numbers`]: what a
    /// scanner reports, where a false positive costs a person's time).
    Known,
    /// Also any Luhn-valid number of a card-issuing industry ([`contains_card_number`]: what the
    /// page's guard stops, where a miss sends a card number in the clear).
    Any,
}

/// Most separator characters ([`is_card_separator`]) between two digit groups of one card number.
pub const MAX_CARD_SEPARATORS: usize = 3;

/// Whether `c` may separate the digit groups of a card number: space, no-break space, tab, line
/// break, dash, dot, slash or underscore.
pub const fn is_card_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\t' | '\n' | '\r' | '-' | '.' | '/' | '_'
    )
}

/// Whether a number starts with the major industry identifier of a card issuer: 1 to 6, 8 or 9
/// (not 0, ISO's own, nor 7, petroleum).
fn issuer_digit(digits: &[u8]) -> bool {
    matches!(digits.first(), Some(b'1'..=b'6' | b'8' | b'9'))
}

/// The ASCII digit `c` stands for in a card number: `0`-`9` and the full-width digits U+FF10 to
/// U+FF19 (as typed on some phone keyboards).
pub const fn card_digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8),
        '\u{ff10}'..='\u{ff19}' => Some(b'0' + (c as u32 - 0xff10) as u8),
        _ => None,
    }
}

/// A card number found in a text by [`find_card_numbers`]. `Debug` shows the brand and the masked
/// number only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardMatch {
    /// Byte offset of the number's first digit in the text.
    pub start: usize,
    /// Byte offset just past its last digit.
    pub end: usize,
    /// The number, checked (brand, length, Luhn).
    pub pan: card::Pan,
}

/// A run of digits in the text: its byte range, and where its ASCII digits are among all the
/// text's digits (so the digits of consecutive groups are one slice).
struct Group {
    start: usize,
    end: usize,
    digits: core::ops::Range<usize>,
}

/// Every card number of a known brand in `text`, grouped and separated by the rules of
/// [`contains_card_number`] (which also counts numbers of unknown issuers, and long ones after a
/// `+`), with its byte range. From
/// each digit group the shortest run of whole groups that is a card number with a valid Luhn check
/// digit is taken (or else the shortest that is a card number: UnionPay issues numbers without a
/// check digit), and the search goes on after it, so matches do not overlap.
///
/// ```
/// use fieldseal_core::classify::find_card_numbers;
/// let text = "paid with 4111 1111 1111 1111, refund to 5555-5555-5555-4444";
/// let found = find_card_numbers(text);
/// assert_eq!(found.len(), 2);
/// assert_eq!(&text[found[0].start..found[0].end], "4111 1111 1111 1111");
/// assert_eq!(found[1].pan.masked(), "555555******4444");
/// ```
pub fn find_card_numbers(text: &str) -> Vec<CardMatch> {
    find_cards(text, Issuers::Known)
}

fn find_cards(text: &str, issuers: Issuers) -> Vec<CardMatch> {
    let mut found = Vec::new();
    // The text's digits, in one buffer wiped when done.
    let mut digits = zeroize::Zeroizing::new(Vec::with_capacity(text.len()));
    let mut groups: Vec<Group> = Vec::new();
    let mut current: Option<Group> = None;
    let mut separators = 0usize;
    let mut after_plus = false;
    let mut previous: Option<char> = None;
    let end = (text.len(), '\u{0}');
    for (i, c) in text.char_indices().chain(core::iter::once(end)) {
        match card_digit(c) {
            Some(d) => {
                let group = current.get_or_insert_with(|| {
                    if groups.is_empty() {
                        after_plus = previous == Some('+');
                    }
                    Group {
                        start: i,
                        end: i,
                        digits: digits.len()..digits.len(),
                    }
                });
                digits.push(d);
                group.digits.end = digits.len();
                group.end = i + c.len_utf8();
                separators = 0;
            }
            None => {
                if let Some(group) = current.take() {
                    groups.push(group);
                }
                separators += 1;
                if !is_card_separator(c) || separators > MAX_CARD_SEPARATORS {
                    // Right after a `+`: an international phone number's shape. The guard still
                    // stops runs too long for one (a card number typed with a leading `+`); the
                    // scanner, which reports to people, leaves them be.
                    let shortest = match (after_plus, issuers) {
                        (false, _) => Some(card::MIN_PAN_LEN),
                        (true, Issuers::Any) => Some(16),
                        (true, Issuers::Known) => None,
                    };
                    if let Some(shortest) = shortest {
                        card_runs(&groups, &digits, shortest, issuers, &mut found);
                    }
                    groups.clear();
                    separators = 0;
                }
            }
        }
        previous = Some(c);
    }
    found
}

/// The card numbers among the runs of consecutive whole `groups` (whose digits are in `digits`)
/// of at least `shortest` digits, earliest first, not overlapping.
fn card_runs(
    groups: &[Group],
    digits: &[u8],
    shortest: usize,
    issuers: Issuers,
    found: &mut Vec<CardMatch>,
) {
    let mut start = 0;
    while start < groups.len() {
        let from = groups[start].digits.start;
        // The shortest run with a valid check digit, or else the shortest that is a card number
        // at all (UnionPay issues numbers without one): a 19-digit UnionPay number's first 16
        // digits are a card number too. The run's last group.
        let mut best: Option<usize> = None;
        // Every run from `start` shares its first six digits, so its brand.
        let mut brand = None;
        for (offset, g) in groups[start..].iter().enumerate() {
            let run = &digits[from..g.digits.end];
            if run.len() > card::MAX_PAN_LEN {
                break;
            }
            if run.len() < shortest {
                continue;
            }
            let brand = *brand.get_or_insert_with(|| card::brand_of_digits(run));
            if is_card_number(run, brand, issuers) {
                let checked = card::luhn_valid(run);
                if checked || best.is_none() {
                    best = Some(offset);
                }
                if checked {
                    break;
                }
            }
        }
        start = match best {
            Some(offset) => {
                let end = start + offset;
                let run = &digits[from..groups[end].digits.end];
                found.push(CardMatch {
                    start: groups[start].start,
                    end: groups[end].end,
                    pan: card::Pan::from_checked_digits(run, brand.flatten()),
                });
                end + 1
            }
            None => start + 1,
        };
    }
}

/// Whether ASCII `digits` of brand `brand` ([`card::brand_of_digits`]) are a card number that
/// `issuers` counts.
fn is_card_number(digits: &[u8], brand: Option<CardBrand>, issuers: Issuers) -> bool {
    if !(card::MIN_PAN_LEN..=card::MAX_PAN_LEN).contains(&digits.len()) {
        return false;
    }
    // A known brand's number (UnionPay's without a check digit too), or any Luhn-valid number of
    // a card-issuing industry (first digit 1 to 6, 8 or 9), whatever its length rules.
    let any = issuers == Issuers::Any && issuer_digit(digits);
    match card::check_digits(digits, brand) {
        Ok(()) => brand.is_some() || any,
        Err(_) => any && card::luhn_valid(digits),
    }
}

/// Whether the whole value is an e-mail address (see the module table).
pub fn is_email(v: &str) -> bool {
    if v.len() > 254 {
        return false;
    }
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        // Bytes, not a `&str` pattern: the browser wasm carries no substring searcher.
        && !local.as_bytes().windows(2).any(|w| w == b"..")
        && local
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Whether the whole value is a telephone number (see the module table).
pub fn is_phone(v: &str) -> bool {
    let (international, rest) = match v.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    if !rest
        .bytes()
        .all(|c| c.is_ascii_digit() || b" -.()".contains(&c))
        || !rest.starts_with(|c: char| c.is_ascii_digit() || c == '(')
    {
        return false;
    }
    let n = rest.bytes().filter(u8::is_ascii_digit).count();
    if international {
        (8..=15).contains(&n) && !rest.trim_start_matches('(').starts_with('0')
    } else {
        (10..=15).contains(&n)
    }
}

/// Whether the whole value is a US Social Security number (see the module table).
pub fn is_ssn(v: &str) -> bool {
    let b = v.as_bytes();
    let digits: Vec<u8> = match b.len() {
        9 => b.to_vec(),
        11 if (b[3] == b'-' && b[6] == b'-') || (b[3] == b' ' && b[6] == b' ') => {
            [&b[..3], &b[4..6], &b[7..]].concat()
        }
        _ => return false,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |s: &[u8]| s.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'));
    let (area, group, serial) = (num(&digits[..3]), num(&digits[3..5]), num(&digits[5..]));
    // 078-05-1120 was printed on a wallet insert in 1938 and is not a real number.
    let famous_sample = (area, group, serial) == (78, 5, 1120);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !famous_sample
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
];

/// Whether the whole value is an IBAN: a known country, its length, alphanumeric, mod-97 = 1.
/// Spaces between groups are allowed; letters may be lowercase.
pub fn is_iban(v: &str) -> bool {
    let s: Vec<u8> = v
        .bytes()
        .filter(|c| *c != b' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let Some(country) = s.first_chunk::<2>() else {
        return false;
    };
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if s.len() != len
        || !s[2..4].iter().all(u8::is_ascii_digit)
        || !s.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    // Move the first four characters to the end, letters to 10..35, and take the number mod 97.
    let rem = s[4..].iter().chain(&s[..4]).fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            (acc * 10 + u32::from(c - b'0')) % 97
        } else {
            (acc * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_anywhere_in_the_value() {
        for v in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "378282246310005",
            "5555555555554444",
            "my card is 4111 1111 1111 1111, thanks",
            "card:6011111111111117.",
            "+ 4111 1111 1111 1111",
            // Loosely separated, or followed by the expiry or the security code.
            "4111  1111 1111 1111",
            "4111\u{a0}1111\u{a0}1111\u{a0}1111",
            "4111.1111.1111.1111",
            "4111\n1111\n1111\n1111",
            "4111 1111 1111 1111 12/30",
            "4111 1111 1111 1111 737",
            "card 5555 5555 5555 4444 exp 12 30 cvc 123",
            "\u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111",
            // Other separators, and a leading plus.
            "4111/1111/1111/1111",
            "4111_1111_1111_1111",
            "+4111111111111111",
            "+4111 1111 1111 1111",
            // 19 digits, a brand outside the card rules' table, a known prefix at a length its
            // brand does not issue: Luhn-valid with an issuer's first digit.
            "6011111111111111110",
            "5555555555554444117",
            "1234567812345670",
            "8800000000000005",
            // Brands added to the card rules: RuPay, Mir, Elo, Verve, Troy.
            "6073849700004947",
            "2200 0000 0000 0004",
            "979200000000000003",
        ] {
            let c = classify(v);
            assert!(c.is(PiiKind::CardNumber), "{v}");
            assert_eq!(c.sensitivity, Sensitivity::PaymentCard, "{v}");
        }
    }

    #[test]
    fn not_card_numbers() {
        for v in [
            "4111111111111112",       // Luhn fails
            "41111111111111111111",   // 20 digits
            "700000000000000005",     // Luhn ok, first digit 7 (petroleum)
            "012345678901234569",     // Luhn ok, first digit 0
            "4111_1111__ _1111 1111", // four separators end the run
            "4111    1111 1111 1111", // four separators end the run
            "+4915112345678",         // a phone number that happens to pass Luhn
            "411111111111",           // Visa prefix, not a Visa length
            "",
        ] {
            assert!(!classify(v).is(PiiKind::CardNumber), "{v}");
        }
    }

    #[test]
    fn imeis_are_not_card_numbers_but_cards_of_15_digits_still_are() {
        let with_check = |body: &str| {
            let mut n = String::from(body);
            n.push(char::from(card::luhn_check_digit(n.as_bytes())));
            n
        };
        // TS.06's example IMEI, and one of each reporting body, in one block or as phones show them.
        let mut imeis = vec![
            "352099001761481".to_owned(),
            "35 209900 176148 1".to_owned(),
            "35-209900-176148-1".to_owned(),
            "IMEI: 352099001761481 (slot 1)".to_owned(),
        ];
        for body in [
            "30", "33", "44", "45", "49", "50", "51", "52", "53", "54", "86", "91", "98", "99",
        ] {
            // A third digit of 6: outside Diners' 300-305 and Maestro's 5018, 5020, 5038.
            imeis.push(with_check(&format!("{body}612345678901")));
        }
        for v in &imeis {
            assert!(!contains_card_number(v), "{v}");
        }
        for v in [
            // Known brands' 15-digit numbers: Amex, Diners (300-305), Maestro (5018).
            "378282246310005".to_owned(),
            with_check("30012345678901"),
            with_check("50181234567890"),
            // Other first digits: UATP's 1 (10 included), 8 outside 86.
            "135410014004955".to_owned(),
            with_check("10123456789012"),
            with_check("88123456789012"),
            // An IMEI's shape at other lengths, and an IMEI next to a card number.
            with_check("3520990017614"),
            with_check("352099001761481"),
            "352099001761481, 4111 1111 1111 1111".to_owned(),
        ] {
            assert!(contains_card_number(&v), "{v}");
        }
        // A 13-digit Visa (44, 45, 49: IMEI reporting bodies) followed by two digits that make
        // the 15-digit run an IMEI's shape: the Visa is still a card number.
        for body in ["44", "45", "49"] {
            let visa = with_check(&format!("{body}1234567890"));
            let run = with_check(&format!("{visa}1"));
            assert!(is_imei(run.as_bytes()), "{run}");
            let v = format!("{visa} {}", &run[13..]);
            assert!(contains_card_number(&v), "{v}");
        }
        // An unknown issuer's number in a run of more than 15 digits is no IMEI.
        for v in [
            format!("{} 1", with_check("35209900176148")),
            format!("1 {}", with_check("35209900176148")),
        ] {
            assert!(contains_card_number(&v), "{v}");
        }
        assert!(is_imei(b"352099001761481"));
        assert!(!is_imei(b"352099001761482"), "check digit");
    }

    #[test]
    fn finds_card_numbers_with_their_byte_ranges() {
        let text = "a 4111 1111 1111 1111 737, b \u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111; +4915112345678";
        let found = find_card_numbers(text);
        let spans: Vec<&str> = found.iter().map(|m| &text[m.start..m.end]).collect();
        assert_eq!(
            spans,
            [
                "4111 1111 1111 1111",
                "\u{ff14}\u{ff11}\u{ff11}\u{ff11}111111111111"
            ]
        );
        assert_eq!(found[0].pan.masked(), "411111******1111");
        assert_eq!(found[1].pan.expose_digits(), "4111111111111111");
        // Two numbers in one run of groups do not overlap; both are found.
        let two = "4111 1111 1111 1111 5555 5555 5555 4444";
        let spans: Vec<&str> = find_card_numbers(two)
            .iter()
            .map(|m| &two[m.start..m.end])
            .collect();
        assert_eq!(spans, ["4111 1111 1111 1111", "5555 5555 5555 4444"]);
        // A card number after other digit groups starts at a group boundary.
        let after = "ref 12 4111111111111111";
        let m = &find_card_numbers(after)[0];
        assert_eq!(&after[m.start..m.end], "4111111111111111");
        assert!(find_card_numbers("41111111111111111111").is_empty());
        // A 19-digit UnionPay number whose first 16 digits fail Luhn: the whole number is taken.
        let mut up = String::from("621234567890123456");
        up.push(char::from(card::luhn_check_digit(up.as_bytes())));
        assert!(!card::luhn_valid(&up.as_bytes()[..16]));
        let spaced = format!(
            "{} {} {} {} {}",
            &up[..4],
            &up[4..8],
            &up[8..12],
            &up[12..16],
            &up[16..]
        );
        let m = &find_card_numbers(&spaced)[0];
        assert_eq!(m.pan.expose_digits(), up);
        assert!(find_card_numbers("").is_empty());
        assert!(!format!("{:?}", found[0]).contains("4111111111111111"));
    }

    #[test]
    fn separators_and_digits_are_the_guards() {
        for c in [' ', '\u{a0}', '\t', '\n', '\r', '-', '.', '/', '_'] {
            assert!(is_card_separator(c), "{c:?}");
        }
        for c in [',', ':', '+', 'a'] {
            assert!(!is_card_separator(c), "{c:?}");
        }
        assert_eq!(card_digit('7'), Some(b'7'));
        assert_eq!(card_digit('\u{ff19}'), Some(b'9'));
        assert_eq!(card_digit('a'), None);
    }

    #[test]
    fn emails() {
        for v in ["jane@example.com", "a.b+tag@sub.example.co.uk", " x@y.io "] {
            assert_eq!(classify(v).kinds, [PiiKind::Email], "{v}");
        }
        for v in [
            "jane@example",
            "jane@@example.com",
            ".jane@example.com",
            "ja..ne@example.com",
            "jane@-example.com",
            "jane@example.c0m",
            "jane example@example.com",
            "@example.com",
        ] {
            assert!(!is_email(v), "{v}");
        }
    }

    #[test]
    fn phones() {
        for v in [
            "+1 415 555 2671",
            "+44 20 7946 0958",
            "(415) 555-2671",
            "415.555.2671",
            "+4915112345678",
        ] {
            let c = classify(v);
            assert_eq!(c.kinds, [PiiKind::Phone], "{v}");
            assert_eq!(c.sensitivity, Sensitivity::Personal);
        }
        for v in [
            "555-2671",
            "2026-11-22",
            "+0 415 555 2671",
            "+1 415 555 2671 ext",
            "1234567890123456",
            "-4155552671",
        ] {
            assert!(!classify(v).is(PiiKind::Phone), "{v}");
        }
    }

    #[test]
    fn ssns() {
        for v in ["123-45-6789", "123456789", "123 45 6789", "899-99-9999"] {
            let c = classify(v);
            assert_eq!(c.kinds, [PiiKind::UsSsn], "{v}");
        }
        for v in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "123-456-789",
            "123-45 6789",
            "12a-45-6789",
        ] {
            assert!(!is_ssn(v), "{v}");
        }
    }

    #[test]
    fn ibans() {
        for v in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "gb82 west 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
        ] {
            let c = classify(v);
            assert_eq!(c.kinds, [PiiKind::Iban], "{v}");
            assert_eq!(c.sensitivity, Sensitivity::Personal);
        }
        for v in [
            "DE89370400440532013001", // check fails
            "DE8937040044053201300",  // short for DE
            "XX89370400440532013000", // unknown country
            "DE8937040044053201300!",
            "DEAB370400440532013000",
        ] {
            assert!(!is_iban(v), "{v}");
        }
    }

    #[test]
    fn plain_text_is_not_sensitive() {
        for v in [
            "blue",
            "Jane Doe",
            "12",
            "Main Street 5",
            "2026-11-22",
            "10115",
        ] {
            let c = classify(v);
            assert!(c.kinds.is_empty(), "{v}: {:?}", c.kinds);
            assert_eq!(c.sensitivity, Sensitivity::None);
        }
    }

    #[test]
    fn names_and_field_kinds_are_stable() {
        let names: Vec<&str> = PiiKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, ["card_number", "email", "phone", "us_ssn", "iban"]);
        assert_eq!(PiiKind::UsSsn.field_kind(), FieldKind::NationalId);
        assert_eq!(Sensitivity::PaymentCard.as_str(), "payment_card");
        assert!(Sensitivity::PaymentCard > Sensitivity::Personal);
        assert!(Sensitivity::Personal > Sensitivity::None);
    }
}
