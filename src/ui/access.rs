//! Effective access: every binding that affects a subject (origin, path,
//! conditions, expiry, status; expired ones behind a toggle), and below it
//! **Why?**: an explained check for an application, a scope and a context,
//! rendered for a person.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::{reason_words, Ctx, Nav, UiQuery};
use crate::api::error::blocking;
use crate::api::query::access_of;
use crate::api::wire::{AccessQuery, ContextIn};
use crate::api::AppState;
use crate::explain::{self, BindingTrace, Explanation};
use crate::model::conditions::parse_duration;
use crate::model::Timestamp;
use crate::query::{AccessEntry, Decision};

pub fn routes() -> Router<AppState> {
    Router::new().route("/ui/t/{tenant}/effective-access", get(page))
}

#[derive(Debug, Default, Deserialize)]
pub struct AccessForm {
    #[serde(default)]
    subject: String,
    /// `1`: also list expired bindings.
    #[serde(default)]
    expired: Option<String>,
    // Why?
    #[serde(default)]
    application: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    /// `yes`: the request carries MFA.
    #[serde(default)]
    mfa: Option<String>,
    /// How long ago the MFA happened (`5m`), or when (RFC 3339).
    #[serde(default)]
    mfa_at: Option<String>,
    #[serde(default)]
    ip: Option<String>,
}

pub(super) fn origin_tag(origin: &str) -> Markup {
    let label = match origin {
        "direct" => "direct",
        "group" => "group",
        "service_account" | "service-account" => "service account",
        other => other,
    };
    html! { span class={ "tag tag-" (origin.replace('_', "-")) } { (label) } }
}

fn status_tag(status: &str) -> Markup {
    html! { span class={ "status status-" (status.replace('_', "-")) } { (status.replace('_', " ")) } }
}

fn entries_table(entries: &[AccessEntry]) -> Markup {
    html! {
        table.access {
            thead { tr { th { "Role" } th { "Application" } th { "Scopes" } th { "Origin" } th { "Path" } th { "Conditions" } th { "Expires" } th { "Status" } } }
            tbody {
                @for e in entries {
                    tr data-binding=(e.binding) {
                        td { (e.role) }
                        td { @match &e.application { Some(a) => (a), None => em { "tenant-wide" } } }
                        td { (e.scopes.join(" ")) }
                        td { (origin_tag(e.origin)) }
                        td.path { (e.path.join(" → ")) }
                        td { (e.conditions.as_ref().map_or("none".to_string(), |c| c.summary())) }
                        td { (e.expires_at.map_or("never".to_string(), |t| t.to_string())) }
                        td { (status_tag(e.status)) }
                    }
                }
            }
        }
    }
}

/// The request context of a Why? question, parsed by the API's own
/// context type (the same one `/check` reads).
fn context(f: &AccessForm, now: Timestamp) -> Result<crate::model::Context, String> {
    let mut ctx = serde_json::Map::new();
    if f.mfa.as_deref() == Some("yes") {
        let at = match f.mfa_at.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => now,
            Some(s) => match parse_duration(s) {
                Ok(ago) => Timestamp(now.0.saturating_sub(ago.as_secs() as i64).max(0)),
                Err(_) => Timestamp::parse(s)
                    .map_err(|_| format!("MFA time: `{s}` is neither a duration ago (5m) nor an RFC 3339 time"))?,
            },
        };
        ctx.insert("mfa".into(), json!({"present": true, "auth_time": at.to_string()}));
    }
    if let Some(ip) = f.ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        ctx.insert("ip".into(), json!(ip));
    }
    let parsed: ContextIn = serde_json::from_value(serde_json::Value::Object(ctx)).map_err(|e| {
        let m = e.to_string();
        if m.contains("IP") || m.contains("address") {
            format!("client IP: `{}` is not an IP address", f.ip.as_deref().unwrap_or(""))
        } else {
            m
        }
    })?;
    Ok(parsed.resolve(now))
}

fn verdict_words(b: &BindingTrace, ex: &Explanation) -> String {
    let on = b.application.as_deref().map_or("tenant-wide".to_string(), |a| format!("on {a}"));
    match b.verdict {
        "grants" => format!("role {} {on} grants {}", b.role, ex.scope),
        "subject_suspended" => format!("role {} {on} grants {}, but {} is suspended", b.role, ex.scope, ex.subject),
        "other_application" => format!("role {} is bound {on}, not on {}", b.role, ex.application),
        "role_lacks_scope" => format!("role {} {on} does not grant {}", b.role, ex.scope),
        _ => format!("{} does not support {}", ex.application, ex.scope),
    }
}

fn decision_banner(ex: &Explanation) -> Markup {
    let (class, word) = match ex.outcome.decision {
        Decision::Allow => ("allow", "Allowed"),
        Decision::StepUp => ("step-up", "Step-up required"),
        Decision::Deny => ("deny", "Denied"),
    };
    html! {
        div class={ "decision decision-" (class) } role="status" {
            p.word { strong { (word) } }
            p { (reason_words(ex.outcome.reason)) " (" code { (ex.outcome.reason) } ")" }
            @if let Some(b) = &ex.outcome.binding { p { "Decided by " code { (b) } } }
            @if let Some(su) = &ex.outcome.step_up {
                p { "Ask for MFA" @if let Some(a) = &su.max_age_text { " no older than " (a) } " (acr_values=" (su.acr_values) "), then request " code { (su.scope) } " again." }
            }
        }
    }
}

fn trace_table(ex: &Explanation) -> Markup {
    html! {
        @if ex.bindings.is_empty() {
            p { "No binding reaches " (ex.subject) "." }
        } @else {
            table.trace {
                thead { tr { th { "Binding" } th { "Origin" } th { "Path" } th { "What the rules say" } th { "Conditions" } th { "Result" } } }
                tbody {
                    @for b in &ex.bindings {
                        @let grants = b.verdict == "grants";
                        @let blocked = grants && b.condition_result.is_some_and(|r| r != "satisfied");
                        tr class={ @if blocked { "blocked" } @else if grants { "grants" } @else { "inert" } } {
                            td { code { (b.binding) } }
                            td { (origin_tag(b.origin)) }
                            td.path { (b.path.join(" → ")) }
                            td { (verdict_words(b, ex)) }
                            td { (b.conditions.as_ref().map_or("none".to_string(), |c| c.summary())) }
                            td {
                                @match b.condition_result {
                                    Some("satisfied") => { "grants" }
                                    Some(r) => { "blocked: " (reason_words(r)) }
                                    None => { "does not apply" }
                                }
                            }
                        }
                    }
                }
            }
        }
        details { summary { "The trace as text" } pre { (ex.render()) } }
    }
}

async fn page(ctx: Ctx, UiQuery(f): UiQuery<AccessForm>) -> Response {
    let base = ctx.base();
    let subject = f.subject.trim().to_string();
    let include_expired = f.expired.as_deref() == Some("1");
    let Ok(tenant) = ctx.state.tenant(&ctx.tenant) else {
        return ctx.error(Nav::Access, StatusCode::NOT_FOUND, "This tenant has no data.");
    };
    let (apps, scopes) = {
        let st = tenant.read();
        let apps = st.app_names();
        let mut scopes: Vec<String> = apps.iter().flat_map(|a| st.app_scope_names(a).unwrap_or_default()).collect();
        scopes.sort();
        scopes.dedup();
        (apps, scopes)
    };
    let pick = html! {
        form.search method="get" action={ (base) "/effective-access" } {
            label for="subject" { "Subject" }
            input #subject type="text" name="subject" value=(subject) required placeholder="user:alice";
            span.check {
                input #expired type="checkbox" name="expired" value="1" checked[include_expired];
                label for="expired" { "Show expired bindings" }
            }
            button type="submit" { "Show access" }
        }
    };
    if subject.is_empty() {
        let body = html! { (pick) p { "Paste a subject id (" code { "user:alice" } ", " code { "service_account:ci-bot" } ", " code { "group:sre" } ") to see every binding that affects it." } };
        return ctx.page(Nav::Access, "Effective access", body);
    }
    let q: AccessQuery = match serde_json::from_value(json!({ "include": include_expired.then_some("expired") })) {
        Ok(q) => q,
        Err(e) => return ctx.error(Nav::Access, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let access = match access_of(&ctx.state, &ctx.tenant, subject.clone(), q).await {
        Ok(a) => a.access,
        Err(e) => {
            let body = html! { (pick) p.error role="alert" { (e.message) } };
            return ctx.page_status(e.code.status(), Nav::Access, "Effective access", body);
        }
    };
    let why = match f.application.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(app) => {
            let scope = f.scope.clone().unwrap_or_default().trim().to_string();
            Some(match context(&f, ctx.state.now()) {
                Err(m) => Err(m),
                Ok(c) => {
                    let (t, s, a) = (tenant.clone(), subject.clone(), app.to_string());
                    blocking(move || {
                        let st = t.read();
                        Ok(explain::explain(st.facts(), &s, &a, &scope, &c)?)
                    })
                    .await
                    .map_err(|e| e.message)
                }
            })
        }
    };
    let suspended = access.status == "suspended";
    let list_of = if subject.starts_with("service_account:") { "service-accounts" } else { "users" };
    let mfa_yes = f.mfa.as_deref() == Some("yes");
    let body = html! {
        (pick)
        p.lead {
            code { (access.subject) } " is " (status_tag(access.status))
            @if suspended { " — " a href={ (base) "/" (list_of) "?q=" (subject.split_once(':').map_or("", |x| x.1)) } { "reactivate" } }
            @if access.status == "unknown" { ": no declaration, membership or binding names it in this tenant" }
        }
        @if access.entries.is_empty() {
            p { "No bindings" @if !include_expired { " (expired ones are hidden)" } "." }
        } @else {
            (entries_table(&access.entries))
        }
        section #why {
            h2 { "Why?" }
            form.card method="get" action={ (base) "/effective-access#why" } {
                input type="hidden" name="subject" value=(subject);
                @if include_expired { input type="hidden" name="expired" value="1"; }
                div.row {
                    p {
                        label for="application" { "Application" }
                        select #application name="application" {
                            @for a in &apps { option value=(a) selected[f.application.as_deref() == Some(a.as_str())] { (a) } }
                        }
                    }
                    p {
                        label for="scope" { "Scope" }
                        input #scope type="text" name="scope" list="scopes" value=(f.scope.as_deref().unwrap_or("")) required placeholder="deploy:prod";
                        datalist #scopes { @for s in &scopes { option value=(s) {} } }
                    }
                }
                fieldset {
                    legend { "Context" }
                    p.check {
                        input #mfa-no type="radio" name="mfa" value="no" checked[!mfa_yes]; label for="mfa-no" { "No MFA" }
                        input #mfa-yes type="radio" name="mfa" value="yes" checked[mfa_yes]; label for="mfa-yes" { "MFA done" }
                    }
                    p { label for="mfa_at" { "MFA time: how long ago (5m) or when (RFC 3339)" } input #mfa_at type="text" name="mfa_at" value=(f.mfa_at.as_deref().unwrap_or("")) placeholder="5m"; }
                    p { label for="ip" { "Client IP (empty: none)" } input #ip type="text" name="ip" value=(f.ip.as_deref().unwrap_or("")) placeholder="10.1.2.3"; }
                }
                button type="submit" { "Explain" }
            }
            @match &why {
                None => {}
                Some(Err(m)) => { p.error role="alert" { (m) } }
                Some(Ok(ex)) => {
                    h3 { "May " (ex.subject) " use " (ex.scope) " on " (ex.application) "?" }
                    (decision_banner(ex))
                    (trace_table(ex))
                }
            }
        }
    };
    ctx.page(Nav::Access, &format!("Effective access of {subject}"), body)
}
