//! Unit tests of policy-file parsing.

use super::*;
use std::{collections::BTreeSet, time::Duration};

const FULL: &str = r#"tenant: acme
applications:
  github-mcp:
    name: GitHub MCP
    resource: https://mcp.acme.example/github
    scopes_supported: [repo:read, pr:write]
  deploy-mcp:
    scopes_supported:
      - deploy:prod
roles:
  pr-writer:
    name: PR Writer
    description: Can open and update pull requests
    scopes: [repo:read, pr:write]
  deployer:
    scopes: [deploy:prod]
users:
  - alice
  - bob
  - 42
service_accounts:
  ci-bot: {name: CI bot}
  release-bot:
groups:
  engineering:
    name: Engineering
    members: [user:alice, user:bob, group:sre, service_account:ci-bot]
  sre:
    members: [user:carol]
bindings:
  - subject: group:engineering
    role: pr-writer
    application: github-mcp
    conditions:
      mfa: {required: true, max_age: 15m}
      ip: {allow: [10.0.0.0/8, "2001:db8::/32"]}
    expires_at: 2026-12-31T00:00:00Z
  - subject: user:alice
    role: deployer
    application: null
    not_before: 2026-01-01T00:00:00Z
assertions:
  - name: alice deploys with mfa
    subject: user:alice
    application: deploy-mcp
    scope: deploy:prod
    context: {mfa: {present: true}, ip: 10.1.2.3, now: 2026-06-01T00:00:00Z}
    expect: step_up
  - subject: user:bob
    expect_access: [{application: github-mcp, scopes: [repo:read]}]
"#;

fn sp(line: usize, col: usize) -> Span {
    Span { line, col }
}

fn findings(text: &str) -> Vec<Finding> {
    parse_policy(text).expect_err("expected findings")
}

/// The only finding, checking its code and position.
fn one(text: &str, code: &str, line: usize, col: usize) -> Finding {
    let fs = findings(text);
    assert_eq!(fs.len(), 1, "{fs:#?}");
    let f = fs.into_iter().next().unwrap();
    assert_eq!((f.code, f.span), (code, sp(line, col)), "{f}");
    assert_eq!(f.severity, Severity::Error);
    f
}

#[test]
fn full_file_round_trip() {
    let p = parse_policy(FULL).unwrap_or_else(|fs| panic!("{fs:#?}"));
    assert_eq!(p.tenant_id(), "acme");
    assert_eq!(p.tenant.as_ref().unwrap().span, sp(1, 9));

    assert_eq!(p.applications.len(), 2);
    let gh = &p.applications[0];
    assert_eq!(gh.id, Spanned::new("github-mcp".to_string(), sp(3, 3)));
    assert_eq!(gh.name.as_deref(), Some("GitHub MCP"));
    assert_eq!(gh.resource.as_deref(), Some("https://mcp.acme.example/github"));
    let scopes: Vec<&str> = gh.scopes_supported.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(scopes, ["repo:read", "pr:write"]);
    assert_eq!(gh.scopes_supported[1].span, sp(6, 35));
    assert_eq!(p.applications[1].scopes_supported[0].span, sp(9, 9));

    assert_eq!(p.roles[0].id.value, "pr-writer");
    assert_eq!(p.roles[0].description.as_deref(), Some("Can open and update pull requests"));
    assert_eq!(p.roles[1].name, None);

    let users: Vec<&str> = p.users.iter().map(|u| u.id.value.as_str()).collect();
    assert_eq!(users, ["alice", "bob", "42"]);
    assert_eq!(p.users[2].id.span, sp(20, 5));
    assert_eq!(p.service_accounts[0].name.as_deref(), Some("CI bot"));
    assert_eq!(p.service_accounts[1].id.value, "release-bot");

    let eng = &p.groups[0];
    assert_eq!(eng.members.len(), 4);
    assert_eq!(eng.members[2].value, ObjectRef::new(ObjectType::Group, "sre"));
    assert_eq!(eng.members[3].value, ObjectRef::new(ObjectType::ServiceAccount, "ci-bot"));
    assert_eq!(eng.members[0].span, sp(27, 15));

    let b = &p.bindings[0];
    assert_eq!(b.span, sp(31, 5));
    assert_eq!(b.subject.value, ObjectRef::new(ObjectType::Group, "engineering"));
    assert_eq!(b.role.value, "pr-writer");
    assert_eq!(b.application.as_ref().unwrap().value, "github-mcp");
    assert_eq!(b.conditions.mfa, Some(MfaCondition { required: true, max_age: Some(Duration::from_secs(900)) }));
    assert_eq!(b.conditions.ip.as_ref().unwrap().allow.len(), 2);
    assert_eq!(b.conditions.expires_at, Some(Timestamp::parse("2026-12-31T00:00:00Z").unwrap()));
    assert_eq!(b.conditions_span, Some(sp(35, 7)));
    let b2 = &p.bindings[1];
    assert_eq!(b2.application, None, "null = tenant-wide");
    assert_eq!(b2.conditions.not_before, Some(Timestamp::parse("2026-01-01T00:00:00Z").unwrap()));
    assert_eq!(b2.conditions_span, None);

    let a = &p.assertions[0];
    assert_eq!(a.span, sp(43, 5));
    assert_eq!(a.name.as_deref(), Some("alice deploys with mfa"));
    assert_eq!(a.expect.as_ref().unwrap().value, "step_up");
    assert_eq!(
        a.context,
        Some(serde_json::json!({"mfa": {"present": true}, "ip": "10.1.2.3", "now": "2026-06-01T00:00:00Z"}))
    );
    let a2 = &p.assertions[1];
    assert_eq!(a2.expect, None);
    assert_eq!(a2.expect_access, Some(serde_json::json!([{"application": "github-mcp", "scopes": ["repo:read"]}])));

    // Serializes, and the JSON form of the same policy parses to the same data (positions aside).
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["bindings"][0]["subject"]["value"], "group:engineering");
    assert_eq!(json["bindings"][0]["conditions"]["mfa"]["max_age"], "15m");
}

#[test]
fn json_policy_and_empty_file() {
    let p =
        parse_policy(r#"{"roles": {"r": {"scopes": ["a:b"]}}, "users": {"alice": {"email": "a@x.example"}}}"#).unwrap();
    assert_eq!(p.roles[0].scopes[0].value, "a:b");
    assert_eq!(p.users[0].email.as_deref(), Some("a@x.example"));
    assert_eq!(p.tenant_id(), DEFAULT_TENANT);
    // No content at all is `empty_policy` (applied, it would wipe the
    // tenant); an explicit `{}` or an empty section declares nothing.
    for empty in ["", " \n\t\n", "# nothing yet\n# really\n"] {
        let f = parse_policy(empty).unwrap_err();
        assert_eq!(f.iter().map(|f| f.code).collect::<Vec<_>>(), [codes::EMPTY_POLICY], "{empty:?}");
    }
    assert_eq!(parse_policy("{}").unwrap(), PolicyFile::default());
    assert_eq!(parse_policy("# nothing yet\nusers:\n").unwrap(), PolicyFile::default());
}

#[test]
fn yaml_syntax_and_duplicate_keys() {
    let f = one("roles:\n  r: [a\nusers: x\n", codes::YAML_SYNTAX, 3, 6);
    assert!(f.message.starts_with("yaml syntax error"), "{f}");
    let f = one("roles:\n  r:\n    scopes: []\n  r:\n    scopes: []\n", codes::DUPLICATE, 4, 3);
    assert!(f.message.contains("first at line 2"), "{f}");
    let f = one("a: &x 1\nb: *x\n", codes::YAML_SYNTAX, 2, 4);
    assert!(f.message.contains("aliases are not supported"), "{f}");
    let f = one(&"[".repeat(10_000), codes::YAML_SYNTAX, 1, 256);
    assert!(f.message.contains("depth"), "{f}");
}

#[test]
fn wrong_types() {
    let f = one("roles:\n  pr-writer:\n    scopes: {a: b}\n", codes::WRONG_TYPE, 3, 13);
    assert_eq!(f.message, "`roles.pr-writer.scopes` must be a list of scopes (strings), found a map");
    one("- a\n", codes::WRONG_TYPE, 1, 1);
    one("users: 3\n", codes::WRONG_TYPE, 1, 8);
    one("bindings: {a: 1}\n", codes::WRONG_TYPE, 1, 11);
    one("applications:\n  a:\n    name: [x]\n    scopes_supported: []\n", codes::WRONG_TYPE, 3, 11);
    one("groups:\n  g: {members: [1]}\n", codes::WRONG_TYPE, 2, 17);
    one("assertions:\n  - {subject: user:a, expect_access: [], context: 3}\n", codes::WRONG_TYPE, 2, 51);
}

#[test]
fn unknown_keys_with_hints() {
    let fs = findings("roles:\n  r:\n    scope: [a]\n");
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert_eq!((fs[0].code, fs[0].span), (codes::MISSING_KEY, sp(2, 3)), "then `scopes` is missing");
    assert_eq!((fs[1].code, fs[1].span), (codes::UNKNOWN_KEY, sp(3, 5)));
    assert_eq!(fs[1].message, "unknown key `scope` in `roles.r`");
    assert_eq!(fs[1].hint.as_deref(), Some("did you mean `scopes`?"));
    // `scopes` is then also missing.
    let fs = findings("roles:\n  r:\n    scope: [a]\n    scopes: [b]\n    colour: red\n");
    assert_eq!(fs.len(), 2, "{fs:#?}");
    assert_eq!(fs[1].code, codes::UNKNOWN_KEY);
    assert!(fs[1].hint.as_deref().unwrap().starts_with("allowed keys: "), "{:?}", fs[1].hint);
    let f = one("Users: [a]\n", codes::UNKNOWN_KEY, 1, 1);
    assert_eq!(f.hint.as_deref(), Some("did you mean `users`?"));
    one("bindings:\n  - {subject: user:a, role: r, app: x}\n", codes::UNKNOWN_KEY, 2, 32);
}

#[test]
fn missing_keys() {
    let fs = findings("roles:\n  r: {name: R}\n");
    assert_eq!((fs[0].code, fs[0].span), (codes::MISSING_KEY, sp(2, 3)));
    assert_eq!(fs[0].message, "`roles.r` is missing `scopes`");
    one("applications:\n  a: {}\n", codes::MISSING_KEY, 2, 3);
    one("groups:\n  g:\n    name: G\n", codes::MISSING_KEY, 2, 3);
    let fs = findings("bindings:\n  - application: x\n");
    assert_eq!(fs.len(), 2, "subject and role: {fs:#?}");
    assert!(fs.iter().all(|f| f.code == codes::MISSING_KEY && f.span == sp(2, 5)));
    one("assertions:\n  - subject: user:a\n", codes::MISSING_KEY, 2, 5);
    one("assertions:\n  - {subject: user:a, expect: allow}\n", codes::MISSING_KEY, 2, 5);
}

#[test]
fn invalid_ids_and_references() {
    let f = one("users: [alice, \"b ob\"]\n", codes::INVALID_ID, 1, 16);
    assert!(f.message.contains("contains ` `"), "{f}");
    one("roles:\n  \"a/b\": {scopes: []}\n", codes::INVALID_ID, 2, 3);
    one("tenant: \"\"\n", codes::INVALID_ID, 1, 9);
    one("roles:\n  r: {scopes: [\"x y\"]}\n", codes::INVALID_ID, 2, 16);
    let f = one("groups:\n  g: {members: [alice]}\n", codes::INVALID_REFERENCE, 2, 17);
    assert_eq!(f.hint.as_deref(), Some("did you mean `user:alice` or `group:alice`?"));
    let f = one("groups:\n  g: {members: [usr:alice]}\n", codes::INVALID_REFERENCE, 2, 17);
    assert_eq!(f.hint.as_deref(), Some("did you mean `user:alice`?"));
    let f = one("groups:\n  g: {members: [role:admin]}\n", codes::INVALID_REFERENCE, 2, 17);
    assert!(f.message.contains("user, group or service account"), "{f}");
    one("bindings:\n  - {subject: tenant, role: r}\n", codes::INVALID_REFERENCE, 2, 15);
}

#[test]
fn invalid_conditions() {
    let b = |c: &str| format!("bindings:\n  - subject: user:a\n    role: r\n    conditions: {c}\n");
    let f = one(&b("{mfaa: {}}"), codes::INVALID_CONDITION, 4, 18);
    assert_eq!(f.hint.as_deref(), Some("did you mean `mfa`?"));
    assert!(f.message.starts_with("unknown condition `mfaa`"), "{f}");
    let f = one(&b("{mfa: {max_age: soon}}"), codes::INVALID_CONDITION, 4, 33);
    assert!(f.message.contains("not a duration"), "{f}");
    one(&b("{mfa: {max_age: 900}}"), codes::INVALID_CONDITION, 4, 33);
    one(&b("{mfa: {required: yes}}"), codes::INVALID_CONDITION, 4, 34);
    let f = one(&b("{ip: {allow: [10.0.0.0/8, 10.0.0.0/99]}}"), codes::INVALID_CONDITION, 4, 43);
    assert!(f.message.contains("not an IP range"), "{f}");
    one(&b("{ip: {allow: []}}"), codes::INVALID_CONDITION, 4, 30);
    let fs = findings(&b("{ip: {allwo: [1.2.3.4]}}"));
    let got: Vec<(&str, Span)> = fs.iter().map(|f| (f.code, f.span)).collect();
    assert_eq!(got, [(codes::MISSING_KEY, sp(4, 22)), (codes::INVALID_CONDITION, sp(4, 23))]);
    assert_eq!(fs[1].hint.as_deref(), Some("did you mean `allow`?"));
    let f = one(&b("{expires_at: tomorrow}"), codes::INVALID_CONDITION, 4, 30);
    assert!(f.message.contains("RFC 3339"), "{f}");
    let both = "bindings:\n  - subject: user:a\n    role: r\n    conditions: {expires_at: 2026-01-01T00:00:00Z}\n    expires_at: 2026-02-01T00:00:00Z\n";
    one(both, codes::INVALID_CONDITION, 5, 5);
    let empty_window = "bindings:\n  - subject: user:a\n    role: r\n    not_before: 2026-02-01T00:00:00Z\n    expires_at: 2026-01-01T00:00:00Z\n";
    one(empty_window, codes::INVALID_CONDITION, 4, 17);
    // mfa with defaults.
    let p = parse_policy(&b("{mfa: {}}")).unwrap();
    assert_eq!(p.bindings[0].conditions.mfa, Some(MfaCondition { required: true, max_age: None }));
}

#[test]
fn invalid_expect() {
    let f = one("assertions:\n  - {subject: user:a, scope: s, expect: alow}\n", codes::INVALID_EXPECT, 2, 41);
    assert_eq!(f.hint.as_deref(), Some("did you mean `allow`?"));
    let f = one("assertions:\n  - {subject: user:a, scope: s, expect: true}\n", codes::INVALID_EXPECT, 2, 41);
    assert!(f.message.contains("`true`"), "{f}");
}

#[test]
fn duplicates_name_the_first_line() {
    let f = one("users:\n  - alice\n  - bob\n  - alice\n", codes::DUPLICATE, 4, 5);
    assert!(f.message.contains("first at line 2"), "{f}");
    one("users:\n  1: {}\n  \"1\": {}\n", codes::DUPLICATE, 3, 3);
    let f = one("groups:\n  g:\n    members:\n      - user:a\n      - user:a\n", codes::DUPLICATE, 5, 9);
    assert!(f.message.contains("first at line 4"), "{f}");
    one("roles:\n  r: {scopes: [a, b, a]}\n", codes::DUPLICATE, 2, 22);
}

#[test]
fn invalid_resource_uri() {
    one("applications:\n  a: {resource: not a uri, scopes_supported: []}\n", codes::INVALID_VALUE, 2, 17);
    one(
        "applications:\n  a: {resource: \"https://x.example/#frag\", scopes_supported: []}\n",
        codes::INVALID_VALUE,
        2,
        17,
    );
}

#[test]
fn all_findings_are_collected_in_order() {
    let text =
        "tenant: \"a b\"\nroles:\n  r: {scopes: 1}\nusers: [\"\"]\nbindings:\n  - {subject: x, role: r, colour: red}\n";
    let fs = findings(text);
    let codes: Vec<&str> = fs.iter().map(|f| f.code).collect();
    assert_eq!(codes, ["invalid_id", "wrong_type", "invalid_id", "invalid_reference", "unknown_key"], "{fs:#?}");
    let lines: Vec<usize> = fs.iter().map(|f| f.span.line).collect();
    assert_eq!(lines, [1, 3, 4, 6, 6]);
    assert!(fs[0].to_string().starts_with("1:9: error[invalid_id]: "), "{}", fs[0]);
}

#[test]
fn did_you_mean_helper() {
    let keys = ["scopes", "name", "description"];
    assert_eq!(did_you_mean("scope", keys), Some("scopes"));
    assert_eq!(did_you_mean("scpoes", keys), Some("scopes"));
    assert_eq!(did_you_mean("NAME", keys), Some("name"));
    assert_eq!(did_you_mean("Description", keys), Some("description"));
    assert_eq!(did_you_mean("colour", keys), None);
    assert_eq!(did_you_mean("x", ["ip", "mfa"]), None);
    assert_eq!(did_you_mean("mfaa", ["ip", "mfa"]), Some("mfa"));
    assert_eq!(did_you_mean("", ["ip"]), None);
    assert_eq!(did_you_mean(&"z".repeat(100_000), ["ip"]), None);
    assert_eq!(levenshtein("kitten", "sitting"), 3);
    assert_eq!(levenshtein("", "abc"), 3);
}

#[test]
fn hostile_inputs_never_panic() {
    for text in [
        "\u{0}",
        "[]",
        "42",
        "\"x\"",
        "~",
        "{users: {a: [1]}}",
        "{groups: {g: null}}",
        "{roles: {r: {scopes: null}}}",
        "{bindings: [null, 1, []]}",
        "{assertions: [{subject: null, expect: [1]}]}",
        "{? [a] : 1}",
        "{1: 2}",
        "{bindings: [{subject: user:a, role: r, conditions: [1]}]}",
        "{users: {null: ~}}",
    ] {
        let _ = parse_policy(text);
    }
}

fn keys_of(v: &serde_json::Value) -> BTreeSet<String> {
    v["properties"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|s| s.to_string()).collect()
}

#[test]
fn schema_matches_parser_keys() {
    let schema: serde_json::Value = serde_json::from_str(include_str!("../../../schema/policy.schema.json")).unwrap();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(keys_of(&schema), set(TOP_LEVEL_KEYS));
    assert_eq!(schema["additionalProperties"], false);
    let defs = &schema["$defs"];
    for (def, keys) in [
        ("application", APPLICATION_KEYS),
        ("role", ROLE_KEYS),
        ("subjectDetails", SUBJECT_KEYS),
        ("group", GROUP_KEYS),
        ("binding", BINDING_KEYS),
        ("conditions", CONDITION_KEYS),
        ("mfaCondition", MFA_KEYS),
        ("ipCondition", IP_KEYS),
        ("attributeTest", crate::model::attributes::TEST_KEYS),
        ("assertion", ASSERTION_KEYS),
        ("owns", OWNS_KEYS),
        ("identityProvider", IDENTITY_PROVIDER_KEYS),
    ] {
        assert_eq!(keys_of(&defs[def]), set(keys), "$defs.{def}");
        assert_eq!(defs[def]["additionalProperties"], false, "$defs.{def}");
    }
    let expect: Vec<&str> = defs["assertion"]["properties"]["expect"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(expect, EXPECT_VALUES);
    let ops: Vec<&str> = defs["attributeTest"]["properties"]["op"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(ops, crate::model::attributes::OPS);
}

#[test]
fn attribute_conditions_and_assertion_attributes() {
    let text = "\
tenant: t
applications: {app: {scopes_supported: [delete]}}
roles: {deleter: {scopes: [delete]}}
users: {alice: {}}
bindings:
  - subject: user:alice
    role: deleter
    application: app
    conditions:
      attributes:
        - {attribute: action.soft, op: eq, value: true}
        - {attribute: subject.team, op: in, value: [sre, 7, false]}
assertions:
  - {subject: user:alice, application: app, scope: delete, attributes: {action: {soft: true}}, expect: deny}
";
    let p = parse_policy(text).unwrap();
    let b = &p.bindings[0];
    assert_eq!(b.conditions.summary(), r#"action.soft eq true, subject.team in ["sre", 7, false]"#);
    let a = p.assertions[0].attributes.as_ref().unwrap();
    assert_eq!(a.action["soft"], serde_json::json!(true));
}

#[test]
fn malformed_attribute_tests_are_reported_where_written() {
    let findings = |cond: &str| {
        let text = format!(
            "tenant: t\nroles: {{r: {{scopes: [x]}}}}\nusers: {{alice: {{}}}}\nbindings:\n  - subject: user:alice\n    role: r\n    conditions:\n      attributes:\n{cond}"
        );
        let err = parse_policy(&text).unwrap_err();
        err.iter().map(|f| (f.code, f.span.line, f.span.col, f.message.clone())).collect::<Vec<_>>()
    };
    let f = findings("        - {attribute: action.soft, op: gt, value: true}\n");
    assert_eq!((f[0].0, f[0].1, f[0].2), ("invalid_condition", 9, 40), "{f:?}");
    assert!(
        f[0].3.contains("bindings[0].conditions.attributes[0].op") && f[0].3.contains("unknown operator `gt`"),
        "{f:?}"
    );
    let f = findings("        - {attribute: user.team, op: eq, value: sre}\n");
    assert_eq!((f[0].1, f[0].2), (9, 23), "{f:?}");
    assert!(f[0].3.contains("unknown namespace `user`"), "{f:?}");
    let f = findings("        - {attribute: subject.team, op: in, value: [sre, {x: 1}]}\n");
    assert!(f[0].3.contains("attributes[0].value[1]"), "{f:?}");
    assert_eq!((f[0].1, f[0].2), (9, 58), "{f:?}");
    let f = findings("        - {attribute: subject.team, op: eq, value: sre, extra: 1}\n");
    assert_eq!(f[0].0, "invalid_condition", "{f:?}");
    assert!(f[0].3.contains("extra"), "{f:?}");
    let f = findings("        []\n");
    assert!(f[0].3.contains("empty list tests nothing"), "{f:?}");
}
