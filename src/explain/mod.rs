//! Explanations: every binding a subject holds, the membership path it came
//! through, what the rules concluded about it for the asked scope, and how
//! its conditions evaluated. Rendered as stable text and stable JSON.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::engine::{FactBase, NodeId, Why};
use crate::model::conditions::Unmet;
use crate::model::{AttributeTest, CondOutcome, Conditions, Context};
use crate::query::{self, CheckOutcome, Decision, QueryError};

/// One binding considered by an explained check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingTrace {
    pub binding: String,
    pub role: String,
    /// `None` for tenant-wide.
    pub application: Option<String>,
    pub origin: &'static str,
    pub path: Vec<String>,
    /// `token` when the path enters its first group through the request's
    /// ID token; `oidc:<provider>` when a provider's sync created that
    /// membership.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// What the rules concluded: `grants`, `other_application`,
    /// `role_lacks_scope`, `scope_not_supported`, `subject_suspended`.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Conditions>,
    /// For granting bindings: `satisfied`, `step_up_required:mfa`,
    /// `condition_unmet:ip`, `condition_unmet:attribute`, `expired`,
    /// `not_yet_valid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_result: Option<&'static str>,
    /// With `condition_unmet:attribute`: the first test that failed and
    /// the value the request gave (none: it was missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attribute: Option<FailedAttribute>,
}

/// An attribute test a request did not satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedAttribute {
    /// The attribute's path, e.g. `action.soft`.
    pub attribute: String,
    pub op: &'static str,
    /// What the test compares with (one value, or a list for `in`/`not_in`).
    pub value: serde_json::Value,
    /// What the request gave; absent when it gave nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<serde_json::Value>,
}

impl FailedAttribute {
    fn of(test: &AttributeTest, ctx: &Context) -> FailedAttribute {
        let json = test.to_json();
        FailedAttribute {
            attribute: test.attribute.to_string(),
            op: test.op.as_str(),
            value: json.get("value").cloned().unwrap_or_default(),
            actual: ctx.attributes.get(&test.attribute).cloned(),
        }
    }

    /// `action.soft is false`, `subject.team is missing`.
    pub fn summary(&self) -> String {
        match &self.actual {
            Some(v) => format!("{} is {v}", self.attribute),
            None => format!("{} is missing", self.attribute),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub subject: String,
    pub application: String,
    pub scope: String,
    #[serde(flatten)]
    pub outcome: CheckOutcome,
    pub bindings: Vec<BindingTrace>,
}

fn verdict_code(w: Why) -> &'static str {
    match w {
        Why::Grants => "grants",
        Why::SubjectSuspended => "subject_suspended",
        Why::OtherApplication => "other_application",
        Why::RoleLacksScope => "role_lacks_scope",
        Why::ScopeNotSupported => "scope_not_supported",
    }
}

fn outcome_code(o: CondOutcome) -> &'static str {
    match o {
        CondOutcome::Satisfied => "satisfied",
        CondOutcome::StepUp { .. } => "step_up_required:mfa",
        CondOutcome::Unmet(u) => Unmet::code(u),
    }
}

/// Explains a check: the same decision as [`query::check`], with the trace.
pub fn explain(
    fb: &FactBase,
    subject: &str,
    application: &str,
    scope: &str,
    ctx: &Context,
) -> Result<Explanation, QueryError> {
    explain_with(fb, subject, application, scope, ctx, &[])
}

/// [`explain`] with request-only groups (a verified ID token's); paths
/// through them are tagged `via: token`.
pub fn explain_with(
    fb: &FactBase,
    subject: &str,
    application: &str,
    scope: &str,
    ctx: &Context,
    groups: &[String],
) -> Result<Explanation, QueryError> {
    let mut ex = Explanation {
        subject: subject.to_string(),
        application: application.to_string(),
        scope: scope.to_string(),
        outcome: CheckOutcome { decision: Decision::Deny, reason: "no_binding", step_up: None, binding: None },
        bindings: vec![],
    };
    let (Some((s, extra)), Some(app)) = (query::resolve_with_groups(fb, subject, groups)?, fb.app_id(application))
    else {
        // An unknown subject or application: the check's own answer
        // (`unknown_subject` / `unknown_application`).
        ex.outcome = query::check(fb, subject, application, scope, ctx)?;
        return Ok(ex);
    };
    // An unknown scope cannot be granted; explain against no scope id.
    let derived = match fb.scope_id(scope) {
        Some(x) => fb.evaluate_with(s, Some((app, x)), &extra)?,
        None => fb.evaluate_with(s, None, &extra)?,
    };
    let mut verdicts: FxHashMap<_, Why> = FxHashMap::default();
    for &(b, w) in &derived.verdicts {
        // One verdict per binding; `Grants` and `SubjectSuspended` win.
        let e = verdicts.entry(b).or_insert(w);
        if w < *e {
            *e = w;
        }
    }
    let view = fb.build_view(s, derived);
    let mut whys = Vec::new();
    let mut paths = Vec::new();
    for h in &view.holds {
        let Some(rec) = fb.binding(h.binding) else { continue };
        let why = verdicts.get(&h.binding).copied().unwrap_or(if h.resource != app && !h.resource.is_tenant() {
            Why::OtherApplication
        } else if fb.scope_id(scope).is_none() {
            Why::ScopeNotSupported
        } else {
            Why::RoleLacksScope
        });
        whys.push(why);
        let evaluated = (why == Why::Grants).then(|| rec.conditions.evaluate(ctx));
        if let Some(o) = evaluated {
            paths.push((fb.binding_text(h.binding), o));
        }
        let condition_result = evaluated.map(outcome_code);
        let failed_attribute = match evaluated {
            Some(CondOutcome::Unmet(Unmet::Attribute)) => {
                rec.conditions.failed_attribute(&ctx.attributes).map(|t| FailedAttribute::of(t, ctx))
            }
            _ => None,
        };
        ex.bindings.push(BindingTrace {
            binding: fb.binding_text(h.binding),
            role: fb.role_name(h.role).to_string(),
            application: (!h.resource.is_tenant()).then(|| fb.app_name(h.resource).to_string()),
            origin: h.origin.as_str(),
            path: h
                .path
                .iter()
                .map(|&n| if n == NodeId::REQUEST_ONLY { subject.to_string() } else { fb.node_name(n).to_string() })
                .collect(),
            via: query::via_request(fb, s, &extra, &h.path).map(str::to_string),
            verdict: verdict_code(why),
            conditions: (!rec.conditions.is_empty()).then(|| (*rec.conditions).clone()),
            condition_result,
            failed_attribute,
        });
    }
    ex.bindings.sort_by(|a, b| a.binding.cmp(&b.binding));
    // The decision from the rules' verdicts alone (the check above took
    // the cached fast path; a property test holds the two equal).
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    ex.outcome = if paths.is_empty() {
        CheckOutcome { decision: Decision::Deny, reason: query::deny_reason(whys), step_up: None, binding: None }
    } else {
        query::combine(&paths, scope)
    };
    Ok(ex)
}

impl Explanation {
    /// The trace as a readable tree. Deterministic: bindings are sorted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "check {} → {} on application:{}", self.subject, self.scope, self.application);
        let d = match self.outcome.decision {
            Decision::Allow => "ALLOW",
            Decision::StepUp => "STEP UP",
            Decision::Deny => "DENY",
        };
        let _ = write!(out, "decision: {d} ({})", self.outcome.reason);
        if let Some(b) = &self.outcome.binding {
            let _ = write!(out, " via {b}");
        }
        if let Some(su) = &self.outcome.step_up {
            let _ = write!(out, "; step up with MFA");
            if let Some(a) = &su.max_age_text {
                let _ = write!(out, " no older than {a}");
            }
        }
        out.push('\n');
        if self.bindings.is_empty() {
            let _ = writeln!(out, "└── no bindings reach {}", self.subject);
        }
        let n = self.bindings.len();
        for (i, b) in self.bindings.iter().enumerate() {
            let last = i + 1 == n;
            let (head, pad) = if last { ("└── ", "      ") } else { ("├── ", "│     ") };
            match &b.via {
                Some(via) => {
                    let _ = writeln!(out, "{head}{}  [{}, via {via}]", b.binding, b.origin);
                }
                None => {
                    let _ = writeln!(out, "{head}{}  [{}]", b.binding, b.origin);
                }
            }
            let _ = writeln!(out, "{pad}path: {}", b.path.join(" → "));
            let on = b.application.as_deref().map_or("tenant-wide".to_string(), |a| format!("on application:{a}"));
            let line = match b.verdict {
                "grants" => format!("role {} {on} grants {}", b.role, self.scope),
                "subject_suspended" => {
                    format!("role {} {on} grants {}, but {} is suspended", b.role, self.scope, self.subject)
                }
                "other_application" => format!("role {} {on}: not application:{}", b.role, self.application),
                "role_lacks_scope" => format!("role {} {on} does not grant {}", b.role, self.scope),
                _ => format!("role {} {on}: application:{} does not support {}", b.role, self.application, self.scope),
            };
            let _ = writeln!(out, "{pad}{line}");
            if let Some(c) = &b.conditions {
                let mut result = b.condition_result.map_or(String::new(), |r| format!(" → {r}"));
                if let Some(f) = &b.failed_attribute {
                    result.push_str(&format!(": {}", f.summary()));
                }
                let _ = writeln!(out, "{pad}conditions: {}{result}", c.summary());
            }
        }
        out
    }
}
