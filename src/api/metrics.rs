//! Request metrics (Prometheus text, through `prometheus-client`), request
//! tracing, and the layer that turns a handler panic into a 500 in the
//! error shape.
//!
//! Counters and gauges are atomics; a route's histogram has its own small
//! lock, so requests to different routes never wait on each other. The
//! process metrics (`process_*`, as the Prometheus client libraries name
//! them) are read from `/proc/self` at each scrape, and are absent where
//! there is no `/proc`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::query::Decision;

/// The `Content-Type` of [`Metrics::render`] (Prometheus text, 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Counters of one API instance.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    too_many: Counter,
    /// allow, step_up, deny.
    decisions: [Counter; 3],
    revision: Gauge<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RouteStatus, Counter>::default();
        registry.register("holdfast_http_requests", "HTTP requests by route and status", requests.clone());
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("holdfast_http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        let in_flight = Gauge::default();
        registry.register("holdfast_http_requests_in_flight", "HTTP requests being served now", in_flight.clone());
        let too_many = Counter::default();
        registry.register(
            "holdfast_http_too_many_requests",
            "Requests answered 429 by the per-caller concurrency limit",
            too_many.clone(),
        );
        let family = Family::<DecisionLabel, Counter>::default();
        let decisions = [Decision::Allow, Decision::StepUp, Decision::Deny]
            .map(|d| family.get_or_create_owned(&DecisionLabel { decision: d.as_str() }));
        registry.register("holdfast_check_decisions", "Check decisions (single and batch)", family);
        let revision = Gauge::<u64, AtomicU64>::default();
        registry.register("holdfast_revision", "The last revision applied", revision.clone());
        registry.register_collector(Box::new(ProcessCollector::new()));
        Metrics { registry, requests, latency, in_flight, too_many, decisions, revision }
    }

    fn record(&self, route: &str, status: u16, secs: f64) {
        self.requests.get_or_create(&RouteStatus { route: route.to_string(), status }).inc();
        self.latency.get_or_create(&RouteLabel { route: route.to_string() }).observe(secs);
    }

    /// Counts one check decision.
    pub fn decision(&self, d: Decision) {
        let i = match d {
            Decision::Allow => 0,
            Decision::StepUp => 1,
            Decision::Deny => 2,
        };
        self.decisions[i].inc();
    }

    /// Counts one request refused by the per-caller limit ([`super::limit`]).
    pub fn too_many_requests(&self) {
        self.too_many.inc();
    }

    /// The Prometheus text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self, revision: u64) -> String {
        self.revision.set(revision);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts a request in flight until dropped (also when the client hangs up
/// and the request's future is dropped).
struct InFlightGuard<'a>(&'a Gauge);

impl<'a> InFlightGuard<'a> {
    fn enter(g: &'a Gauge) -> Self {
        g.inc();
        InFlightGuard(g)
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `process_*` metrics from `/proc/self`, read at each scrape.
#[derive(Debug)]
struct ProcessCollector {
    /// Seconds since the epoch; fixed for the life of the process.
    start_time: Option<f64>,
}

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, 100 on every
/// Linux architecture (the Prometheus Go client's procfs assumes the same).
const USER_HZ: f64 = 100.0;

/// The fields of `/proc/self/stat` after the command name; index 0 is the
/// stat(5) field 3 (`state`).
fn proc_stat() -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A field of stat(5) by its 1-based number.
fn stat_field(fields: &[String], n: usize) -> Option<f64> {
    fields.get(n.checked_sub(3)?)?.parse().ok()
}

/// A `kB` line of `/proc/self/status`, in bytes.
fn status_bytes(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The soft limit of open files (`unlimited` is absent).
fn max_fds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

impl ProcessCollector {
    fn new() -> Self {
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse::<f64>().ok()));
        let started = proc_stat().and_then(|f| stat_field(&f, 22));
        ProcessCollector { start_time: boot.zip(started).map(|(b, ticks)| b + ticks / USER_HZ) }
    }
}

fn gauge<T: prometheus_client::encoding::EncodeGaugeValue + Clone>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: Option<T>,
) -> Result<(), std::fmt::Error> {
    let Some(v) = v else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, unit, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stat = proc_stat();
        let field = |n| stat.as_deref().and_then(|f| stat_field(f, n));
        if let (Some(user), Some(system)) = (field(14), field(15)) {
            let c = ConstCounter::new((user + system) / USER_HZ);
            let help = "Total user and system CPU time spent in seconds.";
            c.encode(enc.encode_descriptor("process_cpu", help, Some(&Unit::Seconds), c.metric_type())?)?;
        }
        let rss = status_bytes("VmRSS");
        gauge(&mut enc, "process_resident_memory", "Resident memory size in bytes.", Some(&Unit::Bytes), rss)?;
        let vsize = field(23).map(|v| v as u64);
        gauge(&mut enc, "process_virtual_memory", "Virtual memory size in bytes.", Some(&Unit::Bytes), vsize)?;
        let fds = std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
        gauge(&mut enc, "process_open_fds", "Number of open file descriptors.", None, fds)?;
        gauge(&mut enc, "process_max_fds", "Maximum number of open file descriptors.", None, max_fds())?;
        let threads = field(20).map(|v| v as u64);
        gauge(&mut enc, "process_threads", "Number of OS threads in the process.", None, threads)?;
        let help = "Start time of the process since unix epoch in seconds.";
        gauge(&mut enc, "process_start_time", help, Some(&Unit::Seconds), self.start_time)
    }
}

/// Records route, status and latency of every request and traces it (ids
/// only: method, route template, status, latency; never headers or bodies).
/// A panic in a handler answers 500 `internal` and is logged; the server
/// keeps running. One layer for both keeps the per-request cost low.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let in_flight = InFlightGuard::enter(&state.metrics().in_flight);
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route_str = || route.as_ref().map_or("unmatched", |r| r.as_str());
    let res = match CatchUnwind(Box::pin(next.run(req))).await {
        Ok(res) => res,
        Err(msg) => {
            tracing::error!(route = route_str(), panic = %msg, "handler panicked");
            ApiError::new(ErrorCode::Internal, "internal error; see the server log").into_response()
        }
    };
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    state.metrics().record(route_str(), status, elapsed.as_secs_f64());
    drop(in_flight);
    if status >= 500 {
        tracing::warn!(%method, route = route_str(), status, latency_us = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, route = route_str(), status, latency_us = elapsed.as_micros() as u64, "request");
    }
    res
}

/// A future that turns a panic while polling into `Err(message)`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || fut.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text panic payload".into());
                Poll::Ready(Err(msg))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panic_answers_500_in_the_error_shape_and_the_router_keeps_serving() {
        async fn boom() -> &'static str {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            "unreachable"
        }
        let dir = tempfile::tempdir().unwrap();
        let hf = std::sync::Arc::new(crate::service::Holdfast::open(dir.path(), Default::default()).unwrap());
        let state = AppState::new(hf, crate::api::Keys::default());
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe));
        let res = app.clone().oneshot(axum::http::Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 500);
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "internal");
        assert!(!v.to_string().contains("boom"), "panic details are logged, not returned");
        assert!(state.metrics().render(0).contains("route=\"/boom\",status=\"500\"} 1"));
        let res = app.oneshot(axum::http::Request::get("/ok").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), 200);
    }

    #[test]
    fn metrics_render_prometheus_text() {
        let m = Metrics::new();
        m.record("/b", 200, 0.0002);
        m.record("/a", 404, 0.002);
        m.record("/a", 200, 0.0001);
        m.decision(Decision::Allow);
        m.too_many_requests();
        let text = m.render(7);
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        has("# TYPE holdfast_http_requests_total counter");
        has("holdfast_http_requests_total{route=\"/a\",status=\"200\"} 1");
        has("holdfast_http_requests_total{route=\"/a\",status=\"404\"} 1");
        has("holdfast_http_requests_total{route=\"/b\",status=\"200\"} 1");
        has("# TYPE holdfast_http_request_duration_seconds histogram");
        has("holdfast_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.0001\"} 1");
        has("holdfast_http_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2");
        has("holdfast_http_request_duration_seconds_count{route=\"/a\"} 2");
        has("holdfast_http_requests_in_flight 0");
        has("holdfast_http_too_many_requests_total 1");
        has("holdfast_check_decisions_total{decision=\"allow\"} 1");
        has("holdfast_check_decisions_total{decision=\"step_up\"} 0");
        has("holdfast_check_decisions_total{decision=\"deny\"} 0");
        has("holdfast_revision 7");
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no `{name}` in:\n{text}"));
            assert!(value.parse::<f64>().unwrap() >= 0.0, "{name} {value}");
        }
        let start: f64 =
            text.lines().find_map(|l| l.strip_prefix("process_start_time_seconds ")).unwrap().parse().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(start > now - 86_400.0 && start <= now + 1.0, "start {start}, now {now}");
    }

    #[tokio::test]
    async fn requests_in_flight_are_counted_while_served() {
        let dir = tempfile::tempdir().unwrap();
        let hf = std::sync::Arc::new(crate::service::Holdfast::open(dir.path(), Default::default()).unwrap());
        let state = AppState::new(hf, crate::api::Keys::default());
        let seen = state.clone();
        let app = axum::Router::new()
            .route("/m", axum::routing::get(move || async move { seen.metrics().render(0) }))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe));
        let res = app.oneshot(axum::http::Request::get("/m").body(Body::empty()).unwrap()).await.unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.lines().any(|l| l == "holdfast_http_requests_in_flight 1"), "{text}");
        assert!(state.metrics().render(0).lines().any(|l| l == "holdfast_http_requests_in_flight 0"));
    }
}
