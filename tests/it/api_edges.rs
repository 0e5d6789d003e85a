//! Edges a real client meets (issue 12): a 413 that arrives before the
//! connection closes, and protected-resource metadata naming the
//! authorization server that really issues tokens.

use std::io::{Read, Write};

use serde_json::json;

use crate::api_support::{acme_state, call, Server, ADMIN};

/// A client that writes its whole (too large) body before reading, like
/// Python's `http.client`, still reads the 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_reaches_a_client_that_sends_the_whole_body_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await; // 64 KiB limit
    let addr = server.addr;
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = vec![b' '; 8 << 20];
        let head = format!(
            "POST /v1/tenants/acme/tuples HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {ADMIN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).expect("the server reads the body before answering");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&out).contains("}}") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let status: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, text)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"body_too_large\""), "{body}");
    server.shutdown().await.unwrap();
}

/// RFC 9728 metadata names this server's issuer, or the application's own
/// `authorization_servers` when it has them.
#[tokio::test]
async fn protected_resource_metadata_names_the_real_authorization_server() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let path = "/v1/tenants/acme/applications/github-mcp/.well-known/oauth-protected-resource";
    let (s, _, b) = call(&state, "GET", path, None, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authorization_servers"], json!([format!("{}/t/acme", state.config().issuer)]));

    let app =
        json!({"scopes_supported": ["pr:read", "pr:write"], "authorization_servers": ["https://login.example.com"]});
    let (s, _, b) = call(&state, "PUT", "/v1/tenants/acme/applications/github-mcp", Some(ADMIN), Some(app)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["authorization_servers"], json!(["https://login.example.com"]));
    let (_, _, b) = call(&state, "GET", path, None, None).await;
    assert_eq!(b["authorization_servers"], json!(["https://login.example.com"]));

    for bad in [json!([]), json!(["not a url"]), json!(["ftp://x.example"]), json!(["https://x.example/?q=1"])] {
        let app = json!({"scopes_supported": ["pr:read"], "authorization_servers": bad});
        let (s, _, b) = call(&state, "PUT", "/v1/tenants/acme/applications/github-mcp", Some(ADMIN), Some(app)).await;
        assert_eq!((s, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{bad}: {b}");
    }
}

/// `holdfast serve` without `--issuer` names the URL it really listens on
/// (not a fixed port).
#[test]
fn serve_defaults_the_issuer_to_its_listen_url() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .env("HOLDFAST_API_KEY", "issuer-test-key")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut addr = None;
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("holdfast listening on http://") {
            addr = rest.split_whitespace().next().map(str::to_string);
            break;
        }
    }
    let addr = addr.expect("a listening line");
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /v1/tenants/acme/applications/deploy-mcp/.well-known/oauth-protected-resource HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let body: serde_json::Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["authorization_servers"], json!([format!("http://{addr}/t/acme")]), "{text}");
}

/// The change feed is a service query: a memory-only instance answers it
/// too (it used to answer 500), tokens included, tenant by tenant.
#[tokio::test]
async fn the_change_feed_works_without_a_store() {
    use holdfast::api::{ApiConfig, AppState};
    let hf = holdfast::service::Holdfast::in_memory();
    let p = holdfast::policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml")))
        .unwrap();
    hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    let config = ApiConfig { clock: crate::api_support::fixed_now, ..ApiConfig::default() };
    let state = AppState::with_config(std::sync::Arc::new(hf), crate::api_support::keys(), config);
    let (s, _, b) = call(
        &state,
        "POST",
        "/v1/tenants/acme/tuples",
        Some(ADMIN),
        Some(json!({"writes": ["group:sre#member@user:zed"]})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = call(
        &state,
        "POST",
        "/v1/tenants/acme/tokens",
        Some(ADMIN),
        Some(json!({"subject": "user:bob", "application": "github-mcp", "client_id": "cursor"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, feed) = call(&state, "GET", "/v1/tenants/acme/changes?since=1", Some(ADMIN), None).await;
    assert_eq!(s, 200, "{feed}");
    let ops: Vec<&str> = feed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ops"].as_array().unwrap())
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["write", "token_issued"], "{feed}");
    assert_eq!(feed["changes"][0]["actor"], "admin", "{feed}");
    let (s, _, other) = call(&state, "GET", "/v1/tenants/other/changes", Some(ADMIN), None).await;
    assert_eq!((s, other["error"]["code"].as_str()), (404, Some("unknown_tenant")), "{other}");
}
