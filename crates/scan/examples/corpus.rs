//! The labelled corpus: `generate DIR MB [SEED]` writes one, `evaluate DIR` scans it and prints
//! recall and precision per kind, brand and spelling (`--json` for JSON).

#![allow(clippy::print_stdout)]

use fieldseal_scan::corpus;
use fieldseal_scan::detect::Rules;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", dir, mb, rest @ ..] => {
            let seed = rest.first().and_then(|s| s.parse().ok()).unwrap_or(1);
            match mb.parse::<u64>() {
                Ok(mb) => corpus::generate(&PathBuf::from(dir), mb * 1_000_000, seed).map(|s| {
                    println!(
                        "{} files, {} bytes, {} values planted, {} look-alikes",
                        s.files, s.bytes, s.planted, s.lookalikes
                    );
                }),
                Err(e) => Err(std::io::Error::other(format!("MB: {e}"))),
            }
        }
        ["evaluate", dir, rest @ ..] => corpus::evaluate(&PathBuf::from(dir), Rules::default())
            .map(|e| {
                if rest.contains(&"--json") {
                    println!("{}", serde_json::to_string_pretty(&e).unwrap_or_default());
                } else {
                    print!("{}", e.to_text());
                }
            }),
        _ => Err(std::io::Error::other(
            "usage: corpus generate DIR MB [SEED] | corpus evaluate DIR [--json]",
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corpus: {e}");
            ExitCode::FAILURE
        }
    }
}
