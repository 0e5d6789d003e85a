//! OIDC group claims end to end: a test identity provider (real RS256 and
//! ES256 keys from `tests/fixtures/oidc/`, its JWK set served over HTTP on
//! 127.0.0.1) mints ID tokens; a real Holdfast server on 127.0.0.1:0
//! verifies them per request (`id_token` on check, batch, explain,
//! token-scope) and by just-in-time sync.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use holdfast::api::{ApiConfig, AppState};
use holdfast::model::Timestamp;
use holdfast::policy;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::api_support::{keys, Client, Server, ADMIN, READER, WRITER};

const RSA1: &str = include_str!("../fixtures/oidc/rsa1.pem");
const RSA2: &str = include_str!("../fixtures/oidc/rsa2.pem");
const RSA1_PUB: &str = include_str!("../fixtures/oidc/rsa1.pub.pem");
const EC1: &str = include_str!("../fixtures/oidc/ec1.pem");
const ISSUER: &str = "https://idp.acme.example";
const AUDIENCE: &str = "holdfast";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn key(pem: &str) -> EncodingKey {
    if pem == EC1 {
        EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
    } else {
        EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
    }
}

/// The public JWK of a fixture key.
fn jwk(pem: &str, alg: Algorithm, kid: &str) -> Value {
    let mut j = Jwk::from_encoding_key(&key(pem), alg).unwrap();
    j.common.key_id = Some(kid.into());
    serde_json::to_value(j).unwrap()
}

fn claims(user: &str, groups: &[&str]) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": user, "email": format!("{user}@acme.example"),
           "iat": now(), "exp": now() + 300, "groups": groups})
}

fn mint(pem: &str, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &key(pem)).unwrap()
}

fn rs256(claims: &Value) -> String {
    mint(RSA1, Algorithm::RS256, "r1", claims)
}

/// The test identity provider's JWKS endpoint: the set it serves now, and
/// how many times it was fetched.
struct Idp {
    uri: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

async fn start_idp(keys: Value) -> Idp {
    use axum::response::IntoResponse;
    use axum::routing::get;
    let jwks = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (j, f) = (jwks.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/keys",
        get(move || {
            let (j, f) = (j.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                let v = j.lock().unwrap().clone();
                if v.is_null() {
                    return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
                }
                (axum::http::StatusCode::OK, v.to_string()).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp { uri: format!("http://{addr}/keys"), jwks, fetches }
}

/// The worked example behind a store in `dir`, with the real clock (the
/// tokens carry real times).
fn state(dir: &std::path::Path) -> AppState {
    let hf = Holdfast::open(dir, Durability::Buffered).unwrap();
    if hf.tenant("acme").is_none() {
        let p = policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml"))).unwrap();
        hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    }
    let config = ApiConfig { clock: Timestamp::now, ..ApiConfig::default() };
    AppState::with_config(Arc::new(hf), keys(), config)
}

fn inline_provider() -> Value {
    json!({"issuer": ISSUER, "audience": [AUDIENCE, "other-app"],
           "jwks": {"keys": [jwk(RSA1, Algorithm::RS256, "r1"), jwk(EC1, Algorithm::ES256, "e1")]}})
}

async fn setup(dir: &std::path::Path, provider: Value) -> (Server, Client) {
    let server = Server::start(state(dir)).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.json("PUT", "/v1/tenants/acme/identity-providers/okta", WRITER, &provider).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["created"], true);
    (server, c)
}

async fn check(c: &mut Client, body: Value) -> Value {
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

const PR_WRITE: (&str, &str) = ("github-mcp", "pr:write");

#[tokio::test]
async fn a_token_group_allows_for_that_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut c) = setup(dir.path(), inline_provider()).await;
    let q = |extra: Value| {
        let mut b = json!({"application": PR_WRITE.0, "scope": PR_WRITE.1});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    // carol is in sre, not engineering (which holds pr-writer).
    assert_eq!(check(&mut c, q(json!({"subject": "user:carol"}))).await["decision"], "deny");
    let token = rs256(&claims("carol", &["engineering", "Domain Users"]));
    let before = c.get("/v1/tenants/acme/changes", READER).await.json()["next_since"].clone();
    let out = check(&mut c, q(json!({"id_token": token}))).await;
    assert_eq!((out["decision"].as_str(), out["reason"].as_str()), (Some("allow"), Some("granted")));
    // The same with the subject named, and an ES256 token.
    let es = mint(EC1, Algorithm::ES256, "e1", &claims("carol", &["engineering"]));
    assert_eq!(check(&mut c, q(json!({"subject": "user:carol", "id_token": es}))).await["decision"], "allow");
    // Nothing was stored: no change, and carol without the token is denied.
    assert_eq!(c.get("/v1/tenants/acme/changes", READER).await.json()["next_since"], before);
    assert_eq!(check(&mut c, q(json!({"subject": "user:carol"}))).await["decision"], "deny");
    // The subject must be the token's user.
    let r =
        c.json("POST", "/v1/tenants/acme/check", READER, &q(json!({"subject": "user:bob", "id_token": token}))).await;
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (422, Some("invalid_request")));
    // Explain tags the path.
    let ex = check(&mut c, q(json!({"id_token": token, "explain": true}))).await;
    let trace = ex["trace"].as_array().unwrap();
    let via: Vec<(&str, Option<&str>)> =
        trace.iter().map(|b| (b["binding"].as_str().unwrap(), b["via"].as_str())).collect();
    assert!(via.contains(&("application:github-mcp#pr-writer@group:engineering", Some("token"))), "{via:?}");
    assert_eq!(trace[0]["path"][0], "user:carol");
    // Effective access with the token (POST: the token stays out of URLs):
    // the token's group shows `via: token`; without it, it is not there.
    let r = c.json("POST", "/v1/tenants/acme/effective-access", READER, &json!({"id_token": token})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ea = r.json();
    assert_eq!(ea["subject"], "user:carol");
    let tagged: Vec<(&str, Option<&str>)> =
        ea["entries"].as_array().unwrap().iter().map(|e| (e["binding"].as_str().unwrap(), e["via"].as_str())).collect();
    assert!(tagged.contains(&("application:github-mcp#pr-writer@group:engineering", Some("token"))), "{tagged:?}");
    let plain = c.get("/v1/tenants/acme/subjects/user:carol/effective-access", READER).await.json();
    assert!(!plain.to_string().contains("pr-writer@group:engineering"), "{plain}");
    let r = c
        .json("POST", "/v1/tenants/acme/effective-access", READER, &json!({"id_token": token, "subject": "user:bob"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = c.json("POST", "/v1/tenants/acme/effective-access", READER, &json!({"id_token": "x.y.z"})).await;
    assert_eq!((r.status, r.json()["error"]["reason"].as_str()), (422, Some("malformed")));
    // A user Holdfast never stored, known only from the token.
    let dave = rs256(&claims("dave", &["engineering"]));
    assert_eq!(check(&mut c, q(json!({"id_token": dave}))).await["decision"], "allow");
    let ex = check(&mut c, q(json!({"id_token": dave, "explain": true}))).await;
    assert_eq!(ex["trace"][0]["path"], json!(["user:dave", "group:engineering"]));
    let nogroups = rs256(&claims("dave", &[]));
    assert_eq!(check(&mut c, q(json!({"id_token": nogroups}))).await["reason"], "unknown_subject");
    // Batch: per item, and for the whole batch.
    let body = json!({"id_token": token, "checks": [
        {"application": PR_WRITE.0, "scope": PR_WRITE.1},
        {"subject": "user:carol", "application": PR_WRITE.0, "scope": PR_WRITE.1, "id_token": nogroups},
        {"application": PR_WRITE.0, "scope": PR_WRITE.1, "id_token": "x.y.z"},
    ]});
    let r = c.json("POST", "/v1/tenants/acme/check/batch", READER, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let res = r.json()["results"].clone();
    assert_eq!(res[0]["decision"], "allow");
    assert_eq!(res[1]["error"]["code"], "invalid_request", "carol is not the token's dave");
    assert_eq!(
        (res[2]["error"]["code"].as_str(), res[2]["error"]["reason"].as_str()),
        (Some("invalid_token"), Some("malformed"))
    );
    // AuthZEN: `context.id_token`.
    let authzen = |ctx: Value| {
        json!({"subject": {"type": "user", "id": "carol"}, "action": {"name": "pr:write"},
                                       "resource": {"type": "application", "id": "github-mcp"}, "context": ctx})
    };
    let r = c.json("POST", "/v1/tenants/acme/access/v1/evaluation", READER, &authzen(json!({}))).await;
    assert_eq!(r.json()["decision"], false);
    let r = c.json("POST", "/v1/tenants/acme/access/v1/evaluation", READER, &authzen(json!({"id_token": token}))).await;
    assert_eq!(r.json()["decision"], true, "{}", r.text());
    let r = c.json("POST", "/v1/tenants/acme/access/v1/evaluation", READER, &authzen(json!({"id_token": dave}))).await;
    assert_eq!(r.status, 422, "carol is not the token's dave");
    // Token scope.
    let ts = c
        .json("POST", "/v1/tenants/acme/token-scope", READER, &json!({"id_token": token, "application": "github-mcp"}))
        .await;
    assert_eq!(ts.status, 200, "{}", ts.text());
    assert_eq!(
        (ts.json()["subject"].clone(), ts.json()["scope"].clone()),
        (json!("user:carol"), json!("pr:read pr:write repo:read"))
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_with_tokens_never_see_each_others_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (server, c) = setup(dir.path(), inline_provider()).await;
    let c = c;
    let with = rs256(&claims("carol", &["engineering"]));
    let without = rs256(&claims("carol", &[]));
    let other = rs256(&claims("erin", &[]));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let mut ci = c.clone();
        let (token, expect) = match i % 3 {
            0 => (with.clone(), "allow"),
            1 => (without.clone(), "deny"),
            _ => (other.clone(), "deny"),
        };
        tasks.push(tokio::spawn(async move {
            let body = json!({"id_token": token, "application": PR_WRITE.0, "scope": PR_WRITE.1});
            let r = ci.json("POST", "/v1/tenants/acme/check", READER, &body).await;
            (r.json()["decision"].as_str().unwrap().to_string(), expect)
        }));
        if i % 10 == 0 {
            // Plain checks in between fill the cache for carol.
            let mut c = c.clone();
            tasks.push(tokio::spawn(async move {
                let body = json!({"subject": "user:carol", "application": PR_WRITE.0, "scope": PR_WRITE.1});
                let r = c.json("POST", "/v1/tenants/acme/check", READER, &body).await;
                (r.json()["decision"].as_str().unwrap().to_string(), "deny")
            }));
        }
    }
    for t in tasks {
        let (got, want) = t.await.unwrap();
        assert_eq!(got, want);
    }
    server.shutdown().await.unwrap();
}

async fn sync(c: &mut Client, token: &str) -> Value {
    let r = c.json("POST", "/v1/tenants/acme/identity-providers/okta/sync", WRITER, &json!({"token": token})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn direct_groups(c: &mut Client, user: &str) -> Vec<String> {
    let r = c.get(&format!("/v1/tenants/acme/tuples?subject=user:{user}"), READER).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v: Vec<String> = r.json()["tuples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["relation"] == "member")
        .map(|t| t["object"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn sync_sets_exactly_the_providers_memberships() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut c) = setup(dir.path(), inline_provider()).await;
    // carol: sre from the policy file; qa from the API; on-call from SCIM.
    let r = c.json("PUT", "/v1/tenants/acme/groups/qa/members/user:carol", WRITER, &json!({})).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let scim_token = c.json("POST", "/v1/tenants/acme/scim-tokens", ADMIN, &json!({})).await.json()["token"].clone();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": "carol"}]}]});
    let r = c
        .send(
            "PATCH",
            "/scim/v2/acme/Groups/on-call",
            &[
                ("authorization", &format!("Bearer {}", scim_token.as_str().unwrap())),
                ("content-type", "application/scim+json"),
            ],
            add.to_string().as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(direct_groups(&mut c, "carol").await, ["group:on-call", "group:qa", "group:sre"]);
    let out = sync(&mut c, &rs256(&claims("carol", &["engineering", "sre", "ops", "on-call", "not a group"]))).await;
    assert_eq!(out["user"], "user:carol");
    assert_eq!(
        out["added"],
        json!(["engineering", "ops"]),
        "sre and on-call were already held through the policy file and SCIM"
    );
    assert_eq!(out["removed"], json!([]));
    assert_eq!(out["ignored"], json!(["not a group"]));
    let rev = out["revision"].as_str().unwrap().to_string();
    assert_eq!(
        direct_groups(&mut c, "carol").await,
        ["group:engineering", "group:on-call", "group:ops", "group:qa", "group:sre"]
    );
    // One atomic write in the change feed, by oidc:okta.
    let feed = c.get("/v1/tenants/acme/changes?since=0&limit=1000", READER).await.json();
    let entry = feed["changes"].as_array().unwrap().iter().find(|e| e["revision"] == rev.as_str()).unwrap().clone();
    assert_eq!(entry["actor"], "oidc:okta");
    let ops: Vec<&str> = entry["ops"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["write", "write", "put_synced_groups"]);
    // The membership is stored: carol may write PRs without a token, and
    // effective access names the source.
    assert_eq!(
        check(&mut c, json!({"subject": "user:carol", "application": PR_WRITE.0, "scope": PR_WRITE.1})).await
            ["decision"],
        "allow"
    );
    let ea = c.get("/v1/tenants/acme/subjects/user:carol/effective-access", READER).await.json();
    let e = ea["entries"].as_array().unwrap().iter().find(|e| e["role"] == "pr-writer").unwrap().clone();
    assert_eq!((e["path"].clone(), e["via"].clone()), (json!(["user:carol", "group:engineering"]), json!("oidc:okta")));
    // The same token again changes nothing.
    let again = sync(&mut c, &rs256(&claims("carol", &["engineering", "sre", "ops", "on-call"]))).await;
    assert_eq!((again["added"].clone(), again["removed"].clone()), (json!([]), json!([])));
    assert_eq!(again["revision"].as_str(), Some(rev.as_str()));
    // A token without any group: only the provider's go.
    let out = sync(&mut c, &rs256(&claims("carol", &[]))).await;
    assert_eq!((out["added"].clone(), out["removed"].clone()), (json!([]), json!(["engineering", "ops"])));
    assert_eq!(direct_groups(&mut c, "carol").await, ["group:on-call", "group:qa", "group:sre"]);
    assert_eq!(
        check(&mut c, json!({"subject": "user:carol", "application": PR_WRITE.0, "scope": PR_WRITE.1})).await
            ["decision"],
        "deny"
    );
    // A bad token writes nothing.
    let r = c.json("POST", "/v1/tenants/acme/identity-providers/okta/sync", WRITER, &json!({"token": "a.b.c"})).await;
    assert_eq!((r.status, r.json()["error"]["reason"].as_str()), (422, Some("malformed")));
    let r = c
        .json(
            "POST",
            "/v1/tenants/acme/identity-providers/nope/sync",
            WRITER,
            &json!({"token": rs256(&claims("carol", &[]))}),
        )
        .await;
    assert_eq!(r.status, 404);
    // A reader cannot sync.
    let r = c
        .json(
            "POST",
            "/v1/tenants/acme/identity-providers/okta/sync",
            READER,
            &json!({"token": rs256(&claims("carol", &[]))}),
        )
        .await;
    assert_eq!(r.status, 403);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_new_kid_refreshes_the_fetched_key_set_once() {
    let idp = start_idp(json!({"keys": [jwk(RSA1, Algorithm::RS256, "r1")]})).await;
    let dir = tempfile::tempdir().unwrap();
    let provider = json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": idp.uri, "user_claim": "email"});
    let (server, mut c) = setup(dir.path(), provider).await;
    let body = |t: String| json!({"id_token": t, "application": PR_WRITE.0, "scope": PR_WRITE.1});
    let out = check(&mut c, body(rs256(&claims("carol", &["engineering"])))).await;
    assert_eq!(out["decision"], "allow");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // Cached: no fetch.
    check(&mut c, body(rs256(&claims("carol", &["engineering"])))).await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1);
    // `user_claim: email`: the subject is the email.
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &json!({"subject": "user:carol", "id_token": rs256(&claims("carol", &[])), "application": "x", "scope": "y"})).await;
    assert!(r.text().contains("user:carol@acme.example"), "{}", r.text());
    // The provider rotates to r2: one refresh.
    *idp.jwks.lock().unwrap() = json!({"keys": [jwk(RSA2, Algorithm::RS256, "r2")]});
    let t2 = mint(RSA2, Algorithm::RS256, "r2", &claims("carol", &["engineering"]));
    assert_eq!(check(&mut c, body(t2.clone())).await["decision"], "allow");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Another unknown kid within the minute: no refresh, refused.
    let t3 = mint(RSA1, Algorithm::RS256, "r3", &claims("carol", &["engineering"]));
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &body(t3)).await;
    assert_eq!((r.status, r.json()["error"]["reason"].as_str()), (422, Some("unknown_key")));
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // The old key is gone from the set.
    let r = c.json("POST", "/v1/tenants/acme/check", READER, &body(rs256(&claims("carol", &[])))).await;
    assert_eq!(r.json()["error"]["reason"], "unknown_key");
    // The provider goes down: the last good set keeps serving.
    *idp.jwks.lock().unwrap() = Value::Null;
    assert_eq!(check(&mut c, body(t2)).await["decision"], "allow");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_failure_answers_invalid_token_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut c) = setup(dir.path(), inline_provider()).await;
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let good = claims("carol", &["engineering"]);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        rs256(&c)
    };
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("r1".into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(RSA1_PUB.as_bytes()).unwrap()).unwrap()
    };
    let forged = {
        let t = rs256(&good);
        let p: Vec<&str> = t.split('.').collect();
        format!("{}.{}.{}", p[0], b64(&claims("carol", &["engineering", "admins"])), p[2])
    };
    let cases: Vec<(&str, String)> = vec![
        ("algorithm_not_allowed", format!("{}.{}.", b64(&json!({"alg": "none", "kid": "r1"})), b64(&good))),
        ("algorithm_not_allowed", hs256),
        ("algorithm_not_allowed", mint(RSA1, Algorithm::PS256, "r1", &good)),
        ("wrong_audience", with(&|c| c["aud"] = json!("someone-else"))),
        ("wrong_audience", with(&|c| c["aud"] = json!(["a", "b"]))),
        ("wrong_issuer", with(&|c| c["iss"] = json!("https://evil.example"))),
        ("expired", with(&|c| c["exp"] = json!(now() - 120))),
        ("not_yet_valid", with(&|c| c["nbf"] = json!(now() + 120))),
        ("groups_overage", with(&|c| c["_claim_names"] = json!({"groups": "src1"}))),
        ("groups_overage", with(&|c| c["hasgroups"] = json!(true))),
        ("bad_signature", forged),
        ("unknown_key", mint(RSA2, Algorithm::RS256, "r9", &good)),
        ("malformed", "a".repeat(1 << 20)),
        ("malformed", "not-a-token".into()),
        ("malformed", with(&|c| c["sub"] = json!("has space"))),
    ];
    for (reason, token) in cases {
        let r = c
            .json(
                "POST",
                "/v1/tenants/acme/check",
                READER,
                &json!({"id_token": token, "application": PR_WRITE.0, "scope": PR_WRITE.1}),
            )
            .await;
        let e = r.json()["error"].clone();
        assert_eq!(
            (r.status, e["code"].as_str(), e["reason"].as_str()),
            (422, Some("invalid_token"), Some(reason)),
            "{e}"
        );
        assert!(!e["message"].as_str().unwrap().contains(&token[..token.len().min(40)]), "the token is not echoed");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn providers_are_validated_listed_deleted_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut c) = setup(dir.path(), inline_provider()).await;
    for (bad, what) in [
        (json!({"issuer": ISSUER, "audience": AUDIENCE}), "jwks"),
        (json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": "http://idp.example/keys"}), "https"),
        (
            json!({"issuer": ISSUER, "audience": AUDIENCE, "jwks_uri": "https://idp/k", "algorithms": ["HS256"]}),
            "HS256",
        ),
        (json!({"issuer": ISSUER, "audience": [], "jwks_uri": "https://idp/k"}), "audience"),
        (
            json!({"issuer": ISSUER, "audience": "a", "jwks_uri": "https://idp/k", "group_map": {"x": "a b"}}),
            "group_map",
        ),
        (json!({"issuer": ISSUER, "audience": "a", "jwks_uri": "https://idp/k", "secret": "x"}), "secret"),
    ] {
        let r = c.json("PUT", "/v1/tenants/acme/identity-providers/bad", WRITER, &bad).await;
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (422, Some("invalid_request")), "{}", r.text());
        assert!(r.text().contains(what), "{}", r.text());
    }
    let entra = json!({"issuer": "https://login.microsoftonline.com/tid/v2.0", "audience": "api://holdfast",
                       "jwks_uri": "https://login.microsoftonline.com/tid/discovery/v2.0/keys",
                       "user_claim": "preferred_username",
                       "group_map": {"6f1c1b2e-0000-4000-8000-000000000001": "engineering"}});
    let r = c.json("PUT", "/v1/tenants/acme/identity-providers/entra", WRITER, &entra).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let list = c.get("/v1/tenants/acme/identity-providers", READER).await.json();
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["entra", "okta"]);
    let out = sync(&mut c, &rs256(&claims("carol", &["engineering"]))).await;
    assert_eq!(out["added"], json!(["engineering"]));
    server.shutdown().await.unwrap();

    // Restart on the same store.
    let server = Server::start(state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let got = c.get("/v1/tenants/acme/identity-providers/entra", READER).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["group_map"], entra["group_map"]);
    assert_eq!(got.json()["groups_claim"], "groups", "the default is stored");
    // What the sync owned is still known: an empty token removes it.
    let out = sync(&mut c, &rs256(&claims("carol", &[]))).await;
    assert_eq!(out["removed"], json!(["engineering"]));
    // Deleting okta removes the memberships its syncs created.
    sync(&mut c, &rs256(&claims("carol", &["engineering"]))).await;
    let r = c
        .send(
            "DELETE",
            "/v1/tenants/acme/identity-providers/okta",
            &[("authorization", &format!("Bearer {ADMIN}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(direct_groups(&mut c, "carol").await, ["group:sre"]);
    assert_eq!(c.get("/v1/tenants/acme/identity-providers/okta", READER).await.status, 404);
    let r = c
        .json(
            "POST",
            "/v1/tenants/acme/check",
            READER,
            &json!({"id_token": rs256(&claims("carol", &[])), "application": "a", "scope": "b"}),
        )
        .await;
    assert_eq!((r.status, r.json()["error"]["reason"].as_str()), (422, Some("wrong_issuer")));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn policy_files_declare_identity_providers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let acme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml")).unwrap();
    let with = format!(
        "{acme}\nidentity_providers:\n  okta:\n    issuer: {ISSUER}\n    audience: {AUDIENCE}\n    jwks_uri: https://idp.acme.example/keys\n    user_claim: email\n"
    );
    let base = c.clone();
    let put = |text: String| {
        let mut c = base.clone();
        async move {
            let r = c
                .send(
                    "PUT",
                    "/v1/tenants/acme/policy",
                    &[("authorization", &format!("Bearer {ADMIN}")), ("content-type", "application/yaml")],
                    text.as_bytes(),
                )
                .await;
            (r.status, r.text())
        }
    };
    let (s, body) = put(with.clone()).await;
    assert_eq!(s, 200, "{body}");
    let got = c.get("/v1/tenants/acme/identity-providers/okta", READER).await;
    assert_eq!((got.status, got.json()["user_claim"].clone()), (200, json!("email")));
    let feed = c.get("/v1/tenants/acme/changes?since=0&limit=1000", READER).await.json();
    let ops: Vec<Value> =
        feed["changes"].as_array().unwrap().iter().flat_map(|e| e["ops"].as_array().unwrap().clone()).collect();
    assert!(ops.iter().any(|o| o["op"] == "put_identity_provider" && o["name"] == "okta"), "{ops:?}");
    // Applying the same file again changes nothing; a file without the
    // section leaves the provider alone.
    let rev = c.get("/v1/tenants/acme/changes", READER).await.json()["revision"].clone();
    assert_eq!(put(with.clone()).await.0, 200);
    assert_eq!(put(acme.clone()).await.0, 200);
    assert_eq!(c.get("/v1/tenants/acme/changes", READER).await.json()["revision"], rev);
    assert_eq!(c.get("/v1/tenants/acme/identity-providers/okta", READER).await.status, 200);
    // Validation names the problem.
    let bad = format!(
        "{acme}\nidentity_providers:\n  okta:\n    issuer: {ISSUER}\n    audiences: x\n    jwks_uri: https://idp/k\n"
    );
    let r =
        c.json("POST", "/v1/policy/validate", READER, &json!({"files": [{"name": "bad.yaml", "content": bad}]})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("unknown key `audiences`") && r.text().contains("did you mean `audience`"),
        "{}",
        r.text()
    );
    let bad = format!("{acme}\nidentity_providers:\n  okta: {{issuer: {ISSUER}, audience: x, jwks_uri: https://idp/k, algorithms: [HS256]}}\n");
    let r =
        c.json("POST", "/v1/policy/validate", READER, &json!({"files": [{"name": "bad.yaml", "content": bad}]})).await;
    assert!(r.text().contains("`HS256` is not allowed"), "{}", r.text());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_access_token_minted_with_an_id_token_carries_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut c) = setup(dir.path(), inline_provider()).await;
    let mut id_claims = claims("carol", &["engineering"]);
    id_claims["exp"] = json!(now() + 120);
    let id_token = rs256(&id_claims);
    let r = c
        .json("POST", "/v1/tenants/acme/tokens", WRITER, &json!({"id_token": id_token, "application": "github-mcp", "client_id": "claude", "requested_scope": "pr:write"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let minted = r.json();
    assert_eq!(minted["scope"], "pr:write");
    assert!(minted["expires_in"].as_u64().unwrap() <= 120, "capped at the ID token's exp: {minted}");
    // Introspection evaluates with the token's groups again: still active.
    let r = c.json("POST", "/v1/tenants/acme/applications/github-mcp/credentials", WRITER, &json!({})).await;
    let cred = r.json();
    let basic = format!(
        "Basic {}",
        super::api_support::b64(
            format!("{}:{}", cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str().unwrap()).as_bytes()
        )
    );
    let form = format!("token={}", minted["access_token"].as_str().unwrap());
    let r = c
        .send(
            "POST",
            "/oauth2/introspect",
            &[("authorization", &basic), ("content-type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
        .await;
    assert_eq!(
        (r.json()["active"].clone(), r.json()["scope"].clone(), r.json()["sub"].clone()),
        (json!(true), json!("pr:write"), json!("user:carol")),
        "{}",
        r.text()
    );
    // Without a token carol gets nothing there.
    let r = c
        .json(
            "POST",
            "/v1/tenants/acme/tokens",
            WRITER,
            &json!({"subject": "user:carol", "application": "github-mcp", "client_id": "claude"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    server.shutdown().await.unwrap();
}

/// The README's example: `examples/oidc/test-idp.json` and a token from
/// `scripts/mint-id-token.sh` (openssl) work as the section says.
#[tokio::test]
async fn the_readme_test_idp_and_its_minting_script_work() {
    let dir = tempfile::tempdir().unwrap();
    let provider: Value = serde_json::from_str(include_str!("../../examples/oidc/test-idp.json")).unwrap();
    assert_eq!(provider["jwks"]["keys"][0]["n"], jwk(RSA1, Algorithm::RS256, "r1")["n"], "the public half of rsa1.pem");
    let server = Server::start(state(dir.path())).await;
    let mut c = Client::connect(server.addr).await;
    let r = c.json("PUT", "/v1/tenants/acme/identity-providers/test-idp", WRITER, &provider).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mint = |args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/mint-id-token.sh"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let token = mint(&["carol", "engineering"]);
    let body = json!({"id_token": token, "application": PR_WRITE.0, "scope": PR_WRITE.1});
    assert_eq!(check(&mut c, body).await["decision"], "allow");
    let path = "/v1/tenants/acme/identity-providers/test-idp/sync";
    let r = c.json("POST", path, WRITER, &json!({"token": token})).await;
    assert_eq!(r.json()["added"], json!(["engineering"]), "{}", r.text());
    let r = c.json("POST", path, WRITER, &json!({"token": mint(&["carol"])})).await;
    assert_eq!(r.json()["removed"], json!(["engineering"]), "{}", r.text());
    server.shutdown().await.unwrap();
}
