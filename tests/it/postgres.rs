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
    let url = pg.fresh_db();
    let (ok, out) = holdfast(&["migrate", "--datastore", &url]);
    assert!(ok && out.contains("applied migration(s) 1"), "{out}");
    let (ok, out) = holdfast(&["migrate", "--datastore", &url]);
    assert!(ok && out.contains("up to date (version 1)"), "{out}");
    assert!(!out.contains("password"), "{out}");

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
}
