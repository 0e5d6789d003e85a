//! A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary
//! directory (as `nobody` when the tests run as root, since PostgreSQL
//! refuses to run as root), a free port on 127.0.0.1, `fsync=off`, trust
//! authentication on loopback only, `pg_ctl stop` on drop. Never a mock.
//!
//! Binaries are looked up in `HOLDFAST_PG_BIN`, then `PATH`, then
//! `/usr/local/bin` and `/usr/lib/postgresql/<version>/bin` (Debian's
//! `postgresql` package). Without them the tests skip loudly — and fail
//! when `CI=true` (`.ci/run` installs them).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The directory holding `initdb`, `pg_ctl` and `postgres`, if any.
pub fn pg_bin() -> Option<PathBuf> {
    let has = |d: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| d.join(b).is_file());
    if let Ok(d) = std::env::var("HOLDFAST_PG_BIN") {
        return Some(PathBuf::from(d)).filter(|d| has(d));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.push("/usr/local/bin".into());
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    dirs.extend(debian.into_iter().rev());
    dirs.into_iter().find(|d| has(d))
}

/// `None` (after a loud message) when PostgreSQL is not installed; a panic
/// instead under `CI=true`, where it must be.
pub fn pg_bin_or_skip(test: &str) -> Option<PathBuf> {
    match pg_bin() {
        Some(b) => Some(b),
        None if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!(
                "{test}: PostgreSQL binaries (initdb, pg_ctl, postgres) not found, and CI=true: install `postgresql`"
            )
        }
        None => {
            eprintln!(
                "\n!!!!! SKIPPED {test}: PostgreSQL binaries (initdb, pg_ctl, postgres) not found; \
                 install Debian's `postgresql` or set HOLDFAST_PG_BIN !!!!!\n"
            );
            None
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A running throwaway cluster; stopped (and its files removed) on drop.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
    as_nobody: bool,
}

static DBS: AtomicUsize = AtomicUsize::new(0);

impl PgCluster {
    /// Starts a cluster, or `None` if PostgreSQL is not installed (see [`pg_bin_or_skip`]).
    pub fn start(test: &str) -> Option<PgCluster> {
        let bin = pg_bin_or_skip(test)?;
        let dir = tempfile::Builder::new().prefix("holdfast-pg-").tempdir().expect("temp dir");
        let as_nobody = is_root();
        if as_nobody {
            let st = Command::new("chown").args(["-R", "nobody"]).arg(dir.path()).status().expect("chown");
            assert!(st.success(), "chown nobody {}", dir.path().display());
        }
        let c = PgCluster { bin, dir, port: 0, as_nobody };
        let out = c
            .command("initdb")
            .args(["-A", "trust", "-U", "holdfast", "--no-sync", "-E", "UTF8", "--locale", "C", "-D"])
            .arg(c.data())
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = c;
        c.port = free_port();
        c.pg_start();
        Some(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `pg_ctl start` on the cluster's port (also after [`PgCluster::stop`]).
    pub fn pg_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("run pg_ctl start");
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(out.status.success(), "pg_ctl start failed: {}\n{log}", String::from_utf8_lossy(&out.stderr));
    }

    /// `pg_ctl stop -m fast`: the server goes away (connections are cut).
    #[allow(dead_code)] // used by the multi-replica tests
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://holdfast@127.0.0.1:{}/{db}", self.port)
    }

    /// A fresh, empty database; its URL.
    pub fn fresh_db(&self) -> String {
        let name = format!("t{}", DBS.fetch_add(1, Ordering::Relaxed));
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("connect to postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        self.url(&name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}
