//! OAuth for MCP servers: token scope (`requested ∩ scopes_supported ∩
//! entitled`), opaque access tokens, application client credentials,
//! RFC 7662 introspection, RFC 7009 revocation and RFC 9728
//! protected-resource metadata.
//!
//! Every token path computes its scope with the one function
//! [`query::token_scope`]: the token-scope query, minting, and each
//! introspection (which re-intersects the token's scope with what the
//! subject holds *now*, so a removed binding or a suspension takes effect at
//! the next introspection).
//!
//! `/oauth2/*` are OAuth endpoints: form-encoded requests, HTTP Basic client
//! authentication with an application's credentials, and errors in the
//! RFC 6749 shape `{"error", "error_description"}`. Raw tokens and secrets
//! are never logged or stored (see [`crate::service::tokens`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{TenantRead, TenantWrite};
use super::error::{blocking, ApiError, ErrorCode, Json, Path};
use super::wire::{ContextIn, Listing, Revision};
use super::AppState;
use crate::model::conditions::parse_duration;
use crate::model::{validate_id, Attributes, Context, ObjectRef, ObjectType, Timestamp};
use crate::query::{self, BlockedScope, TokenScope};
use crate::service::tokens::{self, ClientRecord, TokenChange, TokenRecord};
use crate::service::{Tenant, TenantState};

/// Token lifetime when the request names none.
pub const DEFAULT_TOKEN_LIFETIME: u64 = 3600;
/// Longest token lifetime a request may ask for.
pub const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;
/// Most scopes one request may name.
const MAX_REQUESTED_SCOPES: usize = 1000;

pub fn routes() -> Router<AppState> {
    let app = "/v1/tenants/{tenant}/applications/{application}";
    Router::new()
        .route("/v1/tenants/{tenant}/token-scope", post(token_scope))
        .route("/v1/tenants/{tenant}/tokens", post(mint))
        .route(&format!("{app}/credentials"), get(list_credentials).post(create_credential))
        .route(&format!("{app}/credentials/{{client_id}}"), delete(delete_credential))
        .route(&format!("{app}/.well-known/oauth-protected-resource"), get(metadata))
        .route("/oauth2/introspect", post(introspect))
        .route("/oauth2/revoke", post(revoke))
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

// --------------------------------------------------------------- token scope

/// The application a request names, by id or by its canonical URI (its
/// `resource` attribute); exactly one of the two.
fn resolve_app(st: &TenantState, application: Option<&str>, resource: Option<&str>) -> Result<String, ApiError> {
    match (application, resource) {
        (Some(a), None) => match st.app_scope_names(a) {
            Some(_) => Ok(a.to_string()),
            None => Err(ApiError::not_found("application", a)),
        },
        (None, Some(r)) => st
            .objects()
            .find(|(o, attrs)| {
                o.ty == ObjectType::Application && attrs.get("resource").and_then(|v| v.as_str()) == Some(r)
            })
            .map(|(o, _)| o.id.clone())
            .ok_or_else(|| ApiError::not_found("application with resource", r)),
        (Some(_), Some(_)) => Err(ApiError::invalid("give one of `application` and `resource`, not both")),
        (None, None) => Err(ApiError::invalid("give `application` (an id) or `resource` (its canonical URI)")),
    }
}

/// The application's canonical URI: its `resource` attribute, else its URL
/// under this server.
pub(super) fn resource_of(state: &AppState, st: &TenantState, tenant: &str, app: &str) -> String {
    st.object(&ObjectRef::new(ObjectType::Application, app))
        .and_then(|a| a.get("resource"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!("{}/v1/tenants/{tenant}/applications/{app}", state.config().issuer.trim_end_matches('/'))
        })
}

/// `"a b c"` → `["a", "b", "c"]`; absent stays absent (= everything entitled).
pub(super) fn requested_scopes(text: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let list: Vec<String> = text.split_ascii_whitespace().map(str::to_string).collect();
    if list.is_empty() {
        return Err(ApiError::invalid(
            "`requested_scope` is empty; omit it to ask for everything the subject is entitled to",
        ));
    }
    if list.len() > MAX_REQUESTED_SCOPES {
        return Err(ApiError::invalid(format!(
            "`requested_scope` names {} scopes (at most {MAX_REQUESTED_SCOPES})",
            list.len()
        )));
    }
    Ok(Some(list))
}

/// The subject a token may be minted for: a user or a service account.
fn token_subject(text: &str) -> Result<ObjectRef, ApiError> {
    let s = super::resources::subject_ref(text)?;
    if !matches!(s.ty, ObjectType::User | ObjectType::ServiceAccount) {
        return Err(ApiError::invalid(format!("`{text}`: tokens are for users and service accounts, not groups")));
    }
    Ok(s)
}

pub(super) fn compute(
    st: &TenantState,
    subject: &str,
    app: &str,
    requested: Option<&[String]>,
    ctx: &Context,
    groups: &[String],
) -> Result<TokenScope, ApiError> {
    let req: Option<Vec<&str>> = requested.map(|r| r.iter().map(String::as_str).collect());
    Ok(query::token_scope_with(st.facts(), subject, app, req.as_deref(), ctx, groups)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenScopeIn {
    /// Optional with an `id_token` (then it must be the token's user).
    #[serde(default)]
    subject: Option<String>,
    /// An OIDC ID token: its user is the subject, its groups count for
    /// this request only.
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    /// Space-separated, as in OAuth; absent: everything entitled.
    #[serde(default)]
    requested_scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "super::wire::object")]
    context: Option<ContextIn>,
    /// Values for attribute conditions.
    #[serde(default, deserialize_with = "super::wire::object")]
    attributes: Option<Attributes>,
    #[serde(default)]
    at_least: Option<Revision>,
}

#[derive(Debug, Serialize)]
struct TokenScopeOut {
    subject: String,
    application: String,
    resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// `granted`, space-separated (the OAuth `scope` of a token).
    scope: String,
    granted: Vec<String>,
    requested: Vec<String>,
    entitled: Vec<String>,
    scopes_supported: Vec<String>,
    blocked: Vec<BlockedScope>,
    revision: Revision,
}

async fn token_scope(
    State(state): State<AppState>,
    auth: TenantRead,
    Json(req): Json<TokenScopeIn>,
) -> Result<axum::Json<TokenScopeOut>, ApiError> {
    let revision = state.visible(req.at_least)?;
    let requested = requested_scopes(req.requested_scope.as_deref())?;
    let ctx = req.context.unwrap_or_default().resolve_with(state.now(), req.attributes);
    let tenant = state.tenant(&auth.tenant)?;
    let who = super::identity::request_subject(&state, &auth.tenant, req.subject, req.id_token).await?;
    let st = tenant.read();
    let app = resolve_app(&st, req.application.as_deref(), req.resource.as_deref())?;
    let ts = compute(&st, &who.subject, &app, requested.as_deref(), &ctx, &who.groups)?;
    Ok(axum::Json(TokenScopeOut {
        subject: who.subject,
        resource: resource_of(&state, &st, &auth.tenant, &app),
        application: app,
        client_id: req.client_id,
        scope: ts.granted.join(" "),
        granted: ts.granted,
        requested: ts.requested,
        entitled: ts.entitled,
        scopes_supported: ts.scopes_supported,
        blocked: ts.blocked,
        revision,
    }))
}

// -------------------------------------------------------------------- tokens

/// A token lifetime: seconds, or a duration text (`"30m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Lifetime {
    Secs(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintIn {
    /// Optional with an `id_token` (then it must be the token's user).
    #[serde(default)]
    subject: Option<String>,
    /// An OIDC ID token: its user is the subject; its groups count for the
    /// minted token (at minting and at every introspection) and the token
    /// expires no later than the ID token.
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    /// The OAuth client the token is for (e.g. an MCP client).
    client_id: String,
    #[serde(default)]
    requested_scope: Option<String>,
    #[serde(default)]
    expires_in: Option<Lifetime>,
    /// The subject's IP and MFA state now (`now` is the server clock).
    #[serde(default, deserialize_with = "super::wire::object")]
    context: Option<ContextIn>,
    /// Values for attribute conditions; kept with the token, so
    /// introspection evaluates the same tests.
    #[serde(default, deserialize_with = "super::wire::object")]
    attributes: Option<Attributes>,
}

#[derive(Debug, Serialize)]
struct MintOut {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    scope: String,
    revision: Revision,
}

fn lifetime(l: Option<&Lifetime>) -> Result<u64, ApiError> {
    let secs = match l {
        None => DEFAULT_TOKEN_LIFETIME,
        Some(Lifetime::Secs(s)) => *s,
        Some(Lifetime::Text(t)) => {
            parse_duration(t).map_err(|m| ApiError::invalid(format!("`expires_in`: {m}")))?.as_secs()
        }
    };
    if secs == 0 || secs > MAX_TOKEN_LIFETIME {
        return Err(ApiError::invalid(format!(
            "`expires_in`: {secs} seconds is outside 1..={MAX_TOKEN_LIFETIME} (at most 24h)"
        )));
    }
    Ok(secs)
}

pub(super) fn no_store(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// Mints an opaque access token for subject + application + client with the
/// intersected scope. 403 `invalid_scope` when nothing can be granted.
async fn mint(State(state): State<AppState>, auth: TenantWrite, Json(req): Json<MintIn>) -> Result<Response, ApiError> {
    let verified = match req.id_token.clone() {
        Some(t) => Some(super::identity::verify_full(&state, &auth.tenant, t).await?),
        None => None,
    };
    let who = super::identity::agree(
        req.subject.clone(),
        verified.as_ref().map(|v| (format!("user:{}", v.user), v.groups.clone())),
    )?;
    let subject = token_subject(&who.subject)?;
    let client_id = req.client_id.trim().to_string();
    if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid("`client_id` must be 1 to 255 printable characters"));
    }
    let mut expires_in = lifetime(req.expires_in.as_ref())?;
    let requested = requested_scopes(req.requested_scope.as_deref())?;
    let context = req.context.unwrap_or_default();
    if context.now.is_some() {
        return Err(ApiError::invalid(
            "`context.now` cannot be set when minting: tokens are minted at the server clock",
        ));
    }
    let now = state.now();
    if let Some(v) = &verified {
        // Never outlive the ID token whose groups it carries.
        expires_in = expires_in.min(u64::try_from(v.exp.0.saturating_sub(now.0)).unwrap_or(0).max(1));
    }
    let ctx = context.resolve_with(now, req.attributes);
    let tenant = state.tenant(&auth.tenant)?;
    let (app, ts) = {
        let st = tenant.read();
        let app = resolve_app(&st, req.application.as_deref(), req.resource.as_deref())?;
        let ts = compute(&st, &subject.to_string(), &app, requested.as_deref(), &ctx, &who.groups)?;
        (app, ts)
    };
    if ts.granted.is_empty() {
        let why: Vec<String> = ts.blocked.iter().map(|b| format!("`{}` ({})", b.scope, b.reason)).collect();
        return Err(ApiError::new(
            ErrorCode::InvalidScope,
            format!(
                "no requested scope can be granted to `{subject}` on `{app}`{}",
                if why.is_empty() { String::new() } else { format!(": {}", why.join(", ")) }
            ),
        ));
    }
    let (raw, digest) = tokens::new_token().map_err(ApiError::internal)?;
    let record = TokenRecord {
        subject: subject.to_string(),
        application: app,
        client_id,
        scope: ts.granted.clone(),
        iat: now,
        exp: Timestamp(now.0.saturating_add(expires_in as i64)),
        mfa: ctx.mfa.clone(),
        attributes: ctx.attributes.clone(),
        groups: who.groups.clone(),
    };
    let revision =
        write_tokens(&state, &auth.tenant, &auth.caller.name, vec![TokenChange::Issue { digest, record }]).await?;
    let out = MintOut { access_token: raw, token_type: "Bearer", expires_in, scope: ts.granted.join(" "), revision };
    Ok(no_store(axum::Json(out).into_response()))
}

async fn write_tokens(
    state: &AppState,
    tenant: &str,
    actor: &str,
    changes: Vec<TokenChange>,
) -> Result<Revision, ApiError> {
    let hf = Arc::clone(state.holdfast());
    let (tenant, actor) = (tenant.to_string(), actor.to_string());
    blocking(move || Ok(hf.write_tokens(&tenant, changes, &actor, now_ms())?)).await.map(Revision)
}

// --------------------------------------------------------------- credentials

#[derive(Debug, Serialize)]
struct CredentialOut {
    client_id: String,
    application: String,
    created_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct CredentialCreated {
    client_id: String,
    /// Shown once; only its SHA-256 is stored.
    client_secret: String,
    application: String,
    created_at: Timestamp,
    revision: Revision,
}

fn app_path(id: &str) -> Result<(), ApiError> {
    validate_id(id).map_err(|m| ApiError::parameter(format!("application id `{id}` {m}")))
}

async fn create_credential(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, app)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app_path(&app)?;
    if state.tenant(&auth.tenant)?.read().app_scope_names(&app).is_none() {
        return Err(ApiError::not_found("application", &app));
    }
    let (client_id, secret) = tokens::new_client().map_err(ApiError::internal)?;
    let created_at = state.now();
    let record = ClientRecord {
        client_id: client_id.clone(),
        application: app.clone(),
        secret_sha256: tokens::digest_hex(&secret),
        created_at,
    };
    let revision = write_tokens(&state, &auth.tenant, &auth.caller.name, vec![TokenChange::PutClient(record)]).await?;
    let out = CredentialCreated { client_id, client_secret: secret, application: app, created_at, revision };
    Ok(no_store((StatusCode::CREATED, axum::Json(out)).into_response()))
}

async fn list_credentials(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, app)): Path<(String, String)>,
) -> Result<axum::Json<Listing<CredentialOut>>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let st = tenant.read();
    if st.app_scope_names(&app).is_none() {
        return Err(ApiError::not_found("application", &app));
    }
    let items = st
        .tokens()
        .clients_of(&app)
        .into_iter()
        .map(|c| CredentialOut {
            client_id: c.client_id.clone(),
            application: c.application.clone(),
            created_at: c.created_at,
        })
        .collect();
    Ok(axum::Json(Listing { items, revision }))
}

#[derive(Debug, Serialize)]
struct Revoked {
    revision: Revision,
}

async fn delete_credential(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, app, client_id)): Path<(String, String, String)>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let known = state.tenant(&auth.tenant)?.read().tokens().client(&client_id).is_some_and(|c| c.application == app);
    if !known {
        return Err(ApiError::not_found("client credential", &client_id));
    }
    let revision =
        write_tokens(&state, &auth.tenant, &auth.caller.name, vec![TokenChange::DeleteClient(client_id)]).await?;
    Ok(axum::Json(Revoked { revision }))
}

// ---------------------------------------------------------- RFC 9728 metadata

/// Protected-resource metadata an MCP server can serve as its own
/// `/.well-known/oauth-protected-resource`. Public: it holds no secret.
async fn metadata(
    State(state): State<AppState>,
    Path((tenant, app)): Path<(String, String)>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let t = state.tenant(&tenant)?;
    let st = t.read();
    let scopes = st.app_scope_names(&app).ok_or_else(|| ApiError::not_found("application", &app))?;
    let servers = super::resources::authorization_servers(st.object(&ObjectRef::new(ObjectType::Application, &app)))
        .unwrap_or_else(|| vec![super::authz_server::tenant_issuer(&state, &tenant)]);
    Ok(axum::Json(json!({
        "resource": resource_of(&state, &st, &tenant, &app),
        "authorization_servers": servers,
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
    })))
}

// ------------------------------------------------- RFC 7662 / RFC 7009 (OAuth)

/// An OAuth error answer, RFC 6749 §5.2 shape.
pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res =
        no_store((status, axum::Json(json!({"error": error, "error_description": description}))).into_response());
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"holdfast\""));
    }
    res
}

fn unauthorized(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

// The `Err` of these helpers is the finished OAuth answer; it is built once
// per failed request, so its size does not matter.
/// The calling application: HTTP Basic `client_id:client_secret` (each
/// form-urlencoded first, RFC 6749 §2.3.1), checked in constant time.
#[allow(clippy::result_large_err)]
fn client_auth(state: &AppState, headers: &HeaderMap) -> Result<(Arc<Tenant>, String), Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("authenticate with HTTP Basic and the application's client credentials"))?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
        .ok_or_else(|| unauthorized("expected `Authorization: Basic <client_id:client_secret>`"))?;
    let bad = || unauthorized("the client credentials are not valid");
    let decoded = basic_credentials(encoded).ok_or_else(bad)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let (id, secret) = (form_decode(id).ok_or_else(bad)?, form_decode(secret).ok_or_else(bad)?);
    let tenant = state.holdfast().client_tenant(&id);
    let app = tenant.as_ref().and_then(|t| {
        let st = t.read();
        // A deleted application's credentials no longer authenticate (and
        // authenticate again only if an application of that id is defined).
        st.tokens()
            .client(&id)
            .filter(|c| c.verify(&secret) && st.application_defined(&c.application))
            .map(|c| c.application.clone())
    });
    match (tenant, app) {
        (Some(t), Some(app)) => Ok((t, app)),
        _ => {
            // Spend the same digest work as a known client would.
            let _ = tokens::digest_hex(&secret);
            Err(bad())
        }
    }
}

fn inactive() -> Response {
    no_store(axum::Json(json!({"active": false})).into_response())
}

/// The parameters of a form body, by name.
pub(super) type Form = BTreeMap<String, String>;

/// The common start of introspection and revocation: the calling
/// application's credentials, the form body, and a non-empty `token` in it.
#[allow(clippy::result_large_err)]
fn token_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Arc<Tenant>, String, Form), Response> {
    let (tenant, caller_app) = client_auth(state, headers)?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "the body is larger than the limit of this server",
            )
        } else {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "cannot read the body")
        }
    })?;
    let form = parse_form(&body)?;
    if form.get("token").is_none_or(|t| t.is_empty()) {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "`token` is required"));
    }
    Ok((tenant, caller_app, form))
}

/// The parameters of a form-encoded body; a repeated parameter is an error.
#[allow(clippy::result_large_err)]
pub(super) fn parse_form(body: &[u8]) -> Result<Form, Response> {
    let bad = |m: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", m);
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    if malformed_escape(text) {
        return Err(bad("the body is not form-urlencoded"));
    }
    let mut out = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(text.as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(bad(&format!("parameter `{k}` is given more than once")));
        }
    }
    Ok(out)
}

/// RFC 7662: is the token active, and with which scope *now*? The scope is
/// re-intersected with what the subject holds, in the context `client_ip` +
/// the server clock + the MFA state recorded at minting.
async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (tenant, caller_app, form) = match token_request(&state, &headers, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    let ip: Option<IpAddr> = match form.get("client_ip").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.trim().parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("`client_ip`: `{s}` is not an IP address"),
                )
            }
        },
    };
    let now = state.now();
    let st = tenant.read();
    let Some((_, rec)) = st.tokens().token(token) else { return inactive() };
    if rec.exp <= now || rec.application != caller_app {
        return inactive();
    }
    let ctx = Context { now, ip, mfa: rec.mfa.clone(), attributes: rec.attributes.clone() };
    let live = match compute(&st, &rec.subject, &rec.application, Some(&rec.scope), &ctx, &rec.groups) {
        Ok(ts) => ts.granted,
        Err(e) => {
            tracing::warn!(tenant = %tenant.name, error = %e.message, "introspection could not be evaluated");
            return inactive();
        }
    };
    if live.is_empty() {
        return inactive();
    }
    let body = json!({
        "active": true,
        "scope": live.join(" "),
        "client_id": rec.client_id,
        "sub": rec.subject,
        "aud": resource_of(&state, &st, &tenant.name, &rec.application),
        "iss": state.config().issuer,
        "exp": rec.exp.0,
        "iat": rec.iat.0,
        "token_type": "Bearer",
        "application": rec.application,
    });
    no_store(axum::Json(body).into_response())
}

/// RFC 7009: revokes a token issued for the calling application. Answers
/// 200 whatever the token (unknown, expired, another application's).
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let (tenant, caller_app, form) = match token_request(&state, &headers, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    let digest = {
        let st = tenant.read();
        st.tokens().token(token).filter(|(_, r)| r.application == caller_app).map(|(d, _)| d.to_string())
    };
    if let Some(digest) = digest {
        let actor = format!("client:{}", client_id_of(&headers).unwrap_or_default());
        if let Err(e) = write_tokens(&state, &tenant.name, &actor, vec![TokenChange::Revoke { digest }]).await {
            tracing::error!(error = %e.message, "token revocation failed");
            return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later");
        }
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

/// The client id of an (already verified) Basic header.
fn client_id_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    form_decode(basic_credentials(v.get(6..)?)?.split_once(':')?.0)
}

/// Standard base64, padding optional (some clients strip it).
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The `client_id:client_secret` text of a Basic header's credentials.
pub(super) fn basic_credentials(encoded: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()
}

/// A `%` not followed by two hex digits: the WHATWG parser keeps it as
/// text; these endpoints refuse it as not form-urlencoded.
fn malformed_escape(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'%' && !b.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
}

/// One `application/x-www-form-urlencoded` component (`+` is a space), as
/// RFC 6749 §2.3.1 has the client id and secret encoded inside Basic.
pub(super) fn form_decode(s: &str) -> Option<String> {
    if malformed_escape(s) {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().ok().map(|c| c.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_form_decoding() {
        assert_eq!(basic_credentials("aGZjX3g6czNjcmV0").unwrap(), "hfc_x:s3cret");
        assert_eq!(basic_credentials(" YQ== ").unwrap(), "a");
        assert_eq!(basic_credentials("YQ").unwrap(), "a", "padding is optional");
        assert_eq!(basic_credentials("YWI=").unwrap(), "ab");
        assert_eq!(basic_credentials("YWJj").unwrap(), "abc");
        assert!(basic_credentials("Y").is_none());
        assert!(basic_credentials("a*bc").is_none());
        assert!(basic_credentials("/w==").is_none(), "not UTF-8");
        assert_eq!(form_decode("a%20b+c%3A").unwrap(), "a b c:");
        assert_eq!(form_decode("%E2%9C%93").unwrap(), "\u{2713}");
        assert!(form_decode("%zz").is_none());
        assert!(form_decode("%4").is_none());
        assert!(form_decode("%FF").is_none(), "not UTF-8");
        let f = parse_form(b"token=hf_at_1&client_ip=10.0.0.1&token_type_hint=access_token&x=a+b%2B").unwrap();
        assert_eq!(f["token"], "hf_at_1");
        assert_eq!(f["client_ip"], "10.0.0.1");
        assert_eq!(f["x"], "a b+");
        assert_eq!(parse_form(b"token=a&token=b").unwrap_err().status(), StatusCode::BAD_REQUEST);
        assert_eq!(parse_form(b"token=%zz").unwrap_err().status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn lifetimes_are_bounded() {
        assert_eq!(lifetime(None).unwrap(), 3600);
        assert_eq!(lifetime(Some(&Lifetime::Secs(60))).unwrap(), 60);
        assert_eq!(lifetime(Some(&Lifetime::Text("4h".into()))).unwrap(), 4 * 3600);
        assert!(lifetime(Some(&Lifetime::Secs(0))).is_err());
        assert!(lifetime(Some(&Lifetime::Text("2days".into()))).is_err());
        assert!(lifetime(Some(&Lifetime::Text("soon".into()))).is_err());
    }
}
