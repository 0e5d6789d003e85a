//! Questions: check (single and batch, with optional explanation),
//! effective access and who can access. A denial is an answer: HTTP 200.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::TenantRead;
use super::error::{blocking, ApiError, ErrorCode, Json, Path, Query};
use super::wire::{
    page_size, page_token, parse_page_token, AccessQuery, BatchCheckRequest, BatchCheckResponse, BatchResult,
    CheckRequest, CheckResponse, Revision, WhoQuery,
};
use super::{identity, AppState};
use crate::explain;
use crate::model::Timestamp;
use crate::query::{self, EffectiveAccess, StepUp, WhoEntry};

/// Batches this small are evaluated inline, larger ones on the blocking pool.
const INLINE_BATCH: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/check", post(check))
        .route("/v1/tenants/{tenant}/check/batch", post(check_batch))
        .route("/v1/tenants/{tenant}/subjects/{subject}/effective-access", get(effective_access))
        .route("/v1/tenants/{tenant}/effective-access", post(effective_access_of_token))
        .route("/v1/tenants/{tenant}/applications/{application}/access", get(who_can_access))
}

/// The RFC 9470 challenge of a `step_up` answer.
fn step_up_challenge(su: &StepUp) -> Option<HeaderValue> {
    let mut v = format!(
        "Bearer error=\"insufficient_user_authentication\", error_description=\"multi-factor authentication is required for scope {}\", acr_values=\"{}\"",
        su.scope, su.acr_values
    );
    if let Some(secs) = su.max_age {
        v.push_str(&format!(", max_age={secs}"));
    }
    HeaderValue::from_str(&v).ok()
}

async fn check(
    State(state): State<AppState>,
    auth: TenantRead,
    Json(req): Json<CheckRequest>,
) -> Result<Response, ApiError> {
    let revision = state.visible(req.at_least)?;
    let tenant = state.tenant(&auth.tenant)?;
    let ctx = req.context.unwrap_or_default().resolve_with(state.now(), req.attributes);
    let who = identity::request_subject(&state, &auth.tenant, req.subject, req.id_token).await?;
    let (outcome, trace) = if req.explain {
        let ex = blocking(move || {
            let st = tenant.read();
            let mut ex =
                explain::explain_with(st.facts(), &who.subject, &req.application, &req.scope, &ctx, &who.groups)?;
            for b in ex.bindings.iter_mut().filter(|b| b.via.is_none()) {
                b.via = identity::synced_via(&st, &b.path);
            }
            Ok(ex)
        })
        .await?;
        (ex.outcome, Some(ex.bindings))
    } else {
        let st = tenant.read();
        (query::check_with(st.facts(), &who.subject, &req.application, &req.scope, &ctx, &who.groups)?, None)
    };
    state.metrics().decision(outcome.decision);
    let challenge = outcome.step_up.as_ref().and_then(step_up_challenge);
    let mut res = axum::Json(CheckResponse {
        decision: outcome.decision,
        reason: outcome.reason,
        binding: outcome.binding,
        step_up: outcome.step_up,
        trace,
        revision,
    })
    .into_response();
    if let Some(c) = challenge {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, c);
    }
    Ok(res)
}

async fn check_batch(
    State(state): State<AppState>,
    auth: TenantRead,
    Json(req): Json<BatchCheckRequest>,
) -> Result<axum::Json<BatchCheckResponse>, ApiError> {
    let max = state.config().max_batch_checks;
    if req.checks.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("the batch has {} checks (at most {max})", req.checks.len()),
        ));
    }
    let revision = state.visible(req.at_least)?;
    let tenant = state.tenant(&auth.tenant)?;
    let now = state.now();
    let inline = req.checks.len() <= INLINE_BATCH;
    // Each distinct ID token is verified once, before any check runs.
    let mut tokens: std::collections::BTreeMap<String, Result<(String, Vec<String>), ApiError>> = Default::default();
    for t in req.checks.iter().filter_map(|c| c.id_token.as_ref()).chain(req.id_token.as_ref()) {
        if !tokens.contains_key(t) {
            let v = identity::verify(&state, &auth.tenant, t.clone()).await;
            tokens.insert(t.clone(), v);
        }
    }
    if let Some(Err(e)) = req.id_token.as_ref().and_then(|t| tokens.get(t)) {
        return Err(e.clone());
    }
    let batch_token = req.id_token.clone();
    let metrics_state = state.clone();
    let run = move || {
        let st = tenant.read();
        let results = req
            .checks
            .into_iter()
            .map(|c| {
                let ctx = c.context.unwrap_or_default().resolve_with(now, c.attributes);
                let token = match c.id_token.as_ref().or(batch_token.as_ref()).and_then(|t| tokens.get(t)) {
                    None => None,
                    Some(Ok(v)) => Some(v.clone()),
                    Some(Err(e)) => return BatchResult::Error { error: e.body()["error"].take() },
                };
                let who = match identity::agree(c.subject, token) {
                    Ok(w) => w,
                    Err(e) => return BatchResult::Error { error: e.body()["error"].take() },
                };
                match query::check_with(st.facts(), &who.subject, &c.application, &c.scope, &ctx, &who.groups) {
                    Ok(o) => {
                        metrics_state.metrics().decision(o.decision);
                        BatchResult::Decision {
                            decision: o.decision,
                            reason: o.reason,
                            binding: o.binding,
                            step_up: o.step_up,
                        }
                    }
                    Err(e) => BatchResult::Error { error: ApiError::from(e).body()["error"].take() },
                }
            })
            .collect();
        Ok(BatchCheckResponse { results, revision })
    };
    let out = if inline { run()? } else { blocking(run).await? };
    Ok(axum::Json(out))
}

/// `now` from a query parameter, else the server clock.
fn query_now(state: &AppState, now: Option<&str>) -> Result<Timestamp, ApiError> {
    match now {
        Some(t) => Timestamp::parse(t).map_err(|m| ApiError::parameter(format!("`now`: {m}"))),
        None => Ok(state.now()),
    }
}

#[derive(Serialize)]
pub(crate) struct AccessOut {
    #[serde(flatten)]
    pub access: EffectiveAccess,
    pub revision: Revision,
}

/// Effective access of `subject` in `tenant` (shared with the seed API).
pub(crate) async fn access_of(
    state: &AppState,
    tenant: &str,
    subject: String,
    q: AccessQuery,
) -> Result<AccessOut, ApiError> {
    access_with(state, tenant, subject, q, Vec::new()).await
}

/// [`access_of`] with the request-only groups of a verified ID token
/// (their paths are tagged `via: token`).
async fn access_with(
    state: &AppState,
    tenant: &str,
    subject: String,
    q: AccessQuery,
    groups: Vec<String>,
) -> Result<AccessOut, ApiError> {
    let include_expired = match q.include.as_deref() {
        None => false,
        Some("expired") => true,
        Some(other) => return Err(ApiError::parameter(format!("`include={other}`: the only value is `expired`"))),
    };
    let now = query_now(state, q.now.as_deref())?;
    let revision = state.visible(q.at_least)?;
    let tenant = state.tenant(tenant)?;
    let access = blocking(move || {
        let st = tenant.read();
        let mut access = query::effective_access_with(st.facts(), &subject, now, include_expired, &groups)?;
        // Memberships a provider's sync created show their source.
        for e in access.entries.iter_mut().filter(|e| e.via.is_none()) {
            e.via = identity::synced_via(&st, &e.path);
        }
        Ok(access)
    })
    .await?;
    Ok(AccessOut { access, revision })
}

async fn effective_access(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, subject)): Path<(String, String)>,
    Query(q): Query<AccessQuery>,
) -> Result<axum::Json<AccessOut>, ApiError> {
    access_of(&state, &auth.tenant, subject, q).await.map(axum::Json)
}

/// `POST .../effective-access` `{id_token, subject?, include?, now?, at_least?}`:
/// the effective access of an ID token's user with the token's groups
/// counted for this request only (nothing is stored). A body, not a query
/// string, so the token never lands in an access log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessOfTokenIn {
    id_token: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    include: Option<String>,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    at_least: Option<Revision>,
}

async fn effective_access_of_token(
    State(state): State<AppState>,
    auth: TenantRead,
    Json(req): Json<AccessOfTokenIn>,
) -> Result<axum::Json<AccessOut>, ApiError> {
    let who = identity::request_subject(&state, &auth.tenant, req.subject, Some(req.id_token)).await?;
    let q = AccessQuery { include: req.include, now: req.now, at_least: req.at_least };
    access_with(&state, &auth.tenant, who.subject, q, who.groups).await.map(axum::Json)
}

#[derive(Serialize)]
struct WhoOut {
    application: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    entries: Vec<WhoEntry>,
    /// Pass back as `page_token`; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
    revision: Revision,
}

async fn who_can_access(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, application)): Path<(String, String)>,
    Query(q): Query<WhoQuery>,
) -> Result<axum::Json<WhoOut>, ApiError> {
    let now = query_now(&state, q.now.as_deref())?;
    let after = q.page_token.as_deref().map(parse_page_token).transpose()?;
    let size = page_size(q.page_size, 100, 1000);
    let revision = state.visible(q.at_least)?;
    let tenant = state.tenant(&auth.tenant)?;
    let app = application.clone();
    let page = blocking(move || {
        let st = tenant.read();
        Ok(query::who_can_access(st.facts(), &app, q.scope.as_deref(), now, after.as_deref(), size)?)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("application", &application))?;
    Ok(axum::Json(WhoOut {
        application: page.application,
        scope: page.scope,
        entries: page.entries,
        next_page_token: page.next_page_token.as_deref().map(page_token),
        revision,
    }))
}
