//! Scanning a stream of text in fixed-size chunks, so that memory stays bounded whatever the
//! input: a 10 GB file without a newline is read 1 MiB at a time. Each chunk keeps the end of the
//! previous one as context ([`detect::LOOKBEHIND`]), and candidates near a chunk's end wait for the
//! next chunk ([`detect::LOOKAHEAD`]), so a value cut by a chunk boundary is found once.

use crate::detect::{self, Hit, Rules};
use std::io::{self, Read};

/// Bytes read per chunk.
pub const CHUNK: usize = 1 << 20;

/// Bytes at the start of a stream in which a NUL byte marks it as binary (as git and grep do).
const SNIFF: usize = 8192;

/// What reading a stream gave, besides its findings.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamOutcome {
    /// Bytes read.
    pub bytes: u64,
    /// Lines seen (newlines, plus one if the last line has none).
    pub lines: u64,
    /// The stream is not valid UTF-8 somewhere (it is scanned as bytes all the same).
    pub invalid_utf8: bool,
}

/// Why a stream was not scanned to its end.
#[derive(Debug)]
pub enum StreamError {
    /// A NUL byte near the start: a binary file; nothing was scanned.
    Binary,
    /// Reading failed after `bytes` bytes; what came before was scanned.
    Read {
        /// Bytes read and scanned before the error.
        bytes: u64,
        /// The error.
        error: io::Error,
    },
}

/// Scans everything `reader` yields; `hit` gets each finding with its 1-based line number. `tick`
/// gets the byte count of each chunk as it is scanned (progress).
pub fn scan_stream(
    mut reader: impl Read,
    rules: Rules,
    hit: &mut dyn FnMut(Hit, u64),
    tick: &mut dyn FnMut(u64),
) -> Result<StreamOutcome, StreamError> {
    let mut buf: Vec<u8> = Vec::with_capacity(detect::LOOKBEHIND + CHUNK);
    // Absolute offset of buf[0]; where scanning resumes (index in buf).
    let mut base: u64 = 0;
    let mut from = 0usize;
    let mut lines = LineCounter::default();
    let mut outcome = StreamOutcome::default();
    let mut utf8_pending = 0usize;
    let mut first = true;
    loop {
        let kept = buf.len();
        // After a read error, what was read before it is scanned as the stream's end.
        let (eof, failed) = match fill(&mut reader, &mut buf, kept + CHUNK) {
            Ok(eof) => (eof, None),
            Err(error) => (true, Some(error)),
        };
        let new = (buf.len() - kept) as u64;
        outcome.bytes += new;
        if first {
            first = false;
            if memchr::memchr(0, &buf[..buf.len().min(SNIFF)]).is_some() {
                return Err(StreamError::Binary);
            }
        }
        if !outcome.invalid_utf8 {
            let start = kept - utf8_pending;
            match std::str::from_utf8(&buf[start..]) {
                Ok(_) => utf8_pending = 0,
                // A character cut by the chunk's end is checked with the next chunk.
                Err(e) if e.error_len().is_none() && !eof => {
                    utf8_pending = buf.len() - start - e.valid_up_to();
                }
                Err(_) => outcome.invalid_utf8 = true,
            }
        }
        let to = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(detect::LOOKAHEAD)
        };
        let resume = detect::scan(&buf, from, to, None, rules, &mut |h: Hit| {
            let line = lines.line_at(&buf, base, base + h.offset as u64);
            let offset = usize::try_from(base + h.offset as u64).unwrap_or(usize::MAX);
            hit(Hit { offset, ..h }, line);
        });
        tick(new);
        if let Some(error) = failed {
            return Err(StreamError::Read {
                bytes: outcome.bytes,
                error,
            });
        }
        if eof {
            outcome.lines = lines.total(&buf, base);
            return Ok(outcome);
        }
        let keep_from = to.saturating_sub(detect::LOOKBEHIND).min(resume);
        lines.advance(&buf, base, base + keep_from as u64);
        buf.drain(..keep_from);
        base += keep_from as u64;
        from = resume - keep_from;
        utf8_pending = utf8_pending.min(buf.len());
    }
}

/// Reads until `buf` holds `target` bytes or the stream ends; whether it ended.
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    while buf.len() < target {
        let start = buf.len();
        buf.resize(target, 0);
        match reader.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Ok(true);
            }
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(false)
}

/// Line numbers counted lazily: newlines are counted only up to where something was found, and
/// up to the part of a chunk that is dropped.
#[derive(Default)]
struct LineCounter {
    /// Absolute offset up to which newlines are counted.
    at: u64,
    /// Newlines before `at`.
    newlines: u64,
}

impl LineCounter {
    /// The 1-based line of absolute offset `offset`, within `buf` (which starts at `base`).
    fn line_at(&mut self, buf: &[u8], base: u64, offset: u64) -> u64 {
        let index = |o: u64| {
            usize::try_from(o.saturating_sub(base))
                .unwrap_or(usize::MAX)
                .min(buf.len())
        };
        if offset >= self.at {
            self.newlines += count_newlines(&buf[index(self.at)..index(offset)]);
        } else {
            self.newlines = self
                .newlines
                .saturating_sub(count_newlines(&buf[index(offset)..index(self.at)]));
        }
        self.at = offset;
        self.newlines + 1
    }

    /// Counts up to `offset` (before the bytes before it are dropped).
    fn advance(&mut self, buf: &[u8], base: u64, offset: u64) {
        if offset > self.at {
            self.line_at(buf, base, offset);
        }
    }

    /// The number of lines in the stream, once `buf` holds its end.
    fn total(&mut self, buf: &[u8], base: u64) -> u64 {
        let end = base + buf.len() as u64;
        self.advance(buf, base, end);
        let unterminated = buf.last().is_some_and(|b| *b != b'\n');
        self.newlines + u64::from(unterminated)
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cut_by_chunk_boundaries_are_found_once_on_their_line() {
        // Lines of varying length, so cards fall on and around every chunk boundary.
        let mut text = String::new();
        let mut planted = Vec::new();
        let mut line = 1u64;
        while text.len() < 3 * CHUNK + 5000 {
            let fill = "x".repeat((line as usize * 37) % 300);
            if line.is_multiple_of(7) {
                text.push_str(&format!("{fill} 4111 1111 1111 1111 jane@example.com\n"));
                planted.push(line);
            } else {
                text.push_str(&format!("{fill} 2026-11-22T10:00:00Z 12345\n"));
            }
            line += 1;
        }
        let mut cards = Vec::new();
        let mut emails = 0;
        let mut ticked = 0;
        let outcome = scan_stream(
            text.as_bytes(),
            Rules::default(),
            &mut |h, line| match h.kind.as_str() {
                "card_number" => cards.push(line),
                _ => emails += 1,
            },
            &mut |n| ticked += n,
        )
        .ok();
        assert_eq!(cards, planted);
        assert_eq!(emails, planted.len());
        let outcome = outcome.unwrap_or_default();
        assert_eq!(outcome.bytes, text.len() as u64);
        assert_eq!(ticked, text.len() as u64);
        assert_eq!(outcome.lines, line - 1);
        assert!(!outcome.invalid_utf8);
    }

    #[test]
    fn a_nul_byte_at_the_start_marks_a_binary_stream() {
        let data = b"\x7fELF\x02\x01\x01\0\0\0 4111111111111111";
        let result = scan_stream(&data[..], Rules::default(), &mut |_, _| {}, &mut |_| {});
        assert!(matches!(result, Err(StreamError::Binary)));
    }
}
