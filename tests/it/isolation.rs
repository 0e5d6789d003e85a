//! Isolation and credentials: a tenant is a hard boundary on every route;
//! read-only keys cannot write; keys, client secrets and tokens never reach
//! the logs; keys are compared in constant time; one caller cannot starve
//! the others.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use holdfast::api::{self, ApiConfig, AppState};
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::api_support::{acme_state, b64, call, fixed_now, keys, Client, Server, ADMIN, OTHER, READER, WRITER};

/// The worked example in `acme`, and a tenant `other` that reuses its ids
/// (`user:alice`, `group:engineering`, application `deploy-mcp`, role
/// `pr-writer`) with bindings of its own.
async fn two_tenants(dir: &std::path::Path) -> AppState {
    let s = acme_state(dir);
    let o = "/v1/tenants/other";
    for (m, p, b) in [
        ("PUT", format!("{o}/roles/pr-writer"), json!({"scopes": ["other:scope"]})),
        (
            "PUT",
            format!("{o}/applications/deploy-mcp"),
            json!({"scopes_supported": ["other:scope"], "resource": "https://other.example/deploy"}),
        ),
        ("PUT", format!("{o}/users/alice"), json!({"name": "Other Alice"})),
        ("PUT", format!("{o}/groups/engineering/members/user:alice"), json!({})),
        (
            "POST",
            format!("{o}/bindings"),
            json!({"subject": "group:engineering", "role": "pr-writer", "application": "deploy-mcp"}),
        ),
    ] {
        let (st, _, b) = call(&s, m, &p, Some(OTHER), Some(b)).await;
        assert!(st == 200 || st == 201, "{m} {p}: {st} {b}");
    }
    s
}

/// A concrete path for a route template, naming things of `acme`.
fn concrete(template: &str) -> String {
    template
        .replace("{tenant}", "acme")
        .replace("{role}", "pr-writer")
        .replace("{application}", "deploy-mcp")
        .replace("{group}", "engineering")
        .replace("{subject}", "user:alice")
        .replace("{user}", "alice")
        .replace("{service_account}", "ci-bot")
        .replace("{client_id}", "hfc_unknown")
        .replace("{group_id}", "engineering")
        .replace("{user_id}", "alice")
}

/// Routes outside the key-per-tenant rule: everything not under
/// `/v1/tenants/{tenant}` or `/uflow` (operations, OAuth client endpoints
/// with client credentials, stateless policy validation), and the public
/// RFC 9728 metadata, and the tenants' OAuth authorization-server
/// endpoints (`/t/{tenant}/oauth2/*`: OAuth clients, never API keys).
fn keyless(path: &str) -> bool {
    !(path.contains("{tenant}") || path.starts_with("/uflow/"))
        || path.contains("/.well-known/")
        || path.starts_with("/t/{tenant}/oauth2/")
}

async fn snapshot(s: &AppState) -> (u64, Value, Value) {
    let (_, _, tuples) = call(s, "GET", "/v1/tenants/acme/tuples?page_size=1000", Some(ADMIN), None).await;
    let (_, _, changes) = call(s, "GET", "/v1/tenants/acme/changes?limit=1000", Some(ADMIN), None).await;
    let rev = s.holdfast().tenant("acme").unwrap().read().revision();
    (rev, tuples["tuples"].clone(), changes["changes"].clone())
}

#[tokio::test]
async fn a_key_of_another_tenant_reads_and_changes_nothing_on_any_route() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_tenants(dir.path()).await;
    let before = snapshot(&s).await;
    let mut tried = 0;
    for (method, template) in api::ROUTES {
        if keyless(template) {
            continue;
        }
        let path = concrete(template);
        let body = (*method != "GET" && *method != "DELETE").then(|| json!({}));
        // The `/uflow` tenant comes from a header.
        let req = {
            let mut r = axum::http::Request::builder()
                .method(*method)
                .uri(&path)
                .header("authorization", format!("Bearer {OTHER}"))
                .header("x-holdfast-tenant", "acme");
            if body.is_some() {
                r = r.header("content-type", "application/json");
            }
            r.body(axum::body::Body::from(body.map(|b| b.to_string()).unwrap_or_default())).unwrap()
        };
        let (st, _, b) = super::api_support::raw(&s, req).await;
        // SCIM protocol routes take the identity provider's SCIM token, not API keys: 401.
        let want = if template.starts_with("/scim/") { 401 } else { 403 };
        assert_eq!(st, want, "{method} {path} with another tenant's key: {st} {b}");
        assert!(!b.to_string().contains("Alice"), "{method} {path} leaked data: {b}");
        tried += 1;
    }
    assert!(tried >= 30, "only {tried} routes tried");
    assert_eq!(snapshot(&s).await, before, "acme is unchanged");
}

#[tokio::test]
async fn answers_about_a_tenant_contain_only_that_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_tenants(dir.path()).await;
    // Effective access of the same subject id in each tenant.
    let (st, _, b) = call(&s, "GET", "/v1/tenants/other/subjects/user:alice/effective-access", Some(OTHER), None).await;
    assert_eq!(st, 200, "{b}");
    let text = b.to_string();
    assert!(text.contains("other:scope"), "{text}");
    for acme_only in ["github-mcp", "deploy:prod", "on-call", "pr:write", "audit"] {
        assert!(!text.contains(acme_only), "`{acme_only}` of acme in other's answer: {text}");
    }
    let (_, _, b) = call(&s, "GET", "/v1/tenants/acme/subjects/user:alice/effective-access", Some(ADMIN), None).await;
    assert!(!b.to_string().contains("other:scope"), "{b}");
    // Who can access: the same application id in both tenants.
    let (st, _, b) = call(&s, "GET", "/v1/tenants/other/applications/deploy-mcp/access", Some(OTHER), None).await;
    assert_eq!(st, 200, "{b}");
    assert!(!b.to_string().contains("carol") && !b.to_string().contains("on-call"), "{b}");
    // Checks: alice holds pr-writer on other's deploy-mcp there, nothing of acme's.
    let q = |scope: &str| json!({"subject": "user:alice", "application": "deploy-mcp", "scope": scope, "context": {"mfa": {"present": true}}});
    let (_, _, b) = call(&s, "POST", "/v1/tenants/other/check", Some(OTHER), Some(q("deploy:prod"))).await;
    assert_eq!(b["decision"], "deny", "{b}");
    let (_, _, b) = call(&s, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(q("other:scope"))).await;
    assert_eq!(b["decision"], "deny", "{b}");
    // The change feed lists only the tenant's own changes.
    let (st, _, b) = call(&s, "GET", "/v1/tenants/other/changes?limit=1000", Some(OTHER), None).await;
    assert_eq!(st, 200);
    let changes = b["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5, "{b}");
    assert!(changes.iter().all(|c| c["actor"] == "other-admin"), "{b}");
    assert!(!b.to_string().contains("github-mcp"), "{b}");
    // Listings.
    let (_, _, b) = call(&s, "GET", "/v1/tenants/other/tuples?page_size=1000", Some(OTHER), None).await;
    assert_eq!(b["tuples"].as_array().unwrap().len(), 4, "{b}");
    let (_, _, b) = call(&s, "GET", "/v1/tenants/other/roles", Some(OTHER), None).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1, "{b}");
    // The seed API, by header.
    let r = axum::http::Request::get("/uflow/v2/users/alice/effective-access")
        .header("authorization", format!("Bearer {OTHER}"))
        .header("x-holdfast-tenant", "other")
        .body(axum::body::Body::empty())
        .unwrap();
    let (st, _, b) = super::api_support::raw(&s, r).await;
    assert_eq!(st, 200, "{b}");
    assert!(!b.to_string().contains("github-mcp"), "{b}");
    // Deleting other's alice leaves acme's alice alone.
    let (st, _, _) = call(&s, "DELETE", "/v1/tenants/other/users/alice", Some(OTHER), None).await;
    assert_eq!(st, 200);
    let (st, _, b) = call(&s, "GET", "/v1/tenants/acme/users/alice", Some(ADMIN), None).await;
    assert_eq!((st, b["name"].as_str()), (200, Some("Alice Archer")), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_client_credentials_do_not_cross_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let s = two_tenants(dir.path()).await;
    let server = Server::start(s).await;
    let mut c = Client::connect(server.addr).await;
    let cred = |t: &str| format!("/v1/tenants/{t}/applications/deploy-mcp/credentials");
    let r = c.json("POST", &cred("acme"), WRITER, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (acme_id, acme_secret) =
        (r.json()["client_id"].as_str().unwrap().to_string(), r.json()["client_secret"].as_str().unwrap().to_string());
    let r = c.json("POST", &cred("other"), OTHER, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (other_id, other_secret) =
        (r.json()["client_id"].as_str().unwrap().to_string(), r.json()["client_secret"].as_str().unwrap().to_string());
    let mint = json!({"subject": "user:alice", "application": "deploy-mcp", "client_id": "c",
        "context": {"mfa": {"present": true, "auth_time": "2026-05-31T23:55:00Z"}}});
    let r = c.json("POST", "/v1/tenants/acme/tokens", WRITER, &mint).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    // Another tenant's key cannot mint in acme or list its credentials.
    assert_eq!(c.json("POST", "/v1/tenants/acme/tokens", OTHER, &mint).await.status, 403);
    assert_eq!(c.get(&cred("acme"), OTHER).await.status, 403);
    let r = c.get(&cred("other"), OTHER).await;
    assert!(!r.text().contains(&acme_id), "{}", r.text());
    let introspect = |id: &str, secret: &str| {
        let basic = format!("Basic {}", b64(format!("{id}:{secret}").as_bytes()));
        (basic, format!("token={token}"))
    };
    let form = [("content-type", "application/x-www-form-urlencoded")];
    // acme's deploy-mcp sees the token; other's deploy-mcp (same id) does not.
    let (auth, body) = introspect(&acme_id, &acme_secret);
    let r = c.send("POST", "/oauth2/introspect", &[("authorization", auth.as_str()), form[0]], body.as_bytes()).await;
    assert_eq!(r.json()["active"], true, "{}", r.text());
    let (auth, body) = introspect(&other_id, &other_secret);
    let r = c.send("POST", "/oauth2/introspect", &[("authorization", auth.as_str()), form[0]], body.as_bytes()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"active": false}), "another tenant's client learns nothing");
    // Nor can it revoke it, or authenticate with acme's id and its own secret.
    let r = c.send("POST", "/oauth2/revoke", &[("authorization", auth.as_str()), form[0]], body.as_bytes()).await;
    assert_eq!(r.status, 200);
    let (auth, body) = introspect(&acme_id, &other_secret);
    let r = c.send("POST", "/oauth2/introspect", &[("authorization", auth.as_str()), form[0]], body.as_bytes()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let (auth, body) = introspect(&acme_id, &acme_secret);
    let r = c.send("POST", "/oauth2/introspect", &[("authorization", auth.as_str()), form[0]], body.as_bytes()).await;
    assert_eq!(r.json()["active"], true, "still active after other's revoke: {}", r.text());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn read_only_keys_cannot_write_anything() {
    let dir = tempfile::tempdir().unwrap();
    let s = acme_state(dir.path());
    let before = snapshot(&s).await;
    // POSTs that only ask questions.
    let reads = [
        "/v1/tenants/{tenant}/check",
        "/v1/tenants/{tenant}/check/batch",
        "/v1/tenants/{tenant}/effective-access",
        "/v1/tenants/{tenant}/token-scope",
        "/v1/tenants/{tenant}/access/v1/evaluation",
        "/v1/tenants/{tenant}/access/v1/evaluations",
        "/v1/tenants/{tenant}/access/v1/search/subject",
        "/v1/tenants/{tenant}/access/v1/search/resource",
        "/v1/tenants/{tenant}/access/v1/search/action",
    ];
    let mut tried = 0;
    for (method, template) in api::ROUTES {
        if *method == "GET" || keyless(template) || reads.contains(template) {
            continue;
        }
        let path = concrete(template);
        let req = axum::http::Request::builder()
            .method(*method)
            .uri(&path)
            .header("authorization", format!("Bearer {READER}"))
            .header("x-holdfast-tenant", "acme")
            .header("content-type", "application/json")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let (st, _, b) = super::api_support::raw(&s, req).await;
        let want = if template.starts_with("/scim/") { 401 } else { 403 };
        assert_eq!(st, want, "{method} {path}: {b}");
        tried += 1;
    }
    assert!(tried >= 15, "only {tried} write routes tried");
    assert_eq!(snapshot(&s).await, before, "nothing changed");
}

// --------------------------------------------------------------------- logs

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every event of the process at TRACE, into a buffer (installed once; the
/// blocking pool's threads log there too).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Capture(Arc::clone(&buf));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in the test binary");
        buf
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_secrets_and_tokens_never_reach_the_logs() {
    let logs = captured_logs();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let wrong = "hf_wrong_key_0123456789abcdef0123456789";
    let mut secrets: Vec<String> = [ADMIN, READER, WRITER, OTHER, wrong].iter().map(|s| s.to_string()).collect();
    let check = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:prod", "explain": true});
    for key in [ADMIN, READER, WRITER, OTHER, wrong] {
        c.json("POST", "/v1/tenants/acme/check", key, &check).await;
        c.json("POST", "/v1/tenants/acme/tuples", key, &json!({"writes": ["group:x#member@user:nope"]})).await;
        c.json("POST", "/v1/tenants/acme/tuples", key, &json!({"writes": ["bad tuple"]})).await;
        c.get("/v1/tenants/acme/changes", key).await;
    }
    let r = c.json("POST", "/v1/tenants/acme/applications/deploy-mcp/credentials", WRITER, &json!({})).await;
    let (id, secret) =
        (r.json()["client_id"].as_str().unwrap().to_string(), r.json()["client_secret"].as_str().unwrap().to_string());
    let mint = json!({"subject": "user:alice", "application": "deploy-mcp", "client_id": "c",
        "context": {"mfa": {"present": true, "auth_time": "2026-05-31T23:55:00Z"}}});
    let r = c.json("POST", "/v1/tenants/acme/tokens", WRITER, &mint).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let basic = format!("Basic {}", b64(format!("{id}:{secret}").as_bytes()));
    let bad_basic = format!("Basic {}", b64(format!("{id}:hf_cs_wrong_secret_value").as_bytes()));
    let form = ("content-type", "application/x-www-form-urlencoded");
    for auth in [&basic, &bad_basic] {
        for path in ["/oauth2/introspect", "/oauth2/revoke"] {
            c.send("POST", path, &[("authorization", auth.as_str()), form], format!("token={token}").as_bytes()).await;
        }
    }
    c.get("/v1/tenants/acme/changes", ADMIN).await;
    server.shutdown().await.unwrap();
    secrets.extend([
        secret.clone(),
        token.clone(),
        basic.clone(),
        bad_basic.clone(),
        "hf_cs_wrong_secret_value".into(),
    ]);
    // The bearer's base64 forms would be as bad as the raw values.
    secrets.push(b64(format!("{id}:{secret}").as_bytes()));

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("/v1/tenants/{tenant}/check"),
        "the capture sees the request log:\n{}",
        &text[..text.len().min(2000)]
    );
    assert!(text.contains("/oauth2/introspect"), "and the OAuth requests");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret (`{}…`) is in the logs", &s[..s.len().min(8)]);
    }
    // Not even a recognisable prefix of the token or client secret.
    assert!(!text.contains(&token[..20]) && !text.contains(&secret[..16]));
}

// ---------------------------------------------------- constant-time compare

/// Keys and client secrets are compared by digest with `subtle`'s
/// constant-time equality, never with `==` on the secret material. (A
/// timing test would be flaky; this keeps the code path honest, the way
/// rust-analyzer's tidy tests keep code rules.)
#[test]
fn keys_and_secrets_are_compared_in_constant_time() {
    let root = env!("CARGO_MANIFEST_DIR");
    let auth = std::fs::read_to_string(format!("{root}/src/api/auth.rs")).unwrap();
    let body = auth.split("pub fn authenticate").nth(1).expect("Keys::authenticate").split("\n    }\n").next().unwrap();
    assert!(body.contains(".ct_eq("), "authenticate compares with ct_eq:\n{body}");
    assert!(!body.contains("=="), "no short-circuit comparison in authenticate:\n{body}");
    assert!(!body.contains("break") && !body.contains("return"), "every credential is compared:\n{body}");
    let tokens = std::fs::read_to_string(format!("{root}/src/service/tokens.rs")).unwrap();
    let verify = tokens.split("pub fn verify").nth(1).expect("ClientRecord::verify").split("\n    }\n").next().unwrap();
    assert!(verify.contains(".ct_eq("), "client secrets compare with ct_eq:\n{verify}");
    // And the behaviour: the right key of each credential, nothing else.
    let k = keys();
    assert_eq!(k.authenticate(ADMIN).unwrap().name, "admin");
    assert_eq!(k.authenticate(READER).unwrap().name, "acme-reader");
    for wrong in ["", "admin-ke", "admin-key ", "ADMIN-KEY", "admin-keyx"] {
        assert!(k.authenticate(wrong).is_none(), "{wrong:?}");
    }
}

// ------------------------------------------------------- concurrency limit

/// A request whose body never arrives stays in flight; a caller with
/// `max_in_flight_per_caller` of those gets 429 for one more, while another
/// caller is served as usual; once they finish, the caller is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_cannot_starve_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let hf = Holdfast::open(dir.path(), Durability::Buffered).unwrap();
    let p = holdfast::policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml")))
        .unwrap();
    hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    let config = ApiConfig { clock: fixed_now, max_in_flight_per_caller: 4, ..ApiConfig::default() };
    let state = AppState::with_config(Arc::new(hf), keys(), config);
    let server = Server::start(state.clone()).await;
    // The hog: four checks whose bodies never come.
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/tenants/acme/check HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {READER}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stuck.push(s);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.in_flight().current("acme-reader") < 4 {
        assert!(tokio::time::Instant::now() < deadline, "the stuck requests never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let check = json!({"subject": "user:alice", "application": "github-mcp", "scope": "pr:write"});
    let mut c = Client::connect(server.addr).await;
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &check).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "too_many_requests");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Others are served meanwhile: another key, the admin, health.
    let r = c.json("POST", "/v1/tenants/acme/check", WRITER, &check).await;
    assert_eq!((r.status, r.json()["decision"].as_str()), (200, Some("allow")), "{}", r.text());
    assert_eq!(c.json("POST", "/v1/tenants/acme/check", ADMIN, &check).await.status, 200);
    assert_eq!(c.send("GET", "/healthz", &[], b"").await.status, 200);
    // The hog hangs up; its slots come back.
    drop(stuck);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.in_flight().current("acme-reader") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "slots were not released");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &check).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = c.send("GET", "/metrics", &[], b"").await.text();
    assert!(m.contains("status=\"429\"} 1"), "429s are counted:\n{m}");
    server.shutdown().await.unwrap();
}

/// On `/scim` the 429 is a SCIM error (RFC 7644 §3.12), which an identity
/// provider knows how to read and retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_caller_over_its_limit_gets_a_scim_429() {
    let dir = tempfile::tempdir().unwrap();
    let hf = Holdfast::open(dir.path(), Durability::Buffered).unwrap();
    let p = holdfast::policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml")))
        .unwrap();
    hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    let config = ApiConfig { clock: fixed_now, max_in_flight_per_caller: 2, ..ApiConfig::default() };
    let state = AppState::with_config(Arc::new(hf), keys(), config);
    let (s, _, b) = call(&state, "POST", "/v1/tenants/acme/scim-tokens", Some(ADMIN), None).await;
    assert_eq!(s, 201, "{b}");
    let token = b["token"].as_str().unwrap().to_string();
    let server = Server::start(state.clone()).await;
    // Two SCIM creates whose bodies never come fill the shared bucket.
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /scim/v2/acme/Users HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {token}\r\ncontent-type: application/scim+json\r\ncontent-length: 1000\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        stuck.push(s);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.in_flight().current("") < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the stuck requests never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut c = Client::connect(server.addr).await;
    let auth = format!("Bearer {token}");
    let r = c.send("GET", "/scim/v2/acme/Users", &[("authorization", &auth)], b"").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/scim+json"), "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let body = r.json();
    assert_eq!(body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:Error"]), "{body}");
    assert_eq!(body["status"], "429", "{body}");
    drop(stuck);
}
