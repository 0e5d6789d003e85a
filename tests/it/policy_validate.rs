//! `validate`: every fixture under `tests/fixtures/policy/validate` as text
//! and JSON findings; bad input (huge files, deep nesting, not UTF-8) gives
//! findings, never a panic; exit codes of `holdfast validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast::policy::validate::{self, codes, MAX_POLICY_BYTES};

/// The fixture path relative to the crate (stable in snapshots).
pub fn rel(p: &Path) -> PathBuf {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_path_buf()
}

pub fn holdfast(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn validate_fixtures() {
    insta::glob!("../fixtures/policy", "validate/*.yaml", |path| {
        let report = validate::validate_path(&rel(path));
        insta::assert_snapshot!("text", report.render());
        insta::assert_json_snapshot!("json", report.to_json());
    });
}

#[test]
fn every_lint_code_is_produced_with_its_position() {
    let r = validate::validate_path(Path::new("tests/fixtures/policy/validate/lint.yaml"));
    let got: Vec<(&str, usize, usize)> = r.findings.iter().map(|f| (f.code, f.span.line, f.span.col)).collect();
    assert_eq!(
        got,
        [
            (codes::ROLE_NEVER_BOUND, 7, 3),
            (codes::BINDING_GRANTS_NOTHING, 13, 31),
            (codes::EMPTY_GROUP_BOUND, 14, 15),
            (codes::DUPLICATE_BINDING, 16, 5),
            (codes::DUPLICATE_ASSERTION, 19, 5),
            (codes::UNKNOWN_SCOPE, 19, 68),
            (codes::UNDECLARED_SUBJECT, 20, 15),
        ]
    );
    assert_eq!(r.findings[1].hint.as_deref(), Some("did you mean application `deploy`?"));
    assert_eq!(r.findings[5].hint.as_deref(), Some("did you mean `read`?"));
}

#[test]
fn a_file_over_16_mib_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut text = String::from("users:\n");
    while (text.len() as u64) <= MAX_POLICY_BYTES {
        text.push_str("  - a-user-with-a-reasonably-long-identifier-to-fill-the-file-quickly\n");
    }
    std::fs::write(&path, &text).unwrap();
    let r = validate::validate_path(&path);
    assert!(!r.readable);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].code, codes::FILE_TOO_LARGE);
    assert!(r.findings[0].message.ends_with("is larger than the limit of 16777216 bytes (16 MiB)"), "{:?}", r.findings);
    let (code, out, _) = holdfast(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error[file_too_large]"), "{out}");
}

#[test]
fn hostile_documents_give_findings_not_panics() {
    let deep = format!("roles: {}{}\n", "{a: ".repeat(5000), "}".repeat(5000));
    let wide = format!("users: [{}]\n", (0..50_000).map(|i| format!("u{i}")).collect::<Vec<_>>().join(", "));
    for text in [deep.as_str(), wide.as_str(), "\u{feff}users: [a]", "---\n---\n", "!!binary aGk=", "[1, {"] {
        let r = validate::validate_text(text, "x.yaml");
        assert!(r.findings.iter().all(|f| !f.message.is_empty()));
    }
    let r = validate::validate_text(&deep, "x.yaml");
    assert!(r.findings[0].message.contains("depth"), "{:?}", r.findings);
}

#[test]
fn exit_codes() {
    let (code, out, _) = holdfast(&["validate", "examples/acme.yaml", "tests/fixtures/policy/validate/clean.yaml"]);
    assert_eq!((code, out.as_str()), (0, "validated 2 file(s): 0 error(s), 0 warning(s)\n"));
    let (code, out, _) = holdfast(&["validate", "tests/fixtures/policy/validate/lint.yaml"]);
    assert_eq!(code, 1, "duplicate_binding is an error: {out}");
    let (code, out, _) = holdfast(&["validate", "tests/fixtures/policy/validate/references.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(
        "tests/fixtures/policy/validate/references.yaml:11:30: error[unknown_role]: role `readr` is not declared under `roles` (did you mean `reader`?)"
    ), "{out}");
    let (code, _, _) = holdfast(&["validate", "tests/fixtures/policy/validate/not_utf8.yaml"]);
    assert_eq!(code, 2);
    let (code, out, _) = holdfast(&["validate", "--format", "json", "no/such/file.yaml"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"][0]["findings"][0]["code"], "unreadable");
    assert_eq!(v["errors"], 1);
}
