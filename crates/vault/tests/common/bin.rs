//! The real `fieldseal-vault` binary, as an operator runs it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;

/// The vault binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_fieldseal-vault");

/// The database URLs of vaults that do not use their directory's SQLite file.
static DATABASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

/// Makes every later command for the vault in `dir` use the database `url`.
#[allow(dead_code)]
pub fn use_database(dir: &Path, url: &str) {
    DATABASES
        .lock()
        .unwrap()
        .insert(dir.to_path_buf(), url.to_owned());
}

/// The key file of the vault in `dir`: next to the data directory, not in it (as `init` wants).
pub fn kek_file(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "vault".to_owned(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.master.key"))
}

/// The binary for the vault in `dir`: its key file ([`kek_file`]), its database (the directory's
/// SQLite file unless [`use_database`] named another), no environment key or settings file, port 0.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env("FIELDSEAL_DATA_DIR", dir)
        .env("FIELDSEAL_MASTER_KEY_FILE", kek_file(dir))
        .env("FIELDSEAL_LISTEN", "127.0.0.1:0")
        .env_remove("FIELDSEAL_MASTER_KEY")
        .env_remove("FIELDSEAL_CONFIG");
    match DATABASES.lock().unwrap().get(dir) {
        Some(url) => c.env("FIELDSEAL_DATABASE_URL", url),
        None => c.env_remove("FIELDSEAL_DATABASE_URL"),
    };
    c
}

/// Runs an operator command on the vault in `dir`.
pub fn vault(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().unwrap()
}

/// The standard output of a command that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `serve` on port 0 with its log in `log`; returns the process and the base URL.
pub fn start(dir: &Path, log: &Path) -> (Child, String) {
    start_with(dir, log, &[])
}

/// [`start`] with extra environment variables (settings).
#[allow(dead_code)]
pub fn start_with(dir: &Path, log: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = command(dir)
        .envs(env.iter().copied())
        .arg("serve")
        .env("FIELDSEAL_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("fieldseal-vault listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, base)
}

/// `init` on the vault in `dir`, then one API key per role, in order.
#[allow(dead_code)]
pub fn init_with_keys(dir: &Path, roles: &[&str]) -> Vec<String> {
    ok(&vault(dir, &["init"]));
    roles
        .iter()
        .map(|role| {
            ok(&vault(dir, &["apikey", "create", "--role", role]))
                .trim()
                .to_owned()
        })
        .collect()
}
