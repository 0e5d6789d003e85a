//! `test`: the assertions of a policy file and of its `tests/` folder, as a
//! test runner prints them (failures with expected, actual and the trace).

use std::path::Path;

use holdfast::model::Timestamp;
use holdfast::policy::assertions::{self, summary_line};

use super::policy_validate::holdfast;

const SUITE: &str = "tests/fixtures/policy/suite/policy.yaml";

fn now() -> Timestamp {
    Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
}

#[test]
fn suite_runs_policy_and_tests_folder() {
    let r = assertions::test_policy(Path::new(SUITE), now()).unwrap();
    assert_eq!(
        r.files,
        [SUITE, "tests/fixtures/policy/suite/tests/access.yaml", "tests/fixtures/policy/suite/tests/nested/token.yaml"]
    );
    assert_eq!((r.passed, r.failed), (7, 4));
    let failed: Vec<&str> = r.results.iter().filter(|a| !a.passed).map(|a| a.name.as_str()).collect();
    assert!(failed.iter().all(|n| n.contains("fails on purpose")), "{failed:?}");
    insta::assert_snapshot!("suite_text", format!("{}\n{}\n", r.render(), summary_line(r.passed, r.failed)));
    insta::assert_json_snapshot!("suite_json", r);
}

#[test]
fn acme_assertions_pass() {
    let r = assertions::test_policy(Path::new("examples/acme.yaml"), now()).unwrap();
    assert_eq!((r.passed, r.failed), (5, 0), "{}", r.render());
}

#[test]
fn cli_output_and_exit_codes() {
    let (code, out, _) = holdfast(&["test", "examples/acme.yaml"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().last(), Some("5 passed, 0 failed"));
    let (code, out, _) = holdfast(&["test", "--now", "2026-06-01T00:00:00Z", SUITE, "examples/acme.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().last(), Some("12 passed, 4 failed"));
    assert_eq!(out.lines().filter(|l| l.starts_with("FAILED ")).count(), 4);
    let (code, out, _) = holdfast(&["test", "--format", "json", "--now", "2026-06-01T00:00:00Z", SUITE]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["passed"].as_u64(), v["failed"].as_u64()), (Some(7), Some(4)));
    let (code, _, err) = holdfast(&["test", "tests/fixtures/policy/validate/references.yaml"]);
    assert_eq!(code, 2, "an invalid policy is invalid input: {err}");
    assert!(err.contains("error[unknown_role]"), "{err}");
    let (code, _, _) = holdfast(&["test", "no/such/policy.yaml"]);
    assert_eq!(code, 2);
}

#[test]
fn a_test_file_holds_only_assertions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), "users: [a]\n").unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(dir.path().join("tests/t.yaml"), "roles: {r: {scopes: []}}\n").unwrap();
    let e = assertions::test_policy(&dir.path().join("p.yaml"), now()).unwrap_err();
    assert!(
        e.to_string().contains("error[test_file_section]: a test file holds only `assertions`, found `roles`"),
        "{e}"
    );
}
