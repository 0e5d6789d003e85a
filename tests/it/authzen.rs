//! AuthZEN Authorization API 1.0 against a real server: the certification
//! scenario (`certification/authorization-api-1_0-scenario.md` of
//! openid/authzen; test names carry its section ids, `c_2_4` = C-2.4) on
//! `examples/authzen-certification.yaml`, and AuthZEN over the worked example,
//! both loaded as `serve --demo --policy` loads them.
//!
//! The Properties levels: `properties` are attributes that the fixture's
//! attribute conditions test (`action.soft` for rules 7 and 8,
//! `subject.role` for rule 6); rules 1-5 rest on identifiers, since the
//! harness sends them without properties.

use std::sync::Arc;

use holdfast::api::{ApiConfig, AppState};
use holdfast::policy;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use serde_json::{json, Value};

use super::api_support::{fixed_now, keys, Client, Response, Server, ADMIN, OTHER, READER};

const ISSUER: &str = "https://pdp.example.com";
const CERT: &str = "/v1/tenants/authzen-cert/access/v1";
const ACME: &str = "/v1/tenants/acme/access/v1";

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// The worked example (`acme`) and the certification fixture (`authzen-cert`).
fn state(dir: &std::path::Path) -> AppState {
    let hf = Holdfast::open(dir, Durability::Buffered).unwrap();
    for file in ["acme.yaml", "authzen-certification.yaml"] {
        let p = policy::load(&example(file)).unwrap();
        hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    }
    let config = ApiConfig { clock: fixed_now, body_limit: 64 * 1024, issuer: ISSUER, ..ApiConfig::default() };
    AppState::with_config(Arc::new(hf), keys(), config)
}

struct Pdp {
    _dir: tempfile::TempDir,
    server: Server,
    client: Client,
}

impl Pdp {
    async fn start() -> Pdp {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(state(dir.path())).await;
        let client = Client::connect(server.addr).await;
        Pdp { _dir: dir, server, client }
    }

    async fn post(&mut self, path: &str, body: &Value) -> Response {
        self.client.json("POST", path, ADMIN, body).await
    }

    /// `POST` and expect 200; the JSON answer.
    async fn ok(&mut self, path: &str, body: Value) -> Value {
        let r = self.post(path, &body).await;
        assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
        assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "C-5: {r:?}");
        r.json()
    }

    async fn decision(&mut self, body: Value) -> bool {
        let a = self.ok(&format!("{CERT}/evaluation"), body).await;
        assert!(a["context"].is_object(), "C-2.3.2: context is an object: {a}");
        a["decision"].as_bool().unwrap_or_else(|| panic!("C-2.3.1: decision is a boolean: {a}"))
    }

    async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

fn ask(subject: &str, action: &str, resource: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "record", "id": resource},
    })
}

fn decisions(a: &Value) -> Vec<bool> {
    let list = a["evaluations"].as_array().unwrap_or_else(|| panic!("an evaluations array: {a}"));
    list.iter()
        .map(|e| {
            assert!(e.get("context").is_none_or(Value::is_object), "C-3.3.3: {e}");
            e["decision"].as_bool().unwrap_or_else(|| panic!("C-3.3.3: a boolean decision: {e}"))
        })
        .collect()
}

fn ids(a: &Value) -> Vec<String> {
    let list = a["results"].as_array().unwrap_or_else(|| panic!("a results array: {a}"));
    list.iter()
        .map(|r| r["id"].as_str().or(r["name"].as_str()).unwrap_or_else(|| panic!("id or name: {r}")).to_string())
        .collect()
}

#[tokio::test]
async fn c_1_4_required_decisions_core_and_properties() {
    let mut pdp = Pdp::start().await;
    // Core, rules 1-4.
    assert!(pdp.decision(ask("alice", "read", "record-1")).await, "rule 1");
    assert!(pdp.decision(ask("alice", "write", "record-1")).await, "rule 2");
    assert!(pdp.decision(ask("bob", "read", "record-1")).await, "rule 3");
    assert!(!pdp.decision(ask("bob", "write", "record-1")).await, "rule 4");
    // C-2.2.4 (rule 5) and C-2.2.5 (rule 6), with their properties.
    let mut r5 = ask("alice", "write", "record-2");
    r5["resource"]["properties"] = json!({"status": "archived"});
    assert!(!pdp.decision(r5).await, "rule 5");
    let mut r6 = ask("bob", "write", "record-2");
    r6["subject"]["properties"] = json!({"role": "admin"});
    r6["resource"]["properties"] = json!({"status": "archived"});
    assert!(pdp.decision(r6).await, "rule 6");
    // C-2.2.6 (rule 7) and C-2.2.7 (rule 8): decided by `action.properties.soft` alone.
    let mut r7 = ask("alice", "delete", "record-1");
    r7["action"]["properties"] = json!({"soft": true});
    assert!(pdp.decision(r7.clone()).await, "rule 7");
    let mut r8 = ask("alice", "delete", "record-1");
    r8["action"]["properties"] = json!({"soft": false});
    assert!(!pdp.decision(r8.clone()).await, "rule 8");
    let a = pdp.ok(&format!("{CERT}/evaluation"), r8).await;
    assert_eq!(a["context"]["reason"], "condition_unmet:attribute", "{a}");
    // Not saying is not soft; a lookalike of another type is not `true`.
    assert!(!pdp.decision(ask("alice", "delete", "record-1")).await, "missing never satisfies");
    r7["action"]["properties"] = json!({"soft": "true"});
    assert!(!pdp.decision(r7).await, "typed comparison");
    // Rule 6 for any subject with `properties.role` = admin (alice too).
    let mut admin = ask("alice", "write", "record-2");
    admin["subject"]["properties"] = json!({"role": "admin"});
    admin["resource"]["properties"] = json!({"status": "archived"});
    assert!(pdp.decision(admin).await, "rule 6 by property");
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_2_requests_with_context_properties_and_unknown_fields_are_accepted() {
    let mut pdp = Pdp::start().await;
    let mut with_context = ask("alice", "read", "record-1");
    with_context["context"] = json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"});
    assert!(pdp.decision(with_context).await, "C-2.2.3");
    let more = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
        "action": {"name": "read", "properties": {"method": "GET"}},
        "resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}},
    });
    assert!(pdp.decision(more).await, "C-2.2.8");
    let mut unknown = ask("alice", "read", "record-1");
    unknown["foo"] = json!("bar");
    unknown["futureField"] = json!({"nested": true});
    assert!(pdp.decision(unknown).await, "C-2.2.9");
    // The response context carries Holdfast's reason (C-2.3.2).
    let a = pdp.ok(&format!("{CERT}/evaluation"), ask("bob", "write", "record-1")).await;
    assert_eq!(a, json!({"decision": false, "context": {"reason": "role_lacks_scope"}}));
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_2_unknown_subjects_resources_and_types_are_denials_not_errors() {
    let mut pdp = Pdp::start().await;
    let a = pdp.ok(&format!("{CERT}/evaluation"), ask("nobody", "read", "record-1")).await;
    assert_eq!(a["decision"], false, "{a}");
    let mut spaceship = ask("alice", "read", "record-1");
    spaceship["subject"]["type"] = json!("spaceship");
    assert_eq!(pdp.ok(&format!("{CERT}/evaluation"), spaceship).await["context"]["reason"], "unknown_subject");
    // The resource type must match the application's declared `resource_type`.
    let mut app = ask("alice", "read", "record-1");
    app["resource"]["type"] = json!("application");
    assert_eq!(pdp.ok(&format!("{CERT}/evaluation"), app).await["context"]["reason"], "unknown_resource");
    let mut odd = ask("alice", "read", "record-1");
    odd["subject"]["id"] = json!("a b/../c");
    assert_eq!(pdp.ok(&format!("{CERT}/evaluation"), odd).await["decision"], false);
    pdp.stop().await;
}

/// C-2.4: every malformed request is 400, whichever endpoint it goes to.
#[tokio::test]
async fn c_2_4_malformed_requests_answer_400() {
    let mut pdp = Pdp::start().await;
    let bodies = [
        json!({"action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}}),
        json!({"subject": {"id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}),
        json!({"subject": "alice", "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": 123}, "resource": {"type": "record", "id": "record-1"}}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "context": "now"}),
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "context": {"ip": "not-an-ip"}}),
        json!([1, 2]),
    ];
    for path in ["evaluation", "evaluations"] {
        for b in &bodies {
            let r = pdp.post(&format!("{CERT}/{path}"), b).await;
            assert_eq!(r.status, 400, "{path} {b}: {}", r.text());
            assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
        }
    }
    let auth = format!("Bearer {ADMIN}");
    let good = ask("alice", "read", "record-1").to_string();
    for (what, ct, body) in [
        ("C-2.4.3 content type", Some("text/plain"), good.as_str()),
        ("C-2.4.3 no content type", None, good.as_str()),
        ("C-2.4.4 malformed JSON", Some("application/json"), "{\"subject\": "),
        ("C-2.4.5 empty body", Some("application/json"), ""),
    ] {
        for path in ["evaluation", "evaluations", "search/subject", "search/resource", "search/action"] {
            let mut headers = vec![("authorization", auth.as_str())];
            if let Some(ct) = ct {
                headers.push(("content-type", ct));
            }
            let r = pdp.client.send("POST", &format!("{CERT}/{path}"), &headers, body.as_bytes()).await;
            assert_eq!(r.status, 400, "{what} on {path}: {}", r.text());
        }
    }
    // The same bearer keys as the rest of the API.
    let r = pdp
        .client
        .send("POST", &format!("{CERT}/evaluation"), &[("content-type", "application/json")], good.as_bytes())
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = pdp.client.json("POST", &format!("{CERT}/evaluation"), READER, &ask("alice", "read", "record-1")).await;
    assert_eq!(r.status, 403, "a key of another tenant: {}", r.text());
    let r = pdp.client.json("POST", &format!("{CERT}/evaluation"), OTHER, &ask("alice", "read", "record-1")).await;
    assert_eq!(r.status, 403, "{}", r.text());
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_5_x_request_id_is_echoed_on_every_answer() {
    let mut pdp = Pdp::start().await;
    let auth = format!("Bearer {ADMIN}");
    let good = ask("alice", "read", "record-1").to_string();
    let search = json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}).to_string();
    for (path, body) in [
        ("evaluation", good.as_str()),
        ("evaluations", good.as_str()),
        ("search/subject", search.as_str()),
        ("evaluation", "{not json"),
    ] {
        let id = format!("req-{path}-{}", body.len());
        let headers =
            [("authorization", auth.as_str()), ("content-type", "application/json"), ("x-request-id", id.as_str())];
        let r = pdp.client.send("POST", &format!("{CERT}/{path}"), &headers, body.as_bytes()).await;
        assert_eq!(r.header("x-request-id"), Some(id.as_str()), "C-2.5.1 on {path} ({}): {r:?}", r.status);
    }
    let r =
        pdp.client.send("POST", &format!("{CERT}/evaluation"), &[("x-request-id", "unauth")], good.as_bytes()).await;
    assert_eq!((r.status, r.header("x-request-id")), (401, Some("unauth")), "even on a 401");
    let r = pdp
        .client
        .send("GET", "/.well-known/authzen-configuration/v1/tenants/authzen-cert", &[("x-request-id", "md")], b"")
        .await;
    assert_eq!(r.header("x-request-id"), Some("md"));
    // C-2.5.2: without one, nothing fails.
    let r = pdp.post(&format!("{CERT}/evaluation"), &ask("alice", "read", "record-1")).await;
    assert_eq!(r.status, 200);
    pdp.stop().await;
}

#[tokio::test]
async fn c_2_6_the_same_request_answers_the_same_decision() {
    let mut pdp = Pdp::start().await;
    for _ in 0..5 {
        assert!(pdp.decision(ask("alice", "read", "record-1")).await);
        assert!(!pdp.decision(ask("bob", "write", "record-1")).await);
    }
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_2_batches_with_defaults_overrides_and_merging() {
    let mut pdp = Pdp::start().await;
    let path = format!("{CERT}/evaluations");
    let alice = json!({"type": "user", "id": "alice"});
    let bob = json!({"type": "user", "id": "bob"});
    let rec = |id: &str| json!({"type": "record", "id": id});
    // C-3.2.1
    let a = pdp
        .ok(
            &path,
            json!({"subject": alice, "action": {"name": "read"},
            "evaluations": [{"resource": rec("record-1")}, {"resource": rec("record-2")}]}),
        )
        .await;
    assert_eq!(decisions(&a).len(), 2);
    assert!(a.get("decision").is_none(), "C-3.3.4: no top-level decision: {a}");
    // C-3.2.2: order kept.
    let a = pdp
        .ok(
            &path,
            json!({"subject": bob, "resource": rec("record-1"),
            "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{a}");
    // C-3.2.3 / C-3.2.4.
    let a = pdp
        .ok(
            &path,
            json!({"subject": alice, "action": {"name": "write"}, "evaluations": [
            {"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
            {"resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "C-3.2.3 {a}");
    let a = pdp
        .ok(&path, json!({"action": {"name": "write"},
            "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}},
            "evaluations": [{"subject": alice}, {"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}}}]}))
        .await;
    assert_eq!(decisions(&a), [false, true], "C-3.2.4 {a}");
    // Per-item properties: the default action's, replaced whole by an item's action.
    let a = pdp
        .ok(
            &path,
            json!({"subject": alice, "resource": rec("record-1"),
            "action": {"name": "delete", "properties": {"soft": true}},
            "evaluations": [{}, {"action": {"name": "delete", "properties": {"soft": false}}},
                {"action": {"name": "delete"}}, {"subject": {"type": "user", "id": "alice", "properties": {"x": 1}}}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false, false, true], "action properties per item {a}");
    // C-3.2.5: no defaults.
    let a = pdp
        .ok(&path, json!({"evaluations": [ask("alice", "read", "record-1"), ask("bob", "write", "record-1")]}))
        .await;
    assert_eq!(decisions(&a), [true, false], "{a}");
    // C-3.2.6: context inheritance and override (unknown context fields ignored).
    let a = pdp
        .ok(&path, json!({"subject": alice, "action": {"name": "read"}, "context": {"time": "2025-06-27T18:03-07:00"},
            "evaluations": [{"resource": rec("record-1")},
                {"resource": rec("record-2"), "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"}}]}))
        .await;
    assert_eq!(decisions(&a).len(), 2);
    // C-3.2.7: an item's resource takes `type` from the default.
    let a = pdp
        .ok(
            &path,
            json!({"subject": alice, "action": {"name": "write"}, "resource": {"type": "record"},
            "evaluations": [{"resource": {"id": "record-1", "properties": {"status": "active"}}},
                {"resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{a}");
    pdp.stop().await;
}

#[tokio::test]
async fn c_3_4_item_errors_and_backwards_compatible_single_evaluations() {
    let mut pdp = Pdp::start().await;
    let path = format!("{CERT}/evaluations");
    // C-3.4.1: an item missing its resource is a denial with an error, in its place.
    let a = pdp
        .ok(
            &path,
            json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
            "evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {}]}),
        )
        .await;
    assert_eq!(decisions(&a), [true, false], "{a}");
    let error = &a["evaluations"][1]["context"]["error"];
    assert_eq!(
        (error["status"].as_u64(), error["message"].as_str()),
        (Some(400), Some("`resource` is missing")),
        "{a}"
    );
    // C-3.4.2 / C-3.4.3: without evaluations, or with none, a single answer.
    for extra in [json!({}), json!({"evaluations": []}), json!({"evaluations": null})] {
        let mut body = ask("alice", "read", "record-1");
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let a = pdp.ok(&path, body).await;
        assert_eq!(a["decision"], true, "{a}");
        assert!(a.get("evaluations").is_none());
    }
    let r = pdp.post(&path, &json!({"evaluations": [], "subject": {"type": "user", "id": "alice"}})).await;
    assert_eq!(r.status, 400, "an empty batch is a single evaluation, so it needs every field: {}", r.text());
    let r = pdp.post(&path, &json!({"evaluations": {}})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = pdp
        .post(
            &path,
            &json!({"evaluations": [ask("alice", "read", "record-1")], "options": {"evaluations_semantic": "most"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    pdp.stop().await;
}

/// §7.1.2.1: the answers stop at the deciding one, which is included.
#[tokio::test]
async fn evaluations_semantics_short_circuit_after_the_deciding_answer() {
    let mut pdp = Pdp::start().await;
    let path = format!("{CERT}/evaluations");
    let batch = |semantic: &str| {
        json!({"subject": {"type": "user", "id": "bob"}, "resource": {"type": "record", "id": "record-1"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [{"action": {"name": "read"}}, {"action": {"name": "write"}}, {"action": {"name": "read"}}]})
    };
    assert_eq!(decisions(&pdp.ok(&path, batch("execute_all")).await), [true, false, true]);
    assert_eq!(decisions(&pdp.ok(&path, batch("deny_on_first_deny")).await), [true, false]);
    assert_eq!(decisions(&pdp.ok(&path, batch("permit_on_first_permit")).await), [true]);
    let mut errors_deny = batch("deny_on_first_deny");
    errors_deny["evaluations"] = json!([{"action": {}}, {"action": {"name": "read"}}]);
    assert_eq!(decisions(&pdp.ok(&path, errors_deny).await), [false], "an error is a denial");
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_search_core_s1_to_s3_and_properties_s4_to_s6() {
    let mut pdp = Pdp::start().await;
    let subjects = |action: &str, record: &str| json!({"subject": {"type": "user"}, "action": {"name": action}, "resource": {"type": "record", "id": record}});
    // C-4.2.1 (S1): through the `readers` group.
    let a = pdp.ok(&format!("{CERT}/search/subject"), subjects("read", "record-1")).await;
    assert_eq!(ids(&a), ["alice", "bob"], "{a}");
    assert!(a["results"].as_array().unwrap().iter().all(|r| r["type"] == "user"));
    assert_eq!(a["page"]["next_token"], "", "{a}");
    // C-4.2.2 with context; C-4.2.4 (S4).
    let mut with_context = subjects("read", "record-1");
    with_context["context"] = json!({"time": "2025-06-27T18:03-07:00"});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/subject"), with_context).await), ["alice", "bob"]);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/subject"), subjects("write", "record-2")).await), ["bob"]);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/subject"), subjects("write", "record-1")).await), ["alice"]);
    // C-4.3.1 (S2), C-4.3.3 (S5).
    let resources = |who: &str, action: &str| json!({"subject": {"type": "user", "id": who}, "action": {"name": action}, "resource": {"type": "record"}});
    let a = pdp.ok(&format!("{CERT}/search/resource"), resources("alice", "read")).await;
    assert_eq!(ids(&a), ["record-1", "record-2"], "{a}");
    assert!(a["results"].as_array().unwrap().iter().all(|r| r["type"] == "record"));
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/resource"), resources("alice", "write")).await), ["record-1"]);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/resource"), resources("bob", "write")).await), ["record-2"]);
    // C-4.4.1 (S3), C-4.4.3 (S6): the action is omitted.
    let actions = |who: &str, record: &str| json!({"subject": {"type": "user", "id": who}, "resource": {"type": "record", "id": record}});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/action"), actions("alice", "record-1")).await), ["read", "write"]);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/action"), actions("bob", "record-2")).await), ["read", "write"]);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/action"), actions("bob", "record-1")).await), ["read"]);
    // Searches evaluate properties too: with `subject.properties.role` =
    // admin every reader may write record-2.
    let mut admins = subjects("write", "record-2");
    admins["subject"]["properties"] = json!({"role": "admin"});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/subject"), admins).await), ["alice", "bob"]);
    let mut alice_admin = resources("alice", "write");
    alice_admin["subject"]["properties"] = json!({"role": "admin"});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/resource"), alice_admin).await), ["record-1", "record-2"]);
    let mut alice_admin = actions("alice", "record-2");
    alice_admin["subject"]["properties"] = json!({"role": "admin"});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/action"), alice_admin).await), ["read", "write"]);
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_5_pagination_walks_every_result_once() {
    let mut pdp = Pdp::start().await;
    let mut body = json!({"subject": {"type": "user"}, "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"}, "page": {"limit": 1}});
    let mut seen = Vec::new();
    for _ in 0..5 {
        let a = pdp.ok(&format!("{CERT}/search/subject"), body.clone()).await;
        assert!(a["results"].as_array().unwrap().len() <= 1, "{a}");
        seen.extend(ids(&a));
        let next = a["page"]["next_token"].as_str().unwrap_or_else(|| panic!("C-4.5.3: a string: {a}")).to_string();
        if next.is_empty() {
            break;
        }
        body["page"] = json!({"token": next});
    }
    assert_eq!(seen, ["alice", "bob"]);
    // Resource and action search page the same way.
    let a = pdp
        .ok(
            &format!("{CERT}/search/resource"),
            json!({"subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"}, "resource": {"type": "record"}, "page": {"limit": 1}}),
        )
        .await;
    assert_eq!(ids(&a), ["record-1"]);
    let next = a["page"]["next_token"].as_str().unwrap().to_string();
    assert!(!next.is_empty());
    let a = pdp
        .ok(
            &format!("{CERT}/search/resource"),
            json!({"subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"}, "resource": {"type": "record"}, "page": {"token": next}}),
        )
        .await;
    assert_eq!((ids(&a), a["page"]["next_token"].as_str()), (vec!["record-2".to_string()], Some("")));
    let a = pdp
        .ok(
            &format!("{CERT}/search/action"),
            json!({"subject": {"type": "user", "id": "alice"},
            "resource": {"type": "record", "id": "record-1"}, "page": {"limit": 1}}),
        )
        .await;
    assert_eq!(ids(&a), ["read"]);
    let r = pdp
        .post(
            &format!("{CERT}/search/action"),
            &json!({"subject": {"type": "user", "id": "alice"},
            "resource": {"type": "record", "id": "record-1"}, "page": {"token": "zz"}}),
        )
        .await;
    assert_eq!(r.status, 400, "a token this API did not give: {}", r.text());
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_6_unknown_ids_and_types_answer_empty_results() {
    let mut pdp = Pdp::start().await;
    let cases = [
        (
            "action",
            json!({"subject": {"type": "user", "id": "nonexistent-user"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
        (
            "subject",
            json!({"subject": {"type": "spaceship"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
        (
            "subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-9"}}),
        ),
        (
            "subject",
            json!({"subject": {"type": "user"}, "action": {"name": "fly"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
        (
            "resource",
            json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "spaceship"}}),
        ),
        (
            "resource",
            json!({"subject": {"type": "robot", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}}),
        ),
        (
            "action",
            json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "application", "id": "record-1"}}),
        ),
    ];
    for (kind, body) in cases {
        let a = pdp.ok(&format!("{CERT}/search/{kind}"), body.clone()).await;
        assert_eq!(a["results"], json!([]), "{kind} {body}: {a}");
    }
    pdp.stop().await;
}

#[tokio::test]
async fn c_4_7_search_requests_missing_fields_answer_400() {
    let mut pdp = Pdp::start().await;
    let cases = [
        ("subject", json!({"subject": {"type": "user"}, "resource": {"type": "record", "id": "record-1"}})),
        ("resource", json!({"action": {"name": "read"}, "resource": {"type": "record"}})),
        ("action", json!({"subject": {"type": "user", "id": "alice"}})),
        ("subject", json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}})),
        ("resource", json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record"}})),
        (
            "subject",
            json!({"subject": {}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
        ("resource", json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {}})),
        (
            "subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "page": {"limit": "ten"}}),
        ),
        (
            "action",
            json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}, "page": []}),
        ),
    ];
    for (kind, body) in cases {
        let r = pdp.post(&format!("{CERT}/search/{kind}"), &body).await;
        assert_eq!(r.status, 400, "{kind} {body}: {}", r.text());
    }
    pdp.stop().await;
}

#[tokio::test]
async fn c_6_discovery_metadata_comes_from_the_issuer_not_the_host_header() {
    let mut pdp = Pdp::start().await;
    let r = pdp
        .client
        .send("GET", "/.well-known/authzen-configuration/v1/tenants/authzen-cert", &[("host", "evil.example")], b"")
        .await;
    assert_eq!(r.status, 200, "public, like RFC 9728 metadata: {}", r.text());
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let md = r.json();
    assert!(!r.text().contains("evil.example") && !r.text().contains("test"), "{md}");
    insta::assert_json_snapshot!("metadata", md);
    // Every endpoint it names answers.
    for key in ["access_evaluation_endpoint", "access_evaluations_endpoint"] {
        let path = md[key].as_str().unwrap().strip_prefix(ISSUER).unwrap().to_string();
        assert!(pdp.decision_at(&path, ask("alice", "read", "record-1")).await, "{key}");
    }
    let r = pdp.client.get("/.well-known/authzen-configuration/v1/tenants/nope", ADMIN).await;
    assert_eq!(r.status, 404, "{}", r.text());
    pdp.stop().await;
}

impl Pdp {
    async fn decision_at(&mut self, path: &str, body: Value) -> bool {
        self.ok(path, body).await["decision"].as_bool().unwrap()
    }
}

// ------------------------------------------------------- the worked example

fn acme(subject: &str, scope: &str, app: &str) -> Value {
    json!({"subject": {"type": "user", "id": subject}, "action": {"name": scope},
        "resource": {"type": "application", "id": app}})
}

#[tokio::test]
async fn worked_example_alice_steps_up_for_a_production_deploy() {
    let mut pdp = Pdp::start().await;
    let a = pdp.ok(&format!("{ACME}/evaluation"), acme("alice", "deploy:prod", "deploy-mcp")).await;
    insta::assert_json_snapshot!("alice_deploy_prod_without_mfa", a);
    assert_eq!(a["decision"], false);
    assert_eq!(a["context"]["step_up"]["max_age"], 900);
    let mut fresh = acme("alice", "deploy:prod", "deploy-mcp");
    fresh["context"] = json!({"mfa": {"present": true, "auth_time": "2026-05-31T23:55:00Z"}, "unrelated": 1});
    let a = pdp.ok(&format!("{ACME}/evaluation"), fresh).await;
    assert_eq!(a, json!({"decision": true, "context": {"reason": "granted"}}));
    let mut stale = acme("alice", "deploy:prod", "deploy-mcp");
    stale["context"] = json!({"mfa": {"present": true, "auth_time": "2026-05-31T22:00:00Z"}});
    assert_eq!(pdp.ok(&format!("{ACME}/evaluation"), stale).await["decision"], false);
    pdp.stop().await;
}

#[tokio::test]
async fn worked_example_a_batch_across_applications_matches_check() {
    let mut pdp = Pdp::start().await;
    let items = [
        ("alice", "pr:write", "github-mcp"),
        ("alice", "deploy:prod", "deploy-mcp"),
        ("alice", "audit:read", "audit-mcp"),
        ("bob", "deploy:prod", "deploy-mcp"),
        ("carol", "deploy:staging", "deploy-mcp"),
    ];
    let body = json!({
        "context": {"now": "2026-06-01T00:10:00Z"},
        "evaluations": items.iter().map(|(s, x, a)| acme(s, x, a)).collect::<Vec<_>>(),
    });
    let a = pdp.ok(&format!("{ACME}/evaluations"), body).await;
    insta::assert_json_snapshot!("acme_batch", a);
    // Each answer is the `/check` answer to the same question.
    for ((s, x, app), got) in items.iter().zip(decisions(&a)) {
        let c = pdp
            .client
            .json(
                "POST",
                "/v1/tenants/acme/check",
                ADMIN,
                &json!({"subject": format!("user:{s}"), "application": app,
                "scope": x, "context": {"now": "2026-06-01T00:10:00Z"}}),
            )
            .await
            .json();
        assert_eq!(got, c["decision"] == "allow", "{s} {x} {app}: {c}");
    }
    assert_eq!(decisions(&a), [true, false, true, false, false]);
    pdp.stop().await;
}

#[tokio::test]
async fn worked_example_action_search_lists_exactly_alices_scopes() {
    let mut pdp = Pdp::start().await;
    let search = |app: &str, context: Value| json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "application", "id": app}, "context": context});
    let a = pdp.ok(&format!("{ACME}/search/action"), search("github-mcp", json!({}))).await;
    assert_eq!(ids(&a), ["pr:read", "pr:write", "repo:read"], "{a}");
    // Without MFA only the auditor's deploy:read; with a fresh MFA the operator's scopes too.
    assert_eq!(ids(&pdp.ok(&format!("{ACME}/search/action"), search("deploy-mcp", json!({}))).await), ["deploy:read"]);
    let mfa = json!({"mfa": {"present": true, "auth_time": "2026-05-31T23:58:00Z"}});
    assert_eq!(
        ids(&pdp.ok(&format!("{ACME}/search/action"), search("deploy-mcp", mfa)).await),
        ["deploy:prod", "deploy:read", "deploy:staging"]
    );
    // Each listed scope, and none other of the application's, is allowed by /check.
    let app = pdp.client.get("/v1/tenants/acme/applications/github-mcp", ADMIN).await.json();
    for scope in app["scopes_supported"].as_array().unwrap() {
        let c = pdp
            .client
            .json(
                "POST",
                "/v1/tenants/acme/check",
                ADMIN,
                &json!({"subject": "user:alice", "application": "github-mcp", "scope": scope}),
            )
            .await
            .json();
        assert_eq!(c["decision"] == "allow", ids(&a).iter().any(|s| s == scope), "{scope}: {c}");
    }
    // Subject search over the worked example: service accounts are their own type.
    let who = |ty: &str| {
        json!({"subject": {"type": ty}, "action": {"name": "deploy:staging"}, "resource": {"type": "application", "id": "deploy-mcp"},
            "context": {"ip": "10.1.2.3", "mfa": {"present": true, "auth_time": "2026-05-31T23:58:00Z"}}})
    };
    assert_eq!(ids(&pdp.ok(&format!("{ACME}/search/subject"), who("user")).await), ["alice", "carol"]);
    assert_eq!(ids(&pdp.ok(&format!("{ACME}/search/subject"), who("service_account")).await), ["ci-bot"]);
    pdp.stop().await;
}

// ------------------------------------------------------------ resource_type

#[tokio::test]
async fn applications_declare_a_resource_type() {
    let mut pdp = Pdp::start().await;
    let app = pdp.client.get("/v1/tenants/authzen-cert/applications/record-1", ADMIN).await.json();
    assert_eq!(app["resource_type"], "record", "{app}");
    let app = pdp.client.get("/v1/tenants/acme/applications/deploy-mcp", ADMIN).await.json();
    assert_eq!(app["resource_type"], "application", "the default: {app}");
    let put = |t: Value| json!({"scopes_supported": ["read"], "resource_type": t});
    let r =
        pdp.client.json("PUT", "/v1/tenants/authzen-cert/applications/record-3", ADMIN, &put(json!("record"))).await;
    assert_eq!((r.status, &r.json()["resource_type"]), (200, &json!("record")), "{}", r.text());
    for bad in [json!("not a type"), json!(""), json!(7)] {
        let r =
            pdp.client.json("PUT", "/v1/tenants/authzen-cert/applications/record-4", ADMIN, &put(bad.clone())).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
    }
    // record-3 is a record nobody may use yet; resource search sees it only once granted.
    let search =
        json!({"subject": {"type": "user", "id": "bob"}, "action": {"name": "read"}, "resource": {"type": "record"}});
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/resource"), search.clone()).await), ["record-1", "record-2"]);
    let b = json!({"subject": "user:bob", "role": "record-reader", "application": "record-3"});
    assert!(pdp.client.json("POST", "/v1/tenants/authzen-cert/bindings", ADMIN, &b).await.status < 300);
    assert_eq!(ids(&pdp.ok(&format!("{CERT}/search/resource"), search).await), ["record-1", "record-2", "record-3"]);
    pdp.stop().await;
}

#[test]
fn validate_reports_a_bad_resource_type_with_line_and_column() {
    let text = "applications:\n  a:\n    resource_type: \"two words\"\n    scopes_supported: [x]\n  b:\n    resource_type: [x]\n    scopes_supported: [x]\n";
    let err = policy::compile(text, "t.yaml").unwrap_err().to_string();
    assert!(err.contains("t.yaml:3:20") && err.contains("resource_type"), "{err}");
    assert!(err.contains("t.yaml:6:20"), "{err}");
}

/// `holdfast serve --demo --policy examples/authzen-certification.yaml`
/// loads both tenants, and each answers AuthZEN.
#[tokio::test]
async fn serve_loads_the_demo_and_the_certification_fixture_together() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--policy"])
        .arg(example("authzen-certification.yaml"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("HOLDFAST_API_KEY", "both-key")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("holdfast listening on http://")
                .and_then(|r| r.split_whitespace().next().map(str::to_string))
        })
        .expect("a listening line");
    let mut c = Client::connect(addr.parse().unwrap()).await;
    let cert = c.json("POST", &format!("{CERT}/evaluation"), "both-key", &ask("alice", "write", "record-1")).await;
    let demo = c.json("POST", &format!("{ACME}/evaluation"), "both-key", &acme("bob", "pr:write", "github-mcp")).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((cert.status, &cert.json()["decision"]), (200, &json!(true)), "{}", cert.text());
    assert_eq!((demo.status, &demo.json()["decision"]), (200, &json!(true)), "{}", demo.text());
}

/// The CLI supplies attributes with `--attr PATH=VALUE` (and `attributes`
/// on a batch line); `test` runs the fixture's property assertions.
#[test]
fn the_cli_takes_attributes() {
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Written from another thread: the answers fill the stdout pipe
        // while the input is still being written.
        let mut input = child.stdin.take().unwrap();
        let text = stdin.unwrap_or_default().to_string();
        let writer = std::thread::spawn(move || input.write_all(text.as_bytes()));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr))
    };
    let fixture = example("authzen-certification.yaml");
    let fixture = fixture.to_str().unwrap();
    let ask = ["--policy", fixture, "--subject", "user:alice", "--application", "record-1", "--scope", "delete"];
    let with = |cmd: &str, extra: &[&str]| {
        let mut v = vec![cmd];
        v.extend_from_slice(&ask);
        v.extend_from_slice(extra);
        run(&v, None)
    };
    assert_eq!(with("check", &["--attr", "action.soft=true"]), (Some(0), "allow (granted)\n".to_string()));
    let (code, out) = with("check", &["--attr", "action.soft=false"]);
    assert_eq!((code, out.as_str()), (Some(1), "deny (condition_unmet:attribute)\n"));
    let (code, out) = with("check", &["--attr", "action.soft=\"true\""]);
    assert_eq!(code, Some(1), "a quoted value is a string: {out}");
    let (code, out) = with("explain", &["--attr", "action.soft=false"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("condition_unmet:attribute: action.soft is false"), "{out}");
    let (code, out) = with("check", &["--attr", "soft=true"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown namespace `soft`"), "{out}");
    let lines = concat!(
        r#"{"subject":"user:alice","application":"record-1","scope":"delete","attributes":{"action":{"soft":true}}}"#,
        "\n",
        r#"{"subject":"user:alice","application":"record-1","scope":"delete"}"#,
        "\n"
    );
    let (code, out) = run(&["check", "--policy", fixture, "--batch", "-"], Some(lines));
    let reasons: Vec<String> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["granted", "condition_unmet:attribute"], "exit {code:?}: {out}");
    // Many blocks answered on several threads come back in input order
    // (blank lines skipped, a bad line answered in its place).
    let mut many = String::new();
    for i in 0..40_000 {
        let soft = i % 3 == 0;
        many.push_str(&format!(
            r#"{{"subject":"user:alice","application":"record-1","scope":"delete","attributes":{{"action":{{"soft":{soft}}}}}}}"#
        ));
        many.push('\n');
        if i % 10_000 == 5 {
            many.push_str("\nnot json\n");
        }
    }
    let (code, out) = run(&["check", "--policy", fixture, "--batch", "-"], Some(&many));
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 40_004, "one answer per non-blank line");
    let mut i = 0;
    for l in lines {
        if l.contains("error") {
            assert!(l.contains("expected ident") || l.contains("line "), "{l}");
            continue;
        }
        let want = if i % 3 == 0 { "granted" } else { "condition_unmet:attribute" };
        assert!(l.contains(want), "answer {i}: {l}");
        i += 1;
    }
    let (code, out) = run(&["test", fixture], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rule 7: alice soft-deletes record-1"), "{out}");
}
