//! Groups: the paged list (search by prefix, member counts, nesting),
//! create, and a group's page: members (add, remove), the role bindings on
//! the group (add with conditions, remove) and the groups it belongs to.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{next_link, Ctx, Form, Nav, UiQuery, PAGE_SIZE};
use crate::api::resources::{attr, binding_tuple, delete_existing, membership, object, put_subject, write_binding};
use crate::api::wire::{SubjectIn, Window};
use crate::api::AppState;
use crate::model::conditions::parse_duration;
use crate::model::{ObjectRef, ObjectType, Timestamp, Tuple};
use crate::service::{BindingFilter, Change};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tenant}/groups", get(list).post(create))
        .route("/ui/t/{tenant}/groups/{group}", get(show))
        .route("/ui/t/{tenant}/groups/{group}/members", post(add_member))
        .route("/ui/t/{tenant}/groups/{group}/members/remove", post(remove_member))
        .route("/ui/t/{tenant}/groups/{group}/bindings", post(add_binding))
        .route("/ui/t/{tenant}/groups/{group}/bindings/remove", post(remove_binding))
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub after: Option<String>,
    /// `suspended`: only suspended users or service accounts.
    #[serde(default)]
    pub status: String,
}

/// One row of the groups list.
struct Row {
    id: String,
    name: Option<String>,
    users: usize,
    service_accounts: usize,
    subgroups: Vec<String>,
    parents: Vec<String>,
}

async fn list(ctx: Ctx, UiQuery(q): UiQuery<ListQuery>) -> Response {
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Groups, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let (rows, more) = {
        let st = tenant.read();
        let (ids, more) = st.subject_ids_page(ObjectType::Group, q.q.trim(), q.after.as_deref(), PAGE_SIZE);
        let rows: Vec<Row> = ids
            .into_iter()
            .map(|id| {
                let g = ObjectRef::new(ObjectType::Group, &id);
                let members = st.group_members(&g).unwrap_or_default();
                let count = |ty| members.iter().filter(|m| m.ty == ty).count();
                Row {
                    name: attr(st.object(&g), "name"),
                    users: count(ObjectType::User),
                    service_accounts: count(ObjectType::ServiceAccount),
                    subgroups: members.iter().filter(|m| m.ty == ObjectType::Group).map(|m| m.id.clone()).collect(),
                    parents: st.direct_groups(&g).into_iter().map(|p| p.id).collect(),
                    id,
                }
            })
            .collect();
        (rows, more)
    };
    let base = ctx.base();
    let next = more.then(|| rows.last().map(|r| r.id.clone())).flatten();
    let body = html! {
        form.search method="get" action={ (base) "/groups" } role="search" {
            label for="q" { "Search groups by id prefix" }
            input #q type="search" name="q" value=(q.q);
            button type="submit" { "Search" }
        }
        @if rows.is_empty() {
            p { "No groups" @if !q.q.is_empty() { " starting with “" (q.q) "”" } "." }
        } @else {
            table {
                thead { tr { th { "Group" } th { "Name" } th { "Users" } th { "Service accounts" } th { "Groups in it" } th { "Member of" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { a href={ (base) "/groups/" (r.id) } { (r.id) } }
                            td { (r.name.as_deref().unwrap_or("")) }
                            td.num { (r.users) }
                            td.num { (r.service_accounts) }
                            td { (group_links(&base, &r.subgroups)) }
                            td { (group_links(&base, &r.parents)) }
                        }
                    }
                }
            }
        }
        (next_link(&format!("{base}/groups"), &[("q", &q.q)], next.as_deref()))
        @if ctx.can_write() {
            section {
                h2 { "Create a group" }
                form.card method="post" action={ (base) "/groups" } {
                    (ctx.csrf())
                    p { label for="new-id" { "Id" } input #new-id type="text" name="id" required pattern="[A-Za-z0-9._~@+-]+" placeholder="on-call"; }
                    p { label for="new-name" { "Display name (optional)" } input #new-name type="text" name="name"; }
                    button type="submit" { "Create group" }
                }
            }
        }
    };
    ctx.page(Nav::Groups, "Groups", body)
}

fn group_links(base: &str, ids: &[String]) -> Markup {
    html! {
        @for (i, g) in ids.iter().enumerate() {
            @if i > 0 { ", " }
            a href={ (base) "/groups/" (g) } { (g) }
        }
    }
}

async fn create(ctx: Ctx, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/groups", ctx.base());
    let id = form.get("id").to_string();
    let g = match object(ObjectType::Group, &id) {
        Ok(g) => g,
        Err(e) => return ctx.finish(&back, Err(e.message)),
    };
    let exists = ctx.state.tenant(&ctx.tenant).is_ok_and(|t| t.read().subject_known(&g));
    if exists {
        return ctx.finish(&format!("{back}/{id}"), Err(format!("group `{id}` already exists")));
    }
    let body = SubjectIn { name: form.opt("name").map(str::to_string), email: None };
    match put_subject(&ctx.state, &auth, g, body).await {
        Ok(_) => ctx.finish(&format!("{back}/{id}"), Ok(format!("created group `{id}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

/// What a group page shows, read from one snapshot.
struct GroupView {
    name: Option<String>,
    /// Direct members in all.
    total: usize,
    /// One page of them, and where the next starts.
    members: (Vec<ObjectRef>, Option<String>),
    bindings: Vec<(Tuple, Option<crate::model::Conditions>)>,
    parents: Vec<ObjectRef>,
    roles: Vec<String>,
    apps: Vec<String>,
}

/// A page of a group's members: their reference text starts with `q`,
/// after `after`.
#[derive(Debug, Default, Deserialize)]
pub struct MemberQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub after: Option<String>,
}

async fn show(ctx: Ctx, Path((_, group)): Path<(String, String)>, UiQuery(mq): UiQuery<MemberQuery>) -> Response {
    let g = match object(ObjectType::Group, &group) {
        Ok(g) => g,
        Err(e) => return ctx.error(Nav::Groups, StatusCode::BAD_REQUEST, &e.message),
    };
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Groups, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let view = {
        let st = tenant.read();
        st.group_members(&g).map(|all| GroupView {
            name: attr(st.object(&g), "name"),
            total: all.len(),
            members: {
                let q = mq.q.trim();
                let mut page: Vec<ObjectRef> = all
                    .into_iter()
                    .filter(|m| {
                        let text = m.to_string();
                        text.starts_with(q) && mq.after.as_deref().is_none_or(|a| text.as_str() > a)
                    })
                    .take(PAGE_SIZE + 1)
                    .collect();
                let more = page.len() > PAGE_SIZE;
                page.truncate(PAGE_SIZE);
                let next = if more { page.last().map(ToString::to_string) } else { None };
                (page, next)
            },
            bindings: st.bindings_matching(&BindingFilter { subject: Some(g.clone()), ..Default::default() }),
            parents: st.direct_groups(&g),
            roles: st.role_names(),
            apps: st.app_names(),
        })
    };
    let Some(v) = view else {
        return ctx.error(Nav::Groups, StatusCode::NOT_FOUND, &format!("There is no group `{group}` in this tenant."));
    };
    let base = ctx.base();
    let here = format!("{base}/groups/{group}");
    let w = ctx.can_write();
    let body = html! {
        @if let Some(n) = &v.name { p.lead { (n) } }
        p { a href={ (base) "/effective-access?subject=group:" (group) } { "Effective access of this group" } }
        section {
            h2 { "Members (" (v.total) ")" }
            @if v.total > PAGE_SIZE || !mq.q.is_empty() {
                form.search method="get" action=(here) role="search" {
                    label for="mq" { "Search members by prefix" }
                    input #mq type="search" name="q" value=(mq.q) placeholder="user:al";
                    button type="submit" { "Search" }
                }
            }
            @if v.members.0.is_empty() { p { "No members" @if !mq.q.is_empty() { " starting with “" (mq.q) "”" } "." } } @else {
                table {
                    thead { tr { th { "Member" } th { "Kind" } @if w { th { span.sr { "Actions" } } } } }
                    tbody {
                        @for m in &v.members.0 {
                            tr {
                                td { (member_link(&base, m)) }
                                td { (kind_label(m.ty)) }
                                @if w {
                                    td {
                                        form.inline method="post" action={ (here) "/members/remove" } {
                                            (ctx.csrf())
                                            input type="hidden" name="member" value=(m.to_string());
                                            button.danger type="submit" aria-label={ "Remove " (m.to_string()) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (next_link(&here, &[("q", &mq.q)], v.members.1.as_deref()))
            @if w {
                form.card method="post" action={ (here) "/members" } {
                    (ctx.csrf())
                    p {
                        label for="member" { "Add a member" }
                        input #member type="text" name="member" required placeholder="user:alice, service_account:ci-bot or group:sre";
                    }
                    button type="submit" { "Add member" }
                }
            }
        }
        section {
            h2 { "Role bindings on this group" }
            @if v.bindings.is_empty() { p { "No role bindings: members get nothing from this group." } } @else {
                table {
                    thead { tr { th { "Role" } th { "Application" } th { "Conditions" } @if w { th { span.sr { "Actions" } } } } }
                    tbody {
                        @for (t, c) in &v.bindings {
                            tr {
                                td { (t.relation) }
                                td { @if t.object.ty == ObjectType::Application { (t.object.id) } @else { em { "tenant-wide" } } }
                                td { (c.as_ref().map_or("none".to_string(), |c| c.summary())) }
                                @if w {
                                    td {
                                        form.inline method="post" action={ (here) "/bindings/remove" } {
                                            (ctx.csrf())
                                            input type="hidden" name="binding" value=(t.to_string());
                                            button.danger type="submit" aria-label={ "Remove " (t.to_string()) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if w { (binding_form(&ctx, &here, &v)) }
        }
        section {
            h2 { "Member of" }
            @if v.parents.is_empty() { p { "This group is in no other group." } } @else {
                ul { @for p in &v.parents { li { a href={ (base) "/groups/" (p.id) } { (p.to_string()) } } } }
            }
        }
    };
    ctx.page(Nav::Groups, &format!("Group {group}"), body)
}

fn binding_form(ctx: &Ctx, here: &str, v: &GroupView) -> Markup {
    html! {
        form.card method="post" action={ (here) "/bindings" } {
            h3 { "Bind a role" }
            (ctx.csrf())
            p {
                label for="role" { "Role" }
                select #role name="role" required { @for r in &v.roles { option value=(r) { (r) } } }
            }
            p {
                label for="application" { "Application" }
                select #application name="application" {
                    option value="" { "(tenant-wide: every application)" }
                    @for a in &v.apps { option value=(a) { (a) } }
                }
            }
            fieldset {
                legend { "Conditions (optional)" }
                p.check { input #mfa type="checkbox" name="mfa" value="yes"; label for="mfa" { "Require multi-factor authentication" } }
                p { label for="mfa_max_age" { "MFA at most this old (e.g. 15m; empty: any age)" } input #mfa_max_age type="text" name="mfa_max_age" placeholder="15m"; }
                p { label for="ip" { "Allowed client IP ranges, one per line or comma-separated (empty: any)" } textarea #ip name="ip" rows="2" placeholder="10.0.0.0/8" {} }
                p { label for="expires_at" { "Expires at (RFC 3339, e.g. 2027-01-01T00:00:00Z)" } input #expires_at type="text" name="expires_at"; }
                p { label for="expires_in" { "…or expires in (e.g. 30days)" } input #expires_in type="text" name="expires_in"; }
            }
            button type="submit" { "Bind role" }
        }
    }
}

fn member_link(base: &str, m: &ObjectRef) -> Markup {
    match m.ty {
        ObjectType::Group => html! { a href={ (base) "/groups/" (m.id) } { (m.to_string()) } },
        _ => html! { a href={ (base) "/effective-access?subject=" (m.to_string()) } { (m.to_string()) } },
    }
}

pub fn kind_label(ty: ObjectType) -> &'static str {
    match ty {
        ObjectType::User => "user",
        ObjectType::ServiceAccount => "service account",
        ObjectType::Group => "group",
        _ => "other",
    }
}

async fn add_member(ctx: Ctx, Path((_, group)): Path<(String, String)>, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/groups/{group}", ctx.base());
    let member = form.get("member");
    let t = match membership(&group, member) {
        Ok(t) => t,
        Err(e) => return ctx.finish(&back, Err(e.message)),
    };
    let text = t.subject.to_string();
    match ctx.state.write(&auth.tenant, &auth.caller.name, vec![Change::PutTuple(t, None)], vec![]).await {
        Ok(_) => ctx.finish(&back, Ok(format!("added `{text}` to group `{group}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

async fn remove_member(ctx: Ctx, Path((_, group)): Path<(String, String)>, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/groups/{group}", ctx.base());
    let t = match membership(&group, form.get("member")) {
        Ok(t) => t,
        Err(e) => return ctx.finish(&back, Err(e.message)),
    };
    let text = t.subject.to_string();
    match delete_existing(&ctx.state, &auth, t, "membership").await {
        Ok(_) => ctx.finish(&back, Ok(format!("removed `{text}` from group `{group}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

/// The conditions of the binding form as the JSON API's `conditions`
/// object, so the API's own parser and validation read them.
fn conditions_json(form: &Form) -> Result<Option<Value>, String> {
    let mut c = Map::new();
    if form.checked("mfa") {
        let mut mfa = Map::new();
        mfa.insert("required".into(), json!(true));
        if let Some(age) = form.opt("mfa_max_age") {
            parse_duration(age).map_err(|m| format!("MFA max age: {m}"))?;
            mfa.insert("max_age".into(), json!(age));
        }
        c.insert("mfa".into(), Value::Object(mfa));
    } else if form.opt("mfa_max_age").is_some() {
        return Err("an MFA max age was given without requiring MFA: tick “Require multi-factor authentication”".into());
    }
    let nets: Vec<&str> =
        form.get("ip").split(|ch: char| ch == ',' || ch.is_whitespace()).filter(|s| !s.is_empty()).collect();
    if !nets.is_empty() {
        c.insert("ip".into(), json!({ "allow": nets }));
    }
    Ok((!c.is_empty()).then_some(Value::Object(c)))
}

async fn add_binding(ctx: Ctx, Path((_, group)): Path<(String, String)>, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/groups/{group}", ctx.base());
    let g = match object(ObjectType::Group, &group) {
        Ok(g) => g,
        Err(e) => return ctx.finish(&back, Err(e.message)),
    };
    let tuple = match binding_tuple(&g, form.get("role"), form.opt("application")) {
        Ok(t) => t,
        Err(e) => return ctx.finish(&back, Err(e.message)),
    };
    let conditions = match conditions_json(&form) {
        Ok(c) => c,
        Err(m) => return ctx.finish(&back, Err(m)),
    };
    let expires_at = match form.opt("expires_at").map(Timestamp::parse).transpose() {
        Ok(t) => t,
        Err(m) => return ctx.finish(&back, Err(format!("expires at: {m}"))),
    };
    let window =
        Window { conditions, expires_at, expires_in: form.opt("expires_in").map(str::to_string), not_before: None };
    let text = tuple.to_string();
    match write_binding(&ctx.state, &auth, tuple, window, ctx.state.now()).await {
        Ok(_) => ctx.finish(&back, Ok(format!("bound `{text}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

async fn remove_binding(ctx: Ctx, Path((_, group)): Path<(String, String)>, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/groups/{group}", ctx.base());
    let t = match Tuple::parse(form.get("binding")) {
        Ok(t) => t,
        Err(e) => return ctx.finish(&back, Err(format!("binding: {e}"))),
    };
    if t.subject != ObjectRef::new(ObjectType::Group, &group) {
        return ctx.finish(&back, Err(format!("`{t}` is not a binding of group `{group}`")));
    }
    let text = t.to_string();
    match delete_existing(&ctx.state, &auth, t, "binding").await {
        Ok(_) => ctx.finish(&back, Ok(format!("removed `{text}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}
