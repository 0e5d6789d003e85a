//! The translation of a Holdfast policy file into a Cedar model.
//!
//! What maps to what (the README has the same table):
//!
//! - users, service accounts and groups are entities (`User`, `ServiceAccount`,
//!   `Group`); a membership `group:g#member@X` makes `Group::"g"` a parent of
//!   `X`, so Cedar's transitive `in` is Holdfast's nested membership;
//! - applications are resources (`App::"deploy-mcp"`);
//! - scopes are **actions** (`Action::"deploy:prod"`): a scope is what the
//!   caller wants to do, it is what the request names, and actions are the
//!   part of a Cedar request that policies list (`action in [...]`) and that
//!   the schema types. An attribute would push the scope into `context` and
//!   every policy into a `when` clause;
//! - a binding's scopes are fixed when the policy is written: the scopes its
//!   role grants that its application supports. A tenant-wide binding gives
//!   one policy per application that supports some of them (the same
//!   intersection Holdfast's rules compute for every application);
//! - conditions become `when` clauses over `context` (`now` and the MFA
//!   `auth_time` in epoch seconds, `ip` an `ipaddr`); missing context never
//!   satisfies one (`context has mfa && ...`), as in Holdfast;
//! - a suspended subject is denied by one `forbid` on `principal.suspended`
//!   (policy files cannot suspend anyone, so no entity sets it here);
//! - Cedar refuses cycles in the entity hierarchy, while Holdfast's groups may
//!   nest in cycles (the members of each are members of all). Each cycle
//!   (strongly connected component) becomes one `GroupCycle` entity: its
//!   groups are its children, it takes their outside parents, and a binding
//!   on any group of the cycle is attached to it.
//!
//! Two shapes of policy set:
//!
//! - [`ModelKind::Rbac`], Cedar's documented role pattern ("roles as groups"):
//!   each distinct (role, application or tenant, conditions) is a `Grant`
//!   entity with one policy, `permit (principal in Grant::"role3@app3", action
//!   in [...], resource == App::"app3")`; a binding makes its subject a member
//!   of that `Grant`. The policy count is bounded by roles × applications ×
//!   condition variants, not by bindings;
//! - [`ModelKind::PerBinding`]: one policy per binding naming its subject
//!   (`principal in Group::"eng"` / `principal == User::"alice"`). Cedar
//!   evaluates every policy of the set on each request, so this one is linear
//!   in the number of bindings: measured to show why the first is the fair one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Schema, ValidationMode, Validator,
};
use holdfast::model::{Conditions, ObjectRef, ObjectType};
use holdfast::service::Change;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// Roles as groups: one `Grant` entity and policy per (role, resource, conditions).
    Rbac,
    /// The rbac model, its policies sliced by resource: one `PolicySet` per
    /// application, picked by the request's resource before authorizing.
    RbacSliced,
    /// One policy per binding.
    PerBinding,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Rbac => "rbac (roles as groups)",
            ModelKind::RbacSliced => "rbac, sliced per application",
            ModelKind::PerBinding => "one policy per binding",
        }
    }
}

/// Entity type names, parsed once (a request needs them per check).
#[derive(Clone)]
pub struct Types {
    pub user: EntityTypeName,
    pub service_account: EntityTypeName,
    pub group: EntityTypeName,
    pub group_cycle: EntityTypeName,
    pub grant: EntityTypeName,
    pub app: EntityTypeName,
    pub action: EntityTypeName,
}

impl Types {
    pub fn new() -> Types {
        let t = |s: &str| EntityTypeName::from_str(s).expect("a valid entity type name");
        Types {
            user: t("User"),
            service_account: t("ServiceAccount"),
            group: t("Group"),
            group_cycle: t("GroupCycle"),
            grant: t("Grant"),
            app: t("App"),
            action: t("Action"),
        }
    }

    pub fn uid(&self, ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    /// The entity of a Holdfast subject reference (`user:alice`).
    pub fn subject(&self, r: &ObjectRef) -> Option<EntityUid> {
        let ty = match r.ty {
            ObjectType::User => &self.user,
            ObjectType::ServiceAccount => &self.service_account,
            ObjectType::Group => &self.group,
            _ => return None,
        };
        Some(self.uid(ty, &r.id))
    }
}

/// A Cedar policy set and entity store equivalent to one Holdfast policy.
pub struct CedarModel {
    pub policies: PolicySet,
    /// Sliced kinds: the policies of each application (and the `forbid`).
    pub slices: Option<HashMap<String, PolicySet>>,
    /// The `forbid` alone: what an unknown application is asked against.
    pub fallback: PolicySet,
    pub entities: Entities,
    /// `permit` policies plus the one `forbid`.
    pub policy_count: usize,
    pub entity_count: usize,
    /// `Grant` entities (rbac only).
    pub grants: usize,
    /// Group cycles condensed into `GroupCycle` entities.
    pub cycles: usize,
    /// Bindings after collapsing repeats of (subject, role, resource).
    pub bindings: usize,
    /// The first policies, for the README and for eyeballing.
    pub sample: String,
    /// Strict validation of the policy set against the schema, if run.
    pub validation: Option<Result<(), String>>,
    pub build_secs: f64,
    /// Of which the strict validation.
    pub validate_secs: f64,
}

impl CedarModel {
    /// The policy set a request on `app` is authorized against.
    pub fn policies_for(&self, app: &str) -> &PolicySet {
        match &self.slices {
            Some(s) => s.get(app).unwrap_or(&self.fallback),
            None => &self.policies,
        }
    }
}

/// A binding as Holdfast keeps it: one per (subject, role, resource), the
/// last one written wins (`FactBase::put_binding` replaces conditions).
struct Binding<'a> {
    subject: &'a ObjectRef,
    role: &'a str,
    app: Option<&'a str>,
    conditions: Conditions,
}

/// The tenant the changes describe: what both engines are given.
#[derive(Default)]
pub struct Tenant<'a> {
    supports: BTreeMap<&'a str, BTreeSet<&'a str>>,
    grants: HashMap<&'a str, BTreeSet<&'a str>>,
    /// Every user, service account and group, declared or referenced.
    subjects: BTreeSet<&'a ObjectRef>,
    /// (group, member), in order.
    members: Vec<(&'a str, &'a ObjectRef)>,
    bindings: Vec<Binding<'a>>,
    /// Bindings as written, before collapsing repeats.
    pub bindings_written: usize,
}

impl<'a> Tenant<'a> {
    /// Reads the changes that load a tenant (`policy::to_changes` of a
    /// file, or `workload::generate`): the same list Holdfast is loaded from.
    pub fn from_changes(changes: &'a [Change]) -> Tenant<'a> {
        let mut t = Tenant::default();
        let mut index: HashMap<(&ObjectRef, &str, Option<&str>), usize> = HashMap::new();
        for c in changes {
            match c {
                Change::PutObject(o, _) => match o.ty {
                    ObjectType::Application => {
                        t.supports.entry(o.id.as_str()).or_default();
                    }
                    ObjectType::Role => {
                        t.grants.entry(o.id.as_str()).or_default();
                    }
                    ObjectType::User | ObjectType::Group | ObjectType::ServiceAccount => {
                        t.subjects.insert(o);
                    }
                    _ => {}
                },
                Change::PutTuple(tp, cond) => match (tp.object.ty, tp.relation.as_str()) {
                    (ObjectType::Application, "supports") => {
                        t.supports.entry(tp.object.id.as_str()).or_default().insert(tp.subject.id.as_str());
                    }
                    (ObjectType::Role, "grants") => {
                        t.grants.entry(tp.object.id.as_str()).or_default().insert(tp.subject.id.as_str());
                    }
                    (ObjectType::Group, "member") => {
                        t.subjects.insert(&tp.object);
                        t.subjects.insert(&tp.subject);
                        t.members.push((tp.object.id.as_str(), &tp.subject));
                    }
                    (ObjectType::Application | ObjectType::Tenant, role) => {
                        t.subjects.insert(&tp.subject);
                        t.bindings_written += 1;
                        let app = (tp.object.ty == ObjectType::Application).then_some(tp.object.id.as_str());
                        let conditions = cond.clone().filter(|c| !c.is_empty()).unwrap_or_default();
                        match index.get(&(&tp.subject, role, app)) {
                            Some(&i) => t.bindings[i].conditions = conditions,
                            None => {
                                index.insert((&tp.subject, role, app), t.bindings.len());
                                t.bindings.push(Binding { subject: &tp.subject, role, app, conditions });
                            }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        t
    }

    /// `users, groups, service accounts, bindings (distinct), with
    /// conditions, tenant-wide, applications, roles`.
    pub fn summary(&self) -> String {
        let count = |ty| self.subjects.iter().filter(|r| r.ty == ty).count();
        format!(
            "{} users, {} groups, {} service accounts, {} bindings ({} distinct; {} with conditions, {} tenant-wide), {} applications, {} roles",
            count(ObjectType::User),
            count(ObjectType::Group),
            count(ObjectType::ServiceAccount),
            self.bindings_written,
            self.bindings.len(),
            self.bindings.iter().filter(|b| !b.conditions.is_empty()).count(),
            self.bindings.iter().filter(|b| b.app.is_none()).count(),
            self.supports.len(),
            self.grants.len()
        )
    }
}

/// The `when` clause of a binding's conditions (`None`: unconditional).
pub fn when_clause(c: &Conditions) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(t) = c.not_before {
        parts.push(format!("context.now >= {}", t.0));
    }
    if let Some(t) = c.expires_at {
        parts.push(format!("context.now < {}", t.0));
    }
    if let Some(ip) = &c.ip {
        let any: Vec<String> = ip.allow.iter().map(|n| format!("context.ip.isInRange(ip(\"{n}\"))")).collect();
        let any = if any.is_empty() { "false".to_string() } else { any.join(" || ") };
        parts.push(format!("(context has ip && ({any}))"));
    }
    if let Some(m) = c.mfa.as_ref().filter(|m| m.required) {
        let mut s = "context has mfa && context.mfa.present".to_string();
        if let Some(max) = m.max_age {
            let _ = write!(
                s,
                " && context.mfa has auth_time && context.mfa.auth_time <= context.now \
                 && context.now - context.mfa.auth_time <= {}",
                max.as_secs()
            );
        }
        parts.push(format!("({s})"));
    }
    (!parts.is_empty()).then(|| parts.join(" && "))
}

/// Strongly connected components of the group graph (edges member → group)
/// with more than one group: Tarjan's algorithm, iterative.
fn group_cycles(nodes: &[String], up: &HashMap<&str, Vec<&str>>) -> Vec<Vec<String>> {
    let idx: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| up.get(n.as_str()).map_or(vec![], |ps| ps.iter().filter_map(|p| idx.get(p).copied()).collect()))
        .collect();
    let n = nodes.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut out, mut next) = (Vec::new(), Vec::new(), 0);
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on[root] = true;
        while let Some(&mut (v, ref mut i)) = call.last_mut() {
            if let Some(&w) = adj[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on[w] = true;
                    call.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on[w] = false;
                        comp.push(nodes[w].clone());
                        if w == v {
                            break;
                        }
                    }
                    if comp.len() > 1 {
                        comp.sort();
                        out.push(comp);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

/// The Cedar schema of the model (every kind), with every scope an action.
pub fn schema_text(t: &Tenant) -> String {
    let actions: BTreeSet<&str> = t.supports.values().flatten().copied().collect();
    let list: Vec<String> = actions.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "entity Grant, App;\n\
         entity Group, GroupCycle in [Group, GroupCycle, Grant];\n\
         entity User, ServiceAccount in [Group, GroupCycle, Grant] {{ suspended?: Bool }};\n\
         type Ctx = {{ now: Long, mfa?: {{ present: Bool, auth_time?: Long }}, ip?: ipaddr }};\n\
         action {} appliesTo {{ principal: [User, ServiceAccount, Group, GroupCycle], resource: [App], context: Ctx }};\n",
        if list.is_empty() { "\"none\"".to_string() } else { list.join(", ") }
    )
}

/// Builds the Cedar model of tenant `t`. `validate`: run Cedar's strict
/// validator over the policy set (once; not on the request path).
pub fn build(t: &Tenant, kind: ModelKind, validate: bool) -> Result<CedarModel, String> {
    let t0 = std::time::Instant::now();
    let ty = Types::new();
    let supports = &t.supports;
    let grants = &t.grants;

    // Membership: parents of every subject.
    let mut parents: HashMap<EntityUid, HashSet<EntityUid>> = HashMap::new();
    let mut up: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut group_ids: Vec<String> = Vec::new();
    for r in &t.subjects {
        parents.entry(ty.subject(r).ok_or_else(|| format!("`{r}` is not a subject"))?).or_default();
        if r.ty == ObjectType::Group {
            group_ids.push(r.id.clone());
        }
    }
    for &(g, m) in &t.members {
        if m.ty == ObjectType::Group {
            if m.id != g {
                up.entry(m.id.as_str()).or_default().push(g);
            }
            continue;
        }
        let uid = ty.subject(m).ok_or_else(|| format!("`{m}` is not a subject"))?;
        parents.entry(uid).or_default().insert(ty.uid(&ty.group, g));
    }
    // Groups: condense cycles, then the acyclic parent edges.
    let cycles = group_cycles(&group_ids, &up);
    let mut cycle_of: HashMap<&str, usize> = HashMap::new();
    for (k, c) in cycles.iter().enumerate() {
        for g in c {
            cycle_of.insert(g.as_str(), k);
        }
    }
    for (k, c) in cycles.iter().enumerate() {
        let node = ty.uid(&ty.group_cycle, &format!("cycle{k}"));
        let mut outside = HashSet::new();
        for g in c {
            parents.entry(ty.uid(&ty.group, g)).or_default().insert(node.clone());
            for p in up.get(g.as_str()).into_iter().flatten() {
                if cycle_of.get(p) != Some(&k) {
                    outside.insert(ty.uid(&ty.group, p));
                }
            }
        }
        parents.entry(node).or_default().extend(outside);
    }
    for (g, ps) in &up {
        if cycle_of.contains_key(g) {
            continue;
        }
        let e = parents.entry(ty.uid(&ty.group, g)).or_default();
        e.extend(ps.iter().map(|p| ty.uid(&ty.group, p)));
    }
    // The node a binding on a subject attaches to.
    let target = |r: &ObjectRef| -> Result<EntityUid, String> {
        if r.ty == ObjectType::Group {
            if let Some(&k) = cycle_of.get(r.id.as_str()) {
                return Ok(ty.uid(&ty.group_cycle, &format!("cycle{k}")));
            }
        }
        ty.subject(r).ok_or_else(|| format!("`{r}` is not a subject"))
    };

    let bindings = &t.bindings;
    let mut by_app: BTreeMap<&str, String> = BTreeMap::new();
    let mut count = 0usize;
    // One permit per application the binding's scopes reach.
    let mut permits = |principal: &str, role: &str, app: Option<&str>, when: &Option<String>| {
        let empty = BTreeSet::new();
        let granted = grants.get(role).unwrap_or(&empty);
        let apps: Vec<&str> = match app {
            Some(a) => vec![a],
            None => supports.keys().copied().collect(),
        };
        for a in apps {
            let Some((&a, sup)) = supports.get_key_value(a) else { continue };
            let scopes: Vec<String> =
                granted.intersection(sup).map(|x| format!("{}::{x:?}", ty.action)).collect();
            if scopes.is_empty() {
                continue;
            }
            let text = by_app.entry(a).or_default();
            let _ = write!(text, "permit (principal {principal}, action in [{}], resource == App::{a:?})", scopes.join(", "));
            match when {
                Some(w) => {
                    let _ = writeln!(text, "\nwhen {{ {w} }};");
                }
                None => text.push_str(";\n"),
            }
            count += 1;
        }
    };
    let mut grant_count = 0;
    match kind {
        ModelKind::Rbac | ModelKind::RbacSliced => {
            // (role, app, conditions) → grant; conditions compared by value.
            let mut variants: Vec<Conditions> = vec![Conditions::default()];
            let mut grant_ids: BTreeMap<(String, Option<String>, usize), String> = BTreeMap::new();
            for b in bindings {
                let v = match variants.iter().position(|c| *c == b.conditions) {
                    Some(v) => v,
                    None => {
                        variants.push(b.conditions.clone());
                        variants.len() - 1
                    }
                };
                let key = (b.role.to_string(), b.app.map(str::to_string), v);
                let id = grant_ids
                    .entry(key)
                    .or_insert_with(|| {
                        let on = b.app.unwrap_or("tenant");
                        if v == 0 {
                            format!("{}@{on}", b.role)
                        } else {
                            format!("{}@{on}#c{v}", b.role)
                        }
                    })
                    .clone();
                parents.entry(target(b.subject)?).or_default().insert(ty.uid(&ty.grant, &id));
            }
            for ((role, app, v), id) in &grant_ids {
                parents.entry(ty.uid(&ty.grant, id)).or_default();
                permits(&format!("in Grant::{id:?}"), role, app.as_deref(), &when_clause(&variants[*v]));
            }
            grant_count = grant_ids.len();
        }
        ModelKind::PerBinding => {
            for b in bindings {
                let p = target(b.subject)?;
                let principal =
                    if b.subject.ty == ObjectType::Group { format!("in {p}") } else { format!("== {p}") };
                permits(&principal, b.role, b.app, &when_clause(&b.conditions));
            }
        }
    }
    const FORBID: &str = "forbid (principal, action, resource) when { principal has suspended && principal.suspended };\n";
    let mut text: String = by_app.values().map(String::as_str).collect();
    text.push_str(FORBID);
    count += 1;
    let parse = |t: &str| PolicySet::from_str(t).map_err(|e| format!("cedar policy set: {e}"));
    let slices = match kind {
        ModelKind::RbacSliced => Some(
            by_app
                .iter()
                .map(|(a, t)| Ok((a.to_string(), parse(&format!("{t}{FORBID}"))?)))
                .collect::<Result<HashMap<_, _>, String>>()?,
        ),
        _ => None,
    };
    drop(by_app);
    let fallback = parse(FORBID)?;
    for a in supports.keys() {
        parents.entry(ty.uid(&ty.app, a)).or_default();
    }
    let sample: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
    let policies = parse(&text)?;
    drop(text);
    // The strict validator type-checks every policy for every action it
    // names: minutes for 50k+ policies. Past 20k the rbac model, whose
    // policies have the same shapes, stands for it.
    let tv = std::time::Instant::now();
    let validation = if validate && count <= 20_000 {
        let (schema, _) = Schema::from_cedarschema_str(&schema_text(t)).map_err(|e| format!("cedar schema: {e}"))?;
        let r = Validator::new(schema).validate(&policies, ValidationMode::Strict);
        Some(if r.validation_passed() {
            Ok(())
        } else {
            Err(r.validation_errors().take(3).map(|e| e.to_string()).collect::<Vec<_>>().join("; "))
        })
    } else {
        None
    };
    let validate_secs = tv.elapsed().as_secs_f64();
    let entity_count = parents.len();
    let entities = Entities::from_entities(
        parents.into_iter().map(|(uid, ps)| Entity::new_no_attrs(uid, ps)),
        None,
    )
    .map_err(|e| format!("cedar entities: {e}"))?;
    Ok(CedarModel {
        policies,
        slices,
        fallback,
        entities,
        policy_count: count,
        entity_count,
        grants: grant_count,
        cycles: cycles.len(),
        bindings: bindings.len(),
        sample,
        validation,
        build_secs: t0.elapsed().as_secs_f64(),
        validate_secs,
    })
}
