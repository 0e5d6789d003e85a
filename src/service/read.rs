//! Read helpers over one tenant's state for the API's resource views:
//! roles and applications with their scopes, bindings by filter, group
//! members, and every tuple that names a subject. Sorted, deterministic.

use super::TenantState;
use crate::model::{Conditions, ObjectRef, ObjectType, Tuple};

/// Which bindings to list; `None` matches anything.
#[derive(Debug, Clone, Default)]
pub struct BindingFilter {
    pub subject: Option<ObjectRef>,
    pub role: Option<String>,
    /// An application, or [`ObjectRef::tenant`] for tenant-wide bindings.
    pub resource: Option<ObjectRef>,
}

impl TenantState {
    /// The scopes a defined role grants, sorted; `None` if it is not defined.
    pub fn role_scope_names(&self, role: &str) -> Option<Vec<String>> {
        let fb = &self.facts;
        let r = fb.role_id(role)?;
        let mut v: Vec<String> = fb.role_scopes(r).iter().map(|&x| fb.scope_name(x).to_string()).collect();
        v.sort();
        Some(v)
    }

    /// The `scopes_supported` of a defined application, sorted.
    pub fn app_scope_names(&self, app: &str) -> Option<Vec<String>> {
        let fb = &self.facts;
        let a = fb.app_id(app)?;
        let mut v: Vec<String> = fb.app_scopes(a).iter().map(|&x| fb.scope_name(x).to_string()).collect();
        v.sort();
        Some(v)
    }

    /// Ids of the defined roles, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.facts.roles().into_iter().map(|r| self.facts.role_name(r).to_string()).collect()
    }

    /// Ids of the defined applications, sorted.
    pub fn app_names(&self) -> Vec<String> {
        self.facts.apps().into_iter().map(|a| self.facts.app_name(a).to_string()).collect()
    }

    /// Bindings matching `f` as (tuple, conditions), sorted by tuple text.
    pub fn bindings_matching(&self, f: &BindingFilter) -> Vec<(Tuple, Option<Conditions>)> {
        let fb = &self.facts;
        let ids = match &f.subject {
            Some(s) => match fb.node_id(s) {
                Some(n) => fb.bindings_on(n).to_vec(),
                None => return vec![],
            },
            None => fb.all_bindings(),
        };
        let mut out: Vec<(Tuple, Option<Conditions>)> = ids
            .into_iter()
            .filter_map(|b| {
                let rec = fb.binding(b)?;
                let object = if rec.resource.is_tenant() {
                    ObjectRef::tenant()
                } else {
                    ObjectRef::new(ObjectType::Application, fb.app_name(rec.resource))
                };
                let role = fb.role_name(rec.role);
                if f.role.as_deref().is_some_and(|r| r != role) || f.resource.as_ref().is_some_and(|o| *o != object) {
                    return None;
                }
                let subject = ObjectRef::parse(fb.node_name(rec.subject)).ok()?;
                let c = (!rec.conditions.is_empty()).then(|| (*rec.conditions).clone());
                Some((Tuple::new(object, role, subject), c))
            })
            .collect();
        out.sort_by_cached_key(|(t, _)| t.to_string());
        out
    }

    /// Ids of the known users, groups or service accounts (by `ty`), sorted
    /// by their reference text.
    pub fn subject_ids(&self, ty: ObjectType) -> Vec<String> {
        let kind = match ty {
            ObjectType::User => crate::engine::NodeKind::User,
            ObjectType::Group => crate::engine::NodeKind::Group,
            ObjectType::ServiceAccount => crate::engine::NodeKind::ServiceAccount,
            _ => return vec![],
        };
        let fb = &self.facts;
        fb.nodes_of(kind)
            .into_iter()
            .filter_map(|n| fb.node_name(n).split_once(':').map(|(_, id)| id.to_string()))
            .collect()
    }

    /// One page of the ids of known users, groups or service accounts (by
    /// `ty`) whose id starts with `prefix`, sorted, strictly after `after`,
    /// at most `limit`; the flag says whether more follow. One pass over the
    /// nodes keeping the `limit + 1` smallest in a heap: no sorted copy of
    /// every subject per page.
    pub fn subject_ids_page(
        &self,
        ty: ObjectType,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, bool) {
        let kind = match ty {
            ObjectType::User => crate::engine::NodeKind::User,
            ObjectType::Group => crate::engine::NodeKind::Group,
            ObjectType::ServiceAccount => crate::engine::NodeKind::ServiceAccount,
            _ => return (vec![], false),
        };
        let fb = &self.facts;
        let limit = limit.max(1);
        let mut heap: std::collections::BinaryHeap<&str> = std::collections::BinaryHeap::new();
        for n in fb.nodes_unsorted(kind) {
            let Some((_, id)) = fb.node_name(n).split_once(':') else { continue };
            if !id.starts_with(prefix) || after.is_some_and(|a| id <= a) {
                continue;
            }
            if heap.len() <= limit {
                heap.push(id);
            } else if heap.peek().is_some_and(|top| id < *top) {
                heap.pop();
                heap.push(id);
            }
        }
        let mut ids: Vec<String> = heap.into_sorted_vec().into_iter().map(str::to_string).collect();
        let more = ids.len() > limit;
        ids.truncate(limit);
        (ids, more)
    }

    /// Is the application defined?
    pub fn application_defined(&self, id: &str) -> bool {
        self.facts.app_id(id).is_some()
    }

    /// Is the user, group or service account known (declared or named by a tuple)?
    pub fn subject_known(&self, s: &ObjectRef) -> bool {
        self.facts.node_id(s).is_some_and(|n| self.facts.node_known(n))
    }

    /// Direct members of a group, sorted; `None` if the group is unknown.
    pub fn group_members(&self, group: &ObjectRef) -> Option<Vec<ObjectRef>> {
        let fb = &self.facts;
        let g = fb.node_id(group).filter(|&n| fb.node_known(n))?;
        let mut v: Vec<ObjectRef> =
            fb.members(g).iter().filter_map(|&m| ObjectRef::parse(fb.node_name(m)).ok()).collect();
        v.sort();
        Some(v)
    }

    /// Groups a subject is a direct member of, sorted.
    pub fn direct_groups(&self, s: &ObjectRef) -> Vec<ObjectRef> {
        let fb = &self.facts;
        let Some(n) = fb.node_id(s) else { return vec![] };
        let mut v: Vec<ObjectRef> =
            fb.parents(n).iter().filter_map(|&g| ObjectRef::parse(fb.node_name(g)).ok()).collect();
        v.sort();
        v
    }

    /// Every tuple that names `s`: its memberships (as member, and as group)
    /// and the bindings on it. Deleting them all removes `s` from the graph.
    pub fn tuples_naming(&self, s: &ObjectRef) -> Vec<Tuple> {
        let mut out: Vec<Tuple> = self
            .direct_groups(s)
            .into_iter()
            .map(|g| Tuple::new(g, "member", s.clone()))
            .chain(self.group_members(s).unwrap_or_default().into_iter().map(|m| Tuple::new(s.clone(), "member", m)))
            .chain(
                self.bindings_matching(&BindingFilter { subject: Some(s.clone()), ..Default::default() })
                    .into_iter()
                    .map(|(t, _)| t),
            )
            .collect();
        out.sort_by_cached_key(|t| t.to_string());
        out.dedup();
        out
    }

    /// Tuples whose object, relation and subject match the given texts
    /// (`None` matches anything), sorted by text, strictly after `after`,
    /// at most `limit` of them; the flag says whether more follow.
    ///
    /// A page costs one pass over the tenant's tuples as text, keeping only
    /// the `limit + 1` smallest after `after` in a heap, then parses just
    /// those: no sorted copy of the whole tenant per page.
    pub fn tuples_matching(
        &self,
        object: Option<&str>,
        relation: Option<&str>,
        subject: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(Tuple, Option<Conditions>)>, bool) {
        let fb = &self.facts;
        let mut heap: std::collections::BinaryHeap<String> = std::collections::BinaryHeap::new();
        let mut consider = |o: &str, r: &str, s: &str| {
            if relation.is_some_and(|x| x != r) || object.is_some_and(|x| x != o) || subject.is_some_and(|x| x != s) {
                return;
            }
            let text = format!("{o}#{r}@{s}");
            if after.is_some_and(|a| text.as_str() <= a) {
                return;
            }
            if heap.len() <= limit {
                heap.push(text);
            } else if heap.peek().is_some_and(|top| text < *top) {
                heap.pop();
                heap.push(text);
            }
        };
        if relation.is_none_or(|r| r == "member") {
            for g in fb.groups_unsorted() {
                for &m in fb.members(g) {
                    consider(fb.node_name(g), "member", fb.node_name(m));
                }
            }
        }
        if relation.is_none_or(|r| r == "grants") {
            for r in fb.roles() {
                let role = format!("role:{}", fb.role_name(r));
                for &x in fb.role_scopes(r) {
                    consider(&role, "grants", &format!("scope:{}", fb.scope_name(x)));
                }
            }
        }
        if relation.is_none_or(|r| r == "supports") {
            for a in fb.apps() {
                let app = format!("application:{}", fb.app_name(a));
                for &x in fb.app_scopes(a) {
                    consider(&app, "supports", &format!("scope:{}", fb.scope_name(x)));
                }
            }
        }
        for b in fb.bindings_unsorted() {
            let Some(rec) = fb.binding(b) else { continue };
            let role = fb.role_name(rec.role);
            if relation.is_some_and(|r| r != role) {
                continue;
            }
            let app;
            let o = if rec.resource.is_tenant() {
                "tenant"
            } else {
                app = format!("application:{}", fb.app_name(rec.resource));
                app.as_str()
            };
            consider(o, role, fb.node_name(rec.subject));
        }
        let mut texts = heap.into_sorted_vec();
        let more = texts.len() > limit;
        texts.truncate(limit);
        let out = texts
            .iter()
            .filter_map(|text| {
                let t = Tuple::parse(text).ok()?;
                let conditions = match (fb.resource_id(&t.object), fb.role_id(&t.relation), fb.node_id(&t.subject)) {
                    (Some(a), Some(r), Some(n)) => fb
                        .binding_id(n, r, a)
                        .and_then(|b| fb.binding(b))
                        .filter(|rec| !rec.conditions.is_empty())
                        .map(|rec| (*rec.conditions).clone()),
                    _ => None,
                };
                Some((t, conditions))
            })
            .collect();
        (out, more)
    }
}
