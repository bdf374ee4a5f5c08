//! Walking directories and scanning their files on every core: plain text of any kind (logs, JSON,
//! NDJSON, CSV), `.gz` files (recognised by their magic bytes), and SQLite files met on the way
//! (scanned as databases). Symbolic links are never followed (one inside the root leads to
//! something the walk reaches anyway, one outside is out of scope); sockets, pipes and devices are
//! skipped; binary files are skipped and counted.

use crate::db;
use crate::detect::Rules;
use crate::report::{Location, Place, ProblemKind, Tally};
use crate::stream::{self, StreamError};
use crate::{Options, Progress};
use flate2::read::MultiGzDecoder;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// The first bytes of every SQLite 3 database file.
pub const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
/// The first bytes of a gzip member.
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// Files waiting for a worker; `None` once the walk is over.
struct Queue {
    items: Mutex<(VecDeque<PathBuf>, bool)>,
    ready: Condvar,
}

impl Queue {
    fn push(&self, path: PathBuf) {
        if let Ok(mut q) = self.items.lock() {
            q.0.push_back(path);
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        if let Ok(mut q) = self.items.lock() {
            q.1 = true;
            self.ready.notify_all();
        }
    }

    fn pop(&self) -> Option<PathBuf> {
        let mut q = self.items.lock().ok()?;
        loop {
            if let Some(p) = q.0.pop_front() {
                return Some(p);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).ok()?;
        }
    }
}

/// Scans the files under each of `roots` (a root may be a single file) with `threads` workers.
pub fn scan_roots(roots: &[PathBuf], options: &Options, progress: &Progress) -> Tally {
    let queue = Queue {
        items: Mutex::new((VecDeque::new(), false)),
        ready: Condvar::new(),
    };
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..options.threads.max(1))
            .map(|_| {
                let queue = &queue;
                scope.spawn(move || {
                    let mut mine = Tally::default();
                    while let Some(path) = queue.pop() {
                        scan_file(&path, options, &mut mine, progress);
                        progress.file_done();
                    }
                    mine
                })
            })
            .collect();
        for root in roots {
            walk(root, &queue, &mut tally);
        }
        queue.close();
        for w in workers {
            match w.join() {
                Ok(t) => tally.merge(t),
                Err(_) => tally.problem(
                    "(worker)",
                    ProblemKind::Unreadable,
                    "a worker thread stopped unexpectedly".to_owned(),
                ),
            }
        }
    });
    tally
}

/// Lists `root` depth first, queueing regular files.
fn walk(root: &Path, queue: &Queue, tally: &mut Tally) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                io_problem(tally, &path, &e);
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            tally.stats.symlinks_skipped += 1;
        } else if ft.is_file() {
            queue.push(path);
        } else if ft.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(e) => e,
                Err(e) => {
                    io_problem(tally, &path, &e);
                    continue;
                }
            };
            let mut children: Vec<PathBuf> = Vec::new();
            for entry in entries {
                match entry {
                    Ok(e) => children.push(e.path()),
                    Err(e) => io_problem(tally, &path, &e),
                }
            }
            // Sorted, and reversed for the stack: files are visited in name order.
            children.sort();
            stack.extend(children.into_iter().rev());
        } else {
            tally.stats.special_skipped += 1;
        }
    }
}

/// Records an I/O error on `path`.
pub(crate) fn io_problem(tally: &mut Tally, path: &Path, e: &io::Error) {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => ProblemKind::NotFound,
        io::ErrorKind::PermissionDenied => ProblemKind::PermissionDenied,
        _ => ProblemKind::Unreadable,
    };
    tally.problem(path.display().to_string(), kind, e.to_string());
}

/// Scans one file: as a SQLite database, as gzip-compressed text or as text.
fn scan_file(path: &Path, options: &Options, tally: &mut Tally, progress: &Progress) {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return io_problem(tally, path, &e),
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let head = match reader.fill_buf() {
        Ok(h) => h,
        Err(e) => return io_problem(tally, path, &e),
    };
    if head.starts_with(SQLITE_MAGIC) {
        drop(reader);
        tally.stats.files += 1;
        return db::scan_sqlite(path, options, tally, progress);
    }
    let location = Location::File {
        path: path.display().to_string(),
    };
    let gzip = head.starts_with(GZIP_MAGIC);
    let result = if gzip {
        scan_text(
            MultiGzDecoder::new(reader),
            &location,
            options.rules,
            tally,
            progress,
        )
    } else {
        scan_text(reader, &location, options.rules, tally, progress)
    };
    match result {
        Ok(()) => {}
        Err(StreamError::Binary) => tally.stats.binary_skipped += 1,
        Err(StreamError::Read { bytes, error }) => {
            tally.stats.files += 1;
            tally.stats.bytes += bytes;
            let corrupt = gzip
                && matches!(
                    error.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::InvalidInput
                        | io::ErrorKind::InvalidData
                );
            let (kind, message) = if corrupt {
                (
                    ProblemKind::CorruptGzip,
                    format!(
                        "gzip data is truncated or corrupt after {bytes} bytes ({error}); the part before was scanned"
                    ),
                )
            } else {
                (
                    ProblemKind::Unreadable,
                    format!(
                        "read failed after {bytes} bytes ({error}); the part before was scanned"
                    ),
                )
            };
            tally.problem(location.to_string(), kind, message);
        }
    }
}

/// Scans a text stream, recording findings with their lines.
fn scan_text(
    reader: impl io::Read,
    location: &Location,
    rules: Rules,
    tally: &mut Tally,
    progress: &Progress,
) -> Result<(), StreamError> {
    // Findings before a read error are kept.
    let outcome = stream::scan_stream(
        reader,
        rules,
        &mut |hit, line| tally.add(location, Place::Line(line), hit),
        &mut |n| progress.bytes(n),
    )?;
    tally.stats.files += 1;
    tally.stats.bytes += outcome.bytes;
    tally.stats.invalid_utf8 += u64::from(outcome.invalid_utf8);
    Ok(())
}
