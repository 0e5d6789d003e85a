//! What schemathesis (scripts/schemathesis.sh) found the server answering
//! against the contract of `schema/openapi.yaml`, fixed: request bodies and
//! nested objects are objects (serde would read an array as a struct),
//! integral floats are integers, SCIM attributes have their schema's types
//! and null is unassigned, `force` is a boolean, and an oversized OAuth
//! body answers in the OAuth error shape.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use super::api_support::{acme_state, call, raw, ADMIN};
use super::scim_support::{scim, scim_state};

#[tokio::test]
async fn request_bodies_and_nested_objects_are_objects() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (status, _, b) = call(&state, "PUT", "/v1/tenants/acme/users/zed", Some(ADMIN), Some(json!([]))).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("expected a JSON object, found an array"), "{b}");
    let check = |context: serde_json::Value| json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:read", "context": context});
    for context in [json!([]), json!(5), json!("x")] {
        let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(check(context))).await;
        assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    }
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(check(json!(null)))).await;
    assert_eq!(status, 200, "{b}");
    let binding = json!({"subject": "user:bob", "role": "auditor", "conditions": []});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/bindings", Some(ADMIN), Some(binding)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_conditions")), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().starts_with("`conditions`: must be an object"), "{b}");
    // Not an array, not JSON: still `bad_json`.
    let req = Request::builder()
        .method("PUT")
        .uri("/v1/tenants/acme/users/zed")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from("[1,"))
        .unwrap();
    let (status, _, b) = raw(&state, req).await;
    assert_eq!((status, b["error"]["code"].as_str()), (400, Some("bad_json")), "{b}");
}

#[tokio::test]
async fn integral_floats_are_integers() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let body = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:read",
                      "at_least": 1.0, "context": {"now": 1780272000.0, "mfa": {"present": true, "auth_time": 1780271000.0}}});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(body)).await;
    assert_eq!(status, 200, "{b}");
    let body = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:read",
                      "context": {"now": 1.5}});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(body)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
    let body = json!({"checks": [], "at_least": 0.5});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/check/batch", Some(ADMIN), Some(body)).await;
    assert_eq!(status, 422, "{b}");
}

#[tokio::test]
async fn scim_attributes_have_their_types_and_null_is_unassigned() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    for (attr, value) in [
        ("title", json!(5)),
        ("name", json!("Zed")),
        ("emails", json!({"value": "z@acme.example"})),
        ("emails", json!([{"value": 7}])),
        ("active", json!("maybe")),
        ("externalId", json!(1)),
    ] {
        let mut user = json!({"userName": "zed"});
        user[attr] = value.clone();
        let (status, b) = scim(&state, &token, "POST", "Users", Some(user)).await;
        assert_eq!((status, b["scimType"].as_str()), (400, Some("invalidValue")), "{attr}: {value}: {b}");
        assert!(b["detail"].as_str().unwrap().contains(&format!("`{attr}`")), "{b}");
    }
    let user = json!({"userName": "zed", "title": null, "name": {"givenName": "Zed", "familyName": null},
                      "emails": [null, {"value": "z@acme.example", "primary": "True"}], "active": "false"});
    let (status, b) = scim(&state, &token, "POST", "Users", Some(user)).await;
    assert_eq!(status, 201, "{b}");
    assert!(b.get("title").is_none(), "{b}");
    assert_eq!(b["name"], json!({"givenName": "Zed"}));
    assert_eq!(b["emails"], json!([{"value": "z@acme.example", "primary": true}]));
    assert_eq!(b["active"], json!(false));
    // `members` keeps its own checks (a single member object is still accepted).
    let group = json!({"displayName": "Z", "members": {"value": "alice"}, "externalId": null});
    let (status, b) = scim(&state, &token, "POST", "Groups", Some(group)).await;
    assert_eq!(status, 201, "{b}");
    assert!(b.get("externalId").is_none(), "{b}");
}

#[tokio::test]
async fn scim_force_is_a_boolean_and_patch_ops_are_named_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let (status, b) = scim(&state, &token, "DELETE", "Groups/on-call?force=yes", None).await;
    assert_eq!((status, b["scimType"].as_str()), (400, Some("invalidValue")), "{b}");
    let (status, b) = scim(&state, &token, "DELETE", "Groups/engineering?force=FALSE", None).await;
    assert_eq!(status, 409, "{b}");
    let (status, b) = scim(&state, &token, "DELETE", "Groups/engineering?force=True", None).await;
    assert_eq!(status, 204, "{b}");
    let patch = json!({"Operations": [{"op": "merge", "path": "title", "value": "x"}]});
    let (status, b) = scim(&state, &token, "PATCH", "Users/alice", Some(patch)).await;
    assert_eq!(status, 400, "{b}");
    assert_eq!(b["detail"], "operation 0: `op` is `merge`, not add, replace or remove");
    let patch = json!({"Operations": [{"path": "title", "value": "x"}]});
    let (_, b) = scim(&state, &token, "PATCH", "Users/alice", Some(patch)).await;
    assert_eq!(b["detail"], "operation 0: `op` is missing, not add, replace or remove");
}

#[tokio::test]
async fn an_oversized_oauth_body_answers_an_oauth_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (status, _, c) =
        call(&state, "POST", "/v1/tenants/acme/applications/deploy-mcp/credentials", Some(ADMIN), None).await;
    assert_eq!(status, 201, "{c}");
    let basic = {
        use std::io::Write;
        let mut raw = Vec::new();
        write!(raw, "{}:{}", c["client_id"].as_str().unwrap(), c["client_secret"].as_str().unwrap()).unwrap();
        base64(&raw)
    };
    let big = format!("token={}", "a".repeat(128 * 1024));
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let req = Request::builder()
            .method("POST")
            .uri(path)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(big.clone()))
            .unwrap();
        let (status, headers, b) = raw(&state, req).await;
        assert_eq!((status, b["error"].as_str()), (413, Some("invalid_request")), "{path}: {b}");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
