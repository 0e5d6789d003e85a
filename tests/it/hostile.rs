//! Hostile input over HTTP (through `api::router`): huge bodies and
//! batches, deep JSON, long ids, non-UTF-8, unknown fields, wrong content
//! types, path traversal, and pathological group graphs (10,000 deep, a
//! 1,000-group cycle, one subject in 100,000 groups). Each answers a clear
//! 4xx or a correct answer within a time bound — never a 5xx or a hang.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{ApiConfig, AppState};
use holdfast::engine::Limits;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use serde_json::{json, Value};

use super::api_support::{call, fixed_now, keys, raw, ADMIN};

/// Generous for a debug build on 2 cores; release answers in milliseconds.
const BOUND: Duration = Duration::from_secs(20);
/// The sizes in release builds (`cargo test --release`); smaller in
/// debug builds, where building them costs minutes: adding the n-th group
/// of one subject is O(n) in the engine (`FactBase::set_member` scans the
/// parent list), and a chain of n groups takes n rounds of the rules.
const DEEP: usize = if cfg!(debug_assertions) { 2_000 } else { 10_000 };
const WIDE: usize = if cfg!(debug_assertions) { 10_000 } else { 100_000 };

/// An empty store behind the default limits (4 MiB bodies, 50,000 changes a write).
fn state(dir: &std::path::Path) -> AppState {
    let hf = Holdfast::open(dir, Durability::Buffered).unwrap();
    AppState::with_config(Arc::new(hf), keys(), ApiConfig { clock: fixed_now, ..ApiConfig::default() })
}

fn req(method: &str, path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path).header("authorization", format!("Bearer {ADMIN}"));
    if let Some(ct) = content_type {
        r = r.header("content-type", ct);
    }
    r.body(body.into()).unwrap()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"))
}

/// A role `viewer` granting `read`, an application `app` supporting it.
async fn define_app(s: &AppState, t: &str) {
    let (st, _, b) =
        call(s, "PUT", &format!("/v1/tenants/{t}/roles/viewer"), Some(ADMIN), Some(json!({"scopes": ["read"]}))).await;
    assert_eq!(st, 200, "{b}");
    let (st, _, b) = call(
        s,
        "PUT",
        &format!("/v1/tenants/{t}/applications/app"),
        Some(ADMIN),
        Some(json!({"scopes_supported": ["read"]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
}

async fn write(s: &AppState, t: &str, writes: Vec<String>) -> (u16, Value) {
    let (st, _, b) =
        call(s, "POST", &format!("/v1/tenants/{t}/tuples"), Some(ADMIN), Some(json!({"writes": writes}))).await;
    (st, b)
}

async fn check(s: &AppState, t: &str, subject: &str) -> (u16, Value, Duration) {
    let start = Instant::now();
    let (st, _, b) = call(
        s,
        "POST",
        &format!("/v1/tenants/{t}/check"),
        Some(ADMIN),
        Some(json!({"subject": subject, "application": "app", "scope": "read"})),
    )
    .await;
    (st, b, start.elapsed())
}

#[tokio::test]
async fn huge_bodies_and_batches_are_413() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    // 5 MiB of JSON (over the 4 MiB limit), with and without a real JSON shape.
    let big = format!("{{\"writes\":[\"{}\"]}}", "a".repeat(5 << 20));
    let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/tuples", Some("application/json"), big)).await;
    assert_eq!((st, code(&b)), (413, "body_too_large"), "{b}");
    let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/check", Some("application/json"), vec![b' '; 6 << 20])).await;
    assert_eq!((st, code(&b)), (413, "body_too_large"));
    // 10,001 checks in one batch; 50,001 tuple changes in one write.
    let checks: Vec<Value> =
        (0..10_001).map(|i| json!({"subject": format!("user:u{i}"), "application": "a", "scope": "s"})).collect();
    let (st, _, b) = call(&s, "POST", "/v1/tenants/t/check/batch", Some(ADMIN), Some(json!({"checks": checks}))).await;
    assert_eq!((st, code(&b)), (413, "batch_too_large"), "{b}");
    let writes: Vec<String> = (0..50_001).map(|i| format!("group:g#member@user:u{i}")).collect();
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!((st, code(&b)), (413, "batch_too_large"), "{b}");
    assert!(s.holdfast().tenant("t").is_none(), "nothing of a refused write lands");
}

#[tokio::test]
async fn deeply_nested_json_is_a_400() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/tuples", Some("application/json"), deep)).await;
    assert_eq!((st, code(&b)), (400, "bad_json"), "{b}");
    // Deep inside a field whose type is open (`attributes` would be, `context` is not).
    let nested = format!(
        "{{\"subject\":\"user:a\",\"application\":\"a\",\"scope\":\"s\",\"context\":{}1{}}}",
        "{\"x\":".repeat(50_000),
        "}".repeat(50_000)
    );
    let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/check", Some("application/json"), nested)).await;
    assert!(st == 400 || st == 422, "{st} {b}");
    // A deep array of tuples in an object tuple's field.
    let (st, _, b) = raw(
        &s,
        req(
            "POST",
            "/v1/tenants/t/tuples",
            Some("application/json"),
            format!("{{\"writes\":[{}]}}", "[".repeat(10_000)),
        ),
    )
    .await;
    assert_eq!((st, code(&b)), (400, "bad_json"), "{b}");
}

#[tokio::test]
async fn thousands_of_tuples_in_one_write_land_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    define_app(&s, "t").await;
    let mut writes: Vec<String> = (0..5_000).map(|i| format!("group:big#member@user:u{i}")).collect();
    writes.push("application:app#viewer@group:big".into());
    let start = Instant::now();
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!(st, 200, "{b}");
    assert!(start.elapsed() < BOUND);
    let (st, b, _) = check(&s, "t", "user:u4999").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "{b}");
    // One bad tuple among thousands: the whole write is refused, naming it.
    let mut writes: Vec<String> = (0..3_000).map(|i| format!("group:big2#member@user:v{i}")).collect();
    writes.insert(1_500, "group:big2#owner@user:x".into());
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!((st, code(&b)), (422, "schema_violation"), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("`group:big2#owner@user:x`"), "{b}");
    let (_, b, _) = check(&s, "t", "user:v0").await;
    assert_eq!(b["decision"], "deny");
}

#[tokio::test]
async fn very_long_ids_are_refused_with_bounded_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    let long = "x".repeat(1 << 20);
    let (st, b) = write(&s, "t", vec![format!("group:g#member@user:{long}")]).await;
    assert_eq!((st, code(&b)), (422, "invalid_tuple"));
    assert!(b.to_string().len() < 4096, "the message does not echo a megabyte: {} bytes", b.to_string().len());
    let (st, _, b) = call(
        &s,
        "POST",
        "/v1/tenants/t/check",
        Some(ADMIN),
        Some(json!({"subject": format!("user:{long}"), "application": "a", "scope": "s"})),
    )
    .await;
    assert!((400..500).contains(&st), "{st}");
    assert!(b.to_string().len() < 4096, "{} bytes", b.to_string().len());
    // A 257-byte id, one over the limit, in a path segment.
    let (st, _, b) =
        call(&s, "PUT", &format!("/v1/tenants/t/users/{}", "u".repeat(257)), Some(ADMIN), Some(json!({}))).await;
    assert_eq!((st, code(&b)), (400, "invalid_parameter"), "{b}");
    let (st, _, b) = call(&s, "GET", &format!("/v1/tenants/{}/roles", "t".repeat(300)), Some(ADMIN), None).await;
    assert_eq!((st, code(&b)), (400, "invalid_parameter"), "{b}");
}

#[tokio::test]
async fn non_utf8_unknown_fields_and_wrong_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    let (st, _, b) =
        raw(&s, req("POST", "/v1/tenants/t/tuples", Some("application/json"), vec![0xff, 0xfe, b'{', 0x80])).await;
    assert_eq!((st, code(&b)), (400, "bad_json"));
    // Invalid UTF-8 inside a JSON string.
    let mut body = b"{\"writes\":[\"group:g#member@user:".to_vec();
    body.extend_from_slice(&[0xc3, 0x28, b'"', b']', b'}']);
    let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/tuples", Some("application/json"), body)).await;
    assert_eq!((st, code(&b)), (400, "bad_json"), "{b}");
    // Percent-encoded non-UTF-8 in a path segment.
    let (st, _, b) = raw(&s, req("GET", "/v1/tenants/t/users/%FF%FE", None, Body::empty())).await;
    assert_eq!((st, code(&b)), (400, "invalid_parameter"), "{b}");
    // A non-UTF-8 key.
    let r = Request::builder()
        .method("GET")
        .uri("/v1/tenants/t/roles")
        .header("authorization", axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap())
        .body(Body::empty())
        .unwrap();
    let (st, _, b) = raw(&s, r).await;
    assert_eq!((st, code(&b)), (401, "unauthenticated"));
    // Unknown fields, at the top and nested.
    for body in [
        json!({"writes": ["group:g#member@user:a"], "wirtes": []}),
        json!({"writes": [{"object": "group:g", "relation": "member", "subject": "user:a", "extra": 1}]}),
    ] {
        let (st, _, b) = call(&s, "POST", "/v1/tenants/t/tuples", Some(ADMIN), Some(body)).await;
        assert_eq!((st, code(&b)), (422, "invalid_request"), "{b}");
    }
    let (st, _, b) = call(
        &s,
        "POST",
        "/v1/tenants/t/check",
        Some(ADMIN),
        Some(json!({"subject": "user:a", "application": "a", "scope": "s", "context": {"ip": "10.0.0.1", "admin": true}})),
    )
    .await;
    assert_eq!((st, code(&b)), (422, "invalid_request"), "{b}");
    // Wrong or missing content types.
    let good = json!({"writes": ["group:g#member@user:a"]}).to_string();
    for ct in
        [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("multipart/form-data; boundary=x"), None]
    {
        let (st, _, b) = raw(&s, req("POST", "/v1/tenants/t/tuples", ct, good.clone())).await;
        assert_eq!((st, code(&b)), (415, "unsupported_media_type"), "{ct:?}: {b}");
    }
    assert!(s.holdfast().tenant("t").is_none(), "no refused request wrote anything");
}

#[tokio::test]
async fn path_traversal_in_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    define_app(&s, "t").await;
    for path in [
        "/v1/tenants/t/users/..%2F..%2Fadmin",
        "/v1/tenants/t/users/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/v1/tenants/..%2Ft/roles",
        "/v1/tenants/t%2F..%2Fother/roles",
        "/v1/tenants/t/groups/..%5C..%5Cx",
        "/v1/tenants/t/subjects/user:..%2F..%2Fx/effective-access",
    ] {
        let (st, _, b) = call(&s, "GET", path, Some(ADMIN), None).await;
        assert!(st == 400 || st == 422, "{path}: {st} {b}");
        assert!(b["error"]["code"].is_string(), "{path}: {b}");
    }
    // Literal `..` segments never reach another route or tenant.
    for path in ["/v1/tenants/t/../other/roles", "/v1/tenants/t/roles/../../other/roles", "/v1/../v1/tenants/t/roles"] {
        let (st, _, b) = call(&s, "GET", path, Some(ADMIN), None).await;
        assert!((400..500).contains(&st), "{path}: {st} {b}");
    }
    // In tuples and bodies.
    let (st, b) = write(&s, "t", vec!["group:eng#member@user:../../admin".into()]).await;
    assert_eq!((st, code(&b)), (422, "invalid_tuple"), "{b}");
    let (st, _, b) = call(
        &s,
        "POST",
        "/v1/tenants/t/bindings",
        Some(ADMIN),
        Some(json!({"subject": "group:../x", "role": "viewer", "application": "app"})),
    )
    .await;
    assert_eq!(st, 422, "{b}");
    // The store keeps nothing but the two definitions.
    let (_, _, b) = call(&s, "GET", "/v1/tenants/t/tuples", Some(ADMIN), None).await;
    assert_eq!(b["tuples"].as_array().unwrap().len(), 2, "{b}");
}

/// A chain of `len` groups under `user:{who}`, the last bound to `app`.
fn chain(who: &str, len: usize) -> Vec<String> {
    let mut writes = vec![format!("group:{who}0#member@user:{who}")];
    writes.extend((1..len).map(|i| format!("group:{who}{i}#member@group:{who}{}", i - 1)));
    writes.push(format!("application:app#viewer@group:{who}{}", len - 1));
    writes
}

#[tokio::test]
async fn group_nesting_ten_thousand_deep_is_a_422_and_the_limit_depth_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    define_app(&s, "t").await;
    let max = Limits::default().max_depth;
    let mut writes = chain("deep", DEEP);
    writes.extend(chain("limit", max));
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!(st, 200, "{b}");
    // Deeper than the evaluation limit: a typed 422 naming subject and limit.
    let (st, b, took) = check(&s, "t", "user:deep").await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    assert_eq!(
        b["error"]["message"],
        format!("evaluation of `user:deep` exceeds the limit of {max} levels of group nesting")
    );
    assert!(took < BOUND, "{took:?}");
    let (st, _, b) = call(&s, "GET", "/v1/tenants/t/subjects/user:deep/effective-access", Some(ADMIN), None).await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    // Exactly at the limit: a correct answer, with the whole path.
    let start = Instant::now();
    let (st, b, _) = check(&s, "t", "user:limit").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "{b}");
    let (st, b, _) = check(&s, "t", "user:nobody").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("deny")), "{b}");
    let (st, _, b) = call(&s, "GET", "/v1/tenants/t/subjects/user:limit/effective-access", Some(ADMIN), None).await;
    assert_eq!(st, 200, "{b}");
    assert!(b.to_string().contains(&format!("limit{}", max - 1)), "{}", &b.to_string()[..200.min(b.to_string().len())]);
    let (st, _, _) = call(
        &s,
        "POST",
        "/v1/tenants/t/check",
        Some(ADMIN),
        Some(json!({"subject": "user:limit", "application": "app", "scope": "read", "explain": true})),
    )
    .await;
    assert_eq!(st, 200);
    assert!(start.elapsed() < BOUND, "{:?}", start.elapsed());
}

#[tokio::test]
async fn a_cycle_of_a_thousand_groups_terminates_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    define_app(&s, "t").await;
    let mut writes: Vec<String> = (0..1_000).map(|i| format!("group:c{}#member@group:c{i}", (i + 1) % 1_000)).collect();
    writes.push("group:c0#member@user:in-cycle".into());
    writes.push("application:app#viewer@group:c500".into());
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!(st, 200, "{b}");
    let (st, b, took) = check(&s, "t", "user:in-cycle").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "{b}");
    assert!(took < BOUND, "{took:?}");
    let (st, b, _) = check(&s, "t", "group:c42").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "every group of the cycle holds it: {b}");
    let (st, _, b) =
        call(&s, "GET", "/v1/tenants/t/applications/app/access?scope=read&page_size=1000", Some(ADMIN), None).await;
    assert_eq!(st, 200, "{b}");
    let (st, _, b) = call(&s, "GET", "/v1/tenants/t/subjects/user:in-cycle/effective-access", Some(ADMIN), None).await;
    assert_eq!(st, 200, "{b}");
    // Closing another cycle by self-membership is refused.
    let (st, b) = write(&s, "t", vec!["group:c1#member@group:c1".into()]).await;
    assert_eq!((st, code(&b)), (422, "schema_violation"), "{b}");
}

#[tokio::test]
async fn a_subject_in_a_hundred_thousand_groups() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(dir.path());
    define_app(&s, "t").await;
    // Writes of 50,000 (the per-request limit), each under the 4 MiB body limit.
    for part in 0..WIDE.div_ceil(50_000) {
        let writes: Vec<String> =
            (part * 50_000..((part + 1) * 50_000).min(WIDE)).map(|i| format!("group:w{i}#member@user:wide")).collect();
        let (st, b) = write(&s, "t", writes).await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, b) = write(&s, "t", vec![format!("application:app#viewer@group:w{}", WIDE - 1)]).await;
    assert_eq!(st, 200, "{b}");
    let (st, b, took) = check(&s, "t", "user:wide").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "{b}");
    assert!(took < BOUND, "{took:?}");
    let (st, _, b) = call(&s, "GET", "/v1/tenants/t/users/wide", Some(ADMIN), None).await;
    assert_eq!(st, 200);
    assert_eq!(b["groups"].as_array().unwrap().len(), WIDE);
}

/// Evaluation limits are typed errors, mapped to 422 `limit_exceeded`; in a
/// batch, the item alone carries the error.
#[tokio::test]
async fn evaluation_limits_answer_422_limit_exceeded() {
    let limits = Limits { max_groups: 100, max_bindings: 50, ..Limits::default() };
    let hf = Holdfast::in_memory_with_limits(limits);
    let s = AppState::with_config(Arc::new(hf), keys(), ApiConfig { clock: fixed_now, ..ApiConfig::default() });
    define_app(&s, "t").await;
    let mut writes = vec!["group:d0#member@user:deep".to_string()];
    writes.extend((1..200).map(|i| format!("group:d{i}#member@group:d{}", i - 1)));
    writes.extend((0..60).map(|i| format!("group:many{i}#member@user:bound")));
    writes.extend((0..60).map(|i| format!("application:app#viewer@group:many{i}")));
    writes.push("application:app#viewer@user:fine".into());
    let (st, b) = write(&s, "t", writes).await;
    assert_eq!(st, 200, "{b}");
    let (st, b, _) = check(&s, "t", "user:deep").await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    assert_eq!(
        b["error"]["message"], "evaluation of `user:deep` exceeds the limit of 100 reachable groups",
        "the message names the subject and the limit"
    );
    let (st, b, _) = check(&s, "t", "user:bound").await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("50 bindings"), "{b}");
    let (st, _, b) = call(&s, "GET", "/v1/tenants/t/subjects/user:deep/effective-access", Some(ADMIN), None).await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    let (st, _, b) = call(
        &s,
        "POST",
        "/v1/tenants/t/check",
        Some(ADMIN),
        Some(json!({"subject": "user:deep", "application": "app", "scope": "read", "explain": true})),
    )
    .await;
    assert_eq!((st, code(&b)), (422, "limit_exceeded"), "{b}");
    let batch = json!({"checks": [
        {"subject": "user:fine", "application": "app", "scope": "read"},
        {"subject": "user:deep", "application": "app", "scope": "read"},
    ]});
    let (st, _, b) = call(&s, "POST", "/v1/tenants/t/check/batch", Some(ADMIN), Some(batch)).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["results"][0]["decision"], "allow");
    assert_eq!(b["results"][1]["error"]["code"], "limit_exceeded", "{b}");
    // Others of the tenant are unaffected.
    let (st, b, _) = check(&s, "t", "user:fine").await;
    assert_eq!((st, b["decision"].as_str()), (200, Some("allow")), "{b}");
}
