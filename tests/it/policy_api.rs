//! Policy as code over HTTP: `PUT /v1/tenants/{t}/policy` (apply, dry run,
//! `fail_on` gate, owned and unowned memberships, atomicity, 422 findings),
//! `holdfast apply` against a real server, and the stateless
//! `/v1/policy/validate|test|diff`. Snapshots redact revisions.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{ApiConfig, AppState};
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use serde_json::{json, Value};

use super::api_support::{call, fixed_now, keys, raw, Server, ADMIN, READER, WRITER};

const ACME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml");
const ACME_HEAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy/acme_head.yaml");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// An empty store: the tenant is created by the first apply.
fn empty_state(dir: &std::path::Path) -> AppState {
    let hf = Holdfast::open(dir, Durability::Buffered).unwrap();
    let config = ApiConfig { clock: fixed_now, ..ApiConfig::default() };
    AppState::with_config(Arc::new(hf), keys(), config)
}

/// `PUT /v1/tenants/{tenant}/policy?{query}` with a YAML body.
async fn put_policy(state: &AppState, tenant: &str, query: &str, key: &str, text: &str) -> (u16, Value) {
    let req = Request::builder()
        .method("PUT")
        .uri(format!("/v1/tenants/{tenant}/policy?name=acme.yaml&{query}"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/yaml")
        .body(Body::from(text.to_string()))
        .unwrap();
    let (status, _, body) = raw(state, req).await;
    (status, body)
}

fn snapshot(name: &str, status: u16, body: &Value) {
    insta::assert_json_snapshot!(name, json!({"status": status, "body": body}), {
        ".**.revision" => "[revision]",
    });
}

async fn decision(state: &AppState, subject: &str, app: &str, scope: &str) -> String {
    let body = json!({"subject": subject, "application": app, "scope": scope});
    let (s, _, b) = call(state, "POST", "/v1/tenants/acme/check", Some(READER), Some(body)).await;
    assert_eq!(s, 200, "{b}");
    b["decision"].as_str().unwrap().to_string()
}

fn revision(state: &AppState) -> u64 {
    state.holdfast().revision()
}

/// Counts of the diff summary: (added, removed, weakened, strengthened).
fn counts(body: &Value) -> (u64, u64, u64, u64) {
    let s = &body["diff"]["summary"];
    (
        s["added"].as_u64().unwrap(),
        s["removed"].as_u64().unwrap(),
        s["weakened"].as_u64().unwrap(),
        s["strengthened"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn apply_acme_then_its_head_with_dry_run_and_gate() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());

    // First apply into an empty tenant: everything is added.
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["applied"].clone(), b["dry_run"].clone()), (json!(true), json!(false)));
    assert_eq!(b["revision"], json!(revision(&state).to_string()));
    assert_eq!(b["diff"]["summary"]["removed"], 0);
    assert!(b["diff"]["summary"]["added"].as_u64().unwrap() > 10, "{}", b["diff"]["summary"]);
    snapshot("apply_acme_into_empty", s, &b);
    assert_eq!(decision(&state, "user:alice", "deploy-mcp", "deploy:prod").await, "step_up");
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "deny");

    // The same file again: nothing to do, no new revision.
    let before = revision(&state);
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["changes"],
        json!({"objects_put": 0, "objects_deleted": 0, "tuples_put": 0, "tuples_deleted": 0, "memberships_kept": 0})
    );
    assert_eq!(b["diff"]["subjects"], json!([]));
    assert_eq!((b["applied"].clone(), revision(&state)), (json!(true), before));

    // Dry run of HEAD (on-call loses MFA, bob joins on-call): the diff, nothing applied.
    let (s, b) = put_policy(&state, "acme", "dry_run=true&format=markdown", WRITER, &read(ACME_HEAD)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["applied"].clone(), b["revision"].clone()), (json!(false), Value::Null));
    assert_eq!(b["changes"]["tuples_put"], 2, "bob's membership and the binding without MFA");
    assert!(b["rendered"].as_str().unwrap().contains("user:bob"), "{}", b["rendered"]);
    let (added, removed, weakened, _) = counts(&b);
    assert_eq!((added, removed), (3, 0), "bob gains deploy:read, deploy:staging, deploy:prod");
    assert!(weakened >= 3, "alice and carol lose the MFA requirement");
    assert!(b["diff"]["risks"].as_array().unwrap().iter().any(|r| r["flag"] == "mfa_removed"));
    snapshot("apply_acme_head_dry_run", s, &b);
    assert_eq!(revision(&state), before, "a dry run writes nothing");
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "deny");

    // A gate: weakened access is refused, nothing applied.
    let (s, b) = put_policy(&state, "acme", "fail_on=added,weakened", WRITER, &read(ACME_HEAD)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["applied"].clone(), b["gate"].clone()), (json!(false), json!(["added", "weakened"])));
    assert_eq!(revision(&state), before);

    // Applied: bob deploys to production, and alice no longer needs MFA.
    let (s, b) = put_policy(&state, "acme", "", WRITER, &read(ACME_HEAD)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["applied"], true);
    assert!(revision(&state) > before);
    assert_eq!(b["revision"], json!(revision(&state).to_string()));
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "allow");
    assert_eq!(decision(&state, "user:alice", "deploy-mcp", "deploy:prod").await, "allow");
    // The change feed names the credential of the apply.
    let (_, _, feed) =
        call(&state, "GET", &format!("/v1/tenants/acme/changes?since={before}"), Some(ADMIN), None).await;
    assert_eq!(feed["changes"][0]["actor"], "acme-sync", "{feed}");

    // And back: MFA is required again, but bob stays in on-call — the file
    // does not own memberships, so an apply only adds them.
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changes"]["memberships_kept"], 1);
    let (added, removed, weakened, strengthened) = counts(&b);
    assert_eq!((added, removed, weakened), (0, 0, 0));
    assert!(strengthened >= 6, "alice, bob, carol: MFA again");
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "step_up");
    // Owning on-call's memberships removes bob from it: the diff is the reverse of HEAD's.
    let owned = format!("owns: {{memberships: [on-call]}}\n{}", read(ACME));
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &owned).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(counts(&b), (0, 3, 0, 0), "bob loses deploy:read, deploy:staging, deploy:prod");
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "deny");
}

#[tokio::test]
async fn memberships_outside_the_file_survive_unless_owned() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    // A directory sync adds dave to engineering and declares erin; a suspension.
    let w = json!({"writes": ["group:engineering#member@user:dave", "group:directory-only#member@user:erin"]});
    let (s, _, b) = call(&state, "POST", "/v1/tenants/acme/tuples", Some(WRITER), Some(w)).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, _) =
        call(&state, "PUT", "/v1/tenants/acme/users/erin", Some(WRITER), Some(json!({"name": "Erin"}))).await;
    assert_eq!(s, 200);
    let (s, _, _) =
        call(&state, "POST", "/v1/tenants/acme/subjects/user:carol/suspend", Some(WRITER), Some(json!({}))).await;
    assert_eq!(s, 200);
    assert_eq!(decision(&state, "user:dave", "github-mcp", "pr:write").await, "allow");

    // HEAD does not list dave: his membership is kept (not owned), as are erin, her group and carol's suspension.
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME_HEAD)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changes"]["memberships_kept"], 2, "{}", b["changes"]);
    assert_eq!(b["changes"]["objects_deleted"], 0);
    assert!(
        !b["diff"]["subjects"].as_array().unwrap().iter().any(|s| s["subject"] == "user:carol"),
        "carol stays suspended: no change for her"
    );
    assert_eq!(decision(&state, "user:dave", "github-mcp", "pr:write").await, "allow");
    let (s, _, u) = call(&state, "GET", "/v1/tenants/acme/users/erin", Some(READER), None).await;
    assert_eq!(s, 200, "{u}");
    let (s, _, g) = call(&state, "GET", "/v1/tenants/acme/groups/directory-only", Some(READER), None).await;
    assert_eq!(s, 200, "{g}");
    assert_eq!(decision(&state, "user:carol", "deploy-mcp", "deploy:read").await, "deny", "still suspended");

    // A file that owns engineering's memberships removes dave from it (and only that).
    let owned = format!("owns: {{memberships: [engineering]}}\n{}", read(ACME_HEAD));
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &owned).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["changes"]["tuples_deleted"].clone(), b["changes"]["memberships_kept"].clone()),
        (json!(1), json!(1))
    );
    snapshot("apply_owned_memberships", s, &b);
    assert_eq!(decision(&state, "user:dave", "github-mcp", "pr:write").await, "deny");

    // Owning every group's memberships also drops the directory-only group.
    let all = format!("owns: {{memberships: true}}\n{}", read(ACME_HEAD));
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &all).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["changes"]["tuples_deleted"], 1);
    let (s, _, _) = call(&state, "GET", "/v1/tenants/acme/users/erin", Some(READER), None).await;
    assert_eq!(s, 200, "users are never deleted by an apply");
}

#[tokio::test]
async fn a_file_with_errors_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    let before = revision(&state);
    // HEAD's changes plus a binding to an undeclared role and a typo in a key.
    let bad = read(ACME_HEAD)
        .replace("role: ci-deployer", "role: ci-deployr")
        .replace("    scopes: [audit:read, repo:read, deploy:read]", "    scope: [audit:read, repo:read, deploy:read]");
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &bad).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["error"]["code"], "invalid_policy");
    let codes: Vec<&str> =
        b["error"]["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    assert!(codes.contains(&"unknown_key") && codes.contains(&"missing_key"), "{codes:?}");
    snapshot("apply_invalid_file", s, &b);
    assert_eq!(revision(&state), before, "nothing applied");
    assert_eq!(decision(&state, "user:bob", "deploy-mcp", "deploy:prod").await, "deny");

    let (s, b) =
        put_policy(&state, "acme", "", ADMIN, &read(ACME).replace("role: ci-deployer", "role: ci-deployr")).await;
    assert_eq!(s, 422, "{b}");
    let f = b["error"]["findings"].as_array().unwrap().iter().find(|f| f["severity"] == "error").unwrap();
    assert_eq!((f["code"].clone(), f["hint"].clone()), (json!("unknown_role"), json!("did you mean `ci-deployer`?")));

    // A file for another tenant, a read-only key, a wrong content type, a bad gate.
    let (s, b) = put_policy(&state, "other", "", ADMIN, &read(ACME)).await;
    assert_eq!((s, b["error"]["findings"][0]["code"].clone()), (422, json!("tenant_mismatch")), "{b}");
    assert_eq!(put_policy(&state, "acme", "", READER, &read(ACME)).await.0, 403);
    let (s, _, b) = call(&state, "PUT", "/v1/tenants/acme/policy", Some(ADMIN), None).await;
    assert_eq!((s, b["error"]["code"].clone()), (415, json!("unsupported_media_type")));
    let (s, b) = put_policy(&state, "acme", "fail_on=worse", ADMIN, &read(ACME)).await;
    assert_eq!((s, b["error"]["code"].clone()), (400, json!("invalid_parameter")), "{b}");
    let (s, b) = put_policy(&state, "acme", "owns=1", ADMIN, &read(ACME)).await;
    assert_eq!(s, 400, "unknown query parameters are refused: {b}");
    assert_eq!(revision(&state), before);
}

#[tokio::test]
async fn json_policy_bodies_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let policy = json!({
        "tenant": "acme",
        "applications": {"a": {"scopes_supported": ["x"]}},
        "roles": {"r": {"scopes": ["x"]}},
        "users": ["u"],
        "bindings": [{"subject": "user:u", "role": "r", "application": "a"}]
    });
    let (s, _, b) = call(&state, "PUT", "/v1/tenants/acme/policy", Some(ADMIN), Some(policy)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(decision(&state, "user:u", "a", "x").await, "allow");
}

/// `holdfast apply` as a process, against a real server.
fn holdfast_apply(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .arg("apply")
        .args(args)
        .env_remove("HOLDFAST_API_KEY")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holdfast_apply_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let server = Server::start(state.clone()).await;
    let url = format!("http://{}", server.addr);
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || holdfast_apply(&args.iter().map(String::as_str).collect::<Vec<_>>()))
    };
    let a = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (code, out, err) = run(a(&[ACME, "--server", &url, "--key", ADMIN, "--format", "json"])).await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((body["tenant"].clone(), body["applied"].clone()), (json!("acme"), json!(true)));
    assert!(err.contains("applied at revision"), "{err}");

    // A gate: exit 1, nothing applied; the text diff is printed.
    let before = revision(&state);
    let (code, out, err) =
        run(a(&[ACME_HEAD, "--server", &url, "--key", ADMIN, "--fail-on", "weakened"])).await.unwrap();
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("mfa_removed") && out.contains("user:bob"), "{out}");
    assert!(err.contains("failing on weakened"), "{err}");
    assert_eq!(revision(&state), before);

    // Dry run in markdown: exit 0, nothing applied.
    let (code, out, err) =
        run(a(&[ACME_HEAD, "--server", &url, "--key", ADMIN, "--dry-run", "--format", "markdown"])).await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("user:bob"), "{out}");
    assert!(err.contains("dry run"), "{err}");
    assert_eq!(revision(&state), before);

    // Applied.
    let (code, out, err) = run(a(&[ACME_HEAD, "--server", &url, "--key", WRITER])).await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(revision(&state) > before);

    // Invalid input: findings on stderr, exit 2; a wrong key, no key, no server, an unreadable file: exit 2.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, read(ACME).replace("role: ci-deployer", "role: ci-deployr")).unwrap();
    let bad = bad.display().to_string();
    let (code, _, err) = run(a(&[&bad, "--server", &url, "--key", ADMIN])).await.unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.yaml:") && err.contains("error[unknown_role]") && err.contains("ci-deployer"), "{err}");
    let (code, _, err) = run(a(&[ACME, "--server", &url, "--key", "wrong"])).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("401 unauthenticated"), "{err}");
    let (code, _, err) = run(a(&[ACME, "--server", &url])).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("HOLDFAST_API_KEY"), "{err}");
    let (code, _, err) = run(a(&[ACME, "--server", "http://127.0.0.1:1", "--key", ADMIN])).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("cannot connect"), "{err}");
    let (code, _, err) = run(a(&["/nonexistent/p.yaml", "--server", &url, "--key", ADMIN])).await.unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("unreadable"), "{err}");
    server.shutdown().await.unwrap();
}

// -------------------------------------------------------------- stateless

fn file(name: &str, content: &str) -> Value {
    json!({"name": name, "content": content})
}

#[tokio::test]
async fn stateless_validate_test_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let bad = "roles:\n  r: {scope: [x]}\nbindings:\n  - {subject: user:nobody, role: r}\n";
    let body = json!({"files": [file("acme.yaml", &read(ACME)), file("bad.yaml", bad)]});
    let (s, _, b) = call(&state, "POST", "/v1/policy/validate", Some(READER), Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["files"][0]["errors"], 0);
    assert!(b["errors"].as_u64().unwrap() >= 1);
    snapshot("stateless_validate", s, &b);

    let body = json!({"files": [file("acme.yaml", &read(ACME))]});
    let (s, _, b) = call(&state, "POST", "/v1/policy/test", Some(READER), Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!((b["passed"].clone(), b["failed"].clone()), (json!(5), json!(0)));
    snapshot("stateless_test", s, &b);
    let failing = read(ACME).replace("expect: deny", "expect: allow");
    let (s, _, b) =
        call(&state, "POST", "/v1/policy/test", Some(READER), Some(json!({"files": [file("f.yaml", &failing)]}))).await;
    assert_eq!((s, b["failed"].clone()), (200, json!(1)), "{b}");
    let (s, _, b) =
        call(&state, "POST", "/v1/policy/test", Some(READER), Some(json!({"files": [file("bad.yaml", bad)]}))).await;
    assert_eq!((s, b["error"]["code"].clone()), (422, json!("invalid_policy")), "{b}");

    let body = json!({
        "base": file("acme.yaml", &read(ACME)),
        "head": file("acme_head.yaml", &read(ACME_HEAD)),
        "fail_on": ["weakened", "removed"],
        "format": "markdown",
    });
    let (s, _, b) = call(&state, "POST", "/v1/policy/diff", Some(READER), Some(body)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["gate"], json!(["weakened"]));
    assert_eq!((b["base"].clone(), b["head"].clone()), (json!("acme.yaml"), json!("acme_head.yaml")));
    // The same JSON as `holdfast diff --format json` (plus gate and rendered).
    let cli = holdfast::policy::diff::diff_policies(
        &holdfast::policy::compile(&read(ACME), "acme.yaml").unwrap(),
        &holdfast::policy::compile(&read(ACME_HEAD), "acme_head.yaml").unwrap(),
        &holdfast::policy::diff::DiffOptions::new(fixed_now()),
    )
    .unwrap();
    let mut expected = serde_json::to_value(&cli).unwrap();
    expected["gate"] = json!(["weakened"]);
    expected["rendered"] = json!(holdfast::policy::diff::render_markdown(&cli));
    assert_eq!(b, expected);
    snapshot("stateless_diff", s, &b);

    // A key is needed (any tenant's, read access is enough); bad requests.
    let body = json!({"files": [file("acme.yaml", &read(ACME))]});
    let (s, _, _) = call(&state, "POST", "/v1/policy/validate", None, Some(body.clone())).await;
    assert_eq!(s, 401);
    let (s, _, _) = call(&state, "POST", "/v1/policy/validate", Some(super::api_support::OTHER), Some(body)).await;
    assert_eq!(s, 200);
    let (s, _, b) = call(&state, "POST", "/v1/policy/validate", Some(READER), Some(json!({"files": []}))).await;
    assert_eq!((s, b["error"]["code"].clone()), (422, json!("invalid_request")));
    let body = json!({"base": file("a", ""), "head": file("b", ""), "format": "html"});
    let (s, _, b) = call(&state, "POST", "/v1/policy/diff", Some(READER), Some(body)).await;
    assert_eq!((s, b["error"]["code"].clone()), (400, json!("invalid_parameter")), "{b}");
    let body = json!({"base": file("a", "{}"), "head": file("b", "roles: 1\n")});
    let (s, _, b) = call(&state, "POST", "/v1/policy/diff", Some(READER), Some(body)).await;
    assert_eq!((s, b["error"]["findings"][0]["file"].clone()), (422, json!("b")), "{b}");
}

// ------------------------------------------- policy safety (issue 12)

const EMPTIES: &[&str] = &["", "   \n\t\n", "# only a comment\n\n# and another\n"];

/// An empty or whitespace-only body (what `curl --data-binary @missing.yaml`
/// sends) is refused with `empty_policy`, and nothing changes.
#[tokio::test]
async fn an_empty_policy_is_refused_and_wipes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    let (s, b) = put_policy(&state, "acme", "", ADMIN, &read(ACME)).await;
    assert_eq!(s, 200, "{b}");
    let before = revision(&state);
    for text in EMPTIES {
        for query in ["", "dry_run=true", "allow_mass_removal=true"] {
            let (s, b) = put_policy(&state, "acme", query, ADMIN, text).await;
            assert_eq!(s, 422, "{text:?} {query}: {b}");
            let codes: Vec<&str> =
                b["error"]["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
            assert_eq!(codes, ["empty_policy"], "{b}");
        }
        for (route, body) in [
            ("validate", json!({"files": [file("p.yaml", text)]})),
            ("test", json!({"files": [file("p.yaml", text)]})),
            ("diff", json!({"base": file("acme.yaml", &read(ACME)), "head": file("p.yaml", text)})),
        ] {
            let (s, _, b) = call(&state, "POST", &format!("/v1/policy/{route}"), Some(READER), Some(body)).await;
            assert!(b.to_string().contains("\"empty_policy\""), "{route} {s}: {b}");
            // validate reports findings (200 with `errors`); test and diff refuse.
            assert!(if route == "validate" { b["errors"] == 1 } else { s == 422 }, "{route} {s}: {b}");
        }
    }
    assert_eq!(revision(&state), before);
    assert_eq!(decision(&state, "user:bob", "github-mcp", "pr:write").await, "allow");
}

/// An apply that removes every role or application, or more than half of the
/// bindings, is flagged `mass_removal` in the diff and refused (409) unless
/// `allow_mass_removal=true`.
#[tokio::test]
async fn a_mass_removal_needs_an_explicit_allow() {
    let dir = tempfile::tempdir().unwrap();
    let state = empty_state(dir.path());
    assert_eq!(put_policy(&state, "acme", "", ADMIN, &read(ACME)).await.0, 200);
    let before = revision(&state);

    let (s, b) = put_policy(&state, "acme", "dry_run=true", ADMIN, "{}").await;
    assert_eq!(s, 200, "{b}");
    let flags: Vec<(&str, &str)> = b["diff"]["risks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["flag"] == "mass_removal")
        .map(|r| (r["target"].as_str().unwrap(), r["message"].as_str().unwrap()))
        .collect();
    assert_eq!(flags.iter().map(|f| f.0).collect::<Vec<_>>(), ["applications", "bindings", "roles"], "{flags:?}");

    // The gate `risk` catches it on a dry run too.
    let (s, b) = put_policy(&state, "acme", "fail_on=risk", ADMIN, "{}").await;
    assert_eq!((s, b["applied"].clone()), (200, json!(false)), "{b}");

    let (s, b) = put_policy(&state, "acme", "", ADMIN, "{}").await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("mass_removal")), "{b}");
    assert_eq!(revision(&state), before, "nothing applied");
    assert_eq!(decision(&state, "user:bob", "github-mcp", "pr:write").await, "allow");

    // Keeping roles and applications but dropping most bindings is flagged too.
    let text = read(ACME);
    let trimmed = &text[..text.find("\nbindings:").unwrap()];
    let (s, b) = put_policy(&state, "acme", "", ADMIN, trimmed).await;
    assert_eq!((s, b["error"]["code"].as_str()), (409, Some("mass_removal")), "{b}");

    let (s, b) = put_policy(&state, "acme", "allow_mass_removal=true", ADMIN, "{}").await;
    assert_eq!((s, b["applied"].clone()), (200, json!(true)), "{b}");
    assert_eq!(decision(&state, "user:bob", "github-mcp", "pr:write").await, "deny");
}

/// The CLI agrees: `validate`, `test` and `diff` refuse an empty file (exit
/// 1 with `empty_policy`, or 2 for diff's invalid input), and a diff to `{}`
/// fails `--fail-on risk`.
#[test]
fn the_cli_refuses_an_empty_policy() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "  \n").unwrap();
    let nothing = dir.path().join("nothing.yaml");
    std::fs::write(&nothing, "{}\n").unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let (code, out) = run(&["validate".as_ref(), empty.as_os_str()]);
    assert!(code == Some(1) && out.contains("empty_policy"), "{code:?} {out}");
    let (code, out) = run(&["test".as_ref(), empty.as_os_str()]);
    assert!(code != Some(0) && out.contains("empty_policy"), "{code:?} {out}");
    let (code, out) = run(&["diff".as_ref(), ACME.as_ref(), empty.as_os_str()]);
    assert!(code == Some(2) && out.contains("empty_policy"), "{code:?} {out}");
    let (code, out) =
        run(&["diff".as_ref(), ACME.as_ref(), nothing.as_os_str(), "--fail-on".as_ref(), "risk".as_ref()]);
    assert!(code == Some(1) && out.contains("mass_removal"), "{code:?} {out}");
}
