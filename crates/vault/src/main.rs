//! `fieldseal-vault`: the vault service and its operator commands.
#![allow(clippy::print_stdout)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use fieldseal_vault::audit::verify_chain;
use fieldseal_vault::config::Settings;
use fieldseal_vault::keys::{self, KeyError, LocalKek};
use fieldseal_vault::policy::Policy;
use fieldseal_vault::store::{ApiKeyRecord, Store};
use fieldseal_vault::vault::{self, Vault, now};
use fieldseal_vault::{apikeys, http};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, the master key (unless one is given) and the first keys.
    Init,
    /// Serve the HTTP API.
    Serve,
    /// Print the settings in effect (secrets masked).
    Settings,
    /// HPKE key pairs.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List key pairs with their validity and status.
    List,
    /// Make a new primary key; older keys keep opening envelopes until retired.
    Rotate,
    /// Retire a key: it stops opening envelopes and leaves the key set.
    Retire {
        /// Key id.
        kid: String,
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
    },
    /// List API keys (ids, roles, status; never secrets).
    List,
    /// Revoke an API key.
    Revoke {
        /// Key id (the 12 hex characters after fsk_).
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; name the first broken entry.
    Verify,
    /// Write the log as JSON lines (for a SIEM).
    Export {
        /// Output file; standard output by default.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Only entries after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
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

async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Init => init(settings).await,
        Command::Serve => serve(settings).await,
        Command::Settings => {
            println!("{settings:#?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys_cmd(settings, command).await,
        Command::Apikey { command } => apikey_cmd(settings, command).await,
        Command::Audit { command } => audit_cmd(settings, command).await,
    }
}

fn lifetime(settings: &Settings) -> i64 {
    i64::try_from(settings.key_lifetime_days.saturating_mul(86_400)).unwrap_or(i64::MAX / 2)
}

async fn init(settings: Settings) -> Result<ExitCode> {
    create_private_dir(&settings.data_dir)?;
    let store = vault::open_store(&settings).await?;
    if keys::is_initialized(&store).await? {
        return Err(KeyError::AlreadyInitialized.into());
    }
    let kek: Box<dyn keys::KekProvider> = match &settings.master_key {
        Some(_) => vault::kek_from_settings(&settings)?,
        None => {
            let file = settings.master_key_file();
            if file.exists() {
                Box::new(LocalKek::from_file(&file)?)
            } else {
                Box::new(LocalKek::generate_file(&file)?)
            }
        }
    };
    let kid = keys::init(&store, kek.as_ref(), now(), lifetime(&settings)).await?;
    println!("initialized vault in {}", settings.data_dir.display());
    println!("  database:   {}", settings.database_url());
    println!("  master key: {}", kek.describe());
    println!("  first key:  {kid}");
    println!("next: `fieldseal-vault apikey create --role checkout`, then `fieldseal-vault serve`");
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

async fn serve(settings: Settings) -> Result<ExitCode> {
    init_logging(&settings);
    tracing::info!(settings = ?settings, "starting");
    let listen = settings.listen;
    let vault = Arc::new(Vault::open(settings).await?);
    let listener = http::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "listening");
    println!("fieldseal-vault listening on http://{addr}");
    std::io::stdout().flush()?;
    http::serve(listener, vault, http::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn keys_cmd(settings: Settings, command: KeysCommand) -> Result<ExitCode> {
    let store = vault::open_store(&settings).await?;
    let kek = vault::kek_from_settings(&settings)?;
    keys::load_secrets(&store, kek.as_ref()).await?;
    match command {
        KeysCommand::List => {
            let t = now();
            let live: Vec<_> = store.hpke_keys().await?.into_iter().collect();
            let primary = live
                .iter()
                .filter(|k| k.retired_at.is_none() && k.expires_at > t && k.not_before <= t)
                .max_by_key(|k| k.not_before)
                .map(|k| k.kid.clone());
            println!(
                "{:<24} {:<10} {:>12} {:>12}",
                "KID", "STATUS", "NOT_BEFORE", "EXPIRES"
            );
            for k in live.iter().rev() {
                let status = if k.retired_at.is_some() {
                    "retired"
                } else if k.expires_at <= t {
                    "expired"
                } else if primary.as_deref() == Some(k.kid.as_str()) {
                    "primary"
                } else {
                    "active"
                };
                println!(
                    "{:<24} {:<10} {:>12} {:>12}",
                    k.kid, status, k.not_before, k.expires_at
                );
            }
        }
        KeysCommand::Rotate => {
            let kid = keys::rotate(&store, kek.as_ref(), now(), lifetime(&settings), "cli").await?;
            println!("new primary key {kid}; older keys keep opening envelopes until retired");
        }
        KeysCommand::Retire { kid } => {
            keys::retire(&store, &kid, now(), "cli").await?;
            println!("retired {kid}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn apikey_cmd(settings: Settings, command: ApikeyCommand) -> Result<ExitCode> {
    let store = vault::open_store(&settings).await?;
    let kek = vault::kek_from_settings(&settings)?;
    keys::load_secrets(&store, kek.as_ref()).await?;
    match command {
        ApikeyCommand::Create { role, label } => {
            let policy = Policy::load(settings.policy_file.as_deref())?;
            if policy.role(&role).is_none() {
                let roles: Vec<_> = policy.role_names().collect();
                return Err(
                    format!("unknown role {role:?}; the policy has {}", roles.join(", ")).into(),
                );
            }
            let key = apikeys::generate().ok_or("random source unavailable")?;
            let at = now();
            let record = ApiKeyRecord {
                id: key.id.clone(),
                digest: key.digest.to_vec(),
                role: role.clone(),
                label: label.clone(),
                created_at: at,
                revoked_at: None,
            };
            let audit = fieldseal_vault::audit::AuditDraft::new(at, "cli", "apikey.create", "ok")
                .detail(format!("{} role {role}", key.id));
            store.insert_api_key(record, audit).await?;
            println!("{}", key.full);
            eprintln!(
                "API key {} for role {role} created; it is shown only this once",
                key.id
            );
        }
        ApikeyCommand::List => {
            println!(
                "{:<14} {:<12} {:<10} {:>12} LABEL",
                "ID", "ROLE", "STATUS", "CREATED"
            );
            for k in store.api_keys().await? {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:<14} {:<12} {:<10} {:>12} {}",
                    k.id, k.role, status, k.created_at, k.label
                );
            }
        }
        ApikeyCommand::Revoke { id } => {
            let audit =
                fieldseal_vault::audit::AuditDraft::new(now(), "cli", "apikey.revoke", "ok")
                    .detail(&*id);
            if !store.revoke_api_key(&id, now(), audit).await? {
                return Err(format!("no active API key with id {id}").into());
            }
            println!("revoked {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn audit_cmd(settings: Settings, command: AuditCommand) -> Result<ExitCode> {
    let store = vault::open_store(&settings).await?;
    match command {
        AuditCommand::Verify => {
            let kek = vault::kek_from_settings(&settings)?;
            let key = keys::audit_key(&store, kek.as_ref()).await?;
            let result = verify_chain(&store, &key).await?;
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
        AuditCommand::Export { output, after } => {
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut after = after;
            let mut count = 0u64;
            loop {
                let page = store.audit_log(after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for entry in &page {
                    serde_json::to_writer(&mut out, entry)?;
                    out.write_all(b"\n")?;
                    count += 1;
                }
            }
            out.flush()?;
            if output.is_some() {
                eprintln!("exported {count} audit entries");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
