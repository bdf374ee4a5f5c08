//! Shared helpers for the data-driven tests: where the published vectors are, hex, and how a
//! missing vector folder is reported.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use libtest_mimic::{Failed, Trial};

/// `../shared/vectors/` seen from the repository root, or `FIELDSEAL_VECTORS_DIR`.
pub fn vectors_dir() -> PathBuf {
    match std::env::var_os("FIELDSEAL_VECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Reads one published vector file. When it is missing, returns the trial that reports it: a
/// failure under CI, otherwise an ignored test plus a notice on stderr.
pub fn load(name: &str) -> Result<serde_json::Value, Trial> {
    let path = vectors_dir().join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(serde_json::from_str(&text).expect("vector file is JSON")),
        Err(err) => {
            let msg = format!(
                "published vectors not found at {} ({err}); set FIELDSEAL_VECTORS_DIR",
                path.display()
            );
            if in_ci() {
                Err(Trial::test(format!("vectors/{name}/present"), move || {
                    Err(Failed::from(msg))
                }))
            } else {
                eprintln!("NOTICE: SKIPPED {name}: {msg}");
                Err(
                    Trial::test(format!("vectors/{name}/present (skipped)"), || Ok(()))
                        .with_ignored_flag(true),
                )
            }
        }
    }
}

/// Decodes a hex string from a vector.
pub fn hex(v: &serde_json::Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// Fails a trial with a message unless `cond` holds.
pub fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(Failed::from(what()))
    }
}

/// Fails a trial unless `got == want`, showing both in hex.
pub fn check_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), Failed> {
    check(got == want, || {
        format!(
            "{what}: got {}, want {}",
            hex::encode(got),
            hex::encode(want)
        )
    })
}
