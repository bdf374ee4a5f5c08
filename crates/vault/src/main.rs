//! `fieldseal-vault`: the vault service and its operator commands.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use fieldseal_vault::admin::{self, Admin};
use fieldseal_vault::config::Settings;
use fieldseal_vault::forward::Forwarder;
use fieldseal_vault::http;
use fieldseal_vault::store::audit::ExpectedHead;
use fieldseal_vault::vault::Vault;

#[derive(Parser)]
#[command(
    name = "fieldseal-vault",
    version,
    about = "The fieldseal vault: envelopes in, tokens out, reveals by role, every access audited."
)]
struct Cli {
    /// Settings file (TOML). Also FIELDSEAL_CONFIG; FIELDSEAL_* variables override its values.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Who is running the command, named in the audit entries of the changes it makes
    /// (`cli:NAME`). Default: the OS user ($USER, $LOGNAME, else the user of the process's uid).
    #[arg(long, global = true, value_name = "NAME")]
    operator: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, the KEK (a key file outside the data directory, or a
    /// non-extractable key in the PKCS#11 token) unless one exists, and the first keys.
    Init {
        /// Development vault: the key file may be `<data_dir>/master.key`, next to the data.
        #[arg(long)]
        dev: bool,
    },
    /// Serve the HTTP API.
    Serve,
    /// Print the settings in effect (secrets masked).
    Settings,
    /// HPKE key pairs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The key-encryption key (KEK).
    Kek {
        #[command(subcommand)]
        command: KekCommand,
    },
    /// API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Operators: people signing in with a password and a TOTP code.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Callers locked for an anomaly in their reveals.
    Locks {
        #[command(subcommand)]
        command: LocksCommand,
    },
    /// Incident response.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Roles and their permissions.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Write a consistent snapshot of the database (SQLite) to a new file while the vault serves.
    Backup {
        /// The snapshot file to create.
        path: PathBuf,
    },
    /// Replace the database (SQLite) by a snapshot, after checking its audit chain; stop every
    /// vault process first.
    Restore {
        /// The snapshot file.
        path: PathBuf,
        /// A head recorded earlier with `audit head` (SEQ:HASH): refuse a snapshot without it.
        #[arg(long)]
        expect_head: Option<ExpectedHead>,
        /// Restore a snapshot older than a recorded head (rolls back what happened since).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Store a policy file's roles for every node on the database (audited); running nodes take
    /// it up within 5 seconds, ahead of their own policy files.
    Load {
        /// The policy (TOML).
        file: PathBuf,
    },
    /// Print where the policy in force comes from and its roles.
    Show,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List key pairs with their validity and status.
    List,
    /// Make a new primary key; older keys keep opening envelopes until retired.
    Rotate {
        /// Publish the new key now and make it the primary only this many hours later, so that
        /// pages can add its pin first (`keys pins`).
        #[arg(long, default_value_t = 0)]
        ahead_hours: u64,
    },
    /// Every key of the vault (KEK, HPKE, data, fingerprint, deterministic, audit, row keys):
    /// version, created, uses, state (re-encryption progress), where it lives.
    Status,
    /// Make a new data key for new values; serving nodes move stored values to it in the
    /// background (progress in `keys status` and their logs).
    RotateData,
    /// Make a new version of the lookup keys (fingerprint and deterministic-token keys): new
    /// fingerprints, deterministic tokens and subject hashes use it; lookups keep accepting the
    /// older versions.
    RotateLookup,
    /// Print the pins for `load({ pins })`: the RFC 7638 thumbprints of the published keys, as a
    /// JSON array (the keys, one a line, on standard error).
    Pins,
    /// After `retire --now`: check that no page is left sealing to the key. Exits 1, listing
    /// them, if envelopes sealed to it arrived after its retirement (pages with an old key set or
    /// pin: reload them), or if it is not retired yet.
    CheckRetired {
        /// Key id.
        kid: String,
        /// Count only envelopes that arrived from this time on (Unix seconds; e.g. once the
        /// pages were reloaded); default: since the retirement.
        #[arg(long)]
        since: Option<i64>,
        /// A head recorded earlier with `audit head` (SEQ:HASH): fail unless it is still in the
        /// chain (an older copy of the database, or a log cut back to an earlier head, would
        /// otherwise verify and come back clean).
        #[arg(long)]
        expect_head: Option<ExpectedHead>,
    },
    /// Retire a key, expired or not: it leaves the key set at once and stops opening envelopes
    /// after the freshness window (at once with --now). Refused when it is valid now and no other
    /// key is (a next key made ahead does not count before its not-before time): rotate first.
    Retire {
        /// Key id.
        kid: String,
        /// Stop opening envelopes at once (a compromised key).
        #[arg(long)]
        now: bool,
    },
}

#[derive(Subcommand)]
enum KekCommand {
    /// Rewrap every key under a new KEK (a key file, or a key in a PKCS#11 token, made if
    /// absent) while the vault serves; run it again if it was interrupted. Then point the
    /// settings at the new KEK, restart the nodes, and destroy the old KEK.
    Rotate {
        /// The new KEK's provider: file, env (FIELDSEAL_NEW_MASTER_KEY) or pkcs11.
        #[arg(long = "to")]
        provider: fieldseal_vault::config::KekKind,
        /// file: the new key file (outside the data directory).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
        /// pkcs11: the module (default: the current one).
        #[arg(long)]
        pkcs11_module: Option<PathBuf>,
        /// pkcs11: the token label (default: the current one).
        #[arg(long)]
        pkcs11_token: Option<String>,
        /// pkcs11: the new key's label.
        #[arg(long)]
        pkcs11_key_label: Option<String>,
        /// pkcs11: the PIN file (default: the current one, else FIELDSEAL_PKCS11_PIN).
        #[arg(long)]
        pkcs11_pin_file: Option<PathBuf>,
        /// Pause between two rewraps, in milliseconds (spreads the load on a shared HSM).
        #[arg(long, default_value_t = 0)]
        pause_ms: u64,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create an API key for a role; the key is printed once.
    Create {
        /// Role from the policy.
        #[arg(long)]
        role: String,
        /// Free text label.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the key stops authenticating (no expiry by default).
        #[arg(long)]
        expires_in_days: Option<u64>,
        /// Bind the key to this client certificate (PEM): it then authenticates only on a
        /// mutual-TLS connection presenting it (`tls_client_ca_file`).
        #[arg(long)]
        client_cert: Option<PathBuf>,
    },
    /// List API keys (ids, roles, status; never secrets).
    List,
    /// Revoke an API key, or every live key of a role (`--role`, an incident).
    Revoke {
        /// Key id (the 12 hex characters after fsk_).
        #[arg(required_unless_present = "role", conflicts_with = "role")]
        id: Option<String>,
        /// Revoke every live key of this role.
        #[arg(long)]
        role: Option<String>,
    },
    /// Give an API key a new secret (printed once); the current one keeps working for the
    /// overlap.
    Rotate {
        /// Key id (the 12 hex characters after fsk_).
        id: String,
        /// Hours the current secret keeps authenticating (0: it stops now).
        #[arg(long, default_value_t = 24)]
        overlap_hours: u64,
    },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Enrol an operator for a role; its password and TOTP enrolment URI (otpauth://) are
    /// printed once.
    Add {
        /// Name: 1 to 64 of a-z, 0-9, '.', '_', '-'.
        name: String,
        /// Role from the policy.
        #[arg(long)]
        role: String,
    },
    /// List operators (names, roles, status; never secrets).
    List,
    /// Disable an operator: no sign-in, its sessions end.
    Disable {
        /// Operator name.
        name: String,
    },
    /// Enable a disabled operator again.
    Enable {
        /// Operator name.
        name: String,
    },
    /// Lock an operator now (an incident): no sign-in, its sessions refused, until `operator
    /// reset`.
    Lock {
        /// Operator name.
        name: String,
    },
    /// Give an operator a new password and TOTP secret (printed once); lifts a lock, ends its
    /// sessions.
    Reset {
        /// Operator name.
        name: String,
    },
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// Who revealed which tokens (plain, masked or refused, with the purpose and from where) and
    /// which keys and operators were active between two times, from the audit log (audited).
    Report {
        /// Start, Unix seconds.
        #[arg(long)]
        from: i64,
        /// End, Unix seconds (included).
        #[arg(long)]
        to: i64,
        /// JSON instead of a readable summary.
        #[arg(long)]
        json: bool,
        /// A head recorded earlier with `audit head` (SEQ:HASH): fail unless it is still in the
        /// chain (an older copy of the database, or a log cut back to an earlier head, would
        /// otherwise verify and come back clean).
        #[arg(long)]
        expect_head: Option<ExpectedHead>,
    },
}

#[derive(Subcommand)]
enum LocksCommand {
    /// The callers whose reveals are locked, since when and why.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lock a caller's reveals by hand (audited), as the anomaly detector does: `423 locked`
    /// until unlocked; it still tokenizes.
    Lock {
        /// `apikey:ID` or `operator:NAME`.
        caller: String,
        /// Why (in the audit log and `locks list`).
        #[arg(long, default_value = "suspected")]
        reason: String,
    },
    /// Lift a caller's reveal lock (audited): `apikey:ID` or `operator:NAME`.
    Unlock {
        /// The caller, as `locks list` and the audit log name it.
        caller: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry's hash and MAC and the anchored head; name the first broken entry.
    Verify {
        /// A head recorded earlier with `audit head` (SEQ:HASH): fail unless it is still in the
        /// chain (catches a restored older copy of the database).
        #[arg(long)]
        expect_head: Option<ExpectedHead>,
    },
    /// Print the anchored head (SEQ:HASH), checked, for an operator or a SIEM to record outside
    /// the database.
    Head,
    /// Write the log as JSON lines (for a SIEM).
    Export {
        /// Output file; standard output by default.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only entries after this sequence number, not a time (each entry carries its `seq`: a
        /// pipeline resumes after the last one it has).
        #[arg(long, visible_alias = "since", default_value_t = 0)]
        after: i64,
        /// Keep going: write entries as they are appended (checked every second) until stopped.
        #[arg(long)]
        follow: bool,
    },
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FIELDSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if settings.log_format == "text" {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> ExitCode {
    // A panic message can quote the data being processed: report only where it happened.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map_or_else(|| "unknown location".to_owned(), ToString::to_string);
        eprintln!("fieldseal-vault: internal error (panic) at {at}");
        tracing::error!(location = %at, "panic");
    }));
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fieldseal-vault: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Who runs the command: `--operator`, else the OS user.
fn cli_operator(flag: Option<String>) -> Result<String> {
    let name = flag
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
        .or_else(os_user)
        .ok_or("cannot tell who runs the command: pass --operator NAME")?;
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if !ok {
        return Err(format!(
            "invalid operator name {name:?}: 1 to 64 of letters, digits, '.', '_', '@', '-'"
        )
        .into());
    }
    Ok(name)
}

/// The name of the user the process runs as (from /etc/passwd), or `uid:N`.
fn os_user() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let name = passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid.to_string()).then(|| name.to_owned())
        });
        Some(name.unwrap_or_else(|| format!("uid-{uid}")))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    admin::set_cli_operator(&cli_operator(cli.operator)?);
    match cli.command {
        Command::Init { dev } => init(settings, dev).await,
        Command::Serve => serve(settings).await,
        Command::Settings => {
            println!("{settings:#?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys_cmd(settings, command).await,
        Command::Kek { command } => kek_cmd(settings, command).await,
        Command::Apikey { command } => apikey_cmd(settings, command).await,
        Command::Operator { command } => operator_cmd(settings, command).await,
        Command::Audit { command } => audit_cmd(settings, command).await,
        Command::Locks { command } => locks_cmd(settings, command).await,
        Command::Incident { command } => incident_cmd(settings, command).await,
        Command::Policy { command } => policy_cmd(settings, command).await,
        Command::Backup { path } => {
            let head = fieldseal_vault::backup::backup(&settings, &path).await?;
            println!("{head}");
            eprintln!(
                "snapshot written to {}; its audit chain verifies up to head {head}",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            path,
            expect_head,
            force,
        } => {
            let r = fieldseal_vault::backup::restore(&settings, &path, expect_head, force).await?;
            if let Some(why) = &r.live_unchecked {
                eprintln!("warning: the database being replaced could not be checked ({why})");
            }
            for h in &r.forced_over {
                eprintln!("warning: restored over the recorded head {h} (--force)");
            }
            println!("{}", r.head);
            eprintln!("restored {}; audit head {}", path.display(), r.head);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn policy_cmd(settings: Settings, command: PolicyCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        PolicyCommand::Load { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let described = admin.store_policy(&text).await?;
            println!("stored policy {described}");
        }
        PolicyCommand::Show => {
            let policy = admin.policy().await?;
            println!("{}", policy.describe());
            for role in policy.role_names() {
                println!("  {role}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn init(settings: Settings, dev: bool) -> Result<ExitCode> {
    let done = if dev {
        admin::init_dev(&settings).await?
    } else {
        admin::init(&settings).await?
    };
    println!("initialized vault in {}", settings.data_dir.display());
    println!("  database:   {}", done.database);
    println!("  master key: {}", done.master_key);
    println!("  first key:  {}", done.first_key);
    println!("next: `fieldseal-vault apikey create --role checkout`, then `fieldseal-vault serve`");
    Ok(ExitCode::SUCCESS)
}

async fn serve(settings: Settings) -> Result<ExitCode> {
    init_logging(&settings);
    tracing::info!(settings = ?settings, "starting");
    let listen = settings.listen;
    let metrics_listen = settings.metrics_listen;
    let scheme = if settings.tls_files().is_some() {
        "https"
    } else {
        "http"
    };
    let vault = match Vault::open(settings).await {
        Ok(v) => Arc::new(v),
        Err(e) => {
            tracing::error!(error = %e, "refusing to start");
            return Err(format!("refusing to start: {e}").into());
        }
    };
    // The audit trail streamed to a syslog receiver, only if asked for; stopped after the
    // listener (whose last entries it sends too).
    let forwarder = match Forwarder::from_settings(
        vault.store().clone(),
        vault.settings(),
        Arc::clone(vault.metrics()),
    ) {
        Ok(f) => f.map(|f| {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(f.run(async {
                let _ = stopped.await;
            }));
            (stop, task)
        }),
        Err(e) => {
            tracing::error!(error = %e, "refusing to start");
            return Err(format!("refusing to start: {e}").into());
        }
    };
    let listener = http::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "listening");
    println!("fieldseal-vault listening on {scheme}://{addr}");
    // Metrics on a listener of their own, only if asked for.
    let metrics = match metrics_listen {
        Some(at) => {
            let listener = http::bind(at).await?;
            let addr = listener.local_addr()?;
            tracing::info!(address = %addr, "metrics listening");
            println!("fieldseal-vault metrics on http://{addr}/metrics");
            Some(tokio::spawn(http::serve_metrics(
                listener,
                Arc::clone(&vault),
            )))
        }
        None => None,
    };
    std::io::stdout().flush()?;
    let served = http::serve(listener, vault, http::shutdown_signal()).await;
    if let Some((stop, task)) = forwarder {
        let _ = stop.send(());
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the syslog forwarder failed");
        }
    }
    served?;
    if let Some(task) = metrics {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn locks_cmd(settings: Settings, command: LocksCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        LocksCommand::List { json } => {
            let locks = admin.reveal_locks().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&locks)?);
            } else if locks.is_empty() {
                println!("no caller is locked");
            } else {
                println!("{:<40} {:>12} {:>8}  REASON", "CALLER", "SINCE", "ENTRY");
                for (caller, lock) in &locks {
                    println!(
                        "{caller:<40} {:>12} {:>8}  {}",
                        lock.since, lock.seq, lock.reason
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        LocksCommand::Lock { caller, reason } => {
            if !fieldseal_vault::locks::valid_caller(&caller) {
                return Err(
                    format!("{caller:?} is not a caller: apikey:ID or operator:NAME").into(),
                );
            }
            if admin.lock(&caller, &reason).await? {
                println!("locked {caller}: its reveals are refused until `locks unlock {caller}`");
            } else {
                println!("{caller} is locked already");
            }
            Ok(ExitCode::SUCCESS)
        }
        LocksCommand::Unlock { caller } => {
            if !fieldseal_vault::locks::valid_caller(&caller) {
                return Err(
                    format!("{caller:?} is not a caller: apikey:ID or operator:NAME").into(),
                );
            }
            if admin.unlock(&caller).await? {
                println!("unlocked {caller}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{caller} is not locked");
                Ok(ExitCode::from(1))
            }
        }
    }
}

async fn incident_cmd(settings: Settings, command: IncidentCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        IncidentCommand::Report {
            from,
            to,
            json,
            expect_head,
        } => {
            if from > to {
                return Err("--from is after --to".into());
            }
            let report = admin.incident_report(from, to, expect_head).await?;
            let broken = match report.log_broken_at {
                Some(seq) => format!(
                    "THE AUDIT LOG IS BROKEN at entry {seq}: entries may have been edited or \
                     deleted, this report cannot be trusted (`audit verify`)"
                ),
                None => String::new(),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            if !report.log_intact {
                eprintln!("{broken}");
                return Ok(ExitCode::FAILURE);
            }
            if json {
                return Ok(ExitCode::SUCCESS);
            }
            let plain = report.reveals.iter().filter(|r| r.outcome == "plain");
            println!(
                "incident report {from}..={to}: {} reveals, {} in the clear; {} actors; audit \
                 log verified ({} entries)",
                report.reveals.len(),
                plain.count(),
                report.actors.len(),
                report.log_verified
            );
            println!("\nactors (first, last, entries by action):");
            for (actor, a) in &report.actors {
                let actions: Vec<String> =
                    a.actions.iter().map(|(k, n)| format!("{k} {n}")).collect();
                println!(
                    "  {actor:<28} {:>12} {:>12}  {}",
                    a.first,
                    a.last,
                    actions.join(", ")
                );
            }
            println!("\nreveals (seq, time, who, outcome, kind, token, purpose, from):");
            let dash = String::from("-");
            for r in &report.reveals {
                println!(
                    "  {:>8} {:>12} {:<28} {:<9} {:<12} {:<28} {:<24} {}",
                    r.seq,
                    r.at,
                    r.actor,
                    r.outcome,
                    r.kind.as_ref().unwrap_or(&dash),
                    r.token.as_ref().unwrap_or(&dash),
                    r.purpose.as_ref().unwrap_or(&dash),
                    r.from.as_ref().unwrap_or(&dash)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn keys_cmd(settings: Settings, command: KeysCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        KeysCommand::List => {
            println!(
                "{:<24} {:<10} {:>12} {:>12}",
                "KID", "STATUS", "NOT_BEFORE", "EXPIRES"
            );
            for k in admin.keys().await? {
                println!(
                    "{:<24} {:<10} {:>12} {:>12}",
                    k.kid, k.status, k.not_before, k.expires_at
                );
            }
        }
        KeysCommand::Rotate { ahead_hours } => {
            let kid = admin
                .rotate_key_ahead(ahead_hours.saturating_mul(3600))
                .await?;
            if ahead_hours > 0 {
                println!(
                    "next key {kid}, published now, primary in {ahead_hours} h; add its pin (`keys pins`) to your pages before then"
                );
            } else {
                println!("new primary key {kid}; older keys keep opening envelopes until retired");
            }
        }
        KeysCommand::Status => {
            println!(
                "{:<14} {:<34} {:>3} {:>12} {:>12} {:>12}  {:<40} WHERE",
                "KIND", "ID", "VER", "CREATED", "LAST USED", "USES", "STATE"
            );
            let dash = || "-".to_owned();
            for k in admin.inventory().await? {
                println!(
                    "{:<14} {:<34} {:>3} {:>12} {:>12} {:>12}  {:<40} {}",
                    k.kind,
                    k.id,
                    k.version,
                    k.created_at.map_or_else(dash, |t| t.to_string()),
                    k.last_used.map_or_else(dash, |t| t.to_string()),
                    k.uses.map_or_else(dash, |u| u.to_string()),
                    k.state,
                    k.lives
                );
            }
        }
        KeysCommand::RotateLookup => {
            let v = admin.rotate_lookup_keys().await?;
            println!(
                "lookup keys version {v} made: serving nodes load it within seconds; new \
                 fingerprints (fp{v}_...), deterministic tokens and subject hashes \
                 use it, and lookups keep accepting the older versions"
            );
        }
        KeysCommand::RotateData => {
            let id = admin.rotate_data_key().await?;
            println!(
                "data key {id} made: new values use it; serving nodes move stored values to it in the background (`keys status`)"
            );
        }
        KeysCommand::Pins => {
            let keys = admin.pins().await?;
            for k in &keys {
                eprintln!("{} {:<24} {}", k.thumbprint, k.kid, k.status);
            }
            let pins: Vec<&str> = keys.iter().map(|k| k.thumbprint.as_str()).collect();
            println!("{}", serde_json::to_string(&pins)?);
        }
        KeysCommand::CheckRetired {
            kid,
            since,
            expect_head,
        } => {
            let check = admin
                .check_retired(&kid, since.unwrap_or(i64::MIN), expect_head)
                .await?;
            if let Some(seq) = check.log_broken_at {
                eprintln!(
                    "THE AUDIT LOG IS BROKEN at entry {seq}: entries may have been edited or \
                     deleted, this check cannot be trusted (`audit verify`)"
                );
            }
            match check.retired_at {
                None => println!("{kid} has not been retired (status {})", check.status),
                Some(at) => println!("{kid}: {}, retired at {at}", check.status),
            }
            for s in &check.sealed_since {
                println!(
                    "  sealed to it at {} by {} from {} (audit entry {})",
                    s.at, s.actor, s.from, s.seq
                );
            }
            if !check.clear() {
                return Ok(ExitCode::from(1));
            }
            println!("no page has sealed to {kid} since its retirement; it opens nothing");
        }
        KeysCommand::Retire { kid, now } => {
            if now {
                admin.retire_key_now(&kid).await?;
                println!("retired {kid}: it opens nothing from now on");
            } else {
                admin.retire_key(&kid).await?;
                println!(
                    "retired {kid}: unpublished now, it opens envelopes for {} s more",
                    settings.freshness_window_secs
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn kek_cmd(settings: Settings, command: KekCommand) -> Result<ExitCode> {
    match command {
        KekCommand::Rotate {
            provider,
            master_key_file,
            pkcs11_module,
            pkcs11_token,
            pkcs11_key_label,
            pkcs11_pin_file,
            pause_ms,
        } => {
            let target = admin::KekTarget {
                provider: Some(provider),
                master_key_file,
                pkcs11_module,
                pkcs11_token,
                pkcs11_key_label,
                pkcs11_pin_file,
            };
            let mut progress = |what: &str| {
                println!("rewrapped {what}");
                let _ = std::io::stdout().flush();
            };
            let (to, report) = admin::rotate_kek(
                &settings,
                &target,
                std::time::Duration::from_millis(pause_ms),
                &mut progress,
            )
            .await?;
            println!(
                "every key is under {to}: {} rewrapped now, {} already",
                report.rewrapped.len(),
                report.already
            );
            if !report.skipped.is_empty() {
                println!(
                    "left as they were (failing their integrity check): {}",
                    report.skipped.join(", ")
                );
            }
            println!(
                "next: point the settings at the new KEK, restart every node, then destroy the old KEK"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn apikey_cmd(settings: Settings, command: ApikeyCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        ApikeyCommand::Create {
            role,
            label,
            expires_in_days,
            client_cert,
        } => {
            let cert = client_cert
                .map(|path| fieldseal_vault::tls::certificate_sha256(&path))
                .transpose()?;
            let key = admin
                .create_bound_api_key(&role, &label, expires_in_days, cert)
                .await?;
            println!("{}", key.full);
            eprintln!(
                "API key {} for role {role} created; it is shown only this once",
                key.id
            );
        }
        ApikeyCommand::List => {
            println!(
                "{:<14} {:<12} {:<10} {:>12} {:>12} LABEL",
                "ID", "ROLE", "STATUS", "CREATED", "LAST USED"
            );
            for k in admin.api_keys().await? {
                let r = &k.record;
                let used = r
                    .last_used_at
                    .map_or_else(|| "never".to_owned(), |t| t.to_string());
                println!(
                    "{:<14} {:<12} {:<10} {:>12} {:>12} {}",
                    r.id, r.role, k.status, r.created_at, used, r.label
                );
            }
        }
        ApikeyCommand::Revoke { id: Some(id), .. } => {
            admin.revoke_api_key(&id).await?;
            println!("revoked {id}");
        }
        ApikeyCommand::Revoke {
            role: Some(role), ..
        } => {
            let (ids, tampered) = admin.revoke_role(&role).await?;
            println!(
                "revoked {} key{} of role {role}{}{}",
                ids.len(),
                if ids.len() == 1 { "" } else { "s" },
                if ids.is_empty() { "" } else { ": " },
                ids.join(" ")
            );
            if !tampered.is_empty() {
                eprintln!(
                    "not revoked, their rows fail the integrity check (they do not \
                     authenticate; see `apikey list`): {}",
                    tampered.join(" ")
                );
            }
        }
        ApikeyCommand::Revoke { .. } => return Err("name a key id or --role".into()),
        ApikeyCommand::Rotate { id, overlap_hours } => {
            let key = admin.rotate_api_key(&id, overlap_hours).await?;
            println!("{}", key.full);
            eprintln!(
                "API key {id} has a new secret, shown only this once; the previous one works for \
                 {overlap_hours} more hours"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_enrolment(e: &fieldseal_vault::operators::Enrolment) {
    println!("password: {}", e.password.expose());
    println!("totp: {}", e.totp_uri.as_str());
}

async fn operator_cmd(settings: Settings, command: OperatorCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        OperatorCommand::Add { name, role } => {
            let e = admin.add_operator(&name, &role).await?;
            print_enrolment(&e);
            eprintln!(
                "operator {name} (role {role}) enrolled; the password and the TOTP URI (add it to \
                 an authenticator app) are shown only this once"
            );
        }
        OperatorCommand::List => {
            println!(
                "{:<24} {:<12} {:<10} {:>12} {:>8}",
                "NAME", "ROLE", "STATUS", "CREATED", "FAILURES"
            );
            for o in admin.operators().await? {
                let r = &o.record;
                println!(
                    "{:<24} {:<12} {:<10} {:>12} {:>8}",
                    r.name, r.role, o.status, r.created_at, r.failed_attempts
                );
            }
        }
        OperatorCommand::Disable { name } => {
            admin.disable_operator(&name).await?;
            println!("disabled {name}; its sessions have ended");
        }
        OperatorCommand::Lock { name } => {
            admin.lock_operator(&name).await?;
            println!(
                "locked {name}: no sign-in, its sessions refused, until `operator reset {name}`"
            );
        }
        OperatorCommand::Enable { name } => {
            admin.enable_operator(&name).await?;
            println!("enabled {name}");
        }
        OperatorCommand::Reset { name } => {
            let e = admin.reset_operator(&name).await?;
            print_enrolment(&e);
            eprintln!(
                "operator {name} has a new password and TOTP secret, shown only this once; its \
                 sessions have ended and any lock is lifted"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit_cmd(settings: Settings, command: AuditCommand) -> Result<ExitCode> {
    let admin = Admin::open(&settings).await?;
    match command {
        AuditCommand::Verify { expect_head } => {
            let result = admin.verify_audit(expect_head).await?;
            match result.broken {
                Some(broken) => {
                    println!(
                        "audit chain BROKEN at entry {}: {} ({} entries verified before it)",
                        broken.seq, broken.reason, result.verified
                    );
                    Ok(ExitCode::FAILURE)
                }
                None => {
                    println!(
                        "audit chain intact: {} entries verified up to the anchored head",
                        result.verified
                    );
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        AuditCommand::Head => {
            println!("{}", admin.audit_head().await?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export {
            output,
            after,
            follow,
        } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let (count, mut last) = admin.export_audit(after, &mut out).await?;
            // Following: every entry once, in order, as it is appended (a line per entry,
            // flushed), until the process is stopped.
            if follow {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    // A database that stalls or goes away for a while stops nothing: retried.
                    match admin.export_audit(last, &mut out).await {
                        Ok((_, seq)) => last = seq,
                        Err(e) => {
                            eprintln!("audit export: {e}; retrying in 5 s after entry {last}");
                            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        }
                    }
                }
            }
            if output.is_some() {
                eprintln!("exported {count} audit entries");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
