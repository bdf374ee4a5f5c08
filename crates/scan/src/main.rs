//! The `fieldseal` command: `fieldseal scan` finds card numbers and personal data stored in the
//! clear in files, SQLite files and PostgreSQL databases.

use clap::{Parser, Subcommand, ValueEnum};
use fieldseal_scan::{
    EXIT_INCOMPLETE, EXIT_USAGE, Options, Progress, Target, detect, exit_status, fail_on_kinds,
    scan,
};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// fieldseal: finds card numbers and personal data stored in the clear.
#[derive(Parser)]
#[command(name = "fieldseal", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scans directories, files, SQLite files and PostgreSQL databases.
    ///
    /// Exit status: 0 complete and nothing `--fail-on` names was found; 1 something `--fail-on`
    /// names was found; 2 the scan is incomplete (a file, table or database could not be read:
    /// see the report's problems); 3 both; 64 a wrong command line.
    Scan(ScanArgs),
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Directories or files (text, `.gz`, SQLite), `sqlite:PATH`, or `postgres://user@host/db`.
    #[arg(required = true)]
    targets: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    /// Exit with status 1 when any of these kinds is found: pan, email, phone, ssn, iban, any
    /// (comma-separated).
    #[arg(long, value_delimiter = ',')]
    fail_on: Vec<String>,
    /// Rows read per table (the first N the database returns); all rows when absent.
    #[arg(long)]
    sample: Option<u64>,
    /// Worker threads for files; every core when absent.
    #[arg(long)]
    threads: Option<usize>,
    /// Also report card numbers that fail the Luhn check but have a brand that issues such
    /// numbers (UnionPay), as low confidence.
    #[arg(long)]
    low_confidence: bool,
    /// Progress on standard error: only when it is a terminal (auto), always, or never.
    #[arg(long, value_enum, default_value_t = When::Auto)]
    progress: When,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum When {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Scan(args) => ExitCode::from(run_scan(args)),
    }
}

fn run_scan(args: ScanArgs) -> u8 {
    let mut fail_on = Vec::new();
    for name in &args.fail_on {
        match fail_on_kinds(name) {
            Some(kinds) => fail_on.extend(kinds),
            None => {
                eprintln!(
                    "error: --fail-on {name}: not a kind (pan, email, phone, ssn, iban, any)"
                );
                return EXIT_USAGE;
            }
        }
    }
    let mut options = Options {
        rules: detect::Rules {
            low_confidence: args.low_confidence,
        },
        sample: args.sample,
        ..Options::default()
    };
    if let Some(n) = args.threads {
        options.threads = n.max(1);
    }
    let targets: Vec<Target> = args.targets.iter().map(|t| Target::parse(t)).collect();
    let progress = Progress::default();
    let show = match args.progress {
        When::Always => true,
        When::Never => false,
        When::Auto => std::io::stderr().is_terminal(),
    };
    let done = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        if show {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    eprint!("\r\x1b[2Kscanning: {}", progress.line());
                    std::thread::sleep(Duration::from_millis(250));
                }
                eprint!("\r\x1b[2K");
            });
        }
        let report = scan(&targets, &options, &progress);
        done.store(true, Ordering::Relaxed);
        report
    });
    let text = match args.format {
        Format::Text => report.to_text(),
        Format::Json => report.to_json() + "\n",
    };
    let written = match &args.output {
        Some(path) => std::fs::write(path, text.as_bytes()),
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    };
    if let Err(e) = written {
        eprintln!("error: cannot write the report: {e}");
        return exit_status(&report, &fail_on) | EXIT_INCOMPLETE;
    }
    exit_status(&report, &fail_on)
}
