//! A real PKCS#11 token: SoftHSM2 (Debian's `softhsm2`, installed by scripts/setup.sh) with its
//! own configuration and token directory in a temporary directory, made with `softhsm2-util`.
//! Vault processes reach it through `SOFTHSM2_CONF`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TempDir;

/// The SoftHSM2 module Debian installs.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The user PIN of the test tokens.
pub const PIN: &str = "4096-kek-pin";

/// A SoftHSM2 installation of its own with one token per [`Hsm::add_token`].
pub struct Hsm {
    pub dir: TempDir,
    pub conf: PathBuf,
    pub tokens: PathBuf,
    pub pin_file: PathBuf,
}

impl Hsm {
    pub fn new(tag: &str) -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "SoftHSM2 is missing: run scripts/setup.sh (it installs Debian's softhsm2)"
        );
        let dir = TempDir::new(tag);
        let tokens = dir.0.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.0.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        let pin_file = dir.0.join("pin");
        std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
        Self {
            dir,
            conf,
            tokens,
            pin_file,
        }
    }

    /// Initializes a token labelled `label` in a free slot.
    pub fn add_token(&self, label: &str) {
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", "so-pin-7781"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The settings (environment variables) of a vault whose KEK is `key` in token `token`.
    pub fn env(&self, token: &str, key: &str) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf.display().to_string()),
            ("FIELDSEAL_KEK_PROVIDER".into(), "pkcs11".into()),
            ("FIELDSEAL_PKCS11_MODULE".into(), MODULE.into()),
            ("FIELDSEAL_PKCS11_TOKEN".into(), token.into()),
            ("FIELDSEAL_PKCS11_KEY_LABEL".into(), key.into()),
            (
                "FIELDSEAL_PKCS11_PIN_FILE".into(),
                self.pin_file.display().to_string(),
            ),
        ]
    }

    /// Takes every token away (as an HSM that stops answering), until [`Hsm::restore`].
    pub fn remove(&self) {
        std::fs::rename(&self.tokens, self.dir.0.join("tokens.away")).unwrap();
    }

    /// Gives the tokens back.
    pub fn restore(&self) {
        std::fs::rename(self.dir.0.join("tokens.away"), &self.tokens).unwrap();
    }
}
