//! Apply: the one batch that makes a tenant's state equal to a policy
//! file's, and the access diff it makes.
//!
//! The tenant's state is taken as changes ([`snapshot`]: declared objects,
//! tuples with a binding's conditions, suspensions) and compared, as sets,
//! with the changes that load the file ([`super::Policy::changes`]). The
//! batch ([`plan`]) deletes what the file no longer has and puts what is new
//! or changed, deletes first. What an apply manages:
//!
//! - **roles** (with their scopes), **applications** (with their
//!   `scopes_supported`) and **bindings** (with their conditions): exactly
//!   the file's — the others are deleted;
//! - **groups**: the file's are declared (attributes set); a group the file
//!   does not declare is deleted when no member is left in it after the
//!   apply (a group synced from a directory keeps its members, see below);
//! - **memberships**: the file's are added. Memberships the file does not
//!   list are deleted **only** in groups whose memberships the file owns
//!   (`owns: {memberships: true | [group ids]}`); elsewhere — groups synced
//!   from a directory, members added over the API — they are kept;
//! - **users and service accounts** are declared (the file's attributes
//!   set, other attributes kept) and never deleted;
//! - **identity providers**: the file's are put (created or changed); an
//!   apply never deletes one (delete it over the API, which also removes
//!   the memberships its syncs created);
//! - suspensions and tokens are not touched.
//!
//! Nothing here does I/O: [`plan`] is a function of two change lists, and
//! [`diff`] evaluates both states in memory with the engine, like
//! `holdfast diff`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::diff::{assertion_risks, diff_facts, Diff, DiffError, DiffOptions, Side};
use super::{instantiate_changes, Policy};
use crate::model::{Conditions, ObjectRef, ObjectType, Tuple};
use crate::service::identity::IdentityChange;
use crate::service::{Change, TenantState};

/// Counts of one apply's batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    pub objects_put: usize,
    pub objects_deleted: usize,
    pub tuples_put: usize,
    pub tuples_deleted: usize,
    /// Memberships not in the file, kept because the file does not own them.
    pub memberships_kept: usize,
}

/// The batch of an apply and the state it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Tuple deletes, object deletes, object puts, tuple puts, in that order.
    pub changes: Vec<Change>,
    /// The tenant's state after the batch, as changes (HEAD of the diff).
    pub after: Vec<Change>,
    pub summary: PlanSummary,
}

/// A tenant's state as the changes that would load it into an empty tenant:
/// objects (sorted), tuples (sorted by text, with conditions), suspensions.
pub fn snapshot(st: &TenantState) -> Vec<Change> {
    let mut out: Vec<Change> = st.objects().map(|(o, a)| Change::PutObject(o.clone(), a.clone())).collect();
    out.extend(st.tuples().into_iter().map(|(t, c)| Change::PutTuple(t, c)));
    out.extend(st.suspensions().map(|(o, s)| Change::Suspend(o.clone(), s.clone())));
    out.extend(
        st.identity()
            .providers()
            .map(|(n, p)| Change::Identity(IdentityChange::PutProvider(n.clone(), Box::new(p.clone())))),
    );
    out
}

/// Attributes as a map (anything else counts as none).
fn attrs_of(v: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Conditions with "none" written one way.
fn norm(c: &Option<Conditions>) -> Option<&Conditions> {
    c.as_ref().filter(|c| !c.is_empty())
}

/// The batch that makes `current` (a [`snapshot`]) equal to `policy`, with
/// the ownership rules of the module docs.
pub fn plan(current: &[Change], policy: &Policy) -> Plan {
    let mut cur_objects: BTreeMap<ObjectRef, serde_json::Value> = BTreeMap::new();
    let mut cur_tuples: BTreeMap<String, (Tuple, Option<Conditions>)> = BTreeMap::new();
    let mut suspensions = Vec::new();
    let mut cur_providers: BTreeMap<&str, &Change> = BTreeMap::new();
    for c in current {
        match c {
            Change::Identity(IdentityChange::PutProvider(n, _)) => {
                cur_providers.insert(n, c);
            }
            Change::PutObject(o, a) => {
                cur_objects.insert(o.clone(), a.clone());
            }
            Change::PutTuple(t, c) => {
                cur_tuples.insert(t.to_string(), (t.clone(), c.clone()));
            }
            s @ Change::Suspend(..) => suspensions.push(s.clone()),
            _ => {}
        }
    }
    let mut want_objects: BTreeMap<ObjectRef, serde_json::Value> = BTreeMap::new();
    let mut want_tuples: BTreeMap<String, (Tuple, Option<Conditions>)> = BTreeMap::new();
    for c in &policy.changes {
        match c {
            Change::PutObject(o, a) => {
                let attrs = match (o.ty, cur_objects.get(o)) {
                    // Users and service accounts: the file's attributes over the others.
                    (ObjectType::User | ObjectType::ServiceAccount, Some(cur)) => {
                        let mut m = attrs_of(cur);
                        m.extend(attrs_of(a));
                        serde_json::Value::Object(m)
                    }
                    _ => a.clone(),
                };
                want_objects.insert(o.clone(), attrs);
            }
            Change::PutTuple(t, c) => {
                want_tuples.insert(t.to_string(), (t.clone(), c.clone()));
            }
            _ => {}
        }
    }
    let owns = &policy.file.owns.memberships;
    let mut summary = PlanSummary::default();
    let mut deleted_tuples: BTreeSet<&str> = BTreeSet::new();
    let mut changes = Vec::new();
    for (text, (t, _)) in &cur_tuples {
        if want_tuples.contains_key(text) {
            continue;
        }
        let is_member = t.object.ty == ObjectType::Group && t.relation == "member";
        if is_member && !owns.owns(&t.object.id) {
            summary.memberships_kept += 1;
            continue;
        }
        deleted_tuples.insert(text);
        changes.push(Change::DeleteTuple(t.clone()));
    }
    // Groups with a member after the apply.
    let populated: BTreeSet<&str> = cur_tuples
        .iter()
        .filter(|(text, _)| !deleted_tuples.contains(text.as_str()))
        .map(|(_, (t, _))| t)
        .chain(want_tuples.values().map(|(t, _)| t))
        .filter(|t| t.object.ty == ObjectType::Group && t.relation == "member")
        .map(|t| t.object.id.as_str())
        .collect();
    let mut deleted_objects: BTreeSet<&ObjectRef> = BTreeSet::new();
    for o in cur_objects.keys() {
        if want_objects.contains_key(o) {
            continue;
        }
        let delete = match o.ty {
            ObjectType::Role | ObjectType::Application => true,
            ObjectType::Group => !populated.contains(o.id.as_str()),
            _ => false,
        };
        if delete {
            deleted_objects.insert(o);
            changes.push(Change::DeleteObject(o.clone()));
        }
    }
    let mut put_objects = Vec::new();
    for (o, a) in &want_objects {
        if cur_objects.get(o) != Some(a) {
            put_objects.push(o);
            changes.push(Change::PutObject(o.clone(), a.clone()));
        }
    }
    let mut put_tuples = Vec::new();
    for (text, (t, c)) in &want_tuples {
        let same = cur_tuples.get(text).is_some_and(|(_, cc)| norm(cc) == norm(c));
        if !same {
            put_tuples.push(text.as_str());
            changes.push(Change::PutTuple(t.clone(), norm(c).cloned()));
        }
    }
    summary.tuples_deleted = deleted_tuples.len();
    summary.objects_deleted = deleted_objects.len();
    summary.objects_put = put_objects.len();
    summary.tuples_put = put_tuples.len();

    // The state after: what is kept of `current`, then what is put.
    let mut after_objects = cur_objects.clone();
    after_objects.retain(|o, _| !deleted_objects.contains(o));
    for o in put_objects {
        if let Some(a) = want_objects.get(o) {
            after_objects.insert(o.clone(), a.clone());
        }
    }
    let mut after_tuples = cur_tuples.clone();
    after_tuples.retain(|text, _| !deleted_tuples.contains(text.as_str()));
    for text in put_tuples {
        if let Some((t, c)) = want_tuples.get(text) {
            after_tuples.insert(text.to_string(), (t.clone(), norm(c).cloned()));
        }
    }
    // Identity providers: the file's put when new or changed, none deleted.
    let mut after_providers: BTreeMap<&str, &Change> = cur_providers.clone();
    for c in &policy.changes {
        if let Change::Identity(IdentityChange::PutProvider(n, _)) = c {
            if cur_providers.get(n.as_str()) != Some(&c) {
                changes.push(c.clone());
                summary.objects_put += 1;
            }
            after_providers.insert(n, c);
        }
    }
    let mut after: Vec<Change> = after_objects.into_iter().map(|(o, a)| Change::PutObject(o, a)).collect();
    after.extend(after_tuples.into_values().map(|(t, c)| Change::PutTuple(t, c)));
    after.extend(suspensions);
    after.extend(after_providers.into_values().cloned());
    Plan { changes, after, summary }
}

/// The access diff of an apply: `current` (BASE, named `base_name`) against
/// the state after `plan` (HEAD, named after the file), both evaluated by
/// the engine in memory; the file's assertions are run on both.
pub fn diff(
    tenant: &str,
    base_name: &str,
    current: &[Change],
    plan: &Plan,
    policy: &Policy,
    opts: &DiffOptions,
) -> Result<Diff, DiffError> {
    let load = |changes: &[Change], file: &str| {
        let hf = instantiate_changes(tenant, changes)
            .map_err(|e| DiffError::Load { file: file.to_string(), message: e.to_string() })?;
        let t = hf
            .tenant(tenant)
            .ok_or_else(|| DiffError::Load { file: file.to_string(), message: "tenant missing".into() })?;
        Ok::<_, DiffError>((hf, t))
    };
    let (_bh, bt) = load(current, base_name)?;
    let (_hh, ht) = load(&plan.after, &policy.source)?;
    let (bs, hs) = (bt.read(), ht.read());
    let b = Side { source: base_name, fb: bs.facts(), changes: current };
    let h = Side { source: &policy.source, fb: hs.facts(), changes: &plan.after };
    let mut d = diff_facts(b, h, opts)?;
    d.risks.extend(assertion_risks(policy, b.fb, h.fb, opts.now));
    d.risks.sort();
    d.summary.risks = d.risks.len();
    Ok(d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::compile;

    fn policy(text: &str) -> Policy {
        compile(text, "p.yaml").unwrap()
    }

    fn texts(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::PutTuple(t, None) => format!("+{t}"),
                Change::PutTuple(t, Some(c)) => format!("+{t} [{}]", c.summary()),
                Change::DeleteTuple(t) => format!("-{t}"),
                Change::PutObject(o, a) => format!("+{o} {a}"),
                Change::DeleteObject(o) => format!("-{o}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    const BASE: &str = "roles:\n  r: {scopes: [x]}\n  old: {scopes: [x]}\napplications:\n  a: {scopes_supported: [x]}\nusers: [u, v]\ngroups:\n  g: {members: [user:u]}\n  gone: {members: [user:v]}\nbindings:\n  - {subject: group:g, role: r, application: a}\n  - {subject: user:v, role: old}\n";

    fn current(text: &str) -> Vec<Change> {
        let hf = instantiate_changes("t", &policy(text).changes).unwrap();
        let t = hf.tenant("t").unwrap();
        let st = t.read();
        snapshot(&st)
    }

    #[test]
    fn same_file_plans_nothing() {
        let p = plan(&current(BASE), &policy(BASE));
        assert!(p.changes.is_empty(), "{:?}", texts(&p.changes));
        assert_eq!(p.summary, PlanSummary::default());
    }

    #[test]
    fn deletes_what_the_file_dropped_and_keeps_unowned_memberships() {
        let mut cur = current(BASE);
        // A membership synced from a directory, and a user declared by SCIM.
        cur.push(Change::PutTuple(Tuple::parse("group:g#member@user:w").unwrap(), None));
        cur.push(Change::PutObject(ObjectRef::parse("user:w").unwrap(), serde_json::json!({"name": "W"})));
        let head = "roles:\n  r: {scopes: [x]}\napplications:\n  a: {scopes_supported: [x]}\nusers: [u]\ngroups:\n  g: {members: [user:u]}\nbindings:\n  - {subject: group:g, role: r, application: a, conditions: {mfa: {}}}\n";
        let p = plan(&cur, &policy(head));
        assert_eq!(
            texts(&p.changes),
            ["-role:old#grants@scope:x", "-tenant#old@user:v", "-role:old", "+application:a#r@group:g [mfa]"],
            "group `gone` keeps user:v (not owned), so it stays declared"
        );
        assert_eq!(p.summary.memberships_kept, 2);
        let owned = format!("owns: {{memberships: true}}\n{head}");
        let p = plan(&cur, &policy(&owned));
        assert_eq!(
            texts(&p.changes)[..4],
            ["-group:g#member@user:w", "-group:gone#member@user:v", "-role:old#grants@scope:x", "-tenant#old@user:v"]
        );
        assert!(texts(&p.changes).contains(&"-group:gone".to_string()));
        assert!(!texts(&p.changes).iter().any(|c| c.starts_with("-user:")), "users are never deleted");
        let only_gone = format!("owns: {{memberships: [g]}}\n{head}");
        let p = plan(&cur, &policy(&only_gone));
        assert_eq!(texts(&p.changes)[0], "-group:g#member@user:w");
        assert_eq!(p.summary.memberships_kept, 1);
    }

    #[test]
    fn user_attributes_merge() {
        let mut cur = current(BASE);
        cur.retain(|c| !matches!(c, Change::PutObject(o, _) if o.to_string() == "user:u"));
        cur.push(Change::PutObject(
            ObjectRef::parse("user:u").unwrap(),
            serde_json::json!({"name": "U", "email": "u@x"}),
        ));
        let head = BASE.replace("users: [u, v]", "users:\n  u: {name: Ursula}\n  v: {}");
        let p = plan(&cur, &policy(&head));
        assert_eq!(texts(&p.changes), [r#"+user:u {"email":"u@x","name":"Ursula"}"#]);
    }
}
