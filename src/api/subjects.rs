//! Suspension of users and service accounts: one stored fact per subject.
//! Suspending rewrites no binding and no membership; from the revision of
//! the suspend write on, every check denies (`subject_suspended`), every
//! token scope is empty and every introspection of the subject's tokens
//! answers `{"active": false}`. Reactivation restores everything as it was.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::{TenantRead, TenantWrite};
use super::error::{parse_json, ApiError, Path};
use super::resources::subject_ref;
use super::wire::Revision;
use super::AppState;
use crate::model::{ObjectRef, ObjectType, Timestamp};
use crate::service::{Change, Suspension};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/subjects/{subject}/suspend", post(suspend))
        .route("/v1/tenants/{tenant}/subjects/{subject}/reactivate", post(reactivate))
        .route("/v1/tenants/{tenant}/subjects/{subject}/status", get(status))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendIn {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StatusOut {
    subject: String,
    /// `active` or `suspended`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suspended_at: Option<Timestamp>,
    revision: Revision,
}

/// A user or service account known to the tenant; groups cannot be
/// suspended (422), unknown subjects are 404.
fn suspendable(state: &AppState, tenant: &str, text: &str) -> Result<ObjectRef, ApiError> {
    let s = subject_ref(text)?;
    if !matches!(s.ty, ObjectType::User | ObjectType::ServiceAccount) {
        return Err(ApiError::invalid(format!(
            "`{text}`: only users and service accounts can be suspended (suspend the members instead)"
        )));
    }
    if !state.tenant(tenant)?.read().subject_known(&s) {
        return Err(ApiError::not_found(s.ty.as_str(), &s.id));
    }
    Ok(s)
}

fn status_of(state: &AppState, tenant: &str, s: &ObjectRef, revision: Revision) -> Result<StatusOut, ApiError> {
    let t = state.tenant(tenant)?;
    let st = t.read();
    let sus = st.suspension(s);
    Ok(StatusOut {
        subject: s.to_string(),
        status: if sus.is_some() { "suspended" } else { "active" },
        reason: sus.map(|x| x.reason.clone()).filter(|r| !r.is_empty()),
        suspended_at: sus.map(|x| x.at),
        revision,
    })
}

/// `{"reason"}` (optional; an empty body is no reason).
async fn suspend(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, subject)): Path<(String, String)>,
    body: Bytes,
) -> Result<axum::Json<StatusOut>, ApiError> {
    let input: SuspendIn =
        if body.iter().all(u8::is_ascii_whitespace) { SuspendIn::default() } else { parse_json(&body)? };
    suspend_subject(&state, &auth, &subject, input.reason.unwrap_or_default()).await.map(axum::Json)
}

/// Suspends a user or service account (the JSON API and the admin UI).
pub(crate) async fn suspend_subject(
    state: &AppState,
    auth: &TenantWrite,
    subject: &str,
    reason: String,
) -> Result<StatusOut, ApiError> {
    let s = suspendable(state, &auth.tenant, subject)?;
    let suspension = Suspension { reason, at: state.now() };
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, {
            let s = s.clone();
            move |st| {
                if !st.subject_known(&s) {
                    return Err(ApiError::not_found(s.ty.as_str(), &s.id));
                }
                Ok((vec![Change::Suspend(s.clone(), suspension.clone())], ()))
            }
        })
        .await?;
    status_of(state, &auth.tenant, &s, revision.map_or_else(|| state.visible(None), Ok)?)
}

/// Lifts a suspension; a subject that is not suspended is left as it is.
async fn reactivate(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, subject)): Path<(String, String)>,
) -> Result<axum::Json<StatusOut>, ApiError> {
    reactivate_subject(&state, &auth, &subject).await.map(axum::Json)
}

/// Lifts a suspension (the JSON API and the admin UI).
pub(crate) async fn reactivate_subject(
    state: &AppState,
    auth: &TenantWrite,
    subject: &str,
) -> Result<StatusOut, ApiError> {
    let s = suspendable(state, &auth.tenant, subject)?;
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, {
            let s = s.clone();
            move |st| Ok((if st.is_suspended(&s) { vec![Change::Reactivate(s.clone())] } else { vec![] }, ()))
        })
        .await?;
    status_of(state, &auth.tenant, &s, revision.map_or_else(|| state.visible(None), Ok)?)
}

async fn status(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, subject)): Path<(String, String)>,
) -> Result<axum::Json<StatusOut>, ApiError> {
    let revision = state.visible(None)?;
    let s = suspendable(&state, &auth.tenant, &subject)?;
    status_of(&state, &auth.tenant, &s, revision).map(axum::Json)
}
