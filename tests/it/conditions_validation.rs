//! One condition validator (`Conditions::from_json` / `validate` in the
//! model) answers the same error on every way in: bindings, tuples, the
//! seed API, the service itself and policy files (issue 12).

use serde_json::json;

use crate::api_support::{acme_state, call, ADMIN};
use holdfast::model::{Conditions, ObjectRef, ObjectType, Tuple};
use holdfast::service::{Change, Holdfast, WriteError};

async fn refused(state: &holdfast::api::AppState, path: &str, body: serde_json::Value, field: &str) {
    let (status, _, b) = call(state, "POST", path, Some(ADMIN), Some(body.clone())).await;
    assert_eq!(status, 422, "{path} {body}: {b}");
    assert_eq!(b["error"]["code"], "invalid_conditions", "{path} {body}: {b}");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("`conditions.{field}`")), "{path}: {msg}");
}

#[tokio::test]
async fn every_api_door_refuses_conditions_that_can_never_hold() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let bad = [
        (json!({"ip": {"allow": []}}), "ip.allow"),
        (json!({"not_before": "2026-02-01T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}), "not_before"),
        (json!({"mfa": {"requird": true}}), "mfa.requird"),
        (json!({"mfaa": {}}), "mfaa"),
        (json!({"ip": {"allow": ["not-an-ip"]}}), "ip"),
        (json!({"attributes": []}), "attributes"),
        (json!({"attributes": [{"attribute": "user.team", "op": "eq", "value": "sre"}]}), "attributes[0].attribute"),
        (json!({"attributes": [{"attribute": "subject.team", "op": "like", "value": "s%"}]}), "attributes[0].op"),
        (
            json!({"attributes": [{"attribute": "subject.team", "op": "in", "value": ["a", null]}]}),
            "attributes[0].value[1]",
        ),
    ];
    for (c, field) in &bad {
        refused(
            &state,
            "/v1/tenants/acme/bindings",
            json!({"subject": "user:zed", "role": "deploy-operator", "application": "deploy-mcp", "conditions": c}),
            field,
        )
        .await;
        refused(
            &state,
            "/v1/tenants/acme/tuples",
            json!({"writes": [{"object": "application:deploy-mcp", "relation": "deploy-operator",
                               "subject": "user:zed", "conditions": c}]}),
            field,
        )
        .await;
        let uflow = json!({"role": "deploy-operator", "application": "deploy-mcp", "conditions": c});
        let (status, _, b) = {
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/uflow/v2/groups/sre/role-bindings")
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("x-holdfast-tenant", "acme")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(uflow.to_string()))
                .unwrap();
            crate::api_support::raw(&state, req).await
        };
        assert_eq!((status, b["error"]["code"].as_str()), (422, Some("invalid_conditions")), "{b}");
    }
    // The window given beside the conditions is checked by the same rule.
    refused(
        &state,
        "/v1/tenants/acme/bindings",
        json!({"subject": "user:zed", "role": "deploy-operator", "application": "deploy-mcp",
               "not_before": "2026-02-01T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}),
        "not_before",
    )
    .await;
    // Nothing was written.
    let (_, _, b) = call(&state, "GET", "/v1/tenants/acme/bindings?subject=user:zed", Some(ADMIN), None).await;
    assert_eq!(b["bindings"], json!([]), "{b}");
}

#[test]
fn the_service_refuses_them_too() {
    let hf = Holdfast::in_memory();
    hf.write(
        "t",
        vec![
            Change::PutObject(ObjectRef::new(ObjectType::Role, "r"), json!({})),
            Change::PutObject(ObjectRef::new(ObjectType::Application, "a"), json!({})),
        ],
        &[],
        "test",
        0,
    )
    .unwrap();
    let c = Conditions { ip: Some(holdfast::model::conditions::IpCondition { allow: vec![] }), ..Default::default() };
    let t = Tuple::parse("application:a#r@user:u").unwrap();
    let err = hf.write("t", vec![Change::PutTuple(t.clone(), Some(c))], &[], "test", 0).unwrap_err();
    assert!(matches!(&err, WriteError::InvalidConditions { error, .. } if error.field == "ip.allow"), "{err}");
    assert!(!hf.tenant("t").unwrap().read().tuple_exists(&t));
}

#[test]
fn policy_files_say_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(
        &path,
        "tenant: t\nroles:\n  r: {scopes: [x]}\napplications:\n  a: {scopes_supported: [x]}\nbindings:\n  - subject: user:a\n    role: r\n    application: a\n    conditions: {ip: {allow: []}}\n  - subject: user:b\n    role: r\n    application: a\n    not_before: 2026-02-01T00:00:00Z\n    expires_at: 2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    let err = holdfast::policy::load(&path).unwrap_err().to_string();
    assert!(err.contains(holdfast::model::conditions::EMPTY_ALLOW), "{err}");
    assert!(err.contains("bindings[1].not_before`: `not_before` (2026-02-01T00:00:00Z) is not before"), "{err}");
}
