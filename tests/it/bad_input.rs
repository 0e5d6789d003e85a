//! Bad input: each a clear error naming the problem, never a panic, never a
//! half-applied write.

use holdfast::model::{ObjectRef, ObjectType, Tuple};
use holdfast::policy;
use holdfast::service::{Change, Holdfast, WriteError};

fn tuple(s: &str) -> Tuple {
    Tuple::parse(s).unwrap()
}

#[test]
fn malformed_tuples_name_input_and_position() {
    let e = Tuple::parse("group:eng#member").unwrap_err();
    assert_eq!(e.to_string(), "cannot parse `group:eng#member` at position 16: expected `@subject` after the relation");
    let e = Tuple::parse("widget:x#member@user:a").unwrap_err();
    assert!(e.to_string().contains("unknown type `widget`"), "{e}");
}

#[test]
fn unknown_relations_roles_and_apps_reject_the_whole_batch() {
    let hf = Holdfast::in_memory();
    let setup = vec![
        Change::PutObject(ObjectRef::new(ObjectType::Role, "viewer"), serde_json::json!({})),
        Change::PutObject(ObjectRef::new(ObjectType::Application, "app"), serde_json::json!({})),
        Change::PutTuple(tuple("role:viewer#grants@scope:read"), None),
        Change::PutTuple(tuple("application:app#supports@scope:read"), None),
    ];
    let rev = hf.write("t", setup, &[], "test", 0).unwrap();
    let cases = [
        ("group:eng#owner@user:a", "type `group` has no relation `owner`"),
        ("application:app#admin@user:a", "role `admin` is not defined"),
        ("application:nope#viewer@user:a", "application `nope` is not defined"),
        ("group:eng#member@scope:read", "does not accept a `scope` subject"),
        ("role:ghost#grants@scope:x", "role `ghost` is not defined"),
    ];
    for (bad, msg) in cases {
        let batch = vec![Change::PutTuple(tuple("group:eng#member@user:ok"), None), Change::PutTuple(tuple(bad), None)];
        let e = hf.write("t", batch, &[], "test", 0).unwrap_err();
        assert!(e.to_string().contains(msg), "{bad}: {e}");
        let t = hf.tenant("t").unwrap();
        let st = t.read();
        assert!(!st.tuple_exists(&tuple("group:eng#member@user:ok")), "nothing of a rejected batch lands");
        assert_eq!(st.revision(), rev);
    }
    // Conditions only on bindings.
    let e = hf
        .write("t", vec![Change::PutTuple(tuple("group:eng#member@user:a"), Some(Default::default()))], &[], "t", 0)
        .unwrap_err();
    assert!(matches!(e, WriteError::ConditionsOnNonBinding(_)), "{e}");
    // A role still bound cannot be deleted.
    hf.write("t", vec![Change::PutTuple(tuple("application:app#viewer@user:a"), None)], &[], "t", 0).unwrap();
    let e =
        hf.write("t", vec![Change::DeleteObject(ObjectRef::new(ObjectType::Role, "viewer"))], &[], "t", 0).unwrap_err();
    assert!(e.to_string().contains("role `viewer` is still used by 1 binding"), "{e}");
}

#[test]
fn policy_errors_name_file_line_and_hint() {
    let text = "roles:\n  viewer:\n    scopes: [read]\napplications:\n  app:\n    scopes_supported: [read]\nusers: [alice]\nbindings:\n  - subject: user:alice\n    role: veiwer\n    application: app\n";
    let e = policy::compile(text, "p.yaml").unwrap_err().to_string();
    assert!(e.contains("p.yaml:10:11: error[unknown_role]: role `veiwer` is not declared"), "{e}");
    assert!(e.contains("did you mean `viewer`?"), "{e}");

    let e = policy::compile("roles: [\n", "broken.yaml").unwrap_err().to_string();
    assert!(e.starts_with("broken.yaml:"), "{e}");
    assert!(e.contains("yaml_syntax"), "{e}");

    let text = "users: [alice]\ngroups:\n  eng:\n    members: [user:alise]\n";
    let e = policy::compile(text, "p.yaml").unwrap_err().to_string();
    assert!(e.contains("`user:alise` is not declared under `users`"), "{e}");
    assert!(e.contains("did you mean `user:alice`?"), "{e}");
}
