//! Engine unit tests: evaluation over cycles and deep nesting, limits, and
//! cache invalidation. (The engine is also checked against a reference
//! model by proptest in `tests/it/engine_prop.rs`.)

use super::*;
use crate::model::{Conditions, ObjectRef, ObjectType};

fn group(i: usize) -> ObjectRef {
    ObjectRef::new(ObjectType::Group, format!("g{i}"))
}

fn user(id: &str) -> ObjectRef {
    ObjectRef::new(ObjectType::User, id)
}

fn base() -> FactBase {
    let mut fb = FactBase::default();
    fb.define_app("app", &["read", "write"]);
    fb.define_role("reader", &["read"]);
    fb
}

fn scopes(fb: &FactBase, v: &SubjectView, app: AppId) -> Vec<String> {
    let mut out: Vec<String> = v
        .entitled
        .iter()
        .filter(|((a, _), e)| *a == app && e.iter().any(|x| x.1))
        .map(|((_, x), _)| fb.scope_name(*x).to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn cycles_terminate_and_paths_are_shortest() {
    let mut fb = base();
    // g0 ⊃ g1 ⊃ g2 ⊃ g0 (a cycle), alice in g2, the binding on g0:
    // alice reaches g0 through g1 (g0 ⊂ g2 closes the cycle, not a shortcut).
    fb.set_member(&group(0), &group(1), true);
    fb.set_member(&group(1), &group(2), true);
    fb.set_member(&group(2), &group(0), true);
    fb.set_member(&group(2), &user("alice"), true);
    let app = fb.app_id("app").unwrap();
    fb.put_binding(&ObjectRef::new(ObjectType::Application, "app"), "reader", &group(0), Conditions::default());
    let alice = fb.node_id(&user("alice")).unwrap();
    let v = fb.view(alice).unwrap();
    assert_eq!(scopes(&fb, &v, app), vec!["read"]);
    let path: Vec<&str> = v.holds[0].path.iter().map(|&n| fb.node_name(n)).collect();
    assert_eq!(path, vec!["user:alice", "group:g2", "group:g1", "group:g0"]);
    assert_eq!(v.holds[0].origin, Origin::Group);
    // A group in the cycle holds its own binding directly, not via itself.
    let g0 = fb.node_id(&group(0)).unwrap();
    assert_eq!(fb.view(g0).unwrap().holds[0].origin, Origin::Direct);
}

#[test]
fn deep_nesting_evaluates() {
    let mut fb = base();
    // user -> group(depth) -> ... -> group(0): depth + 1 levels, the limit.
    let depth = Limits::default().max_depth - 1;
    for i in 0..depth {
        fb.set_member(&group(i), &group(i + 1), true);
    }
    fb.set_member(&group(depth), &user("deep"), true);
    fb.put_binding(&ObjectRef::new(ObjectType::Application, "app"), "reader", &group(0), Conditions::default());
    let n = fb.node_id(&user("deep")).unwrap();
    let v = fb.view(n).unwrap();
    assert_eq!(v.holds.len(), 1);
    assert_eq!(v.holds[0].path.len(), depth + 2, "every hop of the chain is on the path");
}

#[test]
fn limits_answer_a_typed_error() {
    let mut fb = FactBase::new(Limits { max_groups: 10, ..Limits::default() });
    fb.define_app("app", &["read"]);
    for i in 0..20 {
        fb.set_member(&group(i), &user("wide"), true);
    }
    let n = fb.node_id(&user("wide")).unwrap();
    match fb.view(n) {
        Err(EngineError::LimitExceeded { what, limit, .. }) => {
            assert_eq!((what, limit), ("reachable groups", 10));
        }
        other => panic!("expected a limit error, got {other:?}"),
    }
}

#[test]
fn nesting_deeper_than_the_limit_is_a_typed_error() {
    let mut fb = FactBase::new(Limits { max_depth: 5, ..Limits::default() });
    fb.define_app("app", &["read"]);
    // user -> g5 -> g4 -> ... -> g0: six levels.
    for i in 0..5 {
        fb.set_member(&group(i), &group(i + 1), true);
    }
    fb.set_member(&group(5), &user("deep"), true);
    fb.set_member(&group(4), &user("shallow"), true);
    let deep = fb.node_id(&user("deep")).unwrap();
    match fb.view(deep) {
        Err(EngineError::LimitExceeded { what, limit, .. }) => {
            assert_eq!((what, limit), ("levels of group nesting", 5))
        }
        other => panic!("expected a depth error, got {other:?}"),
    }
    // Five levels are within the limit.
    let shallow = fb.node_id(&user("shallow")).unwrap();
    assert!(fb.view(shallow).is_ok());
    // Depth is the shortest path: a shortcut brings `deep` within bounds.
    fb.set_member(&group(0), &user("deep"), true);
    assert!(fb.view(deep).is_ok());
}

#[test]
fn writes_invalidate_exactly_the_subjects_below() {
    let mut fb = base();
    fb.set_member(&group(0), &user("alice"), true);
    fb.set_member(&group(1), &user("bob"), true);
    let (alice, bob) = (fb.node_id(&user("alice")).unwrap(), fb.node_id(&user("bob")).unwrap());
    let app = fb.app_id("app").unwrap();
    assert!(scopes(&fb, &fb.app_view(alice, app).unwrap(), app).is_empty());
    let _ = fb.app_view(bob, app).unwrap();
    assert_eq!(fb.cached_views(), 2);
    // A binding on g0 affects alice only: bob's view stays cached.
    fb.put_binding(&ObjectRef::new(ObjectType::Application, "app"), "reader", &group(0), Conditions::default());
    assert_eq!(fb.cached_views(), 1);
    assert_eq!(scopes(&fb, &fb.app_view(alice, app).unwrap(), app), vec!["read"]);
    // A role change can affect anyone: everything is dropped.
    fb.define_role("reader", &["read", "write"]);
    assert_eq!(fb.cached_views(), 0);
    assert_eq!(scopes(&fb, &fb.app_view(alice, app).unwrap(), app), vec!["read", "write"]);
    // Suspension drops the subject's views and empties what it may use.
    fb.set_suspended(&user("alice"), true);
    assert!(scopes(&fb, &fb.app_view(alice, app).unwrap(), app).is_empty());
    let v = fb.app_view(alice, app).unwrap();
    assert!(!v.entitled.is_empty(), "still entitled, just not usable");
}

#[test]
fn unconditional_paths_are_open_and_a_conditions_change_invalidates() {
    let mut fb = base();
    let app_ref = ObjectRef::new(ObjectType::Application, "app");
    fb.set_member(&group(0), &user("alice"), true);
    fb.put_binding(&app_ref, "reader", &group(0), Conditions::default());
    let (alice, app) = (fb.node_id(&user("alice")).unwrap(), fb.app_id("app").unwrap());
    let read = fb.scope_id("read").unwrap();
    assert!(fb.app_view(alice, app).unwrap().entitlement(app, read).unwrap().open);
    // The same binding now requires MFA: the cached view must not stay open.
    let mfa =
        Conditions { mfa: Some(crate::model::MfaCondition { required: true, max_age: None }), ..Conditions::default() };
    fb.put_binding(&app_ref, "reader", &group(0), mfa.clone());
    assert_eq!(fb.cached_views(), 0, "the conditions change dropped alice's view");
    let v = fb.app_view(alice, app).unwrap();
    let e = v.entitlement(app, read).unwrap();
    assert!(!e.open && e.paths.as_slice() == [(0, true)], "{e:?}");
    // Rewriting the same conditions keeps the cache.
    fb.put_binding(&app_ref, "reader", &group(0), mfa);
    assert_eq!(fb.cached_views(), 1);
    // A suspended subject's entitlement is not usable, so not open.
    fb.put_binding(&app_ref, "reader", &group(0), Conditions::default());
    fb.set_suspended(&user("alice"), true);
    assert!(!fb.app_view(alice, app).unwrap().entitlement(app, read).unwrap().open);
}

#[test]
fn request_only_memberships_count_for_that_evaluation_and_bypass_the_cache() {
    let mut fb = base();
    // g1 ⊂ g0, the binding on g0; bob is stored in nothing.
    fb.set_member(&group(0), &group(1), true);
    fb.put_binding(&ObjectRef::new(ObjectType::Application, "app"), "reader", &group(0), Conditions::default());
    fb.declare_node(&user("bob"), true);
    let app = fb.app_id("app").unwrap();
    let bob = fb.node_id(&user("bob")).unwrap();
    let g1 = fb.node_id(&group(1)).unwrap();
    assert!(scopes(&fb, &fb.app_view(bob, app).unwrap(), app).is_empty());
    let cached = fb.cached_views();
    let v = fb.app_view_with(bob, app, &[g1]).unwrap();
    assert_eq!(scopes(&fb, &v, app), vec!["read"]);
    let path: Vec<&str> = v.holds[0].path.iter().map(|&n| fb.node_name(n)).collect();
    assert_eq!(path, vec!["user:bob", "group:g1", "group:g0"]);
    assert_eq!(fb.cached_views(), cached, "a request-only view is not cached");
    // The cached view of bob is still the stored truth.
    assert!(scopes(&fb, &fb.app_view(bob, app).unwrap(), app).is_empty());
    // A subject Holdfast never stored, known only from the request.
    let v = fb.view_with(NodeId::REQUEST_ONLY, &[g1]).unwrap();
    assert_eq!(scopes(&fb, &v, app), vec!["read"]);
    assert!(fb.view_with(NodeId::REQUEST_ONLY, &[]).unwrap().holds.is_empty());
}
