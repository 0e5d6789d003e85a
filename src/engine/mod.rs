//! The evaluation engine: an in-memory, indexed fact base per tenant and the
//! Datalog program of `rules/` run over the facts that concern one subject.
//!
//! Invariants:
//! - no I/O, no clock, no async: facts in, derived facts out;
//! - an evaluation feeds `crepe` only the facts reachable from its subject
//!   (upward group closure, the bindings on the subject and those groups, the
//!   roles and applications they name), so its cost does not grow with the
//!   number of users in the tenant;
//! - derived views are cached per subject and a write invalidates exactly the
//!   subjects it can affect (the transitive members of the node it touches);
//!   role and application changes clear the cache;
//! - the Rust code gathers facts and reads results; membership, holdings and
//!   scopes are derived by the rules alone;
//! - request-only memberships (the groups of a verified ID token) are extra
//!   `MemberEdge(group, subject)` input facts of that one evaluation; a view
//!   evaluated with them is never read from or stored in the cache (the
//!   `_with` methods bypass it).

mod cache;
pub mod ids;
mod rules;

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::model::{Conditions, ObjectRef, ObjectType};
pub use ids::{AppId, BindingId, Interner, NodeId, NodeKind, Origin, RoleId, ScopeId, Why};

use cache::ViewCache;
pub use cache::ViewScope;

/// Bounds on one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Groups one subject may reach through nesting.
    pub max_groups: usize,
    /// Nesting levels between a subject and the furthest group it reaches
    /// (shortest path). Datalog evaluation of a chain costs about depth ×
    /// facts, so this bounds the time of one evaluation: 1,000 levels cost
    /// ~10 ms; real directories nest a handful (SpiceDB's default is 50).
    pub max_depth: usize,
    /// Bindings one evaluation may consider.
    pub max_bindings: usize,
    /// Subject views kept in the cache.
    pub cache_capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_groups: 250_000, max_depth: 1_000, max_bindings: 250_000, cache_capacity: 1 << 20 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("evaluation of `{subject}` exceeds the limit of {limit} {what}")]
    LimitExceeded { subject: String, what: &'static str, limit: usize },
}

/// One binding: `role` bound to `subject` on `resource`.
#[derive(Debug, Clone)]
pub struct BindingRec {
    pub subject: NodeId,
    pub role: RoleId,
    pub resource: AppId,
    pub conditions: Arc<Conditions>,
}

/// One holding of the evaluated subject, read from a derived `Holds` fact.
#[derive(Debug, Clone)]
pub struct Hold {
    pub binding: BindingId,
    pub role: RoleId,
    pub resource: AppId,
    pub origin: Origin,
    /// The node the binding is bound to.
    pub bound: NodeId,
    /// A shortest membership path from the subject to `bound` (inclusive);
    /// just the subject for direct bindings.
    pub path: Vec<NodeId>,
}

/// The derived access of one subject: what the rules concluded about it.
#[derive(Debug, Clone, Default)]
pub struct SubjectView {
    /// Holdings, ordered by binding id (deterministic for a given state;
    /// callers that render sort by binding text).
    pub holds: Vec<Hold>,
    /// `(app, scope)` → (index into `holds`, usable) for every `Entitled`
    /// fact; `usable` is whether the matching `Granted` fact was derived.
    pub entitled: FxHashMap<(AppId, ScopeId), Entitlement>,
    /// Denial reasons already read from the rules for this view (by app and
    /// scope), so a repeated denial does not re-run the explain program. It
    /// lives and dies with the view, so invalidation covers it.
    pub denials: DenialMemo,
}

/// A small memo of `(app, scope) → reason` for the denials of one view.
#[derive(Debug, Default)]
pub struct DenialMemo(std::sync::Mutex<SmallVec<[Denial; 4]>>);

/// One remembered denial: (application, scope) and its reason.
type Denial = ((AppId, ScopeId), &'static str);

/// Most denial reasons one view remembers.
const DENIALS_PER_VIEW: usize = 16;

impl DenialMemo {
    pub fn get(&self, key: (AppId, ScopeId)) -> Option<&'static str> {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.iter().find(|(k, _)| *k == key).map(|&(_, r)| r)
    }

    pub fn put(&self, key: (AppId, ScopeId), reason: &'static str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() < DENIALS_PER_VIEW && !m.iter().any(|(k, _)| *k == key) {
            m.push((key, reason));
        }
    }
}

impl Clone for DenialMemo {
    fn clone(&self) -> Self {
        DenialMemo(std::sync::Mutex::new(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()))
    }
}

/// The `Entitled` facts of one (application, scope) for a subject.
#[derive(Debug, Clone, Default)]
pub struct Entitlement {
    /// (index into [`SubjectView::holds`], usable: `Granted` was derived).
    pub paths: SmallVec<[(u32, bool); 2]>,
    /// Some usable path's binding carries no condition at all (no MFA, IP
    /// range or validity window), so every request context satisfies it: a
    /// check answers allow without evaluating conditions. A binding's
    /// conditions changing invalidates the views below it, so this never
    /// outlives the conditions it was read from.
    pub open: bool,
}

impl std::ops::Deref for Entitlement {
    type Target = [(u32, bool)];
    fn deref(&self) -> &[(u32, bool)] {
        &self.paths
    }
}

impl<'a> IntoIterator for &'a Entitlement {
    type Item = &'a (u32, bool);
    type IntoIter = std::slice::Iter<'a, (u32, bool)>;
    fn into_iter(self) -> Self::IntoIter {
        self.paths.iter()
    }
}

impl SubjectView {
    pub fn entries(&self, app: AppId, scope: ScopeId) -> &[(u32, bool)] {
        self.entitled.get(&(app, scope)).map(|v| v.paths.as_slice()).unwrap_or(&[])
    }

    pub fn entitlement(&self, app: AppId, scope: ScopeId) -> Option<&Entitlement> {
        self.entitled.get(&(app, scope))
    }
}

/// Raw outputs of one evaluation (the subject column dropped).
#[derive(Debug, Default)]
pub struct Derived {
    /// `Reach`: (via, group).
    pub reach: Vec<(NodeId, NodeId)>,
    /// `Holds`: (role, resource, binding, origin, bound node).
    pub holds: Vec<(RoleId, AppId, BindingId, Origin, NodeId)>,
    /// `Entitled`: (app, scope, binding).
    pub entitled: Vec<(AppId, ScopeId, BindingId)>,
    /// `Granted`: (app, scope, binding).
    pub granted: FxHashSet<(AppId, ScopeId, BindingId)>,
    /// `Verdict` (explain only): (binding, why).
    pub verdicts: Vec<(BindingId, Why)>,
}

/// The input facts of one evaluation.
#[derive(Debug, Default)]
struct Facts {
    edges: Vec<(NodeId, NodeId)>,
    bindings: Vec<(BindingId, NodeId, RoleId, AppId)>,
    grants: Vec<(RoleId, ScopeId)>,
    supports: Vec<(AppId, ScopeId)>,
    /// Every defined application, fed only when a tenant-wide binding is held.
    apps: Vec<AppId>,
    suspended: bool,
}

/// One tenant's facts, indexed for the queries.
#[derive(Debug)]
pub struct FactBase {
    nodes: Interner,
    node_kind: Vec<NodeKind>,
    declared: Vec<bool>,
    parents: Vec<SmallVec<[NodeId; 4]>>,
    children: Vec<Vec<NodeId>>,
    node_bindings: Vec<SmallVec<[BindingId; 2]>>,
    roles: Interner,
    role_scopes: Vec<Option<Vec<ScopeId>>>,
    apps: Interner,
    app_scopes: Vec<Option<Vec<ScopeId>>>,
    scopes: Interner,
    bindings: Vec<Option<BindingRec>>,
    free_bindings: Vec<BindingId>,
    binding_index: FxHashMap<(NodeId, RoleId, AppId), BindingId>,
    resource_bindings: FxHashMap<AppId, Vec<BindingId>>,
    suspended: FxHashSet<NodeId>,
    tuple_count: usize,
    limits: Limits,
    cache: ViewCache,
    /// [`FactBase::access_candidates`] per application (and scope), sorted
    /// by name; dropped by every write that changes a membership, a
    /// binding's existence, a role's scopes or an application.
    candidates: CandidateCache,
}

/// Who-can-access candidates per application (see [`FactBase::access_candidates`]).
#[derive(Debug, Default)]
struct CandidateCache(std::sync::Mutex<Candidates>);

/// Sorted candidates by (application, scope).
type Candidates = FxHashMap<(AppId, Option<ScopeId>), Arc<[NodeId]>>;

impl CandidateCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Candidates> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writers hold the fact base mutably: no lock to take.
    fn clear(&mut self) {
        let m = self.0.get_mut().unwrap_or_else(|p| p.into_inner());
        if !m.is_empty() {
            m.clear();
        }
    }
}

impl Default for FactBase {
    fn default() -> Self {
        FactBase::new(Limits::default())
    }
}

/// `type:id` of a node reference, without `fmt` machinery (bulk loads call
/// this for every tuple).
fn canonical(r: &ObjectRef) -> String {
    let ty = r.ty.as_str();
    let mut s = String::with_capacity(ty.len() + 1 + r.id.len());
    s.push_str(ty);
    s.push(':');
    s.push_str(&r.id);
    s
}

fn kind_of(ty: ObjectType) -> Option<NodeKind> {
    match ty {
        ObjectType::User => Some(NodeKind::User),
        ObjectType::Group => Some(NodeKind::Group),
        ObjectType::ServiceAccount => Some(NodeKind::ServiceAccount),
        _ => None,
    }
}

impl FactBase {
    pub fn new(limits: Limits) -> Self {
        FactBase {
            nodes: Interner::default(),
            node_kind: Vec::new(),
            declared: Vec::new(),
            parents: Vec::new(),
            children: Vec::new(),
            node_bindings: Vec::new(),
            roles: Interner::default(),
            role_scopes: Vec::new(),
            apps: Interner::default(),
            app_scopes: Vec::new(),
            scopes: Interner::default(),
            bindings: Vec::new(),
            free_bindings: Vec::new(),
            binding_index: FxHashMap::default(),
            resource_bindings: FxHashMap::default(),
            suspended: FxHashSet::default(),
            tuple_count: 0,
            limits,
            cache: ViewCache::new(limits.cache_capacity),
            candidates: CandidateCache::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    // ------------------------------------------------------------ lookups

    /// The node named by canonical text (`user:alice`), if interned.
    pub fn node_by_name(&self, name: &str) -> Option<NodeId> {
        self.nodes.get(name).map(NodeId)
    }

    /// The node of a user, group or service account reference, if known.
    pub fn node_id(&self, r: &ObjectRef) -> Option<NodeId> {
        kind_of(r.ty)?;
        self.nodes.get(&canonical(r)).map(NodeId)
    }

    pub fn node_name(&self, n: NodeId) -> &str {
        self.nodes.name(n.0)
    }

    pub fn node_kind(&self, n: NodeId) -> NodeKind {
        self.node_kind.get(n.idx()).copied().unwrap_or(NodeKind::User)
    }

    /// A node is known when declared or named by any membership or binding.
    pub fn node_known(&self, n: NodeId) -> bool {
        let i = n.idx();
        self.declared.get(i).copied().unwrap_or(false)
            || self.parents.get(i).is_some_and(|p| !p.is_empty())
            || self.children.get(i).is_some_and(|c| !c.is_empty())
            || self.node_bindings.get(i).is_some_and(|b| !b.is_empty())
    }

    /// Every group node in id order (not sorted by name): for listings
    /// that select a page before sorting.
    pub fn groups_unsorted(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId).filter(move |&n| self.node_kind(n) == NodeKind::Group)
    }

    /// Every known node of a kind in id order (not sorted by name): for
    /// listings that select a page before sorting.
    pub fn nodes_unsorted(&self, kind: NodeKind) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len() as u32).map(NodeId).filter(move |&n| self.node_kind(n) == kind && self.node_known(n))
    }

    /// Every live binding in id order (not sorted by text).
    pub fn bindings_unsorted(&self) -> impl Iterator<Item = BindingId> + '_ {
        (0..self.bindings.len() as u32).map(BindingId).filter(move |&b| self.binding(b).is_some())
    }

    /// Every known node of a kind, sorted by name.
    pub fn nodes_of(&self, kind: NodeKind) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = (0..self.nodes.len() as u32)
            .map(NodeId)
            .filter(|&n| self.node_kind(n) == kind && self.node_known(n))
            .collect();
        v.sort_by(|a, b| self.node_name(*a).cmp(self.node_name(*b)));
        v
    }

    pub fn role_id(&self, id: &str) -> Option<RoleId> {
        self.roles.get(id).map(RoleId).filter(|r| self.role_scopes[r.idx()].is_some())
    }

    pub fn role_name(&self, r: RoleId) -> &str {
        self.roles.name(r.0)
    }

    pub fn role_scopes(&self, r: RoleId) -> &[ScopeId] {
        self.role_scopes.get(r.idx()).and_then(|s| s.as_deref()).unwrap_or(&[])
    }

    pub fn roles(&self) -> Vec<RoleId> {
        let mut v: Vec<RoleId> =
            (0..self.roles.len() as u32).map(RoleId).filter(|r| self.role_scopes[r.idx()].is_some()).collect();
        v.sort_by(|a, b| self.role_name(*a).cmp(self.role_name(*b)));
        v
    }

    pub fn app_id(&self, id: &str) -> Option<AppId> {
        self.apps.get(id).map(AppId).filter(|a| self.app_scopes[a.idx()].is_some())
    }

    pub fn app_name(&self, a: AppId) -> &str {
        if a.is_tenant() {
            "tenant"
        } else {
            self.apps.name(a.0)
        }
    }

    pub fn app_scopes(&self, a: AppId) -> &[ScopeId] {
        if a.is_tenant() {
            return &[];
        }
        self.app_scopes.get(a.idx()).and_then(|s| s.as_deref()).unwrap_or(&[])
    }

    pub fn app_supports(&self, a: AppId, x: ScopeId) -> bool {
        self.app_scopes(a).contains(&x)
    }

    pub fn role_grants(&self, r: RoleId, x: ScopeId) -> bool {
        self.role_scopes(r).contains(&x)
    }

    pub fn apps(&self) -> Vec<AppId> {
        let mut v: Vec<AppId> =
            (0..self.apps.len() as u32).map(AppId).filter(|a| self.app_scopes[a.idx()].is_some()).collect();
        v.sort_by(|a, b| self.app_name(*a).cmp(self.app_name(*b)));
        v
    }

    pub fn scope_id(&self, s: &str) -> Option<ScopeId> {
        self.scopes.get(s).map(ScopeId)
    }

    pub fn scope_name(&self, s: ScopeId) -> &str {
        self.scopes.name(s.0)
    }

    pub fn binding(&self, b: BindingId) -> Option<&BindingRec> {
        self.bindings.get(b.idx()).and_then(|b| b.as_ref())
    }

    pub fn binding_id(&self, subject: NodeId, role: RoleId, resource: AppId) -> Option<BindingId> {
        self.binding_index.get(&(subject, role, resource)).copied()
    }

    /// The canonical tuple text of a binding, e.g. `tenant#auditor@user:alice`.
    pub fn binding_text(&self, b: BindingId) -> String {
        match self.binding(b) {
            Some(rec) => {
                let object = if rec.resource.is_tenant() {
                    "tenant".to_string()
                } else {
                    format!("application:{}", self.app_name(rec.resource))
                };
                format!("{object}#{}@{}", self.role_name(rec.role), self.node_name(rec.subject))
            }
            None => format!("<removed binding {}>", b.0),
        }
    }

    /// Every live binding, sorted by text.
    pub fn all_bindings(&self) -> Vec<BindingId> {
        let mut v: Vec<(String, BindingId)> = (0..self.bindings.len() as u32)
            .map(BindingId)
            .filter(|b| self.binding(*b).is_some())
            .map(|b| (self.binding_text(b), b))
            .collect();
        v.sort();
        v.into_iter().map(|(_, b)| b).collect()
    }

    pub fn bindings_on(&self, n: NodeId) -> &[BindingId] {
        self.node_bindings.get(n.idx()).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn bindings_of_resource(&self, a: AppId) -> &[BindingId] {
        self.resource_bindings.get(&a).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Direct groups of a node.
    pub fn parents(&self, n: NodeId) -> &[NodeId] {
        self.parents.get(n.idx()).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Direct members of a group.
    pub fn members(&self, g: NodeId) -> &[NodeId] {
        self.children.get(g.idx()).map(|v| v.as_slice()).unwrap_or(&[])
    }

    pub fn is_suspended(&self, n: NodeId) -> bool {
        self.suspended.contains(&n)
    }

    /// Number of relationship tuples held (memberships, grants, supports, bindings).
    pub fn tuple_count(&self) -> usize {
        self.tuple_count
    }

    // ------------------------------------------------------------ writes

    /// Interns a user, group or service account. `None` for other types.
    pub fn intern_node(&mut self, r: &ObjectRef) -> Option<NodeId> {
        let kind = kind_of(r.ty)?;
        let name = canonical(r);
        if let Some(i) = self.nodes.get(&name) {
            return Some(NodeId(i));
        }
        let id = NodeId(self.nodes.intern(&name));
        self.node_kind.push(kind);
        self.declared.push(false);
        self.parents.push(SmallVec::new());
        self.children.push(Vec::new());
        self.node_bindings.push(SmallVec::new());
        Some(id)
    }

    /// Marks a node declared (or not). Returns the node.
    pub fn declare_node(&mut self, r: &ObjectRef, declared: bool) -> Option<NodeId> {
        let n = self.intern_node(r)?;
        self.declared[n.idx()] = declared;
        Some(n)
    }

    fn intern_scope(&mut self, s: &str) -> ScopeId {
        ScopeId(self.scopes.intern(s))
    }

    /// Defines a role (or redefines it) with exactly these scopes.
    pub fn define_role(&mut self, id: &str, scopes: &[&str]) -> RoleId {
        let r = RoleId(self.roles.intern(id));
        if self.role_scopes.len() <= r.idx() {
            self.role_scopes.resize(r.idx() + 1, None);
        }
        let mut ids: Vec<ScopeId> = scopes.iter().map(|s| self.intern_scope(s)).collect();
        ids.sort();
        ids.dedup();
        let old = self.role_scopes[r.idx()].as_ref().map_or(0, |v| v.len());
        self.tuple_count = self.tuple_count + ids.len() - old.min(self.tuple_count);
        self.role_scopes[r.idx()] = Some(ids);
        self.cache.clear();
        self.candidates.clear();
        r
    }

    /// Removes a role definition. The caller ensures no binding uses it.
    pub fn undefine_role(&mut self, id: &str) -> bool {
        let Some(r) = self.role_id(id) else { return false };
        let n = self.role_scopes[r.idx()].as_ref().map_or(0, |v| v.len());
        self.tuple_count -= n.min(self.tuple_count);
        self.role_scopes[r.idx()] = None;
        self.cache.clear();
        self.candidates.clear();
        true
    }

    /// Adds or removes one scope of a defined role (`role:r#grants@scope:x`).
    pub fn set_grant(&mut self, role: &str, scope: &str, present: bool) -> bool {
        let Some(r) = self.role_id(role) else { return false };
        let x = self.intern_scope(scope);
        let changed = set_member(self.role_scopes[r.idx()].get_or_insert_with(Vec::new), x, present);
        if changed {
            self.bump_tuples(present);
            self.cache.clear();
            self.candidates.clear();
        }
        changed
    }

    /// Defines an application (or redefines it) with these supported scopes.
    pub fn define_app(&mut self, id: &str, scopes: &[&str]) -> AppId {
        let a = AppId(self.apps.intern(id));
        if self.app_scopes.len() <= a.idx() {
            self.app_scopes.resize(a.idx() + 1, None);
        }
        let mut ids: Vec<ScopeId> = scopes.iter().map(|s| self.intern_scope(s)).collect();
        ids.sort();
        ids.dedup();
        let old = self.app_scopes[a.idx()].as_ref().map_or(0, |v| v.len());
        self.tuple_count = self.tuple_count + ids.len() - old.min(self.tuple_count);
        self.app_scopes[a.idx()] = Some(ids);
        self.cache.clear();
        self.candidates.clear();
        a
    }

    pub fn undefine_app(&mut self, id: &str) -> bool {
        let Some(a) = self.app_id(id) else { return false };
        let n = self.app_scopes[a.idx()].as_ref().map_or(0, |v| v.len());
        self.tuple_count -= n.min(self.tuple_count);
        self.app_scopes[a.idx()] = None;
        self.cache.clear();
        self.candidates.clear();
        true
    }

    /// Adds or removes one supported scope (`application:a#supports@scope:x`).
    pub fn set_supports(&mut self, app: &str, scope: &str, present: bool) -> bool {
        let Some(a) = self.app_id(app) else { return false };
        let x = self.intern_scope(scope);
        let changed = set_member(self.app_scopes[a.idx()].get_or_insert_with(Vec::new), x, present);
        if changed {
            self.bump_tuples(present);
            self.cache.clear();
            self.candidates.clear();
        }
        changed
    }

    fn bump_tuples(&mut self, up: bool) {
        if up {
            self.tuple_count += 1;
        } else {
            self.tuple_count = self.tuple_count.saturating_sub(1);
        }
    }

    /// Adds (or removes) the membership `group#member@member`.
    pub fn set_member(&mut self, group: &ObjectRef, member: &ObjectRef, present: bool) -> bool {
        let (Some(g), Some(m)) = (self.intern_node(group), self.intern_node(member)) else {
            return false;
        };
        let changed = if present {
            // Scan the shorter side: a subject in 100k groups, or a group
            // with 100k members, must not make each add linear.
            let exists = if self.parents[m.idx()].len() <= self.children[g.idx()].len() {
                self.parents[m.idx()].contains(&g)
            } else {
                self.children[g.idx()].contains(&m)
            };
            if exists {
                false
            } else {
                self.parents[m.idx()].push(g);
                self.children[g.idx()].push(m);
                true
            }
        } else if let Some(p) = self.parents[m.idx()].iter().position(|&x| x == g) {
            self.parents[m.idx()].swap_remove(p);
            if let Some(c) = self.children[g.idx()].iter().position(|&x| x == m) {
                self.children[g.idx()].swap_remove(c);
            }
            true
        } else {
            false
        };
        if changed {
            self.bump_tuples(present);
            self.invalidate_below(m);
            self.candidates.clear();
        }
        changed
    }

    /// Binds `role` to `subject` on `resource` (an application, or the
    /// tenant), replacing the conditions of an existing identical binding.
    /// The role and application must be defined (the caller validated).
    pub fn put_binding(
        &mut self,
        resource: &ObjectRef,
        role: &str,
        subject: &ObjectRef,
        conditions: Conditions,
    ) -> Option<BindingId> {
        let r = self.role_id(role)?;
        let a = self.resource_id(resource)?;
        let s = self.intern_node(subject)?;
        // Most bindings carry no conditions: they share one allocation.
        static NONE: std::sync::OnceLock<Arc<Conditions>> = std::sync::OnceLock::new();
        let conditions = if conditions == Conditions::default() {
            NONE.get_or_init(|| Arc::new(Conditions::default())).clone()
        } else {
            Arc::new(conditions)
        };
        if let Some(&b) = self.binding_index.get(&(s, r, a)) {
            if let Some(rec) = self.bindings[b.idx()].as_mut() {
                if rec.conditions != conditions {
                    rec.conditions = conditions;
                    // Views record whether a path is unconditional.
                    self.invalidate_below(s);
                }
            }
            return Some(b);
        }
        let rec = BindingRec { subject: s, role: r, resource: a, conditions };
        let b = match self.free_bindings.pop() {
            Some(b) => {
                self.bindings[b.idx()] = Some(rec);
                b
            }
            None => {
                self.bindings.push(Some(rec));
                BindingId(self.bindings.len() as u32 - 1)
            }
        };
        self.binding_index.insert((s, r, a), b);
        self.node_bindings[s.idx()].push(b);
        self.resource_bindings.entry(a).or_default().push(b);
        self.tuple_count += 1;
        self.invalidate_below(s);
        self.candidates.clear();
        Some(b)
    }

    pub fn remove_binding(&mut self, resource: &ObjectRef, role: &str, subject: &ObjectRef) -> bool {
        let (Some(r), Some(a), Some(s)) = (self.role_id(role), self.resource_id(resource), self.node_id(subject))
        else {
            return false;
        };
        let Some(b) = self.binding_index.remove(&(s, r, a)) else { return false };
        self.bindings[b.idx()] = None;
        self.free_bindings.push(b);
        self.node_bindings[s.idx()].retain(|x| *x != b);
        if let Some(v) = self.resource_bindings.get_mut(&a) {
            v.retain(|x| *x != b);
        }
        self.tuple_count = self.tuple_count.saturating_sub(1);
        self.invalidate_below(s);
        self.candidates.clear();
        true
    }

    /// The resource id of `application:x` or `tenant`.
    pub fn resource_id(&self, resource: &ObjectRef) -> Option<AppId> {
        match resource.ty {
            ObjectType::Tenant => Some(AppId::TENANT),
            ObjectType::Application => self.app_id(&resource.id),
            _ => None,
        }
    }

    pub fn set_suspended(&mut self, subject: &ObjectRef, suspended: bool) -> bool {
        let Some(n) = self.intern_node(subject) else { return false };
        let changed = if suspended { self.suspended.insert(n) } else { self.suspended.remove(&n) };
        if changed {
            self.cache.remove(n);
        }
        changed
    }

    /// Drops the cached views of `n` and of everything below it.
    fn invalidate_below(&self, n: NodeId) {
        if self.cache.is_empty() {
            return;
        }
        let below = self.descendants(n, usize::MAX);
        if below.len() > self.cache.len() {
            self.cache.clear();
        } else {
            for d in below {
                self.cache.remove(d);
            }
        }
    }

    /// `n` and every node that reaches it through membership (its transitive
    /// members). Fact gathering for invalidation and who-can-access; cycles
    /// are visited once.
    pub fn descendants(&self, n: NodeId, limit: usize) -> Vec<NodeId> {
        let mut seen = FxHashSet::default();
        let mut out = vec![n];
        seen.insert(n);
        let mut i = 0;
        while i < out.len() && out.len() < limit {
            let cur = out[i];
            i += 1;
            for &c in self.members(cur) {
                if seen.insert(c) {
                    out.push(c);
                }
            }
        }
        out
    }

    // -------------------------------------------------------- evaluation

    /// The subject's derived view over every application, from the cache or
    /// from a fresh evaluation.
    pub fn view(&self, s: NodeId) -> Result<Arc<SubjectView>, EngineError> {
        self.view_scoped(s, ViewScope::All)
    }

    /// The subject's view of one application (bindings there and
    /// tenant-wide): the check path, which evaluates only those facts.
    pub fn app_view(&self, s: NodeId, app: AppId) -> Result<Arc<SubjectView>, EngineError> {
        self.view_scoped(s, ViewScope::App(app))
    }

    /// [`FactBase::app_view`] with request-only memberships: `s` is also a
    /// direct member of `extra` for this evaluation. With any, the cache is
    /// bypassed (neither read nor filled).
    pub fn app_view_with(&self, s: NodeId, app: AppId, extra: &[NodeId]) -> Result<Arc<SubjectView>, EngineError> {
        if extra.is_empty() && s != NodeId::REQUEST_ONLY {
            return self.app_view(s, app);
        }
        Ok(Arc::new(self.build_view(s, self.evaluate_scoped(s, ViewScope::App(app), None, extra)?)))
    }

    /// [`FactBase::view`] with request-only memberships (cache bypassed).
    pub fn view_with(&self, s: NodeId, extra: &[NodeId]) -> Result<Arc<SubjectView>, EngineError> {
        if extra.is_empty() && s != NodeId::REQUEST_ONLY {
            return self.view(s);
        }
        Ok(Arc::new(self.build_view(s, self.evaluate_scoped(s, ViewScope::All, None, extra)?)))
    }

    /// [`FactBase::evaluate`] with request-only memberships.
    pub fn evaluate_with(
        &self,
        s: NodeId,
        query: Option<(AppId, ScopeId)>,
        extra: &[NodeId],
    ) -> Result<Derived, EngineError> {
        self.evaluate_scoped(s, ViewScope::All, query, extra)
    }

    fn view_scoped(&self, s: NodeId, scope: ViewScope) -> Result<Arc<SubjectView>, EngineError> {
        if let Some(v) = self.cache.get(s, scope) {
            return Ok(v);
        }
        let v = Arc::new(self.build_view(s, self.evaluate_scoped(s, scope, None, &[])?));
        self.cache.insert(s, scope, v.clone());
        Ok(v)
    }

    /// The subject's view over every application, always freshly evaluated.
    pub fn view_uncached(&self, s: NodeId) -> Result<SubjectView, EngineError> {
        self.view_uncached_scoped(s, ViewScope::All)
    }

    /// The subject's view, always freshly evaluated (for tests and benches).
    pub fn view_uncached_scoped(&self, s: NodeId, scope: ViewScope) -> Result<SubjectView, EngineError> {
        Ok(self.build_view(s, self.evaluate_scoped(s, scope, None, &[])?))
    }

    /// Subjects with a cached view.
    pub fn cached_views(&self) -> usize {
        self.cache.len()
    }

    /// Runs the rules over the facts that concern `s`; with `query`, also
    /// derives the explain verdicts for that application and scope.
    pub fn evaluate(&self, s: NodeId, query: Option<(AppId, ScopeId)>) -> Result<Derived, EngineError> {
        self.evaluate_scoped(s, ViewScope::All, query, &[])
    }

    fn evaluate_scoped(
        &self,
        s: NodeId,
        scope: ViewScope,
        query: Option<(AppId, ScopeId)>,
        extra: &[NodeId],
    ) -> Result<Derived, EngineError> {
        let f = self.gather(s, scope, query.map(|(a, _)| a), extra)?;
        macro_rules! feed {
            ($m:ident) => {{
                use rules::$m as r;
                let mut rt = r::Crepe::new();
                rt.extend([r::Subject(s, self.node_kind(s))]);
                rt.extend(f.edges.iter().map(|&(g, m)| r::MemberEdge(g, m)));
                rt.extend(f.bindings.iter().map(|&(b, n, role, res)| r::Binding(b, n, role, res)));
                rt.extend(f.grants.iter().map(|&(role, x)| r::Grants(role, x)));
                rt.extend(f.supports.iter().map(|&(a, x)| r::Supports(a, x)));
                rt.extend(f.apps.iter().map(|&a| r::Application(a)));
                if f.suspended {
                    rt.extend([r::Suspended(s)]);
                }
                rt
            }};
        }
        type H = rustc_hash::FxBuildHasher;
        Ok(match query {
            None => {
                let (reach, holds, entitled, granted) = feed!(core).run_with_hasher::<H>();
                Derived {
                    reach: reach.into_iter().map(|rules::core::Reach(_, g, via)| (via, g)).collect(),
                    holds: holds.into_iter().map(|rules::core::Holds(_, r, a, b, o, n)| (r, a, b, o, n)).collect(),
                    entitled: entitled.into_iter().map(|rules::core::Entitled(_, a, x, b)| (a, x, b)).collect(),
                    granted: granted.into_iter().map(|rules::core::Granted(_, a, x, b)| (a, x, b)).collect(),
                    verdicts: vec![],
                }
            }
            Some((a, x)) => {
                let mut rt = feed!(full);
                rt.extend([rules::full::Query(a, x)]);
                let (reach, holds, entitled, granted, verdicts) = rt.run_with_hasher::<H>();
                Derived {
                    reach: reach.into_iter().map(|rules::full::Reach(_, g, via)| (via, g)).collect(),
                    holds: holds.into_iter().map(|rules::full::Holds(_, r, a, b, o, n)| (r, a, b, o, n)).collect(),
                    entitled: entitled.into_iter().map(|rules::full::Entitled(_, a, x, b)| (a, x, b)).collect(),
                    granted: granted.into_iter().map(|rules::full::Granted(_, a, x, b)| (a, x, b)).collect(),
                    verdicts: verdicts.into_iter().map(|rules::full::Verdict(b, w)| (b, w)).collect(),
                }
            }
        })
    }

    /// Fills the cache with the application views of those of `subjects`
    /// that have none, evaluated together in one run of the rules: every
    /// derived relation is keyed by its subject, so the union of the
    /// subjects' facts derives for each exactly what its own run would (a
    /// subject's upward closure only follows edges whose member it reaches,
    /// all of which its own facts hold). For listings that evaluate
    /// thousands of subjects at once (who-can-access): one run instead of
    /// one per subject.
    pub fn prefetch_app_views(&self, subjects: &[NodeId], app: AppId) -> Result<(), EngineError> {
        let scope = ViewScope::App(app);
        let todo: Vec<NodeId> = subjects.iter().copied().filter(|&s| self.cache.get(s, scope).is_none()).collect();
        if todo.len() < 2 {
            return Ok(());
        }
        let mut edges: FxHashSet<(NodeId, NodeId)> = FxHashSet::default();
        let mut bindings: FxHashSet<(BindingId, NodeId, RoleId, AppId)> = FxHashSet::default();
        let mut grants: FxHashSet<(RoleId, ScopeId)> = FxHashSet::default();
        let mut supports: FxHashSet<(AppId, ScopeId)> = FxHashSet::default();
        let mut apps: FxHashSet<AppId> = FxHashSet::default();
        let mut suspended = Vec::new();
        for &s in &todo {
            let f = self.gather(s, scope, None, &[])?;
            edges.extend(f.edges);
            bindings.extend(f.bindings);
            grants.extend(f.grants);
            supports.extend(f.supports);
            apps.extend(f.apps);
            if f.suspended {
                suspended.push(s);
            }
        }
        use rules::core as r;
        let mut rt = r::Crepe::new();
        rt.extend(todo.iter().map(|&s| r::Subject(s, self.node_kind(s))));
        rt.extend(edges.into_iter().map(|(g, m)| r::MemberEdge(g, m)));
        rt.extend(bindings.into_iter().map(|(b, n, role, res)| r::Binding(b, n, role, res)));
        rt.extend(grants.into_iter().map(|(role, x)| r::Grants(role, x)));
        rt.extend(supports.into_iter().map(|(a, x)| r::Supports(a, x)));
        rt.extend(apps.into_iter().map(r::Application));
        rt.extend(suspended.into_iter().map(r::Suspended));
        let (reach, holds, entitled, granted) = rt.run_with_hasher::<rustc_hash::FxBuildHasher>();
        let mut per: FxHashMap<NodeId, Derived> = todo.iter().map(|&s| (s, Derived::default())).collect();
        for r::Reach(s, g, via) in reach {
            per.entry(s).or_default().reach.push((via, g));
        }
        for r::Holds(s, role, a, b, o, n) in holds {
            per.entry(s).or_default().holds.push((role, a, b, o, n));
        }
        for r::Entitled(s, a, x, b) in entitled {
            per.entry(s).or_default().entitled.push((a, x, b));
        }
        for r::Granted(s, a, x, b) in granted {
            per.entry(s).or_default().granted.insert((a, x, b));
        }
        for (s, d) in per {
            self.cache.insert(s, scope, Arc::new(self.build_view(s, d)));
        }
        Ok(())
    }

    fn limit(&self, s: NodeId, what: &'static str, limit: usize) -> EngineError {
        EngineError::LimitExceeded { subject: self.node_name(s).to_string(), what, limit }
    }

    /// The facts that concern `s`: its upward membership closure, the
    /// bindings on it and on those groups, the roles and applications they
    /// name (every application when a tenant-wide binding is among them).
    /// `extra`: groups `s` is a direct member of for this evaluation only.
    fn gather(
        &self,
        s: NodeId,
        scope: ViewScope,
        extra_app: Option<AppId>,
        extra: &[NodeId],
    ) -> Result<Facts, EngineError> {
        let mut f = Facts::default();
        let mut seen: FxHashSet<NodeId> = FxHashSet::default();
        seen.insert(s);
        // Breadth first, a level at a time, so the depth is the shortest path.
        let mut level = vec![s];
        let mut next = Vec::new();
        let mut depth = 0;
        while !level.is_empty() {
            for &n in &level {
                let request_only = if n == s { extra } else { &[] };
                for &p in self.parents(n).iter().chain(request_only) {
                    f.edges.push((p, n));
                    if seen.insert(p) {
                        if seen.len() > self.limits.max_groups {
                            return Err(self.limit(s, "reachable groups", self.limits.max_groups));
                        }
                        next.push(p);
                    }
                }
            }
            if !next.is_empty() {
                depth += 1;
                if depth > self.limits.max_depth {
                    return Err(self.limit(s, "levels of group nesting", self.limits.max_depth));
                }
            }
            std::mem::swap(&mut level, &mut next);
            next.clear();
        }
        let mut roles: SmallVec<[RoleId; 16]> = SmallVec::new();
        let mut apps: SmallVec<[AppId; 16]> = SmallVec::new();
        let mut tenant_wide = false;
        for &n in &seen {
            for &b in self.bindings_on(n) {
                let Some(rec) = self.binding(b) else { continue };
                if let ViewScope::App(a) = scope {
                    if rec.resource != a && !rec.resource.is_tenant() {
                        continue;
                    }
                }
                f.bindings.push((b, rec.subject, rec.role, rec.resource));
                roles.push(rec.role);
                if rec.resource.is_tenant() {
                    tenant_wide = true;
                } else {
                    apps.push(rec.resource);
                }
            }
        }
        if f.bindings.len() > self.limits.max_bindings {
            return Err(self.limit(s, "bindings", self.limits.max_bindings));
        }
        if tenant_wide {
            match scope {
                ViewScope::All => {
                    apps.extend((0..self.apps.len() as u32).map(AppId).filter(|a| self.app_scopes[a.idx()].is_some()))
                }
                ViewScope::App(a) => apps.push(a),
            }
        }
        if let Some(a) = extra_app.filter(|a| !a.is_tenant()) {
            apps.push(a);
        }
        roles.sort_unstable();
        roles.dedup();
        apps.sort_unstable();
        apps.dedup();
        for &r in &roles {
            f.grants.extend(self.role_scopes(r).iter().map(|&x| (r, x)));
        }
        // Only supported scopes that some held role grants can matter.
        let mut granted: SmallVec<[ScopeId; 32]> = f.grants.iter().map(|&(_, x)| x).collect();
        granted.sort_unstable();
        granted.dedup();
        for &a in &apps {
            f.supports.extend(self.app_scopes(a).iter().filter(|x| granted.binary_search(x).is_ok()).map(|&x| (a, x)));
        }
        if tenant_wide {
            f.apps = apps.to_vec();
        }
        f.suspended = self.is_suspended(s);
        Ok(f)
    }

    /// Shapes derived facts into a [`SubjectView`] with membership paths.
    pub fn build_view(&self, s: NodeId, d: Derived) -> SubjectView {
        let prev = self.shortest_path_tree(s, &d.reach);
        let mut holds: Vec<Hold> = d
            .holds
            .iter()
            .map(|h| {
                let (role, resource, binding, origin, bound) = *h;
                let path = if bound == s { vec![s] } else { path_to(&prev, s, bound) };
                Hold { binding, role, resource, origin, bound, path }
            })
            .collect();
        // Deterministic for a given state; rendering sorts by text.
        holds.sort_by_key(|h| h.binding);
        let index: FxHashMap<BindingId, u32> = holds.iter().enumerate().map(|(i, h)| (h.binding, i as u32)).collect();
        let mut entitled: FxHashMap<(AppId, ScopeId), Entitlement> = FxHashMap::default();
        for &(a, x, b) in &d.entitled {
            if let Some(&i) = index.get(&b) {
                let usable = d.granted.contains(&(a, x, b));
                let e = entitled.entry((a, x)).or_default();
                e.paths.push((i, usable));
                e.open |= usable && self.binding(b).is_some_and(|rec| rec.conditions.is_empty());
            }
        }
        for v in entitled.values_mut() {
            v.paths.sort();
        }
        SubjectView { holds, entitled, denials: DenialMemo::default() }
    }

    /// Shortest paths from `s` to every group it reaches, over the derived
    /// `Reach` edges, as a predecessor map (ties broken by node id so the
    /// answer is deterministic). Only the paths of held bindings are
    /// materialised ([`path_to`]): a subject below a long chain may reach
    /// 100,000 groups, and every path would be quadratic.
    fn shortest_path_tree(&self, s: NodeId, reach: &[(NodeId, NodeId)]) -> FxHashMap<NodeId, NodeId> {
        let mut fwd: FxHashMap<NodeId, Vec<NodeId>> = FxHashMap::default();
        for &(via, g) in reach {
            fwd.entry(via).or_default().push(g);
        }
        for v in fwd.values_mut() {
            v.sort();
            v.dedup();
        }
        let mut prev: FxHashMap<NodeId, NodeId> = FxHashMap::default();
        let mut queue = std::collections::VecDeque::from([s]);
        let mut seen: FxHashSet<NodeId> = FxHashSet::default();
        seen.insert(s);
        while let Some(n) = queue.pop_front() {
            for &g in fwd.get(&n).map(|v| v.as_slice()).unwrap_or(&[]) {
                if seen.insert(g) {
                    prev.insert(g, n);
                    queue.push_back(g);
                }
            }
        }
        prev
    }

    /// Users and service accounts that may hold something on `app` (bound
    /// there or tenant-wide, directly or below a bound group), sorted by
    /// name. Candidates only: the rules decide what each one holds.
    /// Computed once per application and kept until a write changes a
    /// membership, a binding or the applications, so the pages of one
    /// answer do not each walk the graph again.
    pub fn access_candidates(&self, app: AppId, scope: Option<ScopeId>) -> Arc<[NodeId]> {
        if let Some(c) = self.candidates.lock().get(&(app, scope)) {
            return c.clone();
        }
        let c: Arc<[NodeId]> = self.access_candidates_uncached(app, scope).into();
        self.candidates.lock().insert((app, scope), c.clone());
        c
    }

    /// [`FactBase::access_candidates`], always computed afresh. With a
    /// scope, only bindings whose role grants it on an application that
    /// supports it can entitle anyone to it (`Entitled` needs both), so
    /// only those bindings' subjects and their members are candidates.
    pub fn access_candidates_uncached(&self, app: AppId, scope: Option<ScopeId>) -> Vec<NodeId> {
        let mut seen: FxHashSet<NodeId> = FxHashSet::default();
        let mut out = Vec::new();
        if scope.is_some_and(|x| !self.app_supports(app, x)) {
            return out;
        }
        for res in [app, AppId::TENANT] {
            for &b in self.bindings_of_resource(res) {
                let Some(rec) = self.binding(b) else { continue };
                if seen.contains(&rec.subject) || scope.is_some_and(|x| !self.role_grants(rec.role, x)) {
                    continue;
                }
                for n in self.descendants(rec.subject, usize::MAX) {
                    if seen.insert(n) && self.node_kind(n) != NodeKind::Group {
                        out.push(n);
                    }
                }
            }
        }
        out.sort_by(|a, b| self.node_name(*a).cmp(self.node_name(*b)));
        out
    }
}

fn set_member(v: &mut Vec<ScopeId>, x: ScopeId, present: bool) -> bool {
    match (v.binary_search(&x), present) {
        (Ok(_), true) | (Err(_), false) => false,
        (Err(i), true) => {
            v.insert(i, x);
            true
        }
        (Ok(i), false) => {
            v.remove(i);
            true
        }
    }
}

/// The path `s`, ..., `g` in a predecessor map from [`FactBase::shortest_path_tree`]
/// (`[s, g]` if `g` is not in it).
fn path_to(prev: &FxHashMap<NodeId, NodeId>, s: NodeId, g: NodeId) -> Vec<NodeId> {
    if !prev.contains_key(&g) {
        return vec![s, g];
    }
    let mut path = vec![g];
    let mut cur = g;
    while let Some(&p) = prev.get(&cur) {
        path.push(p);
        cur = p;
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests;
