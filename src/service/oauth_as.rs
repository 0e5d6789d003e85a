//! The durable records of the OAuth 2.1 authorization server of a tenant
//! (issue 18): its settings (the login provider it is a relying party of),
//! registered OAuth clients, authorization codes, refresh-token families
//! and consents. Kept in an index beside the tenant's facts and written,
//! like every other change, through [`super::Holdfast::write_with`]: each
//! grant, refresh, revocation and consent is a batch of the change feed.
//!
//! | key                 | value                                            |
//! |---------------------|--------------------------------------------------|
//! | `as/settings`       | JSON [`AsSettings`]                              |
//! | `ac/<client_id>`    | JSON [`OAuthClient`] (secret as a SHA-256 digest) |
//! | `aa/<sha256 hex>`   | JSON [`AuthCode`], keyed by the code's digest    |
//! | `af/<family id>`    | JSON [`RefreshFamily`] (refresh tokens by digest) |
//! | `an/<sha256 hex>`   | JSON [`Consent`], keyed by a digest of (subject, client, application) |
//!
//! Codes, refresh tokens and client secrets are never stored: only their
//! SHA-256 digests. The one secret kept as it is — the login provider's
//! `client_secret`, which Holdfast must present to it — is never shown by
//! the API nor written to the change feed's readable form.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::tokens::digest_hex;
use crate::model::{MfaContext, Timestamp};
use crate::store::Op;

/// Prefix of every authorization code.
pub const CODE_PREFIX: &str = "hf_ac_";
/// Prefix of every refresh token.
pub const REFRESH_PREFIX: &str = "hf_rt_";
/// Prefix of client ids given by dynamic registration or the admin API.
pub const OAUTH_CLIENT_PREFIX: &str = "hfo_";

/// How the groups of a login's ID token count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GroupsMode {
    /// Just-in-time sync of the provider's memberships (stored tuples; a
    /// refresh sees later changes).
    #[default]
    Sync,
    /// Request-only groups carried by the grant (never stored as tuples);
    /// the refresh-token family then ends with the ID token.
    Request,
}

fn default_true() -> bool {
    true
}

fn default_mfa_acr() -> String {
    "mfa".into()
}

fn default_step_up_max_age() -> u64 {
    300
}

fn default_scopes() -> String {
    "openid".into()
}

/// The authorization server's settings for one tenant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsSettings {
    /// The identity provider (by name, `identity-providers/{name}`) users
    /// sign in at; its `audience` must contain `client_id`.
    pub login_provider: String,
    /// Holdfast's client id at that provider.
    pub client_id: String,
    /// Holdfast's client secret at that provider (sent with HTTP Basic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The `scope` asked of the provider.
    #[serde(default = "default_scopes")]
    pub login_scope: String,
    #[serde(default)]
    pub groups: GroupsMode,
    /// The `acr` value that means "multi-factor" (sent as `acr_values` on a
    /// step-up, and accepted back as MFA; an `amr` of `mfa`, `otp`, `hwk`
    /// or `swk` counts too).
    #[serde(default = "default_mfa_acr")]
    pub mfa_acr: String,
    /// The `max_age` of a step-up login, in seconds.
    #[serde(default = "default_step_up_max_age")]
    pub step_up_max_age: u64,
    /// RFC 7591 dynamic client registration (on unless switched off).
    #[serde(default = "default_true")]
    pub dynamic_registration: bool,
}

impl std::fmt::Debug for AsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsSettings")
            .field("login_provider", &self.login_provider)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl AsSettings {
    /// Checks the settings whole.
    pub fn validate(&self) -> Result<(), String> {
        crate::model::validate_id(&self.login_provider).map_err(|m| format!("`login_provider` {m}"))?;
        if self.client_id.trim().is_empty() {
            return Err("`client_id` is required".into());
        }
        for (name, uri) in
            [("authorization_endpoint", &self.authorization_endpoint), ("token_endpoint", &self.token_endpoint)]
        {
            crate::model::oidc::check_jwks_uri(uri).map_err(|m| format!("`{name}`: {m}"))?;
        }
        if self.mfa_acr.is_empty() {
            return Err("`mfa_acr` must not be empty".into());
        }
        Ok(())
    }
}

/// Where a client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// Pre-registered by an administrator.
    Admin,
    /// RFC 7591 dynamic registration.
    Dynamic,
}

/// A registered OAuth client (Client ID Metadata Document clients are not
/// stored: their document is fetched and cached).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// Matched exactly.
    pub redirect_uris: Vec<String>,
    /// Hex SHA-256 of the secret; `None`: a public client (PKCE only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// A first-party client: no consent page.
    #[serde(default)]
    pub first_party: bool,
    /// The service account a `client_credentials` grant is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    pub source: ClientSource,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// Does `secret` match? Digests are compared in constant time.
    pub fn verify(&self, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        let presented = digest_hex(secret);
        match &self.secret_sha256 {
            Some(d) => bool::from(presented.as_bytes().ct_eq(d.as_bytes())),
            None => false,
        }
    }
}

/// What an authorization code stands for (single use, 60 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub application: String,
    pub resource: String,
    pub subject: String,
    /// The scope granted at consent, sorted.
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaContext>,
    /// BASE64URL(SHA-256(code_verifier)) (RFC 7636 S256).
    pub code_challenge: String,
    pub exp: Timestamp,
    /// The refresh-token family ends no later than this (request-only
    /// groups end with their ID token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_exp: Option<Timestamp>,
    /// Set once the code was exchanged: the family it started (a second
    /// use revokes it, RFC 6749 §4.1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

/// A refresh-token family: the grant one authorization started, rotated at
/// every refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshFamily {
    pub client_id: String,
    pub subject: String,
    pub application: String,
    /// The scope granted at consent: each refresh re-intersects it.
    pub scope: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaContext>,
    pub created: Timestamp,
    pub exp: Timestamp,
    /// Digest of the one refresh token that is valid now.
    pub current: String,
    /// Digests of the refresh tokens already used (a reuse revokes the family).
    #[serde(default)]
    pub used: Vec<String>,
    /// Digests of the access tokens issued in the family (revoked with it).
    #[serde(default)]
    pub access: Vec<String>,
}

/// A user's consent to a client for an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub subject: String,
    pub client_id: String,
    pub application: String,
    pub scope: Vec<String>,
    pub at: Timestamp,
}

impl Consent {
    /// The key a consent is stored under.
    pub fn key(subject: &str, client_id: &str, application: &str) -> String {
        digest_hex(&format!("{subject}\n{client_id}\n{application}"))
    }
}

/// One change to the authorization server's records.
#[derive(Debug, Clone, PartialEq)]
pub enum OAuthChange {
    PutSettings(Box<AsSettings>),
    DeleteSettings,
    PutClient(Box<OAuthClient>),
    DeleteClient(String),
    PutCode { digest: String, code: Box<AuthCode> },
    DeleteCode { digest: String },
    PutFamily { id: String, family: Box<RefreshFamily> },
    DeleteFamily { id: String },
    PutConsent { key: String, consent: Box<Consent> },
}

/// The authorization server's records of one tenant.
#[derive(Debug, Default)]
pub struct OAuthIndex {
    settings: Option<AsSettings>,
    clients: BTreeMap<String, OAuthClient>,
    codes: HashMap<String, AuthCode>,
    families: HashMap<String, RefreshFamily>,
    /// Refresh-token digest (current or used) → family id.
    refresh: HashMap<String, String>,
    consents: HashMap<String, Consent>,
}

impl OAuthIndex {
    pub fn settings(&self) -> Option<&AsSettings> {
        self.settings.as_ref()
    }

    pub fn client(&self, id: &str) -> Option<&OAuthClient> {
        self.clients.get(id)
    }

    pub fn clients(&self) -> impl Iterator<Item = &OAuthClient> {
        self.clients.values()
    }

    /// A code by its raw value: (digest, record).
    pub fn code(&self, raw: &str) -> Option<(String, &AuthCode)> {
        let d = digest_hex(raw);
        self.codes.get(&d).map(|c| (d, c))
    }

    /// Codes that expired before `now` (to purge), by digest.
    pub fn expired_codes(&self, now: Timestamp, at_most: usize) -> Vec<String> {
        self.codes.iter().filter(|(_, c)| c.exp.0 + 600 < now.0).take(at_most).map(|(d, _)| d.clone()).collect()
    }

    /// The family a raw refresh token belongs to: (family id, family,
    /// digest of the token).
    pub fn family_of(&self, raw_refresh: &str) -> Option<(&str, &RefreshFamily, String)> {
        let d = digest_hex(raw_refresh);
        let id = self.refresh.get(&d)?;
        self.families.get(id).map(|f| (id.as_str(), f, d))
    }

    /// Refresh-token families that ended before `now` (to purge), by id.
    pub fn expired_families(&self, now: Timestamp, at_most: usize) -> Vec<String> {
        self.families.iter().filter(|(_, f)| f.exp <= now).take(at_most).map(|(id, _)| id.clone()).collect()
    }

    pub fn family(&self, id: &str) -> Option<&RefreshFamily> {
        self.families.get(id)
    }

    pub fn consent(&self, subject: &str, client_id: &str, application: &str) -> Option<&Consent> {
        self.consents.get(&Consent::key(subject, client_id, application))
    }

    fn unindex_family(&mut self, id: &str) {
        if let Some(old) = self.families.remove(id) {
            self.refresh.remove(&old.current);
            for u in &old.used {
                self.refresh.remove(u);
            }
        }
    }

    pub(super) fn apply(&mut self, c: &OAuthChange) {
        match c {
            OAuthChange::PutSettings(s) => self.settings = Some((**s).clone()),
            OAuthChange::DeleteSettings => self.settings = None,
            OAuthChange::PutClient(r) => {
                self.clients.insert(r.client_id.clone(), (**r).clone());
            }
            OAuthChange::DeleteClient(id) => {
                self.clients.remove(id);
            }
            OAuthChange::PutCode { digest, code } => {
                self.codes.insert(digest.clone(), (**code).clone());
            }
            OAuthChange::DeleteCode { digest } => {
                self.codes.remove(digest);
            }
            OAuthChange::PutFamily { id, family } => {
                self.unindex_family(id);
                self.refresh.insert(family.current.clone(), id.clone());
                for u in &family.used {
                    self.refresh.insert(u.clone(), id.clone());
                }
                self.families.insert(id.clone(), (**family).clone());
            }
            OAuthChange::DeleteFamily { id } => self.unindex_family(id),
            OAuthChange::PutConsent { key, consent } => {
                self.consents.insert(key.clone(), (**consent).clone());
            }
        }
    }
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

/// The store operation of a change.
pub fn encode(c: &OAuthChange) -> Op {
    match c {
        OAuthChange::PutSettings(s) => Op::Put { key: "as/settings".into(), value: json(s) },
        OAuthChange::DeleteSettings => Op::Delete { key: "as/settings".into() },
        OAuthChange::PutClient(r) => Op::Put { key: format!("ac/{}", r.client_id), value: json(r) },
        OAuthChange::DeleteClient(id) => Op::Delete { key: format!("ac/{id}") },
        OAuthChange::PutCode { digest, code } => Op::Put { key: format!("aa/{digest}"), value: json(code) },
        OAuthChange::DeleteCode { digest } => Op::Delete { key: format!("aa/{digest}") },
        OAuthChange::PutFamily { id, family } => Op::Put { key: format!("af/{id}"), value: json(family) },
        OAuthChange::DeleteFamily { id } => Op::Delete { key: format!("af/{id}") },
        OAuthChange::PutConsent { key, consent } => Op::Put { key: format!("an/{key}"), value: json(consent) },
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &[u8]) -> Result<Box<T>, String> {
    serde_json::from_slice(value).map(Box::new).map_err(|e| e.to_string())
}

/// Decodes a stored record (`None`: not one of these).
pub fn decode_record(key: &str, value: &[u8]) -> Option<Result<OAuthChange, String>> {
    if key == "as/settings" {
        return Some(parse(value).map(OAuthChange::PutSettings));
    }
    if key.starts_with("ac/") {
        return Some(parse(value).map(OAuthChange::PutClient));
    }
    if let Some(d) = key.strip_prefix("aa/") {
        return Some(parse(value).map(|code| OAuthChange::PutCode { digest: d.to_string(), code }));
    }
    if let Some(id) = key.strip_prefix("af/") {
        return Some(parse(value).map(|family| OAuthChange::PutFamily { id: id.to_string(), family }));
    }
    if let Some(k) = key.strip_prefix("an/") {
        return Some(parse(value).map(|consent| OAuthChange::PutConsent { key: k.to_string(), consent }));
    }
    None
}

/// Decodes one change-log operation (`None`: not one of these).
pub fn decode_op(op: &Op) -> Option<Result<OAuthChange, String>> {
    match op {
        Op::Put { key, value } => decode_record(key, value),
        Op::Delete { key } => {
            if key == "as/settings" {
                return Some(Ok(OAuthChange::DeleteSettings));
            }
            if let Some(id) = key.strip_prefix("ac/") {
                return Some(Ok(OAuthChange::DeleteClient(id.to_string())));
            }
            if let Some(d) = key.strip_prefix("aa/") {
                return Some(Ok(OAuthChange::DeleteCode { digest: d.to_string() }));
            }
            key.strip_prefix("af/").map(|id| Ok(OAuthChange::DeleteFamily { id: id.to_string() }))
        }
    }
}

/// A fresh random secret value with a prefix (32 random bytes) and its digest.
pub fn new_secret(prefix: &str) -> Result<(String, String), getrandom::Error> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)?;
    let text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let value = format!("{prefix}{text}");
    let digest = digest_hex(&value);
    Ok((value, digest))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refresh_tokens_index_their_family() {
        let fam = RefreshFamily {
            client_id: "c".into(),
            subject: "user:alice".into(),
            application: "deploy-mcp".into(),
            scope: vec!["deploy:read".into()],
            groups: vec![],
            mfa: None,
            created: Timestamp(1),
            exp: Timestamp(100),
            current: digest_hex("rt2"),
            used: vec![digest_hex("rt1")],
            access: vec![],
        };
        let put = OAuthChange::PutFamily { id: "f1".into(), family: Box::new(fam) };
        assert_eq!(decode_op(&encode(&put)).unwrap().unwrap(), put);
        let mut idx = OAuthIndex::default();
        idx.apply(&put);
        assert_eq!(idx.family_of("rt1").unwrap().0, "f1");
        assert_eq!(idx.family_of("rt2").unwrap().1.current, digest_hex("rt2"));
        let del = OAuthChange::DeleteFamily { id: "f1".into() };
        assert_eq!(decode_op(&encode(&del)).unwrap().unwrap(), del);
        idx.apply(&del);
        assert!(idx.family_of("rt1").is_none() && idx.family_of("rt2").is_none());
        let (code, digest) = new_secret(CODE_PREFIX).unwrap();
        assert!(code.starts_with(CODE_PREFIX) && digest == digest_hex(&code));
        assert!(decode_record("o/user:x", b"{}").is_none());
    }
}
