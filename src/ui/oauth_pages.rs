//! The pages of the OAuth authorization server's login (issue 18): the
//! consent page and the error page shown when a request cannot be sent
//! back to its client. Built with the admin UI's layout; no admin session
//! is needed (the user is signed in at the tenant's identity provider).

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::query::BlockedScope;

/// A refusal in words, never a redirect (the client or its redirect URI
/// could not be verified, RFC 6749 §4.1.2.1).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    super::bare_page(status, "Authorization failed", html! { p.error role="alert" { (message) } })
}

/// What the consent page shows.
pub struct ConsentView<'a> {
    pub action: &'a str,
    pub txn: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    /// `registered` or `metadata document`.
    pub client_kind: &'a str,
    pub application: &'a str,
    pub resource: &'a str,
    pub subject: &'a str,
    pub provider: &'a str,
    pub granted: &'a [String],
    pub blocked: &'a [BlockedScope],
}

/// A token-scope reason in words.
pub fn blocked_words(reason: &str) -> &'static str {
    match reason {
        "not_in_scopes_supported" => "the application does not offer this scope",
        "not_entitled" => "no role of yours grants this scope on the application",
        other => super::reason_words(other),
    }
}

/// Exactly the scopes that would be granted and the ones that would not,
/// with their reasons.
pub fn consent_page(v: &ConsentView) -> Response {
    let title = format!("Allow {} to use {}?", v.client_name, v.application);
    super::bare_page(
        StatusCode::OK,
        &title,
        html! {
            p {
                "Signed in as " strong { (v.subject) } " at " (v.provider) ". "
                "The client " strong { (v.client_name) } " (" code { (v.client_id) } ", " (v.client_kind) ") "
                "asks for access to " strong { (v.application) } " (" code { (v.resource) } ")."
            }
            section aria-labelledby="granted" {
                h2 #granted { "It would get" }
                ul.granted {
                    @for s in v.granted { li { code { (s) } } }
                }
            }
            @if !v.blocked.is_empty() {
                section aria-labelledby="blocked" {
                    h2 #blocked { "It would not get" }
                    ul.blocked {
                        @for b in v.blocked {
                            li { code { (b.scope) } " — " (blocked_words(b.reason)) " (" code { (b.reason) } ")" }
                        }
                    }
                }
            }
            form method="post" action=(v.action) {
                input type="hidden" name="txn" value=(v.txn);
                input type="hidden" name="csrf" value=(v.csrf);
                button type="submit" name="decision" value="approve" { "Allow" }
                " "
                button type="submit" name="decision" value="deny" { "Deny" }
            }
        },
    )
}
