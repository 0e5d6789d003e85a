//! The fast path (cached per-application views) answers exactly what an
//! uncached evaluation of the whole subject answers, and what the explain
//! program (the full rules, with verdicts) concludes, on generated tenants.

use holdfast::engine::ViewScope;
use holdfast::explain;
use holdfast::model::{CondOutcome, Context, MfaContext, Timestamp};
use holdfast::query::{self, Decision};
use holdfast::service::Holdfast;
use holdfast::workload::{self, Shape};
use rand::{rngs::SmallRng, SeedableRng};

#[test]
fn fast_path_equals_uncached_and_explain_on_generated_workloads() {
    for seed in [1, 2, 3] {
        let shape = Shape::for_users(3_000, seed);
        let hf = Holdfast::in_memory();
        hf.write("g", workload::generate(&shape), &[], "test", 0).unwrap();
        let t = hf.tenant("g").unwrap();
        let st = t.read();
        let fb = &st.facts();
        let mut rng = SmallRng::seed_from_u64(seed);
        let now = Timestamp(1_800_000_000);
        let mut allows = 0;
        for i in 0..1500 {
            let (s, app, scope) = workload::random_check(&shape, &mut rng);
            // Alternate contexts so MFA conditions both hold and fail.
            let ctx = if i % 2 == 0 {
                Context::at(now)
            } else {
                Context { mfa: Some(MfaContext { present: true, auth_time: Some(now) }), ..Context::at(now) }
            };
            let fast = query::check(fb, &s, &app, &scope, &ctx).unwrap();
            let again = query::check(fb, &s, &app, &scope, &ctx).unwrap();
            assert_eq!(fast, again, "a cached answer equals the first");

            // Uncached, whole-subject evaluation.
            let n = query::resolve_subject(fb, &s).unwrap();
            let uncached = match (n, fb.app_id(&app), fb.scope_id(&scope)) {
                (Some(n), Some(a), Some(x)) => {
                    let v = fb.view_uncached_scoped(n, ViewScope::All).unwrap();
                    let outcomes: Vec<CondOutcome> = v
                        .entries(a, x)
                        .iter()
                        .filter(|e| e.1)
                        .map(|&(i, _)| fb.binding(v.holds[i as usize].binding).unwrap().conditions.evaluate(&ctx))
                        .collect();
                    if outcomes.contains(&CondOutcome::Satisfied) {
                        Decision::Allow
                    } else if outcomes.iter().any(|o| matches!(o, CondOutcome::StepUp { .. })) {
                        Decision::StepUp
                    } else {
                        Decision::Deny
                    }
                }
                _ => Decision::Deny,
            };
            assert_eq!(fast.decision, uncached, "{s} {app} {scope}: fast {fast:?}");

            // The explain program's verdicts lead to the same decision.
            let ex = explain::explain(fb, &s, &app, &scope, &ctx).unwrap();
            let granting: Vec<_> = ex.bindings.iter().filter(|b| b.verdict == "grants").collect();
            let from_trace = if granting.iter().any(|b| b.condition_result == Some("satisfied")) {
                Decision::Allow
            } else if granting.iter().any(|b| b.condition_result == Some("step_up_required:mfa")) {
                Decision::StepUp
            } else {
                Decision::Deny
            };
            assert_eq!(fast.decision, from_trace, "{s} {app} {scope}: trace {:#?}", ex.bindings);
            allows += usize::from(fast.decision == Decision::Allow);
        }
        assert!(allows > 0, "the workload exercises allow paths too");
    }
}

/// Who-can-access (cached candidates, cached views, pages resumed from a
/// cursor) and effective access (cached views) answer what uncached
/// whole-subject evaluations of every user and service account answer,
/// before and after writes that change memberships and bindings.
#[test]
fn who_can_access_and_effective_access_equal_uncached_evaluations() {
    use holdfast::engine::NodeKind;
    use holdfast::model::Tuple;
    use holdfast::service::Change;
    use rand::Rng;
    use std::collections::BTreeSet;

    let shape = Shape::for_users(1_500, 7);
    let hf = Holdfast::in_memory();
    hf.write("g", workload::generate(&shape), &[], "test", 0).unwrap();
    let t = hf.tenant("g").unwrap();
    let now = Timestamp(1_800_000_000);
    let mut rng = SmallRng::seed_from_u64(7);
    for round in 0..4 {
        {
            let st = t.read();
            let fb = st.facts();
            let subjects: Vec<_> =
                fb.nodes_of(NodeKind::User).into_iter().chain(fb.nodes_of(NodeKind::ServiceAccount)).collect();
            for app in fb.apps().into_iter().take(6) {
                for &x in fb.app_scopes(app).iter().take(2) {
                    let (an, xn) = (fb.app_name(app).to_string(), fb.scope_name(x).to_string());
                    // Paged, 37 subjects a page.
                    let mut got = BTreeSet::new();
                    let mut after: Option<String> = None;
                    loop {
                        let p = query::who_can_access(fb, &an, Some(&xn), now, after.as_deref(), 37).unwrap().unwrap();
                        for e in &p.entries {
                            got.insert((e.subject.clone(), e.access.binding.clone()));
                        }
                        match p.next_page_token {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    let mut want = BTreeSet::new();
                    for &s in &subjects {
                        if fb.is_suspended(s) {
                            continue;
                        }
                        let v = fb.view_uncached_scoped(s, ViewScope::All).unwrap();
                        for &(i, usable) in v.entries(app, x) {
                            let h = &v.holds[i as usize];
                            if usable && !fb.binding(h.binding).unwrap().conditions.is_expired(now) {
                                want.insert((fb.node_name(s).to_string(), fb.binding_text(h.binding)));
                            }
                        }
                    }
                    assert_eq!(got, want, "round {round}: who can use {xn} on {an}");
                }
            }
            for &s in subjects.iter().step_by(7) {
                let name = fb.node_name(s).to_string();
                let cached = query::effective_access(fb, &name, now, true).unwrap();
                let v = fb.view_uncached_scoped(s, ViewScope::All).unwrap();
                let want: BTreeSet<String> = v.holds.iter().map(|h| fb.binding_text(h.binding)).collect();
                let got: BTreeSet<String> = cached.entries.iter().map(|e| e.binding.clone()).collect();
                assert_eq!(got, want, "round {round}: effective access of {name}");
            }
        }
        // Writes between rounds: memberships in and out, then a binding,
        // then scopes granted to roles (each alone changes who can access).
        let mut changes = Vec::new();
        for _ in 0..if round == 0 { 200 } else { 0 } {
            let (u, g) = (rng.random_range(0..shape.users), rng.random_range(0..shape.groups));
            let tuple = Tuple::parse(&format!("group:g{g}#member@user:u{u}")).unwrap();
            changes.push(if rng.random_bool(0.5) { Change::PutTuple(tuple, None) } else { Change::DeleteTuple(tuple) });
        }
        let g = rng.random_range(0..shape.groups);
        let (app, role) = {
            let st = t.read();
            let fb = st.facts();
            let app = fb.apps()[0];
            let role = fb.roles()[rng.random_range(0..fb.roles().len())];
            (fb.app_name(app).to_string(), fb.role_name(role).to_string())
        };
        if round == 1 {
            changes
                .push(Change::PutTuple(Tuple::parse(&format!("application:{app}#{role}@group:g{g}")).unwrap(), None));
        }
        if round == 2 {
            // Roles bound on app0 now grant its first scopes: new candidates.
            let (roles, scopes) = {
                let st = t.read();
                let fb = st.facts();
                let a = fb.apps()[0];
                let roles: Vec<String> = fb
                    .bindings_of_resource(a)
                    .iter()
                    .filter_map(|&b| fb.binding(b))
                    .map(|r| fb.role_name(r.role).to_string())
                    .collect();
                let scopes: Vec<String> =
                    fb.app_scopes(a).iter().take(2).map(|&x| fb.scope_name(x).to_string()).collect();
                (roles, scopes)
            };
            for r in roles.iter().take(3) {
                for x in &scopes {
                    changes.push(Change::PutTuple(Tuple::parse(&format!("role:{r}#grants@scope:{x}")).unwrap(), None));
                }
            }
        }
        hf.write("g", changes, &[], "test", 0).unwrap();
    }
}
