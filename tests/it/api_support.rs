//! Shared by the API tests: the worked example behind a store, fixed keys
//! and clock, a real server on 127.0.0.1:0, and the one HTTP client of the
//! tests (`ureq`, which `holdfast apply` uses too).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{self, Access, ApiConfig, AppState, Keys};
use holdfast::model::Timestamp;
use holdfast::policy;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-key";
pub const READER: &str = "acme-reader-key";
pub const WRITER: &str = "acme-writer-key";
pub const OTHER: &str = "other-tenant-key";

/// 2026-06-01T00:00:00Z: the worked example's assertions are written for it.
pub fn fixed_now() -> Timestamp {
    Timestamp(1_780_272_000)
}

pub fn keys() -> Keys {
    Keys::admin(ADMIN)
        .with("acme-reader", READER, Some("acme"), Access::Read)
        .with("acme-sync", WRITER, Some("acme"), Access::Write)
        .with("other-admin", OTHER, Some("other"), Access::Write)
}

/// The worked example loaded into a store in `dir`.
pub fn acme_state(dir: &std::path::Path) -> AppState {
    let hf = Holdfast::open(dir, Durability::Buffered).unwrap();
    let p = policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml"))).unwrap();
    hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    let config = ApiConfig { clock: fixed_now, body_limit: 64 * 1024, ..ApiConfig::default() };
    AppState::with_config(Arc::new(hf), keys(), config)
}

/// One request through `router(state)`: (status, headers, JSON body or text).
pub async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, axum::http::HeaderMap, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    raw(state, req).await
}

pub async fn raw(state: &AppState, req: Request<Body>) -> (u16, axum::http::HeaderMap, serde_json::Value) {
    let res = api::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, body)
}

/// A real server on 127.0.0.1:0; dropping the sender shuts it down.
pub struct Server {
    pub addr: SocketAddr,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(listener, state, async {
            let _ = rx.await;
        }));
        Server { addr, stop: Some(tx), task }
    }

    /// Graceful shutdown: in-flight requests finish, the store is flushed.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.unwrap()
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Standard base64 (HTTP Basic credentials).
pub fn b64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// An HTTP/1.1 client of one server (`ureq`). 4xx and 5xx are answers, not
/// errors. With keep-alive, a request that finds its pooled connection
/// closed by the server (which closes it after answering before reading
/// the whole body, e.g. a 401) is sent once more on a new one.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
    keep_alive: bool,
}

impl Client {
    /// Keep-alive connections (the async tests).
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::new(addr, true)
    }

    /// `keep_alive: false`: a new connection for every request (the crash
    /// harness, whose server is killed under load).
    pub fn new(addr: SocketAddr, keep_alive: bool) -> Client {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(60)));
        if !keep_alive {
            config = config.max_idle_connections(0);
        }
        Client { base: format!("http://{addr}"), agent: config.build().into(), keep_alive }
    }

    /// One request, on the calling thread.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Response, String> {
        match self.request_once(method, path, headers, body) {
            Err(ureq::Error::Io(_) | ureq::Error::Protocol(_)) if self.keep_alive => {
                self.request_once(method, path, headers, body)
            }
            r => r,
        }
        .map_err(|e| e.to_string())
    }

    fn request_once(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ureq::Error> {
        let mut req = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = self.agent.run(req.body(body.to_vec())?)?;
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = res.body_mut().with_config().limit(u64::MAX).read_to_vec()?;
        Ok(Response { status: res.status().as_u16(), headers, body })
    }

    /// One request on the blocking pool (the async tests).
    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let (c, m, p, b) = (self.clone(), method.to_string(), path.to_string(), body.to_vec());
        let h: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        tokio::task::spawn_blocking(move || {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c.request(&m, &p, &h, &b)
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A JSON request with a bearer key.
    pub async fn json(&mut self, method: &str, path: &str, key: &str, body: &serde_json::Value) -> Response {
        let auth = format!("Bearer {key}");
        let text = body.to_string();
        self.send(method, path, &[("authorization", &auth), ("content-type", "application/json")], text.as_bytes())
            .await
    }

    pub async fn get(&mut self, path: &str, key: &str) -> Response {
        let auth = format!("Bearer {key}");
        self.send("GET", path, &[("authorization", &auth)], b"").await
    }
}

/// Debian's Chromium, which the browser tests drive with Playwright.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether the browser tests can run here (Playwright for Python importable,
/// Debian's Chromium installed). Without them a test skips with a message
/// locally; with `CI` set this fails instead, so CI never skips silently.
pub fn browser_available(test: &str) -> bool {
    let probe = std::process::Command::new("python3").args(["-c", "import playwright.sync_api"]).output();
    let have_playwright = probe.as_ref().is_ok_and(|o| o.status.success());
    let have_chromium = std::path::Path::new(CHROMIUM).exists();
    if have_playwright && have_chromium {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the browser test cannot run: playwright importable: {have_playwright} ({probe:?}), \
         {CHROMIUM} present: {have_chromium}"
    );
    eprintln!(
        "SKIPPED {test}: needs `python3 -m pip install playwright` and Debian's `apt-get install chromium` \
         ({CHROMIUM}); .ci/run installs both"
    );
    false
}
