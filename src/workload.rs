//! Synthetic tenants for benchmarks and tests: users in nested groups,
//! service accounts, roles, applications and bindings, from a seed.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde_json::json;

use crate::model::{Conditions, ObjectRef, ObjectType, Tuple};
use crate::service::Change;

/// The shape of a generated tenant.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub users: usize,
    pub groups: usize,
    pub bindings: usize,
    pub apps: usize,
    pub roles: usize,
    pub scopes_per_app: usize,
    pub service_accounts: usize,
    pub seed: u64,
}

impl Shape {
    /// The reference shape scaled to `users`: users/10 nested groups
    /// and users/2 bindings.
    pub fn for_users(users: usize, seed: u64) -> Shape {
        Shape {
            users,
            groups: (users / 10).max(1),
            bindings: (users / 2).max(1),
            apps: 20,
            roles: 60,
            scopes_per_app: 8,
            service_accounts: (users / 100).max(1),
            seed,
        }
    }
}

pub fn user(i: usize) -> String {
    format!("user:u{i}")
}

pub fn app(i: usize) -> String {
    format!("app{i}")
}

pub fn scope(app: usize, i: usize) -> String {
    format!("app{app}:s{i}")
}

/// The changes that create the tenant (in load order).
pub fn generate(shape: &Shape) -> Vec<Change> {
    let mut rng = SmallRng::seed_from_u64(shape.seed);
    let mut out = Vec::with_capacity(shape.users * 3 + shape.bindings * 2);
    let t = |s: String| Tuple::parse(&s).ok();
    for a in 0..shape.apps {
        out.push(Change::PutObject(ObjectRef::new(ObjectType::Application, app(a)), json!({})));
        for x in 0..shape.scopes_per_app {
            out.extend(
                t(format!("application:{}#supports@scope:{}", app(a), scope(a, x))).map(|t| Change::PutTuple(t, None)),
            );
        }
    }
    for r in 0..shape.roles {
        out.push(Change::PutObject(ObjectRef::new(ObjectType::Role, format!("role{r}")), json!({})));
        // Each role grants 2-4 scopes of one application (and sometimes another).
        let a = r % shape.apps;
        for _ in 0..rng.random_range(2..=4) {
            let x = rng.random_range(0..shape.scopes_per_app);
            out.extend(t(format!("role:role{r}#grants@scope:{}", scope(a, x))).map(|t| Change::PutTuple(t, None)));
        }
        if rng.random_bool(0.2) {
            let b = rng.random_range(0..shape.apps);
            let x = rng.random_range(0..shape.scopes_per_app);
            out.extend(t(format!("role:role{r}#grants@scope:{}", scope(b, x))).map(|t| Change::PutTuple(t, None)));
        }
    }
    // Nested groups: group i joins an earlier group with probability 0.6
    // (depth grows like log n), plus a few cycles.
    for g in 1..shape.groups {
        if rng.random_bool(0.6) {
            let p = rng.random_range(0..g);
            out.extend(t(format!("group:g{p}#member@group:g{g}")).map(|t| Change::PutTuple(t, None)));
        }
    }
    for _ in 0..(shape.groups / 1000) {
        let a = rng.random_range(0..shape.groups);
        let b = rng.random_range(0..shape.groups);
        if a != b {
            out.extend(t(format!("group:g{a}#member@group:g{b}")).map(|t| Change::PutTuple(t, None)));
        }
    }
    for u in 0..shape.users {
        for _ in 0..rng.random_range(1..=3) {
            let g = rng.random_range(0..shape.groups);
            out.extend(t(format!("group:g{g}#member@{}", user(u))).map(|t| Change::PutTuple(t, None)));
        }
    }
    for s in 0..shape.service_accounts {
        out.push(Change::PutObject(ObjectRef::new(ObjectType::ServiceAccount, format!("sa{s}")), json!({})));
    }
    for _ in 0..shape.bindings {
        let r = rng.random_range(0..shape.roles);
        let object =
            if rng.random_bool(0.01) { "tenant".to_string() } else { format!("application:{}", app(r % shape.apps)) };
        let subject = match rng.random_range(0..100) {
            0..=39 => format!("group:g{}", rng.random_range(0..shape.groups)),
            40..=44 => format!("service_account:sa{}", rng.random_range(0..shape.service_accounts)),
            _ => user(rng.random_range(0..shape.users)),
        };
        let cond = if rng.random_bool(0.1) {
            serde_json::from_value::<Conditions>(json!({"mfa": {"required": true, "max_age": "15m"}})).ok()
        } else {
            None
        };
        out.extend(t(format!("{object}#role{r}@{subject}")).map(|t| Change::PutTuple(t, cond)));
    }
    out
}

/// A random check query: (subject, application, scope).
pub fn random_check(shape: &Shape, rng: &mut SmallRng) -> (String, String, String) {
    let a = rng.random_range(0..shape.apps);
    (user(rng.random_range(0..shape.users)), app(a), scope(a, rng.random_range(0..shape.scopes_per_app)))
}

/// The generated tenant as a policy file (YAML), for `holdfast bench gen`
/// and for comparing Holdfast with other systems on the same data.
pub fn to_policy_yaml(changes: &[Change], tenant: &str) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let mut apps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut users = std::collections::BTreeSet::new();
    let mut sas = std::collections::BTreeSet::new();
    let mut bindings = Vec::new();
    let note = |r: &ObjectRef,
                users: &mut std::collections::BTreeSet<String>,
                sas: &mut std::collections::BTreeSet<String>,
                groups: &mut BTreeMap<String, Vec<String>>| match r.ty {
        ObjectType::User => {
            users.insert(r.id.clone());
        }
        ObjectType::ServiceAccount => {
            sas.insert(r.id.clone());
        }
        ObjectType::Group => {
            groups.entry(r.id.clone()).or_default();
        }
        _ => {}
    };
    for c in changes {
        match c {
            Change::PutObject(o, _) => match o.ty {
                ObjectType::Application => {
                    apps.entry(o.id.clone()).or_default();
                }
                ObjectType::Role => {
                    roles.entry(o.id.clone()).or_default();
                }
                _ => note(o, &mut users, &mut sas, &mut groups),
            },
            Change::PutTuple(t, cond) => match (t.object.ty, t.relation.as_str()) {
                (ObjectType::Application, "supports") => {
                    apps.entry(t.object.id.clone()).or_default().push(t.subject.id.clone())
                }
                (ObjectType::Role, "grants") => {
                    roles.entry(t.object.id.clone()).or_default().push(t.subject.id.clone())
                }
                (ObjectType::Group, "member") => {
                    note(&t.subject, &mut users, &mut sas, &mut groups);
                    groups.entry(t.object.id.clone()).or_default().push(t.subject.to_string());
                }
                _ => {
                    note(&t.subject, &mut users, &mut sas, &mut groups);
                    bindings.push((t.clone(), cond.clone()));
                }
            },
            _ => {}
        }
    }
    // A tuple written twice is one binding (the later conditions win), and
    // a policy file refuses a binding declared twice.
    let mut seen = std::collections::HashSet::new();
    bindings.reverse();
    bindings.retain(|(t, _)| seen.insert(t.to_string()));
    bindings.reverse();
    let mut y = String::new();
    let list = |v: &mut Vec<String>| {
        v.sort();
        v.dedup();
        v.join(", ")
    };
    let _ = writeln!(y, "tenant: {tenant}\napplications:");
    for (a, mut s) in apps {
        let _ = writeln!(y, "  {a}:\n    scopes_supported: [{}]", list(&mut s));
    }
    let _ = writeln!(y, "roles:");
    for (r, mut s) in roles {
        let _ = writeln!(y, "  {r}:\n    scopes: [{}]", list(&mut s));
    }
    let _ = writeln!(y, "users:");
    for u in &users {
        let _ = writeln!(y, "  - {u}");
    }
    let _ = writeln!(y, "service_accounts:");
    for s in &sas {
        let _ = writeln!(y, "  - {s}");
    }
    let _ = writeln!(y, "groups:");
    for (g, mut m) in groups {
        let _ = writeln!(y, "  {g}:\n    members: [{}]", list(&mut m));
    }
    let _ = writeln!(y, "bindings:");
    for (t, cond) in bindings {
        let _ = write!(y, "  - {{subject: \"{}\", role: {}", t.subject, t.relation);
        if t.object.ty == ObjectType::Application {
            let _ = write!(y, ", application: {}", t.object.id);
        }
        if let Some(c) = cond {
            let _ = write!(y, ", conditions: {}", serde_json::to_string(&c).unwrap_or_default());
        }
        let _ = writeln!(y, "}}");
    }
    y
}

/// The `p` quantile (0 to 1) of `sorted` samples: the sample at rank
/// `round((n - 1) * p)`; zero (the default) when there are none. The one
/// percentile of `holdfast bench`, `bench --http` and `bench/cedar`.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    let Some(last) = sorted.len().checked_sub(1) else { return T::default() };
    sorted[((last as f64 * p.clamp(0.0, 1.0)).round() as usize).min(last)]
}

#[cfg(test)]
mod tests {
    use super::percentile;
    use std::time::Duration;

    #[test]
    fn percentiles_by_nearest_rank() {
        let xs: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&xs, 0.0), percentile(&xs, 0.5), percentile(&xs, 0.99)), (1, 51, 99));
        assert_eq!(percentile(&xs, 1.0), 100);
        assert_eq!(percentile(&[7u32], 0.99), 7);
        assert_eq!(percentile::<Duration>(&[], 0.5), Duration::ZERO);
    }
}
