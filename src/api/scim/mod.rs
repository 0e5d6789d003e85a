//! SCIM 2.0 provisioning (RFC 7643/7644) under `/scim/v2/{tenant}/`: an
//! identity provider (Okta, Entra ID) pushes users and groups; Holdfast
//! keeps them as users, groups and membership tuples, so a group bound to
//! a role in Holdfast grants it to whoever the IdP puts in the group.
//!
//! - A SCIM user *is* a Holdfast user (`user:<id>`, the SCIM `id`); its
//!   SCIM attributes are the object's attributes (`scim`), `active: false`
//!   suspends it. A SCIM group is a Holdfast group; members are
//!   `group:<id>#member@user:<id>` (or `@group:<id>`) tuples.
//! - Every write is one atomic [`AppState::write`]: it lands in the change
//!   feed with the actor `scim:<token id>`.
//! - Authentication: a per-tenant SCIM token ([`crate::service::scim_tokens`]),
//!   created with `POST /v1/tenants/{tenant}/scim-tokens` ([`tokens`]).
//! - Every answer is `application/scim+json`; errors use the SCIM error
//!   shape (`urn:ietf:params:scim:api:messages:2.0:Error`).

pub mod filter;
pub mod patch;
mod resources;
pub mod schema;
mod tokens;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::model::validate_id;

/// The media type of every SCIM answer.
pub const SCIM_JSON: &str = "application/scim+json";
/// Largest page a list answers.
pub const MAX_RESULTS: usize = 1000;

pub fn routes() -> Router<AppState> {
    let inner = Router::new()
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(schemas))
        .route("/Schemas/{id}", get(schema_by_id))
        .merge(resources::routes())
        .fallback(unknown)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new().nest("/scim/v2/{tenant}", inner).merge(tokens::routes())
}

// ------------------------------------------------------------------- errors

/// A SCIM error answer (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type, detail: detail.into() }
    }

    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ScimError::new(StatusCode::NOT_FOUND, None, format!("{what} `{id}` does not exist"))
    }

    pub fn body(&self) -> Value {
        let mut v = json!({"schemas": [schema::ERROR_SCHEMA], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t);
        }
        v
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut res = scim_response(self.status, &self.body());
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        let scim_type = match e.code {
            ErrorCode::BadJson => Some("invalidSyntax"),
            ErrorCode::InvalidParameter
            | ErrorCode::InvalidRequest
            | ErrorCode::InvalidTuple
            | ErrorCode::SchemaViolation
            | ErrorCode::UnknownRole
            | ErrorCode::UnknownApplication => Some("invalidValue"),
            ErrorCode::BatchTooLarge => Some("tooMany"),
            _ => None,
        };
        // SCIM answers 400 for what the rest of the API calls 422.
        let status =
            if e.code.status() == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { e.code.status() };
        ScimError::new(status, scim_type, e.message)
    }
}

impl From<crate::service::WriteError> for ScimError {
    fn from(e: crate::service::WriteError) -> Self {
        ScimError::from(ApiError::from(e))
    }
}

impl From<patch::PatchError> for ScimError {
    fn from(e: patch::PatchError) -> Self {
        ScimError::bad(e.scim_type, e.detail)
    }
}

/// A JSON answer with `Content-Type: application/scim+json`.
pub fn scim_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))], bytes).into_response()
}

async fn unknown(uri: axum::http::Uri) -> ScimError {
    ScimError::new(StatusCode::NOT_FOUND, None, format!("no SCIM endpoint at `{}`", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ScimError {
    ScimError::new(StatusCode::METHOD_NOT_ALLOWED, None, format!("`{method}` is not allowed on `{}`", uri.path()))
}

// --------------------------------------------------------------- extractors

/// An identity provider authenticated by a SCIM token of the addressed tenant.
#[derive(Debug, Clone)]
pub struct ScimCaller {
    pub tenant: String,
    pub token_id: String,
}

impl ScimCaller {
    /// The change log's actor: `scim:<token id>`.
    pub fn actor(&self) -> String {
        format!("scim:{}", self.token_id)
    }
}

impl FromRequestParts<AppState> for ScimCaller {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let unauth = |m: &str| ScimError::new(StatusCode::UNAUTHORIZED, None, m);
        let tenant = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params.iter().find(|(k, _)| *k == "tenant").map(|(_, v)| v.to_string()),
            Err(_) => None,
        }
        .ok_or_else(|| ScimError::bad("invalidValue", "no tenant in the path"))?;
        validate_id(&tenant).map_err(|m| ScimError::bad("invalidValue", format!("tenant `{tenant}` {m}")))?;
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauth("missing `Authorization: Bearer <SCIM token>` header"))?
            .to_str()
            .map_err(|_| unauth("the `Authorization` header is not text"))?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauth("expected `Authorization: Bearer <SCIM token>`"))?;
        let t =
            state.holdfast().tenant(&tenant).ok_or_else(|| unauth("the SCIM token is not valid for this tenant"))?;
        let token_id = t
            .read()
            .scim_tokens()
            .authenticate(token)
            .map(str::to_string)
            .ok_or_else(|| unauth("the SCIM token is not valid for this tenant"))?;
        Ok(ScimCaller { tenant, token_id })
    }
}

/// A SCIM request body: a JSON object sent as `application/scim+json` or
/// `application/json`.
pub struct ScimBody(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ScimError> {
        let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(mime == "application/json" || mime == SCIM_JSON) {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "expected `Content-Type: application/scim+json` (or `application/json`)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    "request body is larger than the limit of this server",
                )
            } else {
                ScimError::bad("invalidSyntax", "cannot read the request body")
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) => Ok(ScimBody(o)),
            Ok(_) => Err(ScimError::bad("invalidSyntax", "the request body is not a JSON object")),
            Err(e) => Err(ScimError::bad("invalidSyntax", format!("request body: {e}"))),
        }
    }
}

/// This tenant's SCIM base URL (for `meta.location` and `$ref`).
pub fn base_url(state: &AppState, tenant: &str) -> String {
    format!("{}/scim/v2/{tenant}", state.config().issuer.trim_end_matches('/'))
}

fn list_response(items: Vec<Value>) -> Value {
    json!({
        "schemas": [schema::LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

// ---------------------------------------------------------------- discovery

async fn service_provider_config(State(state): State<AppState>, caller: ScimCaller) -> Response {
    scim_response(StatusCode::OK, &schema::service_provider_config(&base_url(&state, &caller.tenant), MAX_RESULTS))
}

async fn resource_types(State(state): State<AppState>, caller: ScimCaller) -> Response {
    scim_response(StatusCode::OK, &list_response(schema::resource_types(&base_url(&state, &caller.tenant))))
}

async fn resource_type(
    State(state): State<AppState>,
    caller: ScimCaller,
    axum::extract::Path((_, id)): axum::extract::Path<(String, String)>,
) -> Result<Response, ScimError> {
    schema::resource_types(&base_url(&state, &caller.tenant))
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .map(|r| scim_response(StatusCode::OK, &r))
        .ok_or_else(|| ScimError::not_found("resource type", &id))
}

async fn schemas(State(state): State<AppState>, caller: ScimCaller) -> Response {
    scim_response(StatusCode::OK, &list_response(schema::schemas(&base_url(&state, &caller.tenant))))
}

async fn schema_by_id(
    State(state): State<AppState>,
    caller: ScimCaller,
    axum::extract::Path((_, id)): axum::extract::Path<(String, String)>,
) -> Result<Response, ScimError> {
    schema::schemas(&base_url(&state, &caller.tenant))
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .map(|r| scim_response(StatusCode::OK, &r))
        .ok_or_else(|| ScimError::not_found("schema", &id))
}
