//! The seed's API, as the product docs name it: attach a role to a group
//! (`POST /uflow/v2/groups/{group_id}/role-bindings`) and read a user's
//! effective access. The tenant is the `X-Holdfast-Tenant` header, else
//! `default`; the same keys apply.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use super::auth::{TenantRead, TenantWrite};
use super::error::{ApiError, Json, Path, Query};
use super::query::{access_of, AccessOut};
use super::resources::{binding_tuple, write_binding};
use super::wire::{AccessQuery, BindingWritten, RoleBindingIn, Window};
use super::AppState;
use crate::model::{validate_id, ObjectRef, ObjectType};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/uflow/v2/groups/{group_id}/role-bindings", post(role_binding))
        .route("/uflow/v2/users/{user_id}/effective-access", get(effective_access))
}

fn id(ty: ObjectType, id: &str) -> Result<ObjectRef, ApiError> {
    validate_id(id).map_err(|m| ApiError::parameter(format!("{ty} id `{id}` {m}")))?;
    Ok(ObjectRef::new(ty, id))
}

/// Binds a role to the group, on an application or tenant-wide (no
/// `application`); conditions and the validity window are stored.
async fn role_binding(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path(group): Path<String>,
    Json(b): Json<RoleBindingIn>,
) -> Result<(StatusCode, axum::Json<BindingWritten>), ApiError> {
    let group = id(ObjectType::Group, &group)?;
    let tuple = binding_tuple(&group, &b.role, b.application.as_deref())?;
    let window = Window {
        conditions: b.conditions,
        expires_at: b.expires_at,
        expires_in: b.expires_in,
        not_before: b.not_before,
    };
    write_binding(&state, &auth, tuple, window, state.now()).await
}

async fn effective_access(
    State(state): State<AppState>,
    auth: TenantRead,
    Path(user): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Result<axum::Json<AccessOut>, ApiError> {
    let user = id(ObjectType::User, &user)?;
    access_of(&state, &auth.tenant, user.to_string(), q).await.map(axum::Json)
}
