//! Test certificates made with the `openssl` command: a CA and leaf certificates for 127.0.0.1.

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` making a new P-256 key, with `args`.
pub fn new_key_request(dir: &Path, args: &[&str]) {
    let mut all = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    all.extend_from_slice(args);
    openssl(dir, &all);
}

/// A test CA (`ca.pem`, `ca.key`).
pub fn make_ca(dir: &Path) {
    new_key_request(
        dir,
        &[
            "-x509",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=fieldseal test CA",
        ],
    );
}

/// A server certificate for 127.0.0.1 issued by the test CA (`name.pem`, `name.key`).
pub fn make_leaf(dir: &Path, name: &str) {
    make_cert(dir, name, "serverAuth");
}

/// A certificate for 127.0.0.1 with the extended key usage `usage`, issued by the test CA.
pub fn make_cert(dir: &Path, name: &str, usage: &str) {
    std::fs::write(
        dir.join("leaf.ext"),
        format!("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\n"),
    )
    .unwrap();
    new_key_request(
        dir,
        &[
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
        ],
    );
}
