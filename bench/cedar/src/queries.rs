//! The query file `holdfast bench gen` writes (`queries.jsonl`), read the way
//! `holdfast check --batch` reads it, and each query as a Cedar request.

use std::net::IpAddr;

use cedar_policy::{Context as CedarContext, EntityUid, Request, RestrictedExpression};
use holdfast::model::{Context, MfaContext, ObjectRef, Timestamp};

use crate::model::Types;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    subject: String,
    application: String,
    scope: String,
    #[serde(default)]
    context: Option<LineContext>,
    #[serde(default)]
    expect: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LineContext {
    now: Option<Timestamp>,
    ip: Option<IpAddr>,
    mfa: Option<MfaContext>,
}

/// One check and the answer the file expects (`allow`, `deny`, `step_up`).
#[derive(Debug, Clone)]
pub struct Query {
    pub subject: String,
    pub application: String,
    pub scope: String,
    pub ctx: Context,
    pub expect: Option<String>,
}

/// Reads a JSONL query file; a line without `now` is evaluated at `now`
/// (as `check --batch` does without `--now`).
pub fn read(path: &std::path::Path, limit: Option<usize>, now: Timestamp) -> Result<Vec<Query>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        let ctx = match l.context {
            Some(c) => Context { now: c.now.unwrap_or(now), ip: c.ip, mfa: c.mfa, ..Context::at(now) },
            None => Context::at(now),
        };
        out.push(Query { subject: l.subject, application: l.application, scope: l.scope, ctx, expect: l.expect });
    }
    Ok(out)
}

/// The request context as a Cedar record: `{now, mfa?: {present, auth_time?}, ip?}`,
/// times in epoch seconds; absent fields stay absent.
pub fn cedar_context(c: &Context) -> Result<CedarContext, String> {
    let mut pairs = vec![("now".to_string(), RestrictedExpression::new_long(c.now.0))];
    if let Some(ip) = c.ip {
        pairs.push(("ip".to_string(), RestrictedExpression::new_ip(ip.to_string())));
    }
    if let Some(m) = &c.mfa {
        let mut f = vec![("present".to_string(), RestrictedExpression::new_bool(m.present))];
        if let Some(t) = m.auth_time {
            f.push(("auth_time".to_string(), RestrictedExpression::new_long(t.0)));
        }
        pairs.push(("mfa".to_string(), RestrictedExpression::new_record(f).map_err(|e| e.to_string())?));
    }
    CedarContext::from_pairs(pairs).map_err(|e| e.to_string())
}

/// The Cedar request of a check in context `ctx` (no schema: the fast path;
/// the policies were validated against the schema once, at load).
pub fn cedar_request(ty: &Types, q: &Query, ctx: &Context) -> Result<Request, String> {
    let r = ObjectRef::parse(&q.subject).map_err(|e| format!("`{}`: {}", q.subject, e.message))?;
    let principal: EntityUid = ty.subject(&r).ok_or_else(|| format!("`{}` is not a subject", q.subject))?;
    let action = ty.uid(&ty.action, &q.scope);
    let resource = ty.uid(&ty.app, &q.application);
    Request::new(principal, action, resource, cedar_context(ctx)?, None).map_err(|e| e.to_string())
}

/// The contexts each query is also compared in, besides its own: MFA done a
/// minute ago, an hour ago (older than the 15 minutes bindings ask for), and
/// present without a time. Exercises the MFA mapping and step-up.
pub fn mfa_variants(c: &Context) -> [(&'static str, Context); 3] {
    let with = |auth_time: Option<i64>| Context {
        mfa: Some(MfaContext { present: true, auth_time: auth_time.map(Timestamp) }),
        ..c.clone()
    };
    [("mfa 1 min ago", with(Some(c.now.0 - 60))), ("mfa 1 h ago", with(Some(c.now.0 - 3600))), ("mfa, no time", with(None))]
}
