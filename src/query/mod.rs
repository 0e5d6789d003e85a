//! Questions asked of one tenant's facts: check, effective access and who
//! can access, all read from the derived views of the engine. A denial is an
//! answer ([`CheckOutcome`]), not an error; `Err` means the question could
//! not be evaluated.
//!
//! The `_with` variants take request-only groups (from a verified ID
//! token): the subject counts as a direct member of them for that one
//! question, through the engine's request-only `MemberEdge` facts; such
//! questions never read or fill the view cache.

pub mod token;
pub use token::*;

use std::time::Duration;

use serde::Serialize;

use crate::engine::{AppId, EngineError, FactBase, Hold, NodeId, ScopeId, SubjectView, Why};
use crate::model::conditions::{format_duration, Unmet};
use crate::model::{CondOutcome, Conditions, Context, ObjectRef, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("`{input}` is not a subject: {message}")]
    BadSubject { input: String, message: String },
    #[error("{0}")]
    Engine(#[from] EngineError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    StepUp,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::StepUp => "step_up",
            Decision::Deny => "deny",
        }
    }
}

/// What a client must do to turn a `step_up` into an `allow`: the
/// parameters of an RFC 9470 challenge, for an MCP client to put in its
/// next authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepUp {
    /// Longest acceptable MFA age in seconds, as OIDC / RFC 9470 `max_age`
    /// (`None`: any MFA in this session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    /// The same, human-readable (`15m`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_text: Option<String>,
    /// The authentication context class to ask for (`mfa`).
    pub acr_values: &'static str,
    /// The scope to request again after stepping up.
    pub scope: String,
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub decision: Decision,
    /// Stable reason code: `granted`, `no_binding`, `role_lacks_scope`,
    /// `scope_not_supported`, `unknown_subject`, `unknown_application`,
    /// `subject_suspended`, `expired`, `not_yet_valid`,
    /// `condition_unmet:ip`, `condition_unmet:attribute`,
    /// `step_up_required:mfa`.
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    /// The binding that decided (the first satisfied path, in binding
    /// text order); set by explain, not by the check fast path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
}

impl CheckOutcome {
    fn deny(reason: &'static str) -> Self {
        CheckOutcome { decision: Decision::Deny, reason, step_up: None, binding: None }
    }
}

/// Resolves a subject reference (`user:alice`) to its node, if it exists.
pub fn resolve_subject(fb: &FactBase, subject: &str) -> Result<Option<NodeId>, QueryError> {
    // Fast path: interned names are canonical and valid.
    if let Some(n) = fb.node_by_name(subject) {
        return Ok(Some(n).filter(|&n| fb.node_known(n)));
    }
    let r = ObjectRef::parse(subject)
        .map_err(|e| QueryError::BadSubject { input: subject.to_string(), message: e.message })?;
    if !r.ty.is_subject() {
        return Err(QueryError::BadSubject {
            input: subject.to_string(),
            message: format!("a `{}` cannot hold access (expected user, group or service_account)", r.ty),
        });
    }
    Ok(fb.node_id(&r).filter(|&n| fb.node_known(n)))
}

/// A subject and its request-only groups, resolved: `None` when the
/// subject is unknown and the request brings no groups. A subject known
/// only from the request is [`NodeId::REQUEST_ONLY`]; groups Holdfast has
/// never seen are dropped (nothing is bound to them, nothing contains them).
pub fn resolve_with_groups(
    fb: &FactBase,
    subject: &str,
    groups: &[String],
) -> Result<Option<(NodeId, Vec<NodeId>)>, QueryError> {
    let known = resolve_subject(fb, subject)?;
    if groups.is_empty() {
        return Ok(known.map(|s| (s, vec![])));
    }
    let extra: Vec<NodeId> = groups
        .iter()
        .filter_map(|g| fb.node_id(&ObjectRef::new(crate::model::ObjectType::Group, g.as_str())))
        .collect();
    let s = match known {
        Some(s) => s,
        None => ObjectRef::parse(subject).ok().and_then(|r| fb.node_id(&r)).unwrap_or(NodeId::REQUEST_ONLY),
    };
    Ok(Some((s, extra)))
}

/// The tag of a hold whose path enters its first group through a
/// request-only membership (`token`), if it does.
pub fn via_request(fb: &FactBase, s: NodeId, extra: &[NodeId], path: &[NodeId]) -> Option<&'static str> {
    let first = *path.get(1)?;
    (extra.contains(&first) && !fb.parents(s).contains(&first)).then_some("token")
}

/// Outcome of one binding's conditions: satisfied, step-up or unmet.
pub fn binding_outcome(fb: &FactBase, hold: &Hold, ctx: &Context) -> CondOutcome {
    match fb.binding(hold.binding) {
        Some(rec) => rec.conditions.evaluate(ctx),
        None => CondOutcome::Unmet(Unmet::Expired),
    }
}

/// Combines the outcomes of the usable paths for one (app, scope): allow if
/// one is satisfied, else step-up if one only lacks MFA, else deny naming
/// the failed condition. `paths` are (binding text, outcome), in order.
pub fn combine(paths: &[(String, CondOutcome)], scope: &str) -> CheckOutcome {
    if let Some((b, _)) = paths.iter().find(|(_, o)| *o == CondOutcome::Satisfied) {
        return CheckOutcome { decision: Decision::Allow, reason: "granted", step_up: None, binding: Some(b.clone()) };
    }
    // The most lenient step-up: the largest acceptable MFA age (None = any).
    let mut best: Option<Option<Duration>> = None;
    for (_, o) in paths {
        if let CondOutcome::StepUp { max_age } = o {
            best = Some(match (best, max_age) {
                (None, m) => *m,
                (Some(None), _) | (Some(_), None) => None,
                (Some(Some(a)), Some(b)) => Some(a.max(*b)),
            });
        }
    }
    if let Some(max_age) = best {
        return CheckOutcome {
            decision: Decision::StepUp,
            reason: "step_up_required:mfa",
            step_up: Some(StepUp {
                max_age: max_age.map(|d| d.as_secs()),
                max_age_text: max_age.map(format_duration),
                acr_values: "mfa",
                scope: scope.to_string(),
            }),
            binding: None,
        };
    }
    let worst = paths
        .iter()
        .filter_map(|(_, o)| match o {
            CondOutcome::Unmet(u) => Some(*u),
            _ => None,
        })
        .max_by_key(|u| match u {
            Unmet::Attribute => 4,
            Unmet::Ip => 3,
            Unmet::NotYetValid => 2,
            Unmet::Expired => 1,
        });
    CheckOutcome::deny(worst.map_or("no_binding", Unmet::code))
}

/// The reason of a check that no usable binding grants, read from the
/// rules' `Verdict`s for the bindings held on the application (or
/// tenant-wide), in one fixed order: a suspension, then an unsupported
/// scope, then roles that lack it; none held there is `no_binding`. Check
/// and explain both decide their reason here.
pub fn deny_reason(verdicts: impl IntoIterator<Item = Why>) -> &'static str {
    let rank = |w: Why| match w {
        Why::SubjectSuspended => Some((0, "subject_suspended")),
        Why::ScopeNotSupported => Some((1, "scope_not_supported")),
        Why::RoleLacksScope => Some((2, "role_lacks_scope")),
        // `Grants` never reaches here (it is a usable path); another
        // application's binding says nothing about this one.
        Why::Grants | Why::OtherApplication => None,
    };
    verdicts.into_iter().filter_map(rank).min().map_or("no_binding", |(_, r)| r)
}

/// Why nothing is entitled, from the rules: the explain program's verdicts
/// for this (application, scope) ([`deny_reason`]). An unknown scope is
/// supported by no application.
pub fn no_grant_reason(
    fb: &FactBase,
    s: NodeId,
    view: &SubjectView,
    app: AppId,
    scope: Option<ScopeId>,
) -> Result<&'static str, QueryError> {
    no_grant_reason_with(fb, s, view, app, scope, &[])
}

/// [`no_grant_reason`] with request-only groups.
pub fn no_grant_reason_with(
    fb: &FactBase,
    s: NodeId,
    view: &SubjectView,
    app: AppId,
    scope: Option<ScopeId>,
    extra: &[NodeId],
) -> Result<&'static str, QueryError> {
    let here = |res: AppId| res == app || res.is_tenant();
    if !view.holds.iter().any(|h| here(h.resource)) {
        return Ok("no_binding");
    }
    let Some(x) = scope else { return Ok("scope_not_supported") };
    if let Some(r) = view.denials.get((app, x)) {
        return Ok(r);
    }
    let derived = fb.evaluate_with(s, Some((app, x)), extra)?;
    let reason = deny_reason(derived.verdicts.iter().map(|&(_, w)| w));
    view.denials.put((app, x), reason);
    Ok(reason)
}

/// May `subject` use `scope` on `application` in `ctx`?
pub fn check(
    fb: &FactBase,
    subject: &str,
    application: &str,
    scope: &str,
    ctx: &Context,
) -> Result<CheckOutcome, QueryError> {
    // Hot path: an interned name is canonical. Whether the node is still
    // known only matters for a denial's reason (an unknown node holds
    // nothing), so it is looked at after the answer, not before.
    if let Some(s) = fb.node_by_name(subject) {
        let Some(app) = fb.app_id(application) else {
            return Ok(CheckOutcome::deny(if fb.node_known(s) { "unknown_application" } else { "unknown_subject" }));
        };
        let out = check_ids(fb, s, app, fb.scope_id(scope), scope, ctx)?;
        if out.decision != Decision::Allow && !fb.node_known(s) {
            return Ok(CheckOutcome::deny("unknown_subject"));
        }
        return Ok(out);
    }
    let Some(s) = resolve_subject(fb, subject)? else {
        return Ok(CheckOutcome::deny("unknown_subject"));
    };
    let Some(app) = fb.app_id(application) else {
        return Ok(CheckOutcome::deny("unknown_application"));
    };
    check_ids(fb, s, app, fb.scope_id(scope), scope, ctx)
}

/// [`check`] with request-only groups (`groups`: group ids of a verified
/// ID token); no groups is exactly [`check`].
pub fn check_with(
    fb: &FactBase,
    subject: &str,
    application: &str,
    scope: &str,
    ctx: &Context,
    groups: &[String],
) -> Result<CheckOutcome, QueryError> {
    if groups.is_empty() {
        return check(fb, subject, application, scope, ctx);
    }
    let Some((s, extra)) = resolve_with_groups(fb, subject, groups)? else {
        return Ok(CheckOutcome::deny("unknown_subject"));
    };
    let Some(app) = fb.app_id(application) else {
        return Ok(CheckOutcome::deny("unknown_application"));
    };
    check_ids_with(fb, s, app, fb.scope_id(scope), scope, ctx, &extra)
}

/// [`check`] on resolved ids (the hot path).
pub fn check_ids(
    fb: &FactBase,
    s: NodeId,
    app: AppId,
    scope: Option<ScopeId>,
    scope_text: &str,
    ctx: &Context,
) -> Result<CheckOutcome, QueryError> {
    check_ids_with(fb, s, app, scope, scope_text, ctx, &[])
}

/// [`check_ids`] with request-only groups (the cache is bypassed then).
pub fn check_ids_with(
    fb: &FactBase,
    s: NodeId,
    app: AppId,
    scope: Option<ScopeId>,
    scope_text: &str,
    ctx: &Context,
    extra: &[NodeId],
) -> Result<CheckOutcome, QueryError> {
    let view = fb.app_view_with(s, app, extra)?;
    let entries = match scope.and_then(|x| view.entitlement(app, x)) {
        // A usable path with no conditions: allowed in any context.
        Some(e) if e.open => {
            return Ok(CheckOutcome { decision: Decision::Allow, reason: "granted", step_up: None, binding: None });
        }
        Some(e) if !e.is_empty() => e,
        _ => return Ok(CheckOutcome::deny(no_grant_reason_with(fb, s, &view, app, scope, extra)?)),
    };
    // Fast path: the first usable, satisfied binding decides.
    let mut paths = Vec::new();
    for &(i, usable) in entries.iter() {
        if !usable {
            continue;
        }
        let hold = &view.holds[i as usize];
        let o = binding_outcome(fb, hold, ctx);
        if o == CondOutcome::Satisfied {
            // The deciding binding is named by explain, off the hot path.
            return Ok(CheckOutcome { decision: Decision::Allow, reason: "granted", step_up: None, binding: None });
        }
        paths.push((fb.binding_text(hold.binding), o));
    }
    if paths.is_empty() {
        // Entitled but nothing usable: only suspension removes `Granted`.
        return Ok(CheckOutcome::deny("subject_suspended"));
    }
    Ok(combine(&paths, scope_text))
}

// ----------------------------------------------------------- effective access

/// One binding that affects a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEntry {
    pub binding: String,
    pub role: String,
    /// `None` for a tenant-wide binding.
    pub application: Option<String>,
    /// Scopes this binding entitles (on its application; for a tenant-wide
    /// binding, on any application that supports them).
    pub scopes: Vec<String>,
    pub origin: &'static str,
    pub path: Vec<String>,
    /// How the path enters its first group when that is not an ordinary
    /// stored membership: `token` (the request's ID token) or
    /// `oidc:<provider>` (a provider's sync created it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub conditions: Option<Conditions>,
    pub expires_at: Option<Timestamp>,
    /// `active`, `expired`, `not_yet_valid` or `suspended`.
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveAccess {
    pub subject: String,
    /// `active`, `suspended` or `unknown`.
    pub status: &'static str,
    pub entries: Vec<AccessEntry>,
}

/// Everything `subject` holds, one entry per binding.
pub fn effective_access(
    fb: &FactBase,
    subject: &str,
    now: Timestamp,
    include_expired: bool,
) -> Result<EffectiveAccess, QueryError> {
    effective_access_with(fb, subject, now, include_expired, &[])
}

/// [`effective_access`] with request-only groups; holds through them are
/// tagged `via: token`.
pub fn effective_access_with(
    fb: &FactBase,
    subject: &str,
    now: Timestamp,
    include_expired: bool,
    groups: &[String],
) -> Result<EffectiveAccess, QueryError> {
    let Some((s, extra)) = resolve_with_groups(fb, subject, groups)? else {
        return Ok(EffectiveAccess { subject: subject.to_string(), status: "unknown", entries: vec![] });
    };
    let view = fb.view_with(s, &extra)?;
    let suspended = fb.is_suspended(s);
    let mut scopes_of: Vec<Vec<ScopeId>> = vec![Vec::new(); view.holds.len()];
    for (&(_, x), entries) in &view.entitled {
        for &(i, _) in entries {
            scopes_of[i as usize].push(x);
        }
    }
    let mut entries = Vec::new();
    for (i, h) in view.holds.iter().enumerate() {
        let Some(rec) = fb.binding(h.binding) else { continue };
        let c = &rec.conditions;
        let status = if c.is_expired(now) {
            "expired"
        } else if c.not_before.is_some_and(|nb| now < nb) {
            "not_yet_valid"
        } else if suspended {
            "suspended"
        } else {
            "active"
        };
        if status == "expired" && !include_expired {
            continue;
        }
        let mut e = entry(fb, h, &scopes_of[i], c, status);
        e.via = via_request(fb, s, &extra, &h.path).map(str::to_string);
        if s == NodeId::REQUEST_ONLY {
            if let Some(first) = e.path.first_mut() {
                *first = subject.to_string();
            }
        }
        entries.push(e);
    }
    entries.sort_by(|a, b| a.binding.cmp(&b.binding));
    Ok(EffectiveAccess {
        subject: if s == NodeId::REQUEST_ONLY { subject.to_string() } else { fb.node_name(s).to_string() },
        status: if suspended { "suspended" } else { "active" },
        entries,
    })
}

fn entry(fb: &FactBase, h: &Hold, scopes: &[ScopeId], c: &Conditions, status: &'static str) -> AccessEntry {
    let mut names: Vec<String> = scopes.iter().map(|&x| fb.scope_name(x).to_string()).collect();
    names.sort();
    names.dedup();
    AccessEntry {
        binding: fb.binding_text(h.binding),
        role: fb.role_name(h.role).to_string(),
        application: (!h.resource.is_tenant()).then(|| fb.app_name(h.resource).to_string()),
        scopes: names,
        origin: h.origin.as_str(),
        path: h.path.iter().map(|&n| fb.node_name(n).to_string()).collect(),
        via: None,
        conditions: (!c.is_empty()).then(|| c.clone()),
        expires_at: c.expires_at,
        status,
    }
}

// ------------------------------------------------------------ who can access

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhoEntry {
    pub subject: String,
    #[serde(flatten)]
    pub access: AccessEntry,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WhoPage {
    pub application: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub entries: Vec<WhoEntry>,
    /// Pass back as `page_token` for the next page; absent on the last page.
    pub next_page_token: Option<String>,
}

/// Users and service accounts with access to `application` (optionally to
/// one scope there), one entry per (subject, binding), paginated by subject.
/// Expired bindings and suspended subjects are left out.
pub fn who_can_access(
    fb: &FactBase,
    application: &str,
    scope: Option<&str>,
    now: Timestamp,
    after: Option<&str>,
    page_size: usize,
) -> Result<Option<WhoPage>, QueryError> {
    let Some(app) = fb.app_id(application) else { return Ok(None) };
    let scope_id = match scope {
        Some(x) => match fb.scope_id(x) {
            Some(id) => Some(id),
            None => {
                return Ok(Some(WhoPage {
                    application: application.to_string(),
                    scope: scope.map(str::to_string),
                    entries: vec![],
                    next_page_token: None,
                }))
            }
        },
        None => None,
    };
    let page_size = page_size.max(1);
    let mut entries = Vec::new();
    let mut subjects = 0;
    let mut next = None;
    let candidates = fb.access_candidates(app, scope_id);
    // Sorted by name: a page starts right after the last subject of the previous one.
    let start = after.map_or(0, |a| candidates.partition_point(|&s| fb.node_name(s) <= a));
    // Views not cached yet are evaluated a block at a time, in one run of
    // the rules per block.
    const BLOCK: usize = 1024;
    let mut prefetched = start;
    for (i, &s) in candidates.iter().enumerate().skip(start) {
        if i >= prefetched {
            prefetched = (i + BLOCK.min(page_size + 1)).min(candidates.len());
            fb.prefetch_app_views(&candidates[i..prefetched], app)?;
        }
        let name = fb.node_name(s);
        if fb.is_suspended(s) {
            continue;
        }
        let view = fb.app_view(s, app)?;
        let mut per_hold: Vec<Vec<ScopeId>> = vec![Vec::new(); view.holds.len()];
        for (&(a, x), es) in &view.entitled {
            if a != app || scope_id.is_some_and(|q| q != x) {
                continue;
            }
            for &(i, usable) in es {
                if usable {
                    per_hold[i as usize].push(x);
                }
            }
        }
        let mut found = Vec::new();
        for (i, h) in view.holds.iter().enumerate() {
            if per_hold[i].is_empty() {
                continue;
            }
            let Some(rec) = fb.binding(h.binding) else { continue };
            if rec.conditions.is_expired(now) {
                continue;
            }
            let status = if rec.conditions.not_before.is_some_and(|nb| now < nb) { "not_yet_valid" } else { "active" };
            found.push(WhoEntry {
                subject: name.to_string(),
                access: entry(fb, h, &per_hold[i], &rec.conditions, status),
            });
        }
        if found.is_empty() {
            continue;
        }
        found.sort_by(|a, b| a.access.binding.cmp(&b.access.binding));
        if subjects == page_size {
            next = entries.last().map(|e: &WhoEntry| e.subject.clone());
            break;
        }
        subjects += 1;
        entries.extend(found);
    }
    Ok(Some(WhoPage {
        application: application.to_string(),
        scope: scope.map(str::to_string),
        entries,
        next_page_token: next,
    }))
}
