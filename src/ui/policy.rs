//! Policy: paste or upload a policy file, see its findings (with line
//! numbers) and the access diff against the live tenant (a dry run of
//! `PUT .../policy`), then apply it — the same function as the API.

use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

use super::{Ctx, Form, Nav};
use crate::api::policy::{apply_text, ApplyResponse, Reject};
use crate::api::AppState;
use crate::policy::diff::{self, DiffOptions};
use crate::policy::validate::Located;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tenant}/policy", get(page))
        .route("/ui/t/{tenant}/policy/preview", post(preview))
        .route("/ui/t/{tenant}/policy/apply", post(apply))
}

const FILE_NAME: &str = "policy.yaml";

fn editor(ctx: &Ctx, text: &str) -> Markup {
    html! {
        form.card method="post" action={ (ctx.base()) "/policy/preview" } {
            (ctx.csrf())
            p {
                label for="policy-file" { "Upload a policy file (YAML or JSON)" }
                input #policy-file type="file" accept=".yaml,.yml,.json,application/yaml,application/json" data-fills="policy";
            }
            p {
                label for="policy" { "…or paste it" }
                textarea #policy name="policy" rows="18" spellcheck="false" required { (text) }
            }
            button type="submit" { "Validate and preview the diff" }
        }
    }
}

async fn page(ctx: Ctx) -> Response {
    let body = html! {
        p.hint { "A policy file replaces this tenant's roles, applications, groups and bindings with the file's, in one write. Preview first: nothing changes until you apply." }
        @if ctx.can_write() { (editor(&ctx, "")) } @else {
            p { "Credential `" (ctx.session.cred.name) "` is read-only: previewing and applying a policy file needs a read-write key. Use " code { "holdfast validate" } " and " code { "holdfast diff" } " offline." }
        }
    };
    ctx.page(Nav::Policy, "Policy", body)
}

fn findings_table(findings: &[Located]) -> Markup {
    html! {
        @if findings.is_empty() { p { "No findings." } } @else {
            table.findings {
                thead { tr { th { "Line" } th { "Severity" } th { "Code" } th { "Message" } } }
                tbody {
                    @for f in findings {
                        tr class={ "sev-" (f.severity) } {
                            td.num { (f.line) ":" (f.col) }
                            td { (f.severity) }
                            td { code { (f.code) } }
                            td { (f.message) @if let Some(h) = &f.hint { br; span.hint { "Hint: " (h) } } }
                        }
                    }
                }
            }
        }
    }
}

fn run_opts(ctx: &Ctx) -> DiffOptions {
    DiffOptions::new(ctx.state.now())
}

/// A rejected file or request, in words, with the editor to fix it.
fn rejected(ctx: &Ctx, text: &str, r: Reject) -> Response {
    let (status, body) = match r {
        Reject::Api(e) => (e.code.status(), html! { p.error role="alert" { (e.message) } }),
        Reject::Policy { message, findings } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            html! { p.error role="alert" { (message) } h2 { "Findings" } (findings_table(&findings)) },
        ),
    };
    ctx.page_status(status, Nav::Policy, "Policy", html! { (body) (editor(ctx, text)) })
}

fn preview_body(ctx: &Ctx, text: &str, out: &ApplyResponse) -> Markup {
    let c = &out.changes;
    html! {
        p.notice role="status" { "The file is valid. Nothing has been applied yet." }
        h2 { "Findings" }
        (findings_table(&out.warnings))
        h2 { "What applying would do" }
        p { (c.objects_put) " objects declared, " (c.objects_deleted) " removed; " (c.tuples_put) " tuples written, " (c.tuples_deleted) " deleted; " (c.memberships_kept) " membership(s) the file does not own kept." }
        h2 { "Access diff against the live tenant" }
        pre.diff { (diff::render_text(&out.diff)) }
        form.card method="post" action={ (ctx.base()) "/policy/apply" } {
            (ctx.csrf())
            textarea hidden name="policy" aria-hidden="true" { (text) }
            @if out.diff.risks.iter().any(|r| r.flag == diff::MASS_REMOVAL) {
                p.check { input #mass type="checkbox" name="allow_mass_removal" value="yes"; label for="mass" { "Yes, apply although it removes most of the tenant's access" } }
            }
            button.danger type="submit" { "Apply to tenant " (ctx.tenant) }
        }
        h2 { "Edit" }
        (editor(ctx, text))
    }
}

async fn preview(ctx: Ctx, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let text = form.raw("policy").to_string();
    match apply_text(&ctx.state, &auth, text.clone(), FILE_NAME.into(), vec![], run_opts(&ctx), true, false).await {
        Ok(out) => ctx.page(Nav::Policy, "Policy preview", preview_body(&ctx, &text, &out)),
        Err(r) => rejected(&ctx, &text, r),
    }
}

async fn apply(ctx: Ctx, form: Form) -> Response {
    let auth = match ctx.guard(&form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let text = form.raw("policy").to_string();
    let mass = form.checked("allow_mass_removal");
    match apply_text(&ctx.state, &auth, text.clone(), FILE_NAME.into(), vec![], run_opts(&ctx), false, mass).await {
        Ok(out) => {
            let rev = out.revision.map_or("?".to_string(), |r| r.0.to_string());
            let s = &out.diff.summary;
            ctx.finish(
                &format!("{}/policy", ctx.base()),
                Ok(format!(
                    "applied the policy file at revision {rev}: {} subjects changed ({} added, {} removed, {} weakened, {} strengthened)",
                    s.subjects_changed, s.added, s.removed, s.weakened, s.strengthened
                )),
            )
        }
        Err(r) => rejected(&ctx, &text, r),
    }
}
