//! Attribute conditions against a small, obviously-correct reference
//! evaluator: a request value and a test's values are compared as
//! canonical `type:value` strings in a `BTreeSet`, and a missing (or
//! non-scalar) value satisfies no test, whatever the operator. Then whole
//! decisions: a user with random bindings, each with random attribute
//! tests, is allowed exactly when one binding whose role grants the scope
//! has every test satisfied; check and explain agree, and explain names a
//! failed attribute for every unmet granting binding.

use std::collections::BTreeSet;

use holdfast::engine::FactBase;
use holdfast::model::{Attributes, Conditions, Context, ObjectRef, ObjectType, Timestamp};
use holdfast::query::{self, Decision};
use proptest::prelude::*;
use serde_json::{json, Value};

const PATHS: [&str; 4] = ["subject.team", "resource.status", "action.soft", "context.device.level"];
const OPS: [&str; 4] = ["eq", "ne", "in", "not_in"];

/// A small universe of values, with lookalikes of other types (`"1"` / `1`
/// / `1.0`, `"true"` / `true`).
fn universe() -> Vec<Value> {
    vec![
        json!("sre"),
        json!("ops"),
        json!("1"),
        json!(1),
        json!(1.0),
        json!(2),
        json!(true),
        json!(false),
        json!("true"),
    ]
}

/// The reference: canonical text of a scalar (`None` for anything else).
fn canon(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(format!("s:{s}")),
        Value::Number(n) => Some(format!("n:{}", n.as_f64()?)),
        Value::Bool(b) => Some(format!("b:{b}")),
        _ => None,
    }
}

fn ref_holds(op: &str, values: &[Value], actual: Option<&Value>) -> bool {
    let Some(a) = actual.and_then(canon) else { return false };
    let set: BTreeSet<String> = values.iter().filter_map(canon).collect();
    match op {
        "eq" | "in" => set.contains(&a),
        _ => !set.contains(&a),
    }
}

#[derive(Debug, Clone)]
struct TestSpec {
    path: usize,
    op: usize,
    values: Vec<usize>,
}

impl TestSpec {
    fn json(&self) -> Value {
        let u = universe();
        let op = OPS[self.op];
        let value = if op == "eq" || op == "ne" {
            u[self.values[0]].clone()
        } else {
            Value::Array(self.values.iter().map(|&i| u[i].clone()).collect())
        };
        json!({"attribute": PATHS[self.path], "op": op, "value": value})
    }
    fn values(&self) -> Vec<Value> {
        let u = universe();
        let op = OPS[self.op];
        let n = if op == "eq" || op == "ne" { 1 } else { self.values.len() };
        self.values[..n].iter().map(|&i| u[i].clone()).collect()
    }
}

fn test_spec() -> impl Strategy<Value = TestSpec> {
    (0..PATHS.len(), 0..OPS.len(), proptest::collection::vec(0..universe().len(), 1..4))
        .prop_map(|(path, op, values)| TestSpec { path, op, values })
}

/// Request attributes: each path absent, a scalar from the universe, or a
/// non-scalar (null, a list, an object).
fn request() -> impl Strategy<Value = Vec<Option<Value>>> {
    let value = prop_oneof![
        3 => Just(None),
        6 => (0..universe().len()).prop_map(|i| Some(universe()[i].clone())),
        1 => Just(Some(Value::Null)),
        1 => Just(Some(json!(["sre"]))),
        1 => Just(Some(json!({"k": "sre"}))),
    ];
    proptest::collection::vec(value, PATHS.len())
}

fn attributes(values: &[Option<Value>]) -> Attributes {
    let mut a = Attributes::default();
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            a.set(&holdfast::model::attributes::AttributePath::parse(PATHS[i]).unwrap(), v.clone()).unwrap();
        }
    }
    a
}

/// Does any value of the universe pass every test (the reference for
/// "these tests admit no value")? The values tests name are all in the
/// universe, and a value outside it fails every `eq`/`in`.
fn req_universe_passes(tests: &[TestSpec]) -> bool {
    let by_path = |p: usize| tests.iter().filter(move |t| t.path == p);
    (0..PATHS.len()).all(|p| {
        by_path(p).next().is_none()
            || universe().iter().any(|v| by_path(p).all(|t| ref_holds(OPS[t.op], &t.values(), Some(v))))
            || by_path(p).all(|t| OPS[t.op] == "ne" || OPS[t.op] == "not_in")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn one_test_agrees_with_the_reference(t in test_spec(), req in request()) {
        let c = Conditions::from_json(&json!({"attributes": [t.json()]})).unwrap();
        let a = attributes(&req);
        let want = ref_holds(OPS[t.op], &t.values(), req[t.path].as_ref());
        let got = c.failed_attribute(&a).is_none();
        prop_assert_eq!(got, want, "{} against {:?}", t.json(), req);
        if req[t.path].is_none() {
            prop_assert!(!got, "a missing attribute never satisfies");
        }
    }

    #[test]
    fn decisions_agree_with_the_reference(
        bindings in proptest::collection::vec((0usize..3, proptest::collection::vec(test_spec(), 0..3)), 1..5),
        req in request(),
    ) {
        // role0 grants `x`, role1 grants `x` and `y`, role2 grants `y`.
        let grants = [vec!["x"], vec!["x", "y"], vec!["y"]];
        let mut fb = FactBase::default();
        fb.define_app("app", &["x", "y"]);
        for (i, g) in grants.iter().enumerate() {
            fb.define_role(&format!("role{i}"), g);
        }
        let alice = ObjectRef::new(ObjectType::User, "alice");
        fb.declare_node(&alice, true);
        let app = ObjectRef::new(ObjectType::Application, "app");
        // One binding per role (a later one for the same role replaces it).
        let mut per_role: Vec<Option<Vec<TestSpec>>> = vec![None; 3];
        for (role, tests) in &bindings {
            let json_tests: Vec<Value> = tests.iter().map(TestSpec::json).collect();
            let c = if json_tests.is_empty() {
                Conditions::default()
            } else {
                match Conditions::from_json(&json!({"attributes": json_tests})) {
                    Ok(c) => c,
                    // Tests that admit no value together are refused; the
                    // reference agrees that nothing passes them.
                    Err(e) => {
                        prop_assert!(e.message.contains("admit no value"), "{}", e);
                        let all = req_universe_passes(tests);
                        prop_assert!(!all, "refused tests that some value passes: {:?}", tests);
                        continue;
                    }
                }
            };
            fb.put_binding(&app, &format!("role{role}"), &alice, c);
            per_role[*role] = Some(tests.clone());
        }
        let ctx = Context { attributes: attributes(&req), ..Context::at(Timestamp(1_800_000_000)) };
        for scope in ["x", "y"] {
            let granting: Vec<&Vec<TestSpec>> = per_role
                .iter()
                .enumerate()
                .filter(|(r, _)| grants[*r].contains(&scope))
                .filter_map(|(_, t)| t.as_ref())
                .collect();
            let satisfied = |tests: &Vec<TestSpec>| {
                tests.iter().all(|t| ref_holds(OPS[t.op], &t.values(), req[t.path].as_ref()))
            };
            let want = if granting.iter().any(|t| satisfied(t)) {
                (Decision::Allow, "granted")
            } else if per_role.iter().all(Option::is_none) {
                (Decision::Deny, "no_binding")
            } else if granting.is_empty() {
                (Decision::Deny, "role_lacks_scope")
            } else {
                (Decision::Deny, "condition_unmet:attribute")
            };
            let got = query::check(&fb, "user:alice", "app", scope, &ctx).unwrap();
            prop_assert_eq!((got.decision, got.reason), want, "scope {}", scope);
            let ex = holdfast::explain::explain(&fb, "user:alice", "app", scope, &ctx).unwrap();
            prop_assert_eq!((ex.outcome.decision, ex.outcome.reason), want, "explain, scope {}", scope);
            for b in &ex.bindings {
                let unmet = b.condition_result == Some("condition_unmet:attribute");
                prop_assert_eq!(unmet, b.failed_attribute.is_some(), "{:?}", b);
                if let Some(f) = &b.failed_attribute {
                    let path = holdfast::model::attributes::AttributePath::parse(&f.attribute).unwrap();
                    prop_assert_eq!(f.actual.as_ref(), ctx.attributes.get(&path));
                }
            }
        }
    }
}
