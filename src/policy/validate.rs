//! `validate`: every finding of a policy file, in one report.
//!
//! Three passes, each adding to the same list: structure and values
//! ([`parse_policy`]), references, unsupported scopes and group cycles
//! ([`check_references`]), then the checks of this module ([`lint`]):
//! duplicate bindings and assertion names, bindings that grant nothing,
//! roles never bound, empty groups that are bound, assertions naming
//! undeclared subjects or unsupported scopes.
//!
//! Files are read with a bound ([`MAX_POLICY_BYTES`]); a larger file is
//! refused with a `file_too_large` finding before it is read whole.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::file::{did_you_mean, parse_policy, Finding, PolicyFile, Severity};
use super::yaml::Span;
use super::{check_references, render_finding};
use crate::model::{ObjectRef, ObjectType};

/// The largest policy file read: 16 MiB.
pub const MAX_POLICY_BYTES: u64 = 16 * 1024 * 1024;

/// Finding codes produced here (see also [`super::file::codes`]).
pub mod codes {
    pub const UNREADABLE: &str = "unreadable";
    pub const NOT_UTF8: &str = "not_utf8";
    pub const FILE_TOO_LARGE: &str = "file_too_large";
    pub const DUPLICATE_BINDING: &str = "duplicate_binding";
    pub const DUPLICATE_ASSERTION: &str = "duplicate_assertion";
    pub const BINDING_GRANTS_NOTHING: &str = "binding_grants_nothing";
    pub const ROLE_NEVER_BOUND: &str = "role_never_bound";
    pub const EMPTY_GROUP_BOUND: &str = "empty_group_bound";
    pub const UNDECLARED_SUBJECT: &str = "undeclared_subject";
    pub const UNKNOWN_SCOPE: &str = "unknown_scope";
}

/// Why a policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read `{source_name}`: {error}")]
    Io { source_name: String, error: std::io::Error },
    #[error("`{source_name}` is larger than the limit of {max} bytes (16 MiB)")]
    TooLarge { source_name: String, max: u64 },
    #[error("`{source_name}` is not UTF-8 text (first invalid byte at line {}, column {})", .span.line, .span.col)]
    NotUtf8 { source_name: String, span: Span },
}

impl ReadError {
    /// The error as a finding (an error at the position it concerns).
    pub fn finding(&self) -> Finding {
        let (code, span, hint) = match self {
            ReadError::Io { .. } => (codes::UNREADABLE, Span::START, None),
            ReadError::TooLarge { .. } => {
                (codes::FILE_TOO_LARGE, Span::START, Some("split the policy or remove generated data".to_string()))
            }
            ReadError::NotUtf8 { span, .. } => {
                (codes::NOT_UTF8, *span, Some("save the file as UTF-8 (YAML and JSON are UTF-8)".to_string()))
            }
        };
        Finding::error(code, span, self.to_string(), hint)
    }
}

/// Reads a policy file, at most [`MAX_POLICY_BYTES`] of it.
pub fn read_policy_text(path: &Path) -> Result<String, ReadError> {
    let source_name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|error| ReadError::Io { source_name: source_name.clone(), error })?;
    read_limited(file, &source_name, MAX_POLICY_BYTES)
}

/// Reads at most `max` bytes of UTF-8 text from `reader`; more is an error.
pub fn read_limited(reader: impl Read, source_name: &str, max: u64) -> Result<String, ReadError> {
    let mut bytes = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| ReadError::Io { source_name: source_name.to_string(), error })?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { source_name: source_name.to_string(), max });
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ReadError::NotUtf8 { source_name: source_name.to_string(), span: position_at_end(good) }
    })
}

/// The 1-based position just after `valid` (valid UTF-8 bytes).
fn position_at_end(valid: &[u8]) -> Span {
    let text = std::str::from_utf8(valid).unwrap_or_default();
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Span { line, col }
}

/// The findings of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub file: String,
    /// `false` when the file could not be read (missing, too large, not UTF-8).
    pub readable: bool,
    /// Sorted by position, then code.
    pub findings: Vec<Finding>,
}

/// A finding with its file, flat: the wire form (JSON) of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The wire form (JSON) of a [`FileReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportJson {
    pub file: String,
    pub readable: bool,
    pub errors: usize,
    pub warnings: usize,
    pub findings: Vec<Located>,
}

impl FileReport {
    pub fn to_json(&self) -> ReportJson {
        ReportJson {
            file: self.file.clone(),
            readable: self.readable,
            errors: self.errors(),
            warnings: self.warnings(),
            findings: self.located(),
        }
    }

    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }

    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// One line per finding: `file:line:col: error[code]: message (hint)`.
    pub fn render(&self) -> String {
        self.findings.iter().map(|f| render_finding(&self.file, f) + "\n").collect()
    }

    pub fn located(&self) -> Vec<Located> {
        self.findings
            .iter()
            .map(|f| Located {
                file: self.file.clone(),
                line: f.span.line,
                col: f.span.col,
                severity: f.severity,
                code: f.code,
                message: f.message.clone(),
                hint: f.hint.clone(),
            })
            .collect()
    }
}

/// Reads and validates one file.
pub fn validate_path(path: &Path) -> FileReport {
    let file = path.display().to_string();
    match read_policy_text(path) {
        Ok(text) => validate_text(&text, &file),
        Err(e) => FileReport { file, readable: false, findings: vec![e.finding()] },
    }
}

/// Validates policy text: every finding of every pass.
pub fn validate_text(text: &str, source: &str) -> FileReport {
    let mut findings = match parse_policy(text) {
        Err(findings) => findings,
        Ok(file) => {
            let mut all = check_references(&file);
            all.extend(lint(&file));
            all
        }
    };
    findings.sort_by(|a, b| (a.span, a.code, &a.message).cmp(&(b.span, b.code, &b.message)));
    FileReport { file: source.to_string(), readable: true, findings }
}

fn warning(code: &'static str, span: Span, message: String, hint: Option<String>) -> Finding {
    Finding { code, severity: Severity::Warning, span, message, hint }
}

fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|m| format!("did you mean `{m}`?"))
}

/// The checks beyond structure and references (run on a parsed file).
pub fn lint(file: &PolicyFile) -> Vec<Finding> {
    let mut out = duplicate_bindings(file);
    out.extend(duplicate_assertions(file));
    out.extend(bindings_granting_nothing(file));
    out.extend(roles_never_bound(file));
    out.extend(empty_groups_bound(file));
    out.extend(assertion_references(file));
    out
}

/// Two bindings of one role to one subject on one resource: the later one
/// would silently replace the earlier (and its conditions).
fn duplicate_bindings(file: &PolicyFile) -> Vec<Finding> {
    let mut first: BTreeMap<(String, &str, Option<&str>), Span> = BTreeMap::new();
    let mut out = Vec::new();
    for b in &file.bindings {
        let key =
            (b.subject.value.to_string(), b.role.value.as_str(), b.application.as_ref().map(|a| a.value.as_str()));
        match first.get(&key) {
            Some(at) => out.push(Finding::error(
                codes::DUPLICATE_BINDING,
                b.span,
                format!(
                    "role `{}` is bound to `{}` {} twice (first at line {}); the later binding would replace the earlier",
                    key.1,
                    key.0,
                    key.2.map_or("tenant-wide".to_string(), |a| format!("on `{a}`")),
                    at.line
                ),
                Some("merge them into one binding with the intended conditions".to_string()),
            )),
            None => {
                first.insert(key, b.span);
            }
        }
    }
    out
}

fn duplicate_assertions(file: &PolicyFile) -> Vec<Finding> {
    let mut first: BTreeMap<&str, Span> = BTreeMap::new();
    let mut out = Vec::new();
    for a in &file.assertions {
        let Some(name) = a.name.as_deref() else { continue };
        match first.get(name) {
            Some(at) => out.push(warning(
                codes::DUPLICATE_ASSERTION,
                a.span,
                format!("assertion name `{name}` is used twice (first at line {})", at.line),
                Some("give each assertion its own name so failures can be told apart".to_string()),
            )),
            None => {
                first.insert(name, a.span);
            }
        }
    }
    out
}

/// A binding from which the rules derive no `Entitled` fact at all: its role
/// grants no scope its application (or, tenant-wide, any application)
/// supports. Decided by the engine on the file loaded into memory (the
/// file's own sets only word the message and the hint). A file whose
/// references do not resolve is not evaluated (those errors are reported).
fn bindings_granting_nothing(file: &PolicyFile) -> Vec<Finding> {
    let tenant = file.tenant_id();
    let Ok(hf) = super::instantiate_changes(tenant, &super::to_changes(file)) else { return Vec::new() };
    let Some(t) = hf.tenant(tenant) else { return Vec::new() };
    let st = t.read();
    let fb = st.facts();
    // Does the engine derive an entitlement through this binding?
    let entitles = |b: &super::file::BindingDecl| -> bool {
        let object = match &b.application {
            Some(a) => ObjectRef::new(ObjectType::Application, a.value.as_str()),
            None => ObjectRef::tenant(),
        };
        let (Some(s), Some(r), Some(res)) =
            (fb.node_id(&b.subject.value), fb.role_id(&b.role.value), fb.resource_id(&object))
        else {
            return true; // not loaded: nothing to say here
        };
        let Some(id) = fb.binding_id(s, r, res) else { return true };
        match fb.view(s) {
            Ok(view) => {
                view.entitled.values().flat_map(|e| e.iter()).any(|&(i, _)| view.holds[i as usize].binding == id)
            }
            Err(_) => true, // over the evaluation limits: no finding rather than a wrong one
        }
    };
    let roles: BTreeMap<&str, BTreeSet<&str>> =
        file.roles.iter().map(|r| (r.id.value.as_str(), r.scopes.iter().map(|s| s.value.as_str()).collect())).collect();
    let apps: BTreeMap<&str, BTreeSet<&str>> = file
        .applications
        .iter()
        .map(|a| (a.id.value.as_str(), a.scopes_supported.iter().map(|s| s.value.as_str()).collect()))
        .collect();
    let mut out = Vec::new();
    for b in &file.bindings {
        let Some(granted) = roles.get(b.role.value.as_str()) else { continue };
        if entitles(b) {
            continue;
        }
        let on = match &b.application {
            Some(a) => format!("application `{}`", a.value),
            None => "any application".to_string(),
        };
        // Hint: the applications that do support something the role grants.
        let fits: Vec<&str> =
            apps.iter().filter(|(_, s)| granted.iter().any(|g| s.contains(g))).map(|(a, _)| *a).collect();
        let hint = match fits.as_slice() {
            [] => None,
            [one] => Some(format!("did you mean application `{one}`?")),
            many => Some(format!("applications supporting its scopes: {}", many.join(", "))),
        };
        let scopes: Vec<&str> = granted.iter().copied().collect();
        out.push(warning(
            codes::BINDING_GRANTS_NOTHING,
            b.role.span,
            format!(
                "binding of role `{}` to `{}` grants nothing: {on} supports none of its scopes ({})",
                b.role.value,
                b.subject.value,
                if scopes.is_empty() { "it grants none".to_string() } else { scopes.join(", ") }
            ),
            hint,
        ));
    }
    out
}

fn roles_never_bound(file: &PolicyFile) -> Vec<Finding> {
    let bound: BTreeSet<&str> = file.bindings.iter().map(|b| b.role.value.as_str()).collect();
    file.roles
        .iter()
        .filter(|r| !bound.contains(r.id.value.as_str()))
        .map(|r| {
            warning(
                codes::ROLE_NEVER_BOUND,
                r.id.span,
                format!("role `{}` is declared but no binding uses it", r.id.value),
                None,
            )
        })
        .collect()
}

/// Groups with no user or service account below them (nested groups
/// followed, cycles included), computed as a fixpoint.
fn groups_with_members(file: &PolicyFile) -> BTreeSet<&str> {
    let mut full: BTreeSet<&str> = BTreeSet::new();
    loop {
        let before = full.len();
        for g in &file.groups {
            let has = g.members.iter().any(|m| m.value.ty != ObjectType::Group || full.contains(m.value.id.as_str()));
            if has {
                full.insert(g.id.value.as_str());
            }
        }
        if full.len() == before {
            return full;
        }
    }
}

fn empty_groups_bound(file: &PolicyFile) -> Vec<Finding> {
    let declared: BTreeSet<&str> = file.groups.iter().map(|g| g.id.value.as_str()).collect();
    let full = groups_with_members(file);
    file.bindings
        .iter()
        .filter(|b| b.subject.value.ty == ObjectType::Group)
        .filter(|b| declared.contains(b.subject.value.id.as_str()) && !full.contains(b.subject.value.id.as_str()))
        .map(|b| {
            warning(
                codes::EMPTY_GROUP_BOUND,
                b.subject.span,
                format!(
                    "binding of role `{}` is to `{}`, which has no users or service accounts (directly or nested)",
                    b.role.value, b.subject.value
                ),
                None,
            )
        })
        .collect()
}

/// Assertions about undeclared subjects or unsupported scopes pass or fail
/// for the wrong reason (a typo makes `expect: deny` pass).
fn assertion_references(file: &PolicyFile) -> Vec<Finding> {
    let mut subjects: BTreeSet<String> = BTreeSet::new();
    subjects.extend(file.users.iter().map(|u| format!("user:{}", u.id.value)));
    subjects.extend(file.service_accounts.iter().map(|s| format!("service_account:{}", s.id.value)));
    subjects.extend(file.groups.iter().map(|g| format!("group:{}", g.id.value)));
    let apps: BTreeMap<&str, Vec<&str>> = file
        .applications
        .iter()
        .map(|a| (a.id.value.as_str(), a.scopes_supported.iter().map(|s| s.value.as_str()).collect()))
        .collect();
    let mut out = Vec::new();
    for a in &file.assertions {
        let subject = a.subject.value.to_string();
        if !subjects.contains(&subject) {
            out.push(warning(
                codes::UNDECLARED_SUBJECT,
                a.subject.span,
                format!("assertion subject `{subject}` is not declared (it holds nothing)"),
                suggest(&subject, subjects.iter().map(String::as_str)),
            ));
        }
        let (Some(app), Some(scope)) = (&a.application, &a.scope) else { continue };
        let Some(supported) = apps.get(app.value.as_str()) else { continue };
        if !supported.contains(&scope.value.as_str()) {
            out.push(warning(
                codes::UNKNOWN_SCOPE,
                scope.span,
                format!("application `{}` does not support scope `{}`", app.value, scope.value),
                suggest(&scope.value, supported.iter().copied()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes_of(text: &str) -> Vec<(&'static str, usize)> {
        validate_text(text, "t.yaml").findings.iter().map(|f| (f.code, f.span.line)).collect()
    }

    #[test]
    fn lint_checks() {
        let text = "applications:\n  a: {scopes_supported: [x]}\n  b: {scopes_supported: [y]}\nroles:\n  rx: {scopes: [x]}\n  ry: {scopes: [y]}\n  idle: {scopes: [x]}\nusers: [u]\ngroups:\n  empty: {members: []}\n  outer: {members: [group:empty]}\nbindings:\n  - {subject: user:u, role: rx, application: b}\n  - {subject: group:outer, role: rx, application: a}\n  - {subject: user:u, role: ry}\n  - {subject: user:u, role: ry}\n";
        assert_eq!(
            codes_of(text),
            [
                (codes::ROLE_NEVER_BOUND, 7),
                (codes::BINDING_GRANTS_NOTHING, 13),
                (codes::EMPTY_GROUP_BOUND, 14),
                (codes::DUPLICATE_BINDING, 16)
            ]
        );
        let r = validate_text(text, "t.yaml");
        assert_eq!(r.findings[1].hint.as_deref(), Some("did you mean application `a`?"));
        assert_eq!((r.errors(), r.warnings()), (1, 3));
    }

    #[test]
    fn reads_are_bounded_and_utf8_checked() {
        let e = read_limited(&b"abcdef"[..], "x", 5).unwrap_err();
        assert_eq!(e.finding().code, codes::FILE_TOO_LARGE);
        assert_eq!(read_limited(&b"abcde"[..], "x", 5).unwrap(), "abcde");
        let e = read_limited(&b"ab\ncd\xffe"[..], "x", 100).unwrap_err();
        let f = e.finding();
        assert_eq!((f.code, f.span), (codes::NOT_UTF8, Span { line: 2, col: 3 }));
        let e = read_policy_text(Path::new("/nonexistent/policy.yaml")).unwrap_err();
        assert_eq!(e.finding().code, codes::UNREADABLE);
    }
}
