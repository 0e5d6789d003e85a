//! Tenants: the in-memory fact base of each tenant kept in step with the
//! durable store. Every write is validated whole, committed to the store in
//! one atomic batch (which assigns its revision) and only then applied to
//! memory, under the tenant's write lock; readers see a consistent state.

pub mod identity;
pub mod oauth_as;
mod read;
mod records;
pub mod scim_tokens;
mod tail;
pub mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};

use crate::engine::{FactBase, Limits};
use crate::model::schema::{SchemaError, TupleKind};
use crate::model::{Conditions, ObjectRef, ObjectType, Schema, Timestamp, Tuple};
use crate::store::{Commit, Datastore, Durability, Store};

pub use crate::store::StoreError;
pub use read::BindingFilter;
pub use records::{decode_op, decode_record, encode_change, Record};
pub use tail::ReplicationStatus;
pub use tokens::{TokenChange, TokenIndex};

/// One change to a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Writes a tuple (a binding's conditions ride along; `None` = none).
    PutTuple(Tuple, Option<Conditions>),
    DeleteTuple(Tuple),
    /// Declares an object with attributes (roles and applications must be
    /// declared before they can be granted, supported or bound).
    PutObject(ObjectRef, serde_json::Value),
    /// Removes an object declaration (and, for roles and applications, their
    /// definition; the caller deletes their tuples in the same batch).
    DeleteObject(ObjectRef),
    Suspend(ObjectRef, Suspension),
    Reactivate(ObjectRef),
    /// An access token or application credential change.
    Token(TokenChange),
    /// A SCIM bearer token change.
    ScimToken(scim_tokens::ScimTokenChange),
    /// An identity provider, or what its syncs own ([`identity`]).
    Identity(identity::IdentityChange),
    /// A record of the OAuth authorization server ([`oauth_as`]).
    OAuth(oauth_as::OAuthChange),
}

/// A condition on the current state that a batch requires.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Precondition {
    pub tuple: Tuple,
    /// `true`: the tuple must exist; `false`: it must not.
    pub exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    #[serde(default)]
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Schema(#[from] SchemaError),
    #[error("`{0}`: application `{1}` is not defined")]
    UnknownApplication(String, String),
    #[error("`{0}`: role `{1}` is not defined")]
    UnknownRole(String, String),
    #[error("`{0}` cannot carry conditions (only bindings can)")]
    ConditionsOnNonBinding(String),
    #[error("precondition failed: `{tuple}` {}", if *.exists { "does not exist" } else { "exists" })]
    Precondition { tuple: String, exists: bool },
    #[error("{0} `{1}` is still used by {2} binding(s); delete them first")]
    InUse(&'static str, String, usize),
    #[error("`{0}` cannot be declared or suspended here ({1})")]
    BadObject(String, String),
    #[error("batch has {0} changes (at most {1})")]
    TooLarge(usize, usize),
    #[error("`{tuple}`: {error}")]
    InvalidConditions { tuple: String, error: crate::model::ConditionError },
    #[error("{0}")]
    IdentityProvider(crate::model::oidc::ProviderError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// `--tenants`: this replica does not serve the tenant.
    #[error("tenant `{0}` is not served by this replica")]
    NotServed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("stored record `{key}` of tenant `{tenant}` is unreadable: {reason}")]
    Corrupt { tenant: String, key: String, reason: String },
    #[error("changes after revision `{since}` are no longer kept (the oldest kept follows `{oldest}`)")]
    ChangesTruncated { since: u64, oldest: u64 },
}

/// One committed batch as the change feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    pub revision: u64,
    pub at_unix_ms: u64,
    /// Who made the change (the credential's name, `scim:<id>`...).
    pub actor: String,
    pub changes: Vec<Change>,
}

/// Most changes a memory-only instance keeps for its change feed.
const MEMORY_LOG_CHANGES: usize = 100_000;

/// The change feed of a memory-only instance: the newest batches, bounded.
#[derive(Debug, Default)]
struct MemoryLog {
    entries: std::collections::VecDeque<(String, ChangeEntry)>,
    changes: usize,
    /// Revisions up to this one may have been dropped.
    dropped_through: u64,
}

impl MemoryLog {
    /// Records one committed batch; one larger than the whole feed (a bulk
    /// load) is not copied, and the feed then starts after it.
    fn push(&mut self, tenant: &str, revision: u64, at_unix_ms: u64, actor: &str, changes: &[Change]) {
        if changes.len() > MEMORY_LOG_CHANGES {
            self.entries.clear();
            self.changes = 0;
            self.dropped_through = revision;
            return;
        }
        let entry = ChangeEntry { revision, at_unix_ms, actor: actor.to_string(), changes: changes.to_vec() };
        self.changes += entry.changes.len();
        self.entries.push_back((tenant.to_string(), entry));
        while self.changes > MEMORY_LOG_CHANGES {
            let Some((_, old)) = self.entries.pop_front() else { break };
            self.changes -= old.changes.len();
            self.dropped_through = old.revision;
        }
    }
}

/// Change-log entries read per query when catching up.
const CATCH_UP_PAGE: usize = 1000;

/// The changes of a change-log entry (as the service wrote them).
fn decode_ops(tenant: &str, c: &crate::store::Change) -> Result<Vec<Change>, StoreError> {
    c.ops
        .iter()
        .map(decode_op)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| StoreError::Corrupt { key: format!("tenant `{tenant}` change {}", c.revision), reason })
}

/// Most changes one batch may carry (API requests use a smaller limit).
pub const MAX_BATCH: usize = 5_000_000;

/// How many times [`Holdfast::write_with`] computes a batch again when
/// another replica committed to the tenant first.
pub const RMW_ATTEMPTS: usize = 8;

/// The state of one tenant.
///
/// Its fields are private to the service: callers read it through the
/// accessors below on a snapshot ([`Tenant::read`]) and change it only
/// through [`Holdfast::write_with`] (or [`Holdfast::write`]).
#[derive(Debug, Default)]
pub struct TenantState {
    facts: FactBase,
    /// Declared objects and their attributes (roles, applications, users...).
    objects: BTreeMap<ObjectRef, serde_json::Value>,
    suspensions: BTreeMap<ObjectRef, Suspension>,
    /// Access tokens and application client credentials.
    tokens: TokenIndex,
    /// SCIM bearer tokens of identity providers ([`scim_tokens`]).
    scim_tokens: scim_tokens::ScimTokenIndex,
    /// OIDC identity providers and what their syncs own ([`identity`]).
    identity: identity::IdentityIndex,
    /// The OAuth authorization server's records ([`oauth_as`]).
    oauth: oauth_as::OAuthIndex,
    /// Revision of the last write applied to this tenant.
    revision: u64,
}

impl TenantState {
    pub fn new(limits: Limits) -> Self {
        TenantState { facts: FactBase::new(limits), ..Default::default() }
    }

    /// The fact base the queries read (derived views are cached inside).
    pub fn facts(&self) -> &FactBase {
        &self.facts
    }

    /// The attributes of a declared object.
    pub fn object(&self, o: &ObjectRef) -> Option<&serde_json::Value> {
        self.objects.get(o)
    }

    /// Every declared object with its attributes, sorted.
    pub fn objects(&self) -> impl Iterator<Item = (&ObjectRef, &serde_json::Value)> {
        self.objects.iter()
    }

    /// The suspension of a subject, if it is suspended.
    pub fn suspension(&self, s: &ObjectRef) -> Option<&Suspension> {
        self.suspensions.get(s)
    }

    pub fn is_suspended(&self, s: &ObjectRef) -> bool {
        self.suspensions.contains_key(s)
    }

    /// Every suspension, sorted by subject.
    pub fn suspensions(&self) -> impl Iterator<Item = (&ObjectRef, &Suspension)> {
        self.suspensions.iter()
    }

    /// Access tokens and application client credentials.
    pub fn tokens(&self) -> &TokenIndex {
        &self.tokens
    }

    /// The OAuth authorization server's records.
    pub fn oauth(&self) -> &oauth_as::OAuthIndex {
        &self.oauth
    }

    /// SCIM bearer tokens.
    pub fn scim_tokens(&self) -> &scim_tokens::ScimTokenIndex {
        &self.scim_tokens
    }

    /// Revision of the last write applied to this tenant.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Does the tuple exist now?
    pub fn tuple_exists(&self, t: &Tuple) -> bool {
        let fb = &self.facts;
        match (t.object.ty, t.relation.as_str()) {
            (ObjectType::Group, "member") => match (fb.node_id(&t.object), fb.node_id(&t.subject)) {
                (Some(g), Some(m)) => fb.parents(m).contains(&g),
                _ => false,
            },
            (ObjectType::Role, "grants") => match (fb.role_id(&t.object.id), fb.scope_id(&t.subject.id)) {
                (Some(r), Some(x)) => fb.role_grants(r, x),
                _ => false,
            },
            (ObjectType::Application, "supports") => match (fb.app_id(&t.object.id), fb.scope_id(&t.subject.id)) {
                (Some(a), Some(x)) => fb.app_supports(a, x),
                _ => false,
            },
            _ => match (fb.resource_id(&t.object), fb.role_id(&t.relation), fb.node_id(&t.subject)) {
                (Some(a), Some(r), Some(s)) => fb.binding_id(s, r, a).is_some(),
                _ => false,
            },
        }
    }

    /// Every tuple, sorted by text, with a binding's conditions.
    pub fn tuples(&self) -> Vec<(Tuple, Option<Conditions>)> {
        let fb = &self.facts;
        let mut out = Vec::with_capacity(fb.tuple_count());
        let node = |n| ObjectRef::parse(fb.node_name(n)).ok();
        for kind in [crate::engine::NodeKind::Group] {
            for g in fb.nodes_of(kind) {
                for &m in fb.members(g) {
                    if let (Some(go), Some(mo)) = (node(g), node(m)) {
                        out.push((Tuple::new(go, "member", mo), None));
                    }
                }
            }
        }
        for r in fb.roles() {
            for &x in fb.role_scopes(r) {
                out.push((
                    Tuple::new(
                        ObjectRef::new(ObjectType::Role, fb.role_name(r)),
                        "grants",
                        ObjectRef::new(ObjectType::Scope, fb.scope_name(x)),
                    ),
                    None,
                ));
            }
        }
        for a in fb.apps() {
            for &x in fb.app_scopes(a) {
                out.push((
                    Tuple::new(
                        ObjectRef::new(ObjectType::Application, fb.app_name(a)),
                        "supports",
                        ObjectRef::new(ObjectType::Scope, fb.scope_name(x)),
                    ),
                    None,
                ));
            }
        }
        for b in fb.all_bindings() {
            if let Some(rec) = fb.binding(b) {
                let object = if rec.resource.is_tenant() {
                    ObjectRef::tenant()
                } else {
                    ObjectRef::new(ObjectType::Application, fb.app_name(rec.resource))
                };
                if let Some(s) = node(rec.subject) {
                    let c = (!rec.conditions.is_empty()).then(|| (*rec.conditions).clone());
                    out.push((Tuple::new(object, fb.role_name(rec.role), s), c));
                }
            }
        }
        out.sort_by_cached_key(|(t, _)| t.to_string());
        out
    }

    /// Applies one already-validated change to memory.
    fn apply(&mut self, c: &Change) {
        let fb = &mut self.facts;
        match c {
            Change::PutTuple(t, cond) => match (t.object.ty, t.relation.as_str()) {
                (ObjectType::Group, "member") => {
                    fb.set_member(&t.object, &t.subject, true);
                }
                (ObjectType::Role, "grants") => {
                    fb.set_grant(&t.object.id, &t.subject.id, true);
                }
                (ObjectType::Application, "supports") => {
                    fb.set_supports(&t.object.id, &t.subject.id, true);
                }
                _ => {
                    fb.put_binding(&t.object, &t.relation, &t.subject, cond.clone().unwrap_or_default());
                }
            },
            Change::DeleteTuple(t) => match (t.object.ty, t.relation.as_str()) {
                (ObjectType::Group, "member") => {
                    fb.set_member(&t.object, &t.subject, false);
                }
                (ObjectType::Role, "grants") => {
                    fb.set_grant(&t.object.id, &t.subject.id, false);
                }
                (ObjectType::Application, "supports") => {
                    fb.set_supports(&t.object.id, &t.subject.id, false);
                }
                _ => {
                    fb.remove_binding(&t.object, &t.relation, &t.subject);
                }
            },
            Change::PutObject(o, attrs) => {
                match o.ty {
                    ObjectType::Role if fb.role_id(&o.id).is_none() => {
                        fb.define_role(&o.id, &[]);
                    }
                    ObjectType::Application if fb.app_id(&o.id).is_none() => {
                        fb.define_app(&o.id, &[]);
                    }
                    ObjectType::User | ObjectType::Group | ObjectType::ServiceAccount => {
                        fb.declare_node(o, true);
                    }
                    _ => {}
                }
                self.objects.insert(o.clone(), attrs.clone());
            }
            Change::DeleteObject(o) => {
                match o.ty {
                    ObjectType::Role => {
                        fb.undefine_role(&o.id);
                    }
                    ObjectType::Application => {
                        fb.undefine_app(&o.id);
                    }
                    ObjectType::User | ObjectType::Group | ObjectType::ServiceAccount => {
                        fb.declare_node(o, false);
                    }
                    _ => {}
                }
                self.objects.remove(o);
            }
            Change::Suspend(o, s) => {
                fb.set_suspended(o, true);
                self.suspensions.insert(o.clone(), s.clone());
            }
            Change::Reactivate(o) => {
                fb.set_suspended(o, false);
                self.suspensions.remove(o);
            }
            Change::Token(c) => self.tokens.apply(c),
            Change::ScimToken(c) => self.scim_tokens.apply(c),
            Change::Identity(c) => self.identity.apply(c),
            Change::OAuth(c) => self.oauth.apply(c),
        }
    }

    /// Validates a batch against this state (changes earlier in the batch
    /// count for later ones), without applying anything.
    fn validate(&self, changes: &[Change], preconditions: &[Precondition]) -> Result<(), WriteError> {
        for p in preconditions {
            if self.tuple_exists(&p.tuple) != p.exists {
                return Err(WriteError::Precondition { tuple: p.tuple.to_string(), exists: p.exists });
            }
        }
        let fb = &self.facts;
        let mut roles: BTreeMap<&str, bool> = BTreeMap::new();
        let mut apps: BTreeMap<&str, bool> = BTreeMap::new();
        let mut deleted: std::collections::BTreeSet<String> = Default::default();
        for c in changes {
            match c {
                Change::PutObject(o, _) | Change::DeleteObject(o) => {
                    let put = matches!(c, Change::PutObject(..));
                    match o.ty {
                        ObjectType::Role => {
                            roles.insert(&o.id, put);
                        }
                        ObjectType::Application => {
                            apps.insert(&o.id, put);
                        }
                        ObjectType::User | ObjectType::Group | ObjectType::ServiceAccount => {}
                        _ => {
                            return Err(WriteError::BadObject(
                                o.to_string(),
                                "only roles, applications, users, groups and service accounts are objects".into(),
                            ))
                        }
                    }
                }
                Change::DeleteTuple(t) => {
                    deleted.insert(t.to_string());
                }
                _ => {}
            }
        }
        let role_ok = |r: &str| roles.get(r).copied().unwrap_or_else(|| fb.role_id(r).is_some());
        let app_ok = |a: &str| apps.get(a).copied().unwrap_or_else(|| fb.app_id(a).is_some());
        let schema = Schema::builtin();
        for c in changes {
            match c {
                Change::PutTuple(t, cond) => {
                    let kind = schema.validate(t, role_ok)?;
                    let missing_app = match kind {
                        TupleKind::Supports => !app_ok(&t.object.id),
                        TupleKind::Binding => t.object.ty == ObjectType::Application && !app_ok(&t.object.id),
                        _ => false,
                    };
                    if missing_app {
                        return Err(WriteError::UnknownApplication(t.to_string(), t.object.id.clone()));
                    }
                    if kind == TupleKind::Grant && !role_ok(&t.object.id) {
                        return Err(WriteError::UnknownRole(t.to_string(), t.object.id.clone()));
                    }
                    if cond.is_some() && kind != TupleKind::Binding {
                        return Err(WriteError::ConditionsOnNonBinding(t.to_string()));
                    }
                    if let Some(c) = cond {
                        c.validate().map_err(|e| WriteError::InvalidConditions { tuple: t.to_string(), error: e })?;
                    }
                }
                // Deleting a tuple that names a role no longer defined is
                // harmless (it cannot exist); only its shape is checked.
                Change::DeleteTuple(t) => {
                    schema.validate(t, |_| true)?;
                }
                Change::Identity(c) => c.validate()?,
                Change::DeleteObject(o) if matches!(o.ty, ObjectType::Role | ObjectType::Application) => {
                    let left = self.bindings_using(o).into_iter().filter(|b| !deleted.contains(b)).count();
                    if left > 0 {
                        let what = if o.ty == ObjectType::Role { "role" } else { "application" };
                        return Err(WriteError::InUse(what, o.id.clone(), left));
                    }
                }
                Change::Suspend(o, _) | Change::Reactivate(o)
                    if !matches!(o.ty, ObjectType::User | ObjectType::ServiceAccount) =>
                {
                    return Err(WriteError::BadObject(
                        o.to_string(),
                        "only users and service accounts can be suspended".into(),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Texts of the bindings that name a role or an application.
    fn bindings_using(&self, o: &ObjectRef) -> Vec<String> {
        let fb = &self.facts;
        let ids: Vec<_> = match o.ty {
            ObjectType::Role => match fb.role_id(&o.id) {
                Some(r) => {
                    fb.all_bindings().into_iter().filter(|&b| fb.binding(b).is_some_and(|rec| rec.role == r)).collect()
                }
                None => vec![],
            },
            ObjectType::Application => fb.app_id(&o.id).map_or(vec![], |a| fb.bindings_of_resource(a).to_vec()),
            _ => vec![],
        };
        ids.into_iter().map(|b| fb.binding_text(b)).collect()
    }
}

/// One tenant behind its lock.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    state: RwLock<TenantState>,
}

impl Tenant {
    pub fn read(&self) -> RwLockReadGuard<'_, TenantState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, TenantState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// All tenants, and the datastore behind them (none: memory only).
pub struct Holdfast {
    store: Option<Arc<dyn Datastore>>,
    tenants: RwLock<BTreeMap<String, Arc<Tenant>>>,
    revision: AtomicU64,
    limits: Limits,
    /// Client id → tenant, for callers that authenticate with client
    /// credentials alone (token introspection and revocation).
    clients: RwLock<HashMap<String, String>>,
    /// The change feed of a memory-only instance (with a store, the store's
    /// change log is the feed).
    memory_log: std::sync::Mutex<MemoryLog>,
    /// Key sets of identity providers with a `jwks_uri` ([`identity`]).
    jwks: identity::JwksCache,
    /// Following a shared datastore ([`tail`]).
    replication: tail::Replication,
}

impl Holdfast {
    /// A memory-only instance (policy files evaluated by the CLI, tests).
    pub fn in_memory() -> Self {
        Holdfast {
            store: None,
            tenants: RwLock::default(),
            revision: AtomicU64::new(0),
            limits: Limits::default(),
            clients: RwLock::default(),
            memory_log: Default::default(),
            jwks: Default::default(),
            replication: Default::default(),
        }
    }

    /// A memory-only instance whose tenants evaluate under `limits`.
    pub fn in_memory_with_limits(limits: Limits) -> Self {
        Holdfast { limits, ..Holdfast::in_memory() }
    }

    /// Opens the embedded store in `dir` and rebuilds every tenant's indexes from it.
    pub fn open(dir: &Path, durability: Durability) -> Result<Self, ServiceError> {
        let store = Store::open(dir, durability)?;
        Holdfast::with_datastore(Arc::new(store), None)
    }

    /// Rebuilds the indexes of every tenant (of `only` these, if given)
    /// from `store`, read at one consistent revision ([`Datastore::load`]).
    pub fn with_datastore(store: Arc<dyn Datastore>, only: Option<&[String]>) -> Result<Self, ServiceError> {
        let snapshot = store.load(only)?;
        let mut hf = Holdfast { revision: AtomicU64::new(snapshot.revision), ..Holdfast::in_memory() };
        hf.replication.only = only.map(|o| o.iter().cloned().collect());
        let mut by_tenant: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for (tenant, key, value) in snapshot.records {
            let change = decode_record(&key, &value).map_err(|reason| ServiceError::Corrupt {
                tenant: tenant.clone(),
                key: key.clone(),
                reason,
            })?;
            by_tenant.entry(tenant).or_default().push(change);
        }
        {
            let mut tenants = hf.tenants.write().unwrap_or_else(|p| p.into_inner());
            let mut clients = hf.clients.write().unwrap_or_else(|p| p.into_inner());
            for (name, changes) in by_tenant {
                let mut st = TenantState::new(hf.limits);
                for c in records::load_order(changes) {
                    if let Change::Token(TokenChange::PutClient(r)) = &c {
                        clients.insert(r.client_id.clone(), name.clone());
                    }
                    st.apply(&c);
                }
                // The tenant's own last revision: what a commit expects to
                // find still there ([`Commit::expect_head`]).
                st.revision = snapshot.heads.get(&name).copied().unwrap_or(snapshot.revision);
                tenants.insert(name.clone(), Arc::new(Tenant { name, state: RwLock::new(st) }));
            }
        }
        Ok(Holdfast { store: Some(store), ..hf })
    }

    /// The datastore behind this instance (none: memory only).
    pub fn datastore(&self) -> Option<&Arc<dyn Datastore>> {
        self.store.as_ref()
    }

    /// The last revision applied (global across tenants).
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// The names of every tenant, sorted.
    pub fn tenant_names(&self) -> Vec<String> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    fn tenant_or_create(&self, name: &str) -> Arc<Tenant> {
        if let Some(t) = self.tenant(name) {
            return t;
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        tenants
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Tenant { name: name.to_string(), state: RwLock::new(TenantState::new(self.limits)) })
            })
            .clone()
    }

    /// Validates and applies a batch atomically: all of it or nothing.
    /// Returns the revision the batch produced. A blind write: for a change
    /// computed from the current state, use [`Holdfast::write_with`].
    pub fn write(
        &self,
        tenant: &str,
        changes: Vec<Change>,
        preconditions: &[Precondition],
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, WriteError> {
        if changes.len() + preconditions.len() > MAX_BATCH {
            return Err(WriteError::TooLarge(changes.len() + preconditions.len(), MAX_BATCH));
        }
        if !self.serves(tenant) {
            return Err(WriteError::NotServed(tenant.to_string()));
        }
        let t = self.tenant_or_create(tenant);
        let mut st = t.write();
        if !self.is_shared() {
            return self.commit_locked(tenant, &mut st, &changes, preconditions, actor, at_unix_ms);
        }
        // A blind write is the same batch whatever else committed first:
        // validated inside the commit against the tenant's latest state.
        self.catch_up_locked(tenant, &mut st)?;
        let revision = self.commit_shared_locked(tenant, &mut st, &changes, preconditions, actor, at_unix_ms)?;
        drop(st);
        self.after_commit(revision);
        Ok(revision)
    }

    /// A read-modify-write as one batch — the one door for every change
    /// computed from the current state: `f` computes the changes from the
    /// tenant's state under its write lock (nothing can change in between);
    /// they are validated and committed like [`Holdfast::write`]. When `f`
    /// answers no changes, nothing is committed (`None`).
    ///
    /// With a shared datastore another replica may commit to the tenant
    /// between the catch-up and this commit; the datastore then refuses the
    /// batch (nothing written), and `f` runs again on the caught-up state,
    /// up to [`RMW_ATTEMPTS`] times, so a read-modify-write from any replica
    /// is computed from the state it lands on.
    pub fn write_with<T, E: From<WriteError>>(
        &self,
        tenant: &str,
        actor: &str,
        at_unix_ms: u64,
        mut f: impl FnMut(&TenantState) -> Result<(Vec<Change>, T), E>,
    ) -> Result<(Option<u64>, T), E> {
        if !self.serves(tenant) {
            return Err(WriteError::NotServed(tenant.to_string()).into());
        }
        let t = self.tenant_or_create(tenant);
        let mut st = t.write();
        let mut attempt = 1;
        loop {
            self.catch_up_locked(tenant, &mut st).map_err(|e| E::from(WriteError::from(e)))?;
            let (changes, out) = f(&st)?;
            if changes.is_empty() {
                return Ok((None, out));
            }
            if changes.len() > MAX_BATCH {
                return Err(WriteError::TooLarge(changes.len(), MAX_BATCH).into());
            }
            match self.commit_locked(tenant, &mut st, &changes, &[], actor, at_unix_ms) {
                Ok(revision) => {
                    drop(st);
                    self.after_commit(revision);
                    return Ok((Some(revision), out));
                }
                Err(WriteError::Store(StoreError::Conflict { .. })) if attempt < RMW_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes token and credential changes of an existing tenant atomically
    /// (one batch, one revision, like every other change).
    pub fn write_tokens(
        &self,
        tenant: &str,
        changes: Vec<TokenChange>,
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, WriteError> {
        if self.tenant(tenant).is_none() {
            return Err(WriteError::BadObject(format!("tenant:{tenant}"), "unknown tenant".into()));
        }
        self.write(tenant, changes.into_iter().map(Change::Token).collect(), &[], actor, at_unix_ms)
    }

    /// The one commit path: validates, commits and applies a batch under
    /// the tenant's write lock (the store assigns its revision; memory is
    /// changed only after the store accepted the whole batch).
    fn commit_locked(
        &self,
        tenant: &str,
        st: &mut TenantState,
        changes: &[Change],
        preconditions: &[Precondition],
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, WriteError> {
        st.validate(changes, preconditions)?;
        let revision = match &self.store {
            Some(store) => {
                let ops: Vec<_> = changes.iter().map(encode_change).collect();
                // With other writers, the state validated above must still
                // be the tenant's state inside the commit.
                let expect_head = store.shared().then_some(st.revision);
                store
                    .commit(&Commit { tenant, actor, at_unix_ms, ops: &ops, expect_head })
                    .inspect_err(|e| self.note_store_error(e))?
            }
            None => {
                let revision = self.revision.load(Ordering::Acquire) + 1;
                self.memory_log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(tenant, revision, at_unix_ms, actor, changes);
                revision
            }
        };
        self.apply_locked(tenant, st, changes, revision);
        Ok(revision)
    }

    /// Applies a committed batch to a tenant's memory (and the client index).
    fn apply_locked(&self, tenant: &str, st: &mut TenantState, changes: &[Change], revision: u64) {
        if changes.iter().any(|c| matches!(c, Change::Token(_))) {
            let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
            for c in changes {
                match c {
                    Change::Token(TokenChange::PutClient(r)) => {
                        clients.insert(r.client_id.clone(), tenant.to_string());
                    }
                    Change::Token(TokenChange::DeleteClient(id)) => {
                        clients.remove(id);
                    }
                    _ => {}
                }
            }
        }
        for c in changes {
            st.apply(c);
        }
        st.revision = revision;
        // With other writers the watermark is the tail's ([`tail`]): this
        // replica may not have applied every lower revision yet.
        if !self.is_shared() {
            self.revision.fetch_max(revision, Ordering::AcqRel);
        }
    }

    /// With a shared datastore, applies what other writers committed to
    /// `tenant` since this instance last saw it (under the tenant's write
    /// lock, so a batch is computed from the tenant's latest state).
    fn catch_up_locked(&self, tenant: &str, st: &mut TenantState) -> Result<(), StoreError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(());
        };
        loop {
            let batch =
                store.tenant_changes(tenant, st.revision, CATCH_UP_PAGE).inspect_err(|e| self.note_store_error(e))?;
            let Some(last) = batch.last().map(|c| c.revision) else {
                return Ok(());
            };
            for c in batch {
                let changes = decode_ops(tenant, &c)?;
                self.apply_locked(tenant, st, &changes, c.revision);
            }
            debug_assert_eq!(last, st.revision);
        }
    }

    /// The batches committed to `tenant` after revision `since`, oldest
    /// first, at most `limit` of them: the change feed, with or without a
    /// store.
    pub fn changes(&self, tenant: &str, since: u64, limit: usize) -> Result<Vec<ChangeEntry>, ServiceError> {
        let Some(store) = &self.store else {
            let log = self.memory_log.lock().unwrap_or_else(|p| p.into_inner());
            if since < log.dropped_through {
                return Err(ServiceError::ChangesTruncated { since, oldest: log.dropped_through });
            }
            return Ok(log
                .entries
                .iter()
                .filter(|(t, e)| t == tenant && e.revision > since)
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect());
        };
        store
            .tenant_changes(tenant, since, limit)
            .map_err(|e| match e {
                StoreError::Pruned { since, horizon } => ServiceError::ChangesTruncated { since, oldest: horizon },
                other => ServiceError::Store(other),
            })?
            .into_iter()
            .map(|c| {
                let changes = decode_ops(tenant, &c).map_err(|e| match e {
                    StoreError::Corrupt { key, reason } => {
                        ServiceError::Corrupt { tenant: tenant.to_string(), key, reason }
                    }
                    other => ServiceError::Store(other),
                })?;
                Ok(ChangeEntry { revision: c.revision, at_unix_ms: c.at_unix_ms, actor: c.actor, changes })
            })
            .collect()
    }

    /// The tenant a client id belongs to.
    pub fn client_tenant(&self, client_id: &str) -> Option<Arc<Tenant>> {
        let name = self.clients.read().unwrap_or_else(|p| p.into_inner()).get(client_id).cloned()?;
        self.tenant(&name)
    }

    /// Flushes the store (clean shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.store {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}
