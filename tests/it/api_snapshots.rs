//! `router(state)` driven with `oneshot`; `{status, body}` snapshotted with
//! revisions and times redacted. The clock is fixed at 2026-06-01T00:00:00Z.

use serde_json::{json, Value};

use super::api_support::{acme_state, call, ADMIN, OTHER, READER, WRITER};

/// One request, snapshotted as `{status, body}` (plus a challenge header).
async fn snap(
    name: &str,
    state: &holdfast::api::AppState,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Value {
    let (status, headers, body) = call(state, method, path, key, body).await;
    let mut v = json!({"status": status, "body": body});
    if let Some(h) = headers.get("www-authenticate") {
        v["www_authenticate"] = json!(h.to_str().unwrap());
    }
    insta::assert_json_snapshot!(name, v, {
        ".**.revision" => "[revision]",
        ".**.next_since" => "[revision]",
        ".body.changes[].at" => "[time]",
    });
    v
}

#[tokio::test]
async fn worked_example_effective_access_through_v1_and_uflow() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let v1 = snap(
        "v1_alice_effective_access",
        &state,
        "GET",
        "/v1/tenants/acme/subjects/user:alice/effective-access",
        Some(READER),
        None,
    )
    .await;
    let origins: Vec<&str> =
        v1["body"]["entries"].as_array().unwrap().iter().map(|e| e["origin"].as_str().unwrap()).collect();
    assert_eq!(origins, ["group", "group", "direct"]);
    // The seed API: tenant from the header.
    let req = axum::http::Request::get("/uflow/v2/users/alice/effective-access")
        .header("authorization", format!("Bearer {READER}"))
        .header("x-holdfast-tenant", "acme")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, uflow) = super::api_support::raw(&state, req).await;
    assert_eq!(status, 200);
    assert_eq!(uflow, v1["body"], "both paths answer the same");
    snap(
        "v1_ci_bot_effective_access",
        &state,
        "GET",
        "/v1/tenants/acme/subjects/service_account:ci-bot/effective-access",
        Some(READER),
        None,
    )
    .await;
    // After the auditor binding's expiry it is gone, unless asked for.
    let later = "/v1/tenants/acme/subjects/user:alice/effective-access?now=2027-01-01T00:00:00Z";
    let (_, _, b) = call(&state, "GET", later, Some(READER), None).await;
    assert_eq!(b["entries"].as_array().unwrap().len(), 2);
    let (_, _, b) = call(&state, "GET", &format!("{later}&include=expired"), Some(READER), None).await;
    assert_eq!(b["entries"][2]["status"], "expired");
}

#[tokio::test]
async fn checks_step_up_explain_and_batch() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let check = |extra: Value| {
        let mut b = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:prod"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Some(b)
    };
    let v = snap("check_alice_step_up", &state, "POST", "/v1/tenants/acme/check", Some(READER), check(json!({}))).await;
    assert_eq!(v["www_authenticate"], "Bearer error=\"insufficient_user_authentication\", error_description=\"multi-factor authentication is required for scope deploy:prod\", acr_values=\"mfa\", max_age=900");
    let mfa = json!({"context": {"mfa": {"present": true, "auth_time": "2026-05-31T23:55:00Z"}}});
    snap("check_alice_allow_after_mfa", &state, "POST", "/v1/tenants/acme/check", Some(READER), check(mfa)).await;
    let explain = json!({"subject": "user:carol", "explain": true, "context": {"now": "2026-06-01T00:10:00Z", "mfa": {"present": true, "auth_time": "2026-06-01T00:05:00Z"}}});
    snap("check_carol_explained", &state, "POST", "/v1/tenants/acme/check", Some(READER), check(explain)).await;
    let batch = json!({"checks": [
        {"subject": "user:bob", "application": "github-mcp", "scope": "pr:write"},
        {"subject": "user:bob", "application": "deploy-mcp", "scope": "deploy:prod"},
        {"subject": "service_account:ci-bot", "application": "deploy-mcp", "scope": "deploy:staging", "context": {"ip": "10.20.30.40"}},
        {"subject": "service_account:ci-bot", "application": "deploy-mcp", "scope": "deploy:staging"},
        {"subject": "nobody", "application": "deploy-mcp", "scope": "deploy:staging"},
        {"subject": "user:mallory", "application": "github-mcp", "scope": "pr:write"}
    ]});
    snap("check_batch_in_request_order", &state, "POST", "/v1/tenants/acme/check/batch", Some(READER), Some(batch))
        .await;
}

/// Attribute conditions over the API: a binding that lets bob delete only
/// softly and only for the `sre` team; `/check` (with explain naming the
/// failed attribute), `/check/batch`, token scope, and a token minted with
/// attributes introspecting with them.
#[tokio::test]
async fn attribute_conditions_on_check_batch_and_token_scope() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (status, _, b) = call(
        &state,
        "PUT",
        "/v1/tenants/acme/roles/deploy-reader",
        Some(ADMIN),
        Some(json!({"scopes": ["deploy:read"]})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let binding = json!({"subject": "user:bob", "role": "deploy-reader", "application": "deploy-mcp",
        "conditions": {"attributes": [
            {"attribute": "action.soft", "op": "eq", "value": true},
            {"attribute": "subject.team", "op": "in", "value": ["sre", "platform"]}]}});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/bindings", Some(ADMIN), Some(binding)).await;
    assert_eq!(status, 201, "{b}");
    let check = |attributes: Value| {
        Some(json!({"subject": "user:bob", "application": "deploy-mcp", "scope": "deploy:read",
            "attributes": attributes, "explain": true}))
    };
    let path = "/v1/tenants/acme/check";
    let ok = json!({"action": {"soft": true}, "subject": {"team": "sre"}});
    let v = snap("check_attributes_satisfied", &state, "POST", path, Some(READER), check(ok.clone())).await;
    assert_eq!(v["body"]["decision"], "allow");
    let v = snap(
        "check_attribute_wrong_value",
        &state,
        "POST",
        path,
        Some(READER),
        check(json!({"action": {"soft": true}, "subject": {"team": "ops"}})),
    )
    .await;
    assert_eq!(v["body"]["reason"], "condition_unmet:attribute");
    let (_, _, b) = call(&state, "POST", path, Some(READER), check(json!({"subject": {"team": "sre"}}))).await;
    let failed = b["trace"].as_array().unwrap().iter().find_map(|t| t.get("failed_attribute")).unwrap();
    assert_eq!(failed, &json!({"attribute": "action.soft", "op": "eq", "value": true}), "missing: no `actual`");
    // Malformed attributes are 422, not a silent deny.
    for bad in [json!({"subjects": {}}), json!({"subject": "sre"}), json!([1])] {
        let (status, _, b) = call(&state, "POST", path, Some(READER), check(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {b}");
    }
    // The batch: per item.
    let (status, _, b) = call(
        &state,
        "POST",
        "/v1/tenants/acme/check/batch",
        Some(READER),
        Some(json!({"checks": [
            {"subject": "user:bob", "application": "deploy-mcp", "scope": "deploy:read", "attributes": ok},
            {"subject": "user:bob", "application": "deploy-mcp", "scope": "deploy:read"}]})),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    let reasons: Vec<&str> = b["results"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["granted", "condition_unmet:attribute"]);
    // Token scope and minting.
    let ts = |attributes: Value| {
        Some(json!({"subject": "user:bob", "application": "deploy-mcp", "requested_scope": "deploy:read",
            "attributes": attributes}))
    };
    let (_, _, b) = call(&state, "POST", "/v1/tenants/acme/token-scope", Some(READER), ts(ok.clone())).await;
    assert_eq!(b["granted"], json!(["deploy:read"]), "{b}");
    let (_, _, b) = call(&state, "POST", "/v1/tenants/acme/token-scope", Some(READER), ts(json!({}))).await;
    assert_eq!(b["blocked"], json!([{"scope": "deploy:read", "reason": "condition_unmet:attribute"}]), "{b}");
    let mut mint = ts(ok).unwrap();
    mint["client_id"] = json!("claude");
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/tokens", Some(ADMIN), Some(mint.clone())).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["scope"], "deploy:read");
    mint["attributes"] = json!({"action": {"soft": false}, "subject": {"team": "sre"}});
    let (status, _, b) = call(&state, "POST", "/v1/tenants/acme/tokens", Some(ADMIN), Some(mint)).await;
    assert_eq!((status, b["error"]["code"].as_str()), (403, Some("invalid_scope")), "{b}");
}

#[tokio::test]
async fn error_cases() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let s = &state;
    let ok_check = || Some(json!({"subject": "user:bob", "application": "github-mcp", "scope": "pr:write"}));
    snap("err_401_missing_key", s, "POST", "/v1/tenants/acme/check", None, ok_check()).await;
    snap("err_401_wrong_key", s, "POST", "/v1/tenants/acme/check", Some("nope"), ok_check()).await;
    snap("err_403_read_only", s, "PUT", "/v1/tenants/acme/groups/sre/members/user:dave", Some(READER), None).await;
    snap("err_403_other_tenant", s, "POST", "/v1/tenants/acme/check", Some(OTHER), ok_check()).await;
    snap("err_404_unknown_tenant", s, "POST", "/v1/tenants/nope/check", Some(ADMIN), ok_check()).await;
    snap("err_404_unknown_role", s, "GET", "/v1/tenants/acme/roles/ghost", Some(ADMIN), None).await;
    snap("err_404_unknown_route", s, "GET", "/v1/tenants/acme/nothing-here", Some(ADMIN), None).await;
    snap("err_405", s, "PATCH", "/v1/tenants/acme/check", Some(ADMIN), None).await;
    snap(
        "err_422_unknown_field",
        s,
        "POST",
        "/v1/tenants/acme/check",
        Some(ADMIN),
        Some(json!({"subject": "user:bob", "application": "a", "scope": "x", "explian": true})),
    )
    .await;
    snap(
        "err_422_wrong_type",
        s,
        "POST",
        "/v1/tenants/acme/check",
        Some(ADMIN),
        Some(json!({"subject": 7, "application": "a", "scope": "x"})),
    )
    .await;
    snap(
        "err_422_bad_subject",
        s,
        "POST",
        "/v1/tenants/acme/check",
        Some(ADMIN),
        Some(json!({"subject": "role:x", "application": "a", "scope": "x"})),
    )
    .await;
    snap(
        "err_422_bad_tuple_text",
        s,
        "POST",
        "/v1/tenants/acme/tuples",
        Some(WRITER),
        Some(json!({"writes": ["group:eng#member"]})),
    )
    .await;
    snap(
        "err_422_schema",
        s,
        "POST",
        "/v1/tenants/acme/tuples",
        Some(WRITER),
        Some(json!({"writes": [{"object": "group:eng", "relation": "owner", "subject": "user:a"}]})),
    )
    .await;
    snap(
        "err_422_binding_unknown_role",
        s,
        "POST",
        "/v1/tenants/acme/bindings",
        Some(WRITER),
        Some(json!({"subject": "user:bob", "role": "deploy-operater", "application": "deploy-mcp"})),
    )
    .await;
    snap(
        "err_422_binding_unknown_application",
        s,
        "POST",
        "/v1/tenants/acme/bindings",
        Some(WRITER),
        Some(json!({"subject": "user:bob", "role": "pr-writer", "application": "gitlab-mcp"})),
    )
    .await;
    let pre = json!({"writes": ["group:sre#member@user:dave"], "preconditions": [{"tuple": "group:sre#member@user:bob", "exists": true}]});
    snap("err_409_precondition", s, "POST", "/v1/tenants/acme/tuples", Some(WRITER), Some(pre)).await;
    snap("err_409_role_in_use", s, "DELETE", "/v1/tenants/acme/roles/deploy-operator", Some(WRITER), None).await;
    snap(
        "err_409_revision_not_visible",
        s,
        "POST",
        "/v1/tenants/acme/check",
        Some(READER),
        Some(json!({"subject": "user:bob", "application": "github-mcp", "scope": "pr:write", "at_least": "999999"})),
    )
    .await;
    let big = json!({"writes": vec!["group:eng#member@user:someone-with-a-long-name"; 2000]});
    snap("err_413_body_too_large", s, "POST", "/v1/tenants/acme/tuples", Some(WRITER), Some(big)).await;
    let many = json!({"checks": vec![json!({"subject": "user:bob", "application": "a", "scope": "x"}); 10_001]});
    let (status, _, body) = call(s, "POST", "/v1/tenants/acme/check/batch", Some(READER), Some(many)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "the body limit (64 KiB in tests) comes first"
    );
    let req = axum::http::Request::post("/v1/tenants/acme/check")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("{}"))
        .unwrap();
    let (status, _, body) = super::api_support::raw(s, req).await;
    insta::assert_json_snapshot!("err_415", json!({"status": status, "body": body}));
    let req = axum::http::Request::post("/v1/tenants/acme/check")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"subject\": "))
        .unwrap();
    let (status, _, body) = super::api_support::raw(s, req).await;
    insta::assert_json_snapshot!("err_400_bad_json", json!({"status": status, "body": body}));
}

#[tokio::test]
async fn resources_and_the_change_feed() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let s = &state;
    snap("roles_list", s, "GET", "/v1/tenants/acme/roles", Some(READER), None).await;
    snap("application_get", s, "GET", "/v1/tenants/acme/applications/deploy-mcp", Some(READER), None).await;
    snap(
        "role_put",
        s,
        "PUT",
        "/v1/tenants/acme/roles/release-manager",
        Some(WRITER),
        Some(json!({"name": "Release Manager", "scopes": ["deploy:read", "deploy:prod"]})),
    )
    .await;
    snap("binding_post_expires_in", s, "POST", "/v1/tenants/acme/bindings", Some(WRITER), Some(json!({"subject": "user:bob", "role": "release-manager", "application": "deploy-mcp", "expires_in": "4h", "conditions": {"mfa": {"required": true}}}))).await;
    snap("bindings_of_bob", s, "GET", "/v1/tenants/acme/bindings?subject=user:bob", Some(READER), None).await;
    snap(
        "who_can_deploy_prod",
        s,
        "GET",
        "/v1/tenants/acme/applications/deploy-mcp/access?scope=deploy:prod&page_size=2",
        Some(READER),
        None,
    )
    .await;
    snap("group_on_call", s, "GET", "/v1/tenants/acme/groups/on-call", Some(READER), None).await;
    snap("user_alice", s, "GET", "/v1/tenants/acme/users/alice", Some(READER), None).await;
    snap("user_bob_delete", s, "DELETE", "/v1/tenants/acme/users/bob", Some(WRITER), None).await;
    let (status, _, _) = call(s, "GET", "/v1/tenants/acme/users/bob", Some(READER), None).await;
    assert_eq!(status, 404, "bob, his memberships and bindings are gone");
    let (_, _, b) = call(s, "GET", "/v1/tenants/acme/bindings?subject=user:bob", Some(READER), None).await;
    assert_eq!(b["bindings"], json!([]));
    snap(
        "binding_delete_by_query",
        s,
        "DELETE",
        "/v1/tenants/acme/bindings?subject=service_account:ci-bot&role=ci-deployer&application=deploy-mcp",
        Some(WRITER),
        None,
    )
    .await;
    snap(
        "binding_delete_missing",
        s,
        "DELETE",
        "/v1/tenants/acme/bindings?binding=tenant%23auditor%40user:bob",
        Some(WRITER),
        None,
    )
    .await;
    // Every write after the demo load, readable, with the credential's name.
    snap("changes_since_1", s, "GET", "/v1/tenants/acme/changes?since=1", Some(READER), None).await;
}

#[tokio::test]
async fn tuples_paginate_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let mut seen = Vec::new();
    let mut path = "/v1/tenants/acme/tuples?relation=member&page_size=2".to_string();
    loop {
        let (status, _, b) = call(&state, "GET", &path, Some(READER), None).await;
        assert_eq!(status, 200, "{b}");
        seen.extend(b["tuples"].as_array().unwrap().iter().map(|t| t["tuple"].as_str().unwrap().to_string()));
        match b["next_page_token"].as_str() {
            Some(t) => path = format!("/v1/tenants/acme/tuples?relation=member&page_size=2&page_token={t}"),
            None => break,
        }
    }
    insta::assert_json_snapshot!("tuples_member_all_pages", seen);
    let (_, _, b) = call(&state, "GET", "/v1/tenants/acme/tuples?object=group:sre", Some(READER), None).await;
    assert_eq!(b["tuples"][0]["tuple"], "group:sre#member@user:carol");
    let (status, _, b) = call(&state, "GET", "/v1/tenants/acme/tuples?page_token=zz", Some(READER), None).await;
    assert_eq!((status, b["error"]["code"].as_str()), (400, Some("invalid_parameter")));
}
