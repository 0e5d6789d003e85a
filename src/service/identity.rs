//! OIDC identity providers of a tenant: their stored settings, the cache of
//! the key sets they publish at a `jwks_uri`, the verification of their ID
//! tokens, and just-in-time sync of a user's groups from a token.
//!
//! | key                     | value                                        |
//! |-------------------------|----------------------------------------------|
//! | `p/<name>`              | JSON [`IdentityProvider`]                    |
//! | `m/<provider>/<user>`   | JSON `{"groups": [...]}`: the memberships of `user:<user>` that this provider's sync created |
//!
//! Memberships themselves stay ordinary `group:g#member@user:u` tuples (the
//! engine sees no difference); the `m/` record says which of them a
//! provider owns, so a sync adds and removes exactly those and never a
//! membership that SCIM, the API or a policy file wrote. A sync that finds
//! a token group already held through another source leaves it to that
//! source (it is not "added" and a later sync will not remove it).
//!
//! Key sets at a `jwks_uri` are fetched with a blocking client (callers run
//! this off the async threads) and cached per (tenant, provider): refreshed
//! when their max age passes, and at most once a minute when a token names
//! an unknown `kid`; when a fetch fails the last good set keeps serving.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};

use super::{Change, Holdfast, TenantState, WriteError};
use crate::model::oidc::{self, IdentityProvider, ProviderError, TokenError, VerifiedToken};
use crate::model::{validate_id, ObjectRef, ObjectType, Timestamp, Tuple};
use crate::store::Op;

const PROVIDER_PREFIX: &str = "p/";
const SYNCED_PREFIX: &str = "m/";

/// One change to a tenant's identity providers or to what their syncs own.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityChange {
    PutProvider(String, Box<IdentityProvider>),
    DeleteProvider(String),
    /// The groups of `user` whose membership `provider`'s sync created.
    PutSynced {
        provider: String,
        user: String,
        groups: Vec<String>,
    },
    DeleteSynced {
        provider: String,
        user: String,
    },
}

impl IdentityChange {
    pub(super) fn validate(&self) -> Result<(), WriteError> {
        match self {
            IdentityChange::PutProvider(name, p) => p.validate(name).map_err(WriteError::IdentityProvider),
            IdentityChange::DeleteProvider(name) => {
                validate_id(name).map_err(|m| WriteError::IdentityProvider(ProviderError::BadName(name.clone(), m)))
            }
            IdentityChange::PutSynced { provider, user, groups } => {
                for id in std::iter::once(provider).chain(std::iter::once(user)).chain(groups) {
                    validate_id(id).map_err(|m| WriteError::BadObject(id.clone(), m))?;
                }
                Ok(())
            }
            IdentityChange::DeleteSynced { .. } => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncedValue {
    groups: Vec<String>,
}

/// The identity providers of one tenant and what their syncs own.
#[derive(Debug, Default)]
pub struct IdentityIndex {
    providers: BTreeMap<String, IdentityProvider>,
    /// (provider, user) → groups.
    synced: BTreeMap<(String, String), BTreeSet<String>>,
}

impl IdentityIndex {
    pub fn provider(&self, name: &str) -> Option<&IdentityProvider> {
        self.providers.get(name)
    }

    /// Every provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = (&String, &IdentityProvider)> {
        self.providers.iter()
    }

    /// The groups of `user` that `provider`'s sync owns.
    pub fn synced_groups(&self, provider: &str, user: &str) -> Option<&BTreeSet<String>> {
        self.synced.get(&(provider.to_string(), user.to_string()))
    }

    /// The provider whose sync created `group:<group>#member@user:<user>`,
    /// if one did.
    pub fn membership_source(&self, group: &str, user: &str) -> Option<&str> {
        self.providers
            .keys()
            .find(|p| self.synced_groups(p, user).is_some_and(|g| g.contains(group)))
            .map(|p| p.as_str())
    }

    /// Users whose memberships `provider`'s sync owns, with the groups.
    fn synced_by<'a>(&'a self, provider: &'a str) -> impl Iterator<Item = (&'a str, &'a BTreeSet<String>)> + 'a {
        self.synced.iter().filter(move |((p, _), _)| p == provider).map(|((_, u), g)| (u.as_str(), g))
    }

    pub(super) fn apply(&mut self, c: &IdentityChange) {
        match c {
            IdentityChange::PutProvider(name, p) => {
                self.providers.insert(name.clone(), (**p).clone());
            }
            IdentityChange::DeleteProvider(name) => {
                self.providers.remove(name);
            }
            IdentityChange::PutSynced { provider, user, groups } => {
                self.synced.insert((provider.clone(), user.clone()), groups.iter().cloned().collect());
            }
            IdentityChange::DeleteSynced { provider, user } => {
                self.synced.remove(&(provider.clone(), user.clone()));
            }
        }
    }
}

/// The store operation of a change.
pub fn encode(c: &IdentityChange) -> Op {
    match c {
        IdentityChange::PutProvider(name, p) => Op::Put {
            key: format!("{PROVIDER_PREFIX}{name}"),
            value: serde_json::to_vec(p).unwrap_or_else(|_| b"{}".to_vec()),
        },
        IdentityChange::DeleteProvider(name) => Op::Delete { key: format!("{PROVIDER_PREFIX}{name}") },
        IdentityChange::PutSynced { provider, user, groups } => Op::Put {
            key: format!("{SYNCED_PREFIX}{provider}/{user}"),
            value: serde_json::to_vec(&SyncedValue { groups: groups.clone() }).unwrap_or_else(|_| b"{}".to_vec()),
        },
        IdentityChange::DeleteSynced { provider, user } => {
            Op::Delete { key: format!("{SYNCED_PREFIX}{provider}/{user}") }
        }
    }
}

fn synced_key(rest: &str) -> Result<(String, String), String> {
    rest.split_once('/')
        .map(|(p, u)| (p.to_string(), u.to_string()))
        .ok_or_else(|| "expected `m/<provider>/<user>`".into())
}

/// Decodes a stored identity record (`None`: not one).
pub fn decode_record(key: &str, value: &[u8]) -> Option<Result<IdentityChange, String>> {
    if let Some(name) = key.strip_prefix(PROVIDER_PREFIX) {
        return Some(
            serde_json::from_slice::<IdentityProvider>(value)
                .map(|p| IdentityChange::PutProvider(name.to_string(), Box::new(p)))
                .map_err(|e| e.to_string()),
        );
    }
    let rest = key.strip_prefix(SYNCED_PREFIX)?;
    Some(synced_key(rest).and_then(|(provider, user)| {
        let v: SyncedValue = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        Ok(IdentityChange::PutSynced { provider, user, groups: v.groups })
    }))
}

/// Decodes one change-log operation on identity records (`None`: not one).
pub fn decode_op(op: &Op) -> Option<Result<IdentityChange, String>> {
    match op {
        Op::Put { key, value } => decode_record(key, value),
        Op::Delete { key } => {
            if let Some(name) = key.strip_prefix(PROVIDER_PREFIX) {
                return Some(Ok(IdentityChange::DeleteProvider(name.to_string())));
            }
            let rest = key.strip_prefix(SYNCED_PREFIX)?;
            Some(synced_key(rest).map(|(provider, user)| IdentityChange::DeleteSynced { provider, user }))
        }
    }
}

// ------------------------------------------------------------ JWKS cache

/// Least time between two refreshes caused by unknown `kid`s or failures.
const REFRESH_INTERVAL_SECS: i64 = 60;
/// How long a fetched set is used when the answer names no max age.
const DEFAULT_MAX_AGE_SECS: i64 = 300;
const MAX_MAX_AGE_SECS: i64 = 86_400;
/// Largest key set read.
const MAX_JWKS_BYTES: u64 = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Slot {
    uri: String,
    keys: Option<Arc<JwkSet>>,
    fetched_at: i64,
    max_age: i64,
    /// No refresh for an unknown `kid` or after a failure before this.
    quiet_until: i64,
}

/// Fetches a key set: (the set, its max age from `Cache-Control`).
pub type Fetcher = fn(&str) -> Result<(serde_json::Value, Option<i64>), String>;

/// (tenant, provider) → its slot, locked on its own while it fetches.
type Slots = HashMap<(String, String), Arc<Mutex<Slot>>>;

/// The key sets of every tenant's `jwks_uri` providers.
pub struct JwksCache {
    slots: Mutex<Slots>,
    fetch: Fetcher,
}

impl Default for JwksCache {
    fn default() -> Self {
        JwksCache { slots: Mutex::default(), fetch: fetch_jwks }
    }
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache that fetches with `fetch` (tests).
    pub fn with_fetcher(fetch: Fetcher) -> Self {
        JwksCache { slots: Mutex::default(), fetch }
    }

    /// The key set of provider `name` of `tenant` at `uri`, fetched or
    /// refreshed as the rules above say; `kid` is the key the caller needs.
    fn keys(&self, tenant: &str, name: &str, uri: &str, kid: &str, now: i64) -> Result<Arc<JwkSet>, TokenError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry((tenant.to_string(), name.to_string())).or_default().clone()
        };
        // One fetch per provider at a time; other providers are not held up.
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        if s.uri != uri {
            *s = Slot { uri: uri.to_string(), ..Slot::default() };
        }
        let stale = s.keys.is_some() && now >= s.fetched_at + s.max_age;
        let missing = s.keys.as_ref().is_some_and(|k| k.find(kid).is_none());
        let fetch = (s.keys.is_none() || stale || missing) && now >= s.quiet_until;
        if fetch {
            if missing {
                s.quiet_until = now + REFRESH_INTERVAL_SECS;
            }
            tracing::info!(tenant, provider = name, "fetching the identity provider's key set");
            match (self.fetch)(uri).and_then(|(v, max_age)| Ok((oidc::parse_jwks(&v)?, max_age))) {
                Ok((set, max_age)) => {
                    s.keys = Some(Arc::new(set));
                    s.fetched_at = now;
                    s.max_age = max_age.unwrap_or(DEFAULT_MAX_AGE_SECS).clamp(REFRESH_INTERVAL_SECS, MAX_MAX_AGE_SECS);
                }
                Err(e) => {
                    // The last good set keeps serving.
                    tracing::warn!(tenant, provider = name, error = %e, "cannot fetch the key set");
                    s.quiet_until = now + REFRESH_INTERVAL_SECS;
                    if s.keys.is_none() {
                        return Err(TokenError::UnknownKey(format!("the key set at `{uri}` cannot be fetched")));
                    }
                }
            }
        }
        s.keys.clone().ok_or_else(|| TokenError::UnknownKey(format!("the key set at `{uri}` is not available yet")))
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<i64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<i64>().ok())
}

/// GETs a key set (no redirects, a timeout, a size limit).
pub fn fetch_jwks(uri: &str) -> Result<(serde_json::Value, Option<i64>), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(FETCH_TIMEOUT))
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut res = agent.get(uri).header("accept", "application/json").call().map_err(|e| e.to_string())?;
    if res.status().as_u16() != 200 {
        return Err(format!("`{uri}` answered {}", res.status().as_u16()));
    }
    let age = res.headers().get("cache-control").and_then(|v| v.to_str().ok()).and_then(max_age);
    let body = res.body_mut().with_config().limit(MAX_JWKS_BYTES).read_to_vec().map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&body).map_err(|_| format!("`{uri}` did not answer JSON"))?;
    Ok((v, age))
}

// ------------------------------------------------------------ the service

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("identity provider `{0}` does not exist")]
    UnknownProvider(String),
    #[error("tenant `{0}` does not exist")]
    UnknownTenant(String),
    #[error("{0}")]
    Write(#[from] WriteError),
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncOutcome {
    /// `user:<id>`.
    pub user: String,
    /// Groups joined, sorted.
    pub added: Vec<String>,
    /// Groups left, sorted.
    pub removed: Vec<String>,
    /// Token values that named no group (not mapped, or not valid ids).
    pub ignored: Vec<String>,
    /// The revision of the write, or the tenant's when nothing changed.
    pub revision: u64,
}

fn member(group: &str, user: &str) -> Tuple {
    Tuple::new(ObjectRef::new(ObjectType::Group, group), "member", ObjectRef::new(ObjectType::User, user))
}

impl TenantState {
    /// Identity providers and what their syncs own.
    pub fn identity(&self) -> &IdentityIndex {
        &self.identity
    }
}

impl Holdfast {
    /// The key set that verifies tokens of `p` (inline, or fetched).
    fn provider_keys(
        &self,
        tenant: &str,
        name: &str,
        p: &IdentityProvider,
        kid: &str,
        now: Timestamp,
    ) -> Result<Arc<JwkSet>, TokenError> {
        match (&p.jwks, &p.jwks_uri) {
            (Some(set), _) => oidc::parse_jwks(set).map(Arc::new).map_err(TokenError::UnknownKey),
            (None, Some(uri)) => self.jwks.keys(tenant, name, uri, kid, now.0),
            (None, None) => Err(TokenError::UnknownKey("the provider has no keys".into())),
        }
    }

    /// Verifies an ID token of `tenant`: with `provider` named, against that
    /// provider; else against the providers whose issuer the token names.
    /// May fetch a key set over the network: call it off the async threads.
    /// Answers the provider's name and what the token says.
    pub fn verify_id_token(
        &self,
        tenant: &str,
        provider: Option<&str>,
        token: &str,
        now: Timestamp,
    ) -> Result<(String, VerifiedToken), IdentityError> {
        if token.len() > oidc::MAX_TOKEN_BYTES {
            // Refused before anything reads it.
            return Err(TokenError::Malformed(format!(
                "it is {} bytes (at most {})",
                token.len(),
                oidc::MAX_TOKEN_BYTES
            ))
            .into());
        }
        let t = self.tenant(tenant).ok_or_else(|| IdentityError::UnknownTenant(tenant.to_string()))?;
        // The settings are copied out: no lock is held while keys are fetched.
        let candidates: Vec<(String, IdentityProvider)> = {
            let st = t.read();
            match provider {
                Some(name) => vec![(
                    name.to_string(),
                    st.identity
                        .provider(name)
                        .cloned()
                        .ok_or_else(|| IdentityError::UnknownProvider(name.to_string()))?,
                )],
                None => {
                    let iss = oidc::peek_issuer(token)?;
                    st.identity
                        .providers()
                        .filter(|(_, p)| p.issuer == iss)
                        .map(|(n, p)| (n.clone(), p.clone()))
                        .collect()
                }
            }
        };
        let mut first_err = None;
        for (name, p) in candidates {
            let attempt = oidc::token_key_id(&p, token)
                .and_then(|kid| self.provider_keys(tenant, &name, &p, &kid, now))
                .and_then(|keys| oidc::verify(&p, &keys, token, now));
            match attempt {
                Ok(v) => return Ok((name, v)),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(TokenError::WrongIssuer).into())
    }

    /// Creates or replaces an identity provider (one write; `true`: created).
    pub fn put_identity_provider(
        &self,
        tenant: &str,
        name: &str,
        provider: IdentityProvider,
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<(u64, bool), IdentityError> {
        provider.validate(name).map_err(WriteError::IdentityProvider)?;
        let (rev, created) = self.write_with(tenant, actor, at_unix_ms, |st| {
            let created = st.identity.provider(name).is_none();
            let unchanged = st.identity.provider(name) == Some(&provider);
            let changes = if unchanged {
                vec![]
            } else {
                vec![Change::Identity(IdentityChange::PutProvider(name.to_string(), Box::new(provider.clone())))]
            };
            Ok::<_, IdentityError>((changes, (created, st.revision())))
        })?;
        Ok((rev.unwrap_or(created.1), created.0))
    }

    /// Deletes an identity provider with the memberships its syncs created
    /// (one write: a provider no longer trusted grants nothing).
    pub fn delete_identity_provider(
        &self,
        tenant: &str,
        name: &str,
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, IdentityError> {
        if self.tenant(tenant).is_none() {
            return Err(IdentityError::UnknownProvider(name.to_string()));
        }
        let (rev, _) = self.write_with(tenant, actor, at_unix_ms, |st| {
            if st.identity.provider(name).is_none() {
                return Err(IdentityError::UnknownProvider(name.to_string()));
            }
            let mut changes = Vec::new();
            for (user, groups) in st.identity.synced_by(name) {
                for g in groups {
                    let t = member(g, user);
                    if st.tuple_exists(&t) && !other_owner(st, name, g, user) {
                        changes.push(Change::DeleteTuple(t));
                    }
                }
                changes.push(Change::Identity(IdentityChange::DeleteSynced {
                    provider: name.to_string(),
                    user: user.to_string(),
                }));
            }
            changes.push(Change::Identity(IdentityChange::DeleteProvider(name.to_string())));
            Ok((changes, ()))
        })?;
        rev.ok_or_else(|| IdentityError::UnknownProvider(name.to_string()))
    }

    /// Just-in-time sync: verifies `token` against provider `name` and sets
    /// the memberships of its user that came from this provider to exactly
    /// the token's groups, in one write with the actor `oidc:<name>`.
    /// Memberships from any other source are left as they are.
    pub fn sync_identity(
        &self,
        tenant: &str,
        name: &str,
        token: &str,
        now: Timestamp,
        at_unix_ms: u64,
    ) -> Result<SyncOutcome, IdentityError> {
        let (_, v) = self.verify_id_token(tenant, Some(name), token, now)?;
        let actor = format!("oidc:{name}");
        let (rev, mut out) = self.write_with(tenant, &actor, at_unix_ms, |st| {
            if st.identity.provider(name).is_none() {
                return Err(IdentityError::UnknownProvider(name.to_string()));
            }
            let owned: BTreeSet<String> = st.identity.synced_groups(name, &v.user).cloned().unwrap_or_default();
            let wanted: BTreeSet<&String> = v.groups.iter().collect();
            let mut changes = Vec::new();
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            let mut keep: Vec<String> = Vec::new();
            for g in &wanted {
                let t = member(g, &v.user);
                let exists = st.tuple_exists(&t);
                if owned.contains(*g) {
                    keep.push((*g).clone());
                    if !exists {
                        changes.push(Change::PutTuple(t, None));
                        added.push((*g).clone());
                    }
                } else if !exists {
                    keep.push((*g).clone());
                    changes.push(Change::PutTuple(t, None));
                    added.push((*g).clone());
                }
                // Held through another source: that source's to keep or drop.
            }
            for g in owned.iter().filter(|g| !wanted.contains(g)) {
                let t = member(g, &v.user);
                if st.tuple_exists(&t) && !other_owner(st, name, g, &v.user) {
                    changes.push(Change::DeleteTuple(t));
                    removed.push(g.clone());
                }
            }
            let kept: BTreeSet<String> = keep.into_iter().collect();
            if kept != owned {
                changes.push(Change::Identity(if kept.is_empty() {
                    IdentityChange::DeleteSynced { provider: name.to_string(), user: v.user.clone() }
                } else {
                    IdentityChange::PutSynced {
                        provider: name.to_string(),
                        user: v.user.clone(),
                        groups: kept.into_iter().collect(),
                    }
                }));
            }
            let out = SyncOutcome {
                user: format!("user:{}", v.user),
                added,
                removed,
                ignored: v.ignored.clone(),
                revision: st.revision(),
            };
            Ok((changes, out))
        })?;
        if let Some(r) = rev {
            out.revision = r;
        }
        Ok(out)
    }
}

/// Does another provider's sync also own this membership?
fn other_owner(st: &TenantState, provider: &str, group: &str, user: &str) -> bool {
    st.identity
        .providers()
        .any(|(p, _)| p != provider && st.identity.synced_groups(p, user).is_some_and(|g| g.contains(group)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let p: IdentityProvider = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp", "audience": ["a", "b"], "jwks_uri": "https://idp/keys"
        }))
        .unwrap();
        for c in [
            IdentityChange::PutProvider("okta".into(), Box::new(p)),
            IdentityChange::DeleteProvider("okta".into()),
            IdentityChange::PutSynced { provider: "okta".into(), user: "a@b.c".into(), groups: vec!["eng".into()] },
            IdentityChange::DeleteSynced { provider: "okta".into(), user: "a@b.c".into() },
        ] {
            assert_eq!(decode_op(&encode(&c)).unwrap().unwrap(), c);
        }
        assert!(decode_record("t/x", b"{}").is_none());
        assert!(decode_record("m/nouser", b"{\"groups\":[]}").unwrap().is_err());
    }

    #[test]
    fn max_age_is_read() {
        assert_eq!(max_age("public, max-age=120, must-revalidate"), Some(120));
        assert_eq!(max_age("no-store"), None);
    }

    static FETCHES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn counting(_: &str) -> Result<(serde_json::Value, Option<i64>), String> {
        let n = FETCHES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n == 0 {
            Ok((serde_json::json!({"keys": []}), Some(600)))
        } else {
            Err("down".into())
        }
    }

    #[test]
    fn unknown_kids_refresh_at_most_once_a_minute_and_failures_keep_the_last_set() {
        let c = JwksCache::with_fetcher(counting);
        let n = || FETCHES.load(std::sync::atomic::Ordering::SeqCst);
        assert!(c.keys("t", "p", "https://x/k", "k1", 1000).is_ok());
        assert_eq!(n(), 1);
        // An unknown kid: one refresh, which fails; the last set serves.
        assert!(c.keys("t", "p", "https://x/k", "k1", 1010).is_ok());
        assert_eq!(n(), 2);
        // No other refresh for a minute.
        assert!(c.keys("t", "p", "https://x/k", "k1", 1020).is_ok());
        assert_eq!(n(), 2);
        assert!(c.keys("t", "p", "https://x/k", "k1", 1071).is_ok());
        assert_eq!(n(), 3);
    }
}
