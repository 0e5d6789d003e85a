//! The one error shape of the API, `{"error": {"code", "message"}}`, the
//! explicit table from stable code to HTTP status, and the extractors whose
//! rejections use that shape (JSON bodies, path and query parameters).
//!
//! Messages are lowercase, name the offending input in backticks and never
//! leak Rust type names; the details of a 500 are logged, not returned.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::query::QueryError;
use crate::service::StoreError;
use crate::service::WriteError;

/// Stable error codes. Their statuses are [`ErrorCode::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not JSON (syntax error, truncated).
    BadJson,
    /// A query or path parameter is malformed (tenant name, page token, revision).
    InvalidParameter,
    Unauthenticated,
    Forbidden,
    UnknownTenant,
    /// A named role, application, subject or binding does not exist.
    NotFound,
    UnknownRoute,
    MethodNotAllowed,
    PreconditionFailed,
    /// A role or application is still bound.
    InUse,
    /// `at_least` names a revision this node has not reached.
    RevisionNotVisible,
    BodyTooLarge,
    BatchTooLarge,
    UnsupportedMediaType,
    /// Well-formed JSON of the wrong shape: wrong types, unknown or missing fields.
    InvalidRequest,
    /// A tuple (text or object form) or object reference that does not parse.
    InvalidTuple,
    /// A tuple the relationship schema rejects.
    SchemaViolation,
    /// A binding or grant names a role that is not defined.
    UnknownRole,
    /// A binding or `supports` names an application that is not defined.
    UnknownApplication,
    /// An evaluation exceeded its limits (groups, bindings).
    LimitExceeded,
    /// None of the requested scopes may go into a token for the subject.
    InvalidScope,
    /// A policy file with error findings (listed in the error's `findings`).
    InvalidPolicy,
    /// The caller already has as many requests in flight as it may.
    TooManyRequests,
    /// A binding's conditions are malformed or can never hold (empty IP
    /// allow-list, inverted validity window, unknown keys).
    InvalidConditions,
    /// An apply would remove most of the tenant; it needs `allow_mass_removal`.
    MassRemoval,
    /// The change feed no longer holds changes that old (memory-only instances).
    ChangesTruncated,
    /// An ID token failed verification (the error's `reason` says why).
    InvalidToken,
    Internal,
    StorageError,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 29] = [
        ErrorCode::BadJson,
        ErrorCode::InvalidParameter,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::UnknownTenant,
        ErrorCode::NotFound,
        ErrorCode::UnknownRoute,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PreconditionFailed,
        ErrorCode::InUse,
        ErrorCode::RevisionNotVisible,
        ErrorCode::BodyTooLarge,
        ErrorCode::BatchTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidTuple,
        ErrorCode::SchemaViolation,
        ErrorCode::UnknownRole,
        ErrorCode::UnknownApplication,
        ErrorCode::LimitExceeded,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidPolicy,
        ErrorCode::TooManyRequests,
        ErrorCode::InvalidConditions,
        ErrorCode::MassRemoval,
        ErrorCode::ChangesTruncated,
        ErrorCode::InvalidToken,
        ErrorCode::Internal,
        ErrorCode::StorageError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownTenant => "unknown_tenant",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnknownRoute => "unknown_route",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::InUse => "in_use",
            ErrorCode::RevisionNotVisible => "revision_not_visible",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidTuple => "invalid_tuple",
            ErrorCode::SchemaViolation => "schema_violation",
            ErrorCode::UnknownRole => "unknown_role",
            ErrorCode::UnknownApplication => "unknown_application",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidPolicy => "invalid_policy",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::InvalidConditions => "invalid_conditions",
            ErrorCode::MassRemoval => "mass_removal",
            ErrorCode::ChangesTruncated => "changes_truncated",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::Internal => "internal",
            ErrorCode::StorageError => "storage_error",
        }
    }

    /// The status table. Every code has exactly one status.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadJson | ErrorCode::InvalidParameter => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::InvalidScope => StatusCode::FORBIDDEN,
            ErrorCode::UnknownTenant | ErrorCode::NotFound | ErrorCode::UnknownRoute => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PreconditionFailed
            | ErrorCode::InUse
            | ErrorCode::RevisionNotVisible
            | ErrorCode::MassRemoval => StatusCode::CONFLICT,
            ErrorCode::ChangesTruncated => StatusCode::GONE,
            ErrorCode::BodyTooLarge | ErrorCode::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidRequest
            | ErrorCode::InvalidTuple
            | ErrorCode::SchemaViolation
            | ErrorCode::UnknownRole
            | ErrorCode::UnknownApplication
            | ErrorCode::LimitExceeded
            | ErrorCode::InvalidConditions
            | ErrorCode::InvalidPolicy
            | ErrorCode::InvalidToken => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::StorageError => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// A stable sub-code (`invalid_token`'s `reason`: `expired`...).
    pub reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), reason: None }
    }

    /// A 422 `invalid_token` with its `reason`.
    pub fn invalid_token(e: &crate::model::oidc::TokenError) -> Self {
        ApiError { code: ErrorCode::InvalidToken, message: e.to_string(), reason: Some(e.reason()) }
    }

    /// A 500 whose detail is logged and not returned.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error; see the server log")
    }

    pub fn unknown_tenant(tenant: &str) -> Self {
        ApiError::new(ErrorCode::UnknownTenant, format!("tenant `{tenant}` does not exist"))
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(ErrorCode::NotFound, format!("{what} `{id}` does not exist"))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    pub fn parameter(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::InvalidParameter, message)
    }

    /// The JSON body, `{"error": {"code", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"error": {"code": self.code.as_str(), "message": self.message}});
        if let Some(r) = self.reason {
            v["error"]["reason"] = r.into();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Body {
            error: Inner { code: self.code.as_str(), message: &self.message, reason: self.reason },
        })
        .unwrap_or_else(|_| b"{\"error\":{\"code\":\"internal\",\"message\":\"internal error\"}}".to_vec());
        let mut res =
            (self.code.status(), [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body)
                .into_response();
        if self.code == ErrorCode::Unauthenticated {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        use crate::model::schema::SchemaError;
        let e = match e {
            WriteError::Store(s) => return s.into(),
            other => other,
        };
        let code = match &e {
            WriteError::Schema(SchemaError::UnknownRole { .. }) | WriteError::UnknownRole(..) => ErrorCode::UnknownRole,
            WriteError::Schema(_) => ErrorCode::SchemaViolation,
            WriteError::UnknownApplication(..) => ErrorCode::UnknownApplication,
            WriteError::ConditionsOnNonBinding(_) | WriteError::BadObject(..) => ErrorCode::InvalidRequest,
            WriteError::Precondition { .. } => ErrorCode::PreconditionFailed,
            WriteError::InUse(..) => ErrorCode::InUse,
            WriteError::TooLarge(..) => ErrorCode::BatchTooLarge,
            WriteError::InvalidConditions { .. } => ErrorCode::InvalidConditions,
            WriteError::IdentityProvider(_) => ErrorCode::InvalidRequest,
            WriteError::Store(_) => ErrorCode::StorageError,
            WriteError::NotServed(_) => ErrorCode::UnknownTenant,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::service::ServiceError> for ApiError {
    fn from(e: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError;
        match e {
            ServiceError::Store(s) => s.into(),
            ServiceError::ChangesTruncated { .. } => ApiError::new(ErrorCode::ChangesTruncated, e.to_string()),
            ServiceError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Precondition(m) => ApiError::invalid(m),
            // Another replica committed to the tenant between this one's
            // read and its commit (a read-modify-write is not retried).
            e @ StoreError::Conflict { .. } => {
                ApiError::new(ErrorCode::PreconditionFailed, format!("{e}; retry the request"))
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(ErrorCode::StorageError, "the store is unavailable; see the server log")
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::BadSubject { .. } => ApiError::invalid(e.to_string()),
            QueryError::Engine(_) => ApiError::new(ErrorCode::LimitExceeded, e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("blocking task failed: {e}"))
    }
}

/// Runs blocking work (fsyncing writes, explain, listings) off the async
/// threads; a panic in it answers 500.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

// ---------------------------------------------------------------- extractors

/// A JSON request body. Rejections: no `application/json` content type 415
/// `unsupported_media_type`, too large 413 `body_too_large`, not JSON 400
/// `bad_json`, wrong types / unknown or missing fields 422 `invalid_request`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

fn is_json(parts: &Parts) -> bool {
    let Some(ct) = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses a JSON object with the API's error mapping. Every request body
/// of the API is an object: an array, which serde would read as the
/// struct's fields in order, is refused (422 `invalid_request`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(_) => ApiError::invalid("request body: expected a JSON object, found an array"),
            Err(e) => ApiError::new(ErrorCode::BadJson, format!("request body: {e}")),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Data => ErrorCode::InvalidRequest,
            Category::Syntax | Category::Eof | Category::Io => ErrorCode::BadJson,
        };
        ApiError::new(code, format!("request body: {e}"))
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        if !is_json(&parts) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a request body with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::BodyTooLarge, "request body is larger than the limit of this server")
            } else {
                ApiError::new(ErrorCode::BadJson, format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Path parameters; a malformed one answers 400 `invalid_parameter`.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ApiError::parameter(format!("path: {}", e.body_text())))
    }
}

/// Query parameters; a malformed or unknown one answers 400 `invalid_parameter`.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::parameter(e.body_text().to_lowercase()))
    }
}

/// Fallback for unknown paths.
pub async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::UnknownRoute, format!("no route for `{}`", uri.path()))
}

/// Fallback for a known path with another method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("`{method}` is not allowed on `{}`", uri.path()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let table: Vec<(&str, u16)> = ErrorCode::ALL.iter().map(|c| (c.as_str(), c.status().as_u16())).collect();
        assert_eq!(
            table,
            vec![
                ("bad_json", 400),
                ("invalid_parameter", 400),
                ("unauthenticated", 401),
                ("forbidden", 403),
                ("unknown_tenant", 404),
                ("not_found", 404),
                ("unknown_route", 404),
                ("method_not_allowed", 405),
                ("precondition_failed", 409),
                ("in_use", 409),
                ("revision_not_visible", 409),
                ("body_too_large", 413),
                ("batch_too_large", 413),
                ("unsupported_media_type", 415),
                ("invalid_request", 422),
                ("invalid_tuple", 422),
                ("schema_violation", 422),
                ("unknown_role", 422),
                ("unknown_application", 422),
                ("limit_exceeded", 422),
                ("invalid_scope", 403),
                ("invalid_policy", 422),
                ("too_many_requests", 429),
                ("invalid_conditions", 422),
                ("mass_removal", 409),
                ("changes_truncated", 410),
                ("invalid_token", 422),
                ("internal", 500),
                ("storage_error", 503),
            ]
        );
    }

    #[test]
    fn json_errors_are_classified() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct X {
            a: u32,
        }
        assert_eq!(parse_json::<X>(b"{\"a\":").unwrap_err().code, ErrorCode::BadJson);
        assert_eq!(parse_json::<X>(b"{a}").unwrap_err().code, ErrorCode::BadJson);
        let e = parse_json::<X>(b"{\"a\":\"x\"}").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = parse_json::<X>(b"{\"a\":1,\"b\":2}").unwrap_err();
        assert!(e.message.contains("unknown field `b`"), "{}", e.message);
        assert_eq!(parse_json::<X>(b"{}").unwrap_err().code, ErrorCode::InvalidRequest);
        let e = parse_json::<X>(b" [1]").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::InvalidRequest, "request body: expected a JSON object, found an array")
        );
        assert_eq!(parse_json::<X>(b"[1").unwrap_err().code, ErrorCode::BadJson);
    }

    #[test]
    fn unauthenticated_carries_the_challenge() {
        let r = ApiError::new(ErrorCode::Unauthenticated, "x").into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
