//! Shared by the API tests: the worked example behind a store, fixed keys
//! and clock, a real server on 127.0.0.1:0, and a tiny HTTP/1.1 client.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{self, Access, ApiConfig, AppState, Keys};
use holdfast::model::Timestamp;
use holdfast::policy;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
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

/// A keep-alive HTTP/1.1 connection (Content-Length bodies only).
/// It reconnects after a response that closed the connection (the server
/// closes it when it answers before reading the whole body, e.g. a 401).
pub struct Client {
    addr: SocketAddr,
    conn: BufReader<TcpStream>,
    closed: bool,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client { addr, conn: BufReader::new(TcpStream::connect(addr).await.unwrap()), closed: false }
    }

    pub async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        if self.closed {
            *self = Client::connect(self.addr).await;
        }
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // The server may have closed an idle connection (after answering a
        // request before reading its body): reconnect once.
        for attempt in 0..2 {
            match self.exchange(head.as_bytes(), body).await {
                Ok(r) => return r,
                Err(e) if attempt == 0 => {
                    let _ = e;
                    *self = Client::connect(self.addr).await;
                }
                Err(e) => panic!("{method} {path}: {e}"),
            }
        }
        unreachable!()
    }

    async fn exchange(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<Response> {
        let stream = self.conn.get_mut();
        stream.write_all(head).await?;
        stream.write_all(body).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        if self.conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 =
            line.split_whitespace().nth(1).unwrap_or_else(|| panic!("bad status line {line:?}")).parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.conn.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or_else(|| panic!("no content-length in {headers:?}"));
        let mut body = vec![0; len];
        self.conn.read_exact(&mut body).await.unwrap();
        self.closed = headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
        Ok(Response { status, headers, body })
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
