//! SCIM bearer tokens: per-tenant credentials of an identity provider
//! (Okta, Entra ID) that provisions users and groups over SCIM 2.0. They are
//! separate from API keys, durable records of the tenant, and kept in an
//! in-memory index beside the tenant's facts.
//!
//! | key          | value                          |
//! |--------------|--------------------------------|
//! | `k/<id>`     | JSON [`ScimTokenRecord`]       |
//!
//! Only the SHA-256 of a token is stored; a presented token is checked
//! against every digest of its tenant in constant time. Token writes go
//! through [`Holdfast::write_scim_tokens`]: one store commit, one revision,
//! in the change log by id (never by value).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Change, Holdfast, WriteError};
use crate::model::Timestamp;
use crate::store::Op;

/// Prefix of every SCIM token value.
pub const SCIM_TOKEN_PREFIX: &str = "hf_scim_";
/// Prefix of every SCIM token id.
pub const SCIM_TOKEN_ID_PREFIX: &str = "st_";
const KEY_PREFIX: &str = "k/";

/// A stored SCIM token: its id, the hex SHA-256 of its value, its creation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimTokenRecord {
    pub id: String,
    pub sha256: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for ScimTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimTokenRecord")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// One change to a tenant's SCIM tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum ScimTokenChange {
    Put(ScimTokenRecord),
    Delete(String),
}

/// The SCIM tokens of one tenant, by id.
#[derive(Debug, Default)]
pub struct ScimTokenIndex {
    tokens: BTreeMap<String, ScimTokenRecord>,
}

impl ScimTokenIndex {
    /// The id of the token `raw`, if it is one of this tenant's. Every
    /// digest is compared, in constant time.
    pub fn authenticate(&self, raw: &str) -> Option<&str> {
        let presented = digest_hex(raw);
        let mut found = None;
        for r in self.tokens.values() {
            if bool::from(r.sha256.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(r.id.as_str());
            }
        }
        found
    }

    /// Every token, by id.
    pub fn list(&self) -> impl Iterator<Item = &ScimTokenRecord> {
        self.tokens.values()
    }

    pub fn get(&self, id: &str) -> Option<&ScimTokenRecord> {
        self.tokens.get(id)
    }

    pub(super) fn apply(&mut self, c: &ScimTokenChange) {
        match c {
            ScimTokenChange::Put(r) => {
                self.tokens.insert(r.id.clone(), r.clone());
            }
            ScimTokenChange::Delete(id) => {
                self.tokens.remove(id);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a token.
pub fn digest_hex(raw: &str) -> String {
    hex(&Sha256::digest(raw.as_bytes()))
}

/// A fresh token (32 random bytes) and its record.
pub fn new_token(created_at: Timestamp) -> Result<(String, ScimTokenRecord), getrandom::Error> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let raw = format!("{SCIM_TOKEN_PREFIX}{}", hex(&secret));
    let record =
        ScimTokenRecord { id: format!("{SCIM_TOKEN_ID_PREFIX}{}", hex(&id)), sha256: digest_hex(&raw), created_at };
    Ok((raw, record))
}

/// The store operation of a change.
pub fn encode(c: &ScimTokenChange) -> Op {
    match c {
        ScimTokenChange::Put(r) => Op::Put {
            key: format!("{KEY_PREFIX}{}", r.id),
            value: serde_json::to_vec(r).unwrap_or_else(|_| b"{}".to_vec()),
        },
        ScimTokenChange::Delete(id) => Op::Delete { key: format!("{KEY_PREFIX}{id}") },
    }
}

/// Decodes a stored SCIM token record (`None`: not one).
pub fn decode_record(key: &str, value: &[u8]) -> Option<Result<ScimTokenChange, String>> {
    key.strip_prefix(KEY_PREFIX)?;
    Some(serde_json::from_slice(value).map(ScimTokenChange::Put).map_err(|e| e.to_string()))
}

/// Decodes one change-log operation on SCIM tokens (`None`: not one).
pub fn decode_op(op: &Op) -> Option<Result<ScimTokenChange, String>> {
    match op {
        Op::Put { key, value } => decode_record(key, value),
        Op::Delete { key } => key.strip_prefix(KEY_PREFIX).map(|id| Ok(ScimTokenChange::Delete(id.to_string()))),
    }
}

impl Holdfast {
    /// Writes SCIM token changes of a tenant (created if new) atomically,
    /// through the one commit path.
    pub fn write_scim_tokens(
        &self,
        tenant: &str,
        changes: Vec<ScimTokenChange>,
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, WriteError> {
        self.write(tenant, changes.into_iter().map(Change::ScimToken).collect(), &[], actor, at_unix_ms)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_by_digest_and_authenticate() {
        let (raw, rec) = new_token(Timestamp(5)).unwrap();
        let (other, _) = new_token(Timestamp(5)).unwrap();
        assert!(raw.starts_with(SCIM_TOKEN_PREFIX) && raw.len() == SCIM_TOKEN_PREFIX.len() + 64);
        assert!(rec.id.starts_with(SCIM_TOKEN_ID_PREFIX));
        let put = ScimTokenChange::Put(rec.clone());
        let op = encode(&put);
        let Op::Put { value, .. } = &op else { panic!("a put") };
        assert!(!String::from_utf8_lossy(value).contains(&raw[SCIM_TOKEN_PREFIX.len()..]));
        assert!(!format!("{rec:?}").contains(&rec.sha256));
        assert_eq!(decode_op(&op).unwrap().unwrap(), put);
        let mut idx = ScimTokenIndex::default();
        idx.apply(&put);
        assert_eq!(idx.authenticate(&raw), Some(rec.id.as_str()));
        assert_eq!(idx.authenticate(&other), None);
        let del = ScimTokenChange::Delete(rec.id.clone());
        assert_eq!(decode_op(&encode(&del)).unwrap().unwrap(), del);
        idx.apply(&del);
        assert_eq!(idx.authenticate(&raw), None);
        assert!(decode_record("x/abc", b"{}").is_none());
    }
}
