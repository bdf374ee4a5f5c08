//! Authentication of the rows a decision reads: API keys (who may call, with which role) and HPKE
//! key metadata (which keys are published and open envelopes). Each row carries an HMAC-SHA256
//! under the row key, a random key stored wrapped under the KEK, over every other column. Someone
//! who can write the database but does not hold the KEK cannot make a row that verifies: a forged
//! API key, an un-revoked key, a changed role, a replaced public key or a changed validity are
//! treated as absent and reported.

use fieldseal_core::at_rest::{SymmetricKey, ct_eq};
use fieldseal_core::encoding::hex;

use crate::records::{
    ApiKeyRecord, HpkeKeyRecord, OperatorRecord, SessionRecord, encode_parts, opt_i64,
};

/// The key that authenticates rows.
pub struct RowKey(SymmetricKey);

impl RowKey {
    /// Wraps the unwrapped row key.
    pub fn new(key: SymmetricKey) -> Self {
        Self(key)
    }

    /// The key operators' TOTP secrets are encrypted under (AES-256-GCM): derived from the row
    /// key (HMAC-SHA256 under its own label), so it is wrapped, rewrapped and protected with it.
    pub fn totp_key(&self) -> SymmetricKey {
        let derived = zeroize::Zeroizing::new(self.0.mac("operator-totp-key", &[]));
        // 32 bytes: always a valid key.
        SymmetricKey::from_bytes(derived.as_ref()).unwrap_or_else(|_| unreachable!())
    }

    fn mac(&self, table: &str, parts: &[&[u8]]) -> String {
        hex(&self.0.mac("row", &[&encode_parts(table, parts)]))
    }

    /// The MAC an API key row must carry.
    pub fn api_key_mac(&self, r: &ApiKeyRecord) -> String {
        let v1: [&[u8]; 7] = [
            r.id.as_bytes(),
            &r.digest,
            r.role.as_bytes(),
            r.label.as_bytes(),
            &r.created_at.to_be_bytes(),
            &opt_i64(r.revoked_at),
            &opt_i64(r.expires_at),
        ];
        if r.previous_digest.is_none()
            && r.previous_expires_at.is_none()
            && r.client_cert_sha256.is_none()
        {
            // Rows of keys never rotated keep the MAC they were written with.
            return self.mac("api_keys v1", &v1);
        }
        let previous = r.previous_digest.as_deref().unwrap_or_default();
        let mut parts = v1.to_vec();
        parts.push(previous);
        let until = opt_i64(r.previous_expires_at);
        parts.push(&until);
        let cert = r.client_cert_sha256.as_deref().unwrap_or_default();
        parts.push(cert.as_bytes());
        self.mac("api_keys v2", &parts)
    }

    /// Sets an API key row's MAC.
    pub fn seal_api_key(&self, mut r: ApiKeyRecord) -> ApiKeyRecord {
        r.mac = self.api_key_mac(&r);
        r
    }

    /// Whether an API key row is as the vault wrote it.
    pub fn api_key_ok(&self, r: &ApiKeyRecord) -> bool {
        ct_eq(self.api_key_mac(r).as_bytes(), r.mac.as_bytes())
    }

    /// The MAC an HPKE key row must carry.
    pub fn hpke_key_mac(&self, r: &HpkeKeyRecord) -> String {
        self.mac(
            "hpke_keys v1",
            &[
                r.kid.as_bytes(),
                &r.public_key,
                &r.wrapped_private,
                &r.created_at.to_be_bytes(),
                &r.not_before.to_be_bytes(),
                &r.expires_at.to_be_bytes(),
                &opt_i64(r.retired_at),
            ],
        )
    }

    /// Sets an HPKE key row's MAC.
    pub fn seal_hpke_key(&self, mut r: HpkeKeyRecord) -> HpkeKeyRecord {
        r.mac = self.hpke_key_mac(&r);
        r
    }

    /// Whether an HPKE key row is as the vault wrote it.
    pub fn hpke_key_ok(&self, r: &HpkeKeyRecord) -> bool {
        ct_eq(self.hpke_key_mac(r).as_bytes(), r.mac.as_bytes())
    }

    /// The MAC an operator row must carry.
    pub fn operator_mac(&self, r: &OperatorRecord) -> String {
        self.mac(
            "operators v1",
            &[
                r.name.as_bytes(),
                r.role.as_bytes(),
                r.password_hash.as_bytes(),
                &r.totp_wrapped,
                &r.created_at.to_be_bytes(),
                &opt_i64(r.disabled_at),
                &r.failed_attempts.to_be_bytes(),
                &opt_i64(r.locked_until),
                &opt_i64(r.last_totp_step),
                &r.generation.to_be_bytes(),
            ],
        )
    }

    /// Sets an operator row's MAC.
    pub fn seal_operator(&self, mut r: OperatorRecord) -> OperatorRecord {
        r.mac = self.operator_mac(&r);
        r
    }

    /// Whether an operator row is as the vault wrote it.
    pub fn operator_ok(&self, r: &OperatorRecord) -> bool {
        ct_eq(self.operator_mac(r).as_bytes(), r.mac.as_bytes())
    }

    /// The MAC a session row must carry.
    pub fn session_mac(&self, r: &SessionRecord) -> String {
        self.mac(
            "operator_sessions v1",
            &[
                r.id.as_bytes(),
                r.operator.as_bytes(),
                &r.generation.to_be_bytes(),
                &r.created_at.to_be_bytes(),
                &r.last_seen_at.to_be_bytes(),
                &r.step_up_at.to_be_bytes(),
            ],
        )
    }

    /// Sets a session row's MAC.
    pub fn seal_session(&self, mut r: SessionRecord) -> SessionRecord {
        r.mac = self.session_mac(&r);
        r
    }

    /// Whether a session row is as the vault wrote it.
    pub fn session_ok(&self, r: &SessionRecord) -> bool {
        ct_eq(self.session_mac(r).as_bytes(), r.mac.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_column_is_covered() {
        let k = RowKey::new(SymmetricKey::from_bytes(&[3; 32]).unwrap());
        let key = k.seal_api_key(ApiKeyRecord {
            id: "0123456789ab".into(),
            digest: vec![1; 32],
            role: "support".into(),
            label: "desk".into(),
            created_at: 10,
            revoked_at: Some(20),
            expires_at: None,
            previous_digest: Some(vec![2; 32]),
            previous_expires_at: Some(30),
            client_cert_sha256: Some("ab".into()),
            last_used_at: None,
            mac: String::new(),
            revoked_in_log: false,
        });
        assert!(k.api_key_ok(&key));
        // The time of last use is not covered: it changes on use.
        let mut used = key.clone();
        used.last_used_at = Some(40);
        assert!(k.api_key_ok(&used));
        let changes: [fn(&mut ApiKeyRecord); 13] = [
            |r| r.client_cert_sha256 = None,
            |r| r.client_cert_sha256 = Some("ac".into()),
            |r| r.previous_digest = None,
            |r| r.previous_expires_at = Some(31),
            |r| {
                r.previous_digest = None;
                r.previous_expires_at = None;
            },
            |r| r.previous_digest = Some(vec![3; 32]),
            |r| r.id = "0123456789ac".into(),
            |r| r.digest[0] ^= 1,
            |r| r.role = "payments".into(),
            |r| r.label = "desk2".into(),
            |r| r.created_at += 1,
            |r| r.revoked_at = None,
            |r| r.expires_at = Some(0),
        ];
        for change in changes {
            let mut r = key.clone();
            change(&mut r);
            assert!(!k.api_key_ok(&r), "{r:?}");
        }
        let other = RowKey::new(SymmetricKey::from_bytes(&[4; 32]).unwrap());
        assert!(!other.api_key_ok(&key));

        let hk = k.seal_hpke_key(HpkeKeyRecord {
            kid: "k1".into(),
            public_key: vec![4; 65],
            wrapped_private: vec![5; 60],
            created_at: 1,
            not_before: 1,
            expires_at: 100,
            retired_at: None,
            mac: String::new(),
            retired_in_log: false,
        });
        assert!(k.hpke_key_ok(&hk));
        let changes: [fn(&mut HpkeKeyRecord); 7] = [
            |r| r.kid = "k2".into(),
            |r| r.public_key[3] ^= 1,
            |r| r.wrapped_private[0] ^= 1,
            |r| r.created_at = 0,
            |r| r.not_before = 0,
            |r| r.expires_at = i64::MAX,
            |r| r.retired_at = Some(5),
        ];
        for change in changes {
            let mut r = hk.clone();
            change(&mut r);
            assert!(!k.hpke_key_ok(&r), "{r:?}");
        }

        let op = k.seal_operator(OperatorRecord {
            name: "alice".into(),
            role: "support".into(),
            password_hash: "$argon2id$x".into(),
            totp_wrapped: vec![6; 40],
            created_at: 1,
            disabled_at: None,
            failed_attempts: 4,
            locked_until: None,
            last_totp_step: Some(7),
            generation: 2,
            mac: String::new(),
            log: crate::OperatorLog::default(),
        });
        assert!(k.operator_ok(&op));
        let changes: [fn(&mut OperatorRecord); 10] = [
            |r| r.name = "bob".into(),
            |r| r.role = "payments".into(),
            |r| r.password_hash.push('x'),
            |r| r.totp_wrapped[0] ^= 1,
            |r| r.created_at = 0,
            |r| r.disabled_at = Some(3),
            |r| r.failed_attempts = 0,
            |r| r.locked_until = Some(9),
            |r| r.last_totp_step = Some(6),
            |r| r.generation = 1,
        ];
        for change in changes {
            let mut r = op.clone();
            change(&mut r);
            assert!(!k.operator_ok(&r), "{r:?}");
        }
        let s = k.seal_session(SessionRecord {
            id: "ab".into(),
            operator: "alice".into(),
            generation: 2,
            created_at: 1,
            last_seen_at: 2,
            step_up_at: 1,
            mac: String::new(),
        });
        assert!(k.session_ok(&s));
        let changes: [fn(&mut SessionRecord); 6] = [
            |r| r.id = "ac".into(),
            |r| r.operator = "bob".into(),
            |r| r.generation = 3,
            |r| r.created_at = 2,
            |r| r.last_seen_at = 9,
            |r| r.step_up_at = 9,
        ];
        for change in changes {
            let mut r = s.clone();
            change(&mut r);
            assert!(!k.session_ok(&r), "{r:?}");
        }
    }
}
