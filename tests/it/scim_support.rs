//! Shared by the SCIM tests: the worked example with a SCIM token, SCIM
//! requests (`application/scim+json`), and what check and effective access
//! answer for a subject.

use axum::body::Body;
use axum::http::Request;
use holdfast::api::AppState;
use serde_json::{json, Value};

use super::api_support::{acme_state, call, raw, ADMIN};

pub const SCIM: &str = "/scim/v2/acme";

/// The worked example and a SCIM token for `acme`: (state, token, token id).
pub async fn scim_state(dir: &std::path::Path) -> (AppState, String, String) {
    let state = acme_state(dir);
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/scim-tokens", Some(ADMIN), None).await;
    assert_eq!(status, 201, "{b}");
    (state, b["token"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string())
}

/// One SCIM request; checks the answer's media type. Returns (status, body).
pub async fn scim(state: &AppState, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let uri = if path.starts_with('/') { path.to_string() } else { format!("{SCIM}/{path}") };
    let mut req = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {token}"));
    let req = match body {
        Some(b) => req.header("content-type", "application/scim+json").body(Body::from(b.to_string())).unwrap(),
        None => {
            req = req.header("accept", "application/scim+json");
            req.body(Body::empty()).unwrap()
        }
    };
    let (status, headers, body) = raw(state, req).await;
    if status != 204 {
        assert_eq!(
            headers.get("content-type").map(|v| v.to_str().unwrap()),
            Some("application/scim+json"),
            "{method} {path}: {status} {body}"
        );
    }
    (status, body)
}

/// `%20`-encodes a filter for a query string.
pub fn q(filter: &str) -> String {
    filter.replace('%', "%25").replace(' ', "%20").replace('"', "%22").replace('[', "%5B").replace(']', "%5D")
}

/// What `POST /check` decides for `subject` on github-mcp `pr:write`
/// (granted by the `engineering` group's binding), with its reason.
pub async fn pr_write(state: &AppState, subject: &str) -> (String, String) {
    let body = json!({"subject": subject, "application": "github-mcp", "scope": "pr:write"});
    let (status, _, b) = call(state, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(body)).await;
    assert_eq!(status, 200, "{b}");
    (b["decision"].as_str().unwrap().to_string(), b["reason"].as_str().unwrap().to_string())
}

/// `binding (status)` of every effective-access entry (empty when the
/// subject is unknown).
pub async fn access(state: &AppState, subject: &str) -> Vec<String> {
    let path = format!("/v1/tenants/acme/subjects/{subject}/effective-access");
    let (status, _, b) = call(state, "GET", &path, Some(ADMIN), None).await;
    if status == 404 {
        return vec![];
    }
    assert_eq!(status, 200, "{b}");
    b["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} ({})", e["binding"].as_str().unwrap(), e["status"].as_str().unwrap_or("?")))
        .collect()
}

/// The last change-feed entry's actor and operations.
pub async fn last_change(state: &AppState) -> Value {
    let (status, _, b) = call(state, "GET", "/v1/tenants/acme/changes?since=0&limit=1000", Some(ADMIN), None).await;
    assert_eq!(status, 200, "{b}");
    b["changes"].as_array().unwrap().last().unwrap().clone()
}
