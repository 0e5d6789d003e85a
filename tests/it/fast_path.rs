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
