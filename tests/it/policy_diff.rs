//! `diff`: fixture pairs under `tests/fixtures/policy/diff` (one per change
//! kind and risk flag) as text, JSON and Markdown; the worked example; the
//! affected-subject fast path equals evaluating everyone; CI gates; `--git`.

use std::path::Path;
use std::process::Command;

use holdfast::model::{ObjectRef, ObjectType, Timestamp, Tuple};
use holdfast::policy::diff::{self, Diff, DiffOptions, Side};
use holdfast::policy::{self, Policy};
use holdfast::service::Change;
use holdfast::workload::{self, Shape};

use super::policy_validate::{holdfast, rel};

fn opts(all_subjects: bool) -> DiffOptions {
    DiffOptions { all_subjects, ..DiffOptions::new(Timestamp::parse("2026-06-01T00:00:00Z").unwrap()) }
}

fn load(path: &Path) -> Policy {
    policy::load(path).unwrap()
}

fn diff_files(base: &Path, head: &Path, all: bool) -> Diff {
    diff::diff_policies(&load(base), &load(head), &opts(all)).unwrap()
}

#[test]
fn fixture_pairs() {
    insta::glob!("../fixtures/policy", "diff/*/base.yaml", |path| {
        let base = rel(path);
        let head = base.with_file_name("head.yaml");
        let d = diff_files(&base, &head, false);
        insta::assert_snapshot!("text", diff::render_text(&d));
        insta::assert_json_snapshot!("json", d);
        insta::assert_snapshot!("markdown", diff::render_markdown(&d));
    });
}

/// Every change kind and risk flag appears in some fixture pair.
#[test]
fn fixtures_cover_every_kind_and_flag() {
    let mut changes = std::collections::BTreeSet::new();
    let mut details = std::collections::BTreeSet::new();
    let mut flags = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir("tests/fixtures/policy/diff").unwrap() {
        let dir = dir.unwrap().path();
        let d = diff_files(&dir.join("base.yaml"), &dir.join("head.yaml"), false);
        for e in d.subjects.iter().flat_map(|s| &s.entries) {
            changes.insert(e.change);
            details.extend(e.details.iter().map(|x| x.code));
        }
        flags.extend(d.risks.iter().map(|r| r.flag));
    }
    let set = |v: &[&'static str]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(changes, set(&["added", "removed", "weakened", "strengthened", "mixed", "changed"]));
    assert_eq!(
        flags,
        set(&[
            "assertion_changed",
            "fan_out",
            "mass_removal",
            "mfa_removed",
            "service_account_gained",
            "tenant_wide_grant"
        ])
    );
    for code in [
        "mfa_removed",
        "mfa_added",
        "mfa_max_age_loosened",
        "mfa_max_age_tightened",
        "ip_removed",
        "ip_added",
        "ip_widened",
        "ip_narrowed",
        "ip_changed",
        "expiry_removed",
        "expiry_added",
        "expiry_extended",
        "expiry_shortened",
        "not_before_later",
        "not_before_removed",
        "became_tenant_wide",
        "became_app_scoped",
        "role_changed",
        "path_changed",
        "path_added",
        "attribute_added",
        "attribute_removed",
        "attribute_changed",
    ] {
        assert!(details.contains(code), "no fixture shows `{code}`");
    }
}

/// The worked example: `on-call` loses its MFA condition and bob joins it.
#[test]
fn acme_on_call_loses_mfa_and_bob_joins() {
    let d = diff_files(Path::new("examples/acme.yaml"), Path::new("tests/fixtures/policy/acme_head.yaml"), false);
    let bob = d.subjects.iter().find(|s| s.subject == "user:bob").unwrap();
    let bob_deploy: Vec<(&str, &str)> =
        bob.entries.iter().filter(|e| e.application == "deploy-mcp").map(|e| (e.scope.as_str(), e.change)).collect();
    assert_eq!(bob_deploy, [("deploy:prod", "added"), ("deploy:read", "added"), ("deploy:staging", "added")]);
    let alice = d.subjects.iter().find(|s| s.subject == "user:alice").unwrap();
    let prod = alice.entries.iter().find(|e| e.application == "deploy-mcp" && e.scope == "deploy:prod").unwrap();
    assert_eq!(prod.change, "weakened");
    assert_eq!(prod.details[0].code, "mfa_removed");
    assert!(d.risks.iter().any(|r| r.flag == "mfa_removed"
        && r.subject.as_deref() == Some("user:alice")
        && r.target.contains("deploy:prod")));
    insta::assert_snapshot!("acme_text", diff::render_text(&d));
    insta::assert_json_snapshot!("acme_json", d);
    insta::assert_snapshot!("acme_markdown", diff::render_markdown(&d));
}

fn same(fast: &Diff, all: &Diff) {
    assert_eq!(fast.subjects, all.subjects);
    assert_eq!(fast.risks, all.risks);
}

#[test]
fn fast_path_equals_all_subjects_on_fixtures() {
    let mut pairs = vec![(
        Path::new("examples/acme.yaml").to_path_buf(),
        Path::new("tests/fixtures/policy/acme_head.yaml").to_path_buf(),
    )];
    for dir in std::fs::read_dir("tests/fixtures/policy/diff").unwrap() {
        let dir = dir.unwrap().path();
        pairs.push((dir.join("base.yaml"), dir.join("head.yaml")));
        pairs.push((dir.join("head.yaml"), dir.join("base.yaml")));
    }
    for (b, h) in pairs {
        let fast = diff_files(&b, &h, false);
        assert_eq!(fast.summary.mode, "affected", "{}", b.display());
        same(&fast, &diff_files(&b, &h, true));
    }
}

/// A generated tenant and a HEAD that changes memberships, bindings,
/// conditions, a role and an application: pruned and full diffs agree.
#[test]
fn fast_path_equals_all_subjects_on_a_generated_tenant() {
    let shape = Shape::for_users(3000, 7);
    let base = workload::generate(&shape);
    let mut head: Vec<Change> = Vec::new();
    // Changes below leaf subjects (users, service accounts) keep the
    // affected set small; the role and application changes reach further.
    let leaf = |t: &Tuple| t.subject.ty != ObjectType::Group;
    for (i, c) in base.iter().enumerate() {
        match c {
            Change::PutTuple(t, _) if t.relation == "member" && leaf(t) && i % 97 == 0 => {}
            Change::PutTuple(t, None) if t.relation.starts_with("role") && leaf(t) && i % 23 == 0 => {
                let mfa = serde_json::from_value(serde_json::json!({"mfa": {"max_age": "5m"}})).unwrap();
                head.push(Change::PutTuple(t.clone(), Some(mfa)));
            }
            Change::PutTuple(t, Some(_)) if t.relation.starts_with("role") && leaf(t) => {
                head.push(Change::PutTuple(t.clone(), None))
            }
            other => head.push(other.clone()),
        }
    }
    let t = |s: &str| Tuple::parse(s).unwrap();
    head.push(Change::PutTuple(t("group:g5#member@group:g900"), None));
    head.push(Change::PutTuple(t("role:role7#grants@scope:app7:s7"), None));
    head.push(Change::PutTuple(t("application:app2#supports@scope:app2:s9"), None));
    head.push(Change::PutObject(ObjectRef::new(ObjectType::ServiceAccount, "sa-new"), serde_json::json!({})));
    head.push(Change::PutTuple(t("application:app1#role1@service_account:sa-new"), None));
    let bh = policy::instantiate_changes("t", &base).unwrap();
    let hh = policy::instantiate_changes("t", &head).unwrap();
    let (bt, ht) = (bh.tenant("t").unwrap(), hh.tenant("t").unwrap());
    let (bs, hs) = (bt.read(), ht.read());
    let b = Side { source: "base", fb: bs.facts(), changes: &base };
    let h = Side { source: "head", fb: hs.facts(), changes: &head };
    let fast = diff::diff_facts(b, h, &opts(false)).unwrap();
    let all = diff::diff_facts(b, h, &opts(true)).unwrap();
    assert_eq!(fast.summary.mode, "affected", "{:?}", fast.summary);
    assert!(fast.summary.subjects_evaluated < all.summary.subjects_evaluated);
    assert!(fast.summary.subjects_changed > 50, "{:?}", fast.summary);
    same(&fast, &all);
    let md = diff::render_markdown(&fast);
    assert!(md.chars().count() <= 65_536, "fits in a GitHub comment: {}", md.len());
    assert!(md.contains("more subject(s); run `holdfast diff --format json` for all of them."));
}

#[test]
fn fail_on_gates_and_formats() {
    let (b, h) = ("examples/acme.yaml", "tests/fixtures/policy/acme_head.yaml");
    let (code, out, _) = holdfast(&["diff", b, h, "--fail-on", "removed,strengthened"]);
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = holdfast(&["diff", b, h, "--fail-on", "removed,weakened"]);
    assert_eq!((code, err.trim()), (1, "holdfast diff: failing on weakened"));
    let (code, _, _) = holdfast(&["diff", b, h, "--fail-on", "risk"]);
    assert_eq!(code, 1);
    let (code, _, err) = holdfast(&["diff", b, h, "--fail-on", "bogus"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = holdfast(&["diff", b, h, "--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("## Holdfast access diff\n"), "{out}");
    let (code, out, _) = holdfast(&["diff", b, h, "--format", "json", "--fan-out", "2"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["risks"].as_array().unwrap().iter().any(|r| r["flag"] == "fan_out"), "{v}");
    let (code, _, err) = holdfast(&["diff", b, "tests/fixtures/policy/validate/yaml_syntax.yaml"]);
    assert_eq!(code, 2);
    assert!(err.contains("error[yaml_syntax]"), "{err}");
}

#[test]
fn diff_reads_revisions_with_git() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    std::fs::copy("examples/acme.yaml", dir.path().join("policy.yaml")).unwrap();
    git(&["add", "policy.yaml"]);
    git(&["commit", "-qm", "base"]);
    std::fs::copy("tests/fixtures/policy/acme_head.yaml", dir.path().join("policy.yaml")).unwrap();
    git(&["commit", "-qam", "head"]);
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["diff", "--git", "HEAD~1:policy.yaml", "HEAD:policy.yaml", "--fail-on", "added"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("holdfast diff: HEAD~1:policy.yaml → HEAD:policy.yaml\n"), "{text}");
    assert!(text.contains("+ added        deploy-mcp deploy:prod"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["diff", "--git", "HEAD~1:missing.yaml", "HEAD:policy.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[unreadable]"));
}
