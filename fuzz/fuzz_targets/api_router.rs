//! The whole router with arbitrary bodies, path segments and query strings:
//! every answer is a 2xx or a clear 4xx with the API's error shape — never
//! a 5xx or a panic. Input: one byte picks the route, bytes up to the first
//! newline fill its path parameters (percent-encoded), the rest is the body.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{self, ApiConfig, AppState, Keys};
use holdfast::model::Timestamp;
use holdfast::service::Holdfast;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const KEY: &str = "fuzz-key";

/// (method, path template: `{}` is replaced by the fuzzed segment).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/tenants/acme/tuples"),
    ("GET", "/v1/tenants/acme/tuples?{}"),
    ("POST", "/v1/tenants/acme/check"),
    ("POST", "/v1/tenants/acme/check/batch"),
    ("PUT", "/v1/tenants/acme/roles/{}"),
    ("DELETE", "/v1/tenants/acme/roles/{}"),
    ("PUT", "/v1/tenants/acme/applications/{}"),
    ("GET", "/v1/tenants/acme/applications/{}/access?scope=deploy:prod"),
    ("POST", "/v1/tenants/acme/bindings"),
    ("GET", "/v1/tenants/acme/bindings?{}"),
    ("DELETE", "/v1/tenants/acme/bindings?{}"),
    ("PUT", "/v1/tenants/acme/groups/{}/members/user:alice"),
    ("PUT", "/v1/tenants/acme/groups/sre/members/{}"),
    ("PUT", "/v1/tenants/acme/users/{}"),
    ("DELETE", "/v1/tenants/acme/users/{}"),
    ("GET", "/v1/tenants/acme/subjects/{}/effective-access"),
    ("GET", "/v1/tenants/acme/subjects/user:alice/effective-access?{}"),
    ("POST", "/uflow/v2/groups/{}/role-bindings"),
    ("GET", "/uflow/v2/users/{}/effective-access"),
    ("POST", "/v1/tenants/acme/subjects/{}/suspend"),
    ("POST", "/v1/tenants/acme/token-scope"),
    ("POST", "/v1/tenants/{}/check"),
    ("GET", "/v1/tenants/acme/groups/{}"),
];

fn now() -> Timestamp {
    Timestamp(1_780_272_000)
}

fn fresh_state() -> AppState {
    let hf = Holdfast::in_memory();
    let text = include_str!("../../examples/acme.yaml");
    let p = holdfast::policy::compile(text, "acme.yaml").expect("the worked example compiles");
    hf.write(&p.tenant, p.changes, &[], "fuzz", 0).expect("the worked example loads");
    let config = ApiConfig { clock: now, body_limit: 64 * 1024, ..ApiConfig::default() };
    AppState::with_config(Arc::new(hf), Keys::admin(KEY), config)
}

struct Env {
    rt: tokio::runtime::Runtime,
    /// The router over the current state (built once per state: building it is
    /// far slower than answering a request).
    app: Mutex<axum::Router>,
    runs: AtomicUsize,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        app: Mutex::new(api::router(fresh_state())),
        runs: AtomicUsize::new(0),
    })
}

fn encode(seg: &[u8], query: bool) -> String {
    let mut out = String::new();
    for &b in seg {
        let keep = b.is_ascii_alphanumeric() || b"-._~:@+".contains(&b) || (query && b"=&".contains(&b));
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let (method, template) = ROUTES[pick as usize % ROUTES.len()];
    let (seg, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&rest[..0], rest),
    };
    let path = template.replace("{}", &encode(seg, template.contains('?')));
    let e = env();
    // Start from the worked example again now and then, so memory stays bounded.
    if e.runs.fetch_add(1, Ordering::Relaxed) % 20_000 == 19_999 {
        *e.app.lock().unwrap() = api::router(fresh_state());
    }
    let app = e.app.lock().unwrap().clone();
    let req = Request::builder()
        .method(method)
        .uri(&path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("x-holdfast-tenant", "acme")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let (status, bytes) = e.rt.block_on(async move {
        let res = app.oneshot(req).await.expect("infallible");
        let status = res.status().as_u16();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.expect("body");
        (status, bytes)
    });
    assert!(status < 500, "{method} {path} answered {status}: {}", String::from_utf8_lossy(&bytes));
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("errors are JSON");
        assert!(v["error"]["code"].is_string(), "{v}");
    }
});
