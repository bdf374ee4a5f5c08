//! A strict reader for the key-set document (RFC 8259 JSON of one fixed shape), written out instead
//! of going through serde_json so that the browser wasm, which only ever reads key sets, carries no
//! general-purpose JSON machinery (about a third of its size). It accepts exactly what
//! `serde_json::from_str::<KeySetDoc>` accepts (unknown members, duplicate members, missing members,
//! non-integer or out-of-range numbers, trailing characters are refused; `"d": null` counts as
//! absent); a differential test below holds it to that. Errors are messages for
//! [`KeySetError::Malformed`](super::KeySetError::Malformed), put together by concatenation rather
//! than `format!`, so that the browser wasm carries no formatting machinery.

use super::{Jwk, KeySetDoc};
use alloc::{string::String, vec::Vec};

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

type R<T> = Result<T, String>;

/// `` what `name` ``: a message naming a member.
fn named(what: &str, name: &str) -> String {
    [what, " `", name, "`"].concat()
}

/// `n` in decimal.
fn decimal(mut n: usize) -> String {
    let mut digits = Vec::new();
    loop {
        // `n % 10` is below 10.
        digits.push(b'0' + (n % 10) as u8);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    digits.iter().rev().map(|&d| char::from(d)).collect()
}

impl Reader<'_> {
    fn err<T>(&self, what: &str) -> R<T> {
        Err([what, " at byte ", &decimal(self.i)].concat())
    }

    fn peek(&mut self) -> Option<u8> {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
        self.b.get(self.i).copied()
    }

    fn next_byte(&mut self) -> R<u8> {
        let c = self.b.get(self.i).copied();
        self.i += 1;
        c.map_or_else(|| self.err("unexpected end of document"), Ok)
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&named("expected", char::from(c).encode_utf8(&mut [0; 4])))
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let mut v = 0;
        for _ in 0..4 {
            let c = self.next_byte()?;
            let d = (c as char)
                .to_digit(16)
                .map_or_else(|| self.err("invalid \\u escape"), Ok)?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn string(&mut self) -> R<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            // The input is a &str, so copying its bytes between escapes keeps valid UTF-8; a
            // multi-byte character is copied whole before the next check.
            let start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            let chunk =
                core::str::from_utf8(&self.b[start..self.i]).map_err(|_| "invalid UTF-8")?;
            out.push_str(chunk);
            match self.next_byte()? {
                b'"' => return Ok(out),
                b'\\' => {
                    let c = match self.next_byte()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.next_byte()? != b'\\' || self.next_byte()? != b'u' {
                                    return self.err("unpaired surrogate");
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("unpaired surrogate");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return self.err("unpaired surrogate");
                            } else {
                                hi
                            };
                            char::from_u32(cp).map_or_else(|| self.err("invalid escape"), Ok)?
                        }
                        _ => return self.err("invalid escape"),
                    };
                    out.push(c);
                }
                _ => return self.err("control character in string"),
            }
        }
    }

    /// A non-negative integer that fits in u64, as serde reads a `u64` field.
    fn u64(&mut self) -> R<u64> {
        let start = match self.peek() {
            Some(b'0'..=b'9') => self.i,
            Some(b'-') => return self.err("expected a non-negative integer"),
            _ => return self.err("expected an integer"),
        };
        self.skip_number()?;
        let text = core::str::from_utf8(&self.b[start..self.i]).map_err(|_| "invalid number")?;
        if !text.bytes().all(|c| c.is_ascii_digit()) {
            return self.err("expected an integer");
        }
        text.parse::<u64>()
            .map_or_else(|_| self.err("integer out of range"), Ok)
    }

    /// JSON number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn skip_number(&mut self) -> R<()> {
        let digits = |r: &mut Self| {
            let s = r.i;
            while matches!(r.b.get(r.i), Some(b'0'..=b'9')) {
                r.i += 1;
            }
            r.i - s
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        if self.b.get(self.i) == Some(&b'0') {
            self.i += 1;
        } else if digits(self) == 0 {
            return self.err("invalid number");
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    /// Skips any value, however deeply nested (iteratively: no recursion); returns whether it
    /// was `null`.
    fn skip_value(&mut self) -> R<bool> {
        let mut open: Vec<u8> = Vec::new();
        loop {
            let mut null = false;
            match self.peek() {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'{') => {
                    self.i += 1;
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        open.push(b'}');
                        self.string()?;
                        self.expect(b':')?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        open.push(b']');
                        continue;
                    }
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => {
                    self.literal(b"null")?;
                    // Only a `null` that is the whole value, not one inside it.
                    null = open.is_empty();
                }
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                _ => return self.err("expected a value"),
            }
            // After a value: close what ends here, or go on to the next element or member.
            loop {
                let Some(&close) = open.last() else {
                    return Ok(null);
                };
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if close == b'}' {
                            self.string()?;
                            self.expect(b':')?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        open.pop();
                    }
                    _ => return self.err("expected `,` or a closing bracket"),
                }
            }
        }
    }

    /// An object, calling `member` with each member's name with the reader at its value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, String) -> R<()>) -> R<()> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            member(self, name)?;
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    fn jwk(&mut self) -> R<Jwk> {
        let mut s: [Option<String>; 7] = Default::default();
        let mut n: [Option<u64>; 2] = [None, None];
        let mut d_seen = false;
        let mut d = None;
        const STRINGS: [&str; 7] = ["kty", "crv", "use", "alg", "kid", "x", "y"];
        self.object(|r, name| {
            if let Some(k) = STRINGS.iter().position(|m| *m == name) {
                if s[k].is_some() {
                    return r.err(&named("duplicate field", &name));
                }
                s[k] = Some(r.string()?);
            } else if let Some(k) = ["nbf", "exp"].iter().position(|m| *m == name) {
                if n[k].is_some() {
                    return r.err(&named("duplicate field", &name));
                }
                n[k] = Some(r.u64()?);
            } else if name == "d" {
                if d_seen {
                    return r.err("duplicate field `d`");
                }
                d_seen = true;
                if !r.skip_value()? {
                    d = Some(serde::de::IgnoredAny);
                }
            } else {
                return r.err(&named("unknown field", &name));
            }
            Ok(())
        })?;
        let [kty, crv, key_use, alg, kid, x, y] = s;
        let missing = |name: &str| named("missing field", name);
        let take = |v: Option<String>, k: usize| v.ok_or_else(|| missing(STRINGS[k]));
        Ok(Jwk {
            kty: take(kty, 0)?,
            crv: take(crv, 1)?,
            key_use: take(key_use, 2)?,
            alg: take(alg, 3)?,
            kid: take(kid, 4)?,
            x: take(x, 5)?,
            y: take(y, 6)?,
            d,
            nbf: n[0].ok_or_else(|| missing("nbf"))?,
            exp: n[1].ok_or_else(|| missing("exp"))?,
        })
    }
}

/// Reads a key-set document.
pub(super) fn read(json: &str) -> Result<KeySetDoc, String> {
    let mut r = Reader {
        b: json.as_bytes(),
        i: 0,
    };
    let mut keys: Option<Vec<Jwk>> = None;
    let mut server_time = None;
    r.object(|r, name| {
        match name.as_str() {
            "keys" if keys.is_none() => {
                let mut list = Vec::new();
                r.expect(b'[')?;
                if r.peek() == Some(b']') {
                    r.i += 1;
                } else {
                    loop {
                        list.push(r.jwk()?);
                        match r.peek() {
                            Some(b',') => r.i += 1,
                            Some(b']') => {
                                r.i += 1;
                                break;
                            }
                            _ => return r.err("expected `,` or `]`"),
                        }
                    }
                }
                keys = Some(list);
            }
            "server_time" if server_time.is_none() => server_time = Some(r.u64()?),
            "keys" | "server_time" => return r.err(&named("duplicate field", &name)),
            _ => return r.err(&named("unknown field", &name)),
        }
        Ok(())
    })?;
    if r.peek().is_some() {
        return r.err("trailing characters");
    }
    Ok(KeySetDoc {
        keys: keys.ok_or("missing field `keys`")?,
        server_time: server_time.ok_or("missing field `server_time`")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const KEY: &str = r#"{"kty":"EC","crv":"P-256","use":"enc","alg":"HPKE-7","kid":"k","x":"AAAA","y":"BBBB","nbf":1,"exp":2}"#;

    fn doc(key: &str) -> String {
        format!(r#"{{"keys":[{key}],"server_time":10}}"#)
    }

    /// What both readers made of a document: `None` when refused.
    fn both(text: &str) -> (Option<String>, Option<String>) {
        let show = |d: KeySetDoc| {
            let keys: Vec<String> = d
                .keys
                .iter()
                .map(|k| {
                    format!(
                        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                        k.kty,
                        k.crv,
                        k.key_use,
                        k.alg,
                        k.kid,
                        k.x,
                        k.y,
                        k.d.is_some(),
                        k.nbf,
                        k.exp
                    )
                })
                .collect();
            format!("{keys:?} {}", d.server_time)
        };
        (
            read(text).ok().map(show),
            serde_json::from_str::<KeySetDoc>(text).ok().map(show),
        )
    }

    #[test]
    fn agrees_with_serde_json() {
        let mut cases: Vec<String> = vec![
            doc(KEY),
            format!(r#"{{"server_time":10,"keys":[{KEY},{KEY}]}}"#),
            r#"{"keys":[],"server_time":0}"#.into(),
            format!(
                " \n\t{{ \"keys\" : [ {KEY} ] , \"server_time\" : 18446744073709551615 }} \r\n"
            ),
            r#"{"keys":[],"server_time":18446744073709551616}"#.into(),
            r#"{"keys":[],"server_time":-1}"#.into(),
            r#"{"keys":[],"server_time":1.0}"#.into(),
            r#"{"keys":[],"server_time":1e3}"#.into(),
            r#"{"keys":[],"server_time":01}"#.into(),
            r#"{"keys":[],"server_time":"1"}"#.into(),
            r#"{"keys":[],"server_time":1,}"#.into(),
            r#"{"keys":[],"server_time":1} x"#.into(),
            r#"{"keys":[],"server_time":1}{}"#.into(),
            r#"{"keys":[]}"#.into(),
            r#"{"server_time":1}"#.into(),
            r#"{"keys":[],"keys":[],"server_time":1}"#.into(),
            r#"{"keys":[],"server_time":1,"extra":true}"#.into(),
            r#"{"keys":null,"server_time":1}"#.into(),
            r#"{"keys":[,],"server_time":1}"#.into(),
            r#"[]"#.into(),
            String::new(),
            r#"{"keys":[],"server_time":1"#.into(),
        ];
        for (from, to) in [
            (r#""kid":"k""#, r#""kid":"k\u00e9\n\"\\\/""#),
            (r#""kid":"k""#, r#""kid":"\ud83d\ude00""#),
            (r#""kid":"k""#, r#""kid":"\ud83d""#),
            (r#""kid":"k""#, r#""kid":"\ude00x""#),
            (r#""kid":"k""#, r#""kid":"\u00zz""#),
            (r#""kid":"k""#, r#""kid":"\q""#),
            (r#""kid":"k""#, "\"kid\":\"a\u{1}b\""),
            (r#""kid":"k""#, "\"kid\":\"é漢\""),
            (r#""kid":"k""#, r#""kid":"k","kid":"k""#),
            (r#""kid":"k""#, r#""kid":"k","d":null"#),
            (r#""kid":"k""#, r#""kid":"k","d":"AAAA""#),
            (
                r#""kid":"k""#,
                r#""kid":"k","d":{"a":[1,-2.5e-3,true,false,null,{}]}"#,
            ),
            (r#""kid":"k""#, r#""kid":"k","d":[1,]"#),
            (r#""kid":"k""#, r#""kid":"k","d":{"a":1,}"#),
            (r#""kid":"k""#, r#""kid":"k","d":{"a" 1}"#),
            (r#""kid":"k""#, r#""kid":"k","d":[1}"#),
            (r#""kid":"k""#, r#""kid":"k","d":[[]]"#),
            (r#""kid":"k""#, r#""kid":"k","d":tru"#),
            (r#""kid":"k""#, r#""kid":"k","d":-"#),
            (r#""kid":"k""#, r#""kid":"k","d":1.e5"#),
            (r#""kid":"k""#, r#""kid":"k","d":null,"d":null"#),
            (r#""kid":"k""#, r#""kid":"k","extra":1"#),
            (r#""kid":"k","#, ""),
            (r#""nbf":1"#, r#""nbf":1.5"#),
            (r#""nbf":1"#, r#""nbf":true"#),
            (r#""x":"AAAA""#, r#""x":1"#),
        ] {
            assert!(KEY.contains(from), "{from}");
            cases.push(doc(&KEY.replacen(from, to, 1)));
        }
        let deep = format!(
            r#""kid":"k","d":{}1{}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        cases.push(doc(&KEY.replacen(r#""kid":"k""#, &deep, 1)));
        for text in &cases {
            let (ours, serde) = both(text);
            assert_eq!(ours, serde, "{text}");
        }
        // The corpus exercises both outcomes.
        let accepted = cases.iter().filter(|t| read(t).is_ok()).count();
        assert!(accepted >= 6 && accepted < cases.len() - 20, "{accepted}");
    }

    #[test]
    fn agrees_with_serde_json_on_every_one_byte_mutation() {
        let base = doc(&KEY.replacen(r#""kid":"k""#, r#""kid":"k\n","d":[{"a":null}]"#, 1));
        let mut compared = 0;
        for i in 0..=base.len() {
            let mut variants = vec![format!(
                "{}{}",
                &base[..i],
                &base[(i + 1).min(base.len())..]
            )];
            for c in "{}[],:\"\\0-.en 1u".chars() {
                variants.push(format!("{}{c}{}", &base[..i], &base[i..]));
                if i < base.len() {
                    variants.push(format!("{}{c}{}", &base[..i], &base[i + 1..]));
                }
            }
            for text in variants {
                let (ours, serde) = both(&text);
                assert_eq!(ours, serde, "{text}");
                compared += 1;
            }
        }
        assert!(compared > 4_000, "{compared}");
    }
}
