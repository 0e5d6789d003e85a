//! Real `holdfast serve` processes on one real PostgreSQL (started by the
//! test, [`super::pg_support`]): migrations, import, and several replicas
//! writing and reading the same tenants.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api_support::Client;
use super::pg_support::PgCluster;

pub const KEY: &str = "replica-test-key";
const T: &str = "/v1/tenants/rep";

/// A role, an application, and the binding every member of `group:members` gets.
pub fn setup(r: &Replica) -> u64 {
    let t = T;
    assert_eq!(r.call("PUT", &format!("{t}/roles/viewer"), Some(&json!({"scopes": ["read"]}))).0, 200);
    assert_eq!(r.call("PUT", &format!("{t}/applications/app"), Some(&json!({"scopes_supported": ["read"]}))).0, 200);
    let (s, w) = r.write(json!({"writes": ["application:app#viewer@group:members"]}));
    assert_eq!(s, 200, "{w}");
    revision(&w)
}

/// One `holdfast serve --datastore URL` child process; SIGKILLed on drop.
pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    pub fn start(url: &str, extra: &[&str]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--datastore", url, "--listen", "127.0.0.1:0", "--no-ui", "--data"])
            .arg(dir.path().join("unused"))
            .args(extra)
            .env("HOLDFAST_API_KEY", KEY)
            .env("RUST_LOG", "warn")
            .env_remove("HOLDFAST_DATASTORE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn holdfast serve");
        let mut r = Replica { child, addr: "127.0.0.1:1".parse().unwrap(), log, _dir: dir };
        r.addr = r.wait_listening(Duration::from_secs(60));
        r
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_listening(&mut self, timeout: Duration) -> SocketAddr {
        let start = Instant::now();
        loop {
            let log = self.log_text();
            if let Some(rest) = log.split("listening on http://").nth(1).filter(|r| r.contains(")\n")) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the replica exited ({status}) before listening:\n{log}");
            }
            assert!(start.elapsed() < timeout, "the replica did not listen within {timeout:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// One JSON request with the admin key: (status, body).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let body = body.map(Value::to_string).unwrap_or_default();
        let auth = format!("Bearer {KEY}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        let r = Client::new(self.addr, false)
            .request(method, path, &headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let text = r.text();
        (r.status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn write(&self, body: Value) -> (u16, Value) {
        self.call("POST", &format!("{T}/tuples"), Some(&body))
    }

    /// The decision for `subject` on `app`/`read`, at least at `at_least`.
    pub fn check(&self, subject: &str, at_least: Option<u64>) -> (u16, Value) {
        let mut body = json!({"subject": subject, "application": "app", "scope": "read"});
        if let Some(r) = at_least {
            body["at_least"] = json!(r.to_string());
        }
        self.call("POST", &format!("{T}/check"), Some(&body))
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn revision(v: &Value) -> u64 {
    v["revision"].as_str().and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("no revision in {v}"))
}

fn holdfast(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .env_remove("HOLDFAST_DATASTORE")
        .stdin(Stdio::null())
        .output()
        .expect("run holdfast");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn repo_file(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// `holdfast migrate` applies version 1 once; `import` loads a policy file
/// into PostgreSQL (and refuses a non-empty tenant); a replica started on
/// that database serves it, takes a write, and a restarted one still has it.
#[test]
fn migrate_import_serve_and_restart_on_postgres() {
    let Some(pg) = PgCluster::start("postgres::migrate_import_serve_and_restart_on_postgres") else { return };
    // Trust authentication ignores the password; nothing may print it.
    const PW: &str = "pw-never-logged";
    let url = pg.fresh_db().replace("holdfast@", &format!("holdfast:{PW}@"));
    let (ok, out) = holdfast(&["migrate", "--datastore", &url]);
    assert!(ok && out.contains("applied migration(s) 1"), "{out}");
    let (ok, out) = holdfast(&["migrate", "--datastore", &url]);
    assert!(ok && out.contains("up to date (version 1)"), "{out}");
    assert!(!out.contains(PW), "{out}");
    let unreachable = format!("postgres://holdfast:{PW}@127.0.0.1:1/nowhere");
    let (ok, out) = holdfast(&["migrate", "--datastore", &unreachable]);
    assert!(!ok && out.contains("cannot connect to `postgres://holdfast@127.0.0.1:1/nowhere`"), "{out}");
    assert!(!out.contains(PW), "{out}");

    let acme = repo_file("examples/acme.yaml");
    let acme = acme.to_str().unwrap();
    let (ok, out) = holdfast(&["import", acme, "--datastore", &url]);
    assert!(ok && out.contains("imported"), "{out}");
    let (ok, out) = holdfast(&["import", acme, "--datastore", &url]);
    assert!(!ok && out.contains("is not empty"), "{out}");

    let a = Replica::start(&url, &[]);
    let (s, tuples) = a.call("GET", "/v1/tenants/acme/tuples?page_size=1000", None);
    assert_eq!(s, 200, "{tuples}");
    let imported = tuples["tuples"].as_array().unwrap().len();
    assert!(imported > 5, "{tuples}");

    setup(&a);
    let (s, w) = a.write(json!({"writes": ["group:members#member@user:alice"]}));
    assert_eq!(s, 200, "{w}");
    let rev = revision(&w);
    let (s, c) = a.check("user:alice", Some(rev));
    assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "{c}");
    a.kill();

    let b = Replica::start(&url, &[]);
    let (s, c) = b.check("user:alice", Some(rev));
    assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "{c}");
    let (_, tuples) = b.call("GET", "/v1/tenants/acme/tuples?page_size=1000", None);
    assert_eq!(tuples["tuples"].as_array().unwrap().len(), imported);
    let log = b.log_text();
    assert!(log.contains("data: postgres://holdfast@127.0.0.1:") && !log.contains(PW), "{log}");
}

/// Two replicas on one database, both started from it.
fn two_replicas(test: &str) -> Option<(PgCluster, String, Replica, Replica)> {
    let pg = PgCluster::start(test)?;
    let url = pg.fresh_db();
    let a = Replica::start(&url, &[]);
    let b = Replica::start(&url, &[]);
    Some((pg, url, a, b))
}

/// Write on A, check on B with `at_least` (allow, after waiting for the
/// tail); delete on B, check on A (deny); a revision nobody wrote yet is
/// waited for (bounded) and then refused with 409 `revision_not_visible`.
#[test]
fn write_on_one_replica_check_on_another_with_at_least() {
    let Some((_pg, _url, a, b)) = two_replicas("postgres::write_on_one_replica_check_on_another_with_at_least") else {
        return;
    };
    setup(&a);
    let (s, w) = a.write(json!({"writes": ["group:members#member@user:alice"]}));
    assert_eq!(s, 200, "{w}");
    let rev = revision(&w);
    let (s, c) = b.check("user:alice", Some(rev));
    assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "{c}");
    assert!(revision(&c) >= rev, "{c}");

    let (s, d) = b.write(json!({"deletes": ["group:members#member@user:alice"]}));
    assert_eq!(s, 200, "{d}");
    let rev2 = revision(&d);
    assert!(rev2 > rev);
    let (s, c) = a.check("user:alice", Some(rev2));
    assert_eq!((s, c["decision"].as_str()), (200, Some("deny")), "{c}");

    let started = Instant::now();
    let (s, e) = a.check("user:alice", Some(rev2 + 1000));
    let waited = started.elapsed();
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("revision_not_visible")), "{e}");
    assert!(waited >= Duration::from_millis(900), "answered after {waited:?}, before the 1 s default wait");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

/// Writers on two replicas at once: every acknowledged revision is
/// distinct, and both change feeds list the same changes.
#[test]
fn concurrent_writes_on_two_replicas_get_distinct_revisions_and_equal_feeds() {
    let Some((_pg, _url, a, b)) =
        two_replicas("postgres::concurrent_writes_on_two_replicas_get_distinct_revisions_and_equal_feeds")
    else {
        return;
    };
    setup(&a);
    let revs: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = [&a, &b, &a, &b]
            .into_iter()
            .enumerate()
            .map(|(w, r)| {
                s.spawn(move || {
                    (0..40)
                        .map(|i| {
                            let (st, v) = r.write(json!({"writes": [format!("group:members#member@user:w{w}u{i}")]}));
                            assert_eq!(st, 200, "{v}");
                            revision(&v)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<u64> = revs.iter().copied().collect();
    assert_eq!(distinct.len(), revs.len(), "a revision was handed out twice: {revs:?}");
    let last = *distinct.iter().max().unwrap();
    let feed = |r: &Replica| -> Vec<(u64, Value)> {
        // Both must have reached the last revision first.
        assert_eq!(r.check("user:w0u0", Some(last)).0, 200);
        let (s, v) = r.call("GET", &format!("{T}/changes?since=0&limit=1000"), None);
        assert_eq!(s, 200, "{v}");
        v["changes"].as_array().unwrap().iter().map(|c| (revision(c), c["ops"].clone())).collect()
    };
    let (fa, fb) = (feed(&a), feed(&b));
    assert_eq!(fa, fb);
    let listed: std::collections::BTreeSet<u64> = fa.iter().map(|(r, _)| *r).collect();
    assert!(distinct.is_subset(&listed), "acknowledged writes missing from the feed");
    assert_eq!(listed.len(), 160 + 3, "160 writes and the setup's 3");
}

/// Read-modify-writes (a role's scopes replaced, a subject suspended and
/// reactivated) from two replicas at once, on one tenant: each is computed
/// again on the state it lands on when the other replica committed first,
/// so none answers 409, and the last role write is whole on both.
#[test]
fn read_modify_writes_from_two_replicas_at_once_all_succeed() {
    let Some((_pg, _url, a, b)) = two_replicas("postgres::read_modify_writes_from_two_replicas_at_once_all_succeed")
    else {
        return;
    };
    setup(&a);
    for w in 0..2 {
        let (st, v) = a.call("PUT", &format!("{T}/users/w{w}"), Some(&json!({})));
        assert!(st == 200 || st == 201, "{v}");
    }
    let last: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = [&a, &b]
            .into_iter()
            .enumerate()
            .map(|(w, r)| {
                s.spawn(move || {
                    let mut last = 0;
                    for i in 0..30 {
                        let scopes = json!({"scopes": [format!("s{w}-{i}"), "read"]});
                        let (st, v) = r.call("PUT", &format!("{T}/roles/racer"), Some(&scopes));
                        assert_eq!(st, 200, "role PUT {w}/{i}: {v}");
                        last = last.max(revision(&v));
                        let who = format!("{T}/subjects/user:w{w}");
                        let (st, v) = r.call("POST", &format!("{who}/suspend"), Some(&json!({"reason": "race"})));
                        assert_eq!(st, 200, "suspend {w}/{i}: {v}");
                        let (st, v) = r.call("POST", &format!("{who}/reactivate"), None);
                        assert_eq!(st, 200, "reactivate {w}/{i}: {v}");
                    }
                    last
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let head = *last.iter().max().unwrap();
    for r in [&a, &b] {
        assert_eq!(r.check("user:alice", Some(head)).0, 200);
        let (st, v) = r.call("GET", &format!("{T}/roles/racer"), None);
        assert_eq!(st, 200, "{v}");
        let scopes = v["scopes"].as_array().unwrap();
        assert_eq!(scopes.len(), 2, "one write's scope set, whole: {v}");
    }
}

/// The same precondition on two replicas at the same moment: exactly one
/// write wins, the other answers 409 `precondition_failed`.
#[test]
fn a_precondition_race_across_replicas_has_exactly_one_winner() {
    let Some((_pg, _url, a, b)) = two_replicas("postgres::a_precondition_race_across_replicas_has_exactly_one_winner")
    else {
        return;
    };
    setup(&a);
    for round in 0..20 {
        let t = format!("group:members#member@user:race{round}");
        let body = json!({"writes": [t], "preconditions": [{"tuple": t, "exists": false}]});
        let barrier = std::sync::Barrier::new(2);
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| {
                barrier.wait();
                a.write(body.clone())
            });
            let hb = s.spawn(|| {
                barrier.wait();
                b.write(body.clone())
            });
            (ha.join().unwrap(), hb.join().unwrap())
        });
        let mut statuses = [ra.0, rb.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {} / {}", ra.1, rb.1);
        let loser = if ra.0 == 409 { &ra.1 } else { &rb.1 };
        assert_eq!(loser["error"]["code"], "precondition_failed", "{loser}");
    }
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!("Basic {}", super::api_support::b64(format!("{}:{}", enc(id), enc(secret)).as_bytes()))
}

fn introspect(r: &Replica, auth: &str, token: &str) -> Value {
    let form = format!("token={token}&token_type_hint=access_token");
    let res = Client::new(r.addr, false)
        .request(
            "POST",
            "/oauth2/introspect",
            &[("authorization", auth), ("content-type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
    serde_json::from_str(&res.text()).unwrap()
}

/// A token minted on A introspects (with credentials made on A) on B, and
/// stops introspecting on A and B once C suspended its subject.
#[test]
fn a_token_minted_on_one_replica_introspects_on_another_until_a_third_suspends() {
    let Some((_pg, url, a, b)) =
        two_replicas("postgres::a_token_minted_on_one_replica_introspects_on_another_until_a_third_suspends")
    else {
        return;
    };
    let c = Replica::start(&url, &[]);
    setup(&a);
    assert_eq!(a.write(json!({"writes": ["group:members#member@user:alice"]})).0, 200);
    let (s, cred) = a.call("POST", &format!("{T}/applications/app/credentials"), Some(&json!({})));
    assert_eq!(s, 201, "{cred}");
    let auth = basic(cred["client_id"].as_str().unwrap(), cred["client_secret"].as_str().unwrap());
    let (s, m) = a.call(
        "POST",
        &format!("{T}/tokens"),
        Some(&json!({"subject": "user:alice", "application": "app", "client_id": "cursor"})),
    );
    assert_eq!(s, 200, "{m}");
    let token = m["access_token"].as_str().unwrap().to_string();
    let minted = revision(&m);

    // B has not necessarily tailed the mint yet: it must within the interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    let _ = b.check("user:alice", Some(minted));
    loop {
        let v = introspect(&b, &auth, &token);
        if v["active"] == json!(true) {
            assert_eq!(v["scope"], "read", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never active on B: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (s, susp) =
        c.call("POST", &format!("{T}/subjects/user:alice/suspend"), Some(&json!({"reason": "lost laptop"})));
    assert_eq!(s, 200, "{susp}");
    let suspended = revision(&susp);
    // With at_least: denied at once.
    let (s, chk) = a.check("user:alice", Some(suspended));
    assert_eq!((s, chk["decision"].as_str()), (200, Some("deny")), "{chk}");
    // Introspection (no at_least): inactive within the tailing interval.
    for r in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let v = introspect(r, &auth, &token);
            if v == json!({"active": false}) {
                break;
            }
            assert!(Instant::now() < deadline, "still active after the suspension: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tuples(r: &Replica, at_least: u64) -> std::collections::BTreeSet<String> {
    // A check with at_least makes sure the replica reached the revision first.
    assert_eq!(r.check("user:nobody", Some(at_least)).0, 200);
    let (s, v) = r.call("GET", &format!("{T}/tuples?page_size=1000"), None);
    assert_eq!(s, 200, "{v}");
    assert!(v["next_page_token"].is_null(), "more than one page");
    v["tuples"].as_array().unwrap().iter().map(|t| t["tuple"].as_str().unwrap().to_string()).collect()
}

/// A replica killed with SIGKILL while another one takes writes comes back,
/// loads, tails, and has every acknowledged write; `/readyz` says ready.
#[test]
fn a_replica_killed_under_load_catches_up_with_nothing_lost() {
    let Some((_pg, url, a, b)) = two_replicas("postgres::a_replica_killed_under_load_catches_up_with_nothing_lost")
    else {
        return;
    };
    setup(&a);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, b) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = format!("group:members#member@user:load{i}");
                let (st, v) = a.write(json!({"writes": [t]}));
                assert_eq!(st, 200, "{v}");
                acked.push((t, revision(&v)));
                i += 1;
            }
            acked
        });
        std::thread::sleep(Duration::from_millis(300));
        b.kill();
        std::thread::sleep(Duration::from_millis(300));
        let b = Replica::start(&url, &[]);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (writer.join().unwrap(), b)
    });
    assert!(acked.len() > 5, "the load acknowledged only {} writes", acked.len());
    let last = acked.iter().map(|(_, r)| *r).max().unwrap();
    let on_b = tuples(&b, last);
    for (t, _) in &acked {
        assert!(on_b.contains(t), "`{t}` acknowledged on A, missing on the restarted B");
    }
    assert_eq!(on_b, tuples(&a, last));
    let (s, ready) = b.call("GET", "/readyz", None);
    assert_eq!((s, ready["status"].as_str()), (200, Some("ready")), "{ready}");
}

/// PostgreSQL stopped (pg_ctl stop -m fast) and started again while
/// readers keep checking on both replicas and a writer keeps writing: every
/// read answers 200 with the right decision throughout (from memory, with
/// its revision), writes answer 503 `storage_error` while it is down; when
/// it is back, writes succeed again and the other replica sees them.
#[test]
fn postgres_stopped_and_restarted_reads_go_on_writes_503_then_recover() {
    let Some((pg, _url, a, b)) =
        two_replicas("postgres::postgres_stopped_and_restarted_reads_go_on_writes_503_then_recover")
    else {
        return;
    };
    setup(&a);
    let (_, w) = a.write(json!({"writes": ["group:members#member@user:alice"]}));
    let before = revision(&w);
    assert_eq!(b.check("user:alice", Some(before)).1["decision"], "allow");

    // Load through the outage: two readers (one a replica) and a writer.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (reads, statuses) = std::thread::scope(|scope| {
        let readers: Vec<_> = [&a, &b]
            .into_iter()
            .map(|r| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (s, c) = r.check("user:alice", None);
                        assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "a read during the outage: {c}");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let writer = {
            let stop = &stop;
            let a = &a;
            scope.spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (s, v) = a.write(json!({"writes": [format!("group:members#member@user:load{i}")]}));
                    assert!(s == 200 || s == 503, "a write during the outage: {s} {v}");
                    if s == 503 {
                        assert_eq!(v["error"]["code"], "storage_error", "{v}");
                    }
                    seen.insert(s);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        pg.stop();
        std::thread::sleep(Duration::from_millis(800));
        pg.pg_start();
        let deadline = Instant::now() + Duration::from_secs(20);
        while a.write(json!({"writes": ["group:members#member@user:probe"]})).0 != 200 {
            assert!(Instant::now() < deadline, "writes did not recover under load");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
        (reads, writer.join().unwrap())
    });
    assert!(reads > 10, "the readers ran ({reads} reads)");
    assert!(statuses.contains(&503) && statuses.contains(&200), "writes failed and recovered: {statuses:?}");

    // Stopped again, between requests: the same, checked one by one.
    let before = {
        let (_, w) = a.write(json!({"writes": ["group:members#member@user:alice"]}));
        assert_eq!(b.check("user:alice", Some(revision(&w))).0, 200);
        a.check("user:alice", None).1["revision"].as_str().unwrap().parse::<u64>().unwrap()
    };
    pg.stop();
    for r in [&a, &b] {
        let (s, c) = r.check("user:alice", None);
        assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "{c}");
        assert_eq!(revision(&c), before, "{c}");
        let (s, e) = r.write(json!({"writes": ["group:members#member@user:bob"]}));
        assert_eq!((s, e["error"]["code"].as_str()), (503, Some("storage_error")), "{e}");
        assert!(!e.to_string().contains("127.0.0.1"), "datastore details leaked: {e}");
    }
    let (s, h) = a.call("GET", "/healthz", None);
    assert_eq!(s, 200, "{h}");

    pg.pg_start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let rev = loop {
        let (s, v) = b.write(json!({"writes": ["group:members#member@user:bob"]}));
        if s == 200 {
            break revision(&v);
        }
        assert_eq!(s, 503, "{v}");
        assert!(Instant::now() < deadline, "writes did not recover: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (s, c) = a.check("user:bob", Some(rev));
    assert_eq!((s, c["decision"].as_str()), (200, Some("allow")), "{c}");
    let (s, m) = a.call("GET", "/metrics", None);
    assert_eq!(s, 200);
    let errors: f64 = m
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("holdfast_datastore_errors_total "))
        .and_then(|v| v.parse().ok())
        .expect("holdfast_datastore_errors_total in /metrics");
    assert!(errors >= 1.0, "the outage was not counted");
}

/// `--tenants`: a replica loads and serves only those (404 for others, on
/// reads and writes); `--changes-retention` prunes the change log and an
/// older `since` answers 410.
#[test]
fn tenants_placement_and_change_log_retention() {
    let Some(pg) = PgCluster::start("postgres::tenants_placement_and_change_log_retention") else { return };
    let url = pg.fresh_db();
    let a = Replica::start(&url, &[]);
    setup(&a);
    for i in 0..3 {
        assert_eq!(a.write(json!({"writes": [format!("group:members#member@user:r{i}")]})).0, 200);
    }
    let (s, other) = a.call("PUT", "/v1/tenants/other/roles/viewer", Some(&json!({"scopes": ["read"]})));
    assert_eq!(s, 200, "{other}");

    let only_rep = Replica::start(&url, &["--tenants", "rep", "--changes-retention", "1ms"]);
    assert_eq!(only_rep.check("user:r0", None).1["decision"], "allow");
    let (s, e) = only_rep.call("GET", "/v1/tenants/other/roles/viewer", None);
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("unknown_tenant")), "{e}");
    let (s, e) = only_rep.call("PUT", "/v1/tenants/other/roles/editor", Some(&json!({"scopes": ["read"]})));
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("unknown_tenant")), "{e}");
    // Writes to `other` on A still reach nobody on `only_rep`.
    let (_, w) = a.call("PUT", "/v1/tenants/other/roles/editor", Some(&json!({"scopes": ["read"]})));
    let _ = only_rep.check("user:r0", Some(revision(&w)));
    assert_eq!(only_rep.call("GET", "/v1/tenants/other/roles/editor", None).0, 404);

    // The pruning replica removed all but each tenant's last change.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = a.call("GET", &format!("{T}/changes?since=0"), None);
        if s == 410 {
            assert_eq!(v["error"]["code"], "changes_truncated", "{v}");
            break;
        }
        assert!(Instant::now() < deadline, "never pruned: {s} {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, v) = a.call("GET", &format!("{T}/changes?since=0"), None);
    assert!(v["error"]["message"].as_str().unwrap().contains("no longer kept"), "{s} {v}");
    let (_, feed_head) = a.call("GET", "/readyz", None);
    let head = revision(&feed_head);
    let (s, v) = a.call("GET", &format!("{T}/changes?since={}", head - 1), None);
    assert_eq!(s, 200, "{v}");
}

// ------------------------------------------------------------------ benchmark

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Writes (one membership each) from `threads` client threads spread over
/// `replicas` for `secs`: writes per second.
fn write_throughput(replicas: &[&Replica], threads: usize, secs: u64, tag: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let n: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|w| {
                let r = replicas[w % replicas.len()];
                s.spawn(move || {
                    let mut i = 0;
                    while Instant::now() < deadline {
                        let (st, v) = r.write(json!({"writes": [format!("group:members#member@user:{tag}{w}x{i}")]}));
                        assert_eq!(st, 200, "{v}");
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    n as f64 / secs as f64
}

/// Checks over keep-alive connections from `threads` client threads spread
/// over `replicas` for `secs`: checks per second.
fn check_throughput(replicas: &[&Replica], threads: usize, secs: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let body = json!({"subject": "user:alice", "application": "app", "scope": "read"}).to_string();
    let auth = format!("Bearer {KEY}");
    let n: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|w| {
                let addr = replicas[w % replicas.len()].addr;
                let (body, auth) = (&body, &auth);
                s.spawn(move || {
                    let c = Client::new(addr, true);
                    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
                    let mut i = 0;
                    while Instant::now() < deadline {
                        let r = c.request("POST", &format!("{T}/check"), &headers, body.as_bytes()).unwrap();
                        assert_eq!(r.status, 200);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    n as f64 / secs as f64
}

/// Loads a generated tenant `bench` of `users` users into `url` through the
/// service (batches of 50k), then times a replica's start until `/readyz`
/// answers 200.
fn startup(url: &str, users: usize) -> (usize, Duration, Duration) {
    use holdfast::service::Holdfast;
    let changes = holdfast::workload::generate(&holdfast::workload::Shape::for_users(users, 1));
    let n = changes.len();
    let store = std::sync::Arc::new(holdfast::store::PgStore::open(url, true).unwrap());
    let hf = Holdfast::with_datastore(store, None).unwrap();
    let t = Instant::now();
    for chunk in changes.chunks(50_000) {
        hf.write("bench", chunk.to_vec(), &[], "bench", 0).unwrap();
    }
    let import = t.elapsed();
    drop(hf);
    let t = Instant::now();
    let r = Replica::start(url, &[]);
    loop {
        if r.call("GET", "/readyz", None).0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (n, import, t.elapsed())
}

/// BENCHMARKS.md's PostgreSQL figures. `HOLDFAST_BENCH_USERS` (default
/// `100000`, comma-separated for several start-up sizes).
#[test]
#[ignore = "benchmark (minutes, release build): scripts/bench-replicas.sh runs it and prints the figures"]
fn bench_replicas() {
    let Some(pg) = PgCluster::start("postgres::bench_replicas") else { return };
    let url = pg.fresh_db();
    let a = Replica::start(&url, &[]);
    let b = Replica::start(&url, &[]);
    setup(&a);
    assert_eq!(a.write(json!({"writes": ["group:members#member@user:alice"]})).0, 200);

    // Write on A -> visible on B: B answers a check with at_least R (it waits for R).
    let mut lat = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        let (_, w) = a.write(json!({"writes": [format!("group:members#member@user:vis{i}")]}));
        let rev = revision(&w);
        let written = t.elapsed();
        let t = Instant::now();
        let (s, c) = b.check(&format!("user:vis{i}"), Some(rev));
        assert_eq!((s, c["decision"].as_str()), (200, Some("allow")));
        let _ = written;
        lat.push(t.elapsed());
    }
    lat.sort_unstable();
    println!(
        "write on A -> check with at_least on B answered: p50 {:.2} ms, p99 {:.2} ms (500 writes, after the write's answer)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3
    );

    let one = write_throughput(&[&a], 4, 5, "one");
    let two = write_throughput(&[&a, &b], 4, 5, "two");
    println!("writes/s, 4 client threads: 1 writing replica {one:.0}, 2 writing replicas {two:.0}");

    let dir = tempfile::tempdir().unwrap();
    let fj_log = dir.path().join("fjall.log");
    let fj = {
        let out = std::fs::File::create(&fj_log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
            .args(["serve", "--no-ui", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path().join("data"))
            .env("HOLDFAST_API_KEY", KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut r =
            Replica { child, addr: "127.0.0.1:1".parse().unwrap(), log: fj_log, _dir: tempfile::tempdir().unwrap() };
        r.addr = r.wait_listening(Duration::from_secs(60));
        r
    };
    setup(&fj);
    let fjall = write_throughput(&[&fj], 4, 5, "fj");
    println!("writes/s, 4 client threads, fjall (--durability sync) in the same run: {fjall:.0}");
    drop(fj);

    let c1 = check_throughput(&[&a], 4, 5);
    let c2 = check_throughput(&[&a, &b], 4, 5);
    println!("checks/s over HTTP keep-alive, 4 client threads: 1 replica {c1:.0}, 2 replicas {c2:.0}");
    drop((a, b));

    let sizes = std::env::var("HOLDFAST_BENCH_USERS").unwrap_or_else(|_| "100000".into());
    for users in sizes.split(',').filter_map(|s| s.trim().parse::<usize>().ok()) {
        let url = pg.fresh_db();
        let (n, import, start) = startup(&url, users);
        println!(
            "start-up, {users} users ({n} records): import through the service {:.1} s; replica start to /readyz 200 {:.2} s",
            import.as_secs_f64(),
            start.as_secs_f64()
        );
    }
}
