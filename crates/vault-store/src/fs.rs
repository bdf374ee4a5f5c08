//! Files and directories readable by their owner only: the database file, key files, the data
//! directory. The one place the vault creates them.

use std::io::Write;
use std::path::Path;

/// Creates `path` as a new empty file with mode 0600; fails if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    open_new_private(path).map(drop)
}

/// Writes `data` to a new file with mode 0600 and syncs it; fails if the file exists.
pub fn write_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = open_new_private(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Creates `dir` (and its parents) with mode 0700 unless it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn open_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}
