//! Request metrics (Prometheus text), request tracing, and the layer that
//! turns a handler panic into a 500 in the error shape.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::query::Decision;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0];

#[derive(Default)]
struct RouteStats {
    by_status: Vec<(u16, u64)>,
    /// Cumulative counts per bucket are computed when rendering.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_secs: f64,
}

/// Counters of one API instance.
#[derive(Default)]
pub struct Metrics {
    routes: Mutex<HashMap<String, RouteStats>>,
    decisions: [AtomicU64; 3],
}

impl Metrics {
    pub fn new() -> Self {
        Metrics::default()
    }

    fn record(&self, route: &str, status: u16, secs: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = match routes.get_mut(route) {
            Some(s) => s,
            None => routes.entry(route.to_string()).or_default(),
        };
        match stats.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => stats.by_status.push((status, 1)),
        }
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            stats.buckets[i] += 1;
        }
        stats.count += 1;
        stats.sum_secs += secs;
    }

    /// Counts one check decision.
    pub fn decision(&self, d: Decision) {
        let i = match d {
            Decision::Allow => 0,
            Decision::StepUp => 1,
            Decision::Deny => 2,
        };
        self.decisions[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, sorted (deterministic).
    pub fn render(&self, revision: u64) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<&String> = routes.keys().collect();
        names.sort();
        out.push_str("# HELP holdfast_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE holdfast_http_requests_total counter\n");
        for name in &names {
            let mut by_status = routes[*name].by_status.clone();
            by_status.sort();
            for (status, n) in by_status {
                let _ = writeln!(out, "holdfast_http_requests_total{{route=\"{name}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str("# HELP holdfast_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE holdfast_http_request_duration_seconds histogram\n");
        for name in &names {
            let s = &routes[*name];
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(s.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "holdfast_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"{b}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "holdfast_http_request_duration_seconds_bucket{{route=\"{name}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "holdfast_http_request_duration_seconds_sum{{route=\"{name}\"}} {}", s.sum_secs);
            let _ = writeln!(out, "holdfast_http_request_duration_seconds_count{{route=\"{name}\"}} {}", s.count);
        }
        out.push_str("# HELP holdfast_check_decisions_total Check decisions (single and batch).\n");
        out.push_str("# TYPE holdfast_check_decisions_total counter\n");
        for (i, d) in ["allow", "step_up", "deny"].iter().enumerate() {
            let n = self.decisions[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "holdfast_check_decisions_total{{decision=\"{d}\"}} {n}");
        }
        out.push_str("# HELP holdfast_revision The last revision applied.\n");
        out.push_str("# TYPE holdfast_revision gauge\n");
        let _ = writeln!(out, "holdfast_revision {revision}");
        out
    }
}

/// Records route, status and latency of every request and traces it (ids
/// only: method, route template, status, latency; never headers or bodies).
/// A panic in a handler answers 500 `internal` and is logged; the server
/// keeps running. One layer for both keeps the per-request cost low.
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
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
    fn metrics_render_sorted_prometheus_text() {
        let m = Metrics::new();
        m.record("/b", 200, 0.0002);
        m.record("/a", 404, 0.002);
        m.record("/a", 200, 0.0001);
        m.decision(Decision::Allow);
        let text = m.render(7);
        let a = text.find("route=\"/a\",status=\"200\"").unwrap();
        let b = text.find("route=\"/b\",status=\"200\"").unwrap();
        assert!(a < b, "{text}");
        assert!(text.contains("holdfast_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.0001\"} 1"), "{text}");
        assert!(text.contains("holdfast_http_request_duration_seconds_count{route=\"/a\"} 2"), "{text}");
        assert!(text.contains("holdfast_check_decisions_total{decision=\"allow\"} 1"), "{text}");
        assert!(text.ends_with("holdfast_revision 7\n"), "{text}");
    }
}
