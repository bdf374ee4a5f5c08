//! Types for secret values: their `Debug` and `Display` print `[REDACTED]`, they are wiped from
//! memory on drop, and the bytes are reachable only through an explicit accessor.

use alloc::vec::Vec;
use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A sensitive field value (card number, CVC, e-mail ...) in the clear.
///
/// `Debug` and `Display` print `[REDACTED]`, so a value in a log line, an error or a panic message
/// never shows. The buffer is wiped on drop. Equality is constant-time.
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies the bytes of `value`; the caller remains responsible for its own copy.
    pub fn from_slice(value: &[u8]) -> Self {
        Self(Zeroizing::new(value.to_vec()))
    }

    /// The value's bytes. Named so that every place reading a secret is easy to find.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretValue {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice().ct_eq(other.0.as_slice()).into()
    }
}

impl Eq for SecretValue {}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([REDACTED])")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::SecretValue;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let v = SecretValue::from_slice(b"4111111111111111");
        assert_eq!(format!("{v:?}"), "SecretValue([REDACTED])");
        assert_eq!(format!("{v}"), "[REDACTED]");
        assert_eq!(v.expose(), b"4111111111111111");
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(
            SecretValue::from_slice(b"123"),
            SecretValue::from_slice(b"123")
        );
        assert_ne!(
            SecretValue::from_slice(b"123"),
            SecretValue::from_slice(b"124")
        );
        assert_ne!(
            SecretValue::from_slice(b"123"),
            SecretValue::from_slice(b"1234")
        );
    }
}
