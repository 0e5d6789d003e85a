//! Replicas over a shared datastore: `GET /readyz` (for a load balancer)
//! and the replication lines of `GET /metrics`. Like `/healthz`, no key:
//! they carry no tenant data.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::wire::Revision;
use super::AppState;
use crate::service::ReplicationStatus;

pub fn routes() -> Router<AppState> {
    Router::new().route("/readyz", get(readyz))
}

/// 200 once the tenants are loaded and the replica is caught up with the
/// datastore's head (always, on the embedded store); 503 while it is behind.
/// While the datastore is unreachable a caught-up replica stays ready:
/// it answers reads from memory, with the revision they reflect.
async fn readyz(State(state): State<AppState>) -> Response {
    let s = state.holdfast().replication_status();
    let body = json!({
        "status": if s.ready { "ready" } else { "catching_up" },
        "revision": Revision(s.applied),
        "datastore_revision": Revision(s.head),
        "datastore": if s.datastore_down { "unreachable" } else { "ok" },
    });
    let status = if s.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus text for the replication gauges (shared datastores only).
pub fn metrics_text(s: &ReplicationStatus) -> String {
    let mut out = String::new();
    if !s.shared {
        return out;
    }
    let lines: [(&str, &str, &str, String); 4] = [
        (
            "holdfast_replication_lag_revisions",
            "gauge",
            "Revisions committed to the datastore that this replica has not applied yet.",
            s.head.saturating_sub(s.applied).to_string(),
        ),
        (
            "holdfast_replication_lag_seconds",
            "gauge",
            "How long this replica has been behind the datastore's head.",
            format!("{:.3}", s.lag_seconds),
        ),
        ("holdfast_replication_ready", "gauge", "1 when caught up (see /readyz).", u8::from(s.ready).to_string()),
        (
            "holdfast_datastore_errors_total",
            "counter",
            "Datastore errors (tailing and commits) since start.",
            s.errors.to_string(),
        ),
    ];
    for (name, kind, help, value) in lines {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    out
}
