//! The worked example from the product docs (`examples/acme.yaml`).

use holdfast::explain;
use holdfast::model::{Context, MfaContext, Timestamp};
use holdfast::policy;
use holdfast::query::{self, Decision};
use holdfast::service::Holdfast;

pub fn acme() -> Holdfast {
    let p = policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml"))).unwrap();
    policy::instantiate(&p).unwrap()
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

#[test]
fn alice_has_three_entries_and_bob_pr_writer_alone() {
    let hf = acme();
    let st = hf.tenant("acme").unwrap();
    let st = st.read();
    let alice = query::effective_access(st.facts(), "user:alice", t("2026-06-01T00:00:00Z"), false).unwrap();
    let origins: Vec<(&str, &str)> = alice.entries.iter().map(|e| (e.role.as_str(), e.origin)).collect();
    assert_eq!(origins, vec![("deploy-operator", "group"), ("pr-writer", "group"), ("auditor", "direct")]);
    insta::assert_json_snapshot!("alice_effective_access", alice);
    let bob = query::effective_access(st.facts(), "user:bob", t("2026-06-01T00:00:00Z"), false).unwrap();
    assert_eq!(bob.entries.len(), 1);
    assert_eq!(bob.entries[0].role, "pr-writer");
    insta::assert_json_snapshot!("bob_effective_access", bob);
}

#[test]
fn explain_traces() {
    let hf = acme();
    let st = hf.tenant("acme").unwrap();
    let st = st.read();
    let now = t("2026-06-01T00:10:00Z");
    let no_mfa = Context::at(now);
    let ex = explain::explain(st.facts(), "user:alice", "deploy-mcp", "deploy:prod", &no_mfa).unwrap();
    assert_eq!(ex.outcome.decision, Decision::StepUp);
    insta::assert_snapshot!("alice_deploy_prod_step_up", ex.render());

    let mfa = Context {
        mfa: Some(MfaContext { present: true, auth_time: Some(t("2026-06-01T00:05:00Z")) }),
        ..no_mfa.clone()
    };
    let ex = explain::explain(st.facts(), "user:alice", "deploy-mcp", "deploy:prod", &mfa).unwrap();
    assert_eq!(ex.outcome.decision, Decision::Allow);
    insta::assert_snapshot!("alice_deploy_prod_allow", ex.render());

    let ex = explain::explain(st.facts(), "user:carol", "deploy-mcp", "deploy:prod", &mfa).unwrap();
    assert_eq!(ex.outcome.decision, Decision::Allow, "carol reaches on-call through sre");
    insta::assert_snapshot!("carol_nested_path", ex.render());

    let ex = explain::explain(st.facts(), "user:bob", "deploy-mcp", "deploy:prod", &no_mfa).unwrap();
    assert_eq!(ex.outcome.reason, "no_binding");
    insta::assert_snapshot!("bob_deploy_prod_deny", ex.render());
    insta::assert_json_snapshot!("bob_deploy_prod_deny_json", ex);
}

#[test]
fn checks_and_reasons() {
    let hf = acme();
    let st = hf.tenant("acme").unwrap();
    let st = st.read();
    let fb = &st.facts();
    let now = Context::at(t("2026-06-01T00:00:00Z"));
    let c = |s: &str, a: &str, x: &str, ctx: &Context| query::check(fb, s, a, x, ctx).unwrap();
    assert_eq!(c("user:alice", "github-mcp", "pr:write", &now).decision, Decision::Allow);
    // Tenant-wide auditor: repo:read on github-mcp, audit:read on audit-mcp.
    assert_eq!(c("user:alice", "audit-mcp", "audit:read", &now).decision, Decision::Allow);
    assert_eq!(c("user:alice", "audit-mcp", "audit:export", &now).reason, "role_lacks_scope");
    // After its expiry the auditor binding no longer applies.
    let later = Context::at(t("2027-01-01T00:00:00Z"));
    let r = c("user:alice", "audit-mcp", "audit:read", &later);
    assert_eq!((r.decision, r.reason), (Decision::Deny, "expired"));
    assert_eq!(c("user:bob", "github-mcp", "pr:write", &now).decision, Decision::Allow);
    assert_eq!(c("user:bob", "github-mcp", "admin", &now).reason, "scope_not_supported");
    assert_eq!(c("user:mallory", "github-mcp", "pr:write", &now).reason, "unknown_subject");
    assert_eq!(c("user:bob", "nope-mcp", "pr:write", &now).reason, "unknown_application");
    // The service account: IP condition, missing IP never satisfies.
    let r = c("service_account:ci-bot", "deploy-mcp", "deploy:staging", &now);
    assert_eq!((r.decision, r.reason), (Decision::Deny, "condition_unmet:ip"));
    let inside = Context { ip: Some("10.1.2.3".parse().unwrap()), ..now.clone() };
    assert_eq!(c("service_account:ci-bot", "deploy-mcp", "deploy:staging", &inside).decision, Decision::Allow);
    let ea = query::effective_access(fb, "service_account:ci-bot", now.now, false).unwrap();
    assert_eq!(ea.entries[0].origin, "service-account");
    // Who can access deploy:prod: alice and carol (through sre → on-call).
    let who = query::who_can_access(fb, "deploy-mcp", Some("deploy:prod"), now.now, None, 100).unwrap().unwrap();
    let subjects: Vec<&str> = who.entries.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, vec!["user:alice", "user:carol"]);
    // Paginated: one subject a page, never silently truncated.
    let p1 = query::who_can_access(fb, "deploy-mcp", Some("deploy:prod"), now.now, None, 1).unwrap().unwrap();
    assert_eq!(p1.entries.len(), 1);
    let tok = p1.next_page_token.clone().unwrap();
    let p2 = query::who_can_access(fb, "deploy-mcp", Some("deploy:prod"), now.now, Some(&tok), 1).unwrap().unwrap();
    assert_eq!(p2.entries[0].subject, "user:carol");
    assert!(p2.next_page_token.is_none());
}

#[test]
fn suspension_cuts_off_and_reactivation_restores() {
    use holdfast::model::{ObjectRef, ObjectType};
    use holdfast::service::{Change, Suspension};
    let hf = acme();
    let now = Context::at(t("2026-06-01T00:00:00Z"));
    let alice = ObjectRef::new(ObjectType::User, "alice");
    let allow = |hf: &Holdfast| {
        let st = hf.tenant("acme").unwrap();
        let st = st.read();
        query::check(st.facts(), "user:alice", "github-mcp", "pr:write", &now).unwrap()
    };
    assert_eq!(allow(&hf).decision, Decision::Allow);
    hf.write(
        "acme",
        vec![Change::Suspend(alice.clone(), Suspension { reason: "left".into(), at: now.now })],
        &[],
        "t",
        0,
    )
    .unwrap();
    let r = allow(&hf);
    assert_eq!((r.decision, r.reason), (Decision::Deny, "subject_suspended"));
    {
        let st = hf.tenant("acme").unwrap();
        let st = st.read();
        let ea = query::effective_access(st.facts(), "user:alice", now.now, false).unwrap();
        assert_eq!(ea.status, "suspended");
        assert_eq!(ea.entries.len(), 3, "what she would have is still listed");
        let ex = explain::explain(st.facts(), "user:alice", "github-mcp", "pr:write", &now).unwrap();
        assert_eq!(ex.bindings.iter().find(|b| b.role == "pr-writer").unwrap().verdict, "subject_suspended");
    }
    hf.write("acme", vec![Change::Reactivate(alice)], &[], "t", 0).unwrap();
    assert_eq!(allow(&hf).decision, Decision::Allow);
}
