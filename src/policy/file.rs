//! The policy file (YAML or JSON), parsed into typed declarations that keep
//! their source positions.
//!
//! [`parse_policy`] checks structure and values only: YAML syntax, types,
//! unknown and missing keys, ids, object references, conditions, `expect`
//! values and duplicates within a section. Cross-references (a binding naming
//! an undeclared role, ...) are checked by a later pass. All findings are
//! collected, sorted by position; none of them stops the others.
//!
//! The format is described by `schema/policy.schema.json`; the `*_KEYS`
//! constants below are the keys accepted at each level and are tested
//! against that schema.

use std::{collections::HashMap, fmt};

use serde::Serialize;

use super::yaml::{self, Node, Span, Value, YamlErrorKind};
use crate::model::attributes::TEST_KEYS;
use crate::model::conditions::{parse_duration, parse_net, IpCondition, MfaCondition};
use crate::model::{validate_id, AttributeTest, Attributes, Conditions, ObjectRef, ObjectType, Timestamp};

/// The tenant when the file does not name one.
pub const DEFAULT_TENANT: &str = "default";

pub const TOP_LEVEL_KEYS: &[&str] = &[
    "tenant",
    "owns",
    "applications",
    "roles",
    "users",
    "service_accounts",
    "groups",
    "bindings",
    "identity_providers",
    "assertions",
];
/// Keys of an identity provider (`identity_providers.<name>`), as on the API.
pub const IDENTITY_PROVIDER_KEYS: &[&str] =
    &["issuer", "audience", "jwks", "jwks_uri", "groups_claim", "user_claim", "group_map", "algorithms"];
/// Keys of `owns`: what an apply of the file may delete besides roles,
/// applications, groups and bindings.
pub const OWNS_KEYS: &[&str] = &["memberships"];
pub const APPLICATION_KEYS: &[&str] = &["name", "resource", "resource_type", "scopes_supported"];
pub const ROLE_KEYS: &[&str] = &["name", "description", "scopes"];
/// Keys of a user or service account given in map form.
pub const SUBJECT_KEYS: &[&str] = &["name", "email"];
pub const GROUP_KEYS: &[&str] = &["name", "members"];
pub const BINDING_KEYS: &[&str] = &["subject", "role", "application", "conditions", "expires_at", "not_before"];
pub const CONDITION_KEYS: &[&str] = &["mfa", "ip", "not_before", "expires_at", "attributes"];
pub const MFA_KEYS: &[&str] = &["required", "max_age"];
pub const IP_KEYS: &[&str] = &["allow"];
pub const ASSERTION_KEYS: &[&str] = &[
    "name",
    "subject",
    "application",
    "scope",
    "context",
    "attributes",
    "expect",
    "expect_access",
    "expect_token_scope",
];
/// Values of an assertion's `expect`.
pub const EXPECT_VALUES: &[&str] = &["allow", "deny", "step_up"];

/// Finding codes produced by [`parse_policy`].
pub mod codes {
    pub const YAML_SYNTAX: &str = "yaml_syntax";
    pub const WRONG_TYPE: &str = "wrong_type";
    pub const UNKNOWN_KEY: &str = "unknown_key";
    pub const MISSING_KEY: &str = "missing_key";
    pub const INVALID_ID: &str = "invalid_id";
    pub const INVALID_REFERENCE: &str = "invalid_reference";
    pub const INVALID_CONDITION: &str = "invalid_condition";
    pub const INVALID_EXPECT: &str = "invalid_expect";
    /// A malformed value with no more specific code (e.g. `resource` not an absolute URI).
    pub const INVALID_VALUE: &str = "invalid_value";
    pub const DUPLICATE: &str = "duplicate";
    /// The file has no content (empty, whitespace or comments only): what
    /// `curl --data-binary @missing.yaml` sends. Applying it would wipe the tenant.
    pub const EMPTY_POLICY: &str = "empty_policy";
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyFile {
    pub tenant: Option<Spanned<String>>,
    /// Whose group memberships the file owns (an apply deletes the others).
    pub owns: Owns,
    pub applications: Vec<AppDecl>,
    pub roles: Vec<RoleDecl>,
    pub users: Vec<SubjectDecl>,
    pub service_accounts: Vec<SubjectDecl>,
    pub groups: Vec<GroupDecl>,
    pub bindings: Vec<BindingDecl>,
    /// OIDC identity providers, by name.
    pub identity_providers: Vec<IdentityProviderDecl>,
    pub assertions: Vec<AssertionDecl>,
}

/// `identity_providers.<name>`: an OIDC identity provider of the tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityProviderDecl {
    pub name: Spanned<String>,
    pub provider: crate::model::oidc::IdentityProvider,
}

impl PolicyFile {
    /// The tenant id, [`DEFAULT_TENANT`] when not set.
    pub fn tenant_id(&self) -> &str {
        self.tenant.as_ref().map_or(DEFAULT_TENANT, |t| t.value.as_str())
    }
}

/// What the file owns beyond roles, applications, groups and bindings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Owns {
    pub memberships: OwnedMemberships,
}

/// `owns.memberships`: the groups whose member lists the file states in full.
/// An apply deletes the memberships of those groups that the file does not
/// list; memberships of other groups (synced from a directory, added over
/// the API) are only ever added.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnedMemberships {
    /// `false` or absent: no group's (the default).
    #[default]
    None,
    /// `true`: every group's, including groups the file does not declare.
    All,
    /// A list of group ids (declared in the file).
    Groups(Vec<Spanned<String>>),
}

impl OwnedMemberships {
    /// Does the file own the memberships of group `id`?
    pub fn owns(&self, id: &str) -> bool {
        match self {
            OwnedMemberships::None => false,
            OwnedMemberships::All => true,
            OwnedMemberships::Groups(gs) => gs.iter().any(|g| g.value == id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppDecl {
    pub id: Spanned<String>,
    pub name: Option<String>,
    /// Canonical URI of the protected resource (OAuth `resource`).
    pub resource: Option<String>,
    /// The AuthZEN resource type (absent: `application`).
    pub resource_type: Option<String>,
    pub scopes_supported: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleDecl {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Vec<Spanned<String>>,
}

/// A user or a service account.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectDecl {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDecl {
    pub id: Spanned<String>,
    pub name: Option<String>,
    /// Users, groups and service accounts.
    pub members: Vec<Spanned<ObjectRef>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindingDecl {
    /// Where the binding (list item) starts.
    pub span: Span,
    /// A user, group or service account.
    pub subject: Spanned<ObjectRef>,
    pub role: Spanned<String>,
    /// `None`: tenant-wide.
    pub application: Option<Spanned<String>>,
    /// `conditions`, merged with `expires_at`/`not_before` given on the binding itself.
    pub conditions: Conditions,
    /// Where `conditions` is written, if it is.
    pub conditions_span: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertionDecl {
    pub span: Span,
    pub name: Option<String>,
    pub subject: Spanned<ObjectRef>,
    pub application: Option<Spanned<String>>,
    pub scope: Option<Spanned<String>>,
    /// Free-form request context (`mfa`, `ip`, `now`...), checked by the test runner.
    pub context: Option<serde_json::Value>,
    /// Values for attribute conditions (`{subject, resource, action, context}`).
    pub attributes: Option<Attributes>,
    /// One of [`EXPECT_VALUES`].
    pub expect: Option<Spanned<String>>,
    pub expect_access: Option<serde_json::Value>,
    pub expect_token_scope: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub span: Span,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Finding {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>, hint: Option<String>) -> Finding {
        Finding { code, severity: Severity::Error, span, message: message.into(), hint }
    }
}

impl fmt::Display for Finding {
    /// `3:5: error[unknown_key]: ... (hint: ...)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}[{}]: {}", self.span.line, self.span.col, self.severity, self.code, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`: a case-insensitive match, else the one
/// at the smallest Levenshtein distance if that is at most 2 (and smaller
/// than the candidate's length, so `x` does not suggest `ip`).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_len = word.chars().count();
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        if cand.eq_ignore_ascii_case(word) || cand.to_lowercase() == word.to_lowercase() {
            return Some(cand);
        }
        let cand_len = cand.chars().count();
        if word_len.abs_diff(cand_len) > 2 {
            continue;
        }
        let d = levenshtein(word, cand);
        if d <= 2 && d < cand_len && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = sub.min(del).min(ins);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// Parses and checks a policy file. `Err` holds every finding (sorted by
/// position) when there is at least one error. An empty file is an empty
/// policy.
pub fn parse_policy(text: &str) -> Result<PolicyFile, Vec<Finding>> {
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let (code, hint) = match e.kind {
                YamlErrorKind::DuplicateKey => (codes::DUPLICATE, Some("remove or rename one of them".to_string())),
                YamlErrorKind::Unsupported if e.message.starts_with("aliases") => (
                    codes::YAML_SYNTAX,
                    Some("anchors and aliases (`&name`, `*name`) are not allowed in policy files".to_string()),
                ),
                _ => (codes::YAML_SYNTAX, None),
            };
            return Err(vec![Finding::error(code, e.span, e.message, hint)]);
        }
    };
    if root.is_null() {
        return Err(vec![Finding::error(
            codes::EMPTY_POLICY,
            root.span,
            "the policy file is empty (no content, or only whitespace and comments); applied, it would remove every role, application and binding of the tenant".to_string(),
            Some("check the file path; a policy that really declares nothing is written `{}`".to_string()),
        )]);
    }
    let mut cx = Checker { findings: Vec::new() };
    let file = cx.policy(&root);
    if cx.findings.iter().any(|f| f.severity == Severity::Error) {
        let mut findings = cx.findings;
        findings.sort_by_key(|f| f.span);
        Err(findings)
    } else {
        Ok(file)
    }
}

/// Truncates user text shown in messages.
fn shown(s: &str) -> String {
    if s.chars().count() > 64 {
        let mut t: String = s.chars().take(64).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

/// The known keys of one mapping, after unknown keys were reported.
struct Fields<'a> {
    found: Vec<(&'static str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    /// The value under `key`, `None` if absent.
    fn raw(&self, key: &str) -> Option<&'a Node> {
        self.found.iter().find(|(k, _, _)| *k == key).map(|(_, _, v)| *v)
    }

    /// The value under `key`, `None` if absent or null.
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.raw(key).filter(|n| !n.is_null())
    }

    fn key_span(&self, key: &str) -> Option<Span> {
        self.found.iter().find(|(k, _, _)| *k == key).map(|(_, k, _)| k.span)
    }
}

struct Checker {
    findings: Vec<Finding>,
}

impl Checker {
    fn err(&mut self, code: &'static str, span: Span, message: String, hint: Option<String>) {
        self.findings.push(Finding::error(code, span, message, hint));
    }

    fn wrong_type(&mut self, node: &Node, path: &str, expected: &str) {
        self.err(
            codes::WRONG_TYPE,
            node.span,
            format!("`{path}` must be {expected}, found {}", node.type_name()),
            None,
        );
    }

    fn missing(&mut self, span: Span, path: &str, key: &str, hint: Option<String>) {
        self.err(codes::MISSING_KEY, span, format!("`{path}` is missing `{key}`"), hint);
    }

    /// Checks that `node` is a map with only `allowed` keys (each unknown key
    /// is reported) and returns the known ones.
    fn fields<'a>(&mut self, node: &'a Node, path: &str, allowed: &[&'static str]) -> Option<Fields<'a>> {
        let Some(entries) = node.as_map() else {
            self.wrong_type(node, path, "a map");
            return None;
        };
        let mut found = Vec::new();
        for (k, v) in entries {
            let name = k.as_str();
            match name.and_then(|n| allowed.iter().find(|a| **a == n)) {
                Some(known) => found.push((*known, k, v)),
                None => {
                    let text = k.scalar_text().unwrap_or_else(|| k.type_name().to_string());
                    let hint = match did_you_mean(&text, allowed.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("allowed keys: {}", allowed.join(", ")),
                    };
                    let at = if path.is_empty() { String::new() } else { format!(" in `{path}`") };
                    self.err(codes::UNKNOWN_KEY, k.span, format!("unknown key `{}`{at}", shown(&text)), Some(hint));
                }
            }
        }
        Some(Fields { found })
    }

    /// An id: a string (or a plain integer, converted) that passes `validate_id`.
    fn id(&mut self, node: &Node, path: &str, what: &str) -> Option<Spanned<String>> {
        let text = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => {
                self.wrong_type(node, path, &format!("{what} (a string)"));
                return None;
            }
        };
        match validate_id(&text) {
            Ok(()) => Some(Spanned::new(text, node.span)),
            Err(m) => {
                self.err(codes::INVALID_ID, node.span, format!("{what} `{}` in `{path}` {m}", shown(&text)), None);
                None
            }
        }
    }

    /// Free text (`name`, `description`...): a string or a number.
    fn text(&mut self, node: Option<&Node>, path: &str) -> Option<String> {
        let node = node?;
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) => node.scalar_text(),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// A list of ids; duplicates are reported.
    fn id_list(&mut self, node: &Node, path: &str, what: &str) -> Vec<Spanned<String>> {
        let Some(items) = node.as_seq() else {
            self.wrong_type(node, path, &format!("a list of {what}s (strings)"));
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(id) = self.id(item, &format!("{path}[{i}]"), what) {
                if let Some(first) = seen.get(&id.value) {
                    self.err(
                        codes::DUPLICATE,
                        id.span,
                        format!("`{path}` lists {what} `{}` twice (first at line {})", shown(&id.value), first.line),
                        None,
                    );
                } else {
                    seen.insert(id.value.clone(), id.span);
                    out.push(id);
                }
            }
        }
        out
    }

    /// A reference to a user, group or service account.
    fn subject_ref(&mut self, node: &Node, path: &str) -> Option<Spanned<ObjectRef>> {
        let Some(text) = node.as_str() else {
            self.wrong_type(node, path, "a reference such as `user:alice` (a string)");
            return None;
        };
        match ObjectRef::parse(text) {
            Ok(r) if r.ty.is_subject() => Some(Spanned::new(r, node.span)),
            Ok(r) => {
                self.err(
                    codes::INVALID_REFERENCE,
                    node.span,
                    format!("`{path}` must name a user, group or service account, found `{}`", shown(&r.to_string())),
                    Some("write `user:ID`, `group:ID` or `service_account:ID`".to_string()),
                );
                None
            }
            Err(e) => {
                let hint = match text.split_once(':') {
                    None if validate_id(text).is_ok() => {
                        Some(format!("did you mean `user:{0}` or `group:{0}`?", shown(text)))
                    }
                    Some((ty, id)) if ObjectType::parse(ty).is_none() => {
                        did_you_mean(ty, ["user", "group", "service_account"])
                            .map(|t| format!("did you mean `{t}:{}`?", shown(id)))
                    }
                    _ => None,
                };
                self.err(codes::INVALID_REFERENCE, node.span, format!("`{path}`: {}", e.message), hint);
                None
            }
        }
    }

    /// A section that may be absent or null (empty).
    fn section<'a>(fields: &Fields<'a>, key: &str) -> Option<&'a Node> {
        fields.get(key)
    }

    /// A section written as a map `id -> entry`; yields `(id, entry)` for
    /// valid, not duplicated ids.
    fn id_map<'a>(&mut self, node: &'a Node, path: &str, what: &str) -> Vec<(Spanned<String>, &'a Node)> {
        let Some(entries) = node.as_map() else {
            self.wrong_type(node, path, &format!("a map from {what} id to its declaration"));
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        for (k, v) in entries {
            let Some(id) = self.id(k, path, &format!("{what} id")) else { continue };
            if let Some(first) = seen.get(&id.value) {
                self.err(
                    codes::DUPLICATE,
                    id.span,
                    format!("`{path}` declares `{}` twice (first at line {})", shown(&id.value), first.line),
                    None,
                );
                continue;
            }
            seen.insert(id.value.clone(), id.span);
            out.push((id, v));
        }
        out
    }

    fn policy(&mut self, root: &Node) -> PolicyFile {
        let mut file = PolicyFile::default();
        if root.is_null() {
            return file;
        }
        let Some(top) = self.fields(root, "", TOP_LEVEL_KEYS) else {
            // fields() said "`` must be a map"; say it better.
            if let Some(f) = self.findings.last_mut() {
                f.message = format!(
                    "a policy file must be a map (keys: {}), found {}",
                    TOP_LEVEL_KEYS.join(", "),
                    root.type_name()
                );
            }
            return file;
        };
        if let Some(t) = top.get("tenant") {
            file.tenant = self.id(t, "tenant", "tenant id");
        }
        if let Some(n) = top.get("owns") {
            file.owns = self.owns(n);
        }
        if let Some(n) = Self::section(&top, "applications") {
            for (id, entry) in self.id_map(n, "applications", "application") {
                if let Some(app) = self.application(id, entry) {
                    file.applications.push(app);
                }
            }
        }
        if let Some(n) = Self::section(&top, "roles") {
            for (id, entry) in self.id_map(n, "roles", "role") {
                if let Some(role) = self.role(id, entry) {
                    file.roles.push(role);
                }
            }
        }
        if let Some(n) = Self::section(&top, "users") {
            file.users = self.subjects(n, "users", "user");
        }
        if let Some(n) = Self::section(&top, "service_accounts") {
            file.service_accounts = self.subjects(n, "service_accounts", "service account");
        }
        if let Some(n) = Self::section(&top, "groups") {
            for (id, entry) in self.id_map(n, "groups", "group") {
                if let Some(group) = self.group(id, entry) {
                    file.groups.push(group);
                }
            }
        }
        if let Some(n) = Self::section(&top, "bindings") {
            match n.as_seq() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(b) = self.binding(item, &format!("bindings[{i}]")) {
                            file.bindings.push(b);
                        }
                    }
                }
                None => self.wrong_type(n, "bindings", "a list of bindings"),
            }
        }
        if let Some(n) = Self::section(&top, "identity_providers") {
            for (name, entry) in self.id_map(n, "identity_providers", "identity provider") {
                if let Some(p) = self.identity_provider(name, entry) {
                    file.identity_providers.push(p);
                }
            }
        }
        if let Some(n) = Self::section(&top, "assertions") {
            match n.as_seq() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(a) = self.assertion(item, &format!("assertions[{i}]")) {
                            file.assertions.push(a);
                        }
                    }
                }
                None => self.wrong_type(n, "assertions", "a list of assertions"),
            }
        }
        file
    }

    /// One identity provider: the API's shape, checked whole
    /// ([`crate::model::oidc::IdentityProvider::validate`]).
    fn identity_provider(&mut self, name: Spanned<String>, entry: &Node) -> Option<IdentityProviderDecl> {
        let path = format!("identity_providers.{}", name.value);
        self.fields(entry, &path, IDENTITY_PROVIDER_KEYS)?;
        let provider: crate::model::oidc::IdentityProvider = match serde_json::from_value(entry.to_json()) {
            Ok(p) => p,
            Err(e) => {
                self.err(codes::INVALID_VALUE, entry.span, format!("`{path}`: {e}"), None);
                return None;
            }
        };
        if let Err(e) = provider.validate(&name.value) {
            self.err(codes::INVALID_VALUE, entry.span, format!("`{path}`: {e}"), None);
            return None;
        }
        Some(IdentityProviderDecl { name, provider })
    }

    fn owns(&mut self, node: &Node) -> Owns {
        let mut owns = Owns::default();
        let Some(f) = self.fields(node, "owns", OWNS_KEYS) else { return owns };
        if let Some(m) = f.get("memberships") {
            owns.memberships = match &m.value {
                Value::Bool(true) => OwnedMemberships::All,
                Value::Bool(false) => OwnedMemberships::None,
                _ if m.as_seq().is_some() => OwnedMemberships::Groups(self.id_list(m, "owns.memberships", "group id")),
                _ => {
                    self.wrong_type(m, "owns.memberships", "`true`, `false` or a list of group ids");
                    OwnedMemberships::None
                }
            };
        }
        owns
    }

    fn application(&mut self, id: Spanned<String>, entry: &Node) -> Option<AppDecl> {
        let path = format!("applications.{}", shown(&id.value));
        let f = self.fields(entry, &path, APPLICATION_KEYS)?;
        let name = self.text(f.get("name"), &format!("{path}.name"));
        let resource = self.text(f.get("resource"), &format!("{path}.resource"));
        if let (Some(r), Some(node)) = (&resource, f.get("resource")) {
            if let Err(m) = check_resource_uri(r) {
                self.err(
                    codes::INVALID_VALUE,
                    node.span,
                    format!("`{path}.resource` `{}` {m}", shown(r)),
                    Some("example: https://mcp.example.com/github".to_string()),
                );
            }
        }
        let resource_type = f
            .get("resource_type")
            .and_then(|n| self.id(n, &format!("{path}.resource_type"), "resource type"))
            .map(|s| s.value);
        let scopes_supported = match f.raw("scopes_supported") {
            Some(n) => self.id_list(n, &format!("{path}.scopes_supported"), "scope"),
            None => {
                self.missing(
                    id.span,
                    &path,
                    "scopes_supported",
                    Some("list the scopes the application understands".into()),
                );
                return None;
            }
        };
        Some(AppDecl { id, name, resource, resource_type, scopes_supported })
    }

    fn role(&mut self, id: Spanned<String>, entry: &Node) -> Option<RoleDecl> {
        let path = format!("roles.{}", shown(&id.value));
        let f = self.fields(entry, &path, ROLE_KEYS)?;
        let name = self.text(f.get("name"), &format!("{path}.name"));
        let description = self.text(f.get("description"), &format!("{path}.description"));
        let scopes = match f.raw("scopes") {
            Some(n) => self.id_list(n, &format!("{path}.scopes"), "scope"),
            None => {
                self.missing(id.span, &path, "scopes", Some("list the scopes the role grants".into()));
                return None;
            }
        };
        Some(RoleDecl { id, name, description, scopes })
    }

    /// `users` / `service_accounts`: a list of ids or a map id -> {name?, email?} (or null).
    fn subjects(&mut self, node: &Node, path: &str, what: &str) -> Vec<SubjectDecl> {
        match &node.value {
            Value::Seq(_) => self
                .id_list(node, path, &format!("{what} id"))
                .into_iter()
                .map(|id| SubjectDecl { id, name: None, email: None })
                .collect(),
            Value::Map(_) => {
                let mut out = Vec::new();
                for (id, entry) in self.id_map(node, path, what) {
                    if entry.is_null() {
                        out.push(SubjectDecl { id, name: None, email: None });
                        continue;
                    }
                    let p = format!("{path}.{}", shown(&id.value));
                    let Some(f) = self.fields(entry, &p, SUBJECT_KEYS) else { continue };
                    let name = self.text(f.get("name"), &format!("{p}.name"));
                    let email = self.text(f.get("email"), &format!("{p}.email"));
                    out.push(SubjectDecl { id, name, email });
                }
                out
            }
            _ => {
                self.wrong_type(
                    node,
                    path,
                    &format!("a list of {what} ids or a map from {what} id to {{name, email}}"),
                );
                Vec::new()
            }
        }
    }

    fn group(&mut self, id: Spanned<String>, entry: &Node) -> Option<GroupDecl> {
        let path = format!("groups.{}", shown(&id.value));
        let f = self.fields(entry, &path, GROUP_KEYS)?;
        let name = self.text(f.get("name"), &format!("{path}.name"));
        let Some(members_node) = f.raw("members") else {
            self.missing(id.span, &path, "members", Some("use `members: []` for an empty group".into()));
            return None;
        };
        let mpath = format!("{path}.members");
        let Some(items) = members_node.as_seq() else {
            self.wrong_type(members_node, &mpath, "a list of references such as `user:alice`");
            return None;
        };
        let mut members = Vec::new();
        let mut seen: HashMap<ObjectRef, Span> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(r) = self.subject_ref(item, &format!("{mpath}[{i}]")) else { continue };
            if let Some(first) = seen.get(&r.value) {
                self.err(
                    codes::DUPLICATE,
                    r.span,
                    format!("`{mpath}` lists `{}` twice (first at line {})", shown(&r.value.to_string()), first.line),
                    None,
                );
                continue;
            }
            seen.insert(r.value.clone(), r.span);
            members.push(r);
        }
        Some(GroupDecl { id, name, members })
    }

    fn binding(&mut self, item: &Node, path: &str) -> Option<BindingDecl> {
        let f = self.fields(item, path, BINDING_KEYS)?;
        let subject = match f.raw("subject") {
            Some(n) => self.subject_ref(n, &format!("{path}.subject")),
            None => {
                self.missing(item.span, path, "subject", Some("e.g. `subject: group:engineering`".into()));
                None
            }
        };
        let role = match f.raw("role") {
            Some(n) => self.id(n, &format!("{path}.role"), "role id"),
            None => {
                self.missing(item.span, path, "role", None);
                None
            }
        };
        let application =
            f.get("application").and_then(|n| self.id(n, &format!("{path}.application"), "application id"));
        let conditions_node = f.get("conditions");
        let mut conditions = match conditions_node {
            Some(n) => self.conditions(n, &format!("{path}.conditions")),
            None => Conditions::default(),
        };
        // `expires_at` / `not_before` may also sit on the binding itself.
        for key in ["not_before", "expires_at"] {
            let Some(n) = f.get(key) else { continue };
            let Some(t) = self.timestamp(n, &format!("{path}.{key}")) else { continue };
            let slot = if key == "expires_at" { &mut conditions.expires_at } else { &mut conditions.not_before };
            if slot.is_some() {
                self.err(
                    codes::INVALID_CONDITION,
                    f.key_span(key).unwrap_or(n.span),
                    format!("`{path}` sets `{key}` both on the binding and in its conditions"),
                    Some("keep only one of them".into()),
                );
            } else {
                *slot = Some(t);
            }
        }
        // The model's one validator decides what can never hold.
        if let Err(e) = conditions.validate() {
            let span = f.get("not_before").map(|n| n.span).or(conditions_node.map(|n| n.span)).unwrap_or(item.span);
            self.err(
                codes::INVALID_CONDITION,
                span,
                format!("`{path}.{}`: {}", if e.field.is_empty() { "conditions" } else { &e.field }, e.message),
                None,
            );
        }
        Some(BindingDecl {
            span: item.span,
            subject: subject?,
            role: role?,
            application,
            conditions,
            conditions_span: conditions_node.map(|n| n.span),
        })
    }

    fn timestamp(&mut self, node: &Node, path: &str) -> Option<Timestamp> {
        let Some(text) = node.as_str() else {
            self.err(
                codes::INVALID_CONDITION,
                node.span,
                format!("`{path}` must be an RFC 3339 time, found {}", node.type_name()),
                Some("example: 2026-12-31T23:59:59Z".into()),
            );
            return None;
        };
        match Timestamp::parse(text) {
            Ok(t) => Some(t),
            Err(m) => {
                self.err(codes::INVALID_CONDITION, node.span, format!("`{path}`: {m}"), None);
                None
            }
        }
    }

    /// Reports an unknown key of a conditions map (or sub-map) as
    /// `invalid_condition`: re-labels the findings `fields()` just added.
    fn condition_fields<'a>(&mut self, node: &'a Node, path: &str, allowed: &[&'static str]) -> Option<Fields<'a>> {
        let before = self.findings.len();
        let f = self.fields(node, path, allowed);
        for finding in self.findings.iter_mut().skip(before) {
            if finding.code == codes::UNKNOWN_KEY {
                finding.code = codes::INVALID_CONDITION;
                finding.message = finding.message.replacen("unknown key", "unknown condition", 1);
            }
        }
        f
    }

    fn conditions(&mut self, node: &Node, path: &str) -> Conditions {
        let mut c = Conditions::default();
        let Some(f) = self.condition_fields(node, path, CONDITION_KEYS) else { return c };
        if let Some(m) = f.get("mfa") {
            let mpath = format!("{path}.mfa");
            if let Some(mf) = self.condition_fields(m, &mpath, MFA_KEYS) {
                let mut mfa = MfaCondition { required: true, max_age: None };
                if let Some(r) = mf.get("required") {
                    match r.value {
                        Value::Bool(b) => mfa.required = b,
                        _ => self.err(
                            codes::INVALID_CONDITION,
                            r.span,
                            format!("`{mpath}.required` must be true or false, found {}", r.type_name()),
                            None,
                        ),
                    }
                }
                if let Some(a) = mf.get("max_age") {
                    match a.as_str().map(parse_duration) {
                        Some(Ok(d)) => mfa.max_age = Some(d),
                        Some(Err(m)) => {
                            self.err(codes::INVALID_CONDITION, a.span, format!("`{mpath}.max_age`: {m}"), None)
                        }
                        None => self.err(
                            codes::INVALID_CONDITION,
                            a.span,
                            format!("`{mpath}.max_age` must be a duration, found {}", a.type_name()),
                            Some("write a unit, e.g. `15m`, `4h`".into()),
                        ),
                    }
                }
                c.mfa = Some(mfa);
            }
        }
        if let Some(ip) = f.get("ip") {
            let ipath = format!("{path}.ip");
            if let Some(ipf) = self.condition_fields(ip, &ipath, IP_KEYS) {
                match ipf.get("allow") {
                    None => self.missing(ip.span, &ipath, "allow", Some("e.g. `allow: [10.0.0.0/8]`".into())),
                    Some(list) => match list.as_seq() {
                        None => self.err(
                            codes::INVALID_CONDITION,
                            list.span,
                            format!("`{ipath}.allow` must be a list of IP ranges, found {}", list.type_name()),
                            Some("e.g. `allow: [10.0.0.0/8, 2001:db8::/32]`".into()),
                        ),
                        Some([]) => self.err(
                            codes::INVALID_CONDITION,
                            list.span,
                            format!("`{ipath}.allow`: {}", crate::model::conditions::EMPTY_ALLOW),
                            None,
                        ),
                        Some(items) => {
                            let mut allow = Vec::new();
                            for (i, item) in items.iter().enumerate() {
                                match item.as_str().map(parse_net) {
                                    Some(Ok(net)) => allow.push(net),
                                    Some(Err(m)) => self.err(
                                        codes::INVALID_CONDITION,
                                        item.span,
                                        format!("`{ipath}.allow[{i}]`: {m}"),
                                        None,
                                    ),
                                    None => self.err(
                                        codes::INVALID_CONDITION,
                                        item.span,
                                        format!(
                                            "`{ipath}.allow[{i}]` must be an IP range (a string), found {}",
                                            item.type_name()
                                        ),
                                        None,
                                    ),
                                }
                            }
                            if allow.len() == items.len() {
                                c.ip = Some(IpCondition { allow });
                            }
                        }
                    },
                }
            }
        }
        if let Some(list) = f.get("attributes") {
            if let Some(tests) = self.attribute_tests(list, &format!("{path}.attributes")) {
                c.attributes = tests;
            }
        }
        for key in ["not_before", "expires_at"] {
            if let Some(n) = f.get(key) {
                let t = self.timestamp(n, &format!("{path}.{key}"));
                if key == "expires_at" {
                    c.expires_at = t;
                } else {
                    c.not_before = t;
                }
            }
        }
        c
    }

    /// `attributes: [{attribute: action.soft, op: eq, value: true}, ...]`:
    /// every malformed test is reported where it is written.
    fn attribute_tests(&mut self, list: &Node, apath: &str) -> Option<Vec<AttributeTest>> {
        let example = "e.g. `attributes: [{attribute: action.soft, op: eq, value: true}]`";
        let items = match list.as_seq() {
            None => {
                let m = format!("`{apath}` must be a list of tests, found {}", list.type_name());
                self.err(codes::INVALID_CONDITION, list.span, m, Some(example.into()));
                return None;
            }
            Some([]) => {
                let m = format!("`{apath}`: {}", crate::model::conditions::EMPTY_ATTRIBUTES);
                self.err(codes::INVALID_CONDITION, list.span, m, None);
                return None;
            }
            Some(items) => items,
        };
        let mut tests = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let tpath = format!("{apath}[{i}]");
            let Some(tf) = self.condition_fields(item, &tpath, TEST_KEYS) else { continue };
            match AttributeTest::from_json(&item.to_json()) {
                Ok(t) => tests.push(t),
                Err(e) => {
                    // `value[1]`: the list item; `value`, `op`...: the key's value.
                    let span = match e.field.strip_prefix("value[").and_then(|r| r.strip_suffix(']')) {
                        Some(j) => tf
                            .get("value")
                            .and_then(Node::as_seq)
                            .and_then(|v| j.parse::<usize>().ok().and_then(|j| v.get(j)))
                            .map(|n| n.span),
                        None => tf.raw(&e.field).map(|n| n.span),
                    };
                    let at = if e.field.is_empty() { tpath.clone() } else { format!("{tpath}.{}", e.field) };
                    let m = format!("`{at}` {}", e.message);
                    self.err(codes::INVALID_CONDITION, span.unwrap_or(item.span), m, Some(example.into()));
                }
            }
        }
        (tests.len() == items.len()).then_some(tests)
    }

    fn assertion(&mut self, item: &Node, path: &str) -> Option<AssertionDecl> {
        let f = self.fields(item, path, ASSERTION_KEYS)?;
        let name = self.text(f.get("name"), &format!("{path}.name"));
        let subject = match f.raw("subject") {
            Some(n) => self.subject_ref(n, &format!("{path}.subject")),
            None => {
                self.missing(item.span, path, "subject", Some("e.g. `subject: user:alice`".into()));
                None
            }
        };
        let application =
            f.get("application").and_then(|n| self.id(n, &format!("{path}.application"), "application id"));
        let scope = f.get("scope").and_then(|n| self.id(n, &format!("{path}.scope"), "scope"));
        let context = match f.get("context") {
            Some(n) if n.as_map().is_some() => Some(n.to_json()),
            Some(n) => {
                self.wrong_type(n, &format!("{path}.context"), "a map (e.g. `{mfa: {present: true}, ip: 10.1.2.3}`)");
                None
            }
            None => None,
        };
        let attributes = f.get("attributes").and_then(|n| {
            let apath = format!("{path}.attributes");
            if n.as_map().is_none() {
                self.wrong_type(n, &apath, "a map (e.g. `{action: {soft: true}, subject: {team: sre}}`)");
                return None;
            }
            match serde_json::from_value::<Attributes>(n.to_json()) {
                Ok(a) => Some(a),
                Err(e) => {
                    let hint = format!("keys: {}", crate::model::attributes::ATTRIBUTE_KEYS.join(", "));
                    self.err(codes::INVALID_VALUE, n.span, format!("`{apath}`: {e}"), Some(hint));
                    None
                }
            }
        });
        let expect = match f.get("expect") {
            Some(n) => match n.as_str() {
                Some(s) if EXPECT_VALUES.contains(&s) => Some(Spanned::new(s.to_string(), n.span)),
                other => {
                    let text = other
                        .map(str::to_string)
                        .or_else(|| n.scalar_text())
                        .unwrap_or_else(|| n.type_name().to_string());
                    let hint = match did_you_mean(&text, EXPECT_VALUES.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("expected one of {}", EXPECT_VALUES.join(", ")),
                    };
                    self.err(
                        codes::INVALID_EXPECT,
                        n.span,
                        format!("`{path}.expect` must be allow, deny or step_up, found `{}`", shown(&text)),
                        Some(hint),
                    );
                    None
                }
            },
            None => None,
        };
        let expect_access = f.get("expect_access").map(Node::to_json);
        let expect_token_scope = f.get("expect_token_scope").map(Node::to_json);
        let has_expectation = ["expect", "expect_access", "expect_token_scope"].iter().any(|k| f.get(k).is_some());
        if !has_expectation {
            self.missing(
                item.span,
                path,
                "expect",
                Some("an assertion needs `expect`, `expect_access` or `expect_token_scope`".into()),
            );
        }
        if f.get("expect").is_some() && f.get("scope").is_none() {
            self.missing(item.span, path, "scope", Some("`expect` checks one scope: add `scope: ...`".into()));
        }
        Some(AssertionDecl {
            span: item.span,
            name,
            subject: subject?,
            application,
            scope,
            context,
            attributes,
            expect,
            expect_access,
            expect_token_scope,
        })
    }
}

/// An OAuth resource indicator: an absolute URI, no fragment, no whitespace.
fn check_resource_uri(s: &str) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err("is not an absolute URI (expected `scheme://...`)".into());
    };
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err("is not an absolute URI (expected `scheme://host/...`)".into());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    if s.contains('#') {
        return Err("must not contain a fragment (`#...`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
