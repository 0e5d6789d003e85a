//! A body over the limit gets its 413 answer *before* the connection
//! closes. Answering early and closing makes a client that writes its whole
//! body before reading (Python `http.client`, curl with small buffers) fail
//! with a broken pipe instead of seeing the error; so when `Content-Length`
//! says the body is too large, the body is read and discarded (up to a bound
//! and a time limit) and then refused.

use std::pin::Pin;
use std::time::Duration;

use axum::body::HttpBody;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use super::AppState;

/// Most bytes read and thrown away to deliver a 413; a larger body gets the
/// 413 at once, and the connection closes.
const MAX_DRAIN: u64 = 64 << 20;
/// Longest time spent draining one body.
const DRAIN_TIME: Duration = Duration::from_secs(10);

pub async fn refuse_oversized(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config().body_limit as u64;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let Some(len) = declared.filter(|&l| l > limit) else {
        return next.run(req).await;
    };
    if len <= MAX_DRAIN {
        let mut body = req.into_body();
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(_)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {}
        })
        .await;
    }
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("request body of {len} bytes is larger than the limit of this server ({limit} bytes)"),
    )
    .into_response()
}
