//! OIDC identity providers of a tenant and the verification of their ID
//! tokens: a token's signature, issuer, audience and times are checked
//! against a provider's settings and a JWK set, and its user and group
//! claims are read into ids. Pure: the keys and the time are parameters
//! (fetching a `jwks_uri` is the service's business, reading the clock the
//! API's). Every failure fails closed with a stable reason code.
//!
//! The JOSE work (signature verification with the key a JWK describes) is
//! `jsonwebtoken`'s; the choices around it are ours: which algorithms are
//! allowed (never `none`, never an HMAC one, so a public key can never be
//! used as a shared secret), that a token names a known `kid`, the 16 KiB
//! size limit checked before anything is parsed, the 60 s leeway, and that
//! an Entra ID "groups overage" is an error rather than "no groups".

use std::collections::{BTreeMap, BTreeSet};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{validate_id, Timestamp};

/// Largest ID token accepted, in bytes (checked before any parsing).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 60;
/// The algorithms a provider allows when it names none.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];
/// Every algorithm a provider may allow: public-key signatures only.
pub const SUPPORTED_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
/// Most group claim values one token may carry.
pub const MAX_TOKEN_GROUPS: usize = 1_000;

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_user_claim() -> String {
    "sub".into()
}

fn default_algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// One identity provider of a tenant (its name is the key it is stored
/// under). The same shape on the API, in policy files and in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// The `iss` its tokens carry, exactly.
    pub issuer: String,
    /// Audiences accepted (a token's `aud` must contain one of them).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// The signing keys inline, as a JWK set (`{"keys": [...]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Where to fetch the JWK set (https, or http on a loopback address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The claim holding the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim naming the user (`user:{value}`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim value → group id. When absent, a value is the group id itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_map: Option<BTreeMap<String, String>>,
    /// Signature algorithms accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

/// A provider's settings that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("identity provider name `{0}` {1}")]
    BadName(String, String),
    #[error("`{0}` is required and must not be empty")]
    Missing(&'static str),
    #[error("give exactly one of `jwks` and `jwks_uri`")]
    KeysSource,
    #[error("`jwks_uri`: {0}")]
    BadUri(String),
    #[error("`jwks`: {0}")]
    BadJwks(String),
    #[error("`algorithms`: `{0}` is not allowed (allowed: {list})", list = SUPPORTED_ALGORITHMS.join(", "))]
    BadAlgorithm(String),
    #[error("`group_map`: `{0}` → `{1}`: the group id {2}")]
    BadGroupMap(String, String, String),
}

impl IdentityProvider {
    /// Checks the settings whole; `name` is the provider's name.
    pub fn validate(&self, name: &str) -> Result<(), ProviderError> {
        validate_id(name).map_err(|m| ProviderError::BadName(name.to_string(), m))?;
        if self.issuer.trim().is_empty() {
            return Err(ProviderError::Missing("issuer"));
        }
        if self.audience.is_empty() || self.audience.iter().any(|a| a.is_empty()) {
            return Err(ProviderError::Missing("audience"));
        }
        if self.groups_claim.is_empty() {
            return Err(ProviderError::Missing("groups_claim"));
        }
        if self.user_claim.is_empty() {
            return Err(ProviderError::Missing("user_claim"));
        }
        if self.algorithms.is_empty() {
            return Err(ProviderError::Missing("algorithms"));
        }
        if let Some(a) = self.algorithms.iter().find(|a| !SUPPORTED_ALGORITHMS.contains(&a.as_str())) {
            return Err(ProviderError::BadAlgorithm(a.clone()));
        }
        match (&self.jwks, &self.jwks_uri) {
            (Some(set), None) => {
                let keys = parse_jwks(set).map_err(ProviderError::BadJwks)?;
                if keys.keys.is_empty() {
                    return Err(ProviderError::BadJwks("holds no usable public key".into()));
                }
            }
            (None, Some(uri)) => check_jwks_uri(uri).map_err(ProviderError::BadUri)?,
            _ => return Err(ProviderError::KeysSource),
        }
        for (claim, group) in self.group_map.iter().flatten() {
            validate_id(group).map_err(|m| ProviderError::BadGroupMap(claim.clone(), group.clone(), m))?;
        }
        Ok(())
    }
}

/// A `jwks_uri` must be https, or http on a loopback address (a local
/// identity provider, tests).
pub fn check_jwks_uri(uri: &str) -> Result<(), String> {
    let rest = if let Some(r) = uri.strip_prefix("https://") {
        r
    } else if let Some(r) = uri.strip_prefix("http://") {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, p)| if p.parse::<u16>().is_ok() { h } else { host });
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("`{uri}`: use https (http only on a loopback address)"));
        }
        r
    } else {
        return Err(format!("`{uri}` is not an https:// URL"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') {
        return Err(format!("`{uri}`: expected https://host[:port]/path"));
    }
    Ok(())
}

/// The usable public keys of a JWK set: keys that do not parse, symmetric
/// (`oct`) keys and encryption keys are left out; a set that is not a JSON
/// object with a `keys` array is an error.
pub fn parse_jwks(v: &Value) -> Result<JwkSet, String> {
    let keys = v.get("keys").and_then(Value::as_array).ok_or("expected a JWK set `{\"keys\": [...]}`")?;
    let mut out = Vec::new();
    for k in keys {
        if k.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(k.clone()) else { continue };
        match jwk.algorithm {
            AlgorithmParameters::RSA(_)
            | AlgorithmParameters::EllipticCurve(_)
            | AlgorithmParameters::OctetKeyPair(_) => out.push(jwk),
            _ => {}
        }
    }
    Ok(JwkSet { keys: out })
}

/// Why a token was refused. [`TokenError::reason`] is the stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed: {0}")]
    Malformed(String),
    #[error("the token's algorithm `{0}` is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("the token names no key of the identity provider ({0})")]
    UnknownKey(String),
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token's issuer is not the identity provider's")]
    WrongIssuer,
    #[error("the token's audience is not one the identity provider accepts")]
    WrongAudience,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error(
        "the token's groups are not in it (`{0}` overage): configure the provider to emit the groups, or filter them"
    )]
    GroupsOverage(String),
}

impl TokenError {
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "malformed",
            TokenError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::GroupsOverage(_) => "groups_overage",
        }
    }
}

/// What a verified token says: its user and its groups.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user id (`user:{user}`), from the provider's `user_claim`.
    pub user: String,
    /// Group ids, sorted and distinct.
    pub groups: Vec<String>,
    /// Claim values that named no group (not in `group_map`, or not a valid
    /// id), sorted.
    pub ignored: Vec<String>,
    /// The token's `exp`.
    pub exp: Timestamp,
    /// The `nonce`, `acr`, `amr` and `auth_time` claims, when present: a
    /// relying party (the OAuth authorization server's login) checks them.
    pub nonce: Option<String>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub auth_time: Option<Timestamp>,
}

impl std::fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedToken").field("user", &self.user).field("groups", &self.groups.len()).finish()
    }
}

/// The parts of a token's header that matter here.
#[derive(Deserialize)]
struct RawHeader {
    alg: Value,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn b64_json(part: &str, what: &str) -> Result<Value, TokenError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(format!("the {what} is not JSON")))
}

/// The three parts of a compact JWS, after the size check.
fn split(token: &str) -> Result<[&str; 3], TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed(format!("it is {} bytes (at most {MAX_TOKEN_BYTES})", token.len())));
    }
    let mut it = token.split('.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok([h, p, s]),
        _ => Err(TokenError::Malformed("expected a compact JWS (three parts separated by `.`)".into())),
    }
}

/// Header values echoed in messages, cut short (they are the sender's text).
fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(40).flat_map(char::escape_default).collect();
    if s.chars().count() > 40 {
        t.push('…');
    }
    t
}

/// The `iss` a token claims, unverified: only to choose which provider's
/// keys verify it.
pub fn peek_issuer(token: &str) -> Result<String, TokenError> {
    let [_, payload, _] = split(token)?;
    let claims = b64_json(payload, "payload")?;
    claims.get("iss").and_then(Value::as_str).map(str::to_string).ok_or(TokenError::WrongIssuer)
}

fn family_matches(alg: Algorithm, jwk: &Jwk) -> bool {
    use jsonwebtoken::jwk::EllipticCurve;
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), a) => {
            matches!(a, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
                || matches!(a, Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512)
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    }
}

/// The `kid` a token's header names, after its algorithm is checked
/// against the provider's (a caller with a fetched key set refreshes it
/// once when the `kid` is not in it).
pub fn token_key_id(provider: &IdentityProvider, token: &str) -> Result<String, TokenError> {
    let [header, _, _] = split(token)?;
    let h: RawHeader = serde_json::from_value(b64_json(header, "header")?)
        .map_err(|_| TokenError::Malformed("the header has no `alg`".into()))?;
    let alg = h.alg.as_str().ok_or_else(|| TokenError::Malformed("`alg` is not a string".into()))?;
    // `none` and every HMAC algorithm are refused whatever the settings say.
    if alg.eq_ignore_ascii_case("none")
        || alg.starts_with("HS")
        || !provider.algorithms.iter().any(|a| a == alg)
        || !SUPPORTED_ALGORITHMS.contains(&alg)
    {
        return Err(TokenError::AlgorithmNotAllowed(shown(alg)));
    }
    if h.crit.is_some() {
        return Err(TokenError::Malformed("the header names critical extensions (`crit`)".into()));
    }
    h.kid.filter(|k| !k.is_empty()).ok_or_else(|| TokenError::UnknownKey("the header has no `kid`".into()))
}

fn number(claims: &Value, name: &str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| TokenError::Malformed(format!("`{name}` is not a number"))),
    }
}

/// Verifies `token` against `provider` with the signing keys `keys` at
/// time `now`, and reads its user and groups. The checks, in order: size
/// and shape, algorithm, `kid`, signature, `iss`, `aud`, `exp`/`nbf`/`iat`
/// (60 s leeway), groups overage, then the claims themselves.
pub fn verify(
    provider: &IdentityProvider,
    keys: &JwkSet,
    token: &str,
    now: Timestamp,
) -> Result<VerifiedToken, TokenError> {
    let kid = token_key_id(provider, token)?;
    let jwk = keys
        .find(&kid)
        .ok_or_else(|| TokenError::UnknownKey(format!("`kid` `{}` is not in its key set", shown(&kid))))?;
    let [header, _, _] = split(token)?;
    let alg_text = b64_json(header, "header")?.get("alg").and_then(Value::as_str).unwrap_or("").to_string();
    let alg: Algorithm = alg_text.parse().map_err(|_| TokenError::AlgorithmNotAllowed(alg_text.clone()))?;
    if !family_matches(alg, jwk)
        || jwk
            .common
            .key_algorithm
            .is_some_and(|ka| serde_json::to_value(ka).ok() != Some(Value::from(alg_text.as_str())))
    {
        return Err(TokenError::AlgorithmNotAllowed(format!("{alg_text} (key `{kid}` is for another algorithm)")));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey(format!("key `{kid}` is unusable")))?;
    // Signature only: the claims are checked below, against `now`.
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Value>(token, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return Err(match e.kind() {
                K::InvalidAlgorithm | K::InvalidAlgorithmName | K::UnsupportedAlgorithm => {
                    TokenError::AlgorithmNotAllowed(alg_text)
                }
                K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                    TokenError::Malformed("the token does not decode".into())
                }
                _ => TokenError::BadSignature,
            });
        }
    };
    let claims = claims.as_object().ok_or_else(|| TokenError::Malformed("the payload is not an object".into()))?;
    let claims_v = Value::Object(claims.clone());
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(TokenError::WrongIssuer);
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => provider.audience.contains(a),
        Some(Value::Array(list)) => {
            list.iter().filter_map(Value::as_str).any(|a| provider.audience.iter().any(|x| x == a))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::WrongAudience);
    }
    let now = now.0.max(0) as u64;
    let exp = number(&claims_v, "exp")?.ok_or_else(|| TokenError::Malformed("`exp` is missing".into()))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if number(&claims_v, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        || number(&claims_v, "iat")?.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECS))
    {
        return Err(TokenError::NotYetValid);
    }
    // Entra ID leaves the groups out when there are too many and says so
    // (`_claim_names`, or `hasgroups` in implicit flows): never "no groups".
    if let Some(names) = claims.get("_claim_names").and_then(Value::as_object) {
        if names.contains_key(&provider.groups_claim) || names.contains_key("groups") {
            return Err(TokenError::GroupsOverage("_claim_names".into()));
        }
    }
    if claims.get("hasgroups").is_some_and(|v| v == &Value::Bool(true) || v.as_str() == Some("true")) {
        return Err(TokenError::GroupsOverage("hasgroups".into()));
    }
    let user = match claims.get(&provider.user_claim) {
        Some(Value::String(u)) => u.clone(),
        Some(_) => return Err(TokenError::Malformed(format!("the `{}` claim is not a string", provider.user_claim))),
        None => return Err(TokenError::Malformed(format!("the `{}` claim is missing", provider.user_claim))),
    };
    validate_id(&user)
        .map_err(|m| TokenError::Malformed(format!("the `{}` claim is not a user id: it {m}", provider.user_claim)))?;
    let values: Vec<&str> = match claims.get(&provider.groups_claim) {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(list)) => list.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>().ok_or_else(|| {
            TokenError::Malformed(format!("`{}` holds a value that is not a string", provider.groups_claim))
        })?,
        Some(_) => return Err(TokenError::Malformed(format!("`{}` is not a list of strings", provider.groups_claim))),
    };
    if values.len() > MAX_TOKEN_GROUPS {
        return Err(TokenError::Malformed(format!(
            "`{}` holds {} values (at most {MAX_TOKEN_GROUPS})",
            provider.groups_claim,
            values.len()
        )));
    }
    let mut groups = BTreeSet::new();
    let mut ignored = BTreeSet::new();
    for v in values {
        let id = match &provider.group_map {
            Some(map) => map.get(v).map(String::as_str),
            None => Some(v).filter(|v| validate_id(v).is_ok()),
        };
        match id {
            Some(g) => groups.insert(g.to_string()),
            None => ignored.insert(v.to_string()),
        };
    }
    Ok(VerifiedToken {
        user,
        groups: groups.into_iter().collect(),
        ignored: ignored.into_iter().collect(),
        exp: Timestamp(i64::try_from(exp).unwrap_or(i64::MAX)),
        nonce: claims.get("nonce").and_then(Value::as_str).map(str::to_string),
        acr: claims.get("acr").and_then(Value::as_str).map(str::to_string),
        amr: claims
            .get("amr")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        auth_time: number(&claims_v, "auth_time")?.map(|t| Timestamp(i64::try_from(t).unwrap_or(i64::MAX))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const RSA1: &str = include_str!("../../tests/fixtures/oidc/rsa1.pem");
    const RSA1_PUB: &str = include_str!("../../tests/fixtures/oidc/rsa1.pub.pem");
    const EC1: &str = include_str!("../../tests/fixtures/oidc/ec1.pem");
    const NOW: Timestamp = Timestamp(1_780_272_000);

    fn keys() -> JwkSet {
        let mut a =
            Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(), Algorithm::RS256).unwrap();
        a.common.key_id = Some("r1".into());
        let mut b =
            Jwk::from_encoding_key(&EncodingKey::from_ec_pem(EC1.as_bytes()).unwrap(), Algorithm::ES256).unwrap();
        b.common.key_id = Some("e1".into());
        JwkSet { keys: vec![a, b] }
    }

    fn provider() -> IdentityProvider {
        serde_json::from_value(json!({
            "issuer": "https://idp.example", "audience": "holdfast",
            "jwks": serde_json::to_value(keys()).unwrap(),
        }))
        .unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.example", "aud": "holdfast", "sub": "alice",
               "exp": NOW.0 + 300, "iat": NOW.0, "groups": ["eng", "Domain Users"]})
    }

    fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(EC1.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(),
        };
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    }

    fn reason(c: &Value) -> &'static str {
        verify(&provider(), &keys(), &sign(Algorithm::RS256, "r1", c), NOW).unwrap_err().reason()
    }

    #[test]
    fn a_good_token_gives_its_user_and_valid_groups() {
        let p = provider();
        p.validate("okta").unwrap();
        for (alg, kid) in [(Algorithm::RS256, "r1"), (Algorithm::ES256, "e1")] {
            let v = verify(&p, &keys(), &sign(alg, kid, &claims()), NOW).unwrap();
            assert_eq!(
                (v.user.as_str(), v.groups.clone(), v.ignored.clone()),
                ("alice", vec!["eng".to_string()], vec!["Domain Users".to_string()])
            );
        }
        let mut mapped = p.clone();
        mapped.group_map = Some([("Domain Users".to_string(), "staff".to_string())].into());
        let v = verify(&mapped, &keys(), &sign(Algorithm::RS256, "r1", &claims()), NOW).unwrap();
        assert_eq!((v.groups, v.ignored), (vec!["staff".to_string()], vec!["eng".to_string()]));
    }

    #[test]
    fn every_failure_has_its_reason() {
        let mut c = claims();
        c["exp"] = json!(NOW.0 - 61);
        assert_eq!(reason(&c), "expired");
        c["exp"] = json!(NOW.0 - 59);
        assert!(verify(&provider(), &keys(), &sign(Algorithm::RS256, "r1", &c), NOW).is_ok(), "within the leeway");
        let mut c = claims();
        c["nbf"] = json!(NOW.0 + 61);
        assert_eq!(reason(&c), "not_yet_valid");
        let mut c = claims();
        c["iat"] = json!(NOW.0 + 120);
        assert_eq!(reason(&c), "not_yet_valid");
        let mut c = claims();
        c["iss"] = json!("https://evil.example");
        assert_eq!(reason(&c), "wrong_issuer");
        let mut c = claims();
        c["aud"] = json!(["other", "x"]);
        assert_eq!(reason(&c), "wrong_audience");
        let mut c = claims();
        c["_claim_names"] = json!({"groups": "src1"});
        assert_eq!(reason(&c), "groups_overage");
        let mut c = claims();
        c["hasgroups"] = json!(true);
        assert_eq!(reason(&c), "groups_overage");
        let mut c = claims();
        c["sub"] = json!("a/b");
        assert_eq!(reason(&c), "malformed");
        let p = provider();
        let k = keys();
        let unknown = sign(Algorithm::RS256, "nope", &claims());
        assert_eq!(verify(&p, &k, &unknown, NOW).unwrap_err().reason(), "unknown_key");
        // ES256 allowed, but the RSA key is named: refused.
        assert_eq!(
            verify(&p, &k, &sign(Algorithm::ES256, "r1", &claims()), NOW).unwrap_err().reason(),
            "algorithm_not_allowed"
        );
        // PS256 is not in the provider's list.
        assert_eq!(
            verify(&p, &k, &sign(Algorithm::PS256, "r1", &claims()), NOW).unwrap_err().reason(),
            "algorithm_not_allowed"
        );
        // A tampered payload.
        let t = sign(Algorithm::RS256, "r1", &claims());
        let parts: Vec<&str> = t.split('.').collect();
        let other = sign(Algorithm::RS256, "r1", &json!({"sub": "mallory"}));
        let forged = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
        assert_eq!(verify(&p, &k, &forged, NOW).unwrap_err().reason(), "bad_signature");
        // HS256 "signed" with the RSA public key as the secret.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("r1".into());
        let hs = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(RSA1_PUB.as_bytes()).unwrap()).unwrap();
        assert_eq!(verify(&p, &k, &hs, NOW).unwrap_err().reason(), "algorithm_not_allowed");
        // alg none.
        use base64::Engine as _;
        let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{}.", b(&json!({"alg": "none", "kid": "r1"})), b(&claims()));
        assert_eq!(verify(&p, &k, &none, NOW).unwrap_err().reason(), "algorithm_not_allowed");
        // Too large, before any parsing.
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(verify(&p, &k, &big, NOW).unwrap_err().reason(), "malformed");
        assert_eq!(verify(&p, &k, "not a token", NOW).unwrap_err().reason(), "malformed");
    }

    #[test]
    fn settings_are_validated() {
        let mut p = provider();
        p.algorithms = vec!["HS256".into()];
        assert!(matches!(p.validate("x"), Err(ProviderError::BadAlgorithm(_))));
        let mut p = provider();
        p.jwks_uri = Some("https://idp.example/keys".into());
        assert_eq!(p.validate("x"), Err(ProviderError::KeysSource));
        p.jwks = None;
        assert_eq!(p.validate("x"), Ok(()));
        p.jwks_uri = Some("http://idp.example/keys".into());
        assert!(matches!(p.validate("x"), Err(ProviderError::BadUri(_))));
        p.jwks_uri = Some("http://127.0.0.1:8080/keys".into());
        assert_eq!(p.validate("x"), Ok(()));
        let mut p = provider();
        p.jwks = Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
        assert!(matches!(p.validate("x"), Err(ProviderError::BadJwks(_))), "a symmetric key is no signing key here");
        assert!(matches!(provider().validate("a/b"), Err(ProviderError::BadName(..))));
    }
}
