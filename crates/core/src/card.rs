//! Card rules, implemented once for the browser SDK and the vault: brand detection (also on a
//! partly typed number), valid lengths per brand, Luhn, security-code length, expiry dates, and
//! as-you-type formatting that keeps the caret where the user expects it.
//!
//! Brand ranges (IIN prefixes) follow the networks' published tables as commonly implemented by
//! payment SDKs:
//!
//! | brand | prefixes | lengths | CVC |
//! |---|---|---|---|
//! | Visa | 4 | 13, 16, 19 | 3 |
//! | Mastercard | 51-55, 2221-2720 | 16 | 3 |
//! | American Express | 34, 37 | 15 | 4 |
//! | Discover | 6011, 644-649, 65, 622126-622925 | 16-19 | 3 |
//! | Diners Club | 300-305, 3095, 36, 38-39 | 14-19 | 3 |
//! | JCB | 3528-3589 | 16-19 | 3 |
//! | UnionPay | 62, 81 | 16-19 | 3 |
//! | Maestro | 5018, 5020, 5038, 5893, 6304, 6759, 6761-6763, 56-58 | 12-19 | 3 |
//! | RuPay | 508500-508999, 606985-607984, 608001-608500, 652150-653149 | 16 | 3 |
//! | Mir | 2200-2204 | 16-19 | 3 |
//! | Elo | 401178-401179, 431274, 438935, 451416, 457393, 457631-457632, 504175, 506699-506778, 509000-509999, 627780, 636297, 636368, 650031-650033, 650035-650051, 650405-650439, 650485-650538, 650541-650598, 650700-650718, 650720-650727, 650901-650978, 651652-651679, 655000-655019, 655021-655058 | 16 | 3 |
//! | Verve | 506099-506198, 507865-507964, 650002-650027 | 16, 18, 19 | 3 |
//! | Troy | 979200-979289 | 16 | 3 |
//!
//! Where ranges overlap the longer prefix wins (622126-622925 is Discover inside UnionPay's 62;
//! Elo's six-digit ranges inside Visa's 4 and Discover's 65), so a number typed so far gets its
//! brand once no longer range of another brand can still match (`4` could be Visa or Elo, `41`
//! is Visa).
//! Every brand's numbers must pass Luhn except UnionPay's, some of which do not carry a Luhn
//! check digit.

use crate::envelope::{CardBrand, Hints};
use alloc::{borrow::ToOwned, format, string::String, vec::Vec};

/// Shortest card number accepted (ISO/IEC 7812 allows 8, no network issues fewer than 12).
pub const MIN_PAN_LEN: usize = 12;
/// Longest card number.
pub const MAX_PAN_LEN: usize = 19;

/// Why a card field was refused. Messages are written for the cardholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// Nothing was entered.
    #[error("Enter a card number.")]
    EmptyNumber,
    /// Characters other than digits, spaces and dashes.
    #[error("A card number contains digits only.")]
    InvalidCharacters,
    /// Fewer digits than the brand (or any card) has.
    #[error("The card number is incomplete.")]
    TooShort,
    /// More digits than the brand (or any card) has.
    #[error("The card number is too long.")]
    TooLong,
    /// A length the brand does not issue.
    #[error("The card number has the wrong length for this card.")]
    InvalidLength,
    /// The Luhn check digit does not match.
    #[error("The card number is not valid. Check it for typing mistakes.")]
    LuhnMismatch,
    /// The security code is missing or has the wrong number of digits.
    #[error("The security code is incomplete.")]
    InvalidCvc,
    /// The expiry date is not `MM/YY`, `MM/YYYY` or `MM / YY`.
    #[error("Enter the expiry date as MM/YY.")]
    InvalidExpiry,
    /// The month is not 01 to 12.
    #[error("The expiry month is not valid.")]
    InvalidMonth,
    /// The card expired.
    #[error("The card has expired.")]
    Expired,
    /// The expiry is more than [`MAX_EXPIRY_YEARS`] years ahead.
    #[error("The expiry year is too far in the future.")]
    ExpiryTooFar,
}

impl CardError {
    /// A stable machine-readable code, such as `card_luhn_mismatch`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::EmptyNumber => "card_empty",
            Self::InvalidCharacters => "card_invalid_characters",
            Self::TooShort => "card_too_short",
            Self::TooLong => "card_too_long",
            Self::InvalidLength => "card_invalid_length",
            Self::LuhnMismatch => "card_luhn_mismatch",
            Self::InvalidCvc => "cvc_invalid",
            Self::InvalidExpiry => "expiry_invalid",
            Self::InvalidMonth => "expiry_invalid_month",
            Self::Expired => "expiry_past",
            Self::ExpiryTooFar => "expiry_too_far",
        }
    }
}

/// A prefix range: numbers whose first `digits` digits lie in `lo..=hi`.
struct Range {
    brand: CardBrand,
    digits: u32,
    lo: u32,
    hi: u32,
}

const fn r(brand: CardBrand, digits: u32, lo: u32, hi: u32) -> Range {
    Range {
        brand,
        digits,
        lo,
        hi,
    }
}

const RANGES: &[Range] = &[
    r(CardBrand::Visa, 1, 4, 4),
    r(CardBrand::Mastercard, 2, 51, 55),
    r(CardBrand::Mastercard, 4, 2221, 2720),
    r(CardBrand::Amex, 2, 34, 34),
    r(CardBrand::Amex, 2, 37, 37),
    r(CardBrand::Discover, 4, 6011, 6011),
    r(CardBrand::Discover, 3, 644, 649),
    r(CardBrand::Discover, 2, 65, 65),
    r(CardBrand::Discover, 6, 622_126, 622_925),
    r(CardBrand::Diners, 3, 300, 305),
    r(CardBrand::Diners, 4, 3095, 3095),
    r(CardBrand::Diners, 2, 36, 36),
    r(CardBrand::Diners, 2, 38, 39),
    r(CardBrand::Jcb, 4, 3528, 3589),
    r(CardBrand::UnionPay, 2, 62, 62),
    r(CardBrand::UnionPay, 2, 81, 81),
    r(CardBrand::Maestro, 4, 5018, 5018),
    r(CardBrand::Maestro, 4, 5020, 5020),
    r(CardBrand::Maestro, 4, 5038, 5038),
    r(CardBrand::Maestro, 4, 5893, 5893),
    r(CardBrand::Maestro, 4, 6304, 6304),
    r(CardBrand::Maestro, 4, 6759, 6759),
    r(CardBrand::Maestro, 4, 6761, 6763),
    r(CardBrand::Maestro, 2, 56, 58),
    r(CardBrand::RuPay, 6, 508_500, 508_999),
    r(CardBrand::RuPay, 6, 606_985, 607_984),
    r(CardBrand::RuPay, 6, 608_001, 608_500),
    r(CardBrand::RuPay, 6, 652_150, 653_149),
    r(CardBrand::Mir, 4, 2200, 2204),
    r(CardBrand::Elo, 6, 401_178, 401_179),
    r(CardBrand::Elo, 6, 431_274, 431_274),
    r(CardBrand::Elo, 6, 438_935, 438_935),
    r(CardBrand::Elo, 6, 451_416, 451_416),
    r(CardBrand::Elo, 6, 457_393, 457_393),
    r(CardBrand::Elo, 6, 457_631, 457_632),
    r(CardBrand::Elo, 6, 504_175, 504_175),
    r(CardBrand::Elo, 6, 506_699, 506_778),
    r(CardBrand::Elo, 6, 509_000, 509_999),
    r(CardBrand::Elo, 6, 627_780, 627_780),
    r(CardBrand::Elo, 6, 636_297, 636_297),
    r(CardBrand::Elo, 6, 636_368, 636_368),
    r(CardBrand::Elo, 6, 650_031, 650_033),
    r(CardBrand::Elo, 6, 650_035, 650_051),
    r(CardBrand::Elo, 6, 650_405, 650_439),
    r(CardBrand::Elo, 6, 650_485, 650_538),
    r(CardBrand::Elo, 6, 650_541, 650_598),
    r(CardBrand::Elo, 6, 650_700, 650_718),
    r(CardBrand::Elo, 6, 650_720, 650_727),
    r(CardBrand::Elo, 6, 650_901, 650_978),
    r(CardBrand::Elo, 6, 651_652, 651_679),
    r(CardBrand::Elo, 6, 655_000, 655_019),
    r(CardBrand::Elo, 6, 655_021, 655_058),
    r(CardBrand::Verve, 6, 506_099, 506_198),
    r(CardBrand::Verve, 6, 507_865, 507_964),
    r(CardBrand::Verve, 6, 650_002, 650_027),
    r(CardBrand::Troy, 6, 979_200, 979_289),
];

/// Digits of the longest prefix in [`RANGES`].
const PREFIX_DIGITS: usize = 6;

const _: () = {
    let mut i = 0;
    while i < RANGES.len() {
        assert!(RANGES[i].digits as usize <= PREFIX_DIGITS);
        i += 1;
    }
};

/// The values of a number's first 0 to [`PREFIX_DIGITS`] digits (`[0]` is 0), and how many of them
/// it has.
struct Prefixes {
    values: [u32; PREFIX_DIGITS + 1],
    len: usize,
}

impl Prefixes {
    fn of(digits: &[u8]) -> Self {
        let mut values = [0u32; PREFIX_DIGITS + 1];
        let len = digits.len().min(PREFIX_DIGITS);
        for (k, d) in digits[..len].iter().enumerate() {
            values[k + 1] = values[k] * 10 + u32::from(d - b'0');
        }
        Self { values, len }
    }
}

impl Range {
    /// Whether a number starting with `digits` can lie in the range. For a prefix shorter than the
    /// range, whether some completion of it does.
    fn possible(&self, digits: &Prefixes) -> bool {
        let k = self.digits as usize;
        if digits.len >= k {
            return (self.lo..=self.hi).contains(&digits.values[k]);
        }
        let scale = 10u32.pow(self.digits - digits.len as u32);
        let first = digits.values[digits.len] * scale;
        let last = first + scale - 1;
        first <= self.hi && last >= self.lo
    }

    /// Whether a number of `len` digits has all of the range's prefix.
    fn complete(&self, len: usize) -> bool {
        len >= self.digits as usize
    }
}

/// The brand of a card number or of its first digits (spaces and dashes ignored), once the digits
/// typed so far leave only one brand possible. `None` for unknown numbers and ambiguous prefixes.
pub fn detect_brand(number: &str) -> Option<CardBrand> {
    brand_of_digits(&strip_separators(number)?)
}

/// [`detect_brand`] of ASCII digits, without allocating.
pub(crate) fn brand_of_digits(digits: &[u8]) -> Option<CardBrand> {
    if digits.is_empty() {
        return None;
    }
    let prefixes = Prefixes::of(digits);
    let candidates = || RANGES.iter().filter(|r| r.possible(&prefixes));
    // In one pass: the first candidate's brand, whether every candidate has it, and the complete
    // match on the longest prefix (the last of equals), which outranks shorter ones (Discover's
    // 622126-622925 inside UnionPay's 62).
    let mut first: Option<CardBrand> = None;
    let mut one_brand = true;
    let mut best: Option<&Range> = None;
    for r in candidates() {
        one_brand &= *first.get_or_insert(r.brand) == r.brand;
        if r.complete(digits.len()) && best.is_none_or(|b| r.digits >= b.digits) {
            best = Some(r);
        }
    }
    let first = first?;
    if one_brand {
        return Some(first);
    }
    let best = best?;
    // Only settled when no longer (still incomplete) range of another brand could match.
    let undecided = candidates().any(|r| r.brand != best.brand && r.digits > best.digits);
    (!undecided).then_some(best.brand)
}

/// Valid lengths of a brand's numbers.
pub const fn lengths(brand: CardBrand) -> &'static [usize] {
    match brand {
        CardBrand::Visa => &[13, 16, 19],
        CardBrand::Mastercard | CardBrand::RuPay | CardBrand::Elo | CardBrand::Troy => &[16],
        CardBrand::Amex => &[15],
        CardBrand::Discover | CardBrand::Jcb | CardBrand::UnionPay | CardBrand::Mir => {
            &[16, 17, 18, 19]
        }
        CardBrand::Verve => &[16, 18, 19],
        CardBrand::Diners => &[14, 15, 16, 17, 18, 19],
        CardBrand::Maestro => &[12, 13, 14, 15, 16, 17, 18, 19],
    }
}

/// Length of a brand's security code.
pub const fn cvc_length(brand: CardBrand) -> usize {
    match brand {
        CardBrand::Amex => 4,
        _ => 3,
    }
}

/// Digit grouping for display: Amex 4-6-5, 14-digit Diners 4-6-4, others in fours.
pub fn grouping(brand: Option<CardBrand>, len: usize) -> &'static [usize] {
    match (brand, len) {
        (Some(CardBrand::Amex), _) => &[4, 6, 5],
        (Some(CardBrand::Diners), ..=14) => &[4, 6, 4],
        _ => &[4, 4, 4, 4, 3],
    }
}

/// The Luhn sum of ASCII digits, doubling every second digit from the right: starting with the
/// rightmost when `double_last` (computing a check digit), with the one before it otherwise.
fn luhn_sum(digits: &[u8], double_last: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d.saturating_sub(b'0'));
            if (i % 2 == 1) != double_last {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum()
}

/// Whether `digits` (ASCII digits only) pass the Luhn (mod 10) check.
pub fn luhn_valid(digits: &[u8]) -> bool {
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && luhn_sum(digits, false).is_multiple_of(10)
}

/// The Luhn check digit that completes `digits` (ASCII digits only).
pub fn luhn_check_digit(digits: &[u8]) -> u8 {
    // `(10 - sum % 10) % 10` is below 10.
    b'0' + u8::try_from((10 - luhn_sum(digits, true) % 10) % 10).unwrap_or(0)
}

/// The digits of `input` with spaces and dashes removed; `None` if anything else is in it.
fn strip_separators(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len());
    for c in input.bytes() {
        match c {
            b'0'..=b'9' => out.push(c),
            b' ' | b'-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// A checked card number: its digits, and its brand when known. `Debug` shows only brand, BIN and
/// last four.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan {
    digits: String,
    brand: Option<CardBrand>,
}

impl Pan {
    /// The digits, without separators. A card number: handle as a secret.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }

    /// The brand, if the number is in a known range.
    pub fn brand(&self) -> Option<CardBrand> {
        self.brand
    }

    /// The first six digits (the BIN/IIN shown on receipts).
    pub fn bin6(&self) -> &str {
        self.digits.get(..6).unwrap_or_default()
    }

    /// The first eight digits, for numbers of 16 digits or more (PCI DSS allows showing eight
    /// there); otherwise `None`.
    pub fn bin8(&self) -> Option<&str> {
        (self.digits.len() >= 16)
            .then(|| self.digits.get(..8))
            .flatten()
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        self.digits
            .get(self.digits.len().saturating_sub(4)..)
            .unwrap_or_default()
    }

    /// The public hints an envelope of this number carries: brand, six-digit BIN, last four.
    pub fn hints(&self) -> Hints {
        Hints {
            brand: self.brand,
            bin: Some(self.bin6().to_owned()),
            last4: Some(self.last4().to_owned()),
        }
    }

    /// The number masked for display, keeping BIN and last four: `411111******1111`.
    pub fn masked(&self) -> String {
        let n = self.digits.len();
        format!("{}{}{}", self.bin6(), "*".repeat(n - 10), self.last4())
    }
}

impl Drop for Pan {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.digits);
    }
}

impl core::fmt::Debug for Pan {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Pan({:?}, {})", self.brand, self.masked())
    }
}

/// Checks a card number as typed (spaces and dashes allowed): digits only, a length the brand
/// issues (12 to 19 digits for unknown brands), and Luhn (except UnionPay).
pub fn validate_pan(input: &str) -> Result<Pan, CardError> {
    let digits = strip_separators(input.trim()).ok_or(CardError::InvalidCharacters)?;
    if digits.is_empty() {
        return Err(CardError::EmptyNumber);
    }
    let brand = brand_of_digits(&digits);
    check_digits(&digits, brand)?;
    let digits = String::from_utf8(digits).map_err(|_| CardError::InvalidCharacters)?;
    Ok(Pan { digits, brand })
}

/// [`validate_pan`]'s checks of a number's ASCII digits, given their brand
/// ([`brand_of_digits`]): a length the brand issues (12 to 19 digits for unknown brands), and Luhn
/// (except UnionPay). Allocates nothing.
pub(crate) fn check_digits(digits: &[u8], brand: Option<CardBrand>) -> Result<(), CardError> {
    let allowed: &[usize] = match brand {
        Some(b) => lengths(b),
        None => &[12, 13, 14, 15, 16, 17, 18, 19],
    };
    let (min, max) = (
        allowed.first().copied().unwrap_or(MIN_PAN_LEN),
        allowed.last().copied().unwrap_or(MAX_PAN_LEN),
    );
    let n = digits.len();
    if n < min {
        return Err(CardError::TooShort);
    }
    if n > max {
        return Err(CardError::TooLong);
    }
    if !allowed.contains(&n) {
        return Err(CardError::InvalidLength);
    }
    if brand != Some(CardBrand::UnionPay) && !luhn_valid(digits) {
        return Err(CardError::LuhnMismatch);
    }
    Ok(())
}

impl Pan {
    /// A number of 12 to 19 ASCII digits the classifier checked: by [`check_digits`] with `brand`
    /// ([`brand_of_digits`]), or Luhn-valid though no brand's rules accept it (a brand's number
    /// of an unlisted length, or an unknown issuer's), found as card data all the same.
    pub(crate) fn from_checked_digits(digits: &[u8], brand: Option<CardBrand>) -> Self {
        Self {
            brand,
            digits: digits.iter().map(|d| char::from(*d)).collect(),
        }
    }
}

/// Checks a security code: digits only, the brand's length (3 or 4 when the brand is unknown).
pub fn validate_cvc(cvc: &str, brand: Option<CardBrand>) -> Result<(), CardError> {
    let cvc = cvc.trim();
    let ok_len = match brand {
        Some(b) => cvc.len() == cvc_length(b),
        None => matches!(cvc.len(), 3 | 4),
    };
    if ok_len && cvc.bytes().all(|c| c.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CardError::InvalidCvc)
    }
}

/// How far ahead an expiry may be.
pub const MAX_EXPIRY_YEARS: u16 = 20;

/// A card expiry: the card is valid through the end of `month` of `year`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    /// Four-digit year.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
}

/// Parses `MM/YY`, `MM/YYYY`, `MM / YY`, `MM-YY` and `MMYY`; a single-digit month is accepted
/// with a separator (`3/29`).
pub fn parse_expiry(input: &str) -> Result<Expiry, CardError> {
    // Bytes with whitespace removed; anything non-ASCII becomes a byte no rule accepts. Checked
    // slicing throughout: the browser wasm carries no string-slicing panic.
    let s: Vec<u8> = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| u8::try_from(c).ok().filter(u8::is_ascii).unwrap_or(0))
        .collect();
    let (m, y) = match s.iter().position(|c| matches!(c, b'/' | b'-')) {
        Some(i) => (s.get(..i), s.get(i + 1..)),
        None if s.len() == 4 || s.len() == 6 => (s.get(..2), s.get(2..)),
        None => return Err(CardError::InvalidExpiry),
    };
    let number = |t: Option<&[u8]>, lens: &[usize]| {
        t.filter(|t| lens.contains(&t.len()) && t.iter().all(u8::is_ascii_digit))
            .map(|t| t.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')))
    };
    let (Some(month), Some(year)) = (number(m, &[1, 2]), number(y, &[2, 4])) else {
        return Err(CardError::InvalidExpiry);
    };
    if !(1..=12).contains(&month) {
        return Err(CardError::InvalidMonth);
    }
    let year = if y.is_some_and(|y| y.len() == 2) {
        2000 + year
    } else {
        year
    };
    Ok(Expiry {
        year,
        month: u8::try_from(month).unwrap_or(0),
    })
}

/// The (year, month) of a Unix time, UTC.
pub fn year_month(unix_seconds: u64) -> (u16, u8) {
    // Civil-from-days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        u16::try_from(year).unwrap_or(u16::MAX),
        u8::try_from(month).unwrap_or(1),
    )
}

/// Parses and checks an expiry against `now` (Unix seconds): not before the current month, not more
/// than [`MAX_EXPIRY_YEARS`] years ahead.
pub fn validate_expiry(input: &str, now: u64) -> Result<Expiry, CardError> {
    let exp = parse_expiry(input)?;
    let (year, month) = year_month(now);
    if (exp.year, exp.month) < (year, month) {
        return Err(CardError::Expired);
    }
    if exp.year > year + MAX_EXPIRY_YEARS {
        return Err(CardError::ExpiryTooFar);
    }
    Ok(exp)
}

/// A card number formatted as the user types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// The digits grouped with single spaces, cut at the brand's longest length.
    pub text: String,
    /// Where the caret goes in `text`: after the same digit it followed in the input.
    pub caret: usize,
    /// The brand, once known.
    pub brand: Option<CardBrand>,
}

/// Formats a card number field's content as typed: keeps digits, groups them for the brand, cuts
/// at the brand's maximum length, and maps the caret (a character index into `input`) to the
/// position after the same digit in the output.
pub fn format_pan(input: &str, caret: usize) -> Formatted {
    let digits_before_caret = input
        .chars()
        .take(caret)
        .filter(char::is_ascii_digit)
        .count();
    let all: String = input.chars().filter(char::is_ascii_digit).collect();
    let brand = detect_brand(&all);
    let max = brand.map_or(MAX_PAN_LEN, |b| {
        lengths(b).last().copied().unwrap_or(MAX_PAN_LEN)
    });
    let digits: String = all.chars().take(max).collect();
    let groups = grouping(brand, digits.len());
    let mut text = String::with_capacity(digits.len() + groups.len());
    let mut caret_out = 0;
    let mut placed = 0;
    let mut group = 0;
    let mut in_group = 0;
    for c in digits.chars() {
        let size = groups.get(group).copied().unwrap_or(usize::MAX);
        if in_group == size {
            text.push(' ');
            group += 1;
            in_group = 0;
        }
        text.push(c);
        in_group += 1;
        placed += 1;
        if placed == digits_before_caret {
            caret_out = text.len();
        }
    }
    if digits_before_caret > placed {
        caret_out = text.len();
    }
    Formatted {
        text,
        caret: caret_out,
        brand,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn detects_brands_from_full_numbers() {
        let cases = [
            ("4111111111111111", CardBrand::Visa),
            ("4012888888881881", CardBrand::Visa),
            ("5555555555554444", CardBrand::Mastercard),
            ("2223003122003222", CardBrand::Mastercard),
            ("2720990000000007", CardBrand::Mastercard),
            ("378282246310005", CardBrand::Amex),
            ("371449635398431", CardBrand::Amex),
            ("6011111111111117", CardBrand::Discover),
            ("6221260000000000", CardBrand::Discover),
            ("6500000000000002", CardBrand::Discover),
            ("30569309025904", CardBrand::Diners),
            ("36227206271667", CardBrand::Diners),
            ("3566002020360505", CardBrand::Jcb),
            ("6200000000000005", CardBrand::UnionPay),
            ("6759649826438453", CardBrand::Maestro),
            ("5893000000000000", CardBrand::Maestro),
            ("6073849700004947", CardBrand::RuPay),
            ("5085000000000004", CardBrand::RuPay),
            ("2200000000000004", CardBrand::Mir),
            ("2204999999999999995", CardBrand::Mir),
            ("4011780000000009", CardBrand::Elo),
            ("5067000000000008", CardBrand::Elo),
            ("6362970000457013", CardBrand::Elo),
            ("6500310000000000", CardBrand::Elo),
            ("5061000000000000", CardBrand::Verve),
            ("6500020000000000", CardBrand::Verve),
            ("9792000000000001", CardBrand::Troy),
        ];
        for (n, b) in cases {
            assert_eq!(detect_brand(n), Some(b), "{n}");
        }
        assert_eq!(detect_brand("2220999999999999"), None, "below the 2-series");
        assert_eq!(detect_brand("2721000000000000"), None, "above the 2-series");
        assert_eq!(detect_brand("9999"), None);
    }

    #[test]
    fn detects_brands_while_typing() {
        assert_eq!(detect_brand("4"), None, "Visa or Elo");
        assert_eq!(detect_brand("41"), Some(CardBrand::Visa));
        assert_eq!(detect_brand("4011"), None, "Visa or Elo's 401178");
        assert_eq!(detect_brand("401178"), Some(CardBrand::Elo));
        assert_eq!(detect_brand("401177"), Some(CardBrand::Visa));
        assert_eq!(detect_brand("3"), None, "Amex, Diners or JCB");
        assert_eq!(detect_brand("34"), Some(CardBrand::Amex));
        assert_eq!(detect_brand("5"), None, "Mastercard or Maestro");
        assert_eq!(detect_brand("51"), Some(CardBrand::Mastercard));
        assert_eq!(detect_brand("2"), None, "Mastercard or Mir");
        assert_eq!(detect_brand("222"), Some(CardBrand::Mastercard));
        assert_eq!(detect_brand("220"), Some(CardBrand::Mir));
        assert_eq!(detect_brand("65"), None, "Discover, Elo, Verve or RuPay");
        assert_eq!(detect_brand("6599"), Some(CardBrand::Discover));
        assert_eq!(detect_brand("97"), Some(CardBrand::Troy));
        assert_eq!(
            detect_brand("62"),
            None,
            "UnionPay or Discover's co-branded range"
        );
        assert_eq!(detect_brand("6200"), Some(CardBrand::UnionPay));
        assert_eq!(detect_brand("4111 1111"), Some(CardBrand::Visa));
        assert_eq!(detect_brand("4x"), None);
    }

    #[test]
    fn validates_numbers() {
        assert_eq!(
            validate_pan("4111 1111 1111 1111").unwrap().brand(),
            Some(CardBrand::Visa)
        );
        assert_eq!(
            validate_pan("4111-1111-1111-1112"),
            Err(CardError::LuhnMismatch)
        );
        assert_eq!(validate_pan("4111 1111 1111"), Err(CardError::TooShort));
        assert_eq!(
            validate_pan("41111111111111111111"),
            Err(CardError::TooLong)
        );
        assert_eq!(
            validate_pan("41111111111111"),
            Err(CardError::InvalidLength)
        );
        assert_eq!(validate_pan("3782822463100051"), Err(CardError::TooLong));
        assert_eq!(
            validate_pan("4111a11111111111"),
            Err(CardError::InvalidCharacters)
        );
        assert_eq!(validate_pan("  "), Err(CardError::EmptyNumber));
        let amex = validate_pan("378282246310005").unwrap();
        assert_eq!((amex.bin6(), amex.last4()), ("378282", "0005"));
        assert_eq!(amex.bin8(), None);
        assert_eq!(amex.masked(), "378282*****0005");
        let visa = validate_pan("4111111111111111").unwrap();
        assert_eq!(visa.bin8(), Some("41111111"));
        assert!(!format!("{visa:?}").contains("4111111111111111"));
    }

    #[test]
    fn luhn_and_check_digit_agree() {
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b""));
        assert_eq!(luhn_check_digit(b"7992739871"), b'3');
        assert_eq!(luhn_check_digit(b"411111111111111"), b'1');
    }

    #[test]
    fn rupay_mir_elo_verve_troy_have_their_lengths_and_cvc() {
        let cases: [(CardBrand, &str, &[usize]); 5] = [
            (CardBrand::RuPay, "608001", &[16]),
            (CardBrand::Mir, "2201", &[16, 17, 18, 19]),
            (CardBrand::Elo, "636368", &[16]),
            (CardBrand::Verve, "506100", &[16, 18, 19]),
            (CardBrand::Troy, "979250", &[16]),
        ];
        for (brand, prefix, valid) in cases {
            for n in MIN_PAN_LEN..=MAX_PAN_LEN {
                let mut number = format!("{prefix}{}", "3".repeat(n - 1 - prefix.len()));
                number.push(char::from(luhn_check_digit(number.as_bytes())));
                let result = validate_pan(&number);
                if valid.contains(&n) {
                    assert_eq!(result.map(|p| p.brand()), Ok(Some(brand)), "{brand:?} {n}");
                } else {
                    assert!(
                        result.is_err(),
                        "{brand:?}: {n} digits is not a length it issues"
                    );
                }
            }
            assert_eq!(lengths(brand), valid);
            assert_eq!(cvc_length(brand), 3);
            assert!(validate_cvc("123", Some(brand)).is_ok());
            assert_eq!(
                validate_cvc("1234", Some(brand)),
                Err(CardError::InvalidCvc)
            );
            assert_eq!(CardBrand::from_code(brand.code()), Some(brand));
        }
        let names: Vec<&str> = CardBrand::ALL.iter().map(|b| b.as_str()).collect();
        assert_eq!(names[8..], ["rupay", "mir", "elo", "verve", "troy"]);
    }

    #[test]
    fn cvc_length_follows_brand() {
        assert!(validate_cvc("123", Some(CardBrand::Visa)).is_ok());
        assert_eq!(
            validate_cvc("1234", Some(CardBrand::Visa)),
            Err(CardError::InvalidCvc)
        );
        assert!(validate_cvc("1234", Some(CardBrand::Amex)).is_ok());
        assert_eq!(
            validate_cvc("123", Some(CardBrand::Amex)),
            Err(CardError::InvalidCvc)
        );
        assert_eq!(validate_cvc("12", None), Err(CardError::InvalidCvc));
        assert_eq!(validate_cvc("12a", None), Err(CardError::InvalidCvc));
    }

    #[test]
    fn expiry_formats_and_limits() {
        let ym = |y, m| Expiry { year: y, month: m };
        assert_eq!(parse_expiry("12/29"), Ok(ym(2029, 12)));
        assert_eq!(parse_expiry("12/2029"), Ok(ym(2029, 12)));
        assert_eq!(parse_expiry("12 / 29"), Ok(ym(2029, 12)));
        assert_eq!(parse_expiry("3/29"), Ok(ym(2029, 3)));
        assert_eq!(parse_expiry("1229"), Ok(ym(2029, 12)));
        assert_eq!(parse_expiry("13/29"), Err(CardError::InvalidMonth));
        assert_eq!(parse_expiry("00/29"), Err(CardError::InvalidMonth));
        assert_eq!(parse_expiry("12/293"), Err(CardError::InvalidExpiry));
        assert_eq!(parse_expiry("ab/cd"), Err(CardError::InvalidExpiry));
        // Non-ASCII input never reaches byte slicing.
        assert_eq!(parse_expiry("1é1"), Err(CardError::InvalidExpiry));
        assert_eq!(parse_expiry("1２29"), Err(CardError::InvalidExpiry));
        assert_eq!(parse_expiry("１２/２９"), Err(CardError::InvalidExpiry));
        // 2026-11-22T00:00:00Z
        let now = 1_795_305_600;
        assert_eq!(year_month(now), (2026, 11));
        assert!(
            validate_expiry("11/26", now).is_ok(),
            "valid through the month"
        );
        assert_eq!(validate_expiry("10/26", now), Err(CardError::Expired));
        assert!(validate_expiry("11/46", now).is_ok());
        assert_eq!(validate_expiry("01/47", now), Err(CardError::ExpiryTooFar));
    }

    #[test]
    fn year_month_at_boundaries() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(951_782_400), (2000, 2)); // 2000-02-29
        assert_eq!(year_month(951_868_800), (2000, 3)); // 2000-03-01
        assert_eq!(year_month(1_798_761_599), (2026, 12)); // 2026-12-31T23:59:59Z
    }

    #[test]
    fn formats_as_typed_and_keeps_the_caret() {
        let f = format_pan("4111111111111111", 16);
        assert_eq!(f.text, "4111 1111 1111 1111");
        assert_eq!(f.caret, 19);
        let f = format_pan("378282246310005", 15);
        assert_eq!(f.text, "3782 822463 10005");
        assert_eq!(f.brand, Some(CardBrand::Amex));
        // A digit inserted in the middle: the caret stays after it.
        let f = format_pan("4111 51111 1111 1111", 6);
        assert_eq!(f.text, "4111 5111 1111 1111 1");
        assert_eq!(f.caret, 6);
        // Caret right after a group's last digit stays before the space.
        let f = format_pan("41111", 4);
        assert_eq!((f.text.as_str(), f.caret), ("4111 1", 4));
        // Deleting back to a boundary.
        let f = format_pan("4111 ", 5);
        assert_eq!((f.text.as_str(), f.caret), ("4111", 4));
        // Extra digits are cut at the brand's maximum length.
        assert_eq!(
            format_pan("3782822463100059999", 19).text,
            "3782 822463 10005"
        );
        assert_eq!(format_pan("", 0).text, "");
        assert_eq!(format_pan("30569309025904", 14).text, "3056 930902 5904");
    }
}
