//! `/Users` and `/Groups`: SCIM resources over Holdfast users, groups and
//! membership tuples.
//!
//! A write builds the resource it wants (a POST or PUT body, or the current
//! resource with a PATCH applied), then turns the difference into Holdfast
//! changes: the object's attributes, a suspension or reactivation for
//! `active`, membership tuples for `members`. All of it is one atomic batch.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::filter::{self, get_ci, Filter};
use super::schema::{self, Attr, ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
use super::{base_url, patch, scim_response, ScimBody, ScimCaller, ScimError, MAX_RESULTS};
use crate::api::error::blocking;
use crate::api::{ApiError, AppState};
use crate::model::{validate_id, ObjectRef, ObjectType, Timestamp, Tuple};
use crate::service::{BindingFilter, Change, Suspension, TenantState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.search", post(search_all))
        .route("/Users", get(list_users).post(create_user))
        .route("/Users/.search", post(search_users))
        .route("/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(delete_user))
        .route("/Groups", get(list_groups).post(create_group))
        .route("/Groups/.search", post(search_groups))
        .route("/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(delete_group))
}

type IdPath = axum::extract::Path<(String, String)>;
type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
}

impl Kind {
    fn ty(self) -> ObjectType {
        match self {
            Kind::User => ObjectType::User,
            Kind::Group => ObjectType::Group,
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Kind::User => USER_SCHEMA,
            Kind::Group => GROUP_SCHEMA,
        }
    }

    fn attrs(self) -> &'static [Attr] {
        schema::attrs_of(self.schema())
    }

    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }

    fn object(self, id: &str) -> ObjectRef {
        ObjectRef::new(self.ty(), id)
    }
}

/// A new resource id: 16 random bytes in the UUID layout (version 4).
fn new_id() -> Result<String, ScimError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ScimError::from(crate::api::ApiError::internal(e)))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]))
}

fn str_attr<'a>(attrs: Option<&'a Value>, key: &str) -> Option<&'a str> {
    attrs.and_then(|a| a.get(key)).and_then(Value::as_str)
}

// ---------------------------------------------------------------- rendering

/// The SCIM attributes stored for an object, or — for a user or group that
/// was not provisioned over SCIM — the ones derived from its Holdfast
/// attributes (`userName` = email, else id; `displayName` = name, else id).
fn stored(st: &TenantState, kind: Kind, id: &str) -> Map<String, Value> {
    let attrs = st.object(&kind.object(id));
    if let Some(Value::Object(doc)) = attrs.and_then(|a| a.get("scim")) {
        return doc.clone();
    }
    let mut doc = Map::new();
    let name = str_attr(attrs, "name");
    match kind {
        Kind::User => {
            let email = str_attr(attrs, "email");
            doc.insert("userName".into(), json!(email.unwrap_or(id)));
            if let Some(n) = name {
                doc.insert("displayName".into(), json!(n));
            }
            if let Some(e) = email {
                doc.insert("emails".into(), json!([{"value": e, "type": "work", "primary": true}]));
            }
        }
        Kind::Group => {
            doc.insert("displayName".into(), json!(name.unwrap_or(id)));
        }
    }
    doc
}

fn display_name(st: &TenantState, kind: Kind, id: &str) -> String {
    stored(st, kind, id).get("displayName").and_then(Value::as_str).map_or_else(|| id.to_string(), str::to_string)
}

/// The resource as a document without `meta` and `schemas`: stored
/// attributes, `id`, and what Holdfast holds (`active`, `groups`, `members`).
fn document(st: &TenantState, base: &str, kind: Kind, id: &str) -> Map<String, Value> {
    let o = kind.object(id);
    let mut doc = stored(st, kind, id);
    doc.insert("id".into(), json!(id));
    match kind {
        Kind::User => {
            let suspended = st.is_suspended(&o);
            let unset = st.object(&o).and_then(|a| a.get("scim_active_unset")) == Some(&json!(true));
            if suspended || !unset {
                doc.insert("active".into(), json!(!suspended));
            }
            let groups: Vec<Value> = st
                .direct_groups(&o)
                .iter()
                .filter(|g| g.ty == ObjectType::Group)
                .map(|g| {
                    json!({"value": g.id, "$ref": format!("{base}/Groups/{}", g.id),
                           "display": display_name(st, Kind::Group, &g.id), "type": "direct"})
                })
                .collect();
            if !groups.is_empty() {
                doc.insert("groups".into(), Value::Array(groups));
            }
        }
        Kind::Group => {
            let members: Vec<Value> = st
                .group_members(&o)
                .unwrap_or_default()
                .iter()
                .filter_map(|m| {
                    let k = match m.ty {
                        ObjectType::User => Kind::User,
                        ObjectType::Group => Kind::Group,
                        _ => return None,
                    };
                    Some(json!({"value": m.id, "$ref": format!("{base}/{}/{}", k.endpoint(), m.id), "type": k.name()}))
                })
                .collect();
            if !members.is_empty() {
                doc.insert("members".into(), Value::Array(members));
            }
        }
    }
    doc
}

/// The full resource: document, `schemas` and `meta`.
fn render(st: &TenantState, base: &str, kind: Kind, id: &str) -> Value {
    let mut doc = document(st, base, kind, id);
    let mut schemas = vec![json!(kind.schema())];
    if doc.contains_key(ENTERPRISE_SCHEMA) {
        schemas.push(json!(ENTERPRISE_SCHEMA));
    }
    let mut meta = json!({"resourceType": kind.name(), "location": format!("{base}/{}/{id}", kind.endpoint())});
    if let Some(Value::Object(m)) = st.object(&kind.object(id)).and_then(|a| a.get("scim_meta")) {
        for (k, v) in m {
            meta[k] = v.clone();
        }
    }
    doc.insert("schemas".into(), Value::Array(schemas));
    doc.insert("meta".into(), meta);
    Value::Object(doc)
}

fn exists(st: &TenantState, kind: Kind, id: &str) -> bool {
    validate_id(id).is_ok() && st.subject_known(&kind.object(id))
}

// ------------------------------------------------------------------ listing

/// `attributes` / `excludedAttributes`: top-level names or `name.sub`,
/// optionally URN-prefixed; `id`, `schemas` and `meta` are always returned.
fn project(v: Value, kind: Kind, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(mut o) = v else { return v };
    let split = |a: &str| -> (String, Option<String>) {
        let a = a.strip_prefix(kind.schema()).map(|r| r.trim_start_matches(':')).unwrap_or(a);
        match a.split_once('.') {
            Some((x, s)) => (x.to_ascii_lowercase(), Some(s.to_ascii_lowercase())),
            None => (a.to_ascii_lowercase(), None),
        }
    };
    let always = |k: &str| matches!(k, "id" | "schemas" | "meta");
    if !attributes.is_empty() {
        let wanted: Vec<(String, Option<String>)> = attributes.iter().map(|a| split(a)).collect();
        o.retain(|k, v| {
            let lk = k.to_ascii_lowercase();
            if always(&lk) || wanted.iter().any(|(a, s)| *a == lk && s.is_none()) {
                return true;
            }
            let subs: Vec<&String> = wanted.iter().filter(|(a, _)| *a == lk).filter_map(|(_, s)| s.as_ref()).collect();
            if subs.is_empty() {
                return false;
            }
            let keep = |e: &mut Value| {
                if let Value::Object(m) = e {
                    m.retain(|sk, _| subs.contains(&&sk.to_ascii_lowercase()));
                }
            };
            match v {
                Value::Array(items) => items.iter_mut().for_each(keep),
                other => keep(other),
            }
            true
        });
    }
    for (a, s) in excluded.iter().map(|a| split(a)) {
        if always(&a) {
            continue;
        }
        let keys: Vec<String> = o.keys().filter(|k| k.to_ascii_lowercase() == a).cloned().collect();
        for k in keys {
            match &s {
                None => {
                    o.remove(&k);
                }
                Some(sub) => {
                    let drop = |e: &mut Value| {
                        if let Value::Object(m) = e {
                            m.retain(|sk, _| sk.to_ascii_lowercase() != *sub);
                        }
                    };
                    match o.get_mut(&k) {
                        Some(Value::Array(items)) => items.iter_mut().for_each(drop),
                        Some(other) => drop(other),
                        None => {}
                    }
                }
            }
        }
    }
    Value::Object(o)
}

#[derive(Debug, Default)]
struct ListParams {
    filter: Option<Filter>,
    start_index: usize,
    count: usize,
    attributes: Vec<String>,
    excluded: Vec<String>,
    force: bool,
}

fn list_params(q: Params) -> Result<ListParams, ScimError> {
    let Query(pairs) = q.map_err(|e| ScimError::bad("invalidValue", e.body_text().to_lowercase()))?;
    let mut p = ListParams { start_index: 1, count: 100, ..Default::default() };
    let num = |k: &str, v: &str| {
        v.trim().parse::<i64>().map_err(|_| ScimError::bad("invalidValue", format!("`{k}`: `{v}` is not an integer")))
    };
    let names = |v: &str| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>();
    for (k, v) in pairs {
        match k.to_ascii_lowercase().as_str() {
            "filter" => {
                p.filter =
                    Some(filter::parse(&v).map_err(|e| ScimError::bad("invalidFilter", format!("filter `{v}`: {e}")))?)
            }
            "startindex" => p.start_index = num(&k, &v)?.max(1) as usize,
            "count" => p.count = (num(&k, &v)?.max(0) as usize).min(MAX_RESULTS),
            "attributes" => p.attributes = names(&v),
            "excludedattributes" => p.excluded = names(&v),
            "force" => {
                p.force = match v.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(ScimError::bad("invalidValue", format!("`{k}`: `{v}` is not `true` or `false`"))),
                }
            }
            // Sorting is not supported (ServiceProviderConfig says so); it is ignored.
            "sortby" | "sortorder" => {}
            _ => return Err(ScimError::bad("invalidValue", format!("unknown query parameter `{k}`"))),
        }
    }
    Ok(p)
}

/// The search parameters of a `POST .../.search` body (RFC 7644 §3.4.3).
fn search_params(body: &Map<String, Value>) -> Result<ListParams, ScimError> {
    let mut p = ListParams { start_index: 1, count: 100, ..Default::default() };
    let names = |k: &str, v: &Value| -> Result<Vec<String>, ScimError> {
        match v {
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ScimError::bad("invalidValue", format!("`{k}` lists strings")))
                })
                .collect(),
            Value::String(s) => Ok(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()),
            Value::Null => Ok(vec![]),
            _ => Err(ScimError::bad("invalidValue", format!("`{k}` lists strings"))),
        }
    };
    let int =
        |k: &str, v: &Value| v.as_i64().ok_or_else(|| ScimError::bad("invalidValue", format!("`{k}` is an integer")));
    for (k, v) in body {
        match k.to_ascii_lowercase().as_str() {
            "schemas" | "sortby" | "sortorder" => {}
            "filter" => {
                let f = v.as_str().ok_or_else(|| ScimError::bad("invalidFilter", "`filter` is a string"))?;
                p.filter =
                    Some(filter::parse(f).map_err(|e| ScimError::bad("invalidFilter", format!("filter `{f}`: {e}")))?);
            }
            "startindex" => p.start_index = int(k, v)?.max(1) as usize,
            "count" => p.count = (int(k, v)?.max(0) as usize).min(MAX_RESULTS),
            "attributes" => p.attributes = names(k, v)?,
            "excludedattributes" => p.excluded = names(k, v)?,
            _ => return Err(ScimError::bad("invalidValue", format!("unknown search parameter `{k}`"))),
        }
    }
    Ok(p)
}

/// A list response over one or more resource types, in id order.
async fn list(
    state: AppState,
    caller: ScimCaller,
    kinds: &'static [Kind],
    p: ListParams,
) -> Result<Response, ScimError> {
    let tenant = state.tenant(&caller.tenant)?;
    let base = base_url(&state, &caller.tenant);
    let body = blocking(move || {
        let st = tenant.read();
        let ids: Vec<(Kind, String)> =
            kinds.iter().flat_map(|&kind| st.subject_ids(kind.ty()).into_iter().map(move |id| (kind, id))).collect();
        let (total, page): (usize, Vec<(Kind, Value)>) = match &p.filter {
            None => {
                let page =
                    ids.iter().skip(p.start_index - 1).take(p.count).map(|(k, id)| (*k, render(&st, &base, *k, id)));
                (ids.len(), page.collect())
            }
            Some(f) => {
                let hits: Vec<(Kind, Value)> = ids
                    .iter()
                    .map(|(k, id)| (*k, render(&st, &base, *k, id)))
                    .filter(|(k, v)| {
                        filter::matches(f, v, &|a: &str, s: Option<&str>| schema::case_exact(k.schema(), a, s))
                    })
                    .collect();
                let total = hits.len();
                (total, hits.into_iter().skip(p.start_index - 1).take(p.count).collect())
            }
        };
        let resources: Vec<Value> = page.into_iter().map(|(k, v)| project(v, k, &p.attributes, &p.excluded)).collect();
        Ok(json!({
            "schemas": [schema::LIST_SCHEMA],
            "totalResults": total,
            "startIndex": p.start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }))
    })
    .await?;
    Ok(scim_response(StatusCode::OK, &body))
}

async fn get_one(
    state: AppState,
    caller: ScimCaller,
    kind: Kind,
    id: String,
    q: Params,
) -> Result<Response, ScimError> {
    let p = list_params(q)?;
    let tenant = state.tenant(&caller.tenant)?;
    let st = tenant.read();
    if !exists(&st, kind, &id) {
        return Err(ScimError::not_found(kind.name(), &id));
    }
    let v = render(&st, &base_url(&state, &caller.tenant), kind, &id);
    Ok(scim_response(StatusCode::OK, &project(v, kind, &p.attributes, &p.excluded)))
}

// ------------------------------------------------------------------- writes

/// Drops what a client cannot set (`id`, `meta`, `schemas`, read-only
/// attributes), what Holdfast never keeps (`password`) and null (unassigned)
/// attributes; a known attribute of the wrong type is 400 `invalidValue`.
/// `members` is checked by [`member_ref`].
fn writable(kind: Kind, mut doc: Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
    schema::normalize(kind.attrs(), &mut doc);
    doc.retain(|k, _| {
        let k = k.to_ascii_lowercase();
        !matches!(k.as_str(), "id" | "meta" | "schemas" | "password")
            && schema::find(kind.attrs(), &k).is_none_or(|a| a.mutability != "readOnly")
    });
    schema::check_types(kind.attrs(), &mut doc, &["members"]).map_err(|m| ScimError::bad("invalidValue", m))?;
    Ok(doc)
}

fn meta_attrs(st: &TenantState, o: &ObjectRef, now: Timestamp) -> Value {
    let created = st
        .object(o)
        .and_then(|a| a.get("scim_meta"))
        .and_then(|m| m.get("created"))
        .cloned()
        .unwrap_or_else(|| json!(now));
    json!({"created": created, "lastModified": now})
}

fn required_string(doc: &Map<String, Value>, key: &str) -> Result<String, ScimError> {
    match doc.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(ScimError::bad("invalidValue", format!("`{key}` is required")))
        }
        Some(_) => Err(ScimError::bad("invalidValue", format!("`{key}` is a string"))),
    }
}

/// The changes that make user `id` look like `doc`. `active` absent keeps
/// the current state.
fn user_changes(
    st: &TenantState,
    id: &str,
    doc: Map<String, Value>,
    actor: &str,
    now: Timestamp,
    active_removed: bool,
) -> Result<Vec<Change>, ScimError> {
    let mut doc = writable(Kind::User, doc)?;
    let active = match doc.remove("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(b),
        Some(v) => return Err(ScimError::bad("invalidValue", format!("`active` is a boolean, not `{v}`"))),
    };
    let user_name = required_string(&doc, "userName")?;
    let taken = st.subject_ids(ObjectType::User).into_iter().any(|other| {
        other != id
            && stored(st, Kind::User, &other)
                .get("userName")
                .and_then(Value::as_str)
                .is_some_and(|u| u.to_lowercase() == user_name.to_lowercase())
    });
    if taken {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("`userName` `{user_name}` is already taken"),
        ));
    }
    let o = Kind::User.object(id);
    let emails = doc.get("emails").and_then(Value::as_array).cloned().unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e.get("primary") == Some(&json!(true)))
        .or_else(|| emails.iter().find(|e| e.get("type").and_then(Value::as_str) == Some("work")))
        .or(emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str);
    let name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .or_else(|| doc.get("name").and_then(|n| n.get("formatted")).and_then(Value::as_str))
        .unwrap_or(&user_name);
    let mut attrs = json!({"name": name, "scim_meta": meta_attrs(st, &o, now)});
    // A PATCH that removes `active` lifts a suspension and leaves the
    // attribute unset (absent) until it is set again.
    let was_unset = st.object(&o).and_then(|a| a.get("scim_active_unset")) == Some(&json!(true));
    let active = if active_removed { Some(true) } else { active };
    if active_removed || (was_unset && active.is_none()) {
        attrs["scim_active_unset"] = json!(true);
    }
    if let Some(e) = email {
        attrs["email"] = json!(e);
    }
    attrs["scim"] = Value::Object(doc);
    let mut changes = vec![Change::PutObject(o.clone(), attrs)];
    let suspended = st.is_suspended(&o);
    match active {
        Some(false) if !suspended => {
            changes.push(Change::Suspend(o, Suspension { reason: format!("deactivated over SCIM ({actor})"), at: now }))
        }
        Some(true) if suspended => changes.push(Change::Reactivate(o)),
        _ => {}
    }
    Ok(changes)
}

/// A member reference: `{"value": id, "type"?: "User" | "Group"}`. Without
/// a type, a known user is preferred to a known group.
fn member_ref(st: &TenantState, m: &Value) -> Result<ObjectRef, ScimError> {
    let Some(o) = m.as_object() else {
        return Err(ScimError::bad("invalidValue", format!("a member is an object with a `value`, not `{m}`")));
    };
    let Some(id) = get_ci(o, "value").and_then(Value::as_str) else {
        return Err(ScimError::bad("invalidValue", "a member has a string `value`"));
    };
    validate_id(id).map_err(|e| ScimError::bad("invalidValue", format!("member `{id}` {e}")))?;
    let kinds: &[Kind] = match get_ci(o, "type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("user") => &[Kind::User],
        Some("group") => &[Kind::Group],
        None => &[Kind::User, Kind::Group],
        Some(t) => return Err(ScimError::bad("invalidValue", format!("member type `{t}` is not `User` or `Group`"))),
    };
    kinds
        .iter()
        .find(|k| exists(st, **k, id))
        .map(|k| k.object(id))
        .ok_or_else(|| ScimError::bad("invalidValue", format!("member `{id}` is not a known user or group")))
}

/// The changes that make group `id` look like `doc` (members absent = none).
fn group_changes(
    st: &TenantState,
    id: &str,
    doc: Map<String, Value>,
    now: Timestamp,
) -> Result<Vec<Change>, ScimError> {
    let mut doc = writable(Kind::Group, doc)?;
    let members = match doc.remove("members") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
    };
    let display = required_string(&doc, "displayName")?;
    let g = Kind::Group.object(id);
    let mut wanted: Vec<ObjectRef> = members.iter().map(|m| member_ref(st, m)).collect::<Result<_, _>>()?;
    wanted.sort();
    wanted.dedup();
    let current: Vec<ObjectRef> = st
        .group_members(&g)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| matches!(m.ty, ObjectType::User | ObjectType::Group))
        .collect();
    let attrs = json!({"name": display, "scim": Value::Object(doc), "scim_meta": meta_attrs(st, &g, now)});
    let mut changes = vec![Change::PutObject(g.clone(), attrs)];
    let t = |m: &ObjectRef| Tuple::new(g.clone(), "member", m.clone());
    changes.extend(current.iter().filter(|m| !wanted.contains(m)).map(|m| Change::DeleteTuple(t(m))));
    changes.extend(wanted.iter().filter(|m| !current.contains(m)).map(|m| Change::PutTuple(t(m), None)));
    Ok(changes)
}

fn changes_for(
    st: &TenantState,
    kind: Kind,
    id: &str,
    doc: Map<String, Value>,
    actor: &str,
    now: Timestamp,
) -> Result<Vec<Change>, ScimError> {
    match kind {
        Kind::User => user_changes(st, id, doc, actor, now, false),
        Kind::Group => group_changes(st, id, doc, now),
    }
}

/// Computes the changes from the tenant's state under its write lock
/// ([`Holdfast::write_with`]: a PATCH or a uniqueness check cannot race
/// another write) and commits them as one batch, on the blocking pool.
async fn write_with<F>(state: &AppState, caller: &ScimCaller, mut f: F) -> Result<(), ScimError>
where
    F: FnMut(&TenantState) -> Result<Vec<Change>, ScimError> + Send + 'static,
{
    let hf = Arc::clone(state.holdfast());
    let (tenant, actor) = (caller.tenant.clone(), caller.actor());
    let max = state.config().max_write_batch;
    let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let run = move || {
        hf.write_with(&tenant, &actor, at_ms, |st| {
            let changes = f(st)?;
            if changes.len() > max {
                return Err(ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some("tooMany"),
                    format!("the request makes {} changes (at most {max})", changes.len()),
                ));
            }
            Ok((changes, ()))
        })
    };
    tokio::task::spawn_blocking(run).await.map_err(|e| ScimError::from(ApiError::from(e)))??;
    Ok(())
}

/// Answers the resource as it now is.
fn answer(
    state: &AppState,
    caller: &ScimCaller,
    kind: Kind,
    id: &str,
    status: StatusCode,
) -> Result<Response, ScimError> {
    let base = base_url(state, &caller.tenant);
    let v = render(&state.tenant(&caller.tenant)?.read(), &base, kind, id);
    let mut res = scim_response(status, &v);
    if status == StatusCode::CREATED {
        if let Ok(loc) = HeaderValue::from_str(&format!("{base}/{}/{id}", kind.endpoint())) {
            res.headers_mut().insert(header::LOCATION, loc);
        }
    }
    Ok(res)
}

fn must_exist(st: &TenantState, kind: Kind, id: &str) -> Result<(), ScimError> {
    if exists(st, kind, id) {
        Ok(())
    } else {
        Err(ScimError::not_found(kind.name(), id))
    }
}

async fn create(state: AppState, caller: ScimCaller, kind: Kind, body: ScimBody) -> Result<Response, ScimError> {
    let id = new_id()?;
    let (id2, actor, now) = (id.clone(), caller.actor(), state.now());
    write_with(&state, &caller, move |st| changes_for(st, kind, &id2, body.0.clone(), &actor, now)).await?;
    answer(&state, &caller, kind, &id, StatusCode::CREATED)
}

async fn replace(
    state: AppState,
    caller: ScimCaller,
    kind: Kind,
    id: String,
    body: ScimBody,
) -> Result<Response, ScimError> {
    let (id2, actor, now) = (id.clone(), caller.actor(), state.now());
    write_with(&state, &caller, move |st| {
        must_exist(st, kind, &id2)?;
        changes_for(st, kind, &id2, body.0.clone(), &actor, now)
    })
    .await?;
    answer(&state, &caller, kind, &id, StatusCode::OK)
}

async fn patch_one(
    state: AppState,
    caller: ScimCaller,
    kind: Kind,
    id: String,
    body: ScimBody,
) -> Result<Response, ScimError> {
    let ops = patch::parse_ops(&Value::Object(body.0))?;
    let (id2, actor, now, base) = (id.clone(), caller.actor(), state.now(), base_url(&state, &caller.tenant));
    write_with(&state, &caller, move |st| {
        must_exist(st, kind, &id2)?;
        let mut doc = document(st, &base, kind, &id2);
        doc.remove("groups");
        let had_active = doc.contains_key("active");
        patch::apply(&mut doc, kind.attrs(), &ops)?;
        match kind {
            Kind::User => {
                let removed = had_active && !doc.contains_key("active");
                user_changes(st, &id2, doc, &actor, now, removed)
            }
            Kind::Group => group_changes(st, &id2, doc, now),
        }
    })
    .await?;
    answer(&state, &caller, kind, &id, StatusCode::OK)
}

/// Removes the user or group, every membership naming it and (for a user,
/// or a group with `?force=true`) its bindings, in one batch. A group that
/// bindings still reference answers 409 without `force`.
async fn delete(state: AppState, caller: ScimCaller, kind: Kind, id: String, q: Params) -> Result<Response, ScimError> {
    let force = list_params(q)?.force;
    write_with(&state, &caller, move |st| {
        must_exist(st, kind, &id)?;
        let o = kind.object(&id);
        if kind == Kind::Group && !force {
            let bound = st.bindings_matching(&BindingFilter { subject: Some(o.clone()), ..Default::default() });
            if !bound.is_empty() {
                let list: Vec<String> = bound.iter().take(5).map(|(t, _)| format!("`{t}`")).collect();
                return Err(ScimError::new(
                    StatusCode::CONFLICT,
                    None,
                    format!(
                        "group `{id}` is still bound by {} binding(s) ({}); delete them first, or add `?force=true`",
                        bound.len(),
                        list.join(", ")
                    ),
                ));
            }
        }
        let mut changes: Vec<Change> = st.tuples_naming(&o).into_iter().map(Change::DeleteTuple).collect();
        if st.is_suspended(&o) {
            changes.push(Change::Reactivate(o.clone()));
        }
        changes.push(Change::DeleteObject(o));
        Ok(changes)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----------------------------------------------------------------- handlers

async fn list_users(State(s): State<AppState>, c: ScimCaller, q: Params) -> Result<Response, ScimError> {
    list(s, c, &[Kind::User], list_params(q)?).await
}
async fn list_groups(State(s): State<AppState>, c: ScimCaller, q: Params) -> Result<Response, ScimError> {
    list(s, c, &[Kind::Group], list_params(q)?).await
}
async fn search_users(State(s): State<AppState>, c: ScimCaller, b: ScimBody) -> Result<Response, ScimError> {
    list(s, c, &[Kind::User], search_params(&b.0)?).await
}
async fn search_groups(State(s): State<AppState>, c: ScimCaller, b: ScimBody) -> Result<Response, ScimError> {
    list(s, c, &[Kind::Group], search_params(&b.0)?).await
}
async fn search_all(State(s): State<AppState>, c: ScimCaller, b: ScimBody) -> Result<Response, ScimError> {
    list(s, c, &[Kind::User, Kind::Group], search_params(&b.0)?).await
}
async fn get_user(State(s): State<AppState>, c: ScimCaller, p: IdPath, q: Params) -> Result<Response, ScimError> {
    get_one(s, c, Kind::User, p.0 .1, q).await
}
async fn get_group(State(s): State<AppState>, c: ScimCaller, p: IdPath, q: Params) -> Result<Response, ScimError> {
    get_one(s, c, Kind::Group, p.0 .1, q).await
}
async fn create_user(State(s): State<AppState>, c: ScimCaller, b: ScimBody) -> Result<Response, ScimError> {
    create(s, c, Kind::User, b).await
}
async fn create_group(State(s): State<AppState>, c: ScimCaller, b: ScimBody) -> Result<Response, ScimError> {
    create(s, c, Kind::Group, b).await
}
async fn replace_user(State(s): State<AppState>, c: ScimCaller, p: IdPath, b: ScimBody) -> Result<Response, ScimError> {
    replace(s, c, Kind::User, p.0 .1, b).await
}
async fn replace_group(
    State(s): State<AppState>,
    c: ScimCaller,
    p: IdPath,
    b: ScimBody,
) -> Result<Response, ScimError> {
    replace(s, c, Kind::Group, p.0 .1, b).await
}
async fn patch_user(State(s): State<AppState>, c: ScimCaller, p: IdPath, b: ScimBody) -> Result<Response, ScimError> {
    patch_one(s, c, Kind::User, p.0 .1, b).await
}
async fn patch_group(State(s): State<AppState>, c: ScimCaller, p: IdPath, b: ScimBody) -> Result<Response, ScimError> {
    patch_one(s, c, Kind::Group, p.0 .1, b).await
}
async fn delete_user(State(s): State<AppState>, c: ScimCaller, p: IdPath, q: Params) -> Result<Response, ScimError> {
    delete(s, c, Kind::User, p.0 .1, q).await
}
async fn delete_group(State(s): State<AppState>, c: ScimCaller, p: IdPath, q: Params) -> Result<Response, ScimError> {
    delete(s, c, Kind::Group, p.0 .1, q).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_uuids() {
        let a = new_id().unwrap();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(validate_id(&a).is_ok());
        assert_ne!(a, new_id().unwrap());
    }

    #[test]
    fn projection_keeps_id_schemas_meta() {
        let v = json!({"id": "1", "schemas": [], "meta": {}, "userName": "a", "name": {"givenName": "A", "familyName": "B"}, "emails": [{"value": "x", "type": "work"}]});
        let p = project(v.clone(), Kind::User, &["userName".into(), "name.givenName".into()], &[]);
        assert_eq!(p, json!({"id": "1", "schemas": [], "meta": {}, "userName": "a", "name": {"givenName": "A"}}));
        let p = project(v, Kind::User, &[], &["emails".into(), "name.familyName".into(), "id".into()]);
        assert_eq!(p, json!({"id": "1", "schemas": [], "meta": {}, "userName": "a", "name": {"givenName": "A"}}));
    }
}
