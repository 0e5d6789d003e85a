//! The admin UI's handlers (`/ui/`), through `api::router` with
//! `tower::ServiceExt::oneshot`: sign-in required, sessions, CSRF refusal,
//! read-only and tenant keys, every page and every form. The same flow in a
//! real browser is `ui_browser`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{self, ApiConfig, AppState};
use tower::ServiceExt;

use super::api_support::{acme_state, call, ADMIN, OTHER, READER, WRITER};

const T: &str = "/ui/t/acme";

/// A user agent with a cookie jar, against one `AppState` (whose sessions
/// live as long as it does).
struct Agent {
    state: AppState,
    cookies: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn has(&self, fragment: &str) -> bool {
        self.body.contains(fragment)
    }

    /// POST forms other than sign-out: controls that change something.
    fn changing_forms(&self) -> usize {
        self.body.matches("method=\"post\"").count() - self.body.matches("action=\"/ui/sign-out\"").count()
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        self.body[at..at + 64].to_string()
    }
}

impl Agent {
    fn new(state: &AppState) -> Agent {
        Agent { state: state.clone(), cookies: BTreeMap::new() }
    }

    async fn send(&mut self, method: &str, path: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", jar.join("; "));
        }
        let req = match form {
            Some(fields) => {
                let mut s = form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    s.append_pair(k, v);
                }
                req.header("content-type", "application/x-www-form-urlencoded").body(Body::from(s.finish())).unwrap()
            }
            None => req.body(Body::empty()).unwrap(),
        };
        let res = api::router(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let set_cookies: Vec<String> =
            headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let location = headers.get("location").map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        Page { status, location, set_cookies, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, None).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send("POST", path, Some(form)).await
    }

    /// Follows a redirect (the page after a POST).
    async fn follow(&mut self, p: Page) -> Page {
        assert_eq!(p.status, 303, "expected a redirect: {p:?}");
        let to = p.location.clone().unwrap();
        self.get(&to).await
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/ui/").await;
        let csrf = form.csrf();
        self.post("/ui/sign-in", &[("csrf", &csrf), ("key", key)]).await
    }

    /// Signed in with `key`; answers the session's CSRF token.
    async fn signed_in(state: &AppState, key: &str) -> (Agent, String) {
        let mut a = Agent::new(state);
        let p = a.sign_in(key).await;
        assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/")), "{p:?}");
        let csrf = a.get(&format!("{T}/groups")).await.csrf();
        (a, csrf)
    }
}

/// Every page, with a fragment it must show to the admin.
const PAGES: &[(&str, &str)] = &[
    ("/groups", "on-call"),
    ("/groups?q=s", "sre"),
    ("/groups/on-call", "group:sre"),
    ("/effective-access", "Paste a subject id"),
    ("/effective-access?subject=user:alice", "user:alice → group:on-call"),
    ("/effective-access?subject=user:alice&application=deploy-mcp&scope=deploy:prod", "Step-up required"),
    ("/users", "alice@acme.example"),
    ("/service-accounts", "ci-bot"),
    ("/roles", "deploy-operator"),
    ("/applications", "https://mcp.acme.example/deploy"),
    ("/applications/deploy-mcp", "Who can access"),
    ("/changes", "declared application:github-mcp"),
    ("/policy", "Validate and preview the diff"),
];

#[tokio::test]
async fn a_page_without_a_session_redirects_to_sign_in_and_shows_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let mut a = Agent::new(&state);
    for (path, fragment) in PAGES {
        let p = a.get(&format!("{T}{path}")).await;
        assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/")), "{path}");
        assert!(!p.has(fragment) && !p.has("alice"), "{path}: {}", p.body);
    }
    // A POST without a session is refused, and changes nothing.
    let p = a.post(&format!("{T}/groups"), &[("id", "intruders")]).await;
    assert_eq!(p.status, 403);
    assert!(p.has("Sign in"), "{}", p.body);
    let st = state.holdfast().tenant("acme").unwrap();
    assert!(!st.read().subject_known(&holdfast::model::ObjectRef::parse("group:intruders").unwrap()));
    // A made-up session id is no session.
    a.cookies.insert("hf_ui_session".into(), "0".repeat(64));
    assert_eq!(a.get(&format!("{T}/users")).await.status, 303);
}

#[tokio::test]
async fn sign_in_with_a_key_makes_a_cookie_session_that_holds_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let mut a = Agent::new(&state);
    let form = a.get("/ui/").await;
    assert_eq!(form.status, 200);
    assert!(form.has("name=\"key\"") && form.has("type=\"password\"") && form.has("action=\"/ui/sign-in\""));
    assert!(form.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert_eq!(form.headers["cache-control"], "no-store");
    assert_eq!(form.headers["x-frame-options"], "DENY");

    // The sign-in form's own CSRF token (double submit) is required.
    let p = a.post("/ui/sign-in", &[("key", ADMIN)]).await;
    assert_eq!(p.status, 403);
    assert!(p.has("no valid CSRF token"), "{}", p.body);
    let p = a.post("/ui/sign-in", &[("csrf", &"f".repeat(64)), ("key", ADMIN)]).await;
    assert_eq!(p.status, 403);
    assert!(state.ui_sessions().is_empty());

    // A wrong key: in words, and not echoed back.
    let csrf = a.get("/ui/").await.csrf();
    let p = a.post("/ui/sign-in", &[("csrf", &csrf), ("key", "not-a-key-xyz")]).await;
    assert_eq!(p.status, 401);
    assert!(p.has("That API key is not valid.") && !p.has("not-a-key-xyz"), "{}", p.body);

    let p = a.sign_in(ADMIN).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/")));
    let session = p.set_cookies.iter().find(|c| c.starts_with("hf_ui_session=")).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains(ADMIN), "{session}");
    assert!(p.set_cookies.iter().any(|c| c.starts_with("hf_ui_sign_in=;") && c.contains("Max-Age=0")));
    assert_eq!(state.ui_sessions().len(), 1);
    // The admin key sees the tenants; nothing of the key is in the page.
    let home = a.get("/ui/").await;
    assert!(home.has("href=\"/ui/t/acme/groups\"") && home.has("Signed in as <strong>admin</strong>"));
    assert!(!home.has(ADMIN));
    // Signing in again (a sign-in form from before) makes a new session
    // and ends the old one.
    let old = a.cookies.remove("hf_ui_session").unwrap();
    let csrf = a.get("/ui/").await.csrf();
    a.cookies.insert("hf_ui_session".into(), old.clone());
    assert_eq!(a.post("/ui/sign-in", &[("csrf", &csrf), ("key", READER)]).await.status, 303);
    assert_ne!(a.cookies["hf_ui_session"], old);
    assert_eq!(state.ui_sessions().len(), 1);
    assert!(a.get("/ui/").await.location.as_deref() == Some("/ui/t/acme/groups"), "now the reader");

    // Sign out needs the CSRF token too; then the session is gone.
    let p = a.post("/ui/sign-out", &[]).await;
    assert_eq!(p.status, 403);
    assert_eq!(a.get(&format!("{T}/users")).await.status, 200, "still signed in");
    let csrf = a.get(&format!("{T}/users")).await.csrf();
    let p = a.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((p.status, p.location.as_deref()), (303, Some("/ui/")));
    assert!(p.set_cookies.iter().any(|c| c.starts_with("hf_ui_session=;") && c.contains("Max-Age=0")));
    assert_eq!(state.ui_sessions().len(), 0);
    assert_eq!(a.get(&format!("{T}/users")).await.status, 303);
}

#[tokio::test]
async fn every_page_renders_for_the_admin() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, _) = Agent::signed_in(&state, ADMIN).await;
    for (path, fragment) in PAGES {
        let p = a.get(&format!("{T}{path}")).await;
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(p.has(fragment), "{path}: no `{fragment}` in {}", p.body);
        assert_eq!(p.headers["content-type"], "text/html; charset=utf-8", "{path}");
        assert!(p.has("<nav aria-label=\"Sections\">") && p.has("aria-current=\"page\""), "{path}");
    }
    assert!(a.get("/ui/static/holdfast.css").await.has("--accent"));
    assert!(a.get("/ui/static/holdfast.js").await.has("data-fills"));
    // Not found, in words.
    for (path, status, words) in [
        ("/ui/t/acme/groups/nope", 404, "There is no group `nope`"),
        ("/ui/t/acme/applications/nope", 404, "There is no application `nope`"),
        ("/ui/t/nobody/groups", 404, "tenant `nobody` has no data"),
        ("/ui/t/acme/nonsense", 404, "There is no such page"),
        ("/ui/t/acme/effective-access?subject=alice", 422, "`alice` is not a subject"),
    ] {
        let p = a.get(path).await;
        assert_eq!(p.status, status, "{path}: {}", p.body);
        assert!(p.has(words), "{path}: {}", p.body);
        assert!(!p.has("{\"error\""), "{path}: raw JSON: {}", p.body);
    }
}

#[tokio::test]
async fn groups_members_and_bindings_through_the_forms() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, ADMIN).await;
    let g = format!("{T}/groups/release");

    let p = a.post(&format!("{T}/groups"), &[("csrf", &csrf), ("id", "release"), ("name", "Release managers")]).await;
    assert_eq!(p.location.as_deref(), Some(g.as_str()));
    let p = a.follow(p).await;
    assert!(p.has("created group `release`") && p.has("Release managers"), "{}", p.body);
    // Creating it again is refused in words.
    let p = a.post(&format!("{T}/groups"), &[("csrf", &csrf), ("id", "release")]).await;
    assert!(a.follow(p).await.has("group `release` already exists"));
    let p = a.post(&format!("{T}/groups"), &[("csrf", &csrf), ("id", "bad id")]).await;
    let p = a.follow(p).await;
    assert!(p.has("class=\"error\"") && p.has("group id `bad id`"), "{}", p.body);

    let p = a.post(&format!("{g}/members"), &[("csrf", &csrf), ("member", "user:alice")]).await;
    let p = a.follow(p).await;
    assert!(p.has("added `user:alice` to group `release`"), "{}", p.body);
    // A path segment that is no id: refused in words, redirected safely.
    let p = a.post(&format!("{T}/groups/a%0Ab/members"), &[("csrf", &csrf), ("member", "user:alice")]).await;
    assert_eq!(p.location.as_deref(), Some("/ui/t/acme/groups"));
    let p = a.follow(p).await;
    assert!(p.has("<h1>Groups</h1>") && p.has("class=\"error\"") && p.has("group id `a"), "{}", p.body);
    let p = a.post(&format!("{g}/members"), &[("csrf", &csrf), ("member", "alice")]).await;
    let p = a.follow(p).await;
    assert!(p.has("class=\"error\"") && !p.has("{\"error\""), "{}", p.body);

    let bind = [
        ("csrf", csrf.as_str()),
        ("role", "deploy-operator"),
        ("application", "deploy-mcp"),
        ("mfa", "yes"),
        ("mfa_max_age", "10m"),
        ("ip", "10.0.0.0/8\n192.0.2.7"),
        ("expires_at", "2027-06-01T00:00:00Z"),
    ];
    let p = a.post(&format!("{g}/bindings"), &bind).await;
    let p = a.follow(p).await;
    assert!(p.has("bound `application:deploy-mcp#deploy-operator@group:release`"), "{}", p.body);
    assert!(p.has("mfa (max_age 10m), ip in 10.0.0.0/8, 192.0.2.7/32, expires 2027-06-01T00:00:00Z"), "{}", p.body);
    // The same binding through the JSON API.
    let (_, _, b) = call(&state, "GET", "/v1/tenants/acme/bindings?subject=group:release", Some(READER), None).await;
    assert_eq!(b["bindings"][0]["conditions"]["mfa"]["max_age"], "10m", "{b}");
    // Bad conditions are refused in words by the API's own validation.
    for (field, value, words) in [
        ("mfa_max_age", "soon", "is not a duration"),
        ("ip", "10.0.0.0/99", "not an IP range"),
        ("expires_at", "tomorrow", "not an RFC 3339 time"),
        ("role", "no-such-role", "role `no-such-role` is not defined"),
    ] {
        let mut form: Vec<(&str, &str)> =
            vec![("csrf", &csrf), ("role", "auditor"), ("application", "audit-mcp"), ("mfa", "yes")];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let p = a.post(&format!("{g}/bindings"), &form).await;
        let p = a.follow(p).await;
        assert!(p.has(words), "{field}={value}: {}", p.body);
    }

    // Alice's effective access shows it, tagged group, with its path.
    let p = a.get(&format!("{T}/effective-access?subject=user:alice")).await;
    let row = p.body.split("data-binding=\"application:deploy-mcp#deploy-operator@group:release\"").nth(1).unwrap();
    let row = row.split("</tr>").next().unwrap();
    assert!(row.contains("tag tag-group") && row.contains("user:alice → group:release"), "{row}");
    assert!(row.contains("2027-06-01T00:00:00Z") && row.contains("status-active"), "{row}");

    let p = a
        .post(
            &format!("{g}/bindings/remove"),
            &[("csrf", &csrf), ("binding", "application:deploy-mcp#deploy-operator@group:release")],
        )
        .await;
    assert!(a.follow(p).await.has("removed `application:deploy-mcp#deploy-operator@group:release`"));
    // Only this group's bindings can be removed from its page.
    let p = a
        .post(
            &format!("{g}/bindings/remove"),
            &[("csrf", &csrf), ("binding", "application:deploy-mcp#deploy-operator@group:on-call")],
        )
        .await;
    assert!(a.follow(p).await.has("is not a binding of group `release`"));
    let p = a.post(&format!("{g}/members/remove"), &[("csrf", &csrf), ("member", "user:alice")]).await;
    assert!(a.follow(p).await.has("removed `user:alice` from group `release`"));
    let p = a.post(&format!("{g}/members/remove"), &[("csrf", &csrf), ("member", "user:alice")]).await;
    assert!(a.follow(p).await.has("membership `group:release#member@user:alice` does not exist"));

    // The activity log names the credential.
    let p = a.get(&format!("{T}/changes")).await;
    assert!(p.has("<td>admin</td>") && p.has("deleted group:release#member@user:alice"), "{}", p.body);
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, ADMIN).await;
    let forms: &[(&str, &[(&str, &str)])] = &[
        ("/groups", &[("id", "x")]),
        ("/groups/on-call/members", &[("member", "user:bob")]),
        ("/groups/on-call/members/remove", &[("member", "user:alice")]),
        ("/groups/on-call/bindings", &[("role", "auditor")]),
        ("/groups/on-call/bindings/remove", &[("binding", "application:deploy-mcp#deploy-operator@group:on-call")]),
        ("/users/suspend", &[("subject", "user:alice")]),
        ("/users/reactivate", &[("subject", "user:alice")]),
        ("/service-accounts/suspend", &[("subject", "service_account:ci-bot")]),
        ("/service-accounts/reactivate", &[("subject", "service_account:ci-bot")]),
        ("/policy/preview", &[("policy", "tenant: acme\n")]),
        ("/policy/apply", &[("policy", "tenant: acme\n")]),
    ];
    let before = state.holdfast().revision();
    let wrong = "0".repeat(64);
    for (path, fields) in forms {
        for token in [None, Some(wrong.as_str()), Some(&csrf[..10])] {
            let mut f: Vec<(&str, &str)> = fields.to_vec();
            if let Some(t) = token {
                f.push(("csrf", t));
            }
            let p = a.post(&format!("{T}{path}"), &f).await;
            assert_eq!(p.status, 403, "{path} with {token:?}: {}", p.body);
            assert!(p.has("no valid CSRF token") && p.has("nothing was changed"), "{path}");
        }
    }
    assert_eq!(state.holdfast().revision(), before, "nothing was written");
    // Another session's token is not this session's.
    let (_, other) = Agent::signed_in(&state, ADMIN).await;
    assert_ne!(other, csrf);
    let p = a.post(&format!("{T}/users/suspend"), &[("csrf", &other), ("subject", "user:alice")]).await;
    assert_eq!(p.status, 403);
}

#[tokio::test]
async fn a_read_only_key_sees_everything_and_no_controls_and_is_refused_if_forced() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, READER).await;
    // A tenant key goes straight to its tenant.
    let home = a.get("/ui/").await;
    assert_eq!(home.location.as_deref(), Some("/ui/t/acme/groups"));
    for (path, fragment) in PAGES {
        let p = a.get(&format!("{T}{path}")).await;
        assert_eq!(p.status, 200, "{path}");
        if *path != "/policy" {
            assert!(p.has(fragment), "{path}: no `{fragment}`");
        }
        assert_eq!(p.changing_forms(), 0, "{path}: a read-only key sees a control: {}", p.body);
        assert!(!p.has(">Suspend<") && !p.has(">Remove<") && !p.has("Create a group"), "{path}");
    }
    assert!(a.get(&format!("{T}/policy")).await.has("is read-only"));
    let before = state.holdfast().revision();
    for (path, fields) in [
        ("/groups", vec![("id", "x")]),
        ("/groups/on-call/members", vec![("member", "user:bob")]),
        ("/users/suspend", vec![("subject", "user:alice")]),
        ("/policy/apply", vec![("policy", "tenant: acme\n")]),
    ] {
        let mut f = fields;
        f.push(("csrf", &csrf));
        let p = a.post(&format!("{T}{path}"), &f).await;
        assert_eq!(p.status, 403, "{path}");
        assert!(p.has("is read-only: nothing was changed"), "{path}: {}", p.body);
    }
    assert_eq!(state.holdfast().revision(), before);
    // A read-write tenant key has the controls.
    let (mut w, _) = Agent::signed_in(&state, WRITER).await;
    assert!(w.get(&format!("{T}/users")).await.changing_forms() > 0);
}

#[tokio::test]
async fn a_tenant_key_sees_only_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let mut a = Agent::new(&state);
    assert_eq!(a.sign_in(OTHER).await.status, 303);
    let p = a.get(&format!("{T}/users")).await;
    assert_eq!(p.status, 403);
    assert!(p.has("may not see tenant `acme`") && !p.has("alice"), "{}", p.body);
    let p = a.get(&format!("{T}/effective-access?subject=user:alice")).await;
    assert_eq!(p.status, 403);
    assert!(!p.has("on-call"));
}

#[tokio::test]
async fn suspend_and_reactivate_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, ADMIN).await;
    let why = format!("{T}/effective-access?subject=user:alice&application=deploy-mcp&scope=deploy:prod");
    let p = a.get(&why).await;
    assert!(p.has("Step-up required") && p.has("no older than 15m"), "{}", p.body);
    assert!(p.has("blocked: multi-factor authentication is required"), "{}", p.body);
    // MFA five minutes ago (the fixed clock's): allowed, and by which binding.
    let p = a.get(&format!("{why}&mfa=yes&mfa_at=5m")).await;
    assert!(p.has("Allowed") && p.has("application:deploy-mcp#deploy-operator@group:on-call"), "{}", p.body);
    let p = a.get(&format!("{why}&mfa=yes&mfa_at=2026-05-31T23:00:00Z")).await;
    assert!(p.has("Step-up required"), "an hour-old MFA is too old");
    let p = a.get(&format!("{why}&mfa=yes&mfa_at=whenever")).await;
    assert!(p.has("neither a duration ago"), "{}", p.body);
    let ci = format!("{T}/effective-access?subject=service_account:ci-bot&application=deploy-mcp&scope=deploy:staging");
    assert!(a.get(&format!("{ci}&ip=10.1.2.3")).await.has("Allowed"));
    let p = a.get(&format!("{ci}&ip=192.0.2.1")).await;
    assert!(p.has("Denied") && p.has("outside the binding"), "{}", p.body);
    assert!(a.get(&format!("{ci}&ip=nonsense")).await.has("is not an IP address"));

    let p = a
        .post(&format!("{T}/users/suspend"), &[("csrf", &csrf), ("subject", "user:alice"), ("reason", "laptop lost")])
        .await;
    assert_eq!(p.location.as_deref(), Some("/ui/t/acme/users"));
    let p = a.follow(p).await;
    assert!(p.has("suspended `user:alice`") && p.has("laptop lost") && p.has(">Reactivate<"), "{}", p.body);
    let p = a.get(&format!("{why}&mfa=yes&mfa_at=5m")).await;
    assert!(p.has("Denied") && p.has("subject_suspended") && p.has("is suspended"), "{}", p.body);
    // The JSON API agrees: one implementation.
    let (_, _, b) = call(&state, "GET", "/v1/tenants/acme/subjects/user:alice/status", Some(READER), None).await;
    assert_eq!((b["status"].as_str(), b["reason"].as_str()), (Some("suspended"), Some("laptop lost")));
    // Only users on the users page; groups cannot be suspended.
    let p = a.post(&format!("{T}/users/suspend"), &[("csrf", &csrf), ("subject", "service_account:ci-bot")]).await;
    assert!(a.follow(p).await.has("is not a user"));
    let p = a.post(&format!("{T}/users/suspend"), &[("csrf", &csrf), ("subject", "user:nobody")]).await;
    assert!(a.follow(p).await.has("class=\"error\""));

    let p = a.post(&format!("{T}/users/reactivate"), &[("csrf", &csrf), ("subject", "user:alice")]).await;
    assert!(a.follow(p).await.has("reactivated `user:alice`"));
    assert!(a.get(&format!("{why}&mfa=yes&mfa_at=5m")).await.has("Allowed"));
    let p = a
        .post(&format!("{T}/service-accounts/suspend"), &[("csrf", &csrf), ("subject", "service_account:ci-bot")])
        .await;
    assert!(a.follow(p).await.has("suspended `service_account:ci-bot`"));
    let p = a
        .post(&format!("{T}/service-accounts/reactivate"), &[("csrf", &csrf), ("subject", "service_account:ci-bot")])
        .await;
    assert!(a.follow(p).await.has("reactivated `service_account:ci-bot`"));
}

#[tokio::test]
async fn expired_bindings_are_behind_a_toggle() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, ADMIN).await;
    // A binding that expired before the fixed clock.
    let p = a
        .post(
            &format!("{T}/groups/sre/bindings"),
            &[("csrf", &csrf), ("role", "auditor"), ("expires_at", "2026-01-01T00:00:00Z")],
        )
        .await;
    assert!(a.follow(p).await.has("bound `tenant#auditor@group:sre`"));
    let p = a.get(&format!("{T}/effective-access?subject=user:carol")).await;
    assert!(!p.has("tenant#auditor@group:sre"), "{}", p.body);
    let p = a.get(&format!("{T}/effective-access?subject=user:carol&expired=1")).await;
    assert!(p.has("data-binding=\"tenant#auditor@group:sre\"") && p.has("status-expired"), "{}", p.body);
}

#[tokio::test]
async fn lists_are_paged_and_searched_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let changes: Vec<holdfast::service::Change> = (0..120)
        .map(|i| {
            holdfast::service::Change::PutObject(
                holdfast::model::ObjectRef::parse(&format!("user:u{i:03}")).unwrap(),
                serde_json::json!({}),
            )
        })
        .collect();
    state.holdfast().write("acme", changes, &[], "test", 0).unwrap();
    let (mut a, _) = Agent::signed_in(&state, READER).await;
    let p = a.get(&format!("{T}/users?q=u")).await;
    assert!(p.has(">u000<") && p.has(">u049<") && !p.has(">u050<") && !p.has(">alice<"), "{}", p.body);
    assert!(p.has("href=\"/ui/t/acme/users?q=u&amp;after=u049\""), "{}", p.body);
    let p = a.get(&format!("{T}/users?q=u&after=u049")).await;
    assert!(p.has(">u050<") && p.has(">u099<") && !p.has(">u049<") && !p.has(">u100<"));
    let p = a.get(&format!("{T}/users?q=u&after=u099")).await;
    assert!(p.has(">u119<") && !p.has("rel=\"next\""));
    let p = a.get(&format!("{T}/users?q=al")).await;
    assert!(p.has(">alice<") && !p.has(">bob<"));
    // Suspended only.
    let (mut w, csrf) = Agent::signed_in(&state, ADMIN).await;
    for s in ["user:bob", "user:u007"] {
        let p = w.post(&format!("{T}/users/suspend"), &[("csrf", &csrf), ("subject", s)]).await;
        assert_eq!(p.status, 303);
    }
    let p = a.get(&format!("{T}/users?status=suspended")).await;
    assert!(p.has(">bob<") && p.has(">u007<") && !p.has(">alice<") && !p.has(">u000<"), "{}", p.body);
    let p = a.get(&format!("{T}/users?status=suspended&q=u")).await;
    assert!(p.has(">u007<") && !p.has(">bob<"));
}

#[tokio::test]
async fn policy_preview_shows_findings_and_the_diff_then_applies() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let (mut a, csrf) = Agent::signed_in(&state, ADMIN).await;
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/acme.yaml")).unwrap();
    let edited = demo.replace("mfa: {required: true, max_age: 15m}", "mfa: {required: true, max_age: 5m}");
    assert_ne!(edited, demo);

    let bad = "roles:\n  r:\n    scopes: [x]\nbindings:\n  - subject: user:a\n    role: nope\n";
    let p = a.post(&format!("{T}/policy/preview"), &[("csrf", &csrf), ("policy", bad)]).await;
    assert_eq!(p.status, 422);
    assert!(p.has("table class=\"findings\"") && p.has("nope") && p.has("<td class=\"num\">6:"), "{}", p.body);
    assert!(!p.has("{\"error\""));

    let before = state.holdfast().revision();
    let p = a.post(&format!("{T}/policy/preview"), &[("csrf", &csrf), ("policy", &edited)]).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.has("The file is valid") && p.has("<pre class=\"diff\">") && p.has("user:carol"), "{}", p.body);
    assert!(p.has("action=\"/ui/t/acme/policy/apply\""));
    assert_eq!(state.holdfast().revision(), before, "a preview applies nothing");

    let p = a.post(&format!("{T}/policy/apply"), &[("csrf", &csrf), ("policy", &edited)]).await;
    let p = a.follow(p).await;
    assert!(p.has("applied the policy file at revision"), "{}", p.body);
    let p = a.get(&format!("{T}/groups/on-call")).await;
    assert!(p.has("mfa (max_age 5m)") && !p.has("max_age 15m"), "{}", p.body);
    // A file for another tenant is refused, in words.
    let p = a.post(&format!("{T}/policy/apply"), &[("csrf", &csrf), ("policy", "tenant: other\n")]).await;
    assert_eq!(p.status, 422);
    assert!(p.has("the file is for tenant `other`"), "{}", p.body);
}

#[tokio::test]
async fn no_ui_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let on = acme_state(dir.path());
    let config = ApiConfig { ui: false, ..*on.config() };
    let off = AppState::with_config(std::sync::Arc::clone(on.holdfast()), super::api_support::keys(), config);
    let (status, _, body) = call(&off, "GET", "/ui/", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_route")));
    let (status, _, _) = call(&on, "GET", "/ui/", None, None).await;
    assert_eq!(status, 200);
    // The JSON API still answers unknown routes in JSON.
    let (status, _, body) = call(&on, "GET", "/v1/nope", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("unknown_route")));
}

#[tokio::test]
async fn a_big_groups_members_are_paged_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let changes: Vec<holdfast::service::Change> = (0..75)
        .map(|i| {
            holdfast::service::Change::PutTuple(
                holdfast::model::Tuple::parse(&format!("group:big#member@user:m{i:03}")).unwrap(),
                None,
            )
        })
        .collect();
    state.holdfast().write("acme", changes, &[], "test", 0).unwrap();
    let (mut a, _) = Agent::signed_in(&state, READER).await;
    let p = a.get(&format!("{T}/groups/big")).await;
    assert!(p.has("Members (75)") && p.has(">user:m049<") && !p.has(">user:m050<"), "{}", p.body);
    assert!(p.has("href=\"/ui/t/acme/groups/big?after=user%3Am049\""), "{}", p.body);
    let p = a.get(&format!("{T}/groups/big?after=user%3Am049")).await;
    assert!(p.has(">user:m050<") && p.has(">user:m074<") && !p.has("rel=\"next\""));
    let p = a.get(&format!("{T}/groups/big?q=user%3Am07")).await;
    assert!(p.has(">user:m070<") && !p.has(">user:m069<"), "{}", p.body);
    // The list shows the count without listing them.
    let p = a.get(&format!("{T}/groups?q=big")).await;
    assert!(p.has("<td class=\"num\">75</td>"), "{}", p.body);
    // An unreadable query parameter is refused in words.
    let p = a.get(&format!("{T}/changes?since=yesterday")).await;
    assert_eq!(p.status, 400);
    assert!(p.has("This page cannot read its address"), "{}", p.body);
}

/// `holdfast serve` serves the UI by default and `--no-ui` turns it off.
#[test]
fn serve_no_ui_flag() {
    use std::io::{BufRead, Read, Write};
    for (flag, expect) in [(None, 200), (Some("--no-ui"), 404)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"));
        cmd.args(["serve", "--demo", "--listen", "127.0.0.1:0", "--durability", "buffered", "--data"])
            .arg(dir.path().join("data"))
            .env("HOLDFAST_API_KEY", "ui-flag-test-key")
            .stderr(std::process::Stdio::piped());
        if let Some(f) = flag {
            cmd.arg(f);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.by_ref().map(Result::unwrap).find(|l| l.starts_with("holdfast listening on")).unwrap();
        // Keep reading stderr so the server never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let addr = line.strip_prefix("holdfast listening on http://").unwrap().split_whitespace().next().unwrap();
        assert_eq!(line.contains(&format!("admin UI: http://{addr}/ui/")), flag.is_none(), "{line}");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET /ui/ HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(text.starts_with(&format!("HTTP/1.1 {expect}")), "{flag:?}: {text}");
    }
}
