//! The OAuth 2.1 authorization server for MCP clients (issue 18), end to
//! end over real HTTP on 127.0.0.1: a test upstream identity provider
//! (discovery, `/authorize` auto-approving its configured user and
//! honouring `acr_values` / `max_age`, `/token`, JWKS, signing ID tokens
//! with the RSA fixture key) that also serves Client ID Metadata
//! Documents; a real Holdfast server; a small cookie-keeping "browser"
//! driving `/authorize` → IdP → callback → consent → the client's redirect
//! URI; and authlib's `OAuth2Session` doing the whole flow from discovery
//! (`tests/oauth/mcp_flow_authlib.py`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path as AxPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use holdfast::api::{ApiConfig, AppState};
use holdfast::model::Timestamp;
use holdfast::policy;
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::api_support::{keys, Client, Server, WRITER};

const RSA1: &str = include_str!("../fixtures/oidc/rsa1.pem");
const RP_CLIENT: &str = "holdfast-rp";
const RP_SECRET: &str = "rp-secret-for-tests";
const DEPLOY: &str = "https://mcp.acme.example/deploy";
const T: &str = "/v1/tenants/acme";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

// ------------------------------------------------------------- test IdP

/// The test identity provider's state: who it signs in, whether that user
/// can do MFA, and the requests it saw.
pub struct Idp {
    pub base: String,
    pub user: Mutex<String>,
    pub groups: Mutex<Vec<String>>,
    /// Can the user satisfy `acr_values=mfa`?
    pub mfa_enrolled: AtomicBool,
    /// Sign ID tokens with another `iss` (a mismatched issuer).
    pub wrong_issuer: AtomicBool,
    /// Answer the nonce of another request.
    pub wrong_nonce: AtomicBool,
    /// The `acr_values` of each login request, in order.
    pub acr_requests: Mutex<Vec<Option<String>>>,
    codes: Mutex<HashMap<String, IdpCode>>,
    cimd: Mutex<HashMap<String, Value>>,
}

type IdpState = Arc<Idp>;

/// A code of the test IdP: (nonce, acr_values, redirect_uri).
type IdpCode = (Option<String>, Option<String>, String);

async fn idp_discovery(State(idp): State<IdpState>) -> axum::Json<Value> {
    let b = &idp.base;
    axum::Json(json!({"issuer": b, "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"), "jwks_uri": format!("{b}/jwks"),
        "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "acr_values_supported": ["pwd", "mfa"], "claims_supported": ["sub", "groups", "acr", "amr", "auth_time"]}))
}

async fn idp_authorize(State(idp): State<IdpState>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id").map(String::as_str) != Some(RP_CLIENT)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let acr = q.get("acr_values").cloned();
    idp.acr_requests.lock().unwrap().push(acr.clone());
    let code = format!("idp-code-{}", rand_hex());
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    idp.codes.lock().unwrap().insert(code.clone(), (q.get("nonce").cloned(), acr, redirect.clone()));
    let state = q.get("state").cloned().unwrap_or_default();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let to = format!("{redirect}{sep}code={code}&state={}", enc(&state));
    Redirect::to(&to).into_response()
}

fn rand_hex() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn idp_token(State(idp): State<IdpState>, headers: HeaderMap, body: String) -> Response {
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{RP_CLIENT}:{RP_SECRET}")));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let code = form.get("code").cloned().unwrap_or_default();
    let Some((nonce, acr, redirect)) = idp.codes.lock().unwrap().remove(&code) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    };
    if form.get("redirect_uri") != Some(&redirect) {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let mfa =
        acr.as_deref().is_some_and(|a| a.split(' ').any(|v| v == "mfa")) && idp.mfa_enrolled.load(Ordering::SeqCst);
    let iss =
        if idp.wrong_issuer.load(Ordering::SeqCst) { "https://evil.example".to_string() } else { idp.base.clone() };
    let nonce = if idp.wrong_nonce.load(Ordering::SeqCst) { Some("another-nonce".to_string()) } else { nonce };
    let claims = json!({"iss": iss, "aud": RP_CLIENT, "sub": *idp.user.lock().unwrap(),
        "groups": *idp.groups.lock().unwrap(), "iat": now(), "exp": now() + 300, "auth_time": now(),
        "nonce": nonce, "acr": if mfa { "mfa" } else { "pwd" },
        "amr": if mfa { json!(["pwd", "otp"]) } else { json!(["pwd"]) }});
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("r1".into());
    let id_token = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap()).unwrap();
    axum::Json(json!({"access_token": "idp-at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

async fn idp_jwks() -> axum::Json<Value> {
    let mut j = Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(RSA1.as_bytes()).unwrap(), Algorithm::RS256).unwrap();
    j.common.key_id = Some("r1".into());
    axum::Json(json!({"keys": [j]}))
}

async fn idp_cimd(State(idp): State<IdpState>, AxPath(name): AxPath<String>) -> Response {
    match idp.cimd.lock().unwrap().get(&name) {
        Some(doc) => axum::Json(doc.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn start_idp() -> IdpState {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let idp = Arc::new(Idp {
        base: format!("http://{addr}"),
        user: Mutex::new("alice".into()),
        groups: Mutex::new(vec![]),
        mfa_enrolled: AtomicBool::new(false),
        wrong_issuer: AtomicBool::new(false),
        wrong_nonce: AtomicBool::new(false),
        acr_requests: Mutex::new(vec![]),
        codes: Mutex::default(),
        cimd: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(idp_discovery))
        .route("/authorize", get(idp_authorize))
        .route("/token", post(idp_token))
        .route("/jwks", get(idp_jwks))
        .route("/clients/{name}", get(idp_cimd))
        .with_state(idp.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    idp
}

impl Idp {
    /// Publishes a Client ID Metadata Document; answers its URL (the client id).
    pub fn publish_client(&self, name: &str, redirect_uris: &[&str]) -> String {
        let url = format!("{}/clients/{name}", self.base);
        let doc = json!({"client_id": url, "client_name": format!("MCP client {name}"),
            "redirect_uris": redirect_uris, "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "none"});
        self.cimd.lock().unwrap().insert(name.to_string(), doc);
        url
    }
}

// -------------------------------------------------------------- Holdfast

pub struct Env {
    pub server: Server,
    pub base: String,
    pub idp: IdpState,
    pub c: Client,
    _dir: tempfile::TempDir,
}

/// A Holdfast server (worked example, real clock, loopback client metadata
/// allowed) whose tenant `acme` signs users in at the test IdP.
pub async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let idp = start_idp().await;
    let hf = Holdfast::open(dir.path(), Durability::Buffered).unwrap();
    let p = policy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml"))).unwrap();
    hf.write(&p.tenant, p.changes, &[], "demo", 0).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let issuer: &'static str = Box::leak(base.clone().into_boxed_str());
    let config =
        ApiConfig { clock: Timestamp::now, issuer, allow_insecure_client_metadata: true, ..ApiConfig::default() };
    let state = AppState::with_config(Arc::new(hf), keys(), config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(holdfast::api::serve(listener, state, async {
        let _ = rx.await;
    }));
    let server = Server { addr, stop: Some(tx), task };
    let mut c = Client::connect(addr).await;
    let r = c
        .json(
            "PUT",
            &format!("{T}/identity-providers/corp"),
            WRITER,
            &json!({"issuer": idp.base, "audience": RP_CLIENT, "jwks_uri": format!("{}/jwks", idp.base)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c
        .json(
            "PUT",
            &format!("{T}/oauth-server"),
            WRITER,
            &json!({"login_provider": "corp", "client_id": RP_CLIENT, "client_secret": RP_SECRET,
                    "authorization_endpoint": format!("{}/authorize", idp.base),
                    "token_endpoint": format!("{}/token", idp.base)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("client_secret").is_none(), "the secret is never shown: {}", r.text());
    Env { server, base, idp, c, _dir: dir }
}

// ------------------------------------------------------------ a browser

/// A blocking user agent that keeps cookies and follows no redirect by itself.
pub struct Browser {
    agent: ureq::Agent,
    cookies: Vec<(String, String)>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new() -> Browser {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
        Browser { agent, cookies: vec![] }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, res: &ureq::http::Response<ureq::Body>) {
        for v in res.headers().get_all("set-cookie") {
            let first = v.to_str().unwrap().split(';').next().unwrap().to_string();
            if let Some((k, v)) = first.split_once('=') {
                self.cookies.retain(|(n, _)| n != k);
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
    }

    fn page(&mut self, mut res: ureq::http::Response<ureq::Body>) -> Page {
        self.keep(&res);
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
        Page { status: res.status().as_u16(), location, body: res.body_mut().read_to_string().unwrap_or_default() }
    }

    pub fn get(&mut self, url: &str) -> Page {
        let mut req = self.agent.get(url);
        if !self.cookies.is_empty() {
            req = req.header("cookie", &self.cookie_header());
        }
        let res = req.call().unwrap();
        self.page(res)
    }

    pub fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req = self.agent.post(url).header("content-type", "application/x-www-form-urlencoded");
        if !self.cookies.is_empty() {
            req = req.header("cookie", &self.cookie_header());
        }
        let res = req.send(body.as_bytes()).unwrap();
        self.page(res)
    }
}

/// A hidden field of a form page.
fn hidden(body: &str, name: &str) -> String {
    let at = body.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no `{name}` in {body}"));
    let rest = &body[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub fn pkce() -> (String, String) {
    let verifier = format!("v{}{}{}", rand_hex(), rand_hex(), rand_hex());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// How a run of `/authorize` ended.
#[derive(Debug)]
pub enum End {
    /// Back at the client's redirect URI, with these parameters.
    Redirected(HashMap<String, String>),
    /// A page that is not a redirect (an error in words).
    Page(u16, String),
}

impl End {
    pub fn params(self) -> HashMap<String, String> {
        match self {
            End::Redirected(p) => p,
            End::Page(s, b) => panic!("expected a redirect to the client, got {s}: {b}"),
        }
    }
}

pub struct Consent {
    pub body: String,
}

/// Runs `/authorize` until the browser is back at `redirect_uri`; a
/// consent page is answered with `approve` (and shown to `seen`).
pub fn run_authorize(
    b: &mut Browser,
    url: &str,
    redirect_uri: &str,
    approve: bool,
    mut seen: impl FnMut(&Consent),
) -> End {
    let mut page = b.get(url);
    for _ in 0..10 {
        if let Some(loc) = page.location.clone() {
            if loc.starts_with(redirect_uri) {
                let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
                return End::Redirected(form_urlencoded::parse(q.as_bytes()).into_owned().collect());
            }
            page = b.get(&loc);
            continue;
        }
        if page.status == 200 && page.body.contains("name=\"decision\"") {
            seen(&Consent { body: page.body.clone() });
            let (txn, csrf) = (hidden(&page.body, "txn"), hidden(&page.body, "csrf"));
            let action = {
                let at = page.body.find("action=\"").unwrap() + 8;
                page.body[at..at + page.body[at..].find('"').unwrap()].to_string()
            };
            let base = url.split("/t/").next().unwrap().to_string();
            let decision = if approve { "approve" } else { "deny" };
            page = b.post_form(&format!("{base}{action}"), &[("txn", &txn), ("csrf", &csrf), ("decision", decision)]);
            continue;
        }
        return End::Page(page.status, page.body);
    }
    panic!("too many redirects");
}

pub fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    challenge: &str,
    resource: &str,
    scope: &str,
) -> String {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", "st-123")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource)
        .append_pair("scope", scope)
        .finish();
    format!("{base}/t/acme/oauth2/authorize?{q}")
}

/// POSTs a form to `/token` (blocking): (status, JSON).
pub fn token(base: &str, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let mut req =
        agent.post(&format!("{base}/t/acme/oauth2/token")).header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)));
        req = req.header("authorization", &format!("Basic {v}"));
    }
    let mut res = req.send(body.as_bytes()).unwrap();
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A full authorization-code flow with a fresh browser: the token answer.
async fn code_flow(base: &str, client_id: &str, redirect: &str, scope: &str) -> (u16, Value) {
    let (base, client_id, redirect, scope) =
        (base.to_string(), client_id.to_string(), redirect.to_string(), scope.to_string());
    blocking(move || {
        let (verifier, challenge) = pkce();
        let mut b = Browser::new();
        let url = authorize_url(&base, &client_id, &redirect, &challenge, DEPLOY, &scope);
        let p = run_authorize(&mut b, &url, &redirect, true, |_| {}).params();
        assert_eq!(p.get("iss").map(String::as_str), Some(format!("{base}/t/acme").as_str()), "RFC 9207 `iss`: {p:?}");
        assert_eq!(p.get("state").map(String::as_str), Some("st-123"));
        let code = p.get("code").unwrap_or_else(|| panic!("no code: {p:?}")).clone();
        token(
            &base,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
                ("resource", DEPLOY),
            ],
            None,
        )
    })
    .await
}

fn introspect(base: &str, id: &str, secret: &str, tok: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut res = agent
        .post(&format!("{base}/oauth2/introspect"))
        .header("authorization", &format!("Basic {v}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("token={tok}").as_bytes())
        .unwrap();
    serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap()
}

async fn app_credentials(c: &mut Client) -> (String, String) {
    let r = c.json("POST", &format!("{T}/applications/deploy-mcp/credentials"), WRITER, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string())
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_chain_resource_metadata_names_the_tenant_issuer_and_rfc_8414_metadata() {
    let mut e = env().await;
    let r = e.c.get(&format!("{T}/applications/deploy-mcp/.well-known/oauth-protected-resource"), WRITER).await;
    let issuer = format!("{}/t/acme", e.base);
    assert_eq!(r.json()["authorization_servers"], json!([issuer]));
    let r = e.c.get("/.well-known/oauth-authorization-server/t/acme", WRITER).await;
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["issuer"], json!(issuer));
    assert_eq!(m["authorization_endpoint"], json!(format!("{issuer}/oauth2/authorize")));
    assert_eq!(m["token_endpoint"], json!(format!("{issuer}/oauth2/token")));
    assert_eq!(m["revocation_endpoint"], json!(format!("{issuer}/oauth2/revoke")));
    assert_eq!(m["introspection_endpoint"], json!(format!("{}/oauth2/introspect", e.base)));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["client_id_metadata_document_supported"], json!(true));
    assert_eq!(m["authorization_response_iss_parameter_supported"], json!(true));
    assert!(m["scopes_supported"].as_array().unwrap().contains(&json!("deploy:prod")));
    assert!(m["grant_types_supported"].as_array().unwrap().contains(&json!("refresh_token")));
    let r = e.c.get("/.well-known/oauth-authorization-server/t/nope", WRITER).await;
    assert_eq!(r.status, 404);
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cimd_client_gets_deploy_read_without_mfa_then_deploy_prod_after_step_up() {
    let mut e = env().await;
    let redirect = "http://127.0.0.1:9/callback";
    let client = e.idp.publish_client("claude", &[redirect]);
    // The IdP cannot do MFA for alice: the step-up is asked for, not met.
    let base = e.base.clone();
    let (c2, b2) = (client.clone(), base.clone());
    let (status, first, consent) = blocking(move || {
        let (verifier, challenge) = pkce();
        let mut b = Browser::new();
        let url = authorize_url(&b2, &c2, redirect, &challenge, DEPLOY, "deploy:read deploy:prod");
        let mut shown = String::new();
        let p = run_authorize(&mut b, &url, redirect, true, |c| shown = c.body.clone()).params();
        let code = p["code"].clone();
        let (s, v) = token(
            &b2,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", &c2),
            ],
            None,
        );
        (s, v, shown)
    })
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["scope"], "deploy:read");
    assert!(consent.contains("deploy:prod") && consent.contains("step_up_required:mfa"), "{consent}");
    assert!(consent.contains("MCP client claude"), "the consent page names the client: {consent}");
    assert_eq!(*e.idp.acr_requests.lock().unwrap(), [None, Some("mfa".to_string())], "a step-up login was asked");
    // With MFA at the IdP, the same client gets the MFA-bound scope.
    e.idp.mfa_enrolled.store(true, Ordering::SeqCst);
    let (status, second) = code_flow(&base, &client, redirect, "deploy:read deploy:prod").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["scope"], "deploy:prod deploy:read");
    assert!(second["refresh_token"].as_str().unwrap().starts_with("hf_rt_"));
    // The access token introspects as before (RFC 7662, app credentials).
    let (id, secret) = app_credentials(&mut e.c).await;
    let at = second["access_token"].as_str().unwrap().to_string();
    let (b2, c2) = (base.clone(), client.clone());
    let v = blocking(move || introspect(&b2, &id, &secret, &at)).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["scope"], "deploy:prod deploy:read");
    assert_eq!(v["client_id"], json!(c2));
    assert_eq!(v["sub"], "user:alice");
    // Grants and consents are in the change feed.
    let r = e.c.get(&format!("{T}/changes"), WRITER).await;
    let feed = r.text();
    for event in ["\"consent\"", "\"grant\"", "\"code_issued\"", "\"code_exchanged\""] {
        assert!(feed.contains(event), "{event} not in the feed: {feed}");
    }
    assert!(!feed.contains("hf_rt_") && !feed.contains("hf_ac_") && !feed.contains("hf_at_"), "no secrets in the feed");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_the_application_does_not_support_is_never_granted() {
    let e = env().await;
    let redirect = "http://127.0.0.1:9/cb";
    let client = e.idp.publish_client("greedy", &[redirect]);
    let (b2, c2) = (e.base.clone(), client.clone());
    let (status, v, consent) = blocking(move || {
        let (verifier, challenge) = pkce();
        let mut b = Browser::new();
        let url = authorize_url(&b2, &c2, redirect, &challenge, DEPLOY, "deploy:read repo:read");
        let mut shown = String::new();
        let p = run_authorize(&mut b, &url, redirect, true, |c| shown = c.body.clone()).params();
        let (s, v) = token(
            &b2,
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", &c2),
            ],
            None,
        );
        (s, v, shown)
    })
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["scope"], "deploy:read");
    assert!(consent.contains("repo:read") && consent.contains("not_in_scopes_supported"), "{consent}");
    // Only unsupported scopes: nothing to grant, `invalid_scope` back at the client.
    let (b2, c2) = (e.base.clone(), client.clone());
    let p = blocking(move || {
        let (_, challenge) = pkce();
        let url = authorize_url(&b2, &c2, redirect, &challenge, DEPLOY, "repo:read");
        run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params()
    })
    .await;
    assert_eq!(p["error"], "invalid_scope", "{p:?}");
    assert_eq!(p["state"], "st-123");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_errors_pkce_reused_code_redirect_uri_resource_and_issuer() {
    let e = env().await;
    let redirect = "http://127.0.0.1:9/cb";
    let client = e.idp.publish_client("c", &[redirect]);
    let base = e.base.clone();
    let (b2, c2) = (base.clone(), client.clone());
    blocking(move || {
        let (verifier, challenge) = pkce();
        let url = authorize_url(&b2, &c2, redirect, &challenge, DEPLOY, "deploy:read");
        let code = run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params()["code"].clone();
        let tok = |code: &str, redirect: &str, verifier: &str, resource: &str| {
            token(
                &b2,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                    ("client_id", &c2),
                    ("resource", resource),
                ],
                None,
            )
        };
        // Wrong verifier, wrong redirect URI, wrong resource: refused, code intact.
        let (s, v) = tok(&code, redirect, &pkce().0, DEPLOY);
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
        let (s, v) = tok(&code, "http://127.0.0.1:9/other", &verifier, DEPLOY);
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
        let (s, v) = tok(&code, redirect, &verifier, "https://mcp.acme.example/github");
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_target")), "{v}");
        // Another client may not use it.
        let (s, v) = token(
            &b2,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", "https://other.example/c"),
            ],
            None,
        );
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
        let (s, first) = tok(&code, redirect, &verifier, DEPLOY);
        assert_eq!(s, 200, "{first}");
        // A reused code is refused and revokes what it gave (RFC 6749 §4.1.2).
        let (s, v) = tok(&code, redirect, &verifier, DEPLOY);
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
        let (s, v) = token(
            &b2,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().unwrap()),
                ("client_id", &c2),
            ],
            None,
        );
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked: {v}");
        // No error-page-free stack traces: unknown grant types and garbage.
        let (s, v) = token(&b2, &[("grant_type", "password"), ("client_id", &c2)], None);
        assert_eq!((s, v["error"].as_str()), (400, Some("unsupported_grant_type")), "{v}");
        let (s, v) = token(&b2, &[("grant_type", "authorization_code")], None);
        assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");

        // At /authorize: a redirect URI the client did not register is an
        // error page, never a redirect.
        let (_, challenge) = pkce();
        let url = authorize_url(&b2, &c2, "http://127.0.0.1:9/evil", &challenge, DEPLOY, "deploy:read");
        match run_authorize(&mut Browser::new(), &url, "http://127.0.0.1:9/evil", true, |_| {}) {
            End::Page(400, body) => assert!(body.contains("not one the client"), "{body}"),
            other => panic!("expected an error page: {other:?}"),
        }
        // A resource that is no application: invalid_target back at the client.
        let url = authorize_url(&b2, &c2, redirect, &challenge, "https://nowhere.example/mcp", "deploy:read");
        let p = run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params();
        assert_eq!(p["error"], "invalid_target", "{p:?}");
        assert_eq!(p["iss"], format!("{b2}/t/acme"));
        // No PKCE: invalid_request.
        let url = authorize_url(&b2, &c2, redirect, "", DEPLOY, "deploy:read").replace("&code_challenge=&", "&");
        let p = run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params();
        assert_eq!(p["error"], "invalid_request", "{p:?}");
        // An unregistered, non-URL client id: an error page.
        let url = authorize_url(&b2, "some-client", redirect, &challenge, DEPLOY, "deploy:read");
        assert!(matches!(run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}), End::Page(400, _)));
    })
    .await;
    // An ID token with a mismatched `iss` (or another request's nonce) is
    // not a login: access_denied back at the client.
    e.idp.wrong_issuer.store(true, Ordering::SeqCst);
    let (b2, c2) = (base.clone(), client.clone());
    let p = blocking(move || {
        let url = authorize_url(&b2, &c2, redirect, &pkce().1, DEPLOY, "deploy:read");
        run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params()
    })
    .await;
    assert_eq!(p["error"], "access_denied", "{p:?}");
    assert!(p["error_description"].contains("issuer"), "{p:?}");
    e.idp.wrong_issuer.store(false, Ordering::SeqCst);
    e.idp.wrong_nonce.store(true, Ordering::SeqCst);
    let (b2, c2) = (base.clone(), client.clone());
    let p = blocking(move || {
        let url = authorize_url(&b2, &c2, redirect, &pkce().1, DEPLOY, "deploy:read");
        run_authorize(&mut Browser::new(), &url, redirect, true, |_| {}).params()
    })
    .await;
    assert_eq!(p["error"], "access_denied", "{p:?}");
    assert!(p["error_description"].contains("nonce"), "{p:?}");
    // Denying consent: access_denied.
    // (A client the user has not consented to yet: a consent given once is
    // remembered for the scopes it named.)
    e.idp.wrong_nonce.store(false, Ordering::SeqCst);
    let fresh = e.idp.publish_client("deny", &[redirect]);
    let (b2, c2) = (base.clone(), fresh);
    let p = blocking(move || {
        let url = authorize_url(&b2, &c2, redirect, &pkce().1, DEPLOY, "deploy:read");
        run_authorize(&mut Browser::new(), &url, redirect, false, |_| {}).params()
    })
    .await;
    assert_eq!(p["error"], "access_denied", "{p:?}");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_narrows_after_a_removed_binding_fails_after_suspension_and_reuse_revokes_the_family() {
    let mut e = env().await;
    e.idp.mfa_enrolled.store(true, Ordering::SeqCst);
    let redirect = "http://127.0.0.1:9/cb";
    let client = e.idp.publish_client("r", &[redirect]);
    let base = e.base.clone();
    let (s, t1) = code_flow(&base, &client, redirect, "deploy:read deploy:prod").await;
    assert_eq!((s, t1["scope"].as_str()), (200, Some("deploy:prod deploy:read")), "{t1}");
    let refresh = |rt: String| {
        let (b2, c2) = (base.clone(), client.clone());
        blocking(move || {
            token(&b2, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", &c2)], None)
        })
    };
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    let (s, t2) = refresh(rt1.clone()).await;
    assert_eq!((s, t2["scope"].as_str()), (200, Some("deploy:prod deploy:read")), "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "rotated");
    // The binding that grants deploy:prod is removed: the next refresh narrows.
    let r =
        e.c.send(
            "DELETE",
            &format!("{T}/bindings?subject=group:on-call&role=deploy-operator&application=deploy-mcp"),
            &[("authorization", &format!("Bearer {WRITER}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (s, t3) = refresh(rt2.clone()).await;
    assert_eq!((s, t3["scope"].as_str()), (200, Some("deploy:read")), "{t3}");
    let rt3 = t3["refresh_token"].as_str().unwrap().to_string();
    // A suspended user's refresh fails.
    let r = e.c.json("POST", &format!("{T}/subjects/user:alice/suspend"), WRITER, &json!({"reason": "left"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (s, v) = refresh(rt3.clone()).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    let r = e.c.json("POST", &format!("{T}/subjects/user:alice/reactivate"), WRITER, &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Reuse of a rotated-out refresh token revokes the family: the current
    // refresh token and the family's access tokens stop working.
    let (s, v) = refresh(rt1).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "{v}");
    let (s, v) = refresh(rt3).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")), "the family is revoked: {v}");
    let (id, secret) = app_credentials(&mut e.c).await;
    let at = t3["access_token"].as_str().unwrap().to_string();
    let b2 = base.clone();
    let v = blocking(move || introspect(&b2, &id, &secret, &at)).await;
    assert_eq!(v, json!({"active": false}));
    let feed = e.c.get(&format!("{T}/changes"), WRITER).await.text();
    assert!(feed.contains("\"refresh\"") && feed.contains("\"grant_revoked\""), "{feed}");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_for_a_service_account_and_pre_registered_first_party_clients() {
    let mut e = env().await;
    let r = e.c.json("PUT", &format!("{T}/service-accounts/reporter"), WRITER, &json!({"name": "Reporter"})).await;
    assert!(r.status < 300, "{}", r.text());
    let r =
        e.c.json(
            "POST",
            &format!("{T}/bindings"),
            WRITER,
            &json!({"subject": "service_account:reporter", "role": "auditor", "application": "deploy-mcp"}),
        )
        .await;
    assert!(r.status < 300, "{}", r.text());
    let r =
        e.c.json(
            "POST",
            &format!("{T}/oauth-clients"),
            WRITER,
            &json!({"name": "Reporter job", "confidential": true, "service_account": "reporter"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let (id, secret) = (v["client_id"].as_str().unwrap().to_string(), v["client_secret"].as_str().unwrap().to_string());
    let r =
        e.c.json(
            "POST",
            &format!("{T}/oauth-clients"),
            WRITER,
            &json!({"name": "CI", "confidential": true, "service_account": "ci-bot"}),
        )
        .await;
    let ci = r.json();
    let (ci_id, ci_secret) =
        (ci["client_id"].as_str().unwrap().to_string(), ci["client_secret"].as_str().unwrap().to_string());
    let (aid, asecret) = app_credentials(&mut e.c).await;
    let base = e.base.clone();
    blocking(move || {
        let (s, v) = token(
            &base,
            &[("grant_type", "client_credentials"), ("resource", DEPLOY), ("scope", "deploy:read deploy:prod")],
            Some((&id, &secret)),
        );
        assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:read")), "{v}");
        assert!(v.get("refresh_token").is_none());
        let i = introspect(&base, &aid, &asecret, v["access_token"].as_str().unwrap());
        assert_eq!((i["active"].as_bool(), i["sub"].as_str()), (Some(true), Some("service_account:reporter")), "{i}");
        let (s, v) =
            token(&base, &[("grant_type", "client_credentials"), ("resource", DEPLOY)], Some((&id, "hf_cs_wrong")));
        assert_eq!((s, v["error"].as_str()), (401, Some("invalid_client")), "{v}");
        // ci-bot's binding needs an IP in 10.0.0.0/8: nothing without one.
        let (s, v) =
            token(&base, &[("grant_type", "client_credentials"), ("resource", DEPLOY)], Some((&ci_id, &ci_secret)));
        assert_eq!((s, v["error"].as_str()), (400, Some("invalid_scope")), "{v}");
    })
    .await;
    // A pre-registered first-party client skips the consent page.
    let redirect = "http://127.0.0.1:9/first";
    let r =
        e.c.json(
            "POST",
            &format!("{T}/oauth-clients"),
            WRITER,
            &json!({"name": "Acme CLI", "redirect_uris": [redirect], "first_party": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let cli = r.json()["client_id"].as_str().unwrap().to_string();
    let (b2, c2) = (e.base.clone(), cli.clone());
    let consents = blocking(move || {
        let (verifier, challenge) = pkce();
        let mut n = 0;
        let url = authorize_url(&b2, &c2, redirect, &challenge, DEPLOY, "deploy:read");
        let p = run_authorize(&mut Browser::new(), &url, redirect, true, |_| n += 1).params();
        let (s, v) = token(
            &b2,
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", &c2),
            ],
            None,
        );
        assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:read")), "{v}");
        n
    })
    .await;
    assert_eq!(consents, 0);
    let listed = e.c.get(&format!("{T}/oauth-clients"), WRITER).await.text();
    assert!(listed.contains(&cli) && !listed.contains("secret_sha256"), "{listed}");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_registration_works_until_an_admin_switches_it_off_and_token_requests_are_rate_limited() {
    let mut e = env().await;
    let r =
        e.c.json(
            "POST",
            "/t/acme/oauth2/register",
            WRITER,
            &json!({"client_name": "Some MCP client", "redirect_uris": ["http://127.0.0.1:7/cb"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let client = r.json()["client_id"].as_str().unwrap().to_string();
    assert!(r.json().get("client_secret").is_none(), "a public client");
    let r =
        e.c.json("POST", "/t/acme/oauth2/register", WRITER, &json!({"redirect_uris": ["http://evil.example/cb"]}))
            .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (400, Some("invalid_redirect_uri")), "{}", r.text());
    let (s, v) = code_flow(&e.base, &client, "http://127.0.0.1:7/cb", "deploy:read").await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:read")), "{v}");
    // Switched off.
    let settings = e.c.get(&format!("{T}/oauth-server"), WRITER).await.json();
    assert_eq!(settings["client_secret_set"], true);
    let r =
        e.c.json(
            "PUT",
            &format!("{T}/oauth-server"),
            WRITER,
            &json!({"login_provider": "corp", "client_id": RP_CLIENT, "client_secret": RP_SECRET,
                "authorization_endpoint": format!("{}/authorize", e.idp.base),
                "token_endpoint": format!("{}/token", e.idp.base), "dynamic_registration": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r =
        e.c.json("POST", "/t/acme/oauth2/register", WRITER, &json!({"redirect_uris": ["http://127.0.0.1:7/cb"]})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    let m = e.c.get("/.well-known/oauth-authorization-server/t/acme", WRITER).await.json();
    assert!(m.get("registration_endpoint").is_none(), "{m}");
    // /token answers at most 30 requests per client per 10 s.
    let base = e.base.clone();
    let statuses = blocking(move || {
        (0..40)
            .map(|_| {
                let fresh = "https://rate.example/client";
                token(&base, &[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", fresh)], None).0
            })
            .collect::<Vec<_>>()
    })
    .await;
    assert!(statuses.iter().take(30).all(|s| *s == 400), "{statuses:?}");
    assert!(statuses.iter().skip(30).all(|s| *s == 429), "{statuses:?}");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_oauth2_session_does_the_whole_mcp_flow_with_pkce() {
    let probe = std::process::Command::new("python3").args(["-c", "import authlib, requests"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but `python3 -c \"import authlib, requests\"` failed: {probe:?}"
        );
        eprintln!(
            "SKIPPED authlib_oauth2_session_does_the_whole_mcp_flow_with_pkce: `python3 -c \"import authlib, \
             requests\"` failed; install them with `python3 -m pip install authlib requests` (.ci/run does)"
        );
        return;
    }
    let e = env().await;
    let redirect = "http://127.0.0.1:9/authlib-cb";
    let client = e.idp.publish_client("authlib", &[redirect]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth/mcp_flow_authlib.py");
    let run = |expected: &str| {
        let args = [
            script.to_string(),
            e.base.clone(),
            "deploy-mcp".into(),
            client.clone(),
            redirect.into(),
            "deploy:read deploy:prod".into(),
            expected.to_string(),
        ];
        async move {
            let out = blocking(move || std::process::Command::new("python3").args(&args).output().unwrap()).await;
            let (o, er) =
                (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
            assert!(out.status.success(), "authlib script failed:\n{o}\n{er}");
            o
        }
    };
    let out = run("deploy:read").await;
    assert!(out.contains("ok: granted deploy:read"), "{out}");
    e.idp.mfa_enrolled.store(true, Ordering::SeqCst);
    let out = run("deploy:prod deploy:read").await;
    assert!(out.contains("ok: granted deploy:prod deploy:read") && out.contains("ok: reuse refused"), "{out}");
    e.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_survive_a_restart_and_only_digests_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let _ = dir;
    let e = env().await;
    e.idp.mfa_enrolled.store(true, Ordering::SeqCst);
    let redirect = "http://127.0.0.1:9/cb";
    let client = e.idp.publish_client("p", &[redirect]);
    let (s, t1) = code_flow(&e.base, &client, redirect, "deploy:read").await;
    assert_eq!(s, 200, "{t1}");
    let rt = t1["refresh_token"].as_str().unwrap().to_string();
    let data = e._dir.path().to_path_buf();
    let Env { server, c, _dir, .. } = e;
    drop(c);
    server.shutdown().await.unwrap();
    // Nothing stored holds a raw refresh token.
    let mut raw = Vec::new();
    for entry in walk(&data) {
        raw.extend(std::fs::read(entry).unwrap_or_default());
    }
    let needle = rt.as_bytes();
    assert!(!raw.windows(needle.len()).any(|w| w == needle), "a raw refresh token is stored");
    let hf = Holdfast::open(&data, Durability::Buffered).unwrap();
    let t = hf.tenant("acme").unwrap();
    let st = t.read();
    assert!(st.oauth().family_of(&rt).is_some(), "the family survived the restart");
    assert!(st.oauth().settings().is_some());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_and_consent_pages_in_headless_chromium() {
    if !super::api_support::browser_available("the_login_and_consent_pages_in_headless_chromium") {
        return;
    }
    let e = env().await;
    let redirect = "http://127.0.0.1:9/chromium-cb";
    let client = e.idp.publish_client("chromium", &[redirect]);
    let (verifier, challenge) = pkce();
    let url = authorize_url(&e.base, &client, redirect, &challenge, DEPLOY, "deploy:read repo:read");
    let root = env!("CARGO_MANIFEST_DIR");
    let args =
        [format!("{root}/tests/ui/oauth_flow.py"), url, redirect.to_string(), format!("{root}/target/ui-screenshots")];
    let out = blocking(move || std::process::Command::new("python3").args(&args).output().unwrap()).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser flow failed:\n{stdout}\n{stderr}");
    let code = stdout.lines().find_map(|l| l.strip_prefix("code=")).expect("a code").to_string();
    let base = e.base.clone();
    let (s, v) = blocking(move || {
        token(
            &base,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", &verifier),
                ("client_id", &client),
            ],
            None,
        )
    })
    .await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:read")), "{v}");
    e.server.shutdown().await.unwrap();
}

/// The login's groups go through the OIDC issue's machinery: by default
/// its just-in-time sync (stored memberships owned by the provider), or as
/// request-only groups carried by the grant (`"groups": "request"`),
/// never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_groups_are_synced_or_request_only() {
    let mut e = env().await;
    e.idp.mfa_enrolled.store(true, Ordering::SeqCst);
    // bob is not on call; his ID token says he is.
    *e.idp.user.lock().unwrap() = "bob".into();
    *e.idp.groups.lock().unwrap() = vec!["on-call".into()];
    let redirect = "http://127.0.0.1:9/cb";
    let client = e.idp.publish_client("g", &[redirect]);
    let members = |v: Value| v.to_string().contains("user:bob");
    // Request-only: bob gets the on-call scope, nothing is stored.
    let r =
        e.c.json(
            "PUT",
            &format!("{T}/oauth-server"),
            WRITER,
            &json!({"login_provider": "corp", "client_id": RP_CLIENT, "client_secret": RP_SECRET,
                    "authorization_endpoint": format!("{}/authorize", e.idp.base),
                    "token_endpoint": format!("{}/token", e.idp.base), "groups": "request"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (s, v) = code_flow(&e.base, &client, redirect, "deploy:prod").await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:prod")), "{v}");
    let g = e.c.get(&format!("{T}/groups/on-call"), WRITER).await.json();
    assert!(!members(g.clone()), "request-only groups are not stored: {g}");
    // The grant carries them: a refresh still has the scope.
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    let (b2, c2) = (e.base.clone(), client.clone());
    let (s, v) = blocking(move || {
        token(&b2, &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", &c2)], None)
    })
    .await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:prod")), "{v}");
    // Sync (the default): the membership is stored, owned by the provider.
    let r =
        e.c.json(
            "PUT",
            &format!("{T}/oauth-server"),
            WRITER,
            &json!({"login_provider": "corp", "client_id": RP_CLIENT, "client_secret": RP_SECRET,
                    "authorization_endpoint": format!("{}/authorize", e.idp.base),
                    "token_endpoint": format!("{}/token", e.idp.base)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (s, v) = code_flow(&e.base, &client, redirect, "deploy:prod").await;
    assert_eq!((s, v["scope"].as_str()), (200, Some("deploy:prod")), "{v}");
    let g = e.c.get(&format!("{T}/groups/on-call"), WRITER).await.json();
    assert!(members(g.clone()), "synced: {g}");
    let feed = e.c.get(&format!("{T}/changes"), WRITER).await.text();
    assert!(feed.contains("\"actor\":\"oidc:corp\""), "the sync's write: {feed}");
    e.server.shutdown().await.unwrap();
}
