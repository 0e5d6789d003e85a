//! Access diff between two versions of a policy (BASE and HEAD): who gains,
//! loses or keeps with other conditions which scope on which application.
//!
//! Both versions are loaded into their own in-memory instance and every
//! answer comes from the engine's subject views, the same evaluation as
//! `check` (no second resolver). Groups are expanded by the engine: the
//! diff is reported per concrete subject (users and service accounts).
//!
//! ## What is compared
//!
//! For a subject, an application and a scope, the *effective condition* is
//! the set of **paths** that entitle it: each a binding (with its role, its
//! resource: the application or the whole tenant), the membership path from
//! the subject to what the binding is bound to, and the binding's
//! conditions. The diff is time-independent: conditions are compared, not
//! evaluated (an expiry in the past is still a condition).
//!
//! - **added**: no path in BASE, some in HEAD; **removed**: the reverse;
//! - otherwise, when the path sets differ, the entry *changed*, and:
//!   - **weakened** when some HEAD path is not covered by any single BASE
//!     path, where *p is covered by q* means every request that satisfies
//!     p's conditions satisfies q's: MFA (if q requires it, p does, with a
//!     `max_age` no longer than q's), IP ranges (if q has them, each of p's
//!     ranges lies inside q's), expiry (if q has one, p's is no later),
//!     `not_before` (if q has one, p's is no earlier) and attribute tests
//!     (each of q's follows from one of p's on the same attribute);
//!   - **strengthened** when some BASE path is not covered by any HEAD path;
//!   - an entry can be both (`mixed`), or neither (`changed`: same
//!     restrictions, another binding or membership path).
//!
//!   This never misses a weakening (a HEAD request allowed by no BASE path
//!   is not covered by any single one); it may report one when a HEAD path
//!   is covered only by the union of several BASE paths.
//!
//! `details` say what happened to each binding: `mfa_removed`, `mfa_added`,
//! `mfa_max_age_loosened`/`_tightened`, `ip_removed`/`_added`/`_widened`/
//! `_narrowed`/`_changed`, `expiry_removed`/`_added`/`_extended`/
//! `_shortened`, `not_before_removed`/`_added`/`_earlier`/`_later`,
//! `attribute_added`/`_removed`/`_changed` (the tests of one attribute),
//! `became_tenant_wide`/`became_app_scoped` (same role and subject, other
//! resource), `role_changed` (same subject and resource, other role),
//! `path_changed` (other membership path), `path_added`/`path_removed`
//! (another route to the same access).
//!
//! ## Risk flags
//!
//! `tenant_wide_grant` (a tenant-wide binding new in HEAD), `mfa_removed`
//! (every BASE path required MFA, some HEAD path does not),
//! `fan_out` (one changed tuple below which at least `fan_out` subjects
//! changed), `service_account_gained` (a service account with an added or
//! weakened entry), `assertion_changed` (an assertion written in the HEAD
//! file whose result differs between BASE and HEAD; both runs use the same
//! `now`; assertions under a `tests/` folder are not part of the diff).
//!
//! ## Speed
//!
//! Only subjects that can differ are evaluated: the changes that load each
//! file are compared as sets, and every changed tuple names the nodes below
//! which access can change (a membership's member, a binding's subject, all
//! subjects bound to a changed role, bound on a changed application or
//! tenant-wide). Their transitive members, in either version, via
//! [`FactBase::descendants`], are the subjects evaluated. When that reaches
//! half of all subjects, every subject is evaluated instead.

mod render;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::assertions::run_all;
use super::{instantiate, Policy, PolicyError};
use crate::engine::{AppId, EngineError, FactBase, NodeId, NodeKind};
use crate::model::attributes::Scalar;
use crate::model::{AttributeTest, Conditions, ObjectRef, ObjectType, Timestamp, Tuple};
use crate::service::Change;

pub use render::{render_markdown, render_text};

/// Below this many affected subjects, never fall back to evaluating all.
const FALLBACK_MIN: usize = 1000;

/// Default for [`DiffOptions::fan_out`].
pub const DEFAULT_FAN_OUT: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{file}: cannot load the policy: {message}")]
    Load { file: String, message: String },
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// An evaluation worker panicked: the diff is unknown, never "no changes".
    #[error("an evaluation worker failed ({0}); the diff is incomplete and was not produced")]
    Worker(String),
}

#[derive(Debug, Clone, Copy)]
pub struct DiffOptions {
    /// `fan_out` flag threshold: subjects changed below one changed tuple.
    pub fan_out: usize,
    /// Evaluate every subject (no affected-subject pruning).
    pub all_subjects: bool,
    /// `now` for assertions that set none.
    pub now: Timestamp,
    /// Threads evaluating subjects (at least 1).
    pub threads: usize,
}

impl DiffOptions {
    /// Defaults (fan-out 10, pruned, 2 threads) with assertions at `now`
    /// (time is a parameter: the library never reads the clock).
    pub fn new(now: Timestamp) -> Self {
        DiffOptions { fan_out: DEFAULT_FAN_OUT, all_subjects: false, now, threads: 2 }
    }
}

/// One version: where it came from, its facts, and the changes that loaded it.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub source: &'a str,
    pub fb: &'a FactBase,
    pub changes: &'a [Change],
}

/// One path to an entitlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathInfo {
    pub binding: String,
    pub role: String,
    /// The user, group or service account the binding names.
    pub bound: String,
    pub tenant_wide: bool,
    pub origin: &'static str,
    /// From the subject to `bound`.
    pub path: Vec<String>,
    /// Human summary (`none` when unconditional).
    pub conditions: String,
    #[serde(skip)]
    pub cond: Conditions,
}

/// What happened to one binding on the way from BASE to HEAD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Detail {
    pub code: &'static str,
    pub binding: String,
    pub before: String,
    pub after: String,
}

/// The change of one (application, scope) for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryDiff {
    pub application: String,
    pub scope: String,
    /// `added`, `removed`, `weakened`, `strengthened`, `mixed` or `changed`.
    pub change: &'static str,
    pub weakened: bool,
    pub strengthened: bool,
    pub details: Vec<Detail>,
    pub before: Vec<PathInfo>,
    pub after: Vec<PathInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectDiff {
    pub subject: String,
    /// `user` or `service_account`.
    pub kind: &'static str,
    pub entries: Vec<EntryDiff>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Risk {
    pub flag: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The tuple, application or assertion concerned.
    pub target: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `affected` (pruned) or `all`.
    pub mode: &'static str,
    pub subjects_evaluated: usize,
    pub subjects_changed: usize,
    pub tuples_changed: usize,
    pub added: usize,
    pub removed: usize,
    pub weakened: usize,
    pub strengthened: usize,
    /// Entries with other paths but the same restrictions.
    pub changed: usize,
    pub risks: usize,
}

/// Where the time went (not part of the JSON: it varies run to run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timings {
    pub changes: Duration,
    pub affected: Duration,
    pub evaluate: Duration,
    pub risks: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub base: String,
    pub head: String,
    pub summary: Summary,
    /// Sorted by flag, subject, target.
    pub risks: Vec<Risk>,
    /// Sorted by subject; entries by application, scope.
    pub subjects: Vec<SubjectDiff>,
    #[serde(skip)]
    pub timings: Timings,
}

/// A kind `--fail-on` can name.
pub const GATE_KINDS: &[&str] = &["added", "removed", "weakened", "strengthened", "changed", "risk"];

impl Diff {
    /// The `kinds` (of [`GATE_KINDS`]) present in this diff.
    pub fn gate<'k>(&self, kinds: &[&'k str]) -> Vec<&'k str> {
        let s = &self.summary;
        kinds
            .iter()
            .copied()
            .filter(|k| match *k {
                "added" => s.added > 0,
                "removed" => s.removed > 0,
                "weakened" => s.weakened > 0,
                "strengthened" => s.strengthened > 0,
                "changed" => s.changed > 0,
                "risk" => s.risks > 0,
                _ => false,
            })
            .collect()
    }
}

// ------------------------------------------------------------- entry point

/// Diffs two compiled policies: each loaded into its own instance.
pub fn diff_policies(base: &Policy, head: &Policy, opts: &DiffOptions) -> Result<Diff, DiffError> {
    let load = |p: &Policy| {
        let hf = instantiate(p).map_err(|e| DiffError::Load { file: p.source.clone(), message: e.to_string() })?;
        let t = hf
            .tenant(&p.tenant)
            .ok_or_else(|| DiffError::Load { file: p.source.clone(), message: "tenant missing".into() })?;
        Ok::<_, DiffError>((hf, t))
    };
    let (b, h) = std::thread::scope(|s| {
        let b = s.spawn(|| load(base));
        (b.join(), load(head))
    });
    let b = b.map_err(|_| DiffError::Load { file: base.source.clone(), message: "loading panicked".into() })?;
    let ((_bh, bt), (_hh, ht)) = (b?, h?);
    let (bs, hs) = (bt.read(), ht.read());
    let b = Side { source: &base.source, fb: bs.facts(), changes: &base.changes };
    let h = Side { source: &head.source, fb: hs.facts(), changes: &head.changes };
    let mut d = diff_facts(b, h, opts)?;
    let t = Instant::now();
    d.risks.extend(assertion_risks(head, b.fb, h.fb, opts.now));
    d.risks.sort();
    d.summary.risks = d.risks.len();
    d.timings.risks += t.elapsed();
    Ok(d)
}

/// Diffs two fact bases (see the module docs).
pub fn diff_facts(base: Side<'_>, head: Side<'_>, opts: &DiffOptions) -> Result<Diff, DiffError> {
    let mut timings = Timings::default();
    let t = Instant::now();
    let changed = changed_changes(base.changes, head.changes);
    timings.changes = t.elapsed();

    let t = Instant::now();
    let universe = concrete_subjects(base.fb, head.fb);
    let subjects = if opts.all_subjects {
        None
    } else {
        affected_subjects(base.fb, head.fb, &changed, (universe.len() / 2).max(FALLBACK_MIN))
    };
    let mode = if subjects.is_some() { "affected" } else { "all" };
    let subjects: Vec<String> = match subjects {
        Some(s) => s.into_iter().filter(|n| universe.contains(n)).collect(),
        None => universe.into_iter().collect(),
    };
    timings.affected = t.elapsed();

    let t = Instant::now();
    let diffs = evaluate_all(base.fb, head.fb, &subjects, opts.threads)?;
    timings.evaluate = t.elapsed();

    let t = Instant::now();
    let mut risks = structural_risks(base.fb, head.fb, &changed, &diffs, opts.fan_out);
    risks.extend(subject_risks(&diffs));
    risks.extend(mass_removal_risks(base.changes, head.changes));
    risks.sort();
    timings.risks = t.elapsed();

    let summary = summarize(mode, subjects.len(), changed.len(), &diffs, risks.len());
    Ok(Diff { base: base.source.to_string(), head: head.source.to_string(), summary, risks, subjects: diffs, timings })
}

/// The risk flag of a change that removes most of a tenant.
pub const MASS_REMOVAL: &str = "mass_removal";

/// HEAD removes every role, every application, or more than half of the
/// bindings BASE has: almost always a wrong file (a missing include, the
/// wrong tenant), so the diff flags it and an apply refuses it unless told.
pub fn mass_removal_risks(base: &[Change], head: &[Change]) -> Vec<Risk> {
    fn counted(changes: &[Change]) -> [BTreeSet<String>; 3] {
        let mut out: [BTreeSet<String>; 3] = Default::default();
        for c in changes {
            match c {
                Change::PutObject(o, _) if o.ty == ObjectType::Role => {
                    out[0].insert(o.id.clone());
                }
                Change::PutObject(o, _) if o.ty == ObjectType::Application => {
                    out[1].insert(o.id.clone());
                }
                Change::PutTuple(t, _) if !matches!(t.relation.as_str(), "member" | "grants" | "supports") => {
                    out[2].insert(t.to_string());
                }
                _ => {}
            }
        }
        out
    }
    let (b, h) = (counted(base), counted(head));
    let mut risks = Vec::new();
    for (i, what) in ["roles", "applications", "bindings"].into_iter().enumerate() {
        let had = b[i].len();
        // Roles and applications keep their ids when edited: removed = gone
        // by id. A binding edited (e.g. moved to another application) is a
        // new tuple, so bindings count net: how many are left.
        let removed = if i < 2 { b[i].difference(&h[i]).count() } else { had.saturating_sub(h[i].len()) };
        let mass = if i < 2 { had > 0 && removed == had } else { had > 0 && removed * 2 > had };
        if mass {
            let message = if had == 1 {
                format!("removes the only {}", what.trim_end_matches('s'))
            } else if removed == had {
                format!("removes all {had} {what}")
            } else {
                format!("removes {removed} of {had} {what} (more than half)")
            };
            risks.push(Risk { flag: MASS_REMOVAL, subject: None, target: what.to_string(), message });
        }
    }
    risks
}

fn summarize(mode: &'static str, evaluated: usize, tuples: usize, diffs: &[SubjectDiff], risks: usize) -> Summary {
    let mut s = Summary {
        mode,
        subjects_evaluated: evaluated,
        subjects_changed: diffs.len(),
        tuples_changed: tuples,
        risks,
        ..Summary::default()
    };
    for e in diffs.iter().flat_map(|d| &d.entries) {
        match e.change {
            "added" => s.added += 1,
            "removed" => s.removed += 1,
            _ => {}
        }
        s.weakened += usize::from(e.weakened);
        s.strengthened += usize::from(e.strengthened);
        s.changed += usize::from(e.change == "changed");
    }
    s
}

// ---------------------------------------------------------- changed tuples

/// A change that is in one version and not the other.
#[derive(Debug, Clone)]
pub struct Changed<'a> {
    pub change: &'a Change,
    /// `true`: only in HEAD; `false`: only in BASE.
    pub in_head: bool,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A canonical text of a change (conditions and attributes included).
fn change_key(c: &Change) -> String {
    match c {
        Change::PutTuple(t, cond) => format!("T {t} {}", cond.as_ref().map_or(String::new(), json)),
        Change::DeleteTuple(t) => format!("D {t}"),
        Change::PutObject(o, attrs) => format!("O {o} {attrs}"),
        Change::DeleteObject(o) => format!("X {o}"),
        Change::Suspend(o, s) => format!("S {o} {}", json(s)),
        Change::Reactivate(o) => format!("R {o}"),
        Change::Token(c) => format!("K {c:?}"),
        Change::ScimToken(c) => format!("C {c:?}"),
        Change::Identity(c) => format!("I {c:?}"),
        Change::OAuth(c) => format!("A {c:?}"),
    }
}

/// The set difference of the two change lists, both ways, in a stable order.
pub fn changed_changes<'a>(base: &'a [Change], head: &'a [Change]) -> Vec<Changed<'a>> {
    let bk: Vec<String> = base.iter().map(change_key).collect();
    let hk: Vec<String> = head.iter().map(change_key).collect();
    let bset: FxHashSet<&str> = bk.iter().map(String::as_str).collect();
    let hset: FxHashSet<&str> = hk.iter().map(String::as_str).collect();
    let mut out: Vec<(&str, Changed<'a>)> = Vec::new();
    for (k, c) in bk.iter().zip(base) {
        if !hset.contains(k.as_str()) {
            out.push((k, Changed { change: c, in_head: false }));
        }
    }
    for (k, c) in hk.iter().zip(head) {
        if !bset.contains(k.as_str()) {
            out.push((k, Changed { change: c, in_head: true }));
        }
    }
    out.sort_by(|a, b| (a.0, a.1.in_head).cmp(&(b.0, b.1.in_head)));
    out.into_iter().map(|(_, c)| c).collect()
}

// -------------------------------------------------------- affected subjects

/// Users and service accounts known in either version, by name.
fn concrete_subjects(base: &FactBase, head: &FactBase) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for fb in [base, head] {
        for kind in [NodeKind::User, NodeKind::ServiceAccount] {
            out.extend(fb.nodes_of(kind).into_iter().map(|n| fb.node_name(n).to_string()));
        }
    }
    out
}

/// Nodes of `fb` below which a change can alter access.
fn seeds(fb: &FactBase, c: &Change) -> Vec<NodeId> {
    let node = |r: &ObjectRef| fb.node_id(r).into_iter().collect::<Vec<_>>();
    match c {
        Change::PutTuple(t, _) | Change::DeleteTuple(t) => tuple_seeds(fb, t),
        Change::PutObject(o, _) | Change::DeleteObject(o) => match o.ty {
            ObjectType::Role => bound_to_role(fb, &o.id),
            ObjectType::Application => bound_on_app(fb, &o.id),
            _ => node(o),
        },
        Change::Suspend(o, _) | Change::Reactivate(o) => node(o),
        // Tokens carry no access of their own: what they may do is
        // re-intersected with the tenant at every introspection.
        // Identity providers: their settings grant nothing by themselves.
        Change::Token(_) | Change::ScimToken(_) | Change::Identity(_) | Change::OAuth(_) => vec![],
    }
}

fn tuple_seeds(fb: &FactBase, t: &Tuple) -> Vec<NodeId> {
    match (t.object.ty, t.relation.as_str()) {
        (ObjectType::Group, "member") => fb.node_id(&t.subject).into_iter().collect(),
        // Every subject bound to the role (or on the application): which of
        // them the grant really changes is for the engine to say, not for a
        // second copy of `Entitled` here.
        (ObjectType::Role, "grants") => bound_to_role(fb, &t.object.id),
        (ObjectType::Application, "supports") => bound_on_app(fb, &t.object.id),
        _ => fb.node_id(&t.subject).into_iter().collect(),
    }
}

/// Subjects of the bindings of a role.
fn bound_to_role(fb: &FactBase, role: &str) -> Vec<NodeId> {
    let Some(r) = fb.role_id(role) else { return Vec::new() };
    fb.apps()
        .into_iter()
        .chain([AppId::TENANT])
        .flat_map(|res| fb.bindings_of_resource(res).iter().filter_map(|&b| fb.binding(b)))
        .filter(|rec| rec.role == r)
        .map(|rec| rec.subject)
        .collect()
}

/// Subjects bound on an application or tenant-wide (which reaches it).
fn bound_on_app(fb: &FactBase, app: &str) -> Vec<NodeId> {
    let mut resources = vec![AppId::TENANT];
    resources.extend(fb.app_id(app));
    resources
        .into_iter()
        .flat_map(|res| fb.bindings_of_resource(res).iter().filter_map(|&b| fb.binding(b)))
        .map(|rec| rec.subject)
        .collect()
}

/// Names of every node below the changed tuples, in both versions; `None`
/// when that exceeds `cap` (evaluate everyone: half the subjects, and at
/// least [`FALLBACK_MIN`]).
fn affected_subjects(base: &FactBase, head: &FactBase, changed: &[Changed<'_>], cap: usize) -> Option<Vec<String>> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    // For a grant or a `supports` change, a bound node whose own derived
    // access (the engine's view, in both versions) did not change passes
    // nothing new to its members: the rules, not this file, decide which
    // bindings the scope matters to.
    // Both versions are walked, so each answer is kept by name.
    let mut same: FxHashMap<String, bool> = FxHashMap::default();
    let mut unchanged = |fb: &FactBase, seed: NodeId| {
        let name = fb.node_name(seed);
        *same
            .entry(name.to_string())
            .or_insert_with(|| matches!((access_of(base, name), access_of(head, name)), (Ok(b), Ok(h)) if b == h))
    };
    for fb in [base, head] {
        let mut visited: FxHashSet<NodeId> = FxHashSet::default();
        for c in changed {
            let scope_change = matches!(c.change, Change::PutTuple(t, _) | Change::DeleteTuple(t)
                if matches!(t.relation.as_str(), "grants" | "supports"));
            for seed in seeds(fb, c.change) {
                if visited.contains(&seed) || (scope_change && unchanged(fb, seed)) {
                    continue;
                }
                for n in fb.descendants(seed, usize::MAX) {
                    if visited.insert(n) && fb.node_kind(n) != NodeKind::Group {
                        names.insert(fb.node_name(n).to_string());
                    }
                }
                if names.len() > cap {
                    return None;
                }
            }
        }
    }
    Some(names.into_iter().collect())
}

// --------------------------------------------------------------- evaluation

/// (application, scope) → paths.
type Access = BTreeMap<(String, String), Vec<PathInfo>>;

/// What the engine derives for `name` in `fb` (empty if unknown).
fn access_of(fb: &FactBase, name: &str) -> Result<Access, EngineError> {
    let Some(n) = ObjectRef::parse(name).ok().and_then(|r| fb.node_id(&r)) else { return Ok(Access::new()) };
    let view = fb.view_uncached(n)?;
    let mut out = Access::new();
    for (&(a, x), entries) in &view.entitled {
        let mut paths = Vec::new();
        for &(i, usable) in entries {
            let Some(h) = view.holds.get(i as usize).filter(|_| usable) else { continue };
            let Some(rec) = fb.binding(h.binding) else { continue };
            paths.push(PathInfo {
                binding: fb.binding_text(h.binding),
                role: fb.role_name(h.role).to_string(),
                bound: fb.node_name(h.bound).to_string(),
                tenant_wide: h.resource.is_tenant(),
                origin: h.origin.as_str(),
                path: h.path.iter().map(|&p| fb.node_name(p).to_string()).collect(),
                conditions: rec.conditions.summary(),
                cond: (*rec.conditions).clone(),
            });
        }
        if !paths.is_empty() {
            paths.sort_by(|p, q| p.binding.cmp(&q.binding));
            out.insert((fb.app_name(a).to_string(), fb.scope_name(x).to_string()), paths);
        }
    }
    Ok(out)
}

fn evaluate_all(
    base: &FactBase,
    head: &FactBase,
    subjects: &[String],
    threads: usize,
) -> Result<Vec<SubjectDiff>, DiffError> {
    in_parallel(subjects, threads, |s| diff_subject(base, head, s))
}

/// Runs `f` over `items` on up to `threads` scoped threads, in order. Fails
/// closed: an error or a panicking worker fails the whole run (a lost chunk
/// must never read as "nothing changed").
fn in_parallel<I: Sync, T: Send>(
    items: &[I],
    threads: usize,
    f: impl Fn(&I) -> Result<Option<T>, EngineError> + Sync,
) -> Result<Vec<T>, DiffError> {
    let per = items.len().div_ceil(threads.max(1)).max(1);
    let f = &f;
    let parts: Vec<Result<Vec<T>, DiffError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for s in chunk {
                        out.extend(f(s)?);
                    }
                    Ok::<_, EngineError>(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r.map_err(DiffError::from),
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_string());
                    Err(DiffError::Worker(why))
                }
            })
            .collect()
    });
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// The diff of one subject, `None` when nothing changed.
pub fn diff_subject(base: &FactBase, head: &FactBase, name: &str) -> Result<Option<SubjectDiff>, EngineError> {
    let b = access_of(base, name)?;
    let h = access_of(head, name)?;
    if b == h {
        return Ok(None);
    }
    let keys: BTreeSet<&(String, String)> = b.keys().chain(h.keys()).collect();
    let mut entries = Vec::new();
    for key in keys {
        let (bp, hp) = (b.get(key).map_or(&[][..], Vec::as_slice), h.get(key).map_or(&[][..], Vec::as_slice));
        if bp != hp {
            entries.push(entry_diff(&key.0, &key.1, bp, hp));
        }
    }
    let kind = if name.starts_with("service_account:") { "service_account" } else { "user" };
    Ok(Some(SubjectDiff { subject: name.to_string(), kind, entries }))
}

fn entry_diff(app: &str, scope: &str, before: &[PathInfo], after: &[PathInfo]) -> EntryDiff {
    let weakened = !after.is_empty() && after.iter().any(|h| !before.iter().any(|b| covered(&h.cond, &b.cond)));
    let strengthened = !before.is_empty() && before.iter().any(|b| !after.iter().any(|h| covered(&b.cond, &h.cond)));
    let change = match (before.is_empty(), after.is_empty(), weakened, strengthened) {
        (true, _, _, _) => "added",
        (_, true, _, _) => "removed",
        (_, _, true, true) => "mixed",
        (_, _, true, false) => "weakened",
        (_, _, false, true) => "strengthened",
        _ => "changed",
    };
    let both = !before.is_empty() && !after.is_empty();
    EntryDiff {
        application: app.to_string(),
        scope: scope.to_string(),
        change,
        weakened: both && weakened,
        strengthened: both && strengthened,
        details: if both { details(before, after) } else { Vec::new() },
        before: before.to_vec(),
        after: after.to_vec(),
    }
}

// ------------------------------------------------------------- conditions

/// Is every request that satisfies `x` also satisfying `y`? (x at least as strict.)
pub fn covered(x: &Conditions, y: &Conditions) -> bool {
    mfa_covered(x, y)
        && ip_covered(x, y)
        && expiry_covered(x, y)
        && not_before_covered(x, y)
        && attributes_covered(x, y)
}

/// Every attribute test of `y` follows from one test of `x` on the same
/// attribute. `eq v` is `in [v]` and `ne v` is `not_in [v]`; then `in S`
/// implies `in T` when S ⊆ T and `not_in T` when S and T are disjoint,
/// and `not_in S` implies `not_in T` when T ⊆ S (a missing value satisfies
/// no test, so `not_in` never implies `in`). Sound, not complete: tests
/// that only together imply another are not combined.
fn attributes_covered(x: &Conditions, y: &Conditions) -> bool {
    y.attributes.iter().all(|t| x.attributes.iter().any(|s| attribute_implies(s, t)))
}

fn attribute_implies(s: &AttributeTest, t: &AttributeTest) -> bool {
    if s.attribute != t.attribute {
        return false;
    }
    let within = |a: &[Scalar], b: &[Scalar]| a.iter().all(|v| b.iter().any(|w| same_value(v, w)));
    let disjoint = |a: &[Scalar], b: &[Scalar]| !a.iter().any(|v| b.iter().any(|w| same_value(v, w)));
    match (s.op.negated(), t.op.negated()) {
        (false, false) => within(&s.values, &t.values),
        (false, true) => disjoint(&s.values, &t.values),
        (true, true) => within(&t.values, &s.values),
        (true, false) => false,
    }
}

/// Two test values that a request value equals both or neither of.
fn same_value(a: &Scalar, b: &Scalar) -> bool {
    b.matches(&a.to_json())
}

fn mfa_of(c: &Conditions) -> Option<Option<Duration>> {
    c.mfa.as_ref().filter(|m| m.required).map(|m| m.max_age)
}

fn mfa_covered(x: &Conditions, y: &Conditions) -> bool {
    match (mfa_of(x), mfa_of(y)) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(_), Some(None)) => true,
        (Some(xa), Some(Some(ya))) => xa.is_some_and(|xa| xa <= ya),
    }
}

/// Each of `inner`'s ranges lies inside the union of `outer`'s.
fn nets_within(inner: &[IpNet], outer: &[IpNet]) -> bool {
    let outer = IpNet::aggregate(&outer.to_vec());
    inner.iter().all(|n| outer.iter().any(|o| o.contains(n)))
}

fn ip_covered(x: &Conditions, y: &Conditions) -> bool {
    match (&x.ip, &y.ip) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(xi), Some(yi)) => nets_within(&xi.allow, &yi.allow),
    }
}

fn expiry_covered(x: &Conditions, y: &Conditions) -> bool {
    match (x.expires_at, y.expires_at) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(xe), Some(ye)) => xe <= ye,
    }
}

fn not_before_covered(x: &Conditions, y: &Conditions) -> bool {
    match (x.not_before, y.not_before) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(xn), Some(yn)) => xn >= yn,
    }
}

// ----------------------------------------------------------------- details

fn detail(code: &'static str, binding: &str, before: String, after: String) -> Detail {
    Detail { code, binding: binding.to_string(), before, after }
}

fn route(p: &PathInfo) -> String {
    format!("{} via {} [{}]", p.binding, p.path.join(" → "), p.conditions)
}

/// Pairs BASE and HEAD paths (same binding; else same role and bound
/// subject; else same resource and bound subject) and says what happened
/// to each.
fn details(before: &[PathInfo], after: &[PathInfo]) -> Vec<Detail> {
    let mut out = Vec::new();
    let mut left: Vec<&PathInfo> = before.iter().collect();
    let mut unmatched = Vec::new();
    for h in after {
        let pos = left
            .iter()
            .position(|b| b.binding == h.binding)
            .or_else(|| left.iter().position(|b| b.role == h.role && b.bound == h.bound))
            .or_else(|| left.iter().position(|b| b.tenant_wide == h.tenant_wide && b.bound == h.bound));
        match pos {
            Some(i) => {
                let b = left.remove(i);
                out.extend(paired(b, h));
            }
            None => unmatched.push(h),
        }
    }
    for b in left {
        out.push(detail("path_removed", &b.binding, route(b), String::new()));
    }
    for h in unmatched {
        out.push(detail("path_added", &h.binding, String::new(), route(h)));
    }
    out
}

fn paired(b: &PathInfo, h: &PathInfo) -> Vec<Detail> {
    let mut out = Vec::new();
    if b.role != h.role {
        out.push(detail("role_changed", &h.binding, b.binding.clone(), h.binding.clone()));
    }
    if b.tenant_wide != h.tenant_wide {
        let code = if h.tenant_wide { "became_tenant_wide" } else { "became_app_scoped" };
        out.push(detail(code, &h.binding, b.binding.clone(), h.binding.clone()));
    }
    if b.path != h.path {
        out.push(detail("path_changed", &h.binding, b.path.join(" → "), h.path.join(" → ")));
    }
    out.extend(condition_details(&h.binding, &b.cond, &h.cond));
    out
}

fn condition_details(binding: &str, b: &Conditions, h: &Conditions) -> Vec<Detail> {
    let show_mfa = |m: Option<Option<Duration>>| match m {
        None => "none".to_string(),
        Some(None) => "mfa".to_string(),
        Some(Some(a)) => format!("mfa (max_age {})", crate::model::conditions::format_duration(a)),
    };
    let mut out = Vec::new();
    let (bm, hm) = (mfa_of(b), mfa_of(h));
    let mfa_code = match (bm, hm) {
        (Some(_), None) => Some("mfa_removed"),
        (None, Some(_)) => Some("mfa_added"),
        (Some(x), Some(y)) if x != y => {
            Some(if mfa_covered(h, b) { "mfa_max_age_tightened" } else { "mfa_max_age_loosened" })
        }
        _ => None,
    };
    if let Some(code) = mfa_code {
        out.push(detail(code, binding, show_mfa(bm), show_mfa(hm)));
    }
    let nets = |c: &Conditions| {
        c.ip.as_ref()
            .map_or("any".to_string(), |i| i.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", "))
    };
    let ip_code = match (&b.ip, &h.ip) {
        (Some(_), None) => Some("ip_removed"),
        (None, Some(_)) => Some("ip_added"),
        (Some(x), Some(y)) if x != y => {
            Some(match (nets_within(&x.allow, &y.allow), nets_within(&y.allow, &x.allow)) {
                (true, false) => "ip_widened",
                (false, true) => "ip_narrowed",
                _ => "ip_changed",
            })
        }
        _ => None,
    };
    if let Some(code) = ip_code {
        out.push(detail(code, binding, nets(b), nets(h)));
    }
    let show_t = |t: Option<Timestamp>| t.map_or("none".to_string(), |t| t.to_string());
    let exp_code = match (b.expires_at, h.expires_at) {
        (Some(_), None) => Some("expiry_removed"),
        (None, Some(_)) => Some("expiry_added"),
        (Some(x), Some(y)) if y > x => Some("expiry_extended"),
        (Some(x), Some(y)) if y < x => Some("expiry_shortened"),
        _ => None,
    };
    if let Some(code) = exp_code {
        out.push(detail(code, binding, show_t(b.expires_at), show_t(h.expires_at)));
    }
    let nb_code = match (b.not_before, h.not_before) {
        (Some(_), None) => Some("not_before_removed"),
        (None, Some(_)) => Some("not_before_added"),
        (Some(x), Some(y)) if y < x => Some("not_before_earlier"),
        (Some(x), Some(y)) if y > x => Some("not_before_later"),
        _ => None,
    };
    if let Some(code) = nb_code {
        out.push(detail(code, binding, show_t(b.not_before), show_t(h.not_before)));
    }
    // Attribute tests, per attribute: added, removed or changed.
    let mut paths: Vec<_> = b.attributes.iter().chain(&h.attributes).map(|t| &t.attribute).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let tests = |c: &Conditions| -> Vec<String> {
            let mut v: Vec<String> =
                c.attributes.iter().filter(|t| &t.attribute == path).map(|t| t.summary()).collect();
            v.sort();
            v
        };
        let (bt, ht) = (tests(b), tests(h));
        let code = match (bt.is_empty(), ht.is_empty()) {
            (false, true) => "attribute_removed",
            (true, false) => "attribute_added",
            _ if bt != ht => "attribute_changed",
            _ => continue,
        };
        let show = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        out.push(detail(code, binding, show(bt), show(ht)));
    }
    out
}

// -------------------------------------------------------------------- risks

/// `tenant_wide_grant` and `fan_out`: risks of the changed tuples.
fn structural_risks(
    base: &FactBase,
    head: &FactBase,
    changed: &[Changed<'_>],
    diffs: &[SubjectDiff],
    fan_out: usize,
) -> Vec<Risk> {
    let mut out = Vec::new();
    let changed_subjects: BTreeSet<&str> = diffs.iter().map(|d| d.subject.as_str()).collect();
    for c in changed {
        let Change::PutTuple(t, _) = c.change else { continue };
        let below = subjects_below(base, head, c.change, &changed_subjects);
        if c.in_head && t.object.ty == ObjectType::Tenant {
            out.push(Risk {
                flag: "tenant_wide_grant",
                subject: None,
                target: t.to_string(),
                message: format!(
                    "new tenant-wide binding `{t}`: role `{}` on every application for `{}` ({} subject(s) changed)",
                    t.relation,
                    t.subject,
                    below.len()
                ),
            });
        }
        if fan_out > 0 && below.len() >= fan_out {
            let what = if c.in_head { "added" } else { "removed" };
            out.push(Risk {
                flag: "fan_out",
                subject: None,
                target: t.to_string(),
                message: format!(
                    "{what} tuple `{t}` changes the access of {} subjects (threshold {fan_out})",
                    below.len()
                ),
            });
        }
    }
    out.dedup();
    out
}

/// Changed subjects below a change, in either version.
fn subjects_below<'a>(base: &FactBase, head: &FactBase, c: &Change, changed: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
    let mut out = BTreeSet::new();
    for fb in [base, head] {
        for seed in seeds(fb, c) {
            for n in fb.descendants(seed, usize::MAX) {
                if let Some(&s) = changed.get(fb.node_name(n)) {
                    out.insert(s);
                }
            }
        }
    }
    out
}

/// `mfa_removed` and `service_account_gained`: risks of one subject's entries.
fn subject_risks(diffs: &[SubjectDiff]) -> Vec<Risk> {
    let mut out = Vec::new();
    for d in diffs {
        let mut no_mfa: BTreeMap<&str, (Vec<&str>, BTreeSet<&str>)> = BTreeMap::new();
        for e in &d.entries {
            let all_mfa = !e.before.is_empty() && e.before.iter().all(|p| mfa_of(&p.cond).is_some());
            let without: Vec<&str> =
                e.after.iter().filter(|p| mfa_of(&p.cond).is_none()).map(|p| p.binding.as_str()).collect();
            if all_mfa && !without.is_empty() {
                let slot = no_mfa.entry(e.application.as_str()).or_default();
                slot.0.push(e.scope.as_str());
                slot.1.extend(without);
            }
        }
        for (app, (scopes, via)) in no_mfa {
            out.push(Risk {
                flag: "mfa_removed",
                subject: Some(d.subject.clone()),
                target: format!("{app} {}", scopes.join(" ")),
                message: format!(
                    "{} no longer needs MFA for {} on {app} (via {})",
                    d.subject,
                    scopes.join(", "),
                    via.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if d.kind == "service_account" {
            let gained: Vec<String> = d
                .entries
                .iter()
                .filter(|e| e.change == "added" || e.weakened)
                .map(|e| format!("{} {}", e.application, e.scope))
                .collect();
            if !gained.is_empty() {
                out.push(Risk {
                    flag: "service_account_gained",
                    subject: Some(d.subject.clone()),
                    target: gained.join(", "),
                    message: format!("{} gains or loosens: {}", d.subject, gained.join(", ")),
                });
            }
        }
    }
    out
}

/// `assertion_changed`: HEAD's assertions whose result differs on BASE.
pub fn assertion_risks(head: &Policy, base_fb: &FactBase, head_fb: &FactBase, now: Timestamp) -> Vec<Risk> {
    let assertions: Vec<_> = head.file.assertions.iter().map(|a| (head.source.clone(), a.clone())).collect();
    let on_base = run_all(base_fb, &assertions, now);
    let on_head = run_all(head_fb, &assertions, now);
    let show = |r: &super::assertions::AssertionResult| {
        let actual: Vec<&str> = r.checks.iter().map(|c| c.outcome.as_str()).collect();
        format!("{} ({})", if r.passed { "passes" } else { "fails" }, actual.join("; "))
    };
    on_base
        .iter()
        .zip(&on_head)
        .filter(|(b, h)| b.outcome() != h.outcome() || b.passed != h.passed)
        .map(|(b, h)| Risk {
            flag: "assertion_changed",
            subject: Some(h.subject.clone()),
            target: format!("{}:{}:{}: {}", h.file, h.line, h.col, h.name),
            message: format!("assertion `{}` {} on BASE but {} on HEAD", h.name, show(b), show(h)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_fails_the_diff_instead_of_dropping_its_subjects() {
        let items: Vec<u32> = (0..64).collect();
        let ok = in_parallel(&items, 4, |&i| Ok(Some(i))).unwrap();
        assert_eq!(ok, items, "all items, in order");
        let r = in_parallel(&items, 4, |&i| {
            if i == 40 {
                panic!("injected failure at {i}");
            }
            Ok(Some(i))
        });
        match r {
            Err(DiffError::Worker(why)) => assert!(why.contains("injected failure at 40"), "{why}"),
            other => panic!("expected a worker failure, got {other:?}"),
        }
        let r = in_parallel(&items, 2, |&i| {
            if i == 3 {
                return Err(EngineError::LimitExceeded { subject: "user:x".into(), what: "depth", limit: 1 });
            }
            Ok(Some(i))
        });
        assert!(matches!(r, Err(DiffError::Engine(_))), "{r:?}");
    }
    use crate::model::conditions::{parse_net, IpCondition, MfaCondition};
    use serde_json::json;

    fn mfa(age: Option<u64>) -> Conditions {
        Conditions {
            mfa: Some(MfaCondition { required: true, max_age: age.map(Duration::from_secs) }),
            ..Default::default()
        }
    }

    fn ip(nets: &[&str]) -> Conditions {
        Conditions {
            ip: Some(IpCondition { allow: nets.iter().map(|n| parse_net(n).unwrap()).collect() }),
            ..Default::default()
        }
    }

    #[test]
    fn coverage_per_dimension() {
        let none = Conditions::default();
        assert!(covered(&mfa(None), &none));
        assert!(!covered(&none, &mfa(None)));
        assert!(covered(&mfa(Some(60)), &mfa(Some(900))));
        assert!(!covered(&mfa(Some(900)), &mfa(Some(60))));
        assert!(!covered(&mfa(None), &mfa(Some(60))), "no max_age is looser than any");
        assert!(covered(&ip(&["10.1.0.0/16"]), &ip(&["10.0.0.0/8"])));
        assert!(covered(&ip(&["10.0.0.0/8"]), &ip(&["10.0.0.0/9", "10.128.0.0/9"])), "union of ranges");
        assert!(!covered(&ip(&["10.0.0.0/8"]), &ip(&["10.1.0.0/16"])));
        let exp = |s: i64| Conditions { expires_at: Some(Timestamp(s)), ..Default::default() };
        assert!(covered(&exp(10), &exp(20)) && !covered(&exp(20), &exp(10)) && !covered(&none, &exp(10)));
    }

    #[test]
    fn condition_details_name_the_change() {
        let codes = |b: &Conditions, h: &Conditions| -> Vec<&str> {
            condition_details("x", b, h).iter().map(|d| d.code).collect()
        };
        assert_eq!(codes(&mfa(Some(900)), &Conditions::default()), ["mfa_removed"]);
        assert_eq!(codes(&mfa(Some(900)), &mfa(Some(3600))), ["mfa_max_age_loosened"]);
        assert_eq!(codes(&mfa(None), &mfa(Some(60))), ["mfa_max_age_tightened"]);
        assert_eq!(codes(&ip(&["10.1.0.0/16"]), &ip(&["10.0.0.0/8"])), ["ip_widened"]);
        assert_eq!(codes(&ip(&["10.0.0.0/8"]), &ip(&["192.168.0.0/16"])), ["ip_changed"]);
        let none = Conditions::default();
        let soft = attrs(&[("action.soft", "eq", json!(true))]);
        assert_eq!(codes(&none, &soft), ["attribute_added"]);
        assert_eq!(codes(&soft, &none), ["attribute_removed"]);
        assert_eq!(codes(&soft, &attrs(&[("action.soft", "ne", json!(false))])), ["attribute_changed"]);
        assert!(codes(&soft, &soft).is_empty());
    }

    fn attrs(tests: &[(&str, &str, serde_json::Value)]) -> Conditions {
        let list: Vec<_> = tests.iter().map(|(a, op, v)| json!({"attribute": a, "op": op, "value": v})).collect();
        Conditions::from_json(&json!({ "attributes": list })).unwrap()
    }

    #[test]
    fn attribute_tests_cover_by_implication() {
        let none = Conditions::default();
        let eq_sre = attrs(&[("subject.team", "eq", json!("sre"))]);
        let in_sre_eng = attrs(&[("subject.team", "in", json!(["sre", "eng"]))]);
        let ne_eng = attrs(&[("subject.team", "ne", json!("eng"))]);
        let not_in_eng_ops = attrs(&[("subject.team", "not_in", json!(["eng", "ops"]))]);
        // Adding a test strengthens; removing it weakens.
        assert!(covered(&eq_sre, &none) && !covered(&none, &eq_sre));
        // eq v ⊆ in S ∋ v; in S ⊆ ne w when w ∉ S.
        assert!(covered(&eq_sre, &in_sre_eng) && !covered(&in_sre_eng, &eq_sre));
        assert!(covered(&eq_sre, &ne_eng) && !covered(&in_sre_eng, &ne_eng));
        // not_in S ⊆ not_in T when T ⊆ S; a not_in never implies an in or eq.
        assert!(covered(&not_in_eng_ops, &ne_eng) && !covered(&ne_eng, &not_in_eng_ops));
        assert!(!covered(&ne_eng, &eq_sre));
        // Another attribute, or another type of value, implies nothing.
        assert!(!covered(&attrs(&[("resource.team", "eq", json!("sre"))]), &eq_sre));
        assert!(!covered(&attrs(&[("subject.team", "eq", json!(1))]), &attrs(&[("subject.team", "eq", json!("1"))])));
        assert!(covered(&attrs(&[("subject.n", "eq", json!(1))]), &attrs(&[("subject.n", "in", json!([1.0]))])));
    }
}
