//! OIDC identity providers of a tenant (`/identity-providers/{name}`), the
//! just-in-time sync of a user's groups from an ID token (`.../sync`), and
//! the `id_token` of a check, explain or token-scope request: verified
//! (off the async threads: a key set may be fetched), its user is the
//! request's subject and its groups count for that request only.
//!
//! Tokens are never logged: handlers here log nothing about them, and a
//! verification failure answers 422 `invalid_token` with its `reason`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::{TenantRead, TenantWrite};
use super::error::{blocking, ApiError, ErrorCode, Json, Path};
use super::wire::{Listing, Revision, Written};
use super::AppState;
use crate::model::oidc::IdentityProvider;
use crate::service::identity::{IdentityError, SyncOutcome};
use crate::service::TenantState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/identity-providers", get(list))
        .route("/v1/tenants/{tenant}/identity-providers/{name}", get(get_one).put(put).delete(delete))
        .route("/v1/tenants/{tenant}/identity-providers/{name}/sync", post(sync))
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Token(t) => ApiError::invalid_token(&t),
            IdentityError::UnknownProvider(name) => ApiError::not_found("identity provider", &name),
            IdentityError::UnknownTenant(t) => ApiError::unknown_tenant(&t),
            IdentityError::Write(w) => w.into(),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Serialize)]
struct ProviderOut {
    name: String,
    #[serde(flatten)]
    provider: IdentityProvider,
}

#[derive(Serialize)]
struct SavedProvider {
    #[serde(flatten)]
    item: ProviderOut,
    created: bool,
    revision: Revision,
}

fn name_of(name: &str) -> Result<(), ApiError> {
    crate::model::validate_id(name).map_err(|m| ApiError::parameter(format!("identity provider name `{name}` {m}")))
}

async fn list(State(state): State<AppState>, auth: TenantRead) -> Result<axum::Json<Listing<ProviderOut>>, ApiError> {
    let revision = state.visible(None)?;
    let t = state.tenant(&auth.tenant)?;
    let st = t.read();
    let items =
        st.identity().providers().map(|(name, p)| ProviderOut { name: name.clone(), provider: p.clone() }).collect();
    Ok(axum::Json(Listing { items, revision }))
}

async fn get_one(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, name)): Path<(String, String)>,
) -> Result<axum::Json<ProviderOut>, ApiError> {
    name_of(&name)?;
    let t = state.tenant(&auth.tenant)?;
    let st = t.read();
    let p = st.identity().provider(&name).cloned().ok_or_else(|| ApiError::not_found("identity provider", &name))?;
    Ok(axum::Json(ProviderOut { name, provider: p }))
}

async fn put(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, name)): Path<(String, String)>,
    Json(p): Json<IdentityProvider>,
) -> Result<axum::Json<SavedProvider>, ApiError> {
    name_of(&name)?;
    let hf = Arc::clone(state.holdfast());
    let (tenant, actor, n, item) = (auth.tenant.clone(), auth.caller.name.clone(), name.clone(), p.clone());
    let (revision, created) =
        blocking(move || Ok(hf.put_identity_provider(&tenant, &n, item, &actor, now_ms())?)).await?;
    Ok(axum::Json(SavedProvider { item: ProviderOut { name, provider: p }, created, revision: Revision(revision) }))
}

async fn delete(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, name)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    name_of(&name)?;
    let hf = Arc::clone(state.holdfast());
    let (tenant, actor) = (auth.tenant.clone(), auth.caller.name.clone());
    let revision = blocking(move || Ok(hf.delete_identity_provider(&tenant, &name, &actor, now_ms())?)).await?;
    Ok(axum::Json(Written { revision: Revision(revision) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncIn {
    token: String,
}

#[derive(Serialize)]
struct SyncOut {
    user: String,
    added: Vec<String>,
    removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored: Vec<String>,
    revision: Revision,
}

async fn sync(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, name)): Path<(String, String)>,
    Json(body): Json<SyncIn>,
) -> Result<axum::Json<SyncOut>, ApiError> {
    name_of(&name)?;
    state.tenant(&auth.tenant)?;
    let hf = Arc::clone(state.holdfast());
    let (tenant, now) = (auth.tenant.clone(), state.now());
    let out: SyncOutcome = blocking(move || Ok(hf.sync_identity(&tenant, &name, &body.token, now, now_ms())?)).await?;
    Ok(axum::Json(SyncOut {
        user: out.user,
        added: out.added,
        removed: out.removed,
        ignored: out.ignored,
        revision: Revision(out.revision),
    }))
}

// ------------------------------------------------- request-only groups

/// The subject of a request and its request-only groups.
#[derive(Debug, Clone, Default)]
pub(super) struct Subject {
    pub subject: String,
    /// Group ids of the request's verified ID token (empty without one).
    pub groups: Vec<String>,
}

/// Verifies `token` of `tenant` on the blocking pool: `user:<id>` and its groups.
pub(super) async fn verify(state: &AppState, tenant: &str, token: String) -> Result<(String, Vec<String>), ApiError> {
    verify_full(state, tenant, token).await.map(|v| (format!("user:{}", v.user), v.groups))
}

/// [`verify`], answering everything the token says.
pub(super) async fn verify_full(
    state: &AppState,
    tenant: &str,
    token: String,
) -> Result<crate::model::oidc::VerifiedToken, ApiError> {
    let hf = Arc::clone(state.holdfast());
    let (tenant, now) = (tenant.to_string(), state.now());
    blocking(move || Ok(hf.verify_id_token(&tenant, None, &token, now)?.1)).await
}

/// Agrees a request's `subject` with its token's user: the token's user
/// when `subject` is absent; 422 when they differ; `subject` is required
/// without a token.
pub(super) fn agree(subject: Option<String>, token: Option<(String, Vec<String>)>) -> Result<Subject, ApiError> {
    match (subject, token) {
        (Some(s), None) => Ok(Subject { subject: s, groups: vec![] }),
        (None, None) => Err(ApiError::invalid("`subject` is required (or give an `id_token`)")),
        (Some(s), Some((user, _))) if s != user => Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("`subject` `{s}` is not the `id_token`'s user `{user}`"),
        )),
        (_, Some((user, groups))) => Ok(Subject { subject: user, groups }),
    }
}

/// The subject of a request with an optional `id_token`.
pub(super) async fn request_subject(
    state: &AppState,
    tenant: &str,
    subject: Option<String>,
    id_token: Option<String>,
) -> Result<Subject, ApiError> {
    let token = match id_token {
        Some(t) => Some(verify(state, tenant, t).await?),
        None => None,
    };
    agree(subject, token)
}

/// `oidc:<provider>` when the membership a path enters its first group
/// through (`path[0]` a user, `path[1]` a group) was created by a
/// provider's sync.
pub(super) fn synced_via(st: &TenantState, path: &[String]) -> Option<String> {
    let user = path.first()?.strip_prefix("user:")?;
    let group = path.get(1)?.strip_prefix("group:")?;
    st.identity().membership_source(group, user).map(|p| format!("oidc:{p}"))
}
