//! Versioned lookup keys: the keys that make equal values look equal (fingerprints, deterministic
//! tokens, and the hashes subject ids are stored as).
//!
//! Version 1 is the pair of secrets `fingerprint-key` and `deterministic-key` made at `init`;
//! version N (from 2) is `fingerprint-key:N` and `deterministic-key:N`, made together by `keys
//! rotate-lookup`, each wrapped under the KEK with its name as associated data. The rule:
//!
//! - **A rotation changes future fingerprints.** New fingerprints, new deterministic tokens and
//!   new subject hashes are made with the newest version. Fingerprints and subject hashes carry it
//!   in their prefix (`fp_`, `subj_` for version 1; `fp2_`, `subj2_` for version 2, and so on), so
//!   a fingerprint of one version is never compared with another's by mistake. Deterministic
//!   tokens do not (`tokd_` for every version): a value's token under an older version would tell
//!   that the value was stored before the rotation.
//! - **Lookups accept every version until re-keyed.** A deterministic tokenization returns the
//!   token the value has under the newest version that has one (with the newest version's
//!   fingerprint, as any tokenization); a subject's values and key are
//!   found under any version's hash. A deterministic token or subject hash cannot be re-keyed in
//!   place (the merchant holds the token; only the subject's hash, not its id, is stored): it
//!   moves to the newest version when it is made again after its values are gone (deleted,
//!   expired, erased). So older versions stay loaded for as long as the vault runs.
//!
//! Every node loads versions other nodes or the CLI made within its key upkeep (every few
//! seconds); until then it makes values with the version it has, and lookups still find them.

use std::sync::{Arc, RwLock};

use base64ct::{Base64UrlUnpadded, Encoding};
use fieldseal_core::at_rest::SymmetricKey;
use fieldseal_core::encoding::hex;
use fieldseal_core::envelope::FieldKind;
use fieldseal_core::secret::SecretValue;
use fieldseal_vault_store::Store;
use fieldseal_vault_store::audit::{Action, Actor, AuditDraft, Outcome};

use crate::keys::{KekProvider, KeyError};

/// The wrapped secrets' names (and associated data) of version `v`: (fingerprint, deterministic).
pub fn secret_names(v: u32) -> (String, String) {
    match v {
        1 => ("fingerprint-key".into(), "deterministic-key".into()),
        v => (
            format!("fingerprint-key:{v}"),
            format!("deterministic-key:{v}"),
        ),
    }
}

/// The prefix marking a version in what it makes: `` for 1, the number from 2 on.
fn mark(v: u32) -> String {
    if v == 1 { String::new() } else { v.to_string() }
}

/// One version of the lookup keys.
pub struct LookupVersion {
    /// Its number, from 1.
    pub version: u32,
    fingerprint: SymmetricKey,
    deterministic: SymmetricKey,
    /// Its secrets' names ([`secret_names`]), for counting uses without formatting them each time.
    names: (String, String),
}

impl LookupVersion {
    /// A version from its two keys.
    pub fn new(version: u32, fingerprint: SymmetricKey, deterministic: SymmetricKey) -> Self {
        Self {
            version,
            fingerprint,
            deterministic,
            names: secret_names(version),
        }
    }

    /// The name of its fingerprint key's secret.
    pub fn fingerprint_name(&self) -> &str {
        &self.names.0
    }

    /// The name of its deterministic-token key's secret.
    pub fn deterministic_name(&self) -> &str {
        &self.names.1
    }

    /// The keyed fingerprint of a value: equal values of a kind share it within a version;
    /// without the vault's key it links nothing.
    pub fn fingerprint(&self, kind: FieldKind, value: &SecretValue) -> String {
        let mac = self
            .fingerprint
            .mac("fingerprint", &[kind.as_str().as_bytes(), value.expose()]);
        format!(
            "fp{}_{}",
            mark(self.version),
            Base64UrlUnpadded::encode_string(&mac[..16])
        )
    }

    /// The deterministic token of a value: equal values of a kind get the same token within a
    /// version. It carries no version (unlike a fingerprint): which version a value's token is
    /// under would tell whether the value was stored before a rotation; lookups try every one.
    pub fn deterministic_token(&self, kind: FieldKind, value: &SecretValue) -> String {
        let mac = self
            .deterministic
            .mac("token", &[kind.as_str().as_bytes(), value.expose()]);
        format!("tokd_{}", Base64UrlUnpadded::encode_string(&mac[..16]))
    }

    /// The stored form of a subject id: its keyed hash (under the fingerprint key, in a domain of
    /// its own).
    pub fn subject_hash(&self, id: &str) -> String {
        format!(
            "subj{}_{}",
            mark(self.version),
            hex(&self.fingerprint.mac("subject id", &[id.as_bytes()])[..16])
        )
    }
}

/// The lookup key versions this node has unwrapped, oldest first.
#[derive(Default)]
pub struct LookupKeys {
    versions: RwLock<Vec<Arc<LookupVersion>>>,
}

impl LookupKeys {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<LookupVersion>>> {
        match self.versions.read() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The newest version: for everything made from now on. `None` before [`Self::load_new`].
    pub fn newest(&self) -> Option<Arc<LookupVersion>> {
        self.read().last().cloned()
    }

    /// Every version, newest first: for lookups.
    pub fn newest_first(&self) -> Vec<Arc<LookupVersion>> {
        self.read().iter().rev().cloned().collect()
    }

    /// The loaded version numbers, oldest first.
    pub fn loaded(&self) -> Vec<u32> {
        self.read().iter().map(|v| v.version).collect()
    }

    /// Unwraps the versions the database holds that this node has not loaded yet (a version
    /// counts once both its secrets are there); returns how many it added.
    pub async fn load_new<S: Store>(
        &self,
        store: &S,
        kek: &dyn KekProvider,
    ) -> Result<usize, KeyError> {
        let mut next = self.read().last().map_or(1, |v| v.version + 1);
        let mut added = 0;
        while let Some((fp, det)) = load_version(store, kek, next).await? {
            let version = Arc::new(LookupVersion::new(next, fp, det));
            match self.versions.write() {
                Ok(mut v) => v.push(version),
                Err(poisoned) => poisoned.into_inner().push(version),
            }
            added += 1;
            next += 1;
        }
        if self.read().is_empty() {
            return Err(KeyError::NotInitialized);
        }
        Ok(added)
    }
}

/// Version `v`'s two keys, if both are stored.
async fn load_version<S: Store>(
    store: &S,
    kek: &dyn KekProvider,
    v: u32,
) -> Result<Option<(SymmetricKey, SymmetricKey)>, KeyError> {
    let (fp_name, det_name) = secret_names(v);
    let (Some(fp), Some(det)) = (
        store.secret(&fp_name).await?,
        store.secret(&det_name).await?,
    ) else {
        return Ok(None);
    };
    let unwrap = |wrapped: &[u8], name: &str| {
        let plain = kek.unwrap(wrapped, name.as_bytes())?;
        SymmetricKey::from_bytes(plain.expose()).map_err(|_| KeyError::Damaged(name.into()))
    };
    Ok(Some((unwrap(&fp, &fp_name)?, unwrap(&det, &det_name)?)))
}

/// The names of every stored lookup secret, in version order (for `kek rotate`).
pub async fn stored_names<S: Store>(store: &S) -> Result<Vec<String>, KeyError> {
    let mut names = Vec::new();
    for v in 1.. {
        let (fp, det) = secret_names(v);
        let mut any = false;
        for name in [fp, det] {
            if store.secret(&name).await?.is_some() {
                names.push(name);
                any = true;
            }
        }
        if !any {
            break;
        }
    }
    Ok(names)
}

/// Makes the next version of the lookup keys (both secrets, each audited as `secret.create`,
/// then one `lookup.rotate` entry). An interrupted run left a version with one secret: that one is
/// completed instead. Returns the version made.
pub async fn rotate<S: Store>(
    store: &S,
    kek: &dyn KekProvider,
    (now, actor): (i64, Actor),
) -> Result<u32, KeyError> {
    let mut v = 2;
    loop {
        let (fp, det) = secret_names(v);
        let has_fp = store.secret(&fp).await?.is_some();
        let has_det = store.secret(&det).await?.is_some();
        if !(has_fp && has_det) {
            for (name, has) in [(fp, has_fp), (det, has_det)] {
                if has {
                    continue;
                }
                let key = SymmetricKey::generate().map_err(|_| KeyError::Crypto)?;
                let wrapped = kek.wrap(key.expose(), name.as_bytes())?;
                let audit = AuditDraft::new(now, actor.clone(), Action::SecretCreate, Outcome::Ok)
                    .detail(&name);
                if !store.put_secret(&name, wrapped, audit).await? {
                    // Another rotation made it meanwhile: that one is as good.
                    continue;
                }
            }
            store
                .append_audit(
                    AuditDraft::new(now, actor, Action::LookupRotate, Outcome::Ok).detail(format!(
                        "lookup keys version {v}: new fingerprints, deterministic tokens and \
                         subject hashes use it"
                    )),
                )
                .await?;
            return Ok(v);
        }
        v += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn version(v: u32) -> LookupVersion {
        LookupVersion::new(
            v,
            SymmetricKey::generate().unwrap(),
            SymmetricKey::generate().unwrap(),
        )
    }

    #[test]
    fn what_a_version_makes_names_it_and_differs_from_other_versions() {
        let value = SecretValue::new(b"4111111111111111".to_vec());
        let (one, two) = (version(1), version(2));
        let f1 = one.fingerprint(FieldKind::Pan, &value);
        let f2 = two.fingerprint(FieldKind::Pan, &value);
        assert!(f1.starts_with("fp_") && f2.starts_with("fp2_"), "{f1} {f2}");
        assert_eq!(f1, one.fingerprint(FieldKind::Pan, &value), "stable");
        assert_ne!(f1[3..], f2[4..]);
        let t1 = one.deterministic_token(FieldKind::Pan, &value);
        let t2 = two.deterministic_token(FieldKind::Pan, &value);
        assert!(
            t1.starts_with("tokd_") && t2.starts_with("tokd_"),
            "{t1} {t2}"
        );
        assert_eq!(
            (t1.len(), t2.len()),
            (5 + 22, 5 + 22),
            "no version in a token"
        );
        assert_ne!(t1, t2);
        let s1 = one.subject_hash("cus_1");
        assert!(s1.starts_with("subj_") && two.subject_hash("cus_1").starts_with("subj2_"));
        assert_eq!(s1.len(), 5 + 32);
        // Fingerprint and subject hash use one key in separate domains.
        assert_ne!(
            one.fingerprint(FieldKind::Email, &SecretValue::new(b"cus_1".to_vec()))[3..],
            s1[5..]
        );
    }

    #[test]
    fn version_one_makes_what_the_vault_made_before_versions() {
        // Tokens, fingerprints and subject hashes stored before lookup keys had versions must
        // still be found: version 1 computes them exactly as then.
        let key = |b: u8| SymmetricKey::from_bytes(&[b; 32]).unwrap();
        let one = LookupVersion::new(1, key(1), key(2));
        let v = SecretValue::new(b"4111111111111111".to_vec());
        let b64 = |m: &[u8]| Base64UrlUnpadded::encode_string(&m[..16]);
        assert_eq!(
            one.fingerprint(FieldKind::Pan, &v),
            format!(
                "fp_{}",
                b64(&key(1).mac("fingerprint", &[b"pan", v.expose()]))
            )
        );
        assert_eq!(
            one.deterministic_token(FieldKind::Pan, &v),
            format!("tokd_{}", b64(&key(2).mac("token", &[b"pan", v.expose()])))
        );
        assert_eq!(
            one.subject_hash("cus_1"),
            format!("subj_{}", hex(&key(1).mac("subject id", &[b"cus_1"])[..16]))
        );
        assert_ne!(
            one.deterministic_token(FieldKind::Pan, &v),
            one.deterministic_token(FieldKind::Text, &v)
        );
    }

    #[test]
    fn version_one_keeps_the_names_it_had() {
        assert_eq!(
            secret_names(1),
            ("fingerprint-key".into(), "deterministic-key".into())
        );
        assert_eq!(
            secret_names(3),
            ("fingerprint-key:3".into(), "deterministic-key:3".into())
        );
    }
}
