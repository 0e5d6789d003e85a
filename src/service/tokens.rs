//! OAuth access tokens and application client credentials: durable records
//! of a tenant, kept in an in-memory index beside the tenant's facts.
//!
//! | key                     | value                                          |
//! |-------------------------|------------------------------------------------|
//! | `x/<sha256 hex>`        | JSON [`TokenRecord`] of an opaque access token |
//! | `c/<client_id>`         | JSON [`ClientRecord`] of an application        |
//!
//! Raw tokens and client secrets are never stored or logged: only their
//! SHA-256 digests. A secret is checked by comparing digests in constant
//! time. Token writes go through the tenant's atomic write path
//! ([`super::Holdfast::write_tokens`]): they get revisions and appear in the
//! change log (by digest prefix, never by value).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::model::{Attributes, MfaContext, Timestamp};
use crate::store::Op;

/// Prefix of every access token Holdfast mints.
pub const TOKEN_PREFIX: &str = "hf_at_";
/// Prefix of every client secret.
pub const SECRET_PREFIX: &str = "hf_cs_";
/// Prefix of every client id Holdfast assigns.
pub const CLIENT_PREFIX: &str = "hfc_";

/// What a token stands for. Its scope is re-intersected with what the
/// subject holds at every introspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    pub subject: String,
    pub application: String,
    /// The OAuth client the token was issued to (e.g. an MCP client).
    pub client_id: String,
    /// The scope granted at minting, sorted.
    pub scope: Vec<String>,
    pub iat: Timestamp,
    pub exp: Timestamp,
    /// The subject's MFA state at minting: introspection evaluates MFA
    /// conditions against it, so a `max_age` keeps counting from `auth_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaContext>,
    /// The attributes given at minting: introspection evaluates attribute
    /// conditions against them.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
    /// Minted with an OIDC ID token: its groups, which count (for this
    /// token alone) as direct memberships of the subject at every
    /// introspection, as they did at minting. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// A client credential of an application (a resource server that
/// introspects tokens).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRecord {
    pub client_id: String,
    pub application: String,
    /// Hex SHA-256 of the client secret.
    pub secret_sha256: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("application", &self.application)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl ClientRecord {
    /// Does `secret` match? Digests are compared in constant time.
    pub fn verify(&self, secret: &str) -> bool {
        let presented = digest_hex(secret);
        bool::from(presented.as_bytes().ct_eq(self.secret_sha256.as_bytes()))
    }
}

/// One change to a tenant's tokens or credentials.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenChange {
    /// A new token, keyed by the hex SHA-256 of its value.
    Issue {
        digest: String,
        record: TokenRecord,
    },
    Revoke {
        digest: String,
    },
    PutClient(ClientRecord),
    DeleteClient(String),
}

/// The tokens and client credentials of one tenant.
#[derive(Debug, Default)]
pub struct TokenIndex {
    tokens: HashMap<String, TokenRecord>,
    clients: BTreeMap<String, ClientRecord>,
}

impl TokenIndex {
    /// The record of a raw token value, if it was minted here and not revoked.
    pub fn token(&self, raw: &str) -> Option<(&str, &TokenRecord)> {
        self.tokens.get_key_value(&digest_hex(raw)).map(|(k, v)| (k.as_str(), v))
    }

    pub fn client(&self, client_id: &str) -> Option<&ClientRecord> {
        self.clients.get(client_id)
    }

    /// The credentials of one application, by client id.
    pub fn clients_of(&self, application: &str) -> Vec<&ClientRecord> {
        self.clients.values().filter(|c| c.application == application).collect()
    }

    pub(super) fn apply(&mut self, c: &TokenChange) {
        match c {
            TokenChange::Issue { digest, record } => {
                self.tokens.insert(digest.clone(), record.clone());
            }
            TokenChange::Revoke { digest } => {
                self.tokens.remove(digest);
            }
            TokenChange::PutClient(r) => {
                self.clients.insert(r.client_id.clone(), r.clone());
            }
            TokenChange::DeleteClient(id) => {
                self.clients.remove(id);
            }
        }
    }
}

/// Hex SHA-256 of a token or secret.
pub fn digest_hex(raw: &str) -> String {
    hex(&Sha256::digest(raw.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw)?;
    Ok(hex(&raw))
}

/// A fresh access token (32 random bytes) and its digest.
pub fn new_token() -> Result<(String, String), getrandom::Error> {
    let raw = format!("{TOKEN_PREFIX}{}", random_hex(32)?);
    let digest = digest_hex(&raw);
    Ok((raw, digest))
}

/// A fresh client id and client secret (32 random bytes).
pub fn new_client() -> Result<(String, String), getrandom::Error> {
    Ok((format!("{CLIENT_PREFIX}{}", random_hex(12)?), format!("{SECRET_PREFIX}{}", random_hex(32)?)))
}

/// The first characters of a digest: names a token in logs and the change
/// feed without being usable to find it by value.
pub fn token_id(digest: &str) -> &str {
    digest.get(..16).unwrap_or(digest)
}

/// The store operation of a change.
pub fn encode(c: &TokenChange) -> Op {
    let json = |v: Result<Vec<u8>, serde_json::Error>| v.unwrap_or_else(|_| b"{}".to_vec());
    match c {
        TokenChange::Issue { digest, record } => {
            Op::Put { key: format!("x/{digest}"), value: json(serde_json::to_vec(record)) }
        }
        TokenChange::Revoke { digest } => Op::Delete { key: format!("x/{digest}") },
        TokenChange::PutClient(r) => Op::Put { key: format!("c/{}", r.client_id), value: json(serde_json::to_vec(r)) },
        TokenChange::DeleteClient(id) => Op::Delete { key: format!("c/{id}") },
    }
}

/// Decodes a stored token or credential record (`None`: not one).
pub fn decode_record(key: &str, value: &[u8]) -> Option<Result<TokenChange, String>> {
    if let Some(digest) = key.strip_prefix("x/") {
        let r = serde_json::from_slice(value)
            .map(|record| TokenChange::Issue { digest: digest.to_string(), record })
            .map_err(|e| e.to_string());
        return Some(r);
    }
    if key.starts_with("c/") {
        return Some(serde_json::from_slice(value).map(TokenChange::PutClient).map_err(|e| e.to_string()));
    }
    None
}

/// Decodes one change-log operation on tokens or credentials (`None`: not one).
pub fn decode_op(op: &Op) -> Option<Result<TokenChange, String>> {
    match op {
        Op::Put { key, value } => decode_record(key, value),
        Op::Delete { key } => {
            if let Some(d) = key.strip_prefix("x/") {
                return Some(Ok(TokenChange::Revoke { digest: d.to_string() }));
            }
            key.strip_prefix("c/").map(|id| Ok(TokenChange::DeleteClient(id.to_string())))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_stored_by_digest() {
        let (a, da) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64, "{a}");
        assert_eq!(da, digest_hex(&a));
        let record = TokenRecord {
            subject: "user:alice".into(),
            application: "deploy-mcp".into(),
            client_id: "claude".into(),
            scope: vec!["deploy:read".into()],
            iat: Timestamp(1),
            exp: Timestamp(3601),
            mfa: None,
            attributes: Attributes::default(),
            groups: vec![],
        };
        let issue = TokenChange::Issue { digest: da.clone(), record };
        let op = encode(&issue);
        assert_eq!(op.key(), format!("x/{da}"));
        let Op::Put { value, .. } = &op else { panic!("a put") };
        assert!(!String::from_utf8_lossy(value).contains(&a[TOKEN_PREFIX.len()..]), "the raw token is not stored");
        assert_eq!(decode_op(&op).unwrap().unwrap(), issue);
        let mut idx = TokenIndex::default();
        idx.apply(&issue);
        assert_eq!(idx.token(&a).unwrap().1.subject, "user:alice");
        assert!(idx.token(&b).is_none());
        let revoke = TokenChange::Revoke { digest: da };
        assert_eq!(decode_op(&encode(&revoke)).unwrap().unwrap(), revoke);
        idx.apply(&revoke);
        assert!(idx.token(&a).is_none());
        assert!(decode_record("t/x", b"{}").is_none());
    }

    #[test]
    fn client_secrets_verify_in_constant_time_and_never_print() {
        let (id, secret) = new_client().unwrap();
        assert!(id.starts_with(CLIENT_PREFIX) && secret.starts_with(SECRET_PREFIX));
        let c = ClientRecord {
            client_id: id.clone(),
            application: "deploy-mcp".into(),
            secret_sha256: digest_hex(&secret),
            created_at: Timestamp(0),
        };
        assert!(c.verify(&secret));
        assert!(!c.verify("hf_cs_wrong"));
        assert!(!format!("{c:?}").contains(&c.secret_sha256));
        let put = TokenChange::PutClient(c);
        assert_eq!(decode_op(&encode(&put)).unwrap().unwrap(), put);
        let del = TokenChange::DeleteClient(id);
        assert_eq!(decode_op(&encode(&del)).unwrap().unwrap(), del);
    }
}
