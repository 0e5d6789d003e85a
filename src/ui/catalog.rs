//! Roles, applications (with who can access each, paged) and the activity
//! log (the change feed: when, who, what).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::{next_link, Ctx, Nav, UiQuery, PAGE_SIZE};
use crate::api::error::blocking;
use crate::api::resources::{app_out, role_out};
use crate::api::AppState;
use crate::query;
use crate::service::identity::IdentityChange;
use crate::service::{Change, ChangeEntry, TokenChange};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tenant}/roles", get(roles))
        .route("/ui/t/{tenant}/applications", get(applications))
        .route("/ui/t/{tenant}/applications/{application}", get(application))
        .route("/ui/t/{tenant}/changes", get(changes))
}

async fn roles(ctx: Ctx) -> Response {
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Roles, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let roles: Vec<_> = {
        let st = tenant.read();
        st.role_names().iter().filter_map(|r| role_out(&st, r)).collect()
    };
    let body = html! {
        p.hint { "Roles are defined by the policy file (" a href={ (ctx.base()) "/policy" } { "Policy" } ") or the API." }
        @if roles.is_empty() { p { "No roles are defined." } } @else {
            table {
                thead { tr { th { "Role" } th { "Name" } th { "Description" } th { "Scopes" } } }
                tbody {
                    @for r in &roles {
                        tr { td { code { (r.id) } } td { (r.name.as_deref().unwrap_or("")) } td { (r.description.as_deref().unwrap_or("")) } td { (scope_list(&r.scopes)) } }
                    }
                }
            }
        }
    };
    ctx.page(Nav::Roles, "Roles", body)
}

fn scope_list(scopes: &[String]) -> Markup {
    html! { @for s in scopes { code.scope { (s) } " " } }
}

async fn applications(ctx: Ctx) -> Response {
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Applications, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let apps: Vec<_> = {
        let st = tenant.read();
        st.app_names().iter().filter_map(|a| app_out(&st, a)).collect()
    };
    let base = ctx.base();
    let body = html! {
        @if apps.is_empty() { p { "No applications are defined." } } @else {
            table {
                thead { tr { th { "Application" } th { "Name" } th { "Resource URI" } th { "scopes_supported" } } }
                tbody {
                    @for a in &apps {
                        tr {
                            td { a href={ (base) "/applications/" (a.id) } { (a.id) } }
                            td { (a.name.as_deref().unwrap_or("")) }
                            td { @if let Some(r) = &a.resource { code { (r) } } }
                            td { (scope_list(&a.scopes_supported)) }
                        }
                    }
                }
            }
        }
    };
    ctx.page(Nav::Applications, "Applications", body)
}

#[derive(Debug, Default, Deserialize)]
struct WhoQuery {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    after: Option<String>,
}

async fn application(ctx: Ctx, Path((_, app)): Path<(String, String)>, UiQuery(q): UiQuery<WhoQuery>) -> Response {
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Applications, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let Some(info) = app_out(&tenant.read(), &app) else {
        return ctx.error(
            Nav::Applications,
            StatusCode::NOT_FOUND,
            &format!("There is no application `{app}` in this tenant."),
        );
    };
    let now = ctx.state.now();
    let (t, a, scope, after) = (Arc::clone(&tenant), app.clone(), q.scope.trim().to_string(), q.after.clone());
    let page = blocking(move || {
        let st = t.read();
        let scope = Some(scope.as_str()).filter(|s| !s.is_empty());
        Ok(query::who_can_access(st.facts(), &a, scope, now, after.as_deref(), PAGE_SIZE)?)
    })
    .await;
    let page = match page {
        Ok(Some(p)) => p,
        Ok(None) => return ctx.error(Nav::Applications, StatusCode::NOT_FOUND, &format!("no application `{app}`")),
        Err(e) => return ctx.error(Nav::Applications, e.code.status(), &e.message),
    };
    let base = ctx.base();
    let here = format!("{base}/applications/{app}");
    let body = html! {
        dl.facts {
            @if let Some(n) = &info.name { dt { "Name" } dd { (n) } }
            dt { "Resource URI" } dd { @match &info.resource { Some(r) => code { (r) }, None => "none" } }
            dt { "scopes_supported" } dd { (scope_list(&info.scopes_supported)) }
        }
        h2 { "Who can access" }
        form.search method="get" action=(here) {
            label for="scope" { "Only this scope" }
            select #scope name="scope" {
                option value="" { "(any scope)" }
                @for s in &info.scopes_supported { option value=(s) selected[q.scope == *s] { (s) } }
            }
            button type="submit" { "Filter" }
        }
        p.hint { "Users and service accounts with an unexpired binding that reaches this application; suspended subjects are left out. Conditions still apply at check time." }
        @if page.entries.is_empty() { p { "Nobody." } } @else {
            table.access {
                thead { tr { th { "Subject" } th { "Role" } th { "Scopes" } th { "Origin" } th { "Path" } th { "Conditions" } th { "Status" } } }
                tbody {
                    @for e in &page.entries {
                        tr {
                            td { a href={ (base) "/effective-access?subject=" (e.subject) } { (e.subject) } }
                            td { (e.access.role) }
                            td { (scope_list(&e.access.scopes)) }
                            td { (super::access::origin_tag(e.access.origin)) }
                            td.path { (e.access.path.join(" → ")) }
                            td { (e.access.conditions.as_ref().map_or("none".to_string(), |c| c.summary())) }
                            td { (e.access.status) }
                        }
                    }
                }
            }
        }
        (next_link(&here, &[("scope", &q.scope)], page.next_page_token.as_deref()))
    };
    ctx.page(Nav::Applications, &format!("Application {app}"), body)
}

// --------------------------------------------------------------- activity

#[derive(Debug, Default, Deserialize)]
struct ChangesQuery {
    #[serde(default)]
    since: Option<u64>,
}

/// One change in words.
fn describe(c: &Change) -> String {
    match c {
        Change::PutTuple(t, Some(cond)) => format!("wrote {t} ({})", cond.summary()),
        Change::PutTuple(t, None) => format!("wrote {t}"),
        Change::DeleteTuple(t) => format!("deleted {t}"),
        Change::PutObject(o, _) => format!("declared {o}"),
        Change::DeleteObject(o) => format!("removed {o}"),
        Change::Suspend(o, s) if s.reason.is_empty() => format!("suspended {o}"),
        Change::Suspend(o, s) => format!("suspended {o}: {}", s.reason),
        Change::Reactivate(o) => format!("reactivated {o}"),
        Change::Token(TokenChange::PutClient(_)) => "created application client credentials".into(),
        Change::Token(TokenChange::DeleteClient(_)) => "revoked application client credentials".into(),
        Change::Token(_) => "changed an access token".into(),
        Change::ScimToken(_) => "changed a SCIM token".into(),
        Change::OAuth(c) => crate::api::oauth_change_words(c),
        Change::Identity(IdentityChange::PutProvider(name, _)) => format!("configured identity provider {name}"),
        Change::Identity(IdentityChange::DeleteProvider(name)) => format!("removed identity provider {name}"),
        Change::Identity(IdentityChange::PutSynced { provider, user, groups }) => {
            format!("recorded {user}'s groups from {provider}: {}", groups.join(", "))
        }
        Change::Identity(IdentityChange::DeleteSynced { provider, user }) => {
            format!("forgot {user}'s groups from {provider}")
        }
    }
}

fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Changes shown per batch before “… and N more”.
const SHOWN_PER_BATCH: usize = 12;

async fn changes(ctx: Ctx, UiQuery(q): UiQuery<ChangesQuery>) -> Response {
    let since = q.since.unwrap_or(0);
    let hf = Arc::clone(ctx.state.holdfast());
    let tenant = ctx.tenant.clone();
    let entries: Result<Vec<ChangeEntry>, _> = blocking(move || Ok(hf.changes(&tenant, since, PAGE_SIZE + 1)?)).await;
    let mut entries = match entries {
        Ok(e) => e,
        Err(e) => return ctx.error(Nav::Activity, e.code.status(), &e.message),
    };
    let more = entries.len() > PAGE_SIZE;
    entries.truncate(PAGE_SIZE);
    let here = format!("{}/changes", ctx.base());
    let next = more.then(|| entries.last().map(|e| e.revision.to_string())).flatten();
    let body = html! {
        p.hint { "Every write to this tenant, oldest first: when, which credential (or SCIM token), and what changed." }
        @if entries.is_empty() { p { "No changes" @if since > 0 { " after revision " (since) } "." } } @else {
            table.activity {
                thead { tr { th { "Revision" } th { "When (UTC)" } th { "Who" } th { "What" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td.num { (e.revision) }
                            td { (when(e.at_unix_ms)) }
                            td { (e.actor) }
                            td {
                                ul.ops {
                                    @for c in e.changes.iter().take(SHOWN_PER_BATCH) { li { (describe(c)) } }
                                    @if e.changes.len() > SHOWN_PER_BATCH { li { "… and " (e.changes.len() - SHOWN_PER_BATCH) " more" } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(n) = next { p.pager { a rel="next" href={ (here) "?since=" (n) } { "Later changes →" } } }
    };
    ctx.page(Nav::Activity, "Activity", body)
}
