//! Policy files: the YAML that teams review in pull requests. Parsing keeps
//! positions ([`yaml`], [`file`]); this module checks cross-references and
//! compiles a file into the changes that load it into a tenant.
//!
//! Policy as code builds on that: [`validate`] (every finding of a file,
//! read with a size bound), [`assertions`] (expectations run against a
//! loaded policy) and [`diff`] (who gains or loses what between two
//! versions, evaluated by the engine).

pub mod apply;
pub mod assertions;
pub mod diff;
pub mod file;
pub mod validate;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::json;

pub use file::{did_you_mean, parse_policy, Finding, OwnedMemberships, PolicyFile, Severity};
use yaml::Span;

use crate::model::{ObjectRef, ObjectType, Tuple};
use crate::service::{Change, Holdfast};

/// The tenant a file without `tenant:` loads into.
pub const DEFAULT_TENANT: &str = "default";

/// A parsed, reference-checked policy and the changes that load it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub source: String,
    pub tenant: String,
    pub file: PolicyFile,
    pub changes: Vec<Change>,
    /// Warnings found while checking (errors make [`compile`] fail).
    pub warnings: Vec<Finding>,
}

/// Findings of one file; an error when any is an error.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyError {
    /// The file the findings are about.
    pub file: String,
    pub findings: Vec<Finding>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for x in &self.findings {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, "{}", render_finding(&self.file, x))?;
        }
        Ok(())
    }
}

/// `file:line:col: error[code]: message (did you mean ...)`.
pub fn render_finding(source: &str, x: &Finding) -> String {
    let sev = match x.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut s = format!("{source}:{}:{}: {sev}[{}]: {}", x.span.line, x.span.col, x.code, x.message);
    if let Some(h) = &x.hint {
        s.push_str(&format!(" ({h})"));
    }
    s
}

/// Reads (at most [`validate::MAX_POLICY_BYTES`]) and compiles a policy file.
pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
    let source = path.display().to_string();
    let text = validate::read_policy_text(path)
        .map_err(|e| PolicyError { file: source.clone(), findings: vec![e.finding()] })?;
    compile(&text, &source)
}

fn finding(code: &'static str, span: Span, message: String, hint: Option<String>) -> Finding {
    Finding { code, severity: Severity::Error, span, message, hint }
}

fn warning(code: &'static str, span: Span, message: String, hint: Option<String>) -> Finding {
    Finding { code, severity: Severity::Warning, span, message, hint }
}

/// Parses `text` and checks its references; errors fail, warnings ride along.
pub fn compile(text: &str, source: &str) -> Result<Policy, PolicyError> {
    let file = parse_policy(text).map_err(|findings| PolicyError { file: source.to_string(), findings })?;
    let findings = check_references(&file);
    let (errors, warnings): (Vec<_>, Vec<_>) = findings.into_iter().partition(|f| f.severity == Severity::Error);
    if !errors.is_empty() {
        return Err(PolicyError { file: source.to_string(), findings: errors });
    }
    Ok(Policy {
        source: source.to_string(),
        tenant: file.tenant.as_ref().map_or_else(|| DEFAULT_TENANT.to_string(), |t| t.value.clone()),
        changes: to_changes(&file),
        file,
        warnings,
    })
}

fn hint(word: &str, candidates: &BTreeSet<String>) -> Option<String> {
    did_you_mean(word, candidates.iter().map(String::as_str)).map(|m| format!("did you mean `{m}`?"))
}

/// Cross-reference checks: everything referenced is declared; scopes a role
/// grants that no application supports and group cycles are warnings.
pub fn check_references(file: &PolicyFile) -> Vec<Finding> {
    let mut out = Vec::new();
    let roles: BTreeSet<String> = file.roles.iter().map(|r| r.id.value.clone()).collect();
    let apps: BTreeSet<String> = file.applications.iter().map(|a| a.id.value.clone()).collect();
    let mut subjects: BTreeSet<String> = BTreeSet::new();
    for u in &file.users {
        subjects.insert(format!("user:{}", u.id.value));
    }
    for s in &file.service_accounts {
        subjects.insert(format!("service_account:{}", s.id.value));
    }
    for g in &file.groups {
        subjects.insert(format!("group:{}", g.id.value));
    }
    let check_subject = |r: &ObjectRef, span: Span, what: &str, out: &mut Vec<Finding>| {
        let text = r.to_string();
        if !subjects.contains(&text) {
            let section = match r.ty {
                ObjectType::User => "users",
                ObjectType::Group => "groups",
                _ => "service_accounts",
            };
            out.push(finding(
                "undeclared_subject",
                span,
                format!("{what} `{text}` is not declared under `{section}`"),
                hint(&text, &subjects),
            ));
        }
    };
    for g in &file.groups {
        for m in &g.members {
            check_subject(&m.value, m.span, &format!("member of group `{}`", g.id.value), &mut out);
        }
    }
    for b in &file.bindings {
        check_subject(&b.subject.value, b.subject.span, "binding subject", &mut out);
        if !roles.contains(&b.role.value) {
            out.push(finding(
                "unknown_role",
                b.role.span,
                format!("role `{}` is not declared under `roles`", b.role.value),
                hint(&b.role.value, &roles),
            ));
        }
        if let Some(a) = &b.application {
            if !apps.contains(&a.value) {
                out.push(finding(
                    "unknown_application",
                    a.span,
                    format!("application `{}` is not declared under `applications`", a.value),
                    hint(&a.value, &apps),
                ));
            }
        }
    }
    if let OwnedMemberships::Groups(gs) = &file.owns.memberships {
        let groups: BTreeSet<String> = file.groups.iter().map(|g| g.id.value.clone()).collect();
        for g in gs.iter().filter(|g| !groups.contains(&g.value)) {
            out.push(finding(
                "unknown_group",
                g.span,
                format!("`owns.memberships` names group `{}`, which is not declared under `groups`", g.value),
                hint(&g.value, &groups),
            ));
        }
    }
    let supported: BTreeSet<&str> =
        file.applications.iter().flat_map(|a| a.scopes_supported.iter().map(|s| s.value.as_str())).collect();
    for r in &file.roles {
        for s in &r.scopes {
            if !supported.contains(s.value.as_str()) {
                out.push(warning(
                    "unsupported_scope",
                    s.span,
                    format!("role `{}` grants `{}`, which no application supports", r.id.value, s.value),
                    did_you_mean(&s.value, supported.iter().copied()).map(|m| format!("did you mean `{m}`?")),
                ));
            }
        }
    }
    for a in &file.assertions {
        if let Some(app) = &a.application {
            if !apps.contains(&app.value) {
                out.push(warning(
                    "unknown_application",
                    app.span,
                    format!("assertion names application `{}`, which is not declared", app.value),
                    hint(&app.value, &apps),
                ));
            }
        }
    }
    out.extend(group_cycles(file));
    out
}

/// One warning per group cycle, at the group that closes it.
fn group_cycles(file: &PolicyFile) -> Vec<Finding> {
    let edges: BTreeMap<&str, Vec<&str>> = file
        .groups
        .iter()
        .map(|g| {
            let subs =
                g.members.iter().filter(|m| m.value.ty == ObjectType::Group).map(|m| m.value.id.as_str()).collect();
            (g.id.value.as_str(), subs)
        })
        .collect();
    let spans: BTreeMap<&str, Span> = file.groups.iter().map(|g| (g.id.value.as_str(), g.id.span)).collect();
    // Iterative DFS with colours; report each back edge once.
    let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
    let mut out = Vec::new();
    for &start in edges.keys() {
        if colour.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        let mut path: Vec<&str> = vec![start];
        colour.insert(start, 1);
        while let Some(&mut (node, ref mut i)) = stack.last_mut() {
            let next = edges.get(node).and_then(|v| v.get(*i)).copied();
            *i += 1;
            match next {
                Some(n) => match colour.get(n).copied().unwrap_or(0) {
                    0 => {
                        colour.insert(n, 1);
                        stack.push((n, 0));
                        path.push(n);
                    }
                    1 => {
                        let from = path.iter().position(|&p| p == n).unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..].iter().map(|g| format!("group:{g}")).collect();
                        cycle.push(format!("group:{n}"));
                        out.push(warning(
                            "group_cycle",
                            spans.get(node).copied().unwrap_or(Span { line: 0, col: 0 }),
                            format!(
                                "groups nest in a cycle: {} (members of each are members of all)",
                                cycle.join(" ⊂ ")
                            ),
                            None,
                        ));
                    }
                    _ => {}
                },
                None => {
                    colour.insert(node, 2);
                    stack.pop();
                    path.pop();
                }
            }
        }
    }
    out
}

/// The changes that load a policy file into an empty tenant.
pub fn to_changes(file: &PolicyFile) -> Vec<Change> {
    let mut out = Vec::new();
    let scope = |s: &str| ObjectRef::new(ObjectType::Scope, s);
    for a in &file.applications {
        let o = ObjectRef::new(ObjectType::Application, &a.id.value);
        let mut attrs = serde_json::Map::new();
        if let Some(n) = &a.name {
            attrs.insert("name".into(), json!(n));
        }
        if let Some(r) = &a.resource {
            attrs.insert("resource".into(), json!(r));
        }
        if let Some(t) = &a.resource_type {
            attrs.insert("resource_type".into(), json!(t));
        }
        out.push(Change::PutObject(o.clone(), attrs.into()));
        for s in &a.scopes_supported {
            out.push(Change::PutTuple(Tuple::new(o.clone(), "supports", scope(&s.value)), None));
        }
    }
    for r in &file.roles {
        let o = ObjectRef::new(ObjectType::Role, &r.id.value);
        let mut attrs = serde_json::Map::new();
        if let Some(n) = &r.name {
            attrs.insert("name".into(), json!(n));
        }
        if let Some(d) = &r.description {
            attrs.insert("description".into(), json!(d));
        }
        out.push(Change::PutObject(o.clone(), attrs.into()));
        for s in &r.scopes {
            out.push(Change::PutTuple(Tuple::new(o.clone(), "grants", scope(&s.value)), None));
        }
    }
    for (ty, list) in [(ObjectType::User, &file.users), (ObjectType::ServiceAccount, &file.service_accounts)] {
        for u in list {
            let mut attrs = serde_json::Map::new();
            if let Some(n) = &u.name {
                attrs.insert("name".into(), json!(n));
            }
            if let Some(e) = &u.email {
                attrs.insert("email".into(), json!(e));
            }
            out.push(Change::PutObject(ObjectRef::new(ty, &u.id.value), attrs.into()));
        }
    }
    for g in &file.groups {
        let o = ObjectRef::new(ObjectType::Group, &g.id.value);
        let mut attrs = serde_json::Map::new();
        if let Some(n) = &g.name {
            attrs.insert("name".into(), json!(n));
        }
        out.push(Change::PutObject(o.clone(), attrs.into()));
    }
    for g in &file.groups {
        let o = ObjectRef::new(ObjectType::Group, &g.id.value);
        for m in &g.members {
            out.push(Change::PutTuple(Tuple::new(o.clone(), "member", m.value.clone()), None));
        }
    }
    for b in &file.bindings {
        let object = match &b.application {
            Some(a) => ObjectRef::new(ObjectType::Application, &a.value),
            None => ObjectRef::tenant(),
        };
        let cond = (!b.conditions.is_empty()).then(|| b.conditions.clone());
        out.push(Change::PutTuple(Tuple::new(object, &b.role.value, b.subject.value.clone()), cond));
    }
    for p in &file.identity_providers {
        out.push(Change::Identity(crate::service::identity::IdentityChange::PutProvider(
            p.name.value.clone(),
            Box::new(p.provider.clone()),
        )));
    }
    out
}

/// A memory-only instance with `policy` loaded into its tenant. Large
/// policies are written in batches of at most [`crate::service::MAX_BATCH`]
/// changes, in file order (declarations before the tuples that use them).
pub fn instantiate(policy: &Policy) -> Result<Holdfast, crate::service::WriteError> {
    instantiate_changes(&policy.tenant, &policy.changes)
}

/// [`instantiate`], consuming the policy: its changes move into the
/// instance instead of being copied (a large file is not held twice).
pub fn instantiate_owned(policy: Policy) -> Result<Holdfast, crate::service::WriteError> {
    let hf = Holdfast::in_memory();
    if policy.changes.is_empty() {
        hf.write(&policy.tenant, Vec::new(), &[], "policy-file", 0)?;
    }
    let mut changes = policy.changes.into_iter();
    loop {
        let chunk: Vec<Change> = changes.by_ref().take(crate::service::MAX_BATCH).collect();
        if chunk.is_empty() {
            return Ok(hf);
        }
        hf.write(&policy.tenant, chunk, &[], "policy-file", 0)?;
    }
}

/// A memory-only instance with `changes` loaded into `tenant` (batched).
pub fn instantiate_changes(tenant: &str, changes: &[Change]) -> Result<Holdfast, crate::service::WriteError> {
    let hf = Holdfast::in_memory();
    if changes.is_empty() {
        hf.write(tenant, Vec::new(), &[], "policy-file", 0)?;
    }
    for chunk in changes.chunks(crate::service::MAX_BATCH) {
        hf.write(tenant, chunk.to_vec(), &[], "policy-file", 0)?;
    }
    Ok(hf)
}
