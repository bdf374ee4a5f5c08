//! Wycheproof: ECDH P-256 (SEC1 points and JWK key sets) with each backend, AES-GCM with 96-bit
//! nonces, HKDF-SHA256. One trial per test case; nothing is copied by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use base64ct::{Base64UrlUnpadded, Encoding};
use common::{check, check_eq, hex};
use fieldseal_core::ecdh::{AwsLc, EcdhSecret, P256, PublicKey};
use fieldseal_core::hpke::{Aead, hazmat};
use fieldseal_core::keyset::KeySet;
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// Every test case of a Wycheproof file with the group it belongs to.
fn cases(doc: &Value) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            out.push((group.clone(), test.clone()));
        }
    }
    out
}

/// Wycheproof private keys are big-endian integers, sometimes with a leading zero byte.
fn scalar(bytes: &[u8]) -> Option<[u8; 32]> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.len() > 32 {
        return None;
    }
    let mut out = [0u8; 32];
    out[32 - trimmed.len()..].copy_from_slice(&trimmed);
    Some(out)
}

fn ecdh<S: EcdhSecret>(private: &[u8], public: &PublicKey) -> Result<Vec<u8>, String> {
    let sk = S::from_scalar(&scalar(private).ok_or("private key too long")?)
        .map_err(|e| e.to_string())?;
    sk.diffie_hellman(public)
        .map(|z| z.to_vec())
        .map_err(|e| e.to_string())
}

fn ecpoint_trials<S: EcdhSecret + 'static>(doc: &Value) -> Vec<Trial> {
    cases(doc)
        .into_iter()
        .map(|(_, t)| {
            let name = format!("wycheproof/ecdh_ecpoint/{}/{}", S::BACKEND, t["tcId"]);
            Trial::test(name, move || {
                let result = t["result"].as_str().unwrap();
                let outcome = PublicKey::from_sec1(&hex(&t["public"]))
                    .map_err(|e| e.to_string())
                    .and_then(|pk| ecdh::<S>(&hex(&t["private"]), &pk));
                match (result, outcome) {
                    ("valid", Ok(shared)) => check_eq("shared", &shared, &hex(&t["shared"])),
                    ("valid", Err(e)) => Err(Failed::from(format!("valid case refused: {e}"))),
                    // Everything that is not valid (invalid points, other curves, and the
                    // "acceptable" compressed encodings) must be refused: HPKE takes
                    // uncompressed points only.
                    (_, Ok(_)) => Err(Failed::from(format!(
                        "{result} case accepted ({})",
                        t["comment"]
                    ))),
                    (_, Err(_)) => Ok(()),
                }
            })
        })
        .collect()
}

/// The webcrypto file gives the peer key as a JWK: it goes through the key-set parser.
fn jwk_trials<S: EcdhSecret + 'static>(doc: &Value) -> Vec<Trial> {
    cases(doc)
        .into_iter()
        .map(|(_, t)| {
            let name = format!("wycheproof/ecdh_jwk/{}/{}", S::BACKEND, t["tcId"]);
            Trial::test(name, move || {
                let result = t["result"].as_str().unwrap();
                let public = &t["public"];
                let mut jwk = serde_json::json!({
                    "kty": public["kty"], "crv": public["crv"], "x": public["x"], "y": public["y"],
                    "kid": "peer", "use": "enc", "alg": "HPKE-7", "nbf": 0, "exp": 2,
                });
                if let Some(d) = public.get("d") {
                    jwk["d"] = d.clone();
                }
                let doc = serde_json::json!({ "keys": [jwk], "server_time": 1 }).to_string();
                let private = Base64UrlUnpadded::decode_vec(t["private"]["d"].as_str().unwrap())
                    .unwrap_or_default();
                let outcome = KeySet::parse(&doc)
                    .map_err(|e| e.to_string())
                    .and_then(|ks| ecdh::<S>(&private, &ks.primary().public_key));
                match (result, outcome) {
                    ("valid", Ok(shared)) => check_eq("shared", &shared, &hex(&t["shared"])),
                    ("valid", Err(e)) => Err(Failed::from(format!("valid case refused: {e}"))),
                    (_, Ok(_)) => Err(Failed::from(format!(
                        "{result} case accepted ({})",
                        t["comment"]
                    ))),
                    (_, Err(_)) => Ok(()),
                }
            })
        })
        .collect()
}

fn aes_gcm_trials(doc: &Value) -> Vec<Trial> {
    cases(doc)
        .into_iter()
        .filter(|(g, _)| g["ivSize"] == 96 && g["tagSize"] == 128)
        .filter_map(|(g, t)| {
            let aead = match g["keySize"].as_u64() {
                Some(128) => Aead::Aes128Gcm,
                Some(256) => Aead::Aes256Gcm,
                _ => return None,
            };
            let name = format!("wycheproof/aes_gcm/{}/{}", g["keySize"], t["tcId"]);
            Some(Trial::test(name, move || {
                let key = hex(&t["key"]);
                let nonce: [u8; 12] = hex(&t["iv"]).try_into().unwrap();
                let (aad, msg) = (hex(&t["aad"]), hex(&t["msg"]));
                let mut ct = hex(&t["ct"]);
                ct.extend_from_slice(&hex(&t["tag"]));
                let valid = t["result"] == "valid";
                let opened = hazmat::aead_open(aead, &key, &nonce, &aad, &ct);
                if valid {
                    let sealed = hazmat::aead_seal(aead, &key, &nonce, &aad, &msg)?;
                    check_eq("ciphertext", &sealed, &ct)?;
                    check_eq("plaintext", &opened?, &msg)
                } else {
                    check(opened.is_err(), || {
                        format!("invalid case opened: {}", t["comment"])
                    })
                }
            }))
        })
        .collect()
}

fn hkdf_trials(doc: &Value) -> Vec<Trial> {
    cases(doc)
        .into_iter()
        .map(|(_, t)| {
            let name = format!("wycheproof/hkdf_sha256/{}", t["tcId"]);
            Trial::test(name, move || {
                let size = usize::try_from(t["size"].as_u64().unwrap()).unwrap();
                let mut okm = vec![0u8; size];
                let out = hazmat::hkdf_sha256(
                    &hex(&t["salt"]),
                    &hex(&t["ikm"]),
                    &hex(&t["info"]),
                    &mut okm,
                );
                match (t["result"].as_str().unwrap(), out) {
                    ("valid", Ok(())) => check_eq("okm", &okm, &hex(&t["okm"])),
                    ("valid", Err(e)) => Err(Failed::from(format!("valid case refused: {e}"))),
                    (_, Ok(())) => Err(Failed::from("invalid case accepted")),
                    (_, Err(_)) => Ok(()),
                }
            })
        })
        .collect()
}

type MakeTrials = fn(&Value) -> Vec<Trial>;

fn main() {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    let files: [(&str, MakeTrials); 4] = [
        ("ecdh_secp256r1_ecpoint_test.json", |d| {
            let mut t = ecpoint_trials::<P256>(d);
            t.extend(ecpoint_trials::<AwsLc>(d));
            t
        }),
        ("ecdh_secp256r1_webcrypto_test.json", |d| {
            let mut t = jwk_trials::<P256>(d);
            t.extend(jwk_trials::<AwsLc>(d));
            t
        }),
        ("aes_gcm_test.json", aes_gcm_trials),
        ("hkdf_sha256_test.json", hkdf_trials),
    ];
    for (file, make) in files {
        match common::load(file) {
            Ok(doc) => {
                let made = make(&doc);
                let produced = made.len();
                let declared = doc["numberOfTests"].as_u64().unwrap_or(0);
                let total = cases(&doc).len() as u64;
                trials.push(Trial::test(format!("wycheproof/{file}/count"), move || {
                    check(total == declared && produced > 0, || {
                        format!("{file}: {total} cases read, {declared} declared")
                    })
                }));
                trials.extend(made);
            }
            Err(missing) => trials.push(missing),
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
