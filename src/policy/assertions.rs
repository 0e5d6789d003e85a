//! Assertions: expectations written beside the policy and run by
//! `holdfast test` (and by `holdfast diff` against both versions).
//!
//! An assertion names a subject and one or more expectations, evaluated in
//! its `context` with the same queries the server answers:
//!
//! - `expect: allow | deny | step_up` with `application` and `scope`:
//!   [`query::check`];
//! - `expect_access: [{role, application?, origin?, scopes?}, ...]`: each
//!   listed item must match one entry of [`query::effective_access`] (role
//!   equal; `application`, `origin` equal when given, `application: null`
//!   meaning tenant-wide; `scopes` a subset of the entry's). Entries not
//!   listed are allowed;
//! - `expect_token_scope: {application?, requested?, granted}`: the granted
//!   set of [`query::token_scope`] equals `granted` (scope lists are written
//!   as `"a b"` or `[a, b]`; `application` defaults to the assertion's,
//!   absent `requested` means everything entitled).
//!
//! `context` keys: `now` (RFC 3339), `ip`, `mfa: {present, auth_time}` (or
//! `mfa: true`); a given `mfa` map means MFA was done unless it says
//! `present: false`. **Absent `now` is the current time** (the runner's
//! `now`), so assertions that touch expiry or `not_before` should set `now`.
//!
//! ## Layout
//!
//! `holdfast test policy.yaml` runs the `assertions` of `policy.yaml`, then
//! those of every `*.yaml` / `*.yml` file below a `tests/` folder next to
//! it (recursively, in path order), against `policy.yaml`. Such a test file
//! holds only `assertions:`. Every policy file in a folder shares that
//! folder's `tests/`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value as Json;

use super::file::{did_you_mean, parse_policy, AssertionDecl, Finding};
use super::validate::read_policy_text;
use super::yaml::Span;
use super::{instantiate, load, Policy, PolicyError};
use crate::engine::FactBase;
use crate::explain;
use crate::model::{Context, MfaContext, Timestamp};
use crate::query::{self, AccessEntry};

/// Why a suite could not be run (the input, not a failed assertion).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{file}: cannot load the policy: {message}")]
    Load { file: String, message: String },
}

/// One expectation of an assertion, evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// `expect`, `expect_access` or `expect_token_scope`.
    pub kind: &'static str,
    pub passed: bool,
    pub expected: String,
    pub actual: String,
    /// The assertion could not be evaluated (bad context, malformed expectation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// On failure: the explain trace(s) or the effective access behind `actual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// What `holdfast diff` compares between two versions.
    #[serde(skip)]
    pub outcome: String,
}

/// One assertion, evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssertionResult {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub name: String,
    pub subject: String,
    pub passed: bool,
    pub checks: Vec<CheckResult>,
}

impl AssertionResult {
    /// A comparison key of the results (not of the expectations).
    pub fn outcome(&self) -> String {
        self.checks.iter().map(|c| format!("{}={};", c.kind, c.outcome)).collect()
    }
}

/// The assertions of one policy file (and its `tests/` folder), run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub policy: String,
    /// Files the assertions came from, the policy file first.
    pub files: Vec<String>,
    pub results: Vec<AssertionResult>,
    pub passed: usize,
    pub failed: usize,
}

/// Assertions with the file they are written in.
pub type Sourced = (String, AssertionDecl);

/// The display name of an assertion: its `name`, else a description.
pub fn display_name(a: &AssertionDecl) -> String {
    if let Some(n) = &a.name {
        return n.clone();
    }
    let mut s = a.subject.value.to_string();
    if let Some(e) = &a.expect {
        s.push_str(&format!(" {}", e.value));
    }
    if let Some(x) = &a.scope {
        s.push_str(&format!(" {}", x.value));
    }
    if let Some(app) = &a.application {
        s.push_str(&format!(" on {}", app.value));
    }
    s
}

/// Evaluates one assertion; `now` is used when its context has none.
pub fn run_assertion(fb: &FactBase, file: &str, a: &AssertionDecl, now: Timestamp) -> AssertionResult {
    let checks = match context_of(a.context.as_ref(), now) {
        Ok(mut ctx) => {
            ctx.attributes = a.attributes.clone().unwrap_or_default();
            let mut checks = Vec::new();
            if let Some(e) = &a.expect {
                checks.push(check_expect(fb, a, &e.value, &ctx));
            }
            if let Some(v) = &a.expect_access {
                checks.push(check_access(fb, a, v, &ctx));
            }
            if let Some(v) = &a.expect_token_scope {
                checks.push(check_token_scope(fb, a, v, &ctx));
            }
            checks
        }
        Err(e) => vec![errored("context", format!("invalid `context`: {e}"))],
    };
    AssertionResult {
        file: file.to_string(),
        line: a.span.line,
        col: a.span.col,
        name: display_name(a),
        subject: a.subject.value.to_string(),
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

/// Evaluates assertions in order.
pub fn run_all(fb: &FactBase, assertions: &[Sourced], now: Timestamp) -> Vec<AssertionResult> {
    assertions.iter().map(|(file, a)| run_assertion(fb, file, a, now)).collect()
}

fn errored(kind: &'static str, message: String) -> CheckResult {
    CheckResult {
        kind,
        passed: false,
        expected: String::new(),
        actual: String::new(),
        outcome: format!("error: {message}"),
        error: Some(message),
        trace: None,
    }
}

// ---------------------------------------------------------------- context

/// Maps an assertion's `context` onto a [`Context`].
pub fn context_of(v: Option<&Json>, default_now: Timestamp) -> Result<Context, String> {
    let mut ctx = Context::at(default_now);
    let Some(v) = v else { return Ok(ctx) };
    let Some(map) = v.as_object() else { return Err("must be a map".into()) };
    for (key, value) in map {
        match key.as_str() {
            "now" => ctx.now = Timestamp::parse(&scalar(value).ok_or("`now` must be an RFC 3339 time")?)?,
            "ip" => {
                let text = scalar(value).ok_or("`ip` must be an IP address")?;
                ctx.ip = Some(text.parse().map_err(|_| format!("`ip` `{text}` is not an IP address"))?);
            }
            "mfa" => ctx.mfa = mfa_of(value)?,
            other => {
                let hint = did_you_mean(other, ["now", "ip", "mfa"])
                    .map_or(" (keys: now, ip, mfa)".to_string(), |m| format!(" (did you mean `{m}`?)"));
                return Err(format!("unknown key `{other}`{hint}"));
            }
        }
    }
    Ok(ctx)
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn mfa_of(v: &Json) -> Result<Option<MfaContext>, String> {
    let map = match v {
        Json::Null => return Ok(None),
        Json::Bool(present) => return Ok(Some(MfaContext { present: *present, auth_time: None })),
        Json::Object(m) => m,
        _ => return Err("`mfa` must be a map `{present, auth_time}` or true/false".into()),
    };
    let mut mfa = MfaContext { present: true, auth_time: None };
    for (key, value) in map {
        match key.as_str() {
            "present" => mfa.present = value.as_bool().ok_or("`mfa.present` must be true or false")?,
            "auth_time" => {
                let text = scalar(value).ok_or("`mfa.auth_time` must be an RFC 3339 time")?;
                mfa.auth_time = Some(Timestamp::parse(&text)?);
            }
            other => {
                let hint = did_you_mean(other, ["present", "auth_time"])
                    .map_or(" (keys: present, auth_time)".to_string(), |m| format!(" (did you mean `{m}`?)"));
                return Err(format!("unknown key `mfa.{other}`{hint}"));
            }
        }
    }
    Ok(Some(mfa))
}

// ---------------------------------------------------------------- expect

fn check_expect(fb: &FactBase, a: &AssertionDecl, expected: &str, ctx: &Context) -> CheckResult {
    let (Some(app), Some(scope)) = (&a.application, &a.scope) else {
        return errored("expect", "`expect` needs `application` and `scope`".into());
    };
    let subject = a.subject.value.to_string();
    match explain::explain(fb, &subject, &app.value, &scope.value, ctx) {
        Ok(ex) => {
            let got = ex.outcome.decision.as_str();
            let passed = got == expected;
            CheckResult {
                kind: "expect",
                passed,
                expected: expected.to_string(),
                actual: format!("{got} ({})", ex.outcome.reason),
                error: None,
                trace: (!passed).then(|| ex.render()),
                outcome: got.to_string(),
            }
        }
        Err(e) => errored("expect", e.to_string()),
    }
}

// --------------------------------------------------------- expect_access

/// One item of `expect_access`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccessPattern {
    role: String,
    /// `Some(None)`: tenant-wide; `None`: any.
    application: Option<Option<String>>,
    origin: Option<String>,
    scopes: Option<BTreeSet<String>>,
}

impl AccessPattern {
    fn parse(v: &Json) -> Result<AccessPattern, String> {
        let Some(map) = v.as_object() else { return Err(format!("each item must be a map, found `{v}`")) };
        let mut p = AccessPattern { role: String::new(), application: None, origin: None, scopes: None };
        for (key, value) in map {
            match key.as_str() {
                "role" => p.role = scalar(value).ok_or("`role` must be a string")?,
                "application" => {
                    p.application = Some(match value {
                        Json::Null => None,
                        other => Some(scalar(other).ok_or("`application` must be a string or null")?),
                    })
                }
                "origin" => p.origin = Some(scalar(value).ok_or("`origin` must be a string")?),
                "scopes" => p.scopes = Some(scope_list(value).ok_or("`scopes` must be a list or `\"a b\"`")?),
                other => {
                    let keys = ["role", "application", "origin", "scopes"];
                    let hint = did_you_mean(other, keys)
                        .map_or(format!(" (keys: {})", keys.join(", ")), |m| format!(" (did you mean `{m}`?)"));
                    return Err(format!("unknown key `{other}`{hint}"));
                }
            }
        }
        if p.role.is_empty() {
            return Err(format!("item `{v}` is missing `role`"));
        }
        Ok(p)
    }

    fn matches(&self, e: &AccessEntry) -> bool {
        self.role == e.role
            && self.application.as_ref().is_none_or(|a| *a == e.application)
            && self.origin.as_ref().is_none_or(|o| o == e.origin)
            && self.scopes.as_ref().is_none_or(|s| s.iter().all(|x| e.scopes.contains(x)))
    }
}

/// A scope list written as `"a b"` or `[a, b]`.
fn scope_list(v: &Json) -> Option<BTreeSet<String>> {
    match v {
        Json::String(s) => Some(s.split_whitespace().map(str::to_string).collect()),
        Json::Array(items) => items.iter().map(scalar).collect(),
        _ => None,
    }
}

fn entry_line(e: &AccessEntry) -> String {
    let on = e.application.as_deref().map_or("tenant-wide".to_string(), |a| format!("on {a}"));
    let mut s = format!("{} {on} [{}] scopes: {}", e.role, e.origin, e.scopes.join(" "));
    if let Some(c) = &e.conditions {
        s.push_str(&format!("; conditions: {}", c.summary()));
    }
    s
}

fn check_access(fb: &FactBase, a: &AssertionDecl, v: &Json, ctx: &Context) -> CheckResult {
    let items = match v.as_array() {
        Some(items) => items,
        None => return errored("expect_access", "`expect_access` must be a list of `{role, ...}` items".into()),
    };
    let patterns = match items.iter().map(AccessPattern::parse).collect::<Result<Vec<_>, _>>() {
        Ok(p) => p,
        Err(e) => return errored("expect_access", format!("`expect_access`: {e}")),
    };
    let subject = a.subject.value.to_string();
    let ea = match query::effective_access(fb, &subject, ctx.now, false) {
        Ok(ea) => ea,
        Err(e) => return errored("expect_access", e.to_string()),
    };
    let missing: Vec<String> = patterns
        .iter()
        .zip(items)
        .filter(|(p, _)| !ea.entries.iter().any(|e| p.matches(e)))
        .map(|(_, item)| item.to_string())
        .collect();
    let lines: Vec<String> = ea.entries.iter().map(entry_line).collect();
    let passed = missing.is_empty();
    let trace = (!passed).then(|| {
        let mut t = format!("effective access of {subject} at {}:\n", ctx.now);
        for e in &ea.entries {
            let _ = writeln!(t, "  {}  via {}  path: {}", e.binding, e.origin, e.path.join(" → "));
        }
        if ea.entries.is_empty() {
            t.push_str("  (nothing)\n");
        }
        t
    });
    CheckResult {
        kind: "expect_access",
        passed,
        expected: if passed { format!("{} item(s) matched", patterns.len()) } else { missing.join(", ") },
        actual: if lines.is_empty() { "no access".to_string() } else { lines.join("; ") },
        error: None,
        trace,
        outcome: if passed { "matched".into() } else { format!("unmatched {}", missing.join(", ")) },
    }
}

// ---------------------------------------------------- expect_token_scope

fn check_token_scope(fb: &FactBase, a: &AssertionDecl, v: &Json, ctx: &Context) -> CheckResult {
    let kind = "expect_token_scope";
    let Some(map) = v.as_object() else {
        return errored(kind, "`expect_token_scope` must be a map `{application?, requested?, granted}`".into());
    };
    if let Some(k) = map.keys().find(|k| !["application", "requested", "granted"].contains(&k.as_str())) {
        let hint = did_you_mean(k, ["application", "requested", "granted"])
            .map_or(String::new(), |m| format!(" (did you mean `{m}`?)"));
        return errored(kind, format!("`expect_token_scope`: unknown key `{k}`{hint}"));
    }
    let app = match map.get("application").and_then(scalar).or_else(|| a.application.as_ref().map(|x| x.value.clone()))
    {
        Some(app) => app,
        None => return errored(kind, "`expect_token_scope` needs `application` (or the assertion's)".into()),
    };
    let requested = match map.get("requested").map(scope_list) {
        Some(None) => return errored(kind, "`requested` must be a list or `\"a b\"`".into()),
        Some(Some(r)) => Some(r),
        None => None,
    };
    let Some(expected) = map.get("granted").and_then(scope_list) else {
        return errored(kind, "`expect_token_scope` needs `granted` (a list or `\"a b\"`)".into());
    };
    let subject = a.subject.value.to_string();
    let req: Option<Vec<&str>> = requested.as_ref().map(|r| r.iter().map(String::as_str).collect());
    let ts = match query::token_scope(fb, &subject, &app, req.as_deref(), ctx) {
        Ok(ts) => ts,
        Err(e) => return errored(kind, e.to_string()),
    };
    let got: BTreeSet<String> = ts.granted.iter().cloned().collect();
    let passed = got == expected;
    let mut actual = format!("granted: {}", ts.granted.join(" "));
    if !ts.blocked.is_empty() {
        let b: Vec<String> = ts.blocked.iter().map(|b| format!("{} ({})", b.scope, b.reason)).collect();
        actual.push_str(&format!("; blocked: {}", b.join(", ")));
    }
    let trace = (!passed).then(|| {
        let differing: BTreeSet<&String> = got.symmetric_difference(&expected).collect();
        differing
            .iter()
            .filter_map(|x| explain::explain(fb, &subject, &app, x, ctx).ok())
            .map(|ex| ex.render())
            .collect::<String>()
    });
    CheckResult {
        kind,
        passed,
        expected: format!("granted: {}", expected.iter().cloned().collect::<Vec<_>>().join(" ")),
        actual,
        error: None,
        trace,
        outcome: ts.granted.join(" "),
    }
}

// ------------------------------------------------------------------ suite

/// Test files for `policy`: `*.yaml`/`*.yml` below `tests/` next to it.
pub fn test_files(policy: &Path) -> Vec<PathBuf> {
    let dir = policy.parent().map_or_else(|| PathBuf::from("tests"), |d| d.join("tests"));
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Reads a test file: only `assertions` (other sections are an error).
pub fn load_test_file(path: &Path) -> Result<Vec<AssertionDecl>, PolicyError> {
    let file = path.display().to_string();
    let fail = |findings: Vec<Finding>| PolicyError { file: file.clone(), findings };
    let text = read_policy_text(path).map_err(|e| fail(vec![e.finding()]))?;
    let parsed = parse_policy(&text).map_err(fail)?;
    let extra = [
        ("tenant", parsed.tenant.is_some()),
        ("applications", !parsed.applications.is_empty()),
        ("roles", !parsed.roles.is_empty()),
        ("users", !parsed.users.is_empty()),
        ("service_accounts", !parsed.service_accounts.is_empty()),
        ("groups", !parsed.groups.is_empty()),
        ("bindings", !parsed.bindings.is_empty()),
    ];
    if let Some((section, _)) = extra.iter().find(|(_, present)| *present) {
        return Err(fail(vec![Finding::error(
            "test_file_section",
            Span::START,
            format!("a test file holds only `assertions`, found `{section}`"),
            Some("move declarations to the policy file the tests run against".to_string()),
        )]));
    }
    Ok(parsed.assertions)
}

/// The assertions of a compiled policy and of its test files.
pub fn collect(policy: &Policy, path: &Path) -> Result<Vec<Sourced>, PolicyError> {
    let mut all: Vec<Sourced> = policy.file.assertions.iter().map(|a| (policy.source.clone(), a.clone())).collect();
    for t in test_files(path) {
        let name = t.display().to_string();
        all.extend(load_test_file(&t)?.into_iter().map(|a| (name.clone(), a)));
    }
    Ok(all)
}

/// Loads `path`, its test files, and runs every assertion.
pub fn test_policy(path: &Path, now: Timestamp) -> Result<TestReport, SuiteError> {
    let policy = load(path)?;
    let assertions = collect(&policy, path)?;
    run_suite(policy, &assertions, now)
}

/// Runs `assertions` against a compiled policy (its own and any others).
pub fn run_suite(policy: Policy, assertions: &[Sourced], now: Timestamp) -> Result<TestReport, SuiteError> {
    let hf =
        instantiate(&policy).map_err(|e| SuiteError::Load { file: policy.source.clone(), message: e.to_string() })?;
    let tenant = hf
        .tenant(&policy.tenant)
        .ok_or_else(|| SuiteError::Load { file: policy.source.clone(), message: "tenant missing".into() })?;
    let st = tenant.read();
    let results = run_all(st.facts(), assertions, now);
    let mut files = vec![policy.source.clone()];
    for (f, _) in assertions {
        if !files.contains(f) {
            files.push(f.clone());
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    Ok(TestReport { policy: policy.source, files, failed: results.len() - passed, passed, results })
}

impl TestReport {
    /// Test-runner text: a header, one `ok` / `FAILED` line per assertion,
    /// and for each failure the expected and actual values and the trace.
    /// The summary line is [`summary_line`], printed once for all reports.
    pub fn render(&self) -> String {
        let mut out = format!("running {} assertion(s) against {}\n", self.results.len(), self.policy);
        for r in &self.results {
            let status = if r.passed { "ok    " } else { "FAILED" };
            let _ = writeln!(out, "{status} {}:{}:{}: {}", r.file, r.line, r.col, r.name);
            for c in r.checks.iter().filter(|c| !c.passed) {
                render_failure(&mut out, c);
            }
        }
        out
    }
}

fn render_failure(out: &mut String, c: &CheckResult) {
    if let Some(e) = &c.error {
        let _ = writeln!(out, "    {}: error: {e}", c.kind);
        return;
    }
    let _ = writeln!(out, "    {}:", c.kind);
    let _ = writeln!(out, "      expected: {}", c.expected);
    let _ = writeln!(out, "      actual:   {}", c.actual);
    if let Some(t) = &c.trace {
        let _ = writeln!(out, "      trace:");
        for line in t.lines() {
            let _ = writeln!(out, "        {line}");
        }
    }
}

/// `N passed, M failed`.
pub fn summary_line(passed: usize, failed: usize) -> String {
    format!("{passed} passed, {failed} failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn context_mapping() {
        let now = Timestamp(100);
        assert_eq!(context_of(None, now).unwrap(), Context::at(now));
        let c = context_of(
            Some(
                &json!({"now": "2026-06-01T00:00:00Z", "ip": "10.1.2.3", "mfa": {"auth_time": "2026-06-01T00:00:00Z"}}),
            ),
            now,
        )
        .unwrap();
        assert_eq!(c.now, Timestamp::parse("2026-06-01T00:00:00Z").unwrap());
        assert!(c.mfa.as_ref().unwrap().present, "an mfa map means MFA was done");
        assert_eq!(c.ip.unwrap().to_string(), "10.1.2.3");
        let c = context_of(Some(&json!({"mfa": {"present": false}})), now).unwrap();
        assert!(!c.mfa.unwrap().present);
        let e = context_of(Some(&json!({"mfaa": true})), now).unwrap_err();
        assert_eq!(e, "unknown key `mfaa` (did you mean `mfa`?)");
        assert!(context_of(Some(&json!({"ip": "nope"})), now).unwrap_err().contains("not an IP address"));
        assert!(context_of(Some(&json!({"now": "later"})), now).unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn access_patterns_match_subsets() {
        let p = AccessPattern::parse(&json!({"role": "r", "application": null, "scopes": "a"})).unwrap();
        let e = AccessEntry {
            binding: "tenant#r@user:a".into(),
            role: "r".into(),
            application: None,
            scopes: vec!["a".into(), "b".into()],
            origin: "direct",
            path: vec![],
            via: None,
            conditions: None,
            expires_at: None,
            status: "active",
        };
        assert!(p.matches(&e));
        let p = AccessPattern::parse(&json!({"role": "r", "application": "x"})).unwrap();
        assert!(!p.matches(&e));
        assert!(AccessPattern::parse(&json!({"rol": "r"})).unwrap_err().contains("did you mean `role`?"));
        assert!(AccessPattern::parse(&json!({"origin": "direct"})).unwrap_err().contains("missing `role`"));
    }
}
