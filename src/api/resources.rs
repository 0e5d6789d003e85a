//! Friendly resources over the same tuples: roles (with their scopes),
//! applications (with `scopes_supported`), bindings, group members, users
//! and service accounts. Each write is one atomic batch.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::auth::{TenantRead, TenantWrite};
use super::error::{blocking, ApiError, Json, Path, Query};
use super::wire::{
    page_size, page_token, parse_page_token, ApplicationIn, ApplicationOut, BindingDeleteQuery, BindingIn, BindingList,
    BindingOut, BindingQuery, BindingWritten, GroupOut, Listing, Revision, RoleIn, RoleOut, SubjectIn, SubjectOut,
    Window, Written,
};
use super::AppState;
use crate::model::{validate_id, Conditions, ObjectRef, ObjectType, Timestamp, Tuple, DEFAULT_RESOURCE_TYPE};
use crate::service::{BindingFilter, Change};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/roles", get(list_roles))
        .route("/v1/tenants/{tenant}/roles/{role}", get(get_role).put(put_role).delete(delete_role))
        .route("/v1/tenants/{tenant}/applications", get(list_apps))
        .route("/v1/tenants/{tenant}/applications/{application}", get(get_app).put(put_app).delete(delete_app))
        .route("/v1/tenants/{tenant}/bindings", get(list_bindings).post(create_binding).delete(delete_binding))
        .route("/v1/tenants/{tenant}/groups/{group}", get(get_group))
        .route("/v1/tenants/{tenant}/groups/{group}/members/{subject}", put(add_member).delete(remove_member))
        .route("/v1/tenants/{tenant}/users/{user}", get(get_user).put(put_user).delete(delete_user))
        .route(
            "/v1/tenants/{tenant}/service-accounts/{service_account}",
            get(get_service_account).put(put_service_account).delete(delete_service_account),
        )
}

/// An item and the revision it was read at or written by.
#[derive(Serialize)]
pub(super) struct Saved<T> {
    #[serde(flatten)]
    item: T,
    revision: Revision,
}

/// `type:id` from a path segment; 400 if the id is malformed.
pub(crate) fn object(ty: ObjectType, id: &str) -> Result<ObjectRef, ApiError> {
    validate_id(id).map_err(|m| ApiError::parameter(format!("{ty} id `{id}` {m}")))?;
    Ok(ObjectRef::new(ty, id))
}

/// A user, group or service account reference (`user:alice`).
pub(crate) fn subject_ref(text: &str) -> Result<ObjectRef, ApiError> {
    let r = ObjectRef::parse(text).map_err(|e| ApiError::invalid(e.to_string()))?;
    if !r.ty.is_subject() {
        return Err(ApiError::invalid(format!(
            "`{text}` is not a subject (expected user:, group: or service_account:)"
        )));
    }
    Ok(r)
}

fn scope_list(field: &str, scopes: &[String]) -> Result<Vec<String>, ApiError> {
    let mut v = scopes.to_vec();
    for s in &v {
        validate_id(s).map_err(|m| ApiError::invalid(format!("`{field}`: scope `{s}` {m}")))?;
    }
    v.sort();
    v.dedup();
    Ok(v)
}

fn attrs(pairs: &[(&str, &Option<String>)]) -> Value {
    let m: Map<String, Value> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), json!(v)))).collect();
    Value::Object(m)
}

/// An application's `authorization_servers` attribute.
pub(super) fn authorization_servers(attrs: Option<&Value>) -> Option<Vec<String>> {
    let list = attrs?.get("authorization_servers")?.as_array()?;
    Some(list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
}

/// An application's AuthZEN resource type: its `resource_type` attribute,
/// else [`DEFAULT_RESOURCE_TYPE`].
pub(super) fn resource_type(attrs: Option<&Value>) -> String {
    attr(attrs, "resource_type").unwrap_or_else(|| DEFAULT_RESOURCE_TYPE.to_string())
}

pub(crate) fn attr(attrs: Option<&Value>, key: &str) -> Option<String> {
    attrs.and_then(|a| a.get(key)).and_then(Value::as_str).map(str::to_string)
}

/// The changes that make `object` grant (or support) exactly `wanted`.
fn scope_changes(object: &ObjectRef, relation: &str, old: &[String], wanted: &[String]) -> Vec<Change> {
    let t = |s: &str| Tuple::new(object.clone(), relation, ObjectRef::new(ObjectType::Scope, s));
    let mut out: Vec<Change> = old.iter().filter(|s| !wanted.contains(s)).map(|s| Change::DeleteTuple(t(s))).collect();
    out.extend(wanted.iter().filter(|s| !old.contains(s)).map(|s| Change::PutTuple(t(s), None)));
    out
}

// -------------------------------------------------------------------- roles

async fn list_roles(State(state): State<AppState>, auth: TenantRead) -> Result<axum::Json<Listing<RoleOut>>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let st = tenant.read();
    let items = st.role_names().iter().filter_map(|r| role_out(&st, r)).collect();
    Ok(axum::Json(Listing { items, revision }))
}

pub(crate) fn role_out(st: &crate::service::TenantState, id: &str) -> Option<RoleOut> {
    let scopes = st.role_scope_names(id)?;
    let a = st.object(&ObjectRef::new(ObjectType::Role, id));
    Some(RoleOut { id: id.to_string(), name: attr(a, "name"), description: attr(a, "description"), scopes })
}

async fn get_role(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, role)): Path<(String, String)>,
) -> Result<axum::Json<Saved<RoleOut>>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let item = role_out(&tenant.read(), &role).ok_or_else(|| ApiError::not_found("role", &role))?;
    Ok(axum::Json(Saved { item, revision }))
}

async fn put_role(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, role)): Path<(String, String)>,
    Json(body): Json<RoleIn>,
) -> Result<axum::Json<Saved<RoleOut>>, ApiError> {
    let o = object(ObjectType::Role, &role)?;
    let scopes = scope_list("scopes", &body.scopes)?;
    let declared = attrs(&[("name", &body.name), ("description", &body.description)]);
    let revision = put_defined(&state, &auth, o, declared, "grants", scopes.clone()).await?;
    let item = RoleOut { id: role, name: body.name, description: body.description, scopes };
    Ok(axum::Json(Saved { item, revision }))
}

async fn delete_role(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, role)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    let o = object(ObjectType::Role, &role)?;
    delete_defined(&state, &auth, o, "grants").await
}

// ------------------------------------------------------------- applications

pub(crate) fn app_out(st: &crate::service::TenantState, id: &str) -> Option<ApplicationOut> {
    let scopes_supported = st.app_scope_names(id)?;
    let a = st.object(&ObjectRef::new(ObjectType::Application, id));
    Some(ApplicationOut {
        id: id.to_string(),
        name: attr(a, "name"),
        resource: attr(a, "resource"),
        resource_type: resource_type(a),
        scopes_supported,
        authorization_servers: authorization_servers(a),
    })
}

async fn list_apps(
    State(state): State<AppState>,
    auth: TenantRead,
) -> Result<axum::Json<Listing<ApplicationOut>>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let st = tenant.read();
    let items = st.app_names().iter().filter_map(|a| app_out(&st, a)).collect();
    Ok(axum::Json(Listing { items, revision }))
}

async fn get_app(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, app)): Path<(String, String)>,
) -> Result<axum::Json<Saved<ApplicationOut>>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let item = app_out(&tenant.read(), &app).ok_or_else(|| ApiError::not_found("application", &app))?;
    Ok(axum::Json(Saved { item, revision }))
}

/// An OAuth resource indicator: an absolute URI without fragment or spaces.
fn check_resource(uri: &str) -> Result<(), ApiError> {
    let ok = uri.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !rest.is_empty()
    }) && !uri.contains('#')
        && !uri.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "`resource`: `{uri}` is not an absolute URI without fragment (e.g. `https://mcp.example.com/github`)"
        )))
    }
}

async fn put_app(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, app)): Path<(String, String)>,
    Json(body): Json<ApplicationIn>,
) -> Result<axum::Json<Saved<ApplicationOut>>, ApiError> {
    let o = object(ObjectType::Application, &app)?;
    let scopes = scope_list("scopes_supported", &body.scopes_supported)?;
    if let Some(r) = &body.resource {
        check_resource(r)?;
    }
    if let Some(t) = &body.resource_type {
        validate_id(t).map_err(|m| ApiError::invalid(format!("`resource_type` `{t}` {m}")))?;
    }
    let mut declared =
        attrs(&[("name", &body.name), ("resource", &body.resource), ("resource_type", &body.resource_type)]);
    if let Some(servers) = &body.authorization_servers {
        if servers.is_empty() {
            return Err(ApiError::invalid(
                "`authorization_servers` is empty: leave it out to name this server's issuer",
            ));
        }
        for s in servers {
            let ok = (s.starts_with("https://") || s.starts_with("http://")) && check_resource(s).is_ok();
            if !ok || s.contains('?') {
                return Err(ApiError::invalid(format!(
                    "`authorization_servers`: `{s}` is not an issuer URL (http(s), no query or fragment)"
                )));
            }
        }
        declared["authorization_servers"] = json!(servers);
    }
    let revision = put_defined(&state, &auth, o, declared, "supports", scopes.clone()).await?;
    let item = ApplicationOut {
        id: app,
        name: body.name,
        resource: body.resource,
        resource_type: body.resource_type.unwrap_or_else(|| DEFAULT_RESOURCE_TYPE.to_string()),
        scopes_supported: scopes,
        authorization_servers: body.authorization_servers,
    };
    Ok(axum::Json(Saved { item, revision }))
}

async fn delete_app(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, app)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    let o = object(ObjectType::Application, &app)?;
    delete_defined(&state, &auth, o, "supports").await
}

/// Declares a role (`grants`) or an application (`supports`) with exactly
/// the `wanted` scopes: the old scopes are read and replaced under one write
/// lock, so two racing PUTs leave one of the two sets, never a mix.
async fn put_defined(
    state: &AppState,
    auth: &TenantWrite,
    o: ObjectRef,
    declared: Value,
    relation: &'static str,
    wanted: Vec<String>,
) -> Result<Revision, ApiError> {
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            let old = if o.ty == ObjectType::Role { st.role_scope_names(&o.id) } else { st.app_scope_names(&o.id) };
            let mut changes = vec![Change::PutObject(o.clone(), declared.clone())];
            changes.extend(scope_changes(&o, relation, &old.unwrap_or_default(), &wanted));
            Ok((changes, ()))
        })
        .await?;
    revision.map_or_else(|| state.visible(None), Ok)
}

/// Deletes a role (`grants`) or an application (`supports`) with its
/// scopes, read and removed under one write lock: 404 if it is not defined,
/// 409 `in_use` while a binding still names it.
async fn delete_defined(
    state: &AppState,
    auth: &TenantWrite,
    o: ObjectRef,
    relation: &'static str,
) -> Result<axum::Json<Written>, ApiError> {
    state.tenant(&auth.tenant)?;
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            let (scopes, what) = if o.ty == ObjectType::Role {
                (st.role_scope_names(&o.id), "role")
            } else {
                (st.app_scope_names(&o.id), "application")
            };
            let scopes = scopes.ok_or_else(|| ApiError::not_found(what, &o.id))?;
            let mut changes = scope_changes(&o, relation, &scopes, &[]);
            changes.push(Change::DeleteObject(o.clone()));
            Ok((changes, ()))
        })
        .await?;
    Ok(axum::Json(Written { revision: revision.map_or_else(|| state.visible(None), Ok)? }))
}

// ----------------------------------------------------------------- bindings

/// The tuple of a binding: `application:A#ROLE@S`, or `tenant#ROLE@S`.
pub(crate) fn binding_tuple(subject: &ObjectRef, role: &str, application: Option<&str>) -> Result<Tuple, ApiError> {
    validate_id(role).map_err(|m| ApiError::invalid(format!("role `{role}` {m}")))?;
    let resource = match application {
        Some(a) => {
            validate_id(a).map_err(|m| ApiError::invalid(format!("application `{a}` {m}")))?;
            ObjectRef::new(ObjectType::Application, a)
        }
        None => ObjectRef::tenant(),
    };
    Ok(Tuple::new(resource, role, subject.clone()))
}

pub(super) fn binding_out(t: &Tuple, conditions: Option<Conditions>) -> BindingOut {
    BindingOut {
        binding: t.to_string(),
        subject: t.subject.to_string(),
        role: t.relation.clone(),
        application: (t.object.ty == ObjectType::Application).then(|| t.object.id.clone()),
        conditions,
    }
}

/// Writes one binding (creating or replacing it); 422 if its role or
/// application is not defined.
pub(crate) async fn write_binding(
    state: &AppState,
    auth: &TenantWrite,
    tuple: Tuple,
    window: Window,
    now: Timestamp,
) -> Result<(StatusCode, axum::Json<BindingWritten>), ApiError> {
    let conditions = window.resolve(now)?;
    let change = Change::PutTuple(tuple.clone(), conditions.clone());
    let revision = state.write(&auth.tenant, &auth.caller.name, vec![change], vec![]).await?;
    Ok((StatusCode::CREATED, axum::Json(BindingWritten { binding: binding_out(&tuple, conditions), revision })))
}

async fn create_binding(
    State(state): State<AppState>,
    auth: TenantWrite,
    Json(b): Json<BindingIn>,
) -> Result<(StatusCode, axum::Json<BindingWritten>), ApiError> {
    let subject = subject_ref(&b.subject)?;
    let tuple = binding_tuple(&subject, &b.role, b.application.as_deref())?;
    let window = Window {
        conditions: b.conditions,
        expires_at: b.expires_at,
        expires_in: b.expires_in,
        not_before: b.not_before,
    };
    write_binding(&state, &auth, tuple, window, state.now()).await
}

async fn list_bindings(
    State(state): State<AppState>,
    auth: TenantRead,
    Query(q): Query<BindingQuery>,
) -> Result<axum::Json<BindingList>, ApiError> {
    let filter = BindingFilter {
        subject: q.subject.as_deref().map(subject_ref).transpose().map_err(|e| ApiError::parameter(e.message))?,
        role: q.role,
        resource: q.application.map(|a| ObjectRef::new(ObjectType::Application, a)),
    };
    let after = q.page_token.as_deref().map(parse_page_token).transpose()?;
    let size = page_size(q.page_size, 100, 1000);
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    blocking(move || {
        let st = tenant.read();
        let mut rest = st
            .bindings_matching(&filter)
            .into_iter()
            .map(|(t, c)| (t.to_string(), t, c))
            .filter(|(text, _, _)| after.as_deref().is_none_or(|a| text.as_str() > a));
        let page: Vec<_> = rest.by_ref().take(size).collect();
        let next_page_token = rest.next().and(page.last().map(|(text, _, _)| page_token(text)));
        let bindings = page.into_iter().map(|(_, t, c)| binding_out(&t, c)).collect();
        Ok(axum::Json(BindingList { bindings, next_page_token, revision }))
    })
    .await
}

async fn delete_binding(
    State(state): State<AppState>,
    auth: TenantWrite,
    Query(q): Query<BindingDeleteQuery>,
) -> Result<axum::Json<Written>, ApiError> {
    let tuple = match (q.binding, q.subject, q.role) {
        (Some(text), None, None) if q.application.is_none() => {
            Tuple::parse(&text).map_err(|e| ApiError::parameter(format!("`binding`: {e}")))?
        }
        (None, Some(s), Some(r)) => {
            let subject = subject_ref(&s).map_err(|e| ApiError::parameter(e.message))?;
            binding_tuple(&subject, &r, q.application.as_deref()).map_err(|e| ApiError::parameter(e.message))?
        }
        _ => {
            return Err(ApiError::parameter(
                "give `binding=<tuple>`, or `subject` and `role` (and `application`; absent = tenant-wide)",
            ))
        }
    };
    delete_existing(&state, &auth, tuple, "binding").await
}

/// Deletes one tuple that must exist (404 if it does not), checked and
/// removed under one write lock.
pub(crate) async fn delete_existing(
    state: &AppState,
    auth: &TenantWrite,
    tuple: Tuple,
    what: &'static str,
) -> Result<axum::Json<Written>, ApiError> {
    state.tenant(&auth.tenant)?;
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            if !st.tuple_exists(&tuple) {
                return Err(ApiError::not_found(what, &tuple.to_string()));
            }
            Ok((vec![Change::DeleteTuple(tuple.clone())], ()))
        })
        .await?;
    Ok(axum::Json(Written { revision: revision.map_or_else(|| state.visible(None), Ok)? }))
}

// ------------------------------------------------------------------- groups

async fn get_group(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, group)): Path<(String, String)>,
) -> Result<axum::Json<GroupOut>, ApiError> {
    let g = object(ObjectType::Group, &group)?;
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let st = tenant.read();
    let members = st.group_members(&g).ok_or_else(|| ApiError::not_found("group", &group))?;
    Ok(axum::Json(GroupOut {
        group: g.to_string(),
        name: attr(st.object(&g), "name"),
        members: members.iter().map(ToString::to_string).collect(),
        revision,
    }))
}

pub(crate) fn membership(group: &str, subject: &str) -> Result<Tuple, ApiError> {
    let g = object(ObjectType::Group, group)?;
    let s = subject_ref(subject).map_err(|e| ApiError::parameter(e.message))?;
    Ok(Tuple::new(g, "member", s))
}

async fn add_member(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, group, subject)): Path<(String, String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    let t = membership(&group, &subject)?;
    let revision = state.write(&auth.tenant, &auth.caller.name, vec![Change::PutTuple(t, None)], vec![]).await?;
    Ok(axum::Json(Written { revision }))
}

async fn remove_member(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, group, subject)): Path<(String, String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    let t = membership(&group, &subject)?;
    delete_existing(&state, &auth, t, "membership").await
}

// ------------------------------------------------- users and service accounts

async fn get_subject(state: &AppState, tenant: &str, s: ObjectRef) -> Result<axum::Json<SubjectOut>, ApiError> {
    let revision = state.visible(None)?;
    let tenant = state.tenant(tenant)?;
    let st = tenant.read();
    if !st.subject_known(&s) {
        return Err(ApiError::not_found(s.ty.as_str(), &s.id));
    }
    let a = st.object(&s);
    Ok(axum::Json(SubjectOut {
        subject: s.to_string(),
        name: attr(a, "name"),
        email: attr(a, "email"),
        status: if st.is_suspended(&s) { "suspended" } else { "active" },
        groups: st.direct_groups(&s).iter().map(ToString::to_string).collect(),
        revision,
    }))
}

pub(crate) async fn put_subject(
    state: &AppState,
    auth: &TenantWrite,
    s: ObjectRef,
    body: SubjectIn,
) -> Result<axum::Json<Written>, ApiError> {
    let change = Change::PutObject(s, attrs(&[("name", &body.name), ("email", &body.email)]));
    let revision = state.write(&auth.tenant, &auth.caller.name, vec![change], vec![]).await?;
    Ok(axum::Json(Written { revision }))
}

/// Removes the subject, its memberships and bindings (and a suspension) in one batch.
async fn delete_subject(state: &AppState, auth: &TenantWrite, s: ObjectRef) -> Result<axum::Json<Written>, ApiError> {
    state.tenant(&auth.tenant)?;
    let (revision, ()) = state
        .write_with(&auth.tenant, &auth.caller.name, move |st| {
            if !st.subject_known(&s) {
                return Err(ApiError::not_found(s.ty.as_str(), &s.id));
            }
            let mut changes: Vec<Change> = st.tuples_naming(&s).into_iter().map(Change::DeleteTuple).collect();
            if st.is_suspended(&s) {
                changes.push(Change::Reactivate(s.clone()));
            }
            changes.push(Change::DeleteObject(s.clone()));
            Ok((changes, ()))
        })
        .await?;
    Ok(axum::Json(Written { revision: revision.map_or_else(|| state.visible(None), Ok)? }))
}

async fn get_user(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::Json<SubjectOut>, ApiError> {
    get_subject(&state, &auth.tenant, object(ObjectType::User, &id)?).await
}

async fn put_user(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<SubjectIn>,
) -> Result<axum::Json<Written>, ApiError> {
    put_subject(&state, &auth, object(ObjectType::User, &id)?, body).await
}

async fn delete_user(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    delete_subject(&state, &auth, object(ObjectType::User, &id)?).await
}

async fn get_service_account(
    State(state): State<AppState>,
    auth: TenantRead,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::Json<SubjectOut>, ApiError> {
    get_subject(&state, &auth.tenant, object(ObjectType::ServiceAccount, &id)?).await
}

async fn put_service_account(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, id)): Path<(String, String)>,
    Json(body): Json<SubjectIn>,
) -> Result<axum::Json<Written>, ApiError> {
    put_subject(&state, &auth, object(ObjectType::ServiceAccount, &id)?, body).await
}

async fn delete_service_account(
    State(state): State<AppState>,
    auth: TenantWrite,
    Path((_, id)): Path<(String, String)>,
) -> Result<axum::Json<Written>, ApiError> {
    delete_subject(&state, &auth, object(ObjectType::ServiceAccount, &id)?).await
}
