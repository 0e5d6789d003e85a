//! A concurrency limit per caller, so one caller cannot starve the rest.
//!
//! A caller is the credential its bearer key authenticates as; every other
//! request (no key, a wrong key, OAuth clients with Basic credentials)
//! shares one bucket. A caller may have at most
//! [`super::ApiConfig::max_in_flight_per_caller`] requests in flight; one
//! more is answered at once with 429 `too_many_requests` and `Retry-After:
//! 1`, and never queues behind its own backlog. `/healthz` and `/metrics`
//! are not limited. The bucket set is bounded by the configured credentials
//! (plus one), whatever keys callers present.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use super::AppState;

/// The bucket of requests that carry no valid bearer key.
const OTHERS: &str = "";

/// In-flight requests per caller.
#[derive(Debug, Default)]
pub struct InFlight {
    counts: Mutex<HashMap<Arc<str>, usize>>,
}

/// A request counted in its caller's bucket until dropped.
pub struct Slot {
    table: AppState,
    caller: Arc<str>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.table.in_flight().counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
        }
    }
}

impl InFlight {
    /// Counts one more request of `caller`, unless it already has `max`.
    fn acquire(&self, state: &AppState, caller: Arc<str>, max: usize) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(Arc::clone(&caller)).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { table: state.clone(), caller })
    }

    /// Requests of `caller` in flight now (tests, metrics).
    pub fn current(&self, caller: &str) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).get(caller).copied().unwrap_or(0)
    }
}

/// The bucket of a request: its credential's name, or the shared one.
fn caller(state: &AppState, req: &Request) -> Arc<str> {
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match key.and_then(|k| state.keys().authenticate(k)) {
        Some(cred) => Arc::from(cred.name.as_str()),
        None => Arc::from(OTHERS),
    }
}

/// The middleware.
pub async fn per_caller(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let max = state.config().max_in_flight_per_caller;
    let path = req.uri().path();
    if max == 0 || path == "/healthz" || path == "/readyz" || path == "/metrics" {
        return next.run(req).await;
    }
    let who = caller(&state, &req);
    let Some(slot) = state.in_flight().acquire(&state, who, max) else {
        state.metrics().too_many_requests();
        let message = format!("this caller already has {max} requests in flight; retry when one has finished");
        // An identity provider reads SCIM errors (RFC 7644 §3.12) on /scim.
        let mut res = if path.starts_with("/scim/") {
            super::scim::ScimError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, None, message).into_response()
        } else {
            ApiError::new(ErrorCode::TooManyRequests, message).into_response()
        };
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    };
    let res = next.run(req).await;
    drop(slot);
    res
}
