//! The OAuth 2.1 authorization server an MCP client talks to (issue 18),
//! one per tenant, with the issuer `{--issuer}/t/{tenant}`:
//!
//! - RFC 8414 metadata at `/.well-known/oauth-authorization-server/t/{tenant}`;
//! - `/t/{tenant}/oauth2/authorize`: authorization code with PKCE S256
//!   (RFC 7636), the RFC 8707 `resource` naming one application, exact
//!   redirect-URI match, the answer carrying `iss` (RFC 9207). The user
//!   signs in at the tenant's login provider (Holdfast is its OIDC relying
//!   party: redirect, code exchange, ID-token verification with nonce),
//!   then consents on a page of the admin UI's templates;
//! - `/t/{tenant}/oauth2/token`: `authorization_code`, `refresh_token`
//!   (rotated; a reused one revokes its family; the scope re-intersected
//!   at every refresh) and `client_credentials` for service accounts;
//! - `/t/{tenant}/oauth2/revoke` (RFC 7009 for the client's own tokens)
//!   and `/t/{tenant}/oauth2/register` (RFC 7591, can be switched off).
//!
//! Clients are pre-registered (admin API), registered dynamically, or
//! named by an https URL: a Client ID Metadata Document, fetched with a
//! timeout and a size cap and cached. Scopes come from
//! [`crate::query::token_scope_with`] only (through `oauth::compute`); the
//! ID token's user and groups go through the OIDC issue's verification and
//! sync ([`crate::service::identity`]). Durable records are
//! [`crate::service::oauth_as`] changes on the one write path. Codes,
//! tokens and secrets are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::{TenantRead, TenantWrite};
use super::error::{blocking, ApiError, Json, Path};
use super::oauth::{self as rfc, Form};
use super::wire::{Listing, OpOut, Revision};
use super::AppState;
use crate::model::{validate_id, Attributes, Context, MfaContext, ObjectRef, ObjectType, Timestamp};
use crate::query::TokenScope;
use crate::service::oauth_as::{
    self, AsSettings, AuthCode, ClientSource, Consent, GroupsMode, OAuthChange, OAuthClient, RefreshFamily,
};
use crate::service::tokens::{self, TokenChange, TokenRecord};
use crate::service::{Change, TenantState};

/// An authorization code lives 60 s.
pub const CODE_LIFETIME: i64 = 60;
/// Access tokens of this server live 15 minutes (and never outlive their family).
pub const ACCESS_LIFETIME: i64 = 900;
/// A refresh-token family lives 30 days at most.
pub const FAMILY_LIFETIME: i64 = 30 * 86_400;
/// A login (from `/authorize` to the code) must finish within 10 minutes.
const LOGIN_LIFETIME: i64 = 600;
/// Most logins in progress per server.
const MAX_PENDING: usize = 10_000;
/// `/token` requests per client per window.
pub const TOKEN_RATE: u32 = 30;
const TOKEN_RATE_WINDOW: i64 = 10;
/// Client ID Metadata Documents: fetch limits and cache lifetime.
const CIMD_MAX_BYTES: u64 = 64 * 1024;
const CIMD_TIMEOUT: Duration = Duration::from_secs(5);
const CIMD_CACHE_SECS: i64 = 300;
const COOKIE: &str = "hf_oauth";
/// `amr` values that mean a second factor (RFC 8176).
const MFA_AMR: &[&str] = &["mfa", "otp", "hwk", "swk", "sc", "fpt"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server/t/{tenant}", get(metadata))
        .route("/t/{tenant}/oauth2/authorize", get(authorize))
        .route("/t/{tenant}/oauth2/callback", get(callback))
        .route("/t/{tenant}/oauth2/consent", post(consent))
        .route("/t/{tenant}/oauth2/token", post(token))
        .route("/t/{tenant}/oauth2/revoke", post(revoke))
        .route("/t/{tenant}/oauth2/register", post(register))
        .route("/v1/tenants/{tenant}/oauth-server", get(get_settings).put(put_settings))
        .route("/v1/tenants/{tenant}/oauth-clients", get(list_clients).post(create_client))
        .route("/v1/tenants/{tenant}/oauth-clients/{client_id}", delete(delete_client))
}

/// The issuer of a tenant's authorization server.
pub fn tenant_issuer(state: &AppState, tenant: &str) -> String {
    format!("{}/t/{tenant}", state.config().issuer.trim_end_matches('/'))
}

fn now_ms() -> u64 {
    rfc::now_ms()
}

// ------------------------------------------------------------ runtime state

/// What the authorization server keeps in memory: logins in progress, the
/// Client ID Metadata Document cache and the `/token` rate windows.
#[derive(Default)]
pub struct Runtime {
    pending: Mutex<HashMap<String, Pending>>,
    cimd: Mutex<HashMap<String, (i64, Arc<ClientView>)>>,
    rate: Mutex<HashMap<(String, String), (i64, u32)>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A login between `/authorize` and the code.
#[derive(Clone)]
struct Pending {
    tenant: String,
    client: Arc<ClientView>,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    application: String,
    resource: String,
    requested: Option<Vec<String>>,
    /// Digest of the browser cookie that started it.
    browser: String,
    nonce: String,
    step_up: bool,
    csrf: String,
    created: i64,
    login: Option<Login>,
}

#[derive(Clone)]
struct Login {
    subject: String,
    provider: String,
    groups: Vec<String>,
    mfa: Option<MfaContext>,
    family_exp: Option<Timestamp>,
    scope: TokenScope,
}

/// A client as the flow sees it, wherever it came from.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub first_party: bool,
    /// `registered` or `metadata document`.
    pub kind: &'static str,
}

fn random(prefix: &str) -> Result<String, ApiError> {
    oauth_as::new_secret(prefix).map(|(v, _)| v).map_err(ApiError::internal)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// ---------------------------------------------------------------- metadata

async fn metadata(State(state): State<AppState>, Path(tenant): Path<String>) -> Result<Response, ApiError> {
    let t = state.tenant(&tenant)?;
    let st = t.read();
    let iss = tenant_issuer(&state, &tenant);
    let mut scopes: Vec<String> = st
        .objects()
        .filter(|(o, _)| o.ty == ObjectType::Application)
        .filter_map(|(o, _)| st.app_scope_names(&o.id))
        .flatten()
        .collect();
    scopes.sort();
    scopes.dedup();
    let dcr = st.oauth().settings().is_none_or(|s| s.dynamic_registration);
    let mut body = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth2/authorize"),
        "token_endpoint": format!("{iss}/oauth2/token"),
        "revocation_endpoint": format!("{iss}/oauth2/revoke"),
        "introspection_endpoint": format!("{}/oauth2/introspect", state.config().issuer.trim_end_matches('/')),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "client_id_metadata_document_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": scopes,
    });
    if dcr {
        body["registration_endpoint"] = json!(format!("{iss}/oauth2/register"));
    }
    Ok(axum::Json(body).into_response())
}

// ------------------------------------------------------------------ clients

/// A Client ID Metadata Document URL this server may fetch.
fn check_cimd_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("`{url}`: a client metadata document must be served over https"));
        }
        if !allow_insecure {
            return Err(format!(
                "`{url}`: http client metadata documents are refused (a test server may allow loopback ones \
                 with `--allow-insecure-client-metadata`)"
            ));
        }
        r
    } else {
        return Err(format!("`{url}` is not an https URL"));
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || host.contains('@') || path.is_empty() || url.contains('#') {
        return Err(format!("`{url}`: expected https://host/path, without credentials or a fragment"));
    }
    if url.len() > 2048 {
        return Err("the client id URL is longer than 2048 characters".into());
    }
    Ok(())
}

/// GETs and checks a Client ID Metadata Document (blocking).
fn fetch_cimd(url: &str) -> Result<ClientView, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(CIMD_TIMEOUT))
        .user_agent(concat!("holdfast/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut res =
        agent.get(url).header("accept", "application/json").call().map_err(|e| format!("cannot fetch `{url}`: {e}"))?;
    if res.status().as_u16() != 200 {
        return Err(format!("`{url}` answered {}", res.status().as_u16()));
    }
    let body = res
        .body_mut()
        .with_config()
        .limit(CIMD_MAX_BYTES)
        .read_to_vec()
        .map_err(|e| format!("cannot read `{url}`: {e}"))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| format!("`{url}` is not a JSON client metadata document"))?;
    if doc.get("client_id").and_then(|v| v.as_str()) != Some(url) {
        return Err(format!("the document at `{url}` names another `client_id`"));
    }
    let redirect_uris: Vec<String> = doc
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(format!("the document at `{url}` lists no `redirect_uris`"));
    }
    match doc.get("token_endpoint_auth_method").and_then(|v| v.as_str()) {
        None | Some("none") => {}
        Some(m) => return Err(format!("`token_endpoint_auth_method` `{m}` is not supported (use `none` and PKCE)")),
    }
    let name = doc.get("client_name").and_then(|v| v.as_str()).unwrap_or(url).chars().take(200).collect();
    Ok(ClientView { client_id: url.to_string(), name, redirect_uris, first_party: false, kind: "metadata document" })
}

impl From<&OAuthClient> for ClientView {
    fn from(c: &OAuthClient) -> Self {
        ClientView {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            first_party: c.first_party,
            kind: "registered",
        }
    }
}

/// The client `client_id` names: registered, or a metadata document.
async fn resolve_client(state: &AppState, tenant: &str, client_id: &str) -> Result<Arc<ClientView>, String> {
    if let Some(c) = state.tenant(tenant).ok().and_then(|t| t.read().oauth().client(client_id).map(ClientView::from)) {
        return Ok(Arc::new(c));
    }
    if !(client_id.starts_with("https://") || client_id.starts_with("http://")) {
        return Err(format!("the client `{client_id}` is not registered with this server"));
    }
    check_cimd_url(client_id, state.config().allow_insecure_client_metadata)?;
    let now = state.now().0;
    if let Some((at, c)) = lock(&state.authz().cimd).get(client_id) {
        if now < at + CIMD_CACHE_SECS {
            return Ok(Arc::clone(c));
        }
    }
    let url = client_id.to_string();
    let view = tokio::task::spawn_blocking(move || fetch_cimd(&url))
        .await
        .map_err(|_| "the client metadata document could not be fetched".to_string())??;
    let view = Arc::new(view);
    let mut cache = lock(&state.authz().cimd);
    if cache.len() > 10_000 {
        cache.retain(|_, (at, _)| now < *at + CIMD_CACHE_SECS);
    }
    cache.insert(client_id.to_string(), (now, Arc::clone(&view)));
    Ok(view)
}

// ------------------------------------------------------------- /authorize

fn query_params(raw: Option<&str>) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("the parameter `{k}` is given more than once"));
        }
    }
    Ok(out)
}

fn html_error(status: StatusCode, message: &str) -> Response {
    crate::ui::oauth_pages::error_page(status, message)
}

/// Redirects to the client's (verified) redirect URI with `params` + `iss`.
fn back_to_client(redirect_uri: &str, params: &[(&str, &str)], iss: &str) -> Response {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    ser.append_pair("iss", iss);
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let to = format!("{redirect_uri}{sep}{}", ser.finish());
    no_cache(Redirect::to(&to).into_response())
}

fn error_to_client(p: &Pending, iss: &str, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(s) = &p.state {
        params.push(("state", s));
    }
    back_to_client(&p.redirect_uri, &params, iss)
}

fn no_cache(mut res: Response) -> Response {
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The application whose canonical URI is `resource` (RFC 8707).
fn app_of_resource(state: &AppState, st: &TenantState, tenant: &str, resource: &str) -> Option<String> {
    st.objects()
        .filter(|(o, _)| o.ty == ObjectType::Application)
        .map(|(o, _)| o.id.clone())
        .find(|a| rfc::resource_of(state, st, tenant, a) == resource)
}

async fn authorize(State(state): State<AppState>, Path(tenant): Path<String>, RawQuery(q): RawQuery) -> Response {
    let Ok(t) = state.tenant(&tenant) else {
        return html_error(StatusCode::NOT_FOUND, &format!("There is no tenant `{tenant}` on this server."));
    };
    let q = match query_params(q.as_deref()) {
        Ok(q) => q,
        Err(m) => {
            return html_error(StatusCode::BAD_REQUEST, &format!("This authorization request is malformed: {m}."))
        }
    };
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    // RFC 6749 §4.1.2.1: without a valid client and redirect URI, tell
    // the user, never redirect.
    let Some(client_id) = get("client_id") else {
        return html_error(StatusCode::BAD_REQUEST, "This authorization request names no client (`client_id`).");
    };
    let client = match resolve_client(&state, &tenant, client_id).await {
        Ok(c) => c,
        Err(m) => return html_error(StatusCode::BAD_REQUEST, &format!("The client cannot be used: {m}.")),
    };
    let redirect_uri = match get("redirect_uri") {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => r.to_string(),
        Some(r) => {
            return html_error(
                StatusCode::BAD_REQUEST,
                &format!("The redirect URI `{r}` is not one the client `{}` registered.", client.client_id),
            )
        }
        None => return html_error(StatusCode::BAD_REQUEST, "This authorization request names no `redirect_uri`."),
    };
    let iss = tenant_issuer(&state, &tenant);
    let mut p = Pending {
        tenant: tenant.clone(),
        client: Arc::clone(&client),
        redirect_uri,
        state: get("state").map(str::to_string),
        code_challenge: String::new(),
        application: String::new(),
        resource: String::new(),
        requested: None,
        browser: String::new(),
        nonce: String::new(),
        step_up: false,
        csrf: String::new(),
        created: state.now().0,
        login: None,
    };
    if get("response_type") != Some("code") {
        return error_to_client(&p, &iss, "unsupported_response_type", "only `response_type=code` is supported");
    }
    match (get("code_challenge"), get("code_challenge_method")) {
        (Some(c), Some("S256"))
            if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            p.code_challenge = c.to_string()
        }
        (Some(_), Some("S256")) => {
            return error_to_client(&p, &iss, "invalid_request", "`code_challenge` is not a BASE64URL SHA-256 digest")
        }
        _ => {
            return error_to_client(
                &p,
                &iss,
                "invalid_request",
                "PKCE is required: `code_challenge` with `code_challenge_method=S256`",
            )
        }
    }
    let Some(resource) = get("resource") else {
        return error_to_client(&p, &iss, "invalid_target", "`resource` (RFC 8707) is required: the MCP server's URI");
    };
    let scope = get("scope").map(|s| s.split_ascii_whitespace().map(str::to_string).collect::<Vec<_>>());
    let settings = {
        let st = t.read();
        match app_of_resource(&state, &st, &tenant, resource) {
            Some(a) => p.application = a,
            None => {
                return error_to_client(
                    &p,
                    &iss,
                    "invalid_target",
                    &format!("`{resource}` is not an application of this tenant"),
                )
            }
        }
        st.oauth().settings().cloned()
    };
    p.resource = resource.to_string();
    p.requested = scope.filter(|s| !s.is_empty());
    let Some(settings) = settings else {
        return error_to_client(&p, &iss, "temporarily_unavailable", "this tenant has no login provider configured");
    };
    let (txn, browser, nonce, csrf) = match (random("t_"), random("b_"), random("n_"), random("c_")) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => return error_to_client(&p, &iss, "server_error", "no randomness available"),
    };
    p.browser = tokens::digest_hex(&browser);
    p.nonce = nonce;
    p.csrf = csrf;
    let to = login_redirect(&state, &settings, &tenant, &txn, &p);
    {
        let mut pending = lock(&state.authz().pending);
        let now = state.now().0;
        pending.retain(|_, v| now < v.created + LOGIN_LIFETIME);
        if pending.len() >= MAX_PENDING {
            return error_to_client(&p, &iss, "temporarily_unavailable", "too many logins in progress; try again");
        }
        pending.insert(txn, p);
    }
    let cookie =
        format!("{COOKIE}={browser}; Path=/t/{tenant}/oauth2; HttpOnly; SameSite=Lax; Max-Age={LOGIN_LIFETIME}");
    let mut res = no_cache(Redirect::to(&to).into_response());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

/// The login request to the provider (OIDC authorization code, with
/// `acr_values` / `max_age` / `prompt=login` on a step-up).
fn login_redirect(state: &AppState, s: &AsSettings, tenant: &str, txn: &str, p: &Pending) -> String {
    let callback = format!("{}/oauth2/callback", tenant_issuer(state, tenant));
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", &callback)
        .append_pair("scope", &s.login_scope)
        .append_pair("state", txn)
        .append_pair("nonce", &p.nonce);
    if p.step_up {
        ser.append_pair("acr_values", &s.mfa_acr)
            .append_pair("max_age", &s.step_up_max_age.to_string())
            .append_pair("prompt", "login");
    }
    let sep = if s.authorization_endpoint.contains('?') { '&' } else { '?' };
    format!("{}{sep}{}", s.authorization_endpoint, ser.finish())
}

fn browser_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').find_map(|kv| kv.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_string)))
}

/// The login `txn` of this browser, if it started it.
#[allow(clippy::result_large_err)]
fn pending_of(state: &AppState, tenant: &str, txn: &str, headers: &HeaderMap) -> Result<Pending, Response> {
    let expired = || {
        html_error(
            StatusCode::BAD_REQUEST,
            "This sign-in is unknown or has expired (it must finish within 10 minutes, in the browser that \
             started it). Start again from the application.",
        )
    };
    let p = lock(&state.authz().pending).get(txn).cloned().ok_or_else(expired)?;
    let cookie = browser_cookie(headers).map(|c| tokens::digest_hex(&c)).unwrap_or_default();
    if p.tenant != tenant || !ct_eq(&cookie, &p.browser) || state.now().0 >= p.created + LOGIN_LIFETIME {
        return Err(expired());
    }
    Ok(p)
}

/// What the provider's token endpoint answered: the ID token.
fn exchange_login_code(s: &AsSettings, callback: &str, code: &str) -> Result<String, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(CIMD_TIMEOUT))
        .build()
        .into();
    let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        enc(&s.client_id),
        enc(s.client_secret.as_deref().unwrap_or(""))
    ));
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", callback)
        .append_pair("client_id", &s.client_id)
        .finish();
    let mut res = agent
        .post(&s.token_endpoint)
        .header("authorization", &format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .send(body.as_bytes())
        .map_err(|e| format!("the login provider's token endpoint cannot be reached: {e}"))?;
    let status = res.status().as_u16();
    let bytes = res.body_mut().with_config().limit(CIMD_MAX_BYTES).read_to_vec().map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status != 200 {
        let e = v.get("error").and_then(|e| e.as_str()).unwrap_or("an error");
        return Err(format!("the login provider refused the code ({status}, `{e}`)"));
    }
    v.get("id_token")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the login provider answered no `id_token`".to_string())
}

async fn callback(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = match query_params(q.as_deref()) {
        Ok(q) => q,
        Err(m) => return html_error(StatusCode::BAD_REQUEST, &format!("The login answer is malformed: {m}.")),
    };
    let txn = q.get("state").cloned().unwrap_or_default();
    let mut p = match pending_of(&state, &tenant, &txn, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let iss = tenant_issuer(&state, &tenant);
    let finish_err = |p: &Pending, e: &str, d: &str| {
        lock(&state.authz().pending).remove(&txn);
        error_to_client(p, &iss, e, d)
    };
    if let Some(e) = q.get("error") {
        return finish_err(
            &p,
            "access_denied",
            &format!("the login provider answered `{}`", e.chars().take(64).collect::<String>()),
        );
    }
    let Some(code) = q.get("code").cloned() else {
        return finish_err(&p, "access_denied", "the login provider answered no code");
    };
    let Some(settings) = state.tenant(&tenant).ok().and_then(|t| t.read().oauth().settings().cloned()) else {
        return finish_err(&p, "temporarily_unavailable", "this tenant has no login provider configured");
    };
    let callback_uri = format!("{iss}/oauth2/callback");
    let hf = Arc::clone(state.holdfast());
    let (s2, t2, now) = (settings.clone(), tenant.clone(), state.now());
    let verified = blocking(move || {
        let id_token = exchange_login_code(&s2, &callback_uri, &code).map_err(ApiError::invalid)?;
        let (_, v) = hf.verify_id_token(&t2, Some(&s2.login_provider), &id_token, now)?;
        Ok((id_token, v))
    })
    .await;
    let (id_token, v) = match verified {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(tenant = %tenant, error = %e.message, "login at the identity provider failed");
            return finish_err(&p, "access_denied", &format!("the login could not be verified: {}", e.message));
        }
    };
    if !v.nonce.as_deref().is_some_and(|n| ct_eq(n, &p.nonce)) {
        return finish_err(&p, "access_denied", "the login's ID token does not carry this request's nonce");
    }
    // Step-up: MFA counts when the provider says so (acr or amr), and after
    // a step-up only if the authentication is recent (max_age).
    let mut mfa_present =
        v.acr.as_deref() == Some(settings.mfa_acr.as_str()) || v.amr.iter().any(|m| MFA_AMR.contains(&m.as_str()));
    if p.step_up {
        let fresh = v.auth_time.is_some_and(|t| now.0 - t.0 <= settings.step_up_max_age as i64 + 60);
        mfa_present &= fresh;
    }
    let mfa = Some(MfaContext { present: mfa_present, auth_time: v.auth_time });
    let subject = format!("user:{}", v.user);
    let (groups, family_exp) = match settings.groups {
        GroupsMode::Request => (v.groups.clone(), Some(v.exp)),
        GroupsMode::Sync => {
            let hf = Arc::clone(state.holdfast());
            let (t2, prov) = (tenant.clone(), settings.login_provider.clone());
            if let Err(e) = blocking(move || Ok(hf.sync_identity(&t2, &prov, &id_token, now, now_ms())?)).await {
                return finish_err(
                    &p,
                    "server_error",
                    &format!("the user's groups could not be synced: {}", e.message),
                );
            }
            (vec![], None)
        }
    };
    let ctx = Context { now, ip: None, mfa: mfa.clone(), attributes: Attributes::default() };
    let ts = {
        let Ok(t) = state.tenant(&tenant) else { return finish_err(&p, "server_error", "the tenant is gone") };
        let st = t.read();
        match rfc::compute(&st, &subject, &p.application, p.requested.as_deref(), &ctx, &groups) {
            Ok(ts) => ts,
            Err(e) => return finish_err(&p, "invalid_scope", &e.message),
        }
    };
    let needs_mfa = ts.blocked.iter().any(|b| b.reason == "step_up_required:mfa");
    if needs_mfa && !p.step_up {
        // Back to the provider, asking for MFA.
        p.step_up = true;
        p.nonce = match random("n_") {
            Ok(n) => n,
            Err(_) => return finish_err(&p, "server_error", "no randomness available"),
        };
        let to = login_redirect(&state, &settings, &tenant, &txn, &p);
        lock(&state.authz().pending).insert(txn, p);
        return no_cache(Redirect::to(&to).into_response());
    }
    if ts.granted.is_empty() {
        let why: Vec<String> = ts.blocked.iter().map(|b| format!("{} ({})", b.scope, b.reason)).collect();
        return finish_err(&p, "invalid_scope", &format!("no requested scope can be granted: {}", why.join(", ")));
    }
    let login = Login { subject, provider: settings.login_provider.clone(), groups, mfa, family_exp, scope: ts };
    let consented = {
        let st = match state.tenant(&tenant) {
            Ok(t) => t,
            Err(_) => return finish_err(&p, "server_error", "the tenant is gone"),
        };
        let st = st.read();
        p.client.first_party
            || st
                .oauth()
                .consent(&login.subject, &p.client.client_id, &p.application)
                .is_some_and(|c| login.scope.granted.iter().all(|g| c.scope.contains(g)))
    };
    p.login = Some(login);
    if consented {
        lock(&state.authz().pending).remove(&txn);
        return issue_code(&state, &p, false).await;
    }
    lock(&state.authz().pending).insert(txn.clone(), p.clone());
    let app_name = state
        .tenant(&tenant)
        .ok()
        .and_then(|t| {
            t.read()
                .object(&ObjectRef::new(ObjectType::Application, &p.application))
                .and_then(|a| a.get("name"))
                .and_then(|n| n.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| p.application.clone());
    let login = p.login.as_ref().map(|l| (l.subject.as_str(), l.provider.as_str(), &l.scope));
    let Some((subject, provider, scope)) = login else {
        return html_error(StatusCode::INTERNAL_SERVER_ERROR, "The sign-in was lost. Start again.");
    };
    crate::ui::oauth_pages::consent_page(&crate::ui::oauth_pages::ConsentView {
        action: &format!("/t/{tenant}/oauth2/consent"),
        txn: &txn,
        csrf: &p.csrf,
        client_name: &p.client.name,
        client_id: &p.client.client_id,
        client_kind: p.client.kind,
        application: &app_name,
        resource: &p.resource,
        subject,
        provider,
        granted: &scope.granted,
        blocked: &scope.blocked,
    })
}

async fn consent(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else { return html_error(StatusCode::BAD_REQUEST, "The form could not be read.") };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let txn = form.get("txn").cloned().unwrap_or_default();
    let p = match pending_of(&state, &tenant, &txn, &headers) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !ct_eq(form.get("csrf").map(String::as_str).unwrap_or(""), &p.csrf) || p.login.is_none() {
        return html_error(StatusCode::FORBIDDEN, "This consent form is not the one shown to you. Start again.");
    }
    lock(&state.authz().pending).remove(&txn);
    let iss = tenant_issuer(&state, &tenant);
    if form.get("decision").map(String::as_str) != Some("approve") {
        return error_to_client(&p, &iss, "access_denied", "the user did not allow the client");
    }
    issue_code(&state, &p, true).await
}

/// Stores a code (and the consent, when one was given) and sends the
/// browser back to the client with `code`, `state` and `iss`.
async fn issue_code(state: &AppState, p: &Pending, consented: bool) -> Response {
    let iss = tenant_issuer(state, &p.tenant);
    let Some(login) = &p.login else { return error_to_client(p, &iss, "server_error", "the sign-in was lost") };
    let Ok((code, digest)) = oauth_as::new_secret(oauth_as::CODE_PREFIX) else {
        return error_to_client(p, &iss, "server_error", "no randomness available");
    };
    let now = state.now();
    let record = AuthCode {
        client_id: p.client.client_id.clone(),
        redirect_uri: p.redirect_uri.clone(),
        application: p.application.clone(),
        resource: p.resource.clone(),
        subject: login.subject.clone(),
        scope: login.scope.granted.clone(),
        groups: login.groups.clone(),
        mfa: login.mfa.clone(),
        code_challenge: p.code_challenge.clone(),
        exp: Timestamp(now.0 + CODE_LIFETIME),
        family_exp: login.family_exp,
        used_by: None,
    };
    let consent = consented.then(|| Consent {
        subject: login.subject.clone(),
        client_id: p.client.client_id.clone(),
        application: p.application.clone(),
        scope: login.scope.granted.clone(),
        at: now,
    });
    let actor = login.subject.clone();
    let res = state
        .write_with(&p.tenant, &actor, move |st| {
            let mut changes: Vec<Change> = st
                .oauth()
                .expired_codes(now, 100)
                .into_iter()
                .map(|digest| Change::OAuth(OAuthChange::DeleteCode { digest }))
                .collect();
            if let Some(c) = consent.clone() {
                let key = Consent::key(&c.subject, &c.client_id, &c.application);
                changes.push(Change::OAuth(OAuthChange::PutConsent { key, consent: Box::new(c) }));
            }
            changes
                .push(Change::OAuth(OAuthChange::PutCode { digest: digest.clone(), code: Box::new(record.clone()) }));
            Ok((changes, ()))
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e.message, "cannot store an authorization code");
        return error_to_client(p, &iss, "server_error", "the grant could not be stored; try again");
    }
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &p.state {
        params.push(("state", s));
    }
    back_to_client(&p.redirect_uri, &params, &iss)
}

// ----------------------------------------------------------------- /token

fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    rfc::oauth_error(status, error, description)
}

/// The client of a `/token` or `/revoke` request: (client id, is it
/// authenticated with a secret). Public clients name themselves with
/// `client_id` only; a client with a secret must present it.
#[allow(clippy::result_large_err)]
fn token_client(st: &TenantState, headers: &HeaderMap, form: &Form) -> Result<(String, bool), Response> {
    let bad = || token_error(StatusCode::UNAUTHORIZED, "invalid_client", "the client credentials are not valid");
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")).map(str::to_string));
    let (id, secret) = match (basic, form.get("client_secret")) {
        (Some(b), None) => {
            let decoded = rfc::basic_credentials(&b).ok_or_else(bad)?;
            let (i, s) = decoded.split_once(':').ok_or_else(bad)?;
            (rfc::form_decode(i).ok_or_else(bad)?, Some(rfc::form_decode(s).ok_or_else(bad)?))
        }
        (None, Some(s)) => (form.get("client_id").cloned().ok_or_else(bad)?, Some(s.clone())),
        (Some(_), Some(_)) => {
            return Err(token_error(StatusCode::BAD_REQUEST, "invalid_request", "use one client authentication method"))
        }
        (None, None) => match form.get("client_id").filter(|c| !c.is_empty()) {
            Some(id) => (id.clone(), None),
            None => {
                return Err(token_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "name the client (`client_id`) or authenticate it",
                ))
            }
        },
    };
    if let Some(form_id) = form.get("client_id") {
        if *form_id != id {
            return Err(bad());
        }
    }
    match (st.oauth().client(&id), secret) {
        (Some(c), Some(s)) if c.verify(&s) => Ok((id, true)),
        (Some(c), None) if c.secret_sha256.is_none() => Ok((id, false)),
        (None, None) if id.starts_with("https://") || id.starts_with("http://") => Ok((id, false)),
        (_, s) => {
            if let Some(s) = s {
                let _ = tokens::digest_hex(&s);
            }
            Err(bad())
        }
    }
}

/// At most [`TOKEN_RATE`] `/token` requests per client per 10 s.
fn rate_limited(state: &AppState, tenant: &str, client: &str) -> bool {
    let now = state.now().0;
    let mut rate = lock(&state.authz().rate);
    if rate.len() > 100_000 {
        rate.retain(|_, (start, _)| now < *start + TOKEN_RATE_WINDOW);
    }
    let e = rate.entry((tenant.to_string(), client.to_string())).or_insert((now, 0));
    if now >= e.0 + TOKEN_RATE_WINDOW {
        *e = (now, 0);
    }
    e.1 += 1;
    e.1 > TOKEN_RATE
}

#[derive(Serialize)]
struct TokenOut {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// What a `/token` request decided, computed under the tenant's write lock.
enum Grant {
    Tokens(Vec<Change>, TokenOut),
    Refused(Vec<Change>, StatusCode, &'static str, String),
}

fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let ok_chars = verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = b64url(&Sha256::digest(verifier.as_bytes()));
    // Both checks always run: the comparison is constant-time.
    let same = ct_eq(&computed, challenge);
    same && ok_chars && (43..=128).contains(&verifier.len())
}

fn scope_param(form: &Form) -> Option<Vec<String>> {
    form.get("scope")
        .map(|s| s.split_ascii_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|v| !v.is_empty())
}

/// The access token of a grant: the record change and its value.
#[allow(clippy::too_many_arguments)]
fn access_token(
    subject: &str,
    application: &str,
    client_id: &str,
    scope: &[String],
    groups: &[String],
    mfa: Option<MfaContext>,
    now: Timestamp,
    until: Timestamp,
) -> Result<(Change, String, String, i64), ApiError> {
    let (raw, digest) = tokens::new_token().map_err(ApiError::internal)?;
    let exp = Timestamp((now.0 + ACCESS_LIFETIME).min(until.0).max(now.0 + 1));
    let record = TokenRecord {
        subject: subject.to_string(),
        application: application.to_string(),
        client_id: client_id.to_string(),
        scope: scope.to_vec(),
        iat: now,
        exp,
        mfa,
        attributes: Attributes::default(),
        groups: groups.to_vec(),
    };
    Ok((Change::Token(TokenChange::Issue { digest: digest.clone(), record }), raw, digest, exp.0 - now.0))
}

fn revoke_family(id: &str, f: &RefreshFamily) -> Vec<Change> {
    let mut out: Vec<Change> =
        f.access.iter().map(|d| Change::Token(TokenChange::Revoke { digest: d.clone() })).collect();
    out.push(Change::OAuth(OAuthChange::DeleteFamily { id: id.to_string() }));
    out
}

fn refused(status: StatusCode, error: &'static str, d: impl Into<String>) -> Result<Grant, ApiError> {
    Ok(Grant::Refused(vec![], status, error, d.into()))
}

fn ctx_of(now: Timestamp, mfa: Option<MfaContext>) -> Context {
    Context { now, ip: None, mfa, attributes: Attributes::default() }
}

/// Scope at a grant: empty is `invalid_scope`, a suspended subject `invalid_grant`.
fn empty_grant(ts: &TokenScope) -> Option<(&'static str, String)> {
    if !ts.granted.is_empty() {
        return None;
    }
    if ts.blocked.iter().any(|b| b.reason == "subject_suspended") {
        return Some(("invalid_grant", "the subject is suspended".into()));
    }
    let why: Vec<String> = ts.blocked.iter().map(|b| format!("`{}` ({})", b.scope, b.reason)).collect();
    Some(("invalid_scope", format!("no requested scope can be granted: {}", why.join(", "))))
}

fn grant_code(st: &TenantState, form: &Form, client_id: &str, now: Timestamp) -> Result<Grant, ApiError> {
    let bad = |d: &str| refused(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return refused(StatusCode::BAD_REQUEST, "invalid_request", "`code` is required");
    };
    let Some((digest, rec)) = st.oauth().code(code) else { return bad("the code is unknown or expired") };
    if let Some(family) = &rec.used_by {
        // RFC 6749 §4.1.2: a code used twice revokes what it gave.
        let mut changes = vec![];
        if let Some(f) = st.oauth().family(family) {
            changes = revoke_family(family, f);
        }
        return Ok(Grant::Refused(
            changes,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code was already used; its tokens are revoked".into(),
        ));
    }
    if rec.exp <= now {
        return bad("the code has expired (codes live 60 seconds)");
    }
    if !ct_eq(&rec.client_id, client_id) {
        return bad("the code was issued to another client");
    }
    if form.get("redirect_uri").map(String::as_str) != Some(rec.redirect_uri.as_str()) {
        return bad("`redirect_uri` is not the one of the authorization request");
    }
    if let Some(r) = form.get("resource") {
        if *r != rec.resource {
            return refused(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                "`resource` is not the one of the authorization request",
            );
        }
    }
    let Some(verifier) = form.get("code_verifier") else {
        return refused(StatusCode::BAD_REQUEST, "invalid_request", "`code_verifier` is required (PKCE)");
    };
    if !verifier_matches(verifier, &rec.code_challenge) {
        return bad("the PKCE `code_verifier` does not match the `code_challenge`");
    }
    let ts =
        rfc::compute(st, &rec.subject, &rec.application, Some(&rec.scope), &ctx_of(now, rec.mfa.clone()), &rec.groups)?;
    if let Some((e, d)) = empty_grant(&ts) {
        return refused(StatusCode::BAD_REQUEST, e, d);
    }
    let family_id = random("f_")?;
    let until = Timestamp((now.0 + FAMILY_LIFETIME).min(rec.family_exp.map_or(i64::MAX, |t| t.0)));
    let (issue, access, access_digest, expires_in) =
        access_token(&rec.subject, &rec.application, client_id, &ts.granted, &rec.groups, rec.mfa.clone(), now, until)?;
    let (refresh, refresh_digest) = oauth_as::new_secret(oauth_as::REFRESH_PREFIX).map_err(ApiError::internal)?;
    let family = RefreshFamily {
        client_id: client_id.to_string(),
        subject: rec.subject.clone(),
        application: rec.application.clone(),
        scope: rec.scope.clone(),
        groups: rec.groups.clone(),
        mfa: rec.mfa.clone(),
        created: now,
        exp: until,
        current: refresh_digest,
        used: vec![],
        access: vec![access_digest],
    };
    let mut used = rec.clone();
    used.used_by = Some(family_id.clone());
    // Grants that ended are purged as new ones start (their access tokens
    // have expired with them).
    let purged = st.oauth().expired_families(now, 100);
    let mut changes: Vec<Change> =
        purged.into_iter().map(|id| Change::OAuth(OAuthChange::DeleteFamily { id })).collect();
    changes.extend([
        Change::OAuth(OAuthChange::PutCode { digest, code: Box::new(used) }),
        Change::OAuth(OAuthChange::PutFamily { id: family_id, family: Box::new(family) }),
        issue,
    ]);
    let out = TokenOut {
        access_token: access,
        token_type: "Bearer",
        expires_in,
        scope: ts.granted.join(" "),
        refresh_token: Some(refresh),
    };
    Ok(Grant::Tokens(changes, out))
}

fn grant_refresh(st: &TenantState, form: &Form, client_id: &str, now: Timestamp) -> Result<Grant, ApiError> {
    let bad = |d: &str| refused(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let Some(raw) = form.get("refresh_token").filter(|c| !c.is_empty()) else {
        return refused(StatusCode::BAD_REQUEST, "invalid_request", "`refresh_token` is required");
    };
    let Some((id, f, digest)) = st.oauth().family_of(raw) else {
        return bad("the refresh token is unknown or revoked");
    };
    if !ct_eq(&f.client_id, client_id) {
        return bad("the refresh token was issued to another client");
    }
    if !ct_eq(&digest, &f.current) {
        // A rotated-out token presented again: the family is compromised.
        return Ok(Grant::Refused(
            revoke_family(id, f),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token was already used; every token of its grant is revoked".into(),
        ));
    }
    if f.exp <= now {
        return Ok(Grant::Refused(
            revoke_family(id, f),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the grant has expired; sign in again".into(),
        ));
    }
    if let Some(r) = form.get("resource") {
        let app = st
            .objects()
            .filter(|(o, _)| o.ty == ObjectType::Application)
            .any(|(o, attrs)| o.id == f.application && attrs.get("resource").and_then(|v| v.as_str()) == Some(r));
        if !app {
            return refused(StatusCode::BAD_REQUEST, "invalid_target", "`resource` is not the grant's application");
        }
    }
    // RFC 6749 §6: never more than the grant. Clients that repeat their
    // original request (authlib does) get it narrowed to the grant.
    let requested = match scope_param(form) {
        Some(s) => {
            let within: Vec<String> = s.into_iter().filter(|x| f.scope.contains(x)).collect();
            if within.is_empty() {
                return refused(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "a refresh may only narrow the scope of the grant",
                );
            }
            within
        }
        None => f.scope.clone(),
    };
    let ts = rfc::compute(st, &f.subject, &f.application, Some(&requested), &ctx_of(now, f.mfa.clone()), &f.groups)?;
    if let Some((e, d)) = empty_grant(&ts) {
        return refused(StatusCode::BAD_REQUEST, e, d);
    }
    let (issue, access, access_digest, expires_in) =
        access_token(&f.subject, &f.application, client_id, &ts.granted, &f.groups, f.mfa.clone(), now, f.exp)?;
    let (refresh, refresh_digest) = oauth_as::new_secret(oauth_as::REFRESH_PREFIX).map_err(ApiError::internal)?;
    let mut next = f.clone();
    next.used.push(std::mem::replace(&mut next.current, refresh_digest));
    next.access.push(access_digest);
    // Bounded: the oldest access tokens have long expired.
    if next.access.len() > 64 {
        next.access.drain(..next.access.len() - 64);
    }
    let changes = vec![Change::OAuth(OAuthChange::PutFamily { id: id.to_string(), family: Box::new(next) }), issue];
    let out = TokenOut {
        access_token: access,
        token_type: "Bearer",
        expires_in,
        scope: ts.granted.join(" "),
        refresh_token: Some(refresh),
    };
    Ok(Grant::Tokens(changes, out))
}

fn grant_client_credentials(
    state: &AppState,
    st: &TenantState,
    tenant: &str,
    form: &Form,
    client_id: &str,
    authenticated: bool,
    now: Timestamp,
) -> Result<Grant, ApiError> {
    let sa = st.oauth().client(client_id).and_then(|c| c.service_account.clone());
    let Some(sa) = sa.filter(|_| authenticated) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "only a confidential client of a service account may use `client_credentials`",
        );
    };
    let Some(resource) = form.get("resource") else {
        return refused(StatusCode::BAD_REQUEST, "invalid_target", "`resource` (RFC 8707) is required");
    };
    let Some(app) = app_of_resource(state, st, tenant, resource) else {
        return refused(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            format!("`{resource}` is not an application of this tenant"),
        );
    };
    let subject = format!("service_account:{sa}");
    let requested = scope_param(form);
    let ts = rfc::compute(st, &subject, &app, requested.as_deref(), &ctx_of(now, None), &[])?;
    if let Some((e, d)) = empty_grant(&ts) {
        return refused(StatusCode::BAD_REQUEST, e, d);
    }
    let (issue, access, _, expires_in) =
        access_token(&subject, &app, client_id, &ts.granted, &[], None, now, Timestamp(now.0 + ACCESS_LIFETIME))?;
    let out = TokenOut {
        access_token: access,
        token_type: "Bearer",
        expires_in,
        scope: ts.granted.join(" "),
        refresh_token: None,
    };
    Ok(Grant::Tokens(vec![issue], out))
}

/// The start of every client request (`/token`, `/revoke`): the tenant,
/// the form body, and the client that sent it (`true`: it authenticated;
/// `false`: a public client naming itself). The error is the answer to send.
#[allow(clippy::result_large_err)]
fn client_request(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Form, String, bool), Response> {
    let Ok(t) = state.tenant(tenant) else {
        return Err(token_error(StatusCode::NOT_FOUND, "invalid_request", "there is no such tenant"));
    };
    let Ok(body) = body else {
        return Err(token_error(StatusCode::BAD_REQUEST, "invalid_request", "cannot read the body"));
    };
    let form = rfc::parse_form(&body)?;
    let (client_id, authenticated) = token_client(&t.read(), headers, &form)?;
    Ok((form, client_id, authenticated))
}

async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (form, client_id, authenticated) = match client_request(&state, &tenant, &headers, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rate_limited(&state, &tenant, &client_id) {
        let mut r = token_error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "too many token requests from this client; slow down",
        );
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        return r;
    }
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let now = state.now();
    let st2 = state.clone();
    let tenant2 = tenant.clone();
    let actor = format!("oauth-client:{}", client_id.chars().take(200).collect::<String>());
    let result = state
        .write_with(&tenant, &actor, move |st| {
            let g = match grant_type.as_str() {
                "authorization_code" => grant_code(st, &form, &client_id, now)?,
                "refresh_token" => grant_refresh(st, &form, &client_id, now)?,
                "client_credentials" => {
                    grant_client_credentials(&st2, st, &tenant2, &form, &client_id, authenticated, now)?
                }
                "" => Grant::Refused(
                    vec![],
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "`grant_type` is required".into(),
                ),
                _ => Grant::Refused(
                    vec![],
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "use authorization_code, refresh_token or client_credentials".into(),
                ),
            };
            Ok(match g {
                Grant::Tokens(changes, out) => (changes, Ok(out)),
                Grant::Refused(changes, s, e, d) => (changes, Err((s, e, d))),
            })
        })
        .await;
    match result {
        Ok((_, Ok(out))) => rfc::no_store(axum::Json(out).into_response()),
        Ok((_, Err((s, e, d)))) => token_error(s, e, &d),
        Err(e) => {
            tracing::error!(tenant = %tenant, error = %e.message, "token request failed");
            token_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later")
        }
    }
}

/// RFC 7009 for a client's own tokens: a refresh token revokes its whole
/// family; an access token itself. Always 200 for a valid client.
async fn revoke(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (form, client_id, _) = match client_request(&state, &tenant, &headers, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(raw) = form.get("token").filter(|t| !t.is_empty()).cloned() else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_request", "`token` is required");
    };
    let actor = format!("oauth-client:{}", client_id.chars().take(200).collect::<String>());
    let res = state
        .write_with(&tenant, &actor, move |st| {
            if let Some((id, f, _)) = st.oauth().family_of(&raw) {
                if ct_eq(&f.client_id, &client_id) {
                    return Ok((revoke_family(id, f), ()));
                }
            }
            if let Some((d, r)) = st.tokens().token(&raw) {
                if ct_eq(&r.client_id, &client_id) {
                    return Ok((vec![Change::Token(TokenChange::Revoke { digest: d.to_string() })], ()));
                }
            }
            Ok((vec![], ()))
        })
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e.message, "revocation failed");
        return token_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again later");
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
}

// ------------------------------------------------------- RFC 7591 register

/// A redirect URI a client may register: https, or http on loopback
/// (native apps, RFC 8252 §7.3); no fragment.
fn check_redirect_uri(u: &str) -> Result<(), String> {
    if u.contains('#') || u.len() > 2048 {
        return Err(format!("`{u}`: no fragment, at most 2048 characters"));
    }
    crate::model::oidc::check_jwks_uri(u)
        .map_err(|_| format!("`{u}`: use https (or http on 127.0.0.1, localhost, [::1])"))
}

fn register_error(error: &str, description: &str) -> Response {
    rfc::no_store(
        (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description})))
            .into_response(),
    )
}

async fn register(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(t) = state.tenant(&tenant) else {
        return token_error(StatusCode::NOT_FOUND, "invalid_request", "there is no such tenant");
    };
    if t.read().oauth().settings().is_some_and(|s| !s.dynamic_registration) {
        return token_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "dynamic client registration is switched off for this tenant",
        );
    }
    let Ok(body) = body else { return register_error("invalid_client_metadata", "cannot read the body") };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return register_error("invalid_client_metadata", "the body is not a JSON object");
    };
    let Some(obj) = doc.as_object() else {
        return register_error("invalid_client_metadata", "the body is not a JSON object");
    };
    let uris: Option<Vec<String>> = obj
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .and_then(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect());
    let uris = match uris {
        Some(u) if !u.is_empty() && u.len() <= 20 => u,
        _ => return register_error("invalid_redirect_uri", "`redirect_uris` must list 1 to 20 URIs"),
    };
    if let Some(e) = uris.iter().find_map(|u| check_redirect_uri(u).err()) {
        return register_error("invalid_redirect_uri", &e);
    }
    let confidential = match obj.get("token_endpoint_auth_method").and_then(|v| v.as_str()) {
        None | Some("none") => false,
        Some("client_secret_basic") | Some("client_secret_post") => true,
        Some(m) => {
            return register_error(
                "invalid_client_metadata",
                &format!("`token_endpoint_auth_method` `{m}` is not supported"),
            )
        }
    };
    let name: String =
        obj.get("client_name").and_then(|v| v.as_str()).unwrap_or("unnamed client").chars().take(200).collect();
    let out = new_client(
        &state,
        &tenant,
        "dynamic-registration",
        name,
        uris,
        confidential,
        false,
        None,
        ClientSource::Dynamic,
    )
    .await;
    match out {
        Ok(c) => rfc::no_store((StatusCode::CREATED, axum::Json(c)).into_response()),
        Err(e) => register_error("invalid_client_metadata", &e.message),
    }
}

#[derive(Serialize)]
struct ClientCreated {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    client_id_issued_at: i64,
    client_name: String,
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: &'static str,
    grant_types: Vec<&'static str>,
    response_types: Vec<&'static str>,
    revision: Revision,
}

#[allow(clippy::too_many_arguments)]
async fn new_client(
    state: &AppState,
    tenant: &str,
    actor: &str,
    name: String,
    redirect_uris: Vec<String>,
    confidential: bool,
    first_party: bool,
    service_account: Option<String>,
    source: ClientSource,
) -> Result<ClientCreated, ApiError> {
    let (id_raw, _) = oauth_as::new_secret("").map_err(ApiError::internal)?;
    let client_id = format!("{}{}", oauth_as::OAUTH_CLIENT_PREFIX, &id_raw[..24]);
    let secret = if confidential {
        Some(oauth_as::new_secret(tokens::SECRET_PREFIX).map_err(ApiError::internal)?.0)
    } else {
        None
    };
    let now = state.now();
    let record = OAuthClient {
        client_id: client_id.clone(),
        name: name.clone(),
        redirect_uris: redirect_uris.clone(),
        secret_sha256: secret.as_deref().map(tokens::digest_hex),
        first_party,
        service_account: service_account.clone(),
        source,
        created_at: now,
    };
    let (rev, _) = state
        .write_with(tenant, actor, move |_| {
            Ok((vec![Change::OAuth(OAuthChange::PutClient(Box::new(record.clone())))], ()))
        })
        .await?;
    let mut grant_types = vec![];
    if !redirect_uris.is_empty() {
        grant_types.extend(["authorization_code", "refresh_token"]);
    }
    if service_account.is_some() {
        grant_types.push("client_credentials");
    }
    Ok(ClientCreated {
        client_id,
        token_endpoint_auth_method: if secret.is_some() { "client_secret_basic" } else { "none" },
        client_secret: secret,
        client_id_issued_at: now.0,
        client_name: name,
        redirect_uris,
        response_types: if grant_types.contains(&"authorization_code") { vec!["code"] } else { vec![] },
        grant_types,
        revision: rev.unwrap_or(Revision(0)),
    })
}

// ------------------------------------------------------------- admin API

#[derive(Serialize)]
struct SettingsOut {
    #[serde(flatten)]
    settings: serde_json::Value,
    client_secret_set: bool,
    issuer: String,
    revision: Revision,
}

fn settings_out(state: &AppState, tenant: &str, s: &AsSettings, revision: Revision) -> SettingsOut {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("client_secret");
    }
    SettingsOut {
        settings: v,
        client_secret_set: s.client_secret.is_some(),
        issuer: tenant_issuer(state, tenant),
        revision,
    }
}

async fn get_settings(State(state): State<AppState>, auth: TenantRead) -> Result<axum::Json<SettingsOut>, ApiError> {
    let revision = state.visible(None)?;
    let t = state.tenant(&auth.tenant)?;
    let st = t.read();
    let s = st
        .oauth()
        .settings()
        .ok_or_else(|| ApiError::not_found("authorization server settings of tenant", &auth.tenant))?;
    Ok(axum::Json(settings_out(&state, &auth.tenant, s, revision)))
}

async fn put_settings(
    State(state): State<AppState>,
    auth: TenantWrite,
    Json(s): Json<AsSettings>,
) -> Result<axum::Json<SettingsOut>, ApiError> {
    state.tenant(&auth.tenant)?;
    s.validate().map_err(ApiError::invalid)?;
    let s2 = s.clone();
    let (rev, _) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            if st.identity().provider(&s2.login_provider).is_none() {
                return Err(ApiError::invalid(format!(
                    "`login_provider`: there is no identity provider `{}` (PUT it at /identity-providers/{0} first)",
                    s2.login_provider
                )));
            }
            Ok((vec![Change::OAuth(OAuthChange::PutSettings(Box::new(s2.clone())))], ()))
        })
        .await?;
    Ok(axum::Json(settings_out(&state, &auth.tenant, &s, rev.unwrap_or(Revision(0)))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientIn {
    name: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    /// A client secret is issued (shown once).
    #[serde(default)]
    confidential: bool,
    /// No consent page.
    #[serde(default)]
    first_party: bool,
    /// `client_credentials` for this service account (needs `confidential`).
    #[serde(default)]
    service_account: Option<String>,
}

#[derive(Serialize)]
struct ClientOut {
    client_id: String,
    name: String,
    redirect_uris: Vec<String>,
    confidential: bool,
    first_party: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account: Option<String>,
    source: ClientSource,
    created_at: Timestamp,
}

async fn create_client(
    State(state): State<AppState>,
    auth: TenantWrite,
    Json(c): Json<ClientIn>,
) -> Result<Response, ApiError> {
    let t = state.tenant(&auth.tenant)?;
    let name = c.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("`name` must be 1 to 200 characters"));
    }
    if let Some(e) = c.redirect_uris.iter().find_map(|u| check_redirect_uri(u).err()) {
        return Err(ApiError::invalid(format!("`redirect_uris`: {e}")));
    }
    if let Some(sa) = &c.service_account {
        validate_id(sa).map_err(|m| ApiError::invalid(format!("`service_account` `{sa}` {m}")))?;
        if !c.confidential {
            return Err(ApiError::invalid(
                "a service account's client must be `confidential` (it authenticates with a secret)",
            ));
        }
        if t.read().object(&ObjectRef::new(ObjectType::ServiceAccount, sa)).is_none() {
            return Err(ApiError::not_found("service account", sa));
        }
    } else if c.redirect_uris.is_empty() {
        return Err(ApiError::invalid(
            "give `redirect_uris` (authorization code) or a `service_account` (client credentials)",
        ));
    }
    let out = new_client(
        &state,
        &auth.tenant,
        &auth.caller.name,
        name,
        c.redirect_uris,
        c.confidential,
        c.first_party,
        c.service_account,
        ClientSource::Admin,
    )
    .await?;
    Ok(rfc::no_store((StatusCode::CREATED, axum::Json(out)).into_response()))
}

async fn list_clients(
    State(state): State<AppState>,
    auth: TenantRead,
) -> Result<axum::Json<Listing<ClientOut>>, ApiError> {
    let revision = state.visible(None)?;
    let t = state.tenant(&auth.tenant)?;
    let st = t.read();
    let items = st
        .oauth()
        .clients()
        .map(|c| ClientOut {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            confidential: c.secret_sha256.is_some(),
            first_party: c.first_party,
            service_account: c.service_account.clone(),
            source: c.source,
            created_at: c.created_at,
        })
        .collect();
    Ok(axum::Json(Listing { items, revision }))
}

#[derive(Serialize)]
struct Deleted {
    revision: Revision,
}

async fn delete_client(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, client_id)): Path<(String, String)>,
) -> Result<axum::Json<Deleted>, ApiError> {
    state.tenant(&auth.tenant)?;
    let id = client_id.clone();
    let (rev, _) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            if st.oauth().client(&id).is_none() {
                return Err(ApiError::not_found("OAuth client", &id));
            }
            Ok((vec![Change::OAuth(OAuthChange::DeleteClient(id.clone()))], ()))
        })
        .await?;
    Ok(axum::Json(Deleted { revision: rev.unwrap_or(Revision(0)) }))
}

// ------------------------------------------------------------ change feed

fn prefix(d: &str) -> String {
    tokens::token_id(d).to_string()
}

/// The readable form of an authorization-server change (no secret, no code).
pub fn op_out(c: OAuthChange) -> OpOut {
    let o = |event, id, client_id, subject, scope| OpOut::OAuth { event, id, client_id, subject, scope };
    match c {
        OAuthChange::PutSettings(s) => {
            o("settings_put", s.login_provider.clone(), Some(s.client_id.clone()), None, None)
        }
        OAuthChange::DeleteSettings => o("settings_deleted", String::new(), None, None, None),
        OAuthChange::PutClient(r) => o("client_registered", r.client_id.clone(), None, None, None),
        OAuthChange::DeleteClient(id) => o("client_deleted", id, None, None, None),
        OAuthChange::PutCode { digest, code } => {
            let event = if code.used_by.is_some() { "code_exchanged" } else { "code_issued" };
            o(
                event,
                prefix(&digest),
                Some(code.client_id.clone()),
                Some(code.subject.clone()),
                Some(code.scope.join(" ")),
            )
        }
        OAuthChange::DeleteCode { digest } => o("code_purged", prefix(&digest), None, None, None),
        OAuthChange::PutFamily { id, family } => {
            let event = if family.used.is_empty() { "grant" } else { "refresh" };
            o(event, id, Some(family.client_id.clone()), Some(family.subject.clone()), Some(family.scope.join(" ")))
        }
        OAuthChange::DeleteFamily { id } => o("grant_revoked", id, None, None, None),
        OAuthChange::PutConsent { consent, .. } => o(
            "consent",
            consent.application.clone(),
            Some(consent.client_id.clone()),
            Some(consent.subject.clone()),
            Some(consent.scope.join(" ")),
        ),
    }
}

/// An authorization-server change in words (the admin UI's activity log).
pub fn change_words(c: &OAuthChange) -> String {
    match c {
        OAuthChange::PutSettings(s) => format!("configured the authorization server's login at {}", s.login_provider),
        OAuthChange::DeleteSettings => "removed the authorization server's settings".into(),
        OAuthChange::PutClient(r) => format!("registered OAuth client {}", r.name),
        OAuthChange::DeleteClient(id) => format!("deleted OAuth client {id}"),
        OAuthChange::PutCode { code, .. } if code.used_by.is_some() => {
            format!("exchanged an authorization code of {} for tokens", code.subject)
        }
        OAuthChange::PutCode { code, .. } => {
            format!("issued an authorization code to {} for {}", code.client_id, code.subject)
        }
        OAuthChange::DeleteCode { .. } => "purged an expired authorization code".into(),
        OAuthChange::PutFamily { family, .. } if family.used.is_empty() => {
            format!("granted {} access to {} for {}", family.client_id, family.application, family.subject)
        }
        OAuthChange::PutFamily { family, .. } => {
            format!("refreshed the grant of {} for {}", family.client_id, family.subject)
        }
        OAuthChange::DeleteFamily { .. } => "revoked an OAuth grant".into(),
        OAuthChange::PutConsent { consent, .. } => {
            format!(
                "{} allowed {} on {}: {}",
                consent.subject,
                consent.client_id,
                consent.application,
                consent.scope.join(" ")
            )
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_checked_by_rfc_7636_appendix_b() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX", challenge));
        assert!(!verifier_matches("short", &b64url(&Sha256::digest(b"short"))), "43 characters at least");
    }

    #[test]
    fn client_metadata_urls_are_https_unless_loopback_is_allowed() {
        assert!(check_cimd_url("https://app.example/oauth/client.json", false).is_ok());
        assert!(check_cimd_url("https://app.example", false).is_err(), "a path is required");
        assert!(check_cimd_url("https://u@app.example/c", false).is_err());
        assert!(check_cimd_url("https://app.example/c#x", false).is_err());
        assert!(check_cimd_url("http://127.0.0.1:9000/c.json", false).is_err());
        assert!(check_cimd_url("http://127.0.0.1:9000/c.json", true).is_ok());
        assert!(check_cimd_url("http://app.example/c.json", true).is_err(), "only loopback over http");
    }
}
