//! Lowercase hexadecimal, the one hex encoder of the project (envelope ids in logs, the audit
//! chain's hashes and MACs, key and API-key ids), and unpadded base64url (envelope text, key
//! coordinates, thumbprints). Written without `format!` or an `unwrap`, so the browser's wasm
//! links no formatting code for them.

use alloc::string::String;
use base64ct::{Base64UrlUnpadded, Encoding};

/// Unpadded base64url (RFC 4648 §5) of `bytes`, encoded into a buffer of exactly the length it
/// needs (base64ct's `encode_string` would unwrap, and so bring panic formatting along).
pub fn base64url(bytes: &[u8]) -> String {
    let mut buf = alloc::vec![0u8; Base64UrlUnpadded::encoded_len(bytes)];
    Base64UrlUnpadded::encode(bytes, &mut buf)
        .map(String::from)
        .unwrap_or_default()
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`, two characters a byte.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Parses lowercase or uppercase hex into exactly `N` bytes.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = (nibble(bytes[2 * i])? << 4) | nibble(bytes[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_agrees_with_base64ct() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64url(&bytes), Base64UrlUnpadded::encode_string(&bytes));
        }
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
    }

    #[test]
    fn round_trips_and_refuses_bad_text() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        assert_eq!(from_hex::<4>("000fa5ff"), Some([0x00, 0x0f, 0xa5, 0xff]));
        assert_eq!(from_hex::<2>("A5fF"), Some([0xa5, 0xff]));
        assert_eq!(from_hex::<2>("a5f"), None);
        assert_eq!(from_hex::<2>("a5fg"), None);
        assert_eq!(from_hex::<1>("+1"), None);
    }
}
