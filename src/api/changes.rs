//! The change feed: every write of a tenant after a revision, readable —
//! the watch API for caches and the audit log (what, when, by which
//! credential).

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use super::auth::TenantRead;
use super::error::{blocking, ApiError, Query};
use super::wire::{page_size, ChangeList, ChangeOut, ChangesQuery, OpOut, Revision};
use super::AppState;
use crate::service::{Change, ChangeEntry};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/tenants/{tenant}/changes", get(list))
}

fn op_out(change: Change) -> OpOut {
    match change {
        Change::PutTuple(t, conditions) => OpOut::Write { tuple: t.to_string(), conditions },
        Change::DeleteTuple(t) => OpOut::Delete { tuple: t.to_string() },
        Change::PutObject(o, attributes) => OpOut::PutObject { object: o.to_string(), attributes },
        Change::DeleteObject(o) => OpOut::DeleteObject { object: o.to_string() },
        Change::Suspend(o, s) => OpOut::Suspend { subject: o.to_string(), reason: s.reason, at: s.at },
        Change::Reactivate(o) => OpOut::Reactivate { subject: o.to_string() },
        Change::Token(t) => OpOut::token(t),
        Change::ScimToken(t) => OpOut::scim_token(t),
        Change::Identity(c) => OpOut::identity(c),
        Change::OAuth(c) => super::authz_server::op_out(c),
    }
}

/// RFC 3339 with milliseconds, UTC.
fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

fn change_out(c: ChangeEntry) -> ChangeOut {
    ChangeOut {
        revision: Revision(c.revision),
        at: rfc3339_ms(c.at_unix_ms),
        actor: c.actor,
        ops: c.changes.into_iter().map(op_out).collect(),
    }
}

async fn list(
    State(state): State<AppState>,
    auth: TenantRead,
    Query(q): Query<ChangesQuery>,
) -> Result<axum::Json<ChangeList>, ApiError> {
    let since = q.since.unwrap_or(Revision(0));
    let limit = page_size(q.limit, 100, 1000);
    let revision = state.visible(None)?;
    state.tenant(&auth.tenant)?;
    let hf = std::sync::Arc::clone(state.holdfast());
    let tenant = auth.tenant.clone();
    blocking(move || {
        let changes: Vec<ChangeOut> = hf.changes(&tenant, since.0, limit)?.into_iter().map(change_out).collect();
        let next_since = changes.last().map_or(since, |c| c.revision);
        Ok(axum::Json(ChangeList { changes, next_since, revision }))
    })
    .await
}
