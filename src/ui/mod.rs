//! The admin UI at `/ui/`: server-rendered HTML (maud templates, compiled
//! with the server and escaped by default), a stylesheet and a small script
//! of our own embedded in the binary, and forms that work without
//! JavaScript. Served by `holdfast serve` on the API's listener unless
//! `--no-ui` ([`crate::api::ApiConfig::ui`]).
//!
//! This is the API layer in another format: every page reads the tenant
//! through the service snapshots and the `query` / `explain` / `policy`
//! functions, and every form writes through the same helpers as the JSON
//! handlers (`crate::api::{resources, subjects, query, policy}`), so no
//! rule is implemented twice.
//!
//! Security: sign-in takes an API key in a POST form (field `key`); the key
//! is checked like a bearer key and then forgotten. The session
//! ([`session`]) is a random id in an `HttpOnly; SameSite=Strict` cookie;
//! every POST form carries the session's CSRF token, compared in constant
//! time (403 without it). A read-only credential gets no forms that change
//! anything, and its POSTs are refused (403). Keys never appear in a URL,
//! a page or a log line.

mod access;
mod catalog;
mod groups;
pub mod oauth_pages;
mod policy;
pub mod session;
mod subjects;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use crate::api::auth::{Credential, TenantWrite};
use crate::api::{Access, AppState};
use crate::model::validate_id;
pub use session::Sessions;
use session::{Flash, Session};

const CSS: &str = include_str!("assets/holdfast.css");
const JS: &str = include_str!("assets/holdfast.js");

/// Rows on one page of a list.
pub const PAGE_SIZE: usize = 50;

/// The UI's routes (merged into [`crate::api::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/sign-in", post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/static/holdfast.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/ui/static/holdfast.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route("/ui/t/{tenant}", get(tenant_home))
        .route("/ui/t/{tenant}/", get(tenant_home))
        .merge(groups::routes())
        .merge(access::routes())
        .merge(subjects::routes())
        .merge(catalog::routes())
        .merge(policy::routes())
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// Pages are not cached, framed or sent to other sites; only our own
/// stylesheet and script run.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        if !h.contains_key(&k) {
            h.insert(k, HeaderValue::from_static(v));
        }
    };
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    res
}

// ------------------------------------------------------------ extractors

/// A signed-in session. Without one, a GET is redirected to the sign-in
/// page (and shows no data); anything else is refused (403).
pub struct Signed(pub Session);

fn session_of(headers: &HeaderMap, state: &AppState) -> Option<Session> {
    let id = session::cookie(headers, session::COOKIE)?;
    state.ui_sessions().get(&id, Instant::now())
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session_of(&parts.headers, state) {
            Some(s) => Ok(Signed(s)),
            None if parts.method == Method::GET || parts.method == Method::HEAD => {
                Err(Redirect::to("/ui/").into_response())
            }
            None => Err(bare_page(
                StatusCode::FORBIDDEN,
                "Sign in first",
                html! { p { "Your session has ended. " a href="/ui/" { "Sign in" } " again." } },
            )),
        }
    }
}

/// A signed-in session allowed to see the tenant of the path.
pub struct Ctx {
    pub state: AppState,
    pub session: Session,
    pub tenant: String,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        let tenant = match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => params.iter().find(|(k, _)| *k == "tenant").map(|(_, v)| v.to_string()),
            Err(_) => None,
        }
        .unwrap_or_default();
        let refuse = |status, title: &str, message: String| {
            signed_page(&session, None, status, title, html! { p.error role="alert" { (message) } })
        };
        if let Err(m) = validate_id(&tenant) {
            return Err(refuse(StatusCode::BAD_REQUEST, "No such tenant", format!("tenant `{tenant}` {m}")));
        }
        if session.cred.tenant.as_deref().is_some_and(|t| t != tenant) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Not your tenant",
                format!("credential `{}` may not see tenant `{tenant}`", session.cred.name),
            ));
        }
        if state.holdfast().tenant(&tenant).is_none() {
            return Err(refuse(StatusCode::NOT_FOUND, "No such tenant", format!("tenant `{tenant}` has no data")));
        }
        Ok(Ctx { state: state.clone(), session, tenant })
    }
}

impl Ctx {
    pub fn can_write(&self) -> bool {
        self.session.cred.access == Access::Write
    }

    /// `/ui/t/{tenant}`.
    pub fn base(&self) -> String {
        format!("/ui/t/{}", self.tenant)
    }

    /// The hidden CSRF field of every POST form.
    pub fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }

    /// A POST may change the tenant: its CSRF token must match (403) and
    /// the credential must be read-write (403). The refusal is the page to
    /// answer (boxed: a `Response` is large).
    pub fn guard(&self, form: &Form) -> Result<TenantWrite, Box<Response>> {
        if !session::same_token(form.get("csrf"), &self.session.csrf) {
            return Err(Box::new(self.page_status(
                StatusCode::FORBIDDEN,
                Nav::None,
                "Refused",
                html! { p.error role="alert" { "This form has no valid CSRF token (it may be from an old page): nothing was changed. Go back, reload the page and try again." } },
            )));
        }
        if !self.can_write() {
            return Err(Box::new(self.page_status(
                StatusCode::FORBIDDEN,
                Nav::None,
                "Refused",
                html! { p.error role="alert" { "Credential `" (self.session.cred.name) "` is read-only: nothing was changed." } },
            )));
        }
        Ok(TenantWrite { tenant: self.tenant.clone(), caller: std::sync::Arc::clone(&self.session.cred) })
    }

    /// After a POST: back to `to`, with the outcome shown once there.
    pub fn finish(&self, to: &str, outcome: Result<String, String>) -> Response {
        let flash = match outcome {
            Ok(m) => Flash::Done(m),
            Err(m) => Flash::Failed(m),
        };
        self.state.ui_sessions().flash(&self.session.id, flash);
        // `to` is built from path segments; one that cannot be a header
        // (a decoded control character) goes to the tenant's groups instead.
        let to = if HeaderValue::from_str(to).is_ok() { to.to_string() } else { format!("{}/groups", self.base()) };
        Redirect::to(&to).into_response()
    }

    pub fn page(&self, nav: Nav, title: &str, body: Markup) -> Response {
        self.page_status(StatusCode::OK, nav, title, body)
    }

    pub fn page_status(&self, status: StatusCode, nav: Nav, title: &str, body: Markup) -> Response {
        signed_page(&self.session, Some((&self.tenant, nav)), status, title, body)
    }

    /// A page that could not be shown, in words.
    pub fn error(&self, nav: Nav, status: StatusCode, message: &str) -> Response {
        self.page_status(status, nav, "Something went wrong", html! { p.error role="alert" { (message) } })
    }
}

/// A page's query parameters; unreadable ones are refused in words (400).
pub struct UiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<AppState> for UiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(UiQuery(q.0)),
            Err(e) => Err(bare_page(
                StatusCode::BAD_REQUEST,
                "Bad address",
                html! { p.error role="alert" { "This page cannot read its address: " (e.body_text()) } },
            )),
        }
    }
}

/// A form body (`application/x-www-form-urlencoded`).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The field's value, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.trim())
    }

    /// The field's value, untrimmed (a policy file).
    pub fn raw(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// The field's value unless empty.
    pub fn opt(&self, name: &str) -> Option<&str> {
        Some(self.get(name)).filter(|v| !v.is_empty())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.opt(name).is_some()
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let message = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "The form is larger than this server accepts.".to_string()
            } else {
                "The form could not be read.".to_string()
            };
            bare_page(e.status(), "Refused", html! { p.error role="alert" { (message) } })
        })?;
        Ok(Form(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}

// --------------------------------------------------------------- layout

/// The section a page belongs to (highlighted in the navigation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Groups,
    Users,
    ServiceAccounts,
    Access,
    Roles,
    Applications,
    Activity,
    Policy,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Groups, "groups", "Groups"),
    (Nav::Users, "users", "Users"),
    (Nav::ServiceAccounts, "service-accounts", "Service accounts"),
    (Nav::Access, "effective-access", "Effective access"),
    (Nav::Roles, "roles", "Roles"),
    (Nav::Applications, "applications", "Applications"),
    (Nav::Activity, "changes", "Activity"),
    (Nav::Policy, "policy", "Policy"),
];

fn document(title: &str, header: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Holdfast" }
                link rel="stylesheet" href="/ui/static/holdfast.css";
                script src="/ui/static/holdfast.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (header)
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

fn who(cred: &Credential) -> Markup {
    let access = if cred.access == Access::Write { "read-write" } else { "read-only" };
    html! { span.who { "Signed in as " strong { (cred.name) } " (" (access) ")" } }
}

/// A page for a signed-in session: navigation of `tenant` (if any), who is
/// signed in, sign out, and the flash message.
fn signed_page(
    session: &Session,
    tenant: Option<(&str, Nav)>,
    status: StatusCode,
    title: &str,
    body: Markup,
) -> Response {
    let header = html! {
        header.top {
            div.bar {
                a.brand href="/ui/" { "Holdfast" }
                @if let Some((t, _)) = tenant { span.tenant { "tenant " strong { (t) } } }
                (who(&session.cred))
                form.inline method="post" action="/ui/sign-out" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    button type="submit" { "Sign out" }
                }
            }
            @if let Some((t, active)) = tenant {
                nav aria-label="Sections" {
                    ul {
                        @for (n, path, label) in NAV {
                            li {
                                a href={ "/ui/t/" (t) "/" (path) } aria-current=[(*n == active).then_some("page")] { (label) }
                            }
                        }
                    }
                }
            }
        }
    };
    let flash = match &session.flash {
        Some(Flash::Done(m)) => html! { p.notice role="status" { (m) } },
        Some(Flash::Failed(m)) => html! { p.error role="alert" { (m) } },
        None => html! {},
    };
    let body = html! { (flash) (body) };
    (status, maud::PreEscaped(document(title, header, body).into_string())).into_html()
}

/// A page without a session (sign-in, refusals).
pub(crate) fn bare_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let header = html! { header.top { div.bar { a.brand href="/ui/" { "Holdfast" } } } };
    (status, maud::PreEscaped(document(title, header, body).into_string())).into_html()
}

trait IntoHtml {
    fn into_html(self) -> Response;
}

impl IntoHtml for (StatusCode, maud::PreEscaped<String>) {
    fn into_html(self) -> Response {
        (self.0, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], self.1 .0).into_response()
    }
}

/// A link to the next page, keeping the other query parameters.
pub fn next_link(path: &str, params: &[(&str, &str)], after: Option<&str>) -> Markup {
    match after {
        Some(a) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
                q.append_pair(k, v);
            }
            q.append_pair("after", a);
            html! { p.pager { a rel="next" href={ (path) "?" (q.finish()) } { "Next page →" } } }
        }
        None => html! {},
    }
}

/// `?x=…` of a URL, encoded.
pub fn query_string(params: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.finish()
}

// ---------------------------------------------------------------- pages

/// Cookies are `Secure` when clients reach this server over https.
fn secure(state: &AppState) -> bool {
    state.config().issuer.starts_with("https://")
}

/// The sign-in form, or (signed in) the tenants this credential may see.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_of(&headers, &state) {
        Some(s) => tenants_page(&state, &s),
        None => sign_in_page(&state, StatusCode::OK, None),
    }
}

fn sign_in_page(state: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Some(token) = session::random_token() else {
        return bare_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign in",
            html! { p.error { "This server has no randomness to make a session with." } },
        );
    };
    let body = html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.card method="post" action="/ui/sign-in" {
            input type="hidden" name="csrf" value=(token);
            p {
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="current-password" required autofocus;
            }
            p.hint { "An admin, tenant or read-only key. It is checked once and not kept: the session remembers only which credential signed in." }
            button type="submit" { "Sign in" }
        }
    };
    let mut res = bare_page(status, "Sign in", body);
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(session::SIGN_IN_COOKIE, &token, session::LIFETIME, secure(state)))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

fn tenants_page(state: &AppState, s: &Session) -> Response {
    if let Some(t) = &s.cred.tenant {
        return Redirect::to(&format!("/ui/t/{t}/groups")).into_response();
    }
    let names = state.holdfast().tenant_names();
    let body = html! {
        @if names.is_empty() {
            p { "No tenant has data yet. Load a policy file with " code { "holdfast apply" } " or the API." }
        } @else {
            ul.tenants { @for n in &names { li { a href={ "/ui/t/" (n) "/groups" } { (n) } } } }
        }
    };
    signed_page(s, None, StatusCode::OK, "Tenants", body)
}

async fn tenant_home(ctx: Ctx) -> Response {
    Redirect::to(&format!("{}/groups", ctx.base())).into_response()
}

async fn sign_in(State(state): State<AppState>, headers: HeaderMap, form: Form) -> Response {
    let expected = session::cookie(&headers, session::SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(form.get("csrf"), &expected) {
        return sign_in_page(
            &state,
            StatusCode::FORBIDDEN,
            Some("The sign-in form had no valid CSRF token (it may be from an old page). Try again."),
        );
    }
    let Some(cred) = state.keys().authenticate(form.raw("key").trim()) else {
        return sign_in_page(&state, StatusCode::UNAUTHORIZED, Some("That API key is not valid."));
    };
    // A new session id at every sign-in; the session this browser had ends.
    if let Some(old) = session::cookie(&headers, session::COOKIE) {
        state.ui_sessions().remove(&old);
    }
    let Some(id) = state.ui_sessions().create(cred, Instant::now()) else {
        return sign_in_page(&state, StatusCode::INTERNAL_SERVER_ERROR, Some("Cannot make a session (no randomness)."));
    };
    let mut res = Redirect::to("/ui/").into_response();
    for c in [
        session::set_cookie(session::COOKIE, &id, session::LIFETIME, secure(&state)),
        session::clear_cookie(session::SIGN_IN_COOKIE),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

async fn sign_out(State(state): State<AppState>, Signed(s): Signed, form: Form) -> Response {
    if !session::same_token(form.get("csrf"), &s.csrf) {
        return signed_page(
            &s,
            None,
            StatusCode::FORBIDDEN,
            "Refused",
            html! { p.error role="alert" { "This form has no valid CSRF token: you are still signed in. Reload the page and try again." } },
        );
    }
    state.ui_sessions().remove(&s.id);
    let mut res = Redirect::to("/ui/").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(session::COOKIE)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn not_found(Signed(s): Signed) -> Response {
    signed_page(
        &s,
        None,
        StatusCode::NOT_FOUND,
        "Not found",
        html! { p.error role="alert" { "There is no such page. " a href="/ui/" { "Start again" } "." } },
    )
}

/// A reason code of a check, in words.
pub fn reason_words(reason: &str) -> &'static str {
    match reason {
        "granted" => "granted by a binding whose conditions hold",
        "no_binding" => "no binding grants this scope",
        "role_lacks_scope" => "a binding applies, but its role does not grant this scope",
        "scope_not_supported" => "the application does not support this scope",
        "unknown_subject" => "this subject is unknown to the tenant",
        "unknown_application" => "this application is not defined",
        "subject_suspended" => "the subject is suspended",
        "expired" => "the granting binding has expired",
        "not_yet_valid" => "the granting binding is not valid yet",
        "condition_unmet:ip" => "the client IP is outside the binding's allowed ranges",
        "condition_unmet:attribute" => {
            "an attribute the request gave (or did not give) fails the binding's attribute test"
        }
        "step_up_required:mfa" => "multi-factor authentication is required (step up)",
        "satisfied" => "conditions hold",
        _ => "see the reason code",
    }
}
