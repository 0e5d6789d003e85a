//! End users and service accounts: paged lists searched on the server,
//! status, suspend (with a reason) and reactivate — the same calls as
//! `POST .../subjects/{subject}/suspend|reactivate`.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use super::groups::ListQuery;
use super::{next_link, Ctx, Form, Nav, UiQuery, PAGE_SIZE};
use crate::api::resources::attr;
use crate::api::subjects::{reactivate_subject, suspend_subject};
use crate::api::AppState;
use crate::model::{ObjectRef, ObjectType};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tenant}/users", get(users))
        .route("/ui/t/{tenant}/users/suspend", post(suspend_user))
        .route("/ui/t/{tenant}/users/reactivate", post(reactivate_user))
        .route("/ui/t/{tenant}/service-accounts", get(service_accounts))
        .route("/ui/t/{tenant}/service-accounts/suspend", post(suspend_sa))
        .route("/ui/t/{tenant}/service-accounts/reactivate", post(reactivate_sa))
}

#[derive(Clone, Copy)]
struct Kind {
    ty: ObjectType,
    path: &'static str,
    title: &'static str,
    nav: Nav,
}

const USERS: Kind = Kind { ty: ObjectType::User, path: "users", title: "Users", nav: Nav::Users };
const SERVICE_ACCOUNTS: Kind = Kind {
    ty: ObjectType::ServiceAccount,
    path: "service-accounts",
    title: "Service accounts",
    nav: Nav::ServiceAccounts,
};

struct Row {
    subject: ObjectRef,
    name: Option<String>,
    email: Option<String>,
    suspended: Option<String>,
    groups: Vec<ObjectRef>,
}

async fn users(ctx: Ctx, UiQuery(q): UiQuery<ListQuery>) -> Response {
    list(ctx, USERS, q).await
}

async fn service_accounts(ctx: Ctx, UiQuery(q): UiQuery<ListQuery>) -> Response {
    list(ctx, SERVICE_ACCOUNTS, q).await
}

async fn list(ctx: Ctx, kind: Kind, q: ListQuery) -> Response {
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(kind.nav, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let (rows, more) = {
        let st = tenant.read();
        let prefix = q.q.trim();
        let (ids, more) = if q.status == "suspended" {
            // Suspensions are kept sorted by subject: one page of them.
            let mut ids: Vec<String> = st
                .suspensions()
                .map(|(s, _)| s)
                .filter(|s| s.ty == kind.ty && s.id.starts_with(prefix))
                .filter(|s| q.after.as_deref().is_none_or(|a| s.id.as_str() > a))
                .take(PAGE_SIZE + 1)
                .map(|s| s.id.clone())
                .collect();
            let more = ids.len() > PAGE_SIZE;
            ids.truncate(PAGE_SIZE);
            (ids, more)
        } else {
            st.subject_ids_page(kind.ty, prefix, q.after.as_deref(), PAGE_SIZE)
        };
        let rows: Vec<Row> = ids
            .into_iter()
            .map(|id| {
                let s = ObjectRef::new(kind.ty, &id);
                let a = st.object(&s);
                Row {
                    name: attr(a, "name"),
                    email: attr(a, "email"),
                    suspended: st.suspension(&s).map(|x| x.reason.clone()),
                    groups: st.direct_groups(&s),
                    subject: s,
                }
            })
            .collect();
        (rows, more)
    };
    let base = ctx.base();
    let here = format!("{base}/{}", kind.path);
    let next = more.then(|| rows.last().map(|r| r.subject.id.clone())).flatten();
    let w = ctx.can_write();
    let body = html! {
        form.search method="get" action=(here) role="search" {
            label for="q" { "Search by id prefix" }
            input #q type="search" name="q" value=(q.q);
            span.check {
                input #suspended-only type="checkbox" name="status" value="suspended" checked[q.status == "suspended"];
                label for="suspended-only" { "Suspended only" }
            }
            button type="submit" { "Search" }
        }
        @if rows.is_empty() {
            p { "None found" @if !q.q.is_empty() { " starting with “" (q.q) "”" } "." }
        } @else {
            table {
                thead { tr { th { "Id" } th { "Name" } @if kind.ty == ObjectType::User { th { "Email" } } th { "Groups" } th { "Status" } @if w { th { span.sr { "Actions" } } } } }
                tbody {
                    @for r in &rows {
                        tr data-subject=(r.subject.to_string()) {
                            td { a href={ (base) "/effective-access?subject=" (r.subject.to_string()) } { (r.subject.id) } }
                            td { (r.name.as_deref().unwrap_or("")) }
                            @if kind.ty == ObjectType::User { td { (r.email.as_deref().unwrap_or("")) } }
                            td {
                                @for (i, g) in r.groups.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    a href={ (base) "/groups/" (g.id) } { (g.id) }
                                }
                            }
                            td {
                                @match &r.suspended {
                                    Some(reason) => {
                                        span.status.status-suspended { "suspended" }
                                        @if !reason.is_empty() { " — " (reason) }
                                    }
                                    None => { span.status.status-active { "active" } }
                                }
                            }
                            @if w {
                                td {
                                    @if r.suspended.is_some() {
                                        form.inline method="post" action={ (here) "/reactivate" } {
                                            (ctx.csrf())
                                            input type="hidden" name="subject" value=(r.subject.to_string());
                                            button type="submit" aria-label={ "Reactivate " (r.subject.id) } { "Reactivate" }
                                        }
                                    } @else {
                                        form.inline method="post" action={ (here) "/suspend" } {
                                            (ctx.csrf())
                                            input type="hidden" name="subject" value=(r.subject.to_string());
                                            label.sr for={ "reason-" (r.subject.id) } { "Reason for suspending " (r.subject.id) }
                                            input id={ "reason-" (r.subject.id) } type="text" name="reason" placeholder="reason";
                                            button.danger type="submit" aria-label={ "Suspend " (r.subject.id) } { "Suspend" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (next_link(&here, &[("q", &q.q), ("status", &q.status)], next.as_deref()))
    };
    ctx.page(kind.nav, kind.title, body)
}

/// The subject of a suspend/reactivate form, which must be of `kind`.
fn subject_of(form: &Form, kind: Kind) -> Result<ObjectRef, String> {
    let text = form.get("subject");
    let s = crate::api::resources::subject_ref(text).map_err(|e| e.message)?;
    if s.ty != kind.ty {
        return Err(format!("`{text}` is not a {}", super::groups::kind_label(kind.ty)));
    }
    Ok(s)
}

async fn suspend(ctx: Ctx, kind: Kind, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/{}", ctx.base(), kind.path);
    let s = match subject_of(&form, kind) {
        Ok(s) => s,
        Err(m) => return ctx.finish(&back, Err(m)),
    };
    match suspend_subject(&ctx.state, &auth, &s.to_string(), form.get("reason").to_string()).await {
        Ok(_) => ctx.finish(&back, Ok(format!("suspended `{s}`: every check for it is denied from now on"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

async fn reactivate(ctx: Ctx, kind: Kind, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let back = format!("{}/{}", ctx.base(), kind.path);
    let s = match subject_of(&form, kind) {
        Ok(s) => s,
        Err(m) => return ctx.finish(&back, Err(m)),
    };
    match reactivate_subject(&ctx.state, &auth, &s.to_string()).await {
        Ok(_) => ctx.finish(&back, Ok(format!("reactivated `{s}`"))),
        Err(e) => ctx.finish(&back, Err(e.message)),
    }
}

async fn suspend_user(ctx: Ctx, form: Form) -> Response {
    suspend(ctx, USERS, form).await
}

async fn reactivate_user(ctx: Ctx, form: Form) -> Response {
    reactivate(ctx, USERS, form).await
}

async fn suspend_sa(ctx: Ctx, form: Form) -> Response {
    suspend(ctx, SERVICE_ACCOUNTS, form).await
}

async fn reactivate_sa(ctx: Ctx, form: Form) -> Response {
    reactivate(ctx, SERVICE_ACCOUNTS, form).await
}
