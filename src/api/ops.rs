//! Operations: `GET /healthz` and `GET /metrics`. Neither needs a key: they
//! carry no tenant data (route templates, counts, the revision), and the
//! server listens on 127.0.0.1 unless told otherwise.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::wire::Revision;
use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics))
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    Json(json!({"status": "ok", "revision": Revision(state.holdfast().revision())}))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics().render(state.holdfast().revision());
    let replication = super::replication::metrics_text(&state.holdfast().replication_status());
    if !replication.is_empty() {
        // Before the OpenMetrics `# EOF` line, if the text ends with one.
        match text.strip_suffix("# EOF\n").map(str::to_string) {
            Some(head) => text = format!("{head}{replication}# EOF\n"),
            None => text.push_str(&replication),
        }
    }
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text)
}
