//! Token scope: which of the scopes a client asks for may go into an access
//! token for one application, and why each of the others may not.
//!
//! `granted = requested ∩ scopes_supported ∩ {scopes for which [`check`]
//! answers `allow` in the context}`. Every requested scope that is not
//! granted is listed in `blocked` with a reason ([`BlockedScope::reason`]):
//! `not_in_scopes_supported`, `not_entitled`, `step_up_required:mfa`,
//! `condition_unmet:ip`, `condition_unmet:attribute`, `expired`, `not_yet_valid`, `subject_suspended`.
//!
//! This is the one function behind every token path: the token-scope
//! query, minting a token, and re-intersecting a token's scope at each
//! introspection. An AI client never gets more than its subject holds,
//! whatever it asks for.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{check_with, resolve_with_groups, Decision, QueryError};
use crate::engine::FactBase;
use crate::model::Context;

/// A requested scope left out of the token, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedScope {
    pub scope: String,
    /// `not_in_scopes_supported` (the application does not offer it),
    /// `not_entitled` (no role of the subject grants it there), or the
    /// condition that failed: `step_up_required:mfa`, `condition_unmet:ip`, `condition_unmet:attribute`,
    /// `expired`, `not_yet_valid`; or `subject_suspended`.
    pub reason: &'static str,
}

/// The scopes of a token for one subject on one application. All lists
/// are sorted and free of duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenScope {
    pub application: String,
    /// What was asked for (the entitled scopes when nothing was asked).
    pub requested: Vec<String>,
    /// Scopes a role of the subject grants on the application (before
    /// conditions and suspension).
    pub entitled: Vec<String>,
    /// The application's `scopes_supported` (empty if it is unknown).
    pub scopes_supported: Vec<String>,
    /// What the token may carry.
    pub granted: Vec<String>,
    /// Requested scopes that are not granted, with the check's reason.
    pub blocked: Vec<BlockedScope>,
}

/// The scopes `subject` may put in a token for `application` in `ctx`.
///
/// `requested: None` means "everything the subject is entitled to on the
/// application": the requested set is then [`TokenScope::entitled`], and
/// `blocked` shows which of those the context does not allow (an MFA that
/// is missing, an IP outside the allowed ranges, an expired binding...).
/// An unknown subject or application is not an error: nothing is granted
/// and every requested scope is blocked (`not_entitled`, or
/// `not_in_scopes_supported` for an unknown application).
pub fn token_scope(
    fb: &FactBase,
    subject: &str,
    application: &str,
    requested: Option<&[&str]>,
    ctx: &Context,
) -> Result<TokenScope, QueryError> {
    token_scope_with(fb, subject, application, requested, ctx, &[])
}

/// [`token_scope`] with request-only groups (a verified ID token's).
pub fn token_scope_with(
    fb: &FactBase,
    subject: &str,
    application: &str,
    requested: Option<&[&str]>,
    ctx: &Context,
    groups: &[String],
) -> Result<TokenScope, QueryError> {
    let app = fb.app_id(application);
    let scopes_supported: BTreeSet<String> =
        app.map(|a| fb.app_scopes(a).iter().map(|&x| fb.scope_name(x).to_string()).collect()).unwrap_or_default();
    let entitled = entitled_scopes(fb, subject, application, groups)?;
    let requested: BTreeSet<String> = match requested {
        Some(list) => list.iter().map(|s| s.to_string()).collect(),
        None => entitled.clone(),
    };
    let mut granted = Vec::new();
    let mut blocked = Vec::new();
    for scope in &requested {
        let outcome = check_with(fb, subject, application, scope, ctx, groups)?;
        if outcome.decision == Decision::Allow && scopes_supported.contains(scope) {
            granted.push(scope.clone());
        } else {
            let reason = if !scopes_supported.contains(scope) {
                "not_in_scopes_supported"
            } else {
                token_reason(outcome.reason)
            };
            blocked.push(BlockedScope { scope: scope.clone(), reason });
        }
    }
    Ok(TokenScope {
        application: application.to_string(),
        requested: requested.into_iter().collect(),
        entitled: entitled.into_iter().collect(),
        scopes_supported: scopes_supported.into_iter().collect(),
        granted,
        blocked,
    })
}

/// The token vocabulary of a check's reason: anything that says "no role
/// grants it here" is `not_entitled`; conditions and suspension keep their code.
fn token_reason(check_reason: &'static str) -> &'static str {
    match check_reason {
        "no_binding" | "role_lacks_scope" | "unknown_subject" | "unknown_application" => "not_entitled",
        "scope_not_supported" => "not_in_scopes_supported",
        other => other,
    }
}

/// Scopes with an `Entitled` fact for the subject on the application.
fn entitled_scopes(
    fb: &FactBase,
    subject: &str,
    application: &str,
    groups: &[String],
) -> Result<BTreeSet<String>, QueryError> {
    let (Some((s, extra)), Some(app)) = (resolve_with_groups(fb, subject, groups)?, fb.app_id(application)) else {
        return Ok(BTreeSet::new());
    };
    let view = fb.view_with(s, &extra)?;
    Ok(view
        .entitled
        .iter()
        .filter(|((a, _), entries)| *a == app && !entries.is_empty())
        .map(|((_, x), _)| fb.scope_name(*x).to_string())
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{MfaContext, Timestamp};
    use crate::policy;

    const POLICY: &str = r#"
applications:
  deploy: {scopes_supported: [read, staging, prod]}
roles:
  operator: {scopes: [read, staging, prod, other]}
  reader: {scopes: [read]}
users: [alice, bob]
bindings:
  - {subject: user:alice, role: operator, application: deploy, conditions: {mfa: {}}}
  - {subject: user:alice, role: reader, application: deploy}
"#;

    fn fb_of(text: &str) -> crate::service::Holdfast {
        let p = policy::compile(text, "t.yaml").unwrap();
        policy::instantiate(&p).unwrap()
    }

    #[test]
    fn absent_requested_means_everything_entitled() {
        let hf = fb_of(POLICY);
        let t = hf.tenant("default").unwrap();
        let st = t.read();
        let now = Context::at(Timestamp(1_800_000_000));
        let ts = token_scope(st.facts(), "user:alice", "deploy", None, &now).unwrap();
        assert_eq!(ts.requested, ["prod", "read", "staging"]);
        assert_eq!(ts.entitled, ts.requested);
        assert_eq!(ts.granted, ["read"]);
        let reasons: Vec<(&str, &str)> = ts.blocked.iter().map(|b| (b.scope.as_str(), b.reason)).collect();
        assert_eq!(reasons, [("prod", "step_up_required:mfa"), ("staging", "step_up_required:mfa")]);
        let mfa = Context { mfa: Some(MfaContext { present: true, auth_time: None }), ..now };
        let ts = token_scope(st.facts(), "user:alice", "deploy", None, &mfa).unwrap();
        assert_eq!(ts.granted, ["prod", "read", "staging"]);
        assert!(ts.blocked.is_empty());
    }

    #[test]
    fn requested_is_intersected_and_the_rest_blocked() {
        let hf = fb_of(POLICY);
        let t = hf.tenant("default").unwrap();
        let st = t.read();
        let now = Context::at(Timestamp(1_800_000_000));
        let ts = token_scope(st.facts(), "user:alice", "deploy", Some(&["read", "other", "read"]), &now).unwrap();
        assert_eq!(ts.requested, ["other", "read"]);
        assert_eq!(ts.granted, ["read"]);
        assert_eq!(ts.blocked, [BlockedScope { scope: "other".into(), reason: "not_in_scopes_supported" }]);
        let ts = token_scope(st.facts(), "user:bob", "deploy", Some(&["read"]), &now).unwrap();
        assert_eq!((ts.granted.len(), ts.blocked[0].reason), (0, "not_entitled"));
        let ts = token_scope(st.facts(), "user:nobody", "deploy", Some(&["read"]), &now).unwrap();
        assert_eq!((ts.granted.len(), ts.blocked[0].reason), (0, "not_entitled"));
        let ts = token_scope(st.facts(), "user:alice", "nope", Some(&["read"]), &now).unwrap();
        assert_eq!((ts.scopes_supported.len(), ts.blocked[0].reason), (0, "not_in_scopes_supported"));
        assert!(token_scope(st.facts(), "role:x", "deploy", None, &now).is_err());
    }
}
