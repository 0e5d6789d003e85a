//! The real server on 127.0.0.1:0, driven over HTTP/1.1 keep-alive.

use serde_json::json;

use super::api_support::{acme_state, Client, Server, ADMIN, OTHER, READER, WRITER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_then_a_check_at_least_its_revision_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let check = |at_least: Option<&str>| {
        let mut body = json!({"subject": "user:bob", "application": "deploy-mcp", "scope": "deploy:prod"});
        if let Some(r) = at_least {
            body["at_least"] = json!(r);
        }
        body
    };
    let before = c.json("POST", "/v1/tenants/acme/check", READER, &check(None)).await;
    assert_eq!(before.status, 200);
    assert_eq!(before.json()["decision"], "deny");

    let w =
        c.json("POST", "/v1/tenants/acme/tuples", WRITER, &json!({"writes": ["group:on-call#member@user:bob"]})).await;
    assert_eq!(w.status, 200, "{}", w.text());
    let rev = w.json()["revision"].as_str().unwrap().to_string();
    assert!(rev.parse::<u64>().unwrap() > 1);

    let after = c.json("POST", "/v1/tenants/acme/check", READER, &check(Some(&rev))).await;
    assert_eq!(after.status, 200);
    let body = after.json();
    assert_eq!(body["decision"], "step_up", "bob now reaches deploy-operator through on-call: {body}");
    assert_eq!(body["revision"], json!(rev));
    assert!(after.header("www-authenticate").unwrap().contains("insufficient_user_authentication"));
    // A number works as well as a string; a revision not reached yet is refused.
    let n: u64 = rev.parse().unwrap();
    let mut ahead = check(None);
    ahead["at_least"] = json!(n + 1000);
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &ahead).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "revision_not_visible");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_decide_401_and_403() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.send("GET", "/v1/tenants/acme/roles", &[], b"").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["error"]["code"], "unauthenticated");
    assert_eq!(c.get("/v1/tenants/acme/roles", "wrong").await.status, 401);
    assert_eq!(c.get("/v1/tenants/acme/roles", READER).await.status, 200);
    let w = c.json("PUT", "/v1/tenants/acme/users/dave", READER, &json!({"name": "Dave"})).await;
    assert_eq!(w.status, 403);
    assert!(w.json()["error"]["message"].as_str().unwrap().contains("read-only"));
    let r = c.get("/v1/tenants/acme/roles", OTHER).await;
    assert_eq!(r.status, 403, "a key of another tenant");
    assert_eq!(c.get("/v1/tenants/other/roles", WRITER).await.status, 403);
    // The /uflow tenant comes from the header, and the same rule applies.
    let r = c
        .send(
            "GET",
            "/uflow/v2/users/alice/effective-access",
            &[("authorization", "Bearer other-tenant-key"), ("x-holdfast-tenant", "acme")],
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(c.json("PUT", "/v1/tenants/acme/users/dave", WRITER, &json!({})).await.status, 200);
    // Health and metrics need no key.
    assert_eq!(c.send("GET", "/healthz", &[], b"").await.status, 200);
    let m = c.send("GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(
        text.contains("holdfast_http_requests_total{route=\"/v1/tenants/{tenant}/roles\",status=\"401\"} 2"),
        "{text}"
    );
    assert!(text.contains("holdfast_revision "), "{text}");
    assert!(!text.contains(READER) && !text.contains(WRITER), "keys never appear");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_limited_typed_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let auth = format!("Bearer {ADMIN}");
    let big = vec![b' '; 100 * 1024];
    let r = c
        .send(
            "POST",
            "/v1/tenants/acme/tuples",
            &[("authorization", &auth), ("content-type", "application/json")],
            &big,
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "body_too_large");
    let mut c = Client::connect(server.addr).await;
    let r = c
        .send("POST", "/v1/tenants/acme/check", &[("authorization", &auth), ("content-type", "text/plain")], b"{}")
        .await;
    assert_eq!(r.status, 415);
    let r = c
        .send(
            "POST",
            "/v1/tenants/acme/check",
            &[("authorization", &auth), ("content-type", "application/json")],
            b"{\"subject\":",
        )
        .await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("bad_json")));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_the_data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let body = json!({"role": "auditor", "expires_in": "4h", "conditions": {"ip": {"allow": ["10.0.0.0/8"]}}});
    let auth = format!("Bearer {ADMIN}");
    let (path, text) = ("/uflow/v2/groups/sre/role-bindings", body.to_string());
    let r =
        c.send("POST", path, &[("authorization", &auth), ("content-type", "application/json")], text.as_bytes()).await;
    assert_eq!(r.status, 422, "no tenant header: the `default` tenant, where `auditor` is not defined");
    assert!(r.text().contains("role `auditor` is not defined"), "{}", r.text());
    let headers =
        [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-holdfast-tenant", "acme")];
    let r = c.send("POST", path, &headers, text.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["binding"], "tenant#auditor@group:sre");
    assert_eq!(r.json()["conditions"]["expires_at"], "2026-06-01T04:00:00Z", "expires_in is made absolute");
    drop(c);
    server.shutdown().await.unwrap();

    // Reopen the same directory: the binding and its conditions are there.
    let hf = holdfast::service::Holdfast::open(dir.path(), holdfast::store::Durability::Sync).unwrap();
    assert!(hf.tenant("default").is_none(), "the rejected write created nothing");
    let t = hf.tenant("acme").unwrap();
    let st = t.read();
    let filter = holdfast::service::BindingFilter {
        subject: Some(holdfast::model::ObjectRef::parse("group:sre").unwrap()),
        ..Default::default()
    };
    let b = st.bindings_matching(&filter);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].0.to_string(), "tenant#auditor@group:sre");
    assert!(b[0].1.as_ref().unwrap().ip.is_some(), "conditions are stored, not dropped");
}
