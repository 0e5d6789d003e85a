//! Managing a tenant's SCIM tokens with an API key: create (the token is
//! answered once), list (ids and creation times, never the token), revoke.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use serde::Serialize;

use crate::api::auth::{TenantRead, TenantWrite};
use crate::api::error::{blocking, ApiError, Path};
use crate::api::wire::{Revision, Written};
use crate::api::AppState;
use crate::model::Timestamp;
use crate::service::scim_tokens::{self, ScimTokenChange};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/scim-tokens", get(list).post(create))
        .route("/v1/tenants/{tenant}/scim-tokens/{id}", delete(revoke))
}

#[derive(Debug, Serialize)]
struct Created {
    id: String,
    /// Shown once; only its SHA-256 is kept.
    token: String,
    created_at: Timestamp,
    revision: Revision,
}

#[derive(Debug, Serialize)]
struct TokenOut {
    id: String,
    created_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct TokenList {
    tokens: Vec<TokenOut>,
    revision: Revision,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn write(state: &AppState, auth: &TenantWrite, changes: Vec<ScimTokenChange>) -> Result<Revision, ApiError> {
    let hf = Arc::clone(state.holdfast());
    let (tenant, actor) = (auth.tenant.clone(), auth.caller.name.clone());
    blocking(move || Ok(hf.write_scim_tokens(&tenant, changes, &actor, now_ms())?)).await.map(Revision)
}

async fn create(
    State(state): State<AppState>,
    auth: TenantWrite,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    let (token, record) = scim_tokens::new_token(state.now()).map_err(ApiError::internal)?;
    let (id, created_at) = (record.id.clone(), record.created_at);
    let revision = write(&state, &auth, vec![ScimTokenChange::Put(record)]).await?;
    Ok((StatusCode::CREATED, axum::Json(Created { id, token, created_at, revision })))
}

async fn list(State(state): State<AppState>, auth: TenantRead) -> Result<axum::Json<TokenList>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let st = tenant.read();
    let tokens = st.scim_tokens().list().map(|r| TokenOut { id: r.id.clone(), created_at: r.created_at }).collect();
    Ok(axum::Json(TokenList { tokens, revision }))
}

async fn revoke(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    if state.tenant(&auth.tenant)?.read().scim_tokens().get(&id).is_none() {
        return Err(ApiError::not_found("SCIM token", &id));
    }
    let revision = write(&state, &auth, vec![ScimTokenChange::Delete(id)]).await?;
    Ok(axum::Json(Written { revision }))
}
