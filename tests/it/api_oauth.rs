//! Issue 4 over HTTP, on a real server on 127.0.0.1:0: conditions on
//! bindings, step-up, expiry, suspension, token scope, opaque tokens,
//! RFC 7662 introspection (with a real OAuth client library), RFC 7009
//! revocation and RFC 9728 metadata.

use serde_json::{json, Value};

use super::api_support::{acme_state, b64, fixed_now, Client, Response, Server, ADMIN, READER, WRITER};

const T: &str = "/v1/tenants/acme";

/// RFC 6749 §2.3.1: each part form-urlencoded, then base64.
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", b64(format!("{}:{}", enc(id), enc(secret)).as_bytes()))
}

/// `user:alice`'s MFA five minutes before the fixed clock.
fn fresh_mfa() -> Value {
    json!({"mfa": {"present": true, "auth_time": "2026-05-31T23:55:00Z"}})
}

/// Client credentials for an application: (client_id, client_secret).
async fn credentials(c: &mut Client, app: &str) -> (String, String) {
    let r = c.json("POST", &format!("{T}/applications/{app}/credentials"), WRITER, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let b = r.json();
    (b["client_id"].as_str().unwrap().to_string(), b["client_secret"].as_str().unwrap().to_string())
}

async fn mint(c: &mut Client, body: Value) -> Response {
    c.json("POST", &format!("{T}/tokens"), WRITER, &body).await
}

async fn mint_ok(c: &mut Client, body: Value) -> String {
    let r = mint(c, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()["access_token"].as_str().unwrap().to_string()
}

async fn introspect(c: &mut Client, auth: &str, token: &str, client_ip: Option<&str>) -> Response {
    let mut form = format!("token={token}&token_type_hint=access_token");
    if let Some(ip) = client_ip {
        form.push_str(&format!("&client_ip={}", ip.replace(':', "%3A")));
    }
    c.send(
        "POST",
        "/oauth2/introspect",
        &[("authorization", auth), ("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await
}

/// The introspection answer, which must be a 200.
async fn active(c: &mut Client, auth: &str, token: &str, client_ip: Option<&str>) -> Value {
    let r = introspect(c, auth, token, client_ip).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn redact(mut v: Value) -> Value {
    for k in ["revision", "access_token", "client_id", "client_secret", "iat", "exp", "created_at", "suspended_at"] {
        // A client id is redacted only when Holdfast generated it (`hfc_…`).
        let keep = |x: &Value| x.is_null() || (k == "client_id" && !x.as_str().is_some_and(|s| s.starts_with("hfc_")));
        if let Some(x) = v.get_mut(k).filter(|x| !keep(x)) {
            *x = json!(format!("[{k}]"));
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_example_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;

    // Step-up without MFA: the RFC 9470 challenge, and what an MCP client needs in the body.
    let check = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:prod"});
    let r = c.json("POST", &format!("{T}/check"), READER, &check).await;
    assert_eq!(r.status, 200);
    let challenge = r.header("www-authenticate").unwrap().to_string();
    assert!(challenge.starts_with("Bearer error=\"insufficient_user_authentication\""), "{challenge}");
    assert!(challenge.contains("acr_values=\"mfa\"") && challenge.ends_with("max_age=900"), "{challenge}");
    insta::assert_json_snapshot!("alice_step_up", redact(r.json()));

    let mut with_mfa = check.clone();
    with_mfa["context"] = fresh_mfa();
    let r = c.json("POST", &format!("{T}/check"), READER, &with_mfa).await;
    assert_eq!((r.json()["decision"].as_str(), r.header("www-authenticate")), (Some("allow"), None));

    // The tenant-wide Auditor binding applies until 2027-01-01, not from then on.
    let audit = |now: &str| json!({"subject": "user:alice", "application": "audit-mcp", "scope": "audit:read", "context": {"now": now}});
    let r = c.json("POST", &format!("{T}/check"), READER, &audit("2026-12-31T23:59:59Z")).await;
    assert_eq!(r.json()["decision"], "allow");
    let r = c.json("POST", &format!("{T}/check"), READER, &audit("2027-01-01T00:00:00Z")).await;
    assert_eq!((r.json()["decision"].as_str(), r.json()["reason"].as_str()), (Some("deny"), Some("expired")));
    let ea = format!("{T}/subjects/user:alice/effective-access?now=2027-01-02T00:00:00Z");
    let listed = |b: &Value| -> Vec<(String, String)> {
        b["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["binding"].as_str().unwrap().to_string(), e["status"].as_str().unwrap().to_string()))
            .collect()
    };
    let hidden = listed(&c.get(&ea, READER).await.json());
    assert!(!hidden.iter().any(|(b, _)| b == "tenant#auditor@user:alice"), "{hidden:?}");
    let shown = listed(&c.get(&format!("{ea}&include=expired"), READER).await.json());
    assert!(shown.contains(&("tenant#auditor@user:alice".into(), "expired".into())), "{shown:?}");

    // A token for alice's MCP client, minted after MFA, introspected by deploy-mcp.
    let (id, secret) = credentials(&mut c, "deploy-mcp").await;
    let rs = basic(&id, &secret);
    let r = mint(
        &mut c,
        json!({"subject": "user:alice", "resource": "https://mcp.acme.example/deploy",
               "client_id": "claude-desktop", "context": fresh_mfa()}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    insta::assert_json_snapshot!("mint", redact(r.json()));
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("hf_at_") && token.len() == 6 + 64);
    let all = "deploy:prod deploy:read deploy:staging";
    let body = active(&mut c, &rs, &token, None).await;
    assert_eq!(body["scope"], all);
    insta::assert_json_snapshot!("introspection_active", redact(body));

    // Suspended: exactly {"active": false}; checks deny; access is listed as suspended.
    let r =
        c.json("POST", &format!("{T}/subjects/user:alice/suspend"), WRITER, &json!({"reason": "laptop lost"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    insta::assert_json_snapshot!("suspended", redact(r.json()));
    let suspended_at: u64 = r.json()["revision"].as_str().unwrap().parse().unwrap();
    let r = introspect(&mut c, &rs, &token, None).await;
    assert_eq!((r.status, r.text()), (200, r#"{"active":false}"#.to_string()));
    let mut at = with_mfa.clone();
    at["at_least"] = json!(suspended_at);
    let r = c.json("POST", &format!("{T}/check"), READER, &at).await;
    assert_eq!((r.json()["decision"].as_str(), r.json()["reason"].as_str()), (Some("deny"), Some("subject_suspended")));
    let ea = c.get(&format!("{T}/subjects/user:alice/effective-access"), READER).await.json();
    assert_eq!(ea["status"], "suspended");
    assert!(listed(&ea).iter().all(|(_, s)| s == "suspended"), "{ea}");
    assert_eq!(listed(&ea).len(), 3, "bindings are not rewritten: {ea}");
    let st = c.get(&format!("{T}/subjects/user:alice/status"), READER).await.json();
    assert_eq!((st["status"].as_str(), st["reason"].as_str()), (Some("suspended"), Some("laptop lost")));
    let r = mint(&mut c, json!({"subject": "user:alice", "application": "deploy-mcp", "client_id": "x"})).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (403, Some("invalid_scope")));
    assert!(r.text().contains("subject_suspended"), "{}", r.text());

    // Reactivated: everything as it was.
    let r = c.json("POST", &format!("{T}/subjects/user:alice/reactivate"), WRITER, &json!({})).await;
    assert_eq!(r.json()["status"], "active");
    assert_eq!(active(&mut c, &rs, &token, None).await["scope"], all);

    // Removing a binding narrows the existing token at its next introspection.
    let del = format!("{T}/bindings?binding=application:deploy-mcp%23deploy-operator@group:on-call");
    let r = c.send("DELETE", &del, &[("authorization", &format!("Bearer {WRITER}"))], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = active(&mut c, &rs, &token, None).await;
    assert_eq!((body["active"].as_bool(), body["scope"].as_str()), (Some(true), Some("deploy:read")));

    // The change feed records token writes, never the token.
    let feed = c.get(&format!("{T}/changes?since=1"), READER).await;
    let text = feed.text();
    assert!(text.contains("\"op\":\"token_issued\"") && text.contains("\"op\":\"credential_created\""), "{text}");
    assert!(!text.contains(&token[6..]) && !text.contains(&secret[6..]), "no token or secret in the feed");
    let issued: Vec<Value> = feed.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ops"].as_array().unwrap().clone())
        .filter(|op| op["op"] == "token_issued")
        .map(|mut op| {
            op["token_id"] = json!("[token_id]");
            op["exp"] = json!("[exp]");
            op
        })
        .collect();
    insta::assert_json_snapshot!("feed_token_issued", issued);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_context_never_satisfies_a_condition() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let check = |subject: &str, scope: &str, ctx: Option<Value>| {
        let mut b = json!({"subject": subject, "application": "deploy-mcp", "scope": scope});
        if let Some(x) = ctx {
            b["context"] = x;
        }
        b
    };
    let cases = [
        (check("service_account:ci-bot", "deploy:staging", None), "deny", "condition_unmet:ip"),
        (check("service_account:ci-bot", "deploy:staging", Some(json!({}))), "deny", "condition_unmet:ip"),
        (check("service_account:ci-bot", "deploy:staging", Some(json!({"ip": "10.2.3.4"}))), "allow", "granted"),
        (
            check("user:alice", "deploy:prod", Some(json!({"mfa": {"present": false}}))),
            "step_up",
            "step_up_required:mfa",
        ),
        // MFA present but without `auth_time` cannot prove it is younger than max_age.
        (
            check("user:alice", "deploy:prod", Some(json!({"mfa": {"present": true}}))),
            "step_up",
            "step_up_required:mfa",
        ),
    ];
    for (body, decision, reason) in cases {
        let r = c.json("POST", &format!("{T}/check"), READER, &body).await.json();
        assert_eq!((r["decision"].as_str(), r["reason"].as_str()), (Some(decision), Some(reason)), "{body}");
    }
    // Token scope: the same rule, with the token vocabulary of reasons.
    let r = c
        .json(
            "POST",
            &format!("{T}/token-scope"),
            READER,
            &json!({"subject": "user:alice", "application": "deploy-mcp",
                    "requested_scope": "deploy:prod deploy:read pr:write nope", "client_id": "claude-desktop"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    insta::assert_json_snapshot!("token_scope_alice_without_mfa", redact(r.json()));
    let r = c
        .json(
            "POST",
            &format!("{T}/token-scope"),
            READER,
            &json!({"subject": "service_account:ci-bot", "application": "deploy-mcp"}),
        )
        .await
        .json();
    assert_eq!(r["requested"], json!(["deploy:staging"]), "absent requested_scope = everything entitled");
    assert_eq!(r["blocked"], json!([{"scope": "deploy:staging", "reason": "condition_unmet:ip"}]));
    let r = c
        .json(
            "POST",
            &format!("{T}/token-scope"),
            READER,
            &json!({"subject": "user:bob", "application": "deploy-mcp", "requested_scope": "deploy:read"}),
        )
        .await
        .json();
    assert_eq!(r["blocked"], json!([{"scope": "deploy:read", "reason": "not_entitled"}]));
    // Expired: alice's auditor binding is the only way to audit:read.
    let r = c
        .json(
            "POST",
            &format!("{T}/token-scope"),
            READER,
            &json!({"subject": "user:alice", "application": "audit-mcp", "context": {"now": "2027-06-01T00:00:00Z"}}),
        )
        .await
        .json();
    assert_eq!(r["blocked"], json!([{"scope": "audit:read", "reason": "expired"}]));
    // Bad requests name the problem.
    for (body, needle) in [
        (json!({"subject": "user:alice"}), "give `application`"),
        (json!({"subject": "user:alice", "application": "deploy-mcp", "requested_scope": " "}), "is empty"),
        (json!({"subject": "user:alice", "application": "deploy-mcp", "resource": "https://x"}), "not both"),
        (json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "x"}), "unknown field `scope`"),
    ] {
        let r = c.json("POST", &format!("{T}/token-scope"), READER, &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains(needle), "{body}: {}", r.text());
    }
    let r = c
        .json(
            "POST",
            &format!("{T}/token-scope"),
            READER,
            &json!({"subject": "user:alice", "resource": "https://nope"}),
        )
        .await;
    assert_eq!(r.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_ranges_and_edges_through_introspection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    // ci-bot's binding, replaced with an IPv4 and an IPv6 range.
    let b = json!({"subject": "service_account:ci-bot", "role": "ci-deployer", "application": "deploy-mcp",
                   "conditions": {"ip": {"allow": ["10.0.0.0/8", "2001:db8::/32"]}}});
    let r = c.json("POST", &format!("{T}/bindings"), WRITER, &b).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let (id, secret) = credentials(&mut c, "deploy-mcp").await;
    let rs = basic(&id, &secret);
    let body = json!({"subject": "service_account:ci-bot", "application": "deploy-mcp", "client_id": "ci",
                      "requested_scope": "deploy:staging"});
    let r = mint(&mut c, body.clone()).await;
    assert_eq!(r.status, 403, "no IP at minting: nothing granted: {}", r.text());
    assert!(r.text().contains("condition_unmet:ip"), "{}", r.text());
    let mut with_ip = body;
    with_ip["context"] = json!({"ip": "10.9.8.7"});
    let token = mint_ok(&mut c, with_ip).await;
    let cases = [
        (None, false),
        (Some("10.0.0.0"), true),
        (Some("10.255.255.255"), true),
        (Some("9.255.255.255"), false),
        (Some("11.0.0.0"), false),
        (Some("2001:db8::"), true),
        (Some("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), true),
        (Some("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), false),
        (Some("2001:db9::"), false),
        (Some("::ffff:10.0.0.1"), false),
    ];
    for (ip, expected) in cases {
        let b = active(&mut c, &rs, &token, ip).await;
        assert_eq!(b["active"], expected, "client_ip {ip:?}: {b}");
        if expected {
            assert_eq!(b["scope"], "deploy:staging");
        } else {
            assert_eq!(b, json!({"active": false}));
        }
    }
    let r = introspect(&mut c, &rs, &token, Some("10.0.0.300")).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_request")));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_take_conditions_and_a_validity_window() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let base = json!({"subject": "user:bob", "role": "auditor"});
    let mut bad = base.clone();
    bad["conditions"] = json!({"mfaa": {"required": true}});
    let r = c.json("POST", &format!("{T}/bindings"), WRITER, &bad).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["code"], "invalid_conditions", "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("`conditions.mfaa`: unknown key"), "{}", r.text());
    let mut bad = base.clone();
    bad["conditions"] = json!({"mfa": {"required": true, "max_ag": "15m"}});
    let r = c.json("POST", &format!("{T}/bindings"), WRITER, &bad).await;
    assert!((r.status, r.text().contains("`conditions.mfa.max_ag`: unknown key")) == (422, true), "{}", r.text());
    let mut ok = base.clone();
    ok["expires_in"] = json!("4h");
    ok["not_before"] = json!("2026-06-01T01:00:00Z");
    ok["conditions"] = json!({"mfa": {"max_age": "15m"}, "ip": {"allow": ["10.0.0.0/8"]}});
    let r = c.json("POST", &format!("{T}/bindings"), WRITER, &ok).await;
    assert_eq!(r.status, 201, "{}", r.text());
    insta::assert_json_snapshot!("binding_with_conditions", redact(r.json()));
    assert_eq!(r.json()["conditions"]["expires_at"], "2026-06-01T04:00:00Z", "made absolute on the API clock");
    let mut both = base.clone();
    both["expires_in"] = json!("4h");
    both["expires_at"] = json!("2027-01-01T00:00:00Z");
    let r = c.json("POST", &format!("{T}/bindings"), WRITER, &both).await;
    assert!(r.status == 422 && r.text().contains("give one expiry"), "{}", r.text());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspension_is_for_users_and_service_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.json("POST", &format!("{T}/subjects/group:sre/suspend"), WRITER, &json!({})).await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains("only users and service accounts"), "{}", r.text());
    assert_eq!(c.get(&format!("{T}/subjects/group:sre/status"), READER).await.status, 422);
    assert_eq!(c.json("POST", &format!("{T}/subjects/user:zed/suspend"), WRITER, &json!({})).await.status, 404);
    assert_eq!(c.json("POST", &format!("{T}/subjects/user:bob/suspend"), READER, &json!({})).await.status, 403);
    // An empty body is fine; a service account is suspended like a user.
    let auth = format!("Bearer {WRITER}");
    let r =
        c.send("POST", &format!("{T}/subjects/service_account:ci-bot/suspend"), &[("authorization", &auth)], b"").await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("suspended")), "{}", r.text());
    let check = json!({"subject": "service_account:ci-bot", "application": "deploy-mcp", "scope": "deploy:staging",
                       "context": {"ip": "10.0.0.1"}});
    let r = c.json("POST", &format!("{T}/check"), READER, &check).await.json();
    assert_eq!(r["reason"], "subject_suspended");
    let ts = json!({"subject": "service_account:ci-bot", "application": "deploy-mcp", "context": {"ip": "10.0.0.1"}});
    let r = c.json("POST", &format!("{T}/token-scope"), READER, &ts).await.json();
    assert_eq!(r["blocked"], json!([{"scope": "deploy:staging", "reason": "subject_suspended"}]));
    // Memberships and bindings were not touched.
    let b = c.get(&format!("{T}/bindings?subject=service_account:ci-bot"), READER).await.json();
    assert_eq!(b["bindings"].as_array().unwrap().len(), 1);
    let r = c.json("POST", &format!("{T}/subjects/service_account:ci-bot/reactivate"), WRITER, &json!({})).await;
    let rev = r.json()["revision"].clone();
    let r2 = c.json("POST", &format!("{T}/subjects/service_account:ci-bot/reactivate"), WRITER, &json!({})).await;
    assert_eq!(r2.json()["revision"], rev, "reactivating an active subject writes nothing");
    assert_eq!(c.json("POST", &format!("{T}/check"), READER, &check).await.json()["decision"], "allow");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_authenticates_and_checks_the_audience() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let (deploy_id, deploy_secret) = credentials(&mut c, "deploy-mcp").await;
    let (gh_id, gh_secret) = credentials(&mut c, "github-mcp").await;
    let token = mint_ok(
        &mut c,
        json!({"subject": "user:bob", "application": "github-mcp", "client_id": "cursor",
               "requested_scope": "pr:write deploy:prod", "expires_in": "30m"}),
    )
    .await;
    // Unauthenticated or wrong secret: 401 with a Basic challenge.
    let form = format!("token={token}");
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let r = c.send("POST", "/oauth2/introspect", &[ct], form.as_bytes()).await;
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Basic realm=\"holdfast\"")));
    assert_eq!(r.json()["error"], "invalid_client");
    let r = introspect(&mut c, &basic(&gh_id, &deploy_secret), &token, None).await;
    assert_eq!(r.status, 401);
    let r = introspect(&mut c, &format!("Bearer {ADMIN}"), &token, None).await;
    assert_eq!(r.status, 401, "API keys are not client credentials");
    // The right application sees it, with only what was granted.
    let gh = basic(&gh_id, &gh_secret);
    let b = active(&mut c, &gh, &token, None).await;
    assert_eq!((b["scope"].as_str(), b["exp"].as_i64()), (Some("pr:write"), Some(fixed_now().0 + 1800)));
    assert_eq!(b["aud"], "https://mcp.acme.example/github");
    // Another application's credentials: exactly inactive.
    let other = basic(&deploy_id, &deploy_secret);
    assert_eq!(introspect(&mut c, &other, &token, None).await.text(), r#"{"active":false}"#);
    assert_eq!(introspect(&mut c, &gh, "hf_at_nope", None).await.text(), r#"{"active":false}"#);
    let r = c.send("POST", "/oauth2/introspect", &[("authorization", &gh), ct], b"token_type_hint=access_token").await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_request")));
    // RFC 7009: another application cannot revoke it; 200 all the same. Then the owner does.
    let revoke = |auth: &str, t: &str| (auth.to_string(), format!("token={t}&token_type_hint=access_token"));
    for (auth, form) in [revoke(&other, &token), revoke(&gh, "hf_at_unknown")] {
        let r = c.send("POST", "/oauth2/revoke", &[("authorization", &auth), ct], form.as_bytes()).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(active(&mut c, &gh, &token, None).await["active"], true);
    let (auth, form) = revoke(&gh, &token);
    assert_eq!(c.send("POST", "/oauth2/revoke", &[("authorization", &auth), ct], form.as_bytes()).await.status, 200);
    assert_eq!(introspect(&mut c, &gh, &token, None).await.text(), r#"{"active":false}"#);
    // Credentials are listed without secrets and can be revoked.
    let list = c.get(&format!("{T}/applications/github-mcp/credentials"), READER).await;
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 1);
    assert!(!list.text().contains(&gh_secret[6..]));
    let del = format!("{T}/applications/github-mcp/credentials/{gh_id}");
    let r = c.send("DELETE", &del, &[("authorization", &format!("Bearer {WRITER}"))], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(introspect(&mut c, &gh, &token, None).await.status, 401);
    // Minting is validated.
    for (body, status, needle) in [
        (json!({"subject": "group:sre", "application": "deploy-mcp", "client_id": "x"}), 422, "not groups"),
        (
            json!({"subject": "user:bob", "application": "github-mcp", "client_id": "x", "expires_in": "2days"}),
            422,
            "at most 24h",
        ),
        (
            json!({"subject": "user:bob", "application": "github-mcp", "client_id": "x", "context": {"now": "2030-01-01T00:00:00Z"}}),
            422,
            "server clock",
        ),
        (json!({"subject": "user:bob", "application": "github-mcp"}), 422, "missing field `client_id`"),
        (json!({"subject": "user:bob", "application": "nope", "client_id": "x"}), 404, "nope"),
        (json!({"subject": "user:bob", "application": "deploy-mcp", "client_id": "x"}), 403, "no requested scope"),
    ] {
        let r = mint(&mut c, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(needle), "{body}: {}", r.text());
    }
    assert_eq!(c.json("POST", &format!("{T}/tokens"), READER, &json!({})).await.status, 403, "minting is a write");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_applications_credentials_stop_authenticating() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let (id, secret) = credentials(&mut c, "audit-mcp").await;
    let auth = basic(&id, &secret);
    assert_eq!(introspect(&mut c, &auth, "hf_at_nope", None).await.text(), r#"{"active":false}"#);
    let r = c
        .send("DELETE", &format!("{T}/applications/audit-mcp"), &[("authorization", &format!("Bearer {WRITER}"))], b"")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = introspect(&mut c, &auth, "hf_at_nope", None).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_client")), "{}", r.text());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_is_public() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.send("GET", &format!("{T}/applications/deploy-mcp/.well-known/oauth-protected-resource"), &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    insta::assert_json_snapshot!("protected_resource_metadata", r.json());
    let r = c.send("GET", &format!("{T}/applications/nope/.well-known/oauth-protected-resource"), &[], b"").await;
    assert_eq!(r.status, 404);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_credentials_survive_a_restart_and_are_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let (id, secret) = credentials(&mut c, "github-mcp").await;
    let token =
        mint_ok(&mut c, json!({"subject": "user:bob", "application": "github-mcp", "client_id": "cursor"})).await;
    drop(c);
    server.shutdown().await.unwrap();

    let store = holdfast::store::Store::open(dir.path(), holdfast::store::Durability::Sync).unwrap();
    for (_, key, value) in store.scan_all().unwrap() {
        let v = String::from_utf8_lossy(&value);
        assert!(!key.contains(&token[6..]) && !v.contains(&token[6..]), "raw token stored in `{key}`");
        assert!(!key.contains(&secret[6..]) && !v.contains(&secret[6..]), "raw secret stored in `{key}`");
    }
    drop(store);
    let hf = holdfast::service::Holdfast::open(dir.path(), holdfast::store::Durability::Sync).unwrap();
    let config = holdfast::api::ApiConfig { clock: fixed_now, ..Default::default() };
    let state = holdfast::api::AppState::with_config(std::sync::Arc::new(hf), super::api_support::keys(), config);
    let server = Server::start(state).await;
    let mut c = Client::connect(server.addr).await;
    let b = active(&mut c, &basic(&id, &secret), &token, None).await;
    assert_eq!((b["active"].as_bool(), b["scope"].as_str()), (Some(true), Some("pr:read pr:write repo:read")));
    server.shutdown().await.unwrap();
}

/// A real OAuth client library (Python's authlib) introspects and revokes
/// a Holdfast token. `.ci/run` installs authlib; elsewhere the test is
/// skipped, with a message, only when the import fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_introspects_a_holdfast_token() {
    let probe = std::process::Command::new("python3").args(["-c", "import authlib, requests"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        // CI installs them (.ci/run): there, a missing library is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `python3 -c \"import authlib, requests\"` failed: {probe:?}"
        );
        eprintln!(
            "SKIPPED authlib_introspects_a_holdfast_token: `python3 -c \"import authlib, requests\"` failed; \
             install them with `python3 -m pip install authlib requests` (.ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let (id, secret) = credentials(&mut c, "deploy-mcp").await;
    let token = mint_ok(
        &mut c,
        json!({"subject": "user:alice", "application": "deploy-mcp", "client_id": "claude-desktop",
               "requested_scope": "deploy:prod deploy:read", "context": fresh_mfa()}),
    )
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/introspect_authlib.py");
    let base = format!("http://{}", server.addr);
    let args = [script.to_string(), base, id, secret.clone(), token, "deploy:prod deploy:read".to_string()];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "authlib script failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok: active"), "{stdout}");
    server.shutdown().await.unwrap();
}
