//! Wire types (DTOs): what the API reads and writes as JSON. Requests deny
//! unknown fields. Revisions travel as decimal strings.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use crate::explain::BindingTrace;
use crate::model::conditions::parse_duration;
use crate::model::{Attributes, Conditions, Context, MfaContext, ObjectRef, Timestamp, Tuple};
use crate::query::{Decision, StepUp};

/// A revision: a decimal string on the wire; accepted as string or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Revision(pub u64);

impl Serialize for Revision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Revision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| serde::de::Error::custom("a revision is a decimal string or number"))? {
            Raw::Num(n) => Ok(Revision(n)),
            // JSON does not tell `42.0` from `42`.
            Raw::Float(f) if f >= 0.0 && f.fract() == 0.0 && f <= MAX_EXACT_F64 => Ok(Revision(f as u64)),
            Raw::Float(_) => Err(serde::de::Error::custom("a revision is a decimal string or number")),
            Raw::Text(s) => s
                .trim()
                .parse()
                .map(Revision)
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a revision (a decimal number)"))),
        }
    }
}

/// The largest integer an `f64` holds exactly (2^53).
const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

/// An optional time: RFC 3339 text or seconds since the epoch, where a
/// number with a zero fraction (`646.0`) is that integer (JSON does not
/// tell them apart); null is absent.
pub fn timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= MAX_EXACT_F64 => {
                Timestamp::from_secs(f as i64).map(Some).map_err(D::Error::custom)
            }
            _ => Err(D::Error::custom(format!("`{n}` is not a time (RFC 3339 text or whole seconds)"))),
        },
        v => serde_json::from_value(v).map(Some).map_err(D::Error::custom),
    }
}

/// An optional nested object (`context`, `conditions`): null is absent, and
/// anything but an object is refused (serde would read an array as the
/// struct's fields in order).
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(None),
        v @ serde_json::Value::Object(_) => serde_json::from_value(v).map(Some).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!("expected an object, found `{other}`"))),
    }
}

/// `{"revision": "42"}`: what a write answers.
#[derive(Debug, Serialize)]
pub struct Written {
    pub revision: Revision,
}

// ------------------------------------------------------------------ check

/// The request context; `now` defaults to the server clock.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextIn {
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default, deserialize_with = "object")]
    pub mfa: Option<MfaContextIn>,
    #[serde(default, deserialize_with = "timestamp")]
    pub now: Option<Timestamp>,
}

/// [`MfaContext`] on the wire (its `auth_time` read like every time here).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaContextIn {
    #[serde(default)]
    pub present: bool,
    #[serde(default, deserialize_with = "timestamp")]
    pub auth_time: Option<Timestamp>,
}

/// The fields of a check's context ([`ContextIn`]).
pub const CONTEXT_KEYS: &[&str] = &["ip", "mfa", "now"];

impl ContextIn {
    /// A check's context read out of a larger object (an AuthZEN
    /// `context`): the keys of [`CONTEXT_KEYS`] are parsed exactly as on
    /// `/check`, every other key is ignored. `Err` names what is wrong.
    pub fn from_known_keys(obj: &serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let known: serde_json::Map<String, serde_json::Value> = obj
            .iter()
            .filter(|(k, _)| CONTEXT_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(serde_json::Value::Object(known)).map_err(|e| e.to_string())
    }

    pub fn resolve(self, clock: Timestamp) -> Context {
        let mfa = self.mfa.map(|m| MfaContext { present: m.present, auth_time: m.auth_time });
        Context { now: self.now.unwrap_or(clock), ip: self.ip, mfa, attributes: Attributes::default() }
    }

    /// [`ContextIn::resolve`] with the request's `attributes`.
    pub fn resolve_with(self, clock: Timestamp, attributes: Option<Attributes>) -> Context {
        Context { attributes: attributes.unwrap_or_default(), ..self.resolve(clock) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// Optional with an `id_token` (then it must be the token's user).
    #[serde(default)]
    pub subject: Option<String>,
    /// An OIDC ID token: verified; its user is the subject and its groups
    /// count as direct memberships for this request only.
    #[serde(default)]
    pub id_token: Option<String>,
    pub application: String,
    pub scope: String,
    #[serde(default, deserialize_with = "object")]
    pub context: Option<ContextIn>,
    /// Values for attribute conditions: `{subject, resource, action, context}`.
    #[serde(default, deserialize_with = "object")]
    pub attributes: Option<Attributes>,
    #[serde(default)]
    pub explain: bool,
    #[serde(default)]
    pub at_least: Option<Revision>,
}

#[derive(Debug, Serialize)]
pub struct CheckResponse {
    pub decision: Decision,
    pub reason: &'static str,
    /// The binding that decided an `allow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    /// Every binding considered (`explain: true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<BindingTrace>>,
    pub revision: Revision,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCheckItem {
    #[serde(default)]
    pub subject: Option<String>,
    /// As on `/check`; the batch's `id_token` when absent.
    #[serde(default)]
    pub id_token: Option<String>,
    pub application: String,
    pub scope: String,
    #[serde(default, deserialize_with = "object")]
    pub context: Option<ContextIn>,
    #[serde(default, deserialize_with = "object")]
    pub attributes: Option<Attributes>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchCheckRequest {
    pub checks: Vec<BatchCheckItem>,
    /// The ID token of every check that names none.
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub at_least: Option<Revision>,
}

/// One answer of a batch: a decision, or the error of that item alone.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum BatchResult {
    Decision {
        decision: Decision,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        binding: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        step_up: Option<StepUp>,
    },
    Error {
        error: serde_json::Value,
    },
}

#[derive(Debug, Serialize)]
pub struct BatchCheckResponse {
    pub results: Vec<BatchResult>,
    pub revision: Revision,
}

// ------------------------------------------------------------------ tuples

/// A tuple in the text form or as `{object, relation, subject, conditions?}`.
#[derive(Debug, Clone)]
pub enum TupleIn {
    Text(String),
    Object(TupleObject),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleObject {
    pub object: String,
    pub relation: String,
    pub subject: String,
    /// Parsed by [`Conditions::from_json`], so every error names its field.
    #[serde(default)]
    pub conditions: Option<serde_json::Value>,
}

impl<'de> Deserialize<'de> for TupleIn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(TupleIn::Text(s)),
            v @ serde_json::Value::Object(_) => {
                serde_json::from_value(v).map(TupleIn::Object).map_err(D::Error::custom)
            }
            _ => Err(D::Error::custom(
                "a tuple is a text (`group:eng#member@user:alice`) or an object {object, relation, subject}",
            )),
        }
    }
}

impl TupleIn {
    /// The tuple and its conditions; a malformed one is 422 `invalid_tuple`.
    pub fn parse(&self) -> Result<(Tuple, Option<Conditions>), ApiError> {
        let bad = |e: crate::model::ParseError| ApiError::new(ErrorCode::InvalidTuple, e.to_string());
        match self {
            TupleIn::Text(s) => Ok((Tuple::parse(s).map_err(bad)?, None)),
            TupleIn::Object(o) => {
                let object = ObjectRef::parse(&o.object).map_err(bad)?;
                let subject = ObjectRef::parse(&o.subject).map_err(bad)?;
                let t = Tuple::parse(&format!("{object}#{}@{subject}", o.relation)).map_err(bad)?;
                Ok((t, o.conditions.as_ref().map(conditions_from_json).transpose()?))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreconditionIn {
    pub tuple: TupleIn,
    /// `true` (default): the tuple must exist; `false`: it must not.
    #[serde(default = "yes")]
    pub exists: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteTuplesRequest {
    #[serde(default)]
    pub writes: Vec<TupleIn>,
    #[serde(default)]
    pub deletes: Vec<TupleIn>,
    #[serde(default)]
    pub preconditions: Vec<PreconditionIn>,
}

#[derive(Debug, Serialize)]
pub struct TupleOut {
    pub tuple: String,
    pub object: String,
    pub relation: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
}

impl TupleOut {
    pub fn new(t: &Tuple, conditions: Option<Conditions>) -> Self {
        TupleOut {
            tuple: t.to_string(),
            object: t.object.to_string(),
            relation: t.relation.clone(),
            subject: t.subject.to_string(),
            conditions,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TupleQuery {
    pub object: Option<String>,
    pub relation: Option<String>,
    pub subject: Option<String>,
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TupleList {
    pub tuples: Vec<TupleOut>,
    /// Pass back as `page_token` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    pub revision: Revision,
}

// --------------------------------------------------------------- resources

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleIn {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RoleOut {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationIn {
    pub scopes_supported: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The application's canonical URI (OAuth resource indicator).
    #[serde(default)]
    pub resource: Option<String>,
    /// The AuthZEN resource type this application answers to (absent:
    /// `application`).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The authorization servers its RFC 9728 metadata names (absent: this
    /// server's issuer).
    #[serde(default)]
    pub authorization_servers: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct ApplicationOut {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The AuthZEN resource type (`application` unless declared).
    pub resource_type: String,
    pub scopes_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_servers: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub revision: Revision,
}

/// Conditions from a request body: 422 `invalid_conditions` naming the field.
pub fn conditions_from_json(v: &serde_json::Value) -> Result<Conditions, ApiError> {
    Conditions::from_json(v).map_err(invalid_conditions)
}

pub fn invalid_conditions(e: crate::model::ConditionError) -> ApiError {
    ApiError::new(ErrorCode::InvalidConditions, e.to_string())
}

/// Conditions of a new binding: `conditions`, plus the validity window given
/// at the top level (`expires_in` is relative to the server clock).
#[derive(Debug, Default)]
pub struct Window {
    pub conditions: Option<serde_json::Value>,
    pub expires_at: Option<Timestamp>,
    pub expires_in: Option<String>,
    pub not_before: Option<Timestamp>,
}

impl Window {
    /// The binding's conditions (`None` when there are none).
    pub fn resolve(self, clock: Timestamp) -> Result<Option<Conditions>, ApiError> {
        let mut c = self.conditions.as_ref().map(conditions_from_json).transpose()?.unwrap_or_default();
        let expires_in = match &self.expires_in {
            Some(d) => {
                Some(clock.plus(parse_duration(d).map_err(|m| ApiError::invalid(format!("`expires_in`: {m}")))?))
            }
            None => None,
        };
        let expiry = [
            c.expires_at.map(|_| "conditions.expires_at"),
            self.expires_at.map(|_| "expires_at"),
            self.expires_in.as_ref().map(|_| "expires_in"),
        ];
        let given: Vec<&str> = expiry.into_iter().flatten().collect();
        if given.len() > 1 {
            return Err(ApiError::invalid(format!(
                "give one expiry, not {}",
                given.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" and ")
            )));
        }
        if c.not_before.is_some() && self.not_before.is_some() {
            return Err(ApiError::invalid("give one of `not_before` and `conditions.not_before`"));
        }
        c.expires_at = c.expires_at.or(self.expires_at).or(expires_in);
        c.not_before = c.not_before.or(self.not_before);
        c.validate().map_err(invalid_conditions)?;
        Ok((!c.is_empty()).then_some(c))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingIn {
    pub subject: String,
    pub role: String,
    /// Absent or null: tenant-wide.
    #[serde(default)]
    pub application: Option<String>,
    /// Parsed by [`Conditions::from_json`], so every error names its field.
    #[serde(default)]
    pub conditions: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "timestamp")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub not_before: Option<Timestamp>,
}

/// The seed API's role binding: the group is in the path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBindingIn {
    pub role: String,
    #[serde(default)]
    pub application: Option<String>,
    /// Parsed by [`Conditions::from_json`], so every error names its field.
    #[serde(default)]
    pub conditions: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "timestamp")]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default, deserialize_with = "timestamp")]
    pub not_before: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub struct BindingOut {
    pub binding: String,
    pub subject: String,
    pub role: String,
    /// `null`: tenant-wide.
    pub application: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
}

#[derive(Debug, Serialize)]
pub struct BindingWritten {
    #[serde(flatten)]
    pub binding: BindingOut,
    pub revision: Revision,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingQuery {
    pub subject: Option<String>,
    pub role: Option<String>,
    pub application: Option<String>,
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingDeleteQuery {
    pub binding: Option<String>,
    pub subject: Option<String>,
    pub role: Option<String>,
    /// Absent: the tenant-wide binding.
    pub application: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BindingList {
    pub bindings: Vec<BindingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    pub revision: Revision,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectIn {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SubjectOut {
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `active` or `suspended`.
    pub status: &'static str,
    /// Groups it is a direct member of.
    pub groups: Vec<String>,
    pub revision: Revision,
}

#[derive(Debug, Serialize)]
pub struct GroupOut {
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub members: Vec<String>,
    pub revision: Revision,
}

// ------------------------------------------------------------------ reads

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessQuery {
    /// `expired`: also list expired bindings, marked.
    pub include: Option<String>,
    /// Evaluation time (RFC 3339); default: the server clock.
    pub now: Option<String>,
    pub at_least: Option<Revision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhoQuery {
    pub scope: Option<String>,
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
    pub now: Option<String>,
    pub at_least: Option<Revision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    pub since: Option<Revision>,
    pub limit: Option<usize>,
}

/// One operation of a change, readable.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpOut {
    Write {
        tuple: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conditions: Option<Conditions>,
    },
    Delete {
        tuple: String,
    },
    PutObject {
        object: String,
        attributes: serde_json::Value,
    },
    DeleteObject {
        object: String,
    },
    Suspend {
        subject: String,
        reason: String,
        at: Timestamp,
    },
    Reactivate {
        subject: String,
    },
    /// A token was minted; named by a digest prefix, never by value.
    TokenIssued {
        token_id: String,
        subject: String,
        application: String,
        client_id: String,
        scope: String,
        exp: Timestamp,
    },
    TokenRevoked {
        token_id: String,
    },
    CredentialCreated {
        client_id: String,
        application: String,
    },
    CredentialRevoked {
        client_id: String,
    },
    /// A SCIM token was created or revoked; named by its id, never by value.
    ScimTokenCreated {
        id: String,
    },
    ScimTokenRevoked {
        id: String,
    },
    /// An identity provider was created or changed (its settings hold no
    /// secret), or deleted.
    PutIdentityProvider {
        name: String,
        provider: crate::model::oidc::IdentityProvider,
    },
    DeleteIdentityProvider {
        name: String,
    },
    /// The memberships of `user` owned by the provider's sync.
    PutSyncedGroups {
        provider: String,
        user: String,
        groups: Vec<String>,
    },
    DeleteSyncedGroups {
        provider: String,
        user: String,
    },
    /// A record of the OAuth authorization server: `event` says which
    /// (`settings`, `client`, `code`, `grant`, `consent`...), `id` names
    /// it (a client id, or a digest prefix: never a code or token value).
    #[serde(rename = "oauth")]
    OAuth {
        event: &'static str,
        id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

impl OpOut {
    /// The readable form of an identity provider change.
    pub fn identity(c: crate::service::identity::IdentityChange) -> OpOut {
        use crate::service::identity::IdentityChange as C;
        match c {
            C::PutProvider(name, p) => OpOut::PutIdentityProvider { name, provider: *p },
            C::DeleteProvider(name) => OpOut::DeleteIdentityProvider { name },
            C::PutSynced { provider, user, groups } => OpOut::PutSyncedGroups { provider, user, groups },
            C::DeleteSynced { provider, user } => OpOut::DeleteSyncedGroups { provider, user },
        }
    }

    /// The readable form of a SCIM token change.
    pub fn scim_token(t: crate::service::scim_tokens::ScimTokenChange) -> OpOut {
        use crate::service::scim_tokens::ScimTokenChange;
        match t {
            ScimTokenChange::Put(r) => OpOut::ScimTokenCreated { id: r.id },
            ScimTokenChange::Delete(id) => OpOut::ScimTokenRevoked { id },
        }
    }

    /// The readable form of a token or credential change.
    pub fn token(t: crate::service::TokenChange) -> OpOut {
        use crate::service::tokens::token_id;
        use crate::service::TokenChange;
        match t {
            TokenChange::Issue { digest, record } => OpOut::TokenIssued {
                token_id: token_id(&digest).to_string(),
                subject: record.subject,
                application: record.application,
                client_id: record.client_id,
                scope: record.scope.join(" "),
                exp: record.exp,
            },
            TokenChange::Revoke { digest } => OpOut::TokenRevoked { token_id: token_id(&digest).to_string() },
            TokenChange::PutClient(c) => {
                OpOut::CredentialCreated { client_id: c.client_id, application: c.application }
            }
            TokenChange::DeleteClient(client_id) => OpOut::CredentialRevoked { client_id },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ChangeOut {
    pub revision: Revision,
    /// Commit time, RFC 3339 with milliseconds.
    pub at: String,
    /// The name of the credential that wrote it.
    pub actor: String,
    pub ops: Vec<OpOut>,
}

#[derive(Debug, Serialize)]
pub struct ChangeList {
    pub changes: Vec<ChangeOut>,
    /// Pass as `since` to continue; the last revision listed (or `since`).
    pub next_since: Revision,
    pub revision: Revision,
}

/// Page tokens: the last key of a page, hex-encoded (URL-safe, opaque).
pub fn page_token(last: &str) -> String {
    last.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn parse_page_token(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::parameter(format!("`{token}` is not a page token of this API"));
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(&token[i..i + 2], 16)).collect();
    String::from_utf8(bytes.map_err(|_| bad())?).map_err(|_| bad())
}

/// The page size asked for, bounded to `1..=max` (default `default`).
pub fn page_size(asked: Option<usize>, default: usize, max: usize) -> usize {
    asked.unwrap_or(default).clamp(1, max)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn revisions_are_strings_and_accept_numbers() {
        assert_eq!(serde_json::to_string(&Revision(42)).unwrap(), "\"42\"");
        assert_eq!(serde_json::from_str::<Revision>("\"42\"").unwrap(), Revision(42));
        assert_eq!(serde_json::from_str::<Revision>("42").unwrap(), Revision(42));
        assert!(serde_json::from_str::<Revision>("\"x\"").is_err());
        assert!(serde_json::from_str::<Revision>("-1").is_err());
    }

    #[test]
    fn tuples_in_both_forms() {
        let a: TupleIn = serde_json::from_str("\"group:eng#member@user:alice\"").unwrap();
        let b: TupleIn =
            serde_json::from_str(r#"{"object":"group:eng","relation":"member","subject":"user:alice"}"#).unwrap();
        assert_eq!(a.parse().unwrap(), b.parse().unwrap());
        let e = serde_json::from_str::<TupleIn>(r#"{"object":"group:eng","relation":"member","subj":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `subj`"), "{e}");
        let bad: TupleIn = serde_json::from_str("\"group:eng#member\"").unwrap();
        assert_eq!(bad.parse().unwrap_err().code, ErrorCode::InvalidTuple);
    }

    #[test]
    fn page_tokens_round_trip() {
        let t = page_token("group:eng#member@user:alice");
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parse_page_token(&t).unwrap(), "group:eng#member@user:alice");
        assert!(parse_page_token("zz").is_err());
        assert!(parse_page_token("abc").is_err());
    }

    #[test]
    fn context_from_known_keys_ignores_the_rest() {
        // CONTEXT_KEYS are exactly the fields of a check's context: each is
        // accepted there, and a check refuses any other key.
        for k in CONTEXT_KEYS {
            serde_json::from_value::<ContextIn>(serde_json::json!({ *k: null })).unwrap();
        }
        assert!(serde_json::from_value::<ContextIn>(serde_json::json!({"time": "x"})).is_err());
        let obj =
            serde_json::json!({"now": "2026-06-01T00:00:00Z", "ip": "10.0.0.1", "time": "2025-06-27T18:03-07:00"});
        let c = ContextIn::from_known_keys(obj.as_object().unwrap()).unwrap();
        assert_eq!((c.now, c.ip.map(|i| i.to_string())), (Some(Timestamp(1_780_272_000)), Some("10.0.0.1".into())));
        let bad = serde_json::json!({"ip": "not-an-ip"});
        assert!(ContextIn::from_known_keys(bad.as_object().unwrap()).is_err());
    }
}
