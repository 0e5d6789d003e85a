//! The OpenID AuthZEN Authorization API 1.0 over Holdfast's own model, one
//! PDP per tenant at `/v1/tenants/{tenant}` (section numbers below are those
//! of `api/authorization-api-1_0.md`; `C-x` names a section of the
//! certification scenario `certification/authorization-api-1_0-scenario.md`).
//!
//! The mapping (issue 15):
//! - `subject {type, id}`: `user` → `user:{id}`, `service_account` →
//!   `service_account:{id}`; any other type names nobody.
//! - `resource {type, id}`: the application `id` whose `resource_type`
//!   (default `application`) equals `type`.
//! - `action {name}`: a scope.
//! - `context`: the fields of a check's context (`now`, `ip`, `mfa`, parsed
//!   by [`ContextIn`]); every other field is ignored, as unknown fields are
//!   everywhere in a request (C-2.2.9).
//! - `properties` of the subject, resource and action, and the whole
//!   `context` object, are the request's attributes (`subject.<p>`,
//!   `resource.<p>`, `action.<p>`, `context.<p>`) that a binding's
//!   attribute conditions test (C-2.2.4 to C-2.2.7).
//!
//! Every decision is [`query::check`], the one behind `/check`; searches read
//! [`query::who_can_access`], [`query::token_scope`] and `check` — nothing is
//! re-derived here. A step-up is `decision: false` with `context.step_up`
//! (the RFC 9470 parameters). Bodies are read as bytes and parsed here so
//! that every malformed request answers 400 (C-2.4), never 415 or 422.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::auth::TenantRead;
use super::error::{blocking, ApiError, ErrorCode, Path};
use super::resources::resource_type;
use super::wire::{page_size, page_token, parse_page_token, ContextIn};
use super::AppState;
use crate::model::{validate_id, Attributes, Context, ObjectRef, ObjectType};
use crate::query::{self, Decision, StepUp};
use crate::service::TenantState;

/// Answers this small are evaluated inline, larger batches on the blocking pool.
const INLINE_BATCH: usize = 64;
/// Search page size when `page.limit` is absent, and its bound.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// §10.1.4 / C-2.5: the request identifier echoed on the answer.
static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/access/v1/evaluation", post(evaluation))
        .route("/v1/tenants/{tenant}/access/v1/evaluations", post(evaluations))
        .route("/v1/tenants/{tenant}/access/v1/search/subject", post(search_subject))
        .route("/v1/tenants/{tenant}/access/v1/search/resource", post(search_resource))
        .route("/v1/tenants/{tenant}/access/v1/search/action", post(search_action))
        .route("/.well-known/authzen-configuration/v1/tenants/{tenant}", get(metadata))
        .layer(middleware::from_fn(echo_request_id))
}

/// C-2.5.1: `X-Request-ID` is echoed on every AuthZEN answer, errors too.
async fn echo_request_id(req: Request, next: Next) -> Response {
    let id = req.headers().get(&REQUEST_ID).cloned();
    let mut res = next.run(req).await;
    if let Some(id) = id {
        res.headers_mut().insert(REQUEST_ID.clone(), id);
    }
    res
}

// ------------------------------------------------------------------ parsing

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// The request body as a JSON object; C-2.4.3 (content type), C-2.4.4 (not
/// JSON) and C-2.4.5 (empty) all answer 400.
fn body_object(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(bad("expected a request body with `Content-Type: application/json`"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::BadJson, "the request body is empty (expected a JSON object)"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::new(ErrorCode::BadJson, "the request body is not a JSON object")),
        Err(e) => Err(ApiError::new(ErrorCode::BadJson, format!("the request body is not JSON: {e}"))),
    }
}

/// `obj[key]` as an object; absent or `null` is `None`.
fn object_at<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(bad(format!("`{path}{key}` must be an object"))),
    }
}

/// `obj[key]` as a non-empty string; absent, `null` or `""` is `None`.
fn text_at(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{path}{key}` must be a string"))),
    }
}

/// A subject or resource as written: either part may be missing (a batch
/// item takes the rest from the defaults, §7.1.1, C-3.2.7).
#[derive(Debug, Clone, Default)]
struct Entity {
    ty: Option<String>,
    id: Option<String>,
    properties: Option<Map<String, Value>>,
}

/// The 4-tuple of §6.1 as written, every part optional; wrong JSON types
/// are refused here (400, C-2.4.6).
#[derive(Debug, Clone, Default)]
struct Partial {
    subject: Option<Entity>,
    action: Option<String>,
    /// `true` when an `action` object was given (its `name` may be missing).
    has_action: bool,
    resource: Option<Entity>,
    /// The action's `properties`, when an `action` object was given.
    action_properties: Option<Map<String, Value>>,
    context: Option<ContextIn>,
    /// The `context` object as given: the `context.<p>` attributes.
    context_raw: Option<Map<String, Value>>,
}

impl Partial {
    /// The attributes this request supplies.
    fn attributes(&self) -> Attributes {
        let props = |e: &Option<Entity>| e.as_ref().and_then(|e| e.properties.clone()).unwrap_or_default();
        Attributes {
            subject: props(&self.subject),
            resource: props(&self.resource),
            action: self.action_properties.clone().unwrap_or_default(),
            context: self.context_raw.clone().unwrap_or_default(),
        }
    }
}

fn entity(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<Entity>, ApiError> {
    let Some(e) = object_at(obj, key, path)? else { return Ok(None) };
    let here = format!("{path}{key}.");
    // §5: `properties` is an object: the entity's attributes.
    let properties = object_at(e, "properties", &here)?.cloned();
    Ok(Some(Entity { ty: text_at(e, "type", &here)?, id: text_at(e, "id", &here)?, properties }))
}

fn partial(obj: &Map<String, Value>, path: &str) -> Result<Partial, ApiError> {
    let action = object_at(obj, "action", path)?;
    let (name, action_properties) = match action {
        Some(a) => {
            let here = format!("{path}action.");
            let props = object_at(a, "properties", &here)?.cloned();
            (text_at(a, "name", &here)?, props)
        }
        None => (None, None),
    };
    let raw = object_at(obj, "context", path)?;
    let context = match raw {
        Some(c) => Some(ContextIn::from_known_keys(c).map_err(|m| bad(format!("`{path}context`: {m}")))?),
        None => None,
    };
    Ok(Partial {
        subject: entity(obj, "subject", path)?,
        action: name,
        has_action: action.is_some(),
        resource: entity(obj, "resource", path)?,
        action_properties,
        context,
        context_raw: raw.cloned(),
    })
}

/// One question, complete: subject (type, id), scope, resource (type, id).
#[derive(Debug, Clone)]
struct Question {
    subject: (String, String),
    action: String,
    resource: (String, String),
    context: ContextIn,
    attributes: Attributes,
}

/// `item` over `defaults` (§7.1.1): a part given in the item replaces the
/// default whole (its `properties` too), falling back to the default's
/// `type` / `id` where the item leaves one out (C-3.2.7); `action` and
/// `context` are replaced whole. `Err` names the missing field (C-2.4.1,
/// C-2.4.2).
fn complete(item: &Partial, defaults: &Partial) -> Result<Question, String> {
    let merge = |i: &Option<Entity>, d: &Option<Entity>| -> Option<Entity> {
        match (i, d) {
            (None, d) => d.clone(),
            (Some(i), None) => Some(i.clone()),
            (Some(i), Some(d)) => Some(Entity {
                ty: i.ty.clone().or(d.ty.clone()),
                id: i.id.clone().or(d.id.clone()),
                properties: i.properties.clone(),
            }),
        }
    };
    let merged = Partial {
        subject: merge(&item.subject, &defaults.subject),
        resource: merge(&item.resource, &defaults.resource),
        action_properties: if item.has_action {
            item.action_properties.clone()
        } else {
            defaults.action_properties.clone()
        },
        context_raw: if item.context_raw.is_some() { item.context_raw.clone() } else { defaults.context_raw.clone() },
        ..Partial::default()
    };
    let attributes = merged.attributes();
    let need = |e: Option<Entity>, what: &str| -> Result<(String, String), String> {
        let e = e.ok_or_else(|| format!("`{what}` is missing"))?;
        let ty = e.ty.ok_or_else(|| format!("`{what}.type` is missing"))?;
        let id = e.id.ok_or_else(|| format!("`{what}.id` is missing"))?;
        Ok((ty, id))
    };
    let subject = need(merged.subject, "subject")?;
    let action = match item.action.clone().or(defaults.action.clone()) {
        Some(a) => a,
        None if item.has_action || defaults.has_action => return Err("`action.name` is missing".into()),
        None => return Err("`action` is missing".into()),
    };
    let resource = need(merged.resource, "resource")?;
    let context = item.context.clone().or(defaults.context.clone()).unwrap_or_default();
    Ok(Question { subject, action, resource, context, attributes })
}

// --------------------------------------------------------------- decisions

/// The Holdfast object type of an AuthZEN subject type, if it has one.
fn subject_type(ty: &str) -> Option<ObjectType> {
    match ty {
        "user" => Some(ObjectType::User),
        "service_account" => Some(ObjectType::ServiceAccount),
        _ => None,
    }
}

/// The Holdfast subject an AuthZEN subject names, if any.
fn subject_ref(ty: &str, id: &str) -> Option<String> {
    let ty = subject_type(ty)?;
    validate_id(id).ok()?;
    Some(ObjectRef::new(ty, id).to_string())
}

/// The application an AuthZEN resource names: defined, with that resource type.
fn application_of(st: &TenantState, ty: &str, id: &str) -> Option<String> {
    validate_id(id).ok()?;
    st.app_scope_names(id)?;
    let declared = resource_type(st.object(&ObjectRef::new(ObjectType::Application, id)));
    (declared == ty).then(|| id.to_string())
}

/// §6.2: a decision, with Holdfast's reason (and step-up, or the error of a
/// batch item) in its `context`.
#[derive(Debug, Serialize)]
struct Evaluation {
    decision: bool,
    context: EvaluationContext,
}

#[derive(Debug, Default, Serialize)]
struct EvaluationContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    /// RFC 9470: what to ask for so that the same question is allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    step_up: Option<StepUp>,
    /// §7.2.1: an item of a batch that could not be evaluated.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

#[derive(Debug, Serialize)]
struct ItemError {
    status: u16,
    code: &'static str,
    message: String,
}

impl Evaluation {
    fn deny(reason: &'static str) -> Self {
        Evaluation { decision: false, context: EvaluationContext { reason: Some(reason), ..Default::default() } }
    }

    fn error(message: String) -> Self {
        let error = ItemError { status: 400, code: ErrorCode::InvalidParameter.as_str(), message };
        Evaluation { decision: false, context: EvaluationContext { error: Some(error), ..Default::default() } }
    }
}

/// The check behind one question; `Err(reason)` when it names no subject
/// or resource of this tenant.
/// `groups`: request-only groups of a verified ID token (none: empty).
fn check(
    st: &TenantState,
    q: &Question,
    ctx: &Context,
    groups: &[String],
) -> Result<Result<query::CheckOutcome, &'static str>, ApiError> {
    let Some(subject) = subject_ref(&q.subject.0, &q.subject.1) else { return Ok(Err("unknown_subject")) };
    let Some(app) = application_of(st, &q.resource.0, &q.resource.1) else { return Ok(Err("unknown_resource")) };
    Ok(Ok(query::check_with(st.facts(), &subject, &app, &q.action, ctx, groups)?))
}

fn decide(state: &AppState, st: &TenantState, q: &Question, groups: &[String]) -> Result<Evaluation, ApiError> {
    let ctx = q.context.clone().resolve_with(state.now(), Some(q.attributes.clone()));
    Ok(match check(st, q, &ctx, groups)? {
        Err(reason) => Evaluation::deny(reason),
        Ok(o) => {
            state.metrics().decision(o.decision);
            Evaluation {
                decision: o.decision == Decision::Allow,
                context: EvaluationContext { reason: Some(o.reason), step_up: o.step_up, error: None },
            }
        }
    })
}

/// §6: one decision. Anything missing is 400 (C-2.4).
async fn evaluation(
    State(state): State<AppState>,
    auth: TenantRead,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Evaluation>, ApiError> {
    let body = body_object(&headers, &body)?;
    let q = complete(&partial(&body, "")?, &Partial::default()).map_err(bad)?;
    let tenant = state.tenant(&auth.tenant)?;
    // Holdfast's extension: `context.id_token`, an OIDC ID token whose
    // user must be the subject and whose groups count for this decision.
    let groups = match body.get("context").and_then(|c| c.get("id_token")) {
        None | Some(Value::Null) => vec![],
        Some(Value::String(t)) => {
            let subject = subject_ref(&q.subject.0, &q.subject.1);
            let token = super::identity::verify(&state, &auth.tenant, t.clone()).await?;
            super::identity::agree(Some(subject.unwrap_or_default()), Some(token))?.groups
        }
        Some(_) => return Err(bad("`context.id_token` must be a string")),
    };
    let st = tenant.read();
    decide(&state, &st, &q, &groups).map(axum::Json)
}

/// §7.1.2.1: how a batch stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

fn semantic(body: &Map<String, Value>) -> Result<Semantic, ApiError> {
    let Some(options) = object_at(body, "options", "")? else { return Ok(Semantic::ExecuteAll) };
    match text_at(options, "evaluations_semantic", "options.")?.as_deref() {
        None | Some("execute_all") => Ok(Semantic::ExecuteAll),
        Some("deny_on_first_deny") => Ok(Semantic::DenyOnFirstDeny),
        Some("permit_on_first_permit") => Ok(Semantic::PermitOnFirstPermit),
        Some(other) => Err(bad(format!(
            "`options.evaluations_semantic` `{other}` is not one of `execute_all`, `deny_on_first_deny`, `permit_on_first_permit`"
        ))),
    }
}

#[derive(Debug, Serialize)]
struct Evaluations {
    evaluations: Vec<Evaluation>,
}

/// §7: many decisions, answered in order. Top-level parts are defaults
/// (§7.1.1); an item missing a field answers `decision: false` with
/// `context.error` (§7.2.1, C-3.4.1); without items it is a single
/// evaluation (C-3.4.2, C-3.4.3).
async fn evaluations(
    State(state): State<AppState>,
    auth: TenantRead,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = body_object(&headers, &body)?;
    let defaults = partial(&body, "")?;
    let semantic = semantic(&body)?;
    let items: Vec<Partial> = match body.get("evaluations") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Object(o) => partial(o, &format!("evaluations[{i}].")),
                _ => Err(bad(format!("`evaluations[{i}]` must be an object"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("`evaluations` must be an array")),
    };
    if items.is_empty() {
        let q = complete(&defaults, &Partial::default()).map_err(bad)?;
        let tenant = state.tenant(&auth.tenant)?;
        let st = tenant.read();
        return Ok(axum::Json(decide(&state, &st, &q, &[])?).into_response());
    }
    let max = state.config().max_batch_checks;
    if items.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!("the request has {} evaluations (at most {max})", items.len()),
        ));
    }
    let tenant = state.tenant(&auth.tenant)?;
    let inline = items.len() <= INLINE_BATCH;
    let run_state = state.clone();
    let run = move || {
        let st = tenant.read();
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let e = match complete(item, &defaults) {
                Ok(q) => decide(&run_state, &st, &q, &[])?,
                Err(m) => Evaluation::error(m),
            };
            let stop = match semantic {
                Semantic::ExecuteAll => false,
                Semantic::DenyOnFirstDeny => !e.decision,
                Semantic::PermitOnFirstPermit => e.decision,
            };
            out.push(e);
            // §7.1.2.1: the answers up to and including the one that decided.
            if stop {
                break;
            }
        }
        Ok(Evaluations { evaluations: out })
    };
    let out = if inline { run()? } else { blocking(run).await? };
    Ok(axum::Json(out).into_response())
}

// ------------------------------------------------------------------ search

/// `page.limit` and `page.token` (C-4.5; `next_token` is read as the token
/// too, as in the §8.2 example).
fn page(body: &Map<String, Value>) -> Result<(usize, Option<String>), ApiError> {
    let Some(p) = object_at(body, "page", "")? else { return Ok((PAGE_DEFAULT, None)) };
    let limit = match p.get("limit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad("`page.limit` must be a non-negative integer"))?,
        ),
    };
    let token = match text_at(p, "token", "page.")? {
        Some(t) => Some(t),
        None => text_at(p, "next_token", "page.")?,
    };
    Ok((page_size(limit, PAGE_DEFAULT, PAGE_MAX), token.as_deref().map(parse_page_token).transpose()?))
}

#[derive(Debug, Serialize)]
struct SearchOut<T> {
    results: Vec<T>,
    /// Absent when the request named nothing this tenant knows (C-4.6).
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<PageOut>,
}

#[derive(Debug, Serialize)]
struct PageOut {
    /// Empty on the last page (C-4.5.3).
    next_token: String,
}

impl<T> SearchOut<T> {
    fn empty() -> Self {
        SearchOut { results: vec![], page: None }
    }

    fn page(results: Vec<T>, next: Option<&str>) -> Self {
        SearchOut { results, page: Some(PageOut { next_token: next.map(page_token).unwrap_or_default() }) }
    }
}

#[derive(Debug, Serialize)]
struct EntityOut {
    #[serde(rename = "type")]
    ty: String,
    id: String,
}

#[derive(Debug, Serialize)]
struct ActionOut {
    name: String,
}

/// A required part of a search request; `Err` is 400 (C-4.7).
fn required<T>(v: Option<T>, what: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| bad(format!("`{what}` is missing")))
}

/// The action of a search request (C-4.7.1).
fn action_name(p: &Partial) -> Result<String, ApiError> {
    match (&p.action, p.has_action) {
        (Some(a), _) => Ok(a.clone()),
        (None, true) => Err(bad("`action.name` is missing")),
        (None, false) => Err(bad("`action` is missing")),
    }
}

/// §8: the subjects of one type that may use the action on the resource,
/// transitively through groups, sorted by id. Candidates come from
/// `who_can_access`; each is kept when `check` allows it in the context.
async fn search_subject(
    State(state): State<AppState>,
    auth: TenantRead,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<SearchOut<EntityOut>>, ApiError> {
    let body = body_object(&headers, &body)?;
    let p = partial(&body, "")?;
    let attributes = p.attributes();
    let action = action_name(&p)?;
    let subject = required(p.subject, "subject")?;
    let subject_ty = required(subject.ty, "subject.type")?;
    let resource = required(p.resource, "resource")?;
    let resource = (required(resource.ty, "resource.type")?, required(resource.id, "resource.id")?);
    let (limit, after) = page(&body)?;
    let ctx = p.context.unwrap_or_default().resolve_with(state.now(), Some(attributes));
    let tenant = state.tenant(&auth.tenant)?;
    let out = blocking(move || {
        let st = tenant.read();
        let Some(prefix) = self::subject_type(&subject_ty).map(|t| format!("{t}:")) else {
            return Ok(SearchOut::empty());
        };
        let Some(app) = application_of(&st, &resource.0, &resource.1) else { return Ok(SearchOut::empty()) };
        let mut after = after;
        let mut results = Vec::new();
        loop {
            let want = limit - results.len();
            let Some(page) = query::who_can_access(st.facts(), &app, Some(&action), ctx.now, after.as_deref(), want)?
            else {
                return Ok(SearchOut::empty());
            };
            let mut last: Option<&str> = None;
            for e in &page.entries {
                if last == Some(e.subject.as_str()) {
                    continue;
                }
                last = Some(e.subject.as_str());
                let Some(id) = e.subject.strip_prefix(&prefix) else { continue };
                if query::check(st.facts(), &e.subject, &app, &action, &ctx)?.decision == Decision::Allow {
                    results.push(EntityOut { ty: subject_ty.clone(), id: id.to_string() });
                }
            }
            match page.next_page_token {
                None => return Ok(SearchOut::page(results, None)),
                Some(next) if results.len() >= limit => return Ok(SearchOut::page(results, Some(&next))),
                Some(next) => after = Some(next),
            }
        }
    })
    .await?;
    Ok(axum::Json(out))
}

/// Items after `after` (sorted input), at most `limit`, and the token of
/// the next page when more follow.
fn paginate<T>(
    sorted: impl Iterator<Item = (String, T)>,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut out = Vec::new();
    let mut last = None;
    for (key, item) in sorted.filter(|(k, _)| after.is_none_or(|a| k.as_str() > a)) {
        if out.len() == limit {
            return (out, last);
        }
        last = Some(key);
        out.push(item);
    }
    (out, None)
}

/// §9: the applications of one resource type the subject may use the action
/// on, sorted by id (each decided by `check`).
async fn search_resource(
    State(state): State<AppState>,
    auth: TenantRead,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<SearchOut<EntityOut>>, ApiError> {
    let body = body_object(&headers, &body)?;
    let p = partial(&body, "")?;
    let attributes = p.attributes();
    let action = action_name(&p)?;
    let subject = required(p.subject, "subject")?;
    let subject = (required(subject.ty, "subject.type")?, required(subject.id, "subject.id")?);
    let resource_ty = required(p.resource.and_then(|r| r.ty), "resource.type")?;
    let (limit, after) = page(&body)?;
    let ctx = p.context.unwrap_or_default().resolve_with(state.now(), Some(attributes));
    let tenant = state.tenant(&auth.tenant)?;
    let out = blocking(move || {
        let st = tenant.read();
        let Some(subject) = subject_ref(&subject.0, &subject.1) else { return Ok(SearchOut::empty()) };
        let mut allowed = Vec::new();
        for app in st.app_names() {
            if after.as_deref().is_some_and(|a| app.as_str() <= a)
                || resource_type(st.object(&ObjectRef::new(ObjectType::Application, &app))) != resource_ty
            {
                continue;
            }
            if query::check(st.facts(), &subject, &app, &action, &ctx)?.decision == Decision::Allow {
                allowed.push(app);
                if allowed.len() > limit {
                    break;
                }
            }
        }
        let (page, next) = paginate(
            allowed.into_iter().map(|a| (a.clone(), EntityOut { ty: resource_ty.clone(), id: a })),
            None,
            limit,
        );
        Ok::<_, ApiError>(SearchOut::page(page, next.as_deref()))
    })
    .await?;
    Ok(axum::Json(out))
}

/// §10: the scopes the subject may use on the resource in the context:
/// the `granted` scopes of [`query::token_scope`] (the action is not read).
async fn search_action(
    State(state): State<AppState>,
    auth: TenantRead,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<SearchOut<ActionOut>>, ApiError> {
    let body = body_object(&headers, &body)?;
    let p = partial(&body, "")?;
    let attributes = p.attributes();
    let subject = required(p.subject, "subject")?;
    let subject = (required(subject.ty, "subject.type")?, required(subject.id, "subject.id")?);
    let resource = required(p.resource, "resource")?;
    let resource = (required(resource.ty, "resource.type")?, required(resource.id, "resource.id")?);
    let (limit, after) = page(&body)?;
    let ctx = p.context.unwrap_or_default().resolve_with(state.now(), Some(attributes));
    let tenant = state.tenant(&auth.tenant)?;
    let out = blocking(move || {
        let st = tenant.read();
        let Some(subject) = subject_ref(&subject.0, &subject.1) else { return Ok(SearchOut::empty()) };
        let Some(app) = application_of(&st, &resource.0, &resource.1) else { return Ok(SearchOut::empty()) };
        let scopes = query::token_scope(st.facts(), &subject, &app, None, &ctx)?.granted;
        let (page, next) =
            paginate(scopes.into_iter().map(|s| (s.clone(), ActionOut { name: s })), after.as_deref(), limit);
        Ok::<_, ApiError>(SearchOut::page(page, next.as_deref()))
    })
    .await?;
    Ok(axum::Json(out))
}

// ---------------------------------------------------------------- metadata

/// §11 / C-6: PDP metadata at the RFC 8615 path-inserted well-known URI of
/// the tenant's base URL. Built from the configured issuer, never from the
/// Host header. Public, like the RFC 9728 metadata: it holds no secret.
async fn metadata(State(state): State<AppState>, Path(tenant): Path<String>) -> Result<axum::Json<Value>, ApiError> {
    state.tenant(&tenant)?;
    let pdp = format!("{}/v1/tenants/{tenant}", state.config().issuer.trim_end_matches('/'));
    Ok(axum::Json(json!({
        "policy_decision_point": pdp,
        "access_evaluation_endpoint": format!("{pdp}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{pdp}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{pdp}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{pdp}/access/v1/search/resource"),
        "search_action_endpoint": format!("{pdp}/access/v1/search/action"),
    })))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(v: Value) -> Partial {
        partial(v.as_object().unwrap(), "").unwrap()
    }

    #[test]
    fn items_fall_back_to_default_type_and_id_c_3_2_7() {
        let defaults = parsed(json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "write"},
            "resource": {"type": "record"}}));
        let q = complete(&parsed(json!({"resource": {"id": "record-1"}})), &defaults).unwrap();
        assert_eq!(q.resource, ("record".to_string(), "record-1".to_string()));
        assert_eq!(q.subject.1, "alice");
        assert_eq!(complete(&parsed(json!({})), &defaults).unwrap_err(), "`resource.id` is missing");
        assert_eq!(complete(&parsed(json!({"action": {}})), &Partial::default()).unwrap_err(), "`subject` is missing");
    }

    #[test]
    fn wrong_types_are_refused_and_unknown_context_fields_ignored_c_2_4_6() {
        let o = |v: Value| v.as_object().unwrap().clone();
        assert!(partial(&o(json!({"subject": "alice"})), "").is_err());
        assert!(partial(&o(json!({"action": {"name": 123}})), "").is_err());
        assert!(partial(&o(json!({"context": {"ip": "nope"}})), "").is_err());
        let p = partial(&o(json!({"context": {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}})), "").unwrap();
        assert!(p.context.unwrap().ip.is_some());
    }

    #[test]
    fn paginate_gives_a_token_only_when_more_follow() {
        let items = || ["a", "b", "c"].into_iter().map(|s| (s.to_string(), s));
        assert_eq!(paginate(items(), None, 2), (vec!["a", "b"], Some("b".to_string())));
        assert_eq!(paginate(items(), Some("b"), 2), (vec!["c"], None));
        assert_eq!(paginate(items(), None, 3), (vec!["a", "b", "c"], None));
    }
}
