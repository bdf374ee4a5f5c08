//! The official RFC 9180 vectors for mode base, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and
//! AES-128-GCM / AES-256-GCM, checked field by field: DeriveKeyPair, Encap and Decap with each ECDH
//! backend, the key schedule, all 257 encryptions both ways, and the exports.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{check, check_eq, hex};
use fieldseal_core::ecdh::{AwsLc, EcdhSecret, P256, PublicKey};
use fieldseal_core::hpke::{self, Aead, Context};
use libtest_mimic::{Arguments, Trial};
use serde_json::Value;

fn shared_secret(entry: &Value) -> [u8; 32] {
    hex(&entry["shared_secret"]).try_into().unwrap()
}

fn aead_of(entry: &Value) -> Aead {
    Aead::from_id(u16::try_from(entry["aead_id"].as_u64().unwrap()).unwrap()).unwrap()
}

fn label(entry: &Value) -> String {
    format!("aead{}", entry["aead_id"])
}

fn backend_trials<S: EcdhSecret + 'static>(entries: &Arc<Vec<Value>>) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = format!("rfc9180/{}/{}", S::BACKEND, label(entry));
        let e = Arc::clone(entries);
        trials.push(Trial::test(format!("{name}/derive_key_pair"), move || {
            let v = &e[i];
            let (sk_r, pk_r) = hpke::derive_key_pair::<S>(&hex(&v["ikmR"]))?;
            check_eq("pkRm", pk_r.as_bytes(), &hex(&v["pkRm"]))?;
            let sk_from_vector = S::from_scalar(&hex(&v["skRm"]).try_into().unwrap())?;
            check_eq(
                "pk(skRm)",
                sk_from_vector.public_key()?.as_bytes(),
                pk_r.as_bytes(),
            )?;
            drop(sk_r);
            let (_, pk_e) = hpke::derive_key_pair::<S>(&hex(&v["ikmE"]))?;
            check_eq("pkEm", pk_e.as_bytes(), &hex(&v["pkEm"]))
        }));
        let e = Arc::clone(entries);
        trials.push(Trial::test(format!("{name}/encap"), move || {
            let v = &e[i];
            let pk_r = PublicKey::from_sec1(&hex(&v["pkRm"]))?;
            let encapsulated = hpke::encap_derived::<S>(&pk_r, &hex(&v["ikmE"]))?;
            check_eq("enc", &encapsulated.enc, &hex(&v["enc"]))?;
            check_eq(
                "shared_secret",
                encapsulated.shared_secret.as_slice(),
                &hex(&v["shared_secret"]),
            )
        }));
        let e = Arc::clone(entries);
        trials.push(Trial::test(format!("{name}/decap"), move || {
            let v = &e[i];
            let sk_r = S::from_scalar(&hex(&v["skRm"]).try_into().unwrap())?;
            let pk_r = sk_r.public_key()?;
            let shared = hpke::decap(&hex(&v["enc"]), &sk_r, &pk_r)?;
            check_eq(
                "shared_secret",
                shared.as_slice(),
                &hex(&v["shared_secret"]),
            )
        }));
        let e = Arc::clone(entries);
        trials.push(Trial::test(
            format!("{name}/setup_base_roundtrip"),
            move || {
                // Sender with a random ephemeral key, recipient with skRm: the full flow per backend.
                let v = &e[i];
                let aead = aead_of(v);
                let info = hex(&v["info"]);
                let sk_r = S::from_scalar(&hex(&v["skRm"]).try_into().unwrap())?;
                let pk_r = sk_r.public_key()?;
                let (enc, mut sender) = hpke::setup_base_sender::<S>(aead, &pk_r, &info)?;
                let mut recipient = hpke::setup_base_recipient(aead, &enc, &sk_r, &pk_r, &info)?;
                let ct = sender.seal(b"aad", b"plaintext")?;
                let pt = recipient.open(b"aad", &ct)?;
                check_eq("plaintext", &pt, b"plaintext")?;
                check(recipient.open(b"aad", &ct).is_err(), || {
                    "a replayed ciphertext opened at the next sequence number".into()
                })
            },
        ));
    }
    trials
}

fn schedule_trials(entries: &Arc<Vec<Value>>) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = format!("rfc9180/{}", label(entry));
        let e = Arc::clone(entries);
        trials.push(Trial::test(format!("{name}/key_schedule"), move || {
            let v = &e[i];
            check(
                v["mode"] == 0 && v["kem_id"] == 16 && v["kdf_id"] == 1,
                || "vector is not base mode / P-256 / HKDF-SHA256".into(),
            )?;
            let ks = hpke::key_schedule(aead_of(v), &shared_secret(v), &hex(&v["info"]))?;
            check_eq(
                "key_schedule_context",
                &ks.key_schedule_context,
                &hex(&v["key_schedule_context"]),
            )?;
            check_eq("secret", ks.secret.as_slice(), &hex(&v["secret"]))?;
            check_eq("key", &ks.key, &hex(&v["key"]))?;
            check_eq("base_nonce", &ks.base_nonce, &hex(&v["base_nonce"]))?;
            check_eq(
                "exporter_secret",
                ks.exporter_secret.as_slice(),
                &hex(&v["exporter_secret"]),
            )
        }));
        let count = entry["encryptions"].as_array().map_or(0, Vec::len);
        for n in 0..count {
            let e = Arc::clone(entries);
            trials.push(Trial::test(
                format!("{name}/encryption/{n:03}"),
                move || {
                    let v = &e[i];
                    let aead = aead_of(v);
                    let info = hex(&v["info"]);
                    let mut sender = Context::new(aead, &shared_secret(v), &info)?;
                    let mut recipient = Context::new(aead, &shared_secret(v), &info)?;
                    // Sequence numbers are implicit: run the earlier encryptions first.
                    for (seq, enc) in v["encryptions"].as_array().unwrap()[..=n]
                        .iter()
                        .enumerate()
                    {
                        let (aad, pt, ct) = (hex(&enc["aad"]), hex(&enc["pt"]), hex(&enc["ct"]));
                        check(sender.sequence() == seq as u64, || "sequence number".into())?;
                        let sealed = sender.seal(&aad, &pt)?;
                        check_eq(&format!("ct[{seq}]"), &sealed, &ct)?;
                        let opened = recipient.open(&aad, &ct)?;
                        check_eq(&format!("pt[{seq}]"), &opened, &pt)?;
                        if seq == n {
                            let nonce = hex(&enc["nonce"]);
                            let base = hex(&v["base_nonce"]);
                            let xored: Vec<u8> = base
                                .iter()
                                .zip(std::iter::repeat_n(0u8, 4).chain((seq as u64).to_be_bytes()))
                                .map(|(b, s)| b ^ s)
                                .collect();
                            check_eq("nonce", &xored, &nonce)?;
                            let mut tampered = ct.clone();
                            tampered[0] ^= 1;
                            let mut other = Context::new(aead, &shared_secret(v), &info)?;
                            for earlier in &v["encryptions"].as_array().unwrap()[..n] {
                                other.open(&hex(&earlier["aad"]), &hex(&earlier["ct"]))?;
                            }
                            check(other.open(&aad, &tampered).is_err(), || {
                                "tampered ciphertext opened".into()
                            })?;
                        }
                    }
                    Ok(())
                },
            ));
        }
        let exports = entry["exports"].as_array().map_or(0, Vec::len);
        for n in 0..exports {
            let e = Arc::clone(entries);
            trials.push(Trial::test(format!("{name}/export/{n}"), move || {
                let v = &e[i];
                let x = &v["exports"][n];
                let ctx = Context::new(aead_of(v), &shared_secret(v), &hex(&v["info"]))?;
                let mut out = vec![0u8; usize::try_from(x["L"].as_u64().unwrap()).unwrap()];
                ctx.export(&hex(&x["exporter_context"]), &mut out)?;
                check_eq("exported_value", &out, &hex(&x["exported_value"]))
            }));
        }
    }
    trials
}

fn main() {
    let args = Arguments::from_args();
    let trials = match common::load("hpke-rfc9180-base-p256-sha256-aesgcm.json") {
        Ok(doc) => {
            let entries = Arc::new(doc.as_array().cloned().unwrap_or_default());
            let mut trials = vec![{
                let count = entries.len();
                Trial::test("rfc9180/both_aeads_present", move || {
                    check(count == 2, || format!("expected 2 entries, found {count}"))
                })
            }];
            trials.extend(schedule_trials(&entries));
            trials.extend(backend_trials::<P256>(&entries));
            trials.extend(backend_trials::<AwsLc>(&entries));
            trials
        }
        Err(missing) => vec![missing],
    };
    libtest_mimic::run(&args, trials).exit();
}
