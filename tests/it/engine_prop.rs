//! The engine against a small, obviously-correct reference evaluator over
//! `BTreeSet`s: random users, nested groups (cycles included), service
//! accounts, roles, applications, bindings and suspensions.

use std::collections::{BTreeMap, BTreeSet};

use holdfast::engine::FactBase;
use holdfast::model::{Conditions, Context, ObjectRef, ObjectType, Timestamp};
use holdfast::query::{self, Decision};
use proptest::prelude::*;

const SCOPES: [&str; 5] = ["a:read", "a:write", "b:read", "b:admin", "c:use"];

#[derive(Debug, Clone)]
struct World {
    users: usize,
    groups: usize,
    sas: usize,
    roles: Vec<BTreeSet<usize>>,
    apps: Vec<BTreeSet<usize>>,
    /// (group, member node index)
    edges: Vec<(usize, usize)>,
    /// (subject node index, role, app or None = tenant-wide)
    bindings: Vec<(usize, usize, Option<usize>)>,
    suspended: BTreeSet<usize>,
}

impl World {
    fn nodes(&self) -> usize {
        self.users + self.groups + self.sas
    }
    fn node(&self, i: usize) -> ObjectRef {
        if i < self.users {
            ObjectRef::new(ObjectType::User, format!("u{i}"))
        } else if i < self.users + self.groups {
            ObjectRef::new(ObjectType::Group, format!("g{}", i - self.users))
        } else {
            ObjectRef::new(ObjectType::ServiceAccount, format!("sa{}", i - self.users - self.groups))
        }
    }
    fn is_group(&self, i: usize) -> bool {
        i >= self.users && i < self.users + self.groups
    }
    fn binding_text(&self, (s, r, a): (usize, usize, Option<usize>)) -> String {
        let object = a.map_or("tenant".to_string(), |a| format!("application:app{a}"));
        format!("{object}#role{r}@{}", self.node(s))
    }

    fn build(&self) -> FactBase {
        let mut fb = FactBase::default();
        for (i, scopes) in self.apps.iter().enumerate() {
            let s: Vec<&str> = scopes.iter().map(|&x| SCOPES[x]).collect();
            fb.define_app(&format!("app{i}"), &s);
        }
        for (i, scopes) in self.roles.iter().enumerate() {
            let s: Vec<&str> = scopes.iter().map(|&x| SCOPES[x]).collect();
            fb.define_role(&format!("role{i}"), &s);
        }
        for i in 0..self.nodes() {
            fb.declare_node(&self.node(i), true);
        }
        for &(g, m) in &self.edges {
            fb.set_member(&self.node(g), &self.node(m), true);
        }
        for &(s, r, a) in &self.bindings {
            let object = a.map_or(ObjectRef::tenant(), |a| ObjectRef::new(ObjectType::Application, format!("app{a}")));
            fb.put_binding(&object, &format!("role{r}"), &self.node(s), Conditions::default());
        }
        for &s in &self.suspended {
            fb.set_suspended(&self.node(s), true);
        }
        fb
    }

    // ----- the reference model: plain fixpoints over sets -----

    /// Groups `s` belongs to, transitively.
    fn ref_groups(&self, s: usize) -> BTreeSet<usize> {
        let mut out: BTreeSet<usize> = BTreeSet::new();
        loop {
            let before = out.len();
            for &(g, m) in &self.edges {
                if m == s || out.contains(&m) {
                    out.insert(g);
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Bindings `s` holds, with origin.
    fn ref_holds(&self, s: usize) -> BTreeMap<String, &'static str> {
        let groups = self.ref_groups(s);
        let mut out = BTreeMap::new();
        for &b in &self.bindings {
            let origin = if b.0 == s {
                if s >= self.users + self.groups {
                    "service-account"
                } else {
                    "direct"
                }
            } else if groups.contains(&b.0) {
                "group"
            } else {
                continue;
            };
            out.insert(self.binding_text(b), origin);
        }
        out
    }

    fn ref_allows(&self, s: usize, app: usize, scope: usize) -> bool {
        if self.suspended.contains(&s) || !self.apps[app].contains(&scope) {
            return false;
        }
        let groups = self.ref_groups(s);
        self.bindings.iter().any(|&(b, r, a)| {
            (b == s || groups.contains(&b)) && a.is_none_or(|a| a == app) && self.roles[r].contains(&scope)
        })
    }
}

fn world() -> impl Strategy<Value = World> {
    (1usize..7, 1usize..6, 0usize..3, 1usize..4, 1usize..4).prop_flat_map(|(users, groups, sas, nroles, napps)| {
        let nodes = users + groups + sas;
        let scopes = proptest::collection::btree_set(0..SCOPES.len(), 0..4);
        (
            proptest::collection::vec(scopes.clone(), nroles),
            proptest::collection::vec(scopes, napps),
            proptest::collection::vec((users..users + groups, 0..nodes), 0..14),
            proptest::collection::vec((0..nodes, 0..nroles, proptest::option::of(0..napps)), 0..8),
            proptest::collection::btree_set(0..nodes, 0..3),
        )
            .prop_map(move |(roles, apps, edges, bindings, suspended)| World {
                users,
                groups,
                sas,
                roles,
                apps,
                edges: edges.into_iter().filter(|(g, m)| g != m).collect(),
                bindings,
                suspended: suspended.into_iter().filter(|&s| s < users || s >= users + groups).collect(),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference(w in world()) {
        let fb = w.build();
        let ctx = Context::at(Timestamp(0));
        for s in 0..w.nodes() {
            let subject = w.node(s).to_string();
            for app in 0..w.apps.len() {
                for (x, scope) in SCOPES.iter().enumerate() {
                    let got = query::check(&fb, &subject, &format!("app{app}"), scope, &ctx).unwrap();
                    let want = w.ref_allows(s, app, x);
                    prop_assert_eq!(got.decision == Decision::Allow, want,
                        "check {} {} app{}: {:?}", subject, scope, app, got);
                    if w.suspended.contains(&s) {
                        prop_assert_ne!(got.decision, Decision::Allow);
                    }
                }
            }
            let ea = query::effective_access(&fb, &subject, Timestamp(0), false).unwrap();
            let got: BTreeMap<String, &str> = ea.entries.iter().map(|e| (e.binding.clone(), e.origin)).collect();
            prop_assert_eq!(got, w.ref_holds(s), "effective access of {}", subject);
            // Every path starts at the subject and ends at the bound node.
            for e in &ea.entries {
                prop_assert_eq!(e.path.first(), Some(&subject));
                let bound = e.binding.rsplit_once('@').map(|(_, b)| b.to_string());
                prop_assert_eq!(e.path.last(), bound.as_ref());
            }
        }
        // Who can access: users and service accounts with any usable scope.
        for app in 0..w.apps.len() {
            let page = query::who_can_access(&fb, &format!("app{app}"), None, Timestamp(0), None, 10_000).unwrap().unwrap();
            let got: BTreeSet<String> = page.entries.iter().map(|e| e.subject.clone()).collect();
            let want: BTreeSet<String> = (0..w.nodes())
                .filter(|&s| !w.is_group(s))
                .filter(|&s| (0..SCOPES.len()).any(|x| w.ref_allows(s, app, x)))
                .map(|s| w.node(s).to_string())
                .collect();
            prop_assert_eq!(got, want, "who can access app{}", app);
            prop_assert!(page.next_page_token.is_none());
        }
    }

    /// Check (the cached fast path) and explain (the rules' verdicts and the
    /// conditions of the granting bindings) agree on the decision *and* the
    /// reason, with conditions (MFA, IP, validity window, attributes) and suspensions,
    /// in several contexts, for known and unknown scopes.
    #[test]
    fn check_and_explain_agree_on_decision_and_reason(
        w in world(),
        conds in proptest::collection::vec(0u8..8, 0..24),
    ) {
        let mut fb = w.build();
        let at = |s: &str| Timestamp::parse(s).unwrap();
        for (i, &b) in w.bindings.iter().enumerate() {
            let c = match conds.get(i).copied().unwrap_or(0) {
                1 => Conditions { mfa: Some(holdfast::model::MfaCondition { required: true, max_age: None }), ..Default::default() },
                2 => Conditions { mfa: Some(holdfast::model::MfaCondition { required: true, max_age: Some(std::time::Duration::from_secs(600)) }), ..Default::default() },
                3 => Conditions { ip: Some(holdfast::model::conditions::IpCondition { allow: vec!["10.0.0.0/8".parse().unwrap()] }), ..Default::default() },
                4 => Conditions { expires_at: Some(at("2026-01-01T00:00:00Z")), ..Default::default() },
                5 => Conditions { not_before: Some(at("2027-01-01T00:00:00Z")), ..Default::default() },
                6 => Conditions::from_json(&serde_json::json!({"attributes": [{"attribute": "action.soft", "op": "eq", "value": true}]})).unwrap(),
                7 => Conditions::from_json(&serde_json::json!({"mfa": {"required": true},
                    "attributes": [{"attribute": "subject.team", "op": "ne", "value": "ops"}]})).unwrap(),
                _ => continue,
            };
            let object = b.2.map_or(ObjectRef::tenant(), |a| ObjectRef::new(ObjectType::Application, format!("app{a}")));
            fb.put_binding(&object, &format!("role{}", b.1), &w.node(b.0), c);
        }
        let now = at("2026-06-01T00:00:00Z");
        let contexts = [
            Context::at(now),
            Context { mfa: Some(holdfast::model::MfaContext { present: true, auth_time: Some(Timestamp(now.0 - 60)) }), ip: Some("10.1.2.3".parse().unwrap()), ..Context::at(now) },
            Context { mfa: Some(holdfast::model::MfaContext { present: true, auth_time: Some(Timestamp(now.0 - 3600)) }), ip: Some("192.0.2.1".parse().unwrap()), ..Context::at(now) },
            Context { attributes: serde_json::from_value(serde_json::json!({"action": {"soft": true}, "subject": {"team": "sre"}})).unwrap(), ..Context::at(now) },
            Context { attributes: serde_json::from_value(serde_json::json!({"action": {"soft": false}, "subject": {"team": "ops"}})).unwrap(),
                mfa: Some(holdfast::model::MfaContext { present: true, auth_time: None }), ..Context::at(now) },
        ];
        let scopes: Vec<&str> = SCOPES.iter().copied().chain(["z:unknown"]).collect();
        for s in 0..w.nodes() {
            let subject = w.node(s).to_string();
            for app in 0..w.apps.len() {
                for scope in &scopes {
                    for ctx in &contexts {
                        let app = format!("app{app}");
                        let c = query::check(&fb, &subject, &app, scope, ctx).unwrap();
                        let e = holdfast::explain::explain(&fb, &subject, &app, scope, ctx).unwrap();
                        prop_assert_eq!((c.decision, c.reason, &c.step_up), (e.outcome.decision, e.outcome.reason, &e.outcome.step_up),
                            "{} {} {}: check {:?}, explain {:#?}", subject, scope, app, c, e.bindings);
                    }
                }
            }
        }
    }

    /// Cached views stay exact across random writes: after each write the
    /// cached answer equals a fresh evaluation.
    #[test]
    fn cache_invalidation_is_exact(w in world(), ops in proptest::collection::vec((0usize..4, 0usize..20, 0usize..20), 1..12)) {
        let mut fb = w.build();
        let ctx = Context::at(Timestamp(0));
        let warm = |fb: &FactBase| for s in 0..w.nodes() { let _ = fb.view(fb.node_id(&w.node(s)).unwrap()); };
        warm(&fb);
        for (op, a, b) in ops {
            let (na, nb) = (a % w.nodes(), b % w.nodes());
            match op {
                0 if w.is_group(na) && na != nb => { fb.set_member(&w.node(na), &w.node(nb), true); }
                1 if w.is_group(na) => { fb.set_member(&w.node(na), &w.node(nb), false); }
                2 => { fb.put_binding(&ObjectRef::tenant(), &format!("role{}", b % w.roles.len()), &w.node(na), Conditions::default()); }
                _ => { fb.set_suspended(&w.node(na), a % 2 == 0 && !w.is_group(na)); }
            }
            for s in 0..w.nodes() {
                let n = fb.node_id(&w.node(s)).unwrap();
                for app in 0..w.apps.len() {
                    for scope in SCOPES {
                        let cached = query::check(&fb, &w.node(s).to_string(), &format!("app{app}"), scope, &ctx).unwrap();
                        let fresh = fb.view_uncached(n).unwrap();
                        let x = fb.scope_id(scope);
                        let a_id = fb.app_id(&format!("app{app}")).unwrap();
                        let fresh_allow = x.is_some_and(|x| fresh.entries(a_id, x).iter().any(|e| e.1));
                        prop_assert_eq!(cached.decision == Decision::Allow, fresh_allow);
                    }
                }
            }
            warm(&fb);
        }
    }
}
