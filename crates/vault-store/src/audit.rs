//! The audit log as pure logic: the vocabulary of entries, their numbering and hashing, the MACs
//! that make them unforgeable without the vault's audit key, the check a backend runs inside every
//! write transaction before it appends, and verification of the whole chain.
//!
//! ```text
//! hash_n = SHA-256("fieldseal audit v1\0" || hash_{n-1} || canonical_json(entry_n)),  hash_0 = 32 zero bytes
//! mac_n  = HMAC-SHA256(audit key, "audit-entry", seq_n, hash_n)
//! head   = (seq, hash, HMAC-SHA256(audit key, "audit-head", seq, hex(hash)))
//! ```
//!
//! `canonical_json` is the entry's members in this order, compact: `seq, at, actor, action, token,
//! kind, purpose, outcome, detail, envelope`. The hash chain alone can be recomputed by anyone who
//! can write the database; the MACs cannot. Entries hold who, what, which token, the purpose and
//! the outcome; never a value.

use std::sync::Mutex;

use fieldseal_core::at_rest::{SymmetricKey, chain_hash, ct_eq};
use fieldseal_core::encoding::{from_hex, hex};
use serde::Serialize;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A service calling with an API key (its public id).
    ApiKey(String),
    /// An operator command on the vault's host, by no named operator.
    Cli,
    /// An operator command on the vault's host by this operator (`--operator NAME`, or the OS
    /// user running it).
    CliOperator(String),
    /// An operator (a person) signed in over HTTP, by name.
    Operator(String),
    /// A caller that presented no usable API key.
    Anonymous,
    /// The vault itself (retention, start-up).
    Vault,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey(id) => write!(f, "apikey:{id}"),
            Self::Cli => f.write_str("cli"),
            Self::CliOperator(name) => write!(f, "cli:{name}"),
            Self::Operator(name) => write!(f, "operator:{name}"),
            Self::Anonymous => f.write_str("anonymous"),
            Self::Vault => f.write_str("vault"),
        }
    }
}

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The name stored in the log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What was done.
    Action {
        /// An envelope opened and its value stored (or refused).
        Tokenize => "tokenize",
        /// A token's value revealed (or refused).
        Reveal => "reveal",
        /// A token deleted: by a caller, or by retention.
        Delete => "delete",
        /// An authentication attempt that failed.
        Auth => "auth",
        /// The audit log read.
        AuditRead => "audit.read",
        /// The audit log verified.
        AuditVerify => "audit.verify",
        /// A new HPKE key pair became the primary.
        KeyRotate => "key.rotate",
        /// An HPKE key pair retired.
        KeyRetire => "key.retire",
        /// A wrapped key rewrapped under a new key-encryption key (`kek rotate`).
        KeyRewrap => "key.rewrap",
        /// A key-encryption key rotation started or finished.
        KekRotate => "kek.rotate",
        /// A new data key version made (on demand, or before the count limit).
        DataKeyRotate => "datakey.rotate",
        /// A batch of values moved to the newest data key.
        DataKeyReencrypt => "datakey.reencrypt",
        /// An API key created.
        ApiKeyCreate => "apikey.create",
        /// An API key revoked.
        ApiKeyRevoke => "apikey.revoke",
        /// An API key given a new secret (the previous one accepted for an overlap).
        ApiKeyRotate => "apikey.rotate",
        /// A symmetric key made and stored wrapped.
        SecretCreate => "secret.create",
        /// The vault initialized.
        VaultInit => "vault.init",
        /// The policy file loaded (its SHA-256 in the detail).
        PolicyLoad => "policy.load",
        /// A policy stored for every node (its TOML text in the detail): the newest one is the
        /// policy of every vault node on the database.
        PolicyStore => "policy.store",
        /// A stored row failed its integrity check.
        Integrity => "integrity",
        /// A new version of the lookup keys (fingerprints, deterministic tokens, subject hashes).
        LookupRotate => "lookup.rotate",
        /// A data subject's key made (its first tokenized value).
        SubjectKey => "subject.key",
        /// A data subject erased: its key destroyed and its tokens deleted.
        SubjectErase => "subject.erase",
        /// A data subject's values exported.
        SubjectExport => "subject.export",
        /// An operator enrolled (`operator add`).
        OperatorAdd => "operator.add",
        /// An operator disabled: no sign-in, sessions ended.
        OperatorDisable => "operator.disable",
        /// A disabled operator enabled again.
        OperatorEnable => "operator.enable",
        /// An operator given a new password and TOTP secret; lock lifted, sessions ended.
        OperatorReset => "operator.reset",
        /// An operator's sign-in (or a failed one).
        OperatorSignIn => "operator.sign_in",
        /// An operator locked after failed sign-ins.
        OperatorLock => "operator.lock",
        /// An operator's session ended by signing out.
        OperatorSignOut => "operator.sign_out",
        /// A second factor entered in a session (step-up), or refused.
        OperatorStepUp => "operator.step_up",
        /// A caller locked for a reveal anomaly: its reveals refused until unlocked (the detail
        /// begins with the caller, `apikey:ID` or `operator:NAME`, then the reason).
        RevealLock => "reveal.lock",
        /// A caller's reveal lock lifted (the detail begins with the caller).
        RevealUnlock => "reveal.unlock",
        /// An incident report drawn from the audit log (`incident report`).
        IncidentReport => "incident.report",
        /// The audit log searched for envelopes sealed to a retired HPKE key
        /// (`keys check-retired`; the key and what was found in the detail).
        KeyCheckRetired => "key.check_retired",
        /// A snapshot of the database taken (`backup`).
        Backup => "vault.backup",
        /// The database replaced by a snapshot (`restore`).
        Restore => "vault.restore",
    }
}

vocabulary! {
    /// How it ended.
    Outcome {
        /// Done.
        Ok => "ok",
        /// Revealed in the clear.
        Plain => "plain",
        /// Revealed masked.
        Masked => "masked",
        /// Refused: the caller may not.
        Denied => "denied",
        /// Refused: the input is not acceptable (malformed, stale, replayed ...).
        Refused => "refused",
        /// No such token (or an expired, deleted or already used one).
        NotFound => "not_found",
        /// A stored row failed its integrity check and was treated as absent.
        Tampered => "tampered",
    }
}

/// An envelope as the audit log names it: its creation time, then its id, in hex. Time first, so
/// that the index of consumed envelopes grows at its end (envelopes arrive in about the order they
/// were made) instead of at a random place per insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeRef {
    /// The envelope's creation time, Unix seconds (from its authenticated header).
    pub created_at: u64,
    /// Its 128-bit id.
    pub id: [u8; 16],
}

impl EnvelopeRef {
    /// The text the log stores and the replay check looks up: 16 hex digits of the creation time,
    /// then 32 of the id.
    pub fn key(&self) -> String {
        let mut key = hex(&self.created_at.to_be_bytes());
        key.push_str(&hex(&self.id));
        key
    }
}

/// An entry before it is numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDraft {
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// The token concerned.
    pub token: Option<String>,
    /// The field kind concerned.
    pub kind: Option<String>,
    /// The purpose a reveal stated.
    pub purpose: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// More context (an error code, a key id, a role). Never a value.
    pub detail: String,
    /// The envelope whose value this entry stored (tokenize entries that stored it): the
    /// authenticated record that the envelope was consumed, checked against replays.
    pub envelope: Option<EnvelopeRef>,
    /// Where the request came from (the client address, and the proxy it came through), written
    /// at the end of the entry's detail as `from ADDR`.
    pub from: Option<String>,
}

impl AuditDraft {
    /// A draft with the required members.
    pub fn new(at: i64, actor: Actor, action: Action, outcome: Outcome) -> Self {
        Self {
            at,
            actor,
            action,
            token: None,
            kind: None,
            purpose: None,
            outcome,
            detail: String::new(),
            envelope: None,
            from: None,
        }
    }

    /// Sets where the request came from.
    pub fn from(mut self, client: impl std::fmt::Display) -> Self {
        self.from = Some(client.to_string());
        self
    }

    /// The detail as stored: with `from ADDR` at its end when the draft says where from.
    pub fn stored_detail(&self) -> String {
        match &self.from {
            None => self.detail.clone(),
            Some(from) if self.detail.is_empty() => format!("from {from}"),
            Some(from) => format!("{}; from {from}", self.detail),
        }
    }

    /// Sets the token.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: &str) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Sets the purpose.
    pub fn purpose(mut self, purpose: &str) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Sets the envelope consumed.
    pub fn envelope(mut self, envelope: EnvelopeRef) -> Self {
        self.envelope = Some(envelope);
        self
    }
}

/// Most tokens the purge deletes in one transaction (and one audit entry): the audit lock, which
/// every writer waits for, is never held for long.
pub const PURGE_BATCH: usize = 500;

/// Most batches one purge cycle runs; the rest waits for the next cycle (every 5 seconds).
pub const PURGE_BATCHES: usize = 20;

/// The one audit entry of a purge batch: how many values of each kind were deleted and the range
/// of their expiry times. `deleted` is each deleted token's kind and expiry (Unix seconds).
pub fn purge_batch(now: i64, deleted: &[(String, i64)]) -> AuditDraft {
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for (kind, _) in deleted {
        *kinds.entry(kind.as_str()).or_default() += 1;
    }
    let counts = kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (first, last) = deleted
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &(_, at)| {
            (lo.min(at), hi.max(at))
        });
    let draft = AuditDraft::new(now, Actor::Vault, Action::Delete, Outcome::Ok).detail(format!(
        "retention period over: {} deleted ({counts}), expired {first}..={last}",
        deleted.len()
    ));
    match kinds.keys().next() {
        Some(only) if kinds.len() == 1 => draft.kind(only),
        _ => draft,
    }
}

/// A stored entry, as read back: plain strings, trusted only once verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Token.
    pub token: Option<String>,
    /// Kind.
    pub kind: Option<String>,
    /// Purpose.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// The envelope consumed ([`EnvelopeRef::key`]: creation time and id, hex).
    pub envelope: Option<String>,
    /// The previous entry's hash, hex.
    pub prev_hash: String,
    /// This entry's hash, hex.
    pub hash: String,
    /// This entry's MAC under the audit key, hex.
    pub mac: String,
}

impl AuditRecord {
    /// The entry as `audit export` writes it and the syslog forwarder sends it: every field, as
    /// stored, in one line of compact JSON (no newline).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

/// The anchored head: the last entry's position and hash, with a MAC under the audit key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Sequence number of the last entry.
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
    /// MAC over both, hex.
    pub mac: String,
}

#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    token: Option<&'a str>,
    kind: Option<&'a str>,
    purpose: Option<&'a str>,
    outcome: &'a str,
    detail: &'a str,
    envelope: Option<&'a str>,
}

impl AuditRecord {
    fn canonical(&self) -> Vec<u8> {
        // Serializing strings and integers cannot fail.
        serde_json::to_vec(&Canonical {
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            token: self.token.as_deref(),
            kind: self.kind.as_deref(),
            purpose: self.purpose.as_deref(),
            outcome: &self.outcome,
            detail: &self.detail,
            envelope: self.envelope.as_deref(),
        })
        .unwrap_or_default()
    }
}

fn entry_mac(key: &SymmetricKey, seq: i64, hash: &[u8; 32]) -> String {
    hex(&key.mac("audit-entry", &[&seq.to_be_bytes(), hash]))
}

fn head_mac(key: &SymmetricKey, seq: i64, hash_hex: &str) -> String {
    hex(&key.mac("audit-head", &[&seq.to_be_bytes(), hash_hex.as_bytes()]))
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broken {
    /// The first entry that does not verify (or the position where one is missing).
    pub seq: i64,
    /// Why.
    pub reason: String,
}

impl Broken {
    pub(crate) fn at(seq: i64, reason: impl Into<String>) -> Self {
        Self {
            seq,
            reason: reason.into(),
        }
    }
}

/// Whether one stored entry is as the vault wrote it: its hash recomputes from its contents and
/// its predecessor's hash, and its MAC verifies under the audit key.
pub fn entry_authentic(key: &SymmetricKey, r: &AuditRecord) -> bool {
    check_entry(key, r).is_ok()
}

/// Checks one stored entry on its own: its hash recomputes from its contents and its predecessor's
/// hash, and its MAC verifies. Returns the hash.
fn check_entry(key: &SymmetricKey, r: &AuditRecord) -> Result<[u8; 32], Broken> {
    let prev =
        from_hex::<32>(&r.prev_hash).ok_or_else(|| Broken::at(r.seq, "prev_hash is not a hash"))?;
    let computed = chain_hash(&prev, &r.canonical());
    if !ct_eq(hex(&computed).as_bytes(), r.hash.as_bytes()) {
        return Err(Broken::at(r.seq, "contents do not match the entry's hash"));
    }
    if !ct_eq(
        entry_mac(key, r.seq, &computed).as_bytes(),
        r.mac.as_bytes(),
    ) {
        return Err(Broken::at(
            r.seq,
            "the entry's MAC does not verify (written without the audit key)",
        ));
    }
    Ok(computed)
}

/// Checks the stored state on its own: the last entry recomputes and verifies, the head verifies
/// and names that same entry. Only a new vault's first append (`genesis`) may find an empty log.
/// Returns the head's position and hash.
pub fn check_stored(
    key: &SymmetricKey,
    tail: Option<&AuditRecord>,
    head: Option<&Head>,
    genesis: bool,
) -> Result<(i64, [u8; 32]), Broken> {
    match (tail, head) {
        (None, None) if genesis => Ok((0, [0u8; 32])),
        (None, None) => Err(Broken::at(
            1,
            "the audit log and its head are gone: an initialized vault always has entries",
        )),
        (Some(t), None) => Err(Broken::at(t.seq, "the anchored head is missing")),
        (None, Some(h)) => Err(Broken::at(
            1,
            format!("entries 1 to {} are missing (the log was emptied)", h.seq),
        )),
        (Some(t), Some(h)) => {
            let hash = check_entry(key, t)?;
            check_head_mac(key, h)?;
            if h.seq > t.seq {
                return Err(Broken::at(
                    t.seq + 1,
                    format!(
                        "entries {} to {} are missing (the log was cut short)",
                        t.seq + 1,
                        h.seq
                    ),
                ));
            }
            if h.seq < t.seq {
                return Err(Broken::at(h.seq + 1, "entries follow the anchored head"));
            }
            if !ct_eq(h.hash.as_bytes(), t.hash.as_bytes()) {
                return Err(Broken::at(
                    t.seq,
                    "the last entry is not the one the anchored head names",
                ));
            }
            Ok((t.seq, hash))
        }
    }
}

fn check_head_mac(key: &SymmetricKey, h: &Head) -> Result<(), Broken> {
    if ct_eq(head_mac(key, h.seq, &h.hash).as_bytes(), h.mac.as_bytes()) {
        Ok(())
    } else {
        Err(Broken::at(h.seq, "the anchored head's MAC does not verify"))
    }
}

/// The audit key and what this process has seen of the chain. A backend keeps one and calls
/// [`AuditChain::begin`] inside every write transaction, with the last stored entry and the
/// stored head, before it appends anything.
pub struct AuditChain {
    key: SymmetricKey,
    /// The highest head this process has verified or written: the log never shrinks, so a stored
    /// head below it means entries were cut off and an older authentic head put back.
    high_water: Mutex<(i64, String)>,
}

impl AuditChain {
    /// A chain authenticated under `key` (the KEK-wrapped audit key).
    pub fn new(key: SymmetricKey) -> Self {
        Self {
            key,
            high_water: Mutex::new((0, String::new())),
        }
    }

    /// The position of the highest head this process has verified or written (0 before any):
    /// a backend passes the stored entry at that position to [`AuditChain::begin`].
    pub fn seen_seq(&self) -> i64 {
        self.seen().0
    }

    /// Checks the stored state and returns an appender positioned after the last entry.
    ///
    /// `tail` is the last stored entry, `head` the stored head, and `seen` the stored entry at
    /// [`AuditChain::seen_seq`], all read inside the write transaction. They must agree, verify,
    /// and not contradict what this process has seen: the log only grows, so the entry it saw at
    /// that position must still be there, unchanged. Only the very first append of a new vault
    /// (`genesis`) may find an empty log. On a mismatch the break is logged as an alert and
    /// returned: the caller must write nothing.
    pub fn begin(
        &self,
        tail: Option<&AuditRecord>,
        head: Option<&Head>,
        seen: Option<&AuditRecord>,
        genesis: bool,
    ) -> Result<Appender<'_>, Broken> {
        let checked = check_stored(&self.key, tail, head, genesis)
            .and_then(|state| self.check_seen(state, seen).map(|()| state));
        match checked {
            Ok((seq, hash)) => {
                self.raise(seq, &hex(&hash));
                Ok(Appender {
                    chain: self,
                    seq,
                    hash,
                })
            }
            Err(broken) => {
                tracing::error!(
                    alert = "audit_broken",
                    seq = broken.seq,
                    reason = %broken.reason,
                    "audit log failed its check before an append: refusing audited operations"
                );
                Err(broken)
            }
        }
    }

    /// The stored state against this process's high-water mark.
    fn check_seen(
        &self,
        (seq, hash): (i64, [u8; 32]),
        seen: Option<&AuditRecord>,
    ) -> Result<(), Broken> {
        let (seen_seq, seen_hash) = self.seen();
        if seen_seq == 0 {
            return Ok(());
        }
        if seq < seen_seq {
            return Err(Broken::at(
                seq + 1,
                format!(
                    "the log was cut back to entry {seq}: this vault had seen it reach entry \
                     {seen_seq}"
                ),
            ));
        }
        let stored = if seq == seen_seq {
            Some(hex(&hash))
        } else {
            seen.filter(|e| e.seq == seen_seq).map(|e| e.hash.clone())
        };
        if stored.as_deref() != Some(seen_hash.as_str()) {
            return Err(Broken::at(
                seen_seq,
                "the entry this vault last saw at this position was replaced (the log was \
                 rewritten from there)",
            ));
        }
        Ok(())
    }

    fn seen(&self) -> (i64, String) {
        match self.high_water.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn raise(&self, seq: i64, hash_hex: &str) {
        let mut g = match self.high_water.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if seq > g.0 {
            *g = (seq, hash_hex.to_owned());
        }
    }

    /// Records a head the backend has committed, so that cutting the log back below it is caught.
    pub fn committed(&self, head: &Head) {
        self.raise(head.seq, &head.hash);
    }
}

/// Appends entries after a checked state, inside one write transaction.
pub struct Appender<'c> {
    chain: &'c AuditChain,
    seq: i64,
    hash: [u8; 32],
}

impl Appender<'_> {
    /// Numbers, hashes and MACs the next entry: the record to insert.
    pub fn append(&mut self, d: &AuditDraft) -> AuditRecord {
        let mut r = AuditRecord {
            seq: self.seq + 1,
            at: d.at,
            actor: d.actor.to_string(),
            action: d.action.as_str().into(),
            token: d.token.clone(),
            kind: d.kind.clone(),
            purpose: d.purpose.clone(),
            outcome: d.outcome.as_str().into(),
            detail: d.stored_detail(),
            envelope: d.envelope.map(|e| e.key()),
            prev_hash: hex(&self.hash),
            hash: String::new(),
            mac: String::new(),
        };
        let hash = chain_hash(&self.hash, &r.canonical());
        r.hash = hex(&hash);
        r.mac = entry_mac(&self.chain.key, r.seq, &hash);
        self.seq = r.seq;
        self.hash = hash;
        r
    }

    /// The head to store at the end of the transaction.
    pub fn head(&self) -> Head {
        let hash = hex(&self.hash);
        Head {
            mac: head_mac(&self.chain.key, self.seq, &hash),
            seq: self.seq,
            hash,
        }
    }
}

/// A head recorded outside the database (`audit head`), to check a later chain still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHead {
    /// Position.
    pub seq: i64,
    /// Hash, hex.
    pub hash: String,
}

impl std::str::FromStr for ExpectedHead {
    type Err = String;

    /// `SEQ:HASH`, as `audit head` prints it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = s
            .trim()
            .split_once(':')
            .ok_or("expected SEQ:HASH, as `audit head` prints it")?;
        let seq: i64 = seq.parse().map_err(|_| "SEQ must be a number")?;
        if seq < 1 || from_hex::<32>(hash).is_none() {
            return Err("expected SEQ:HASH with SEQ from 1 and a 64-character hex hash".into());
        }
        Ok(Self {
            seq,
            hash: hash.to_ascii_lowercase(),
        })
    }
}

impl std::fmt::Display for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// Walks entries in order, carrying the chain state. Feed every entry from seq 1.
pub struct Verifier<'k> {
    key: &'k SymmetricKey,
    prev_hash: [u8; 32],
    next_seq: i64,
    expect: Option<ExpectedHead>,
    expect_seen: bool,
}

impl<'k> Verifier<'k> {
    /// A verifier under the audit key, optionally checking for a recorded head.
    pub fn new(key: &'k SymmetricKey, expect: Option<ExpectedHead>) -> Self {
        Self {
            key,
            prev_hash: [0; 32],
            next_seq: 1,
            expect,
            expect_seen: false,
        }
    }

    /// A verifier that continues after an entry already verified: its position and hash (hex),
    /// as [`Verifier::verified`] and [`Verifier::last_hash`] gave them. `None` if the hash is not
    /// a hash.
    pub fn resume(key: &'k SymmetricKey, seq: i64, hash: &str) -> Option<Self> {
        Some(Self {
            key,
            prev_hash: from_hex::<32>(hash)?,
            next_seq: seq.checked_add(1)?,
            expect: None,
            expect_seen: false,
        })
    }

    /// The hash (hex) of the last entry that verified (32 zero bytes before the first).
    pub fn last_hash(&self) -> String {
        hex(&self.prev_hash)
    }

    /// Checks the next entry.
    pub fn check(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        if r.seq != self.next_seq {
            return Err(Broken::at(
                self.next_seq,
                format!("entry missing (found seq {} instead)", r.seq),
            ));
        }
        if r.prev_hash != hex(&self.prev_hash) {
            return Err(Broken::at(
                r.seq,
                "prev_hash does not match the previous entry's hash",
            ));
        }
        let computed = check_entry(self.key, r)?;
        if let Some(e) = &self.expect
            && e.seq == r.seq
        {
            if e.hash != r.hash {
                return Err(Broken::at(
                    r.seq,
                    "the entry differs from the recorded head (the log was rewritten)",
                ));
            }
            self.expect_seen = true;
        }
        self.prev_hash = computed;
        self.next_seq += 1;
        Ok(())
    }

    /// How many entries verified.
    pub fn verified(&self) -> i64 {
        self.next_seq - 1
    }

    /// After the last entry: checks the anchored head against the chain (deleted newest entries,
    /// a rewritten chain, an emptied log) and that a recorded head was found.
    pub fn finish(&self, head: Option<&Head>) -> Result<(), Broken> {
        let last = self.verified();
        let Some(h) = head else {
            return Err(if last == 0 {
                Broken::at(
                    1,
                    "the audit log and its head are gone: an initialized vault always has entries",
                )
            } else {
                Broken::at(last, "the anchored head is missing")
            });
        };
        if !ct_eq(
            head_mac(self.key, h.seq, &h.hash).as_bytes(),
            h.mac.as_bytes(),
        ) {
            return Err(Broken::at(h.seq, "the anchored head's MAC does not verify"));
        }
        if h.seq > last {
            return Err(Broken::at(
                last + 1,
                format!(
                    "entries {} to {} are missing (the log was cut short)",
                    last + 1,
                    h.seq
                ),
            ));
        }
        if h.seq < last {
            return Err(Broken::at(h.seq + 1, "entries follow the anchored head"));
        }
        if h.hash != hex(&self.prev_hash) {
            return Err(Broken::at(
                h.seq,
                "the chain does not end at the anchored head",
            ));
        }
        if let Some(e) = &self.expect
            && !self.expect_seen
        {
            return Err(Broken::at(
                last + 1,
                format!(
                    "the recorded head {} is not in the chain, which ends at entry {last} (an older \
                     copy of the database was restored)",
                    e.seq
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> SymmetricKey {
        SymmetricKey::from_bytes(&[9; 32]).unwrap()
    }

    fn draft(n: i64) -> AuditDraft {
        AuditDraft::new(n, Actor::Cli, Action::Reveal, Outcome::Plain)
            .token("tok_x")
            .purpose("chargeback")
    }

    fn chain(c: &AuditChain, n: i64) -> (Vec<AuditRecord>, Head) {
        let mut a = c.begin(None, None, None, true).unwrap();
        let entries = (1..=n).map(|i| a.append(&draft(i))).collect();
        (entries, a.head())
    }

    fn verify(entries: &[AuditRecord], head: Option<&Head>) -> Result<i64, Broken> {
        let k = key();
        let mut v = Verifier::new(&k, None);
        for e in entries {
            v.check(e)?;
        }
        v.finish(head)?;
        Ok(v.verified())
    }

    #[test]
    fn intact_chain_verifies_and_tampering_names_the_entry() {
        let c = AuditChain::new(key());
        let (entries, head) = chain(&c, 5);
        assert_eq!(verify(&entries, Some(&head)), Ok(5));

        let mut edited = entries.clone();
        edited[2].purpose = Some("chargebacc".into());
        assert_eq!(verify(&edited, Some(&head)).unwrap_err().seq, 3);

        let mut missing = entries.clone();
        missing.remove(1);
        assert_eq!(verify(&missing, Some(&head)).unwrap_err().seq, 2);

        // Rehashing the rest of the chain after an edit is what anyone can do; the MACs stop it.
        let mut rehashed = entries.clone();
        rehashed[2].purpose = Some("chargebacc".into());
        for i in 2..5 {
            let prev = if i == 0 {
                [0u8; 32]
            } else {
                from_hex::<32>(&rehashed[i - 1].hash).unwrap()
            };
            rehashed[i].prev_hash = hex(&prev);
            rehashed[i].hash = hex(&chain_hash(&prev, &rehashed[i].canonical()));
        }
        let err = verify(&rehashed, Some(&head)).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("MAC"), "{err:?}");

        assert_eq!(verify(&[], None).unwrap_err().seq, 1, "empty is broken");
        assert_eq!(verify(&entries[..3], Some(&head)).unwrap_err().seq, 4);
    }

    #[test]
    fn begin_refuses_a_tail_that_disagrees_with_the_head() {
        let c = AuditChain::new(key());
        let (entries, head) = chain(&c, 4);
        assert!(c.begin(entries.last(), Some(&head), None, false).is_ok());
        // Cut the tail: the head names entry 4, the last entry is 3.
        assert_eq!(
            c.begin(entries.get(2), Some(&head), None, false)
                .err()
                .unwrap()
                .seq,
            4
        );
        // Cut the tail and put back the head as it was at entry 3: this process saw entry 4.
        let fresh = AuditChain::new(key());
        let mut a = fresh.begin(None, None, None, true).unwrap();
        for i in 1..=3 {
            a.append(&draft(i));
        }
        let old_head = a.head();
        assert_eq!(old_head.hash, entries[2].hash);
        let err = c
            .begin(entries.get(2), Some(&old_head), None, false)
            .err()
            .unwrap();
        assert!(err.reason.contains("cut back"), "{err:?}");
        // A fresh process does not know, but `verify --expect-head` does.
        let k = key();
        let mut v = Verifier::new(&k, Some(head.to_string().parse().unwrap()));
        for e in &entries[..3] {
            v.check(e).unwrap();
        }
        assert!(v.finish(Some(&old_head)).is_err());
        // Empty log, forged head, edited tail.
        assert!(c.begin(None, None, None, false).is_err());
        assert!(c.begin(None, Some(&head), None, false).is_err());
        let mut forged = head.clone();
        forged.mac = "00".repeat(32);
        assert!(c.begin(entries.last(), Some(&forged), None, false).is_err());
        let mut edited = entries[3].clone();
        edited.outcome = "denied".into();
        assert!(c.begin(Some(&edited), Some(&head), None, false).is_err());
    }

    #[test]
    fn expected_heads_parse() {
        let h: ExpectedHead = format!("12:{}", "ab".repeat(32)).parse().unwrap();
        assert_eq!(h.seq, 12);
        assert!("12".parse::<ExpectedHead>().is_err());
        assert!("0:00".parse::<ExpectedHead>().is_err());
        assert!(
            format!("x:{}", "ab".repeat(32))
                .parse::<ExpectedHead>()
                .is_err()
        );
    }
}
