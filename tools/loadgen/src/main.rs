//! `holdfast-loadgen`: a mixed load of checks and writes against a running
//! Holdfast, over HTTP/1.1 keep-alive connections (one thread each), paced
//! to a target rate or as fast as it goes (`--rate 0`). Std only.
//!
//! Checks come from a `queries.jsonl` written by `holdfast bench gen`; each
//! answer is compared with the decision the file expects. Writes add a
//! membership (`group:soak-cN#member@user:soak-N-I`) or delete one the same
//! connection added, so the data set stays bounded during a long soak. `I`
//! cycles through `--id-pool` ids a connection (default 5,000), so the set of
//! ids ever named stays bounded too; `--id-pool 0` names a new user every
//! time (directory churn: the engine keeps the name of every id it has seen
//! until restart).
//!
//! ```text
//! holdfast-loadgen --addr 127.0.0.1:8080 --key KEY --tenant bench --queries queries.jsonl
//!     [--connections 8] [--duration 60] [--rate 0] [--write-ratio 0.05] [--report-every 10]
//!     [--id-pool 5000]
//! ```
//! The last line is machine-readable: `RESULT key=value ...`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    key: String,
    tenant: String,
    queries: String,
    connections: usize,
    duration: u64,
    rate: f64,
    write_ratio: f64,
    report_every: u64,
    id_pool: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:8080".parse().map_err(|e| format!("{e}"))?,
        key: std::env::var("HOLDFAST_API_KEY").unwrap_or_default(),
        tenant: "bench".into(),
        queries: "bench-data/queries.jsonl".into(),
        connections: 8,
        duration: 60,
        rate: 0.0,
        write_ratio: 0.05,
        report_every: 10,
        id_pool: 5_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => a.addr = val()?.parse().map_err(|e| format!("--addr: {e}"))?,
            "--key" => a.key = val()?,
            "--tenant" => a.tenant = val()?,
            "--queries" => a.queries = val()?,
            "--connections" => a.connections = val()?.parse().map_err(|e| format!("--connections: {e}"))?,
            "--duration" => a.duration = val()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--rate" => a.rate = val()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--write-ratio" => a.write_ratio = val()?.parse().map_err(|e| format!("--write-ratio: {e}"))?,
            "--report-every" => a.report_every = val()?.parse().map_err(|e| format!("--report-every: {e}"))?,
            "--id-pool" => a.id_pool = val()?.parse().map_err(|e| format!("--id-pool: {e}"))?,
            "-h" | "--help" => {
                println!("see the module docs in tools/loadgen/src/main.rs");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.key.is_empty() {
        return Err("give --key or HOLDFAST_API_KEY".into());
    }
    Ok(a)
}

/// A check body without the file's `expect`, and the decision expected.
fn load_queries(path: &str) -> Result<Vec<(String, String)>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|e| e.to_string())?;
        // `{"application":..,"context":..,"expect":"allow","scope":..,"subject":..}`
        let Some(start) = line.find(",\"expect\":\"") else { continue };
        let rest = &line[start + 11..];
        let Some(end) = rest.find('"') else { continue };
        let expect = rest[..end].to_string();
        let body = format!("{}{}", &line[..start], &rest[end + 1..]);
        out.push((body, expect));
    }
    if out.is_empty() {
        return Err(format!("{path}: no queries"));
    }
    Ok(out)
}

/// xorshift64*: enough randomness for picking queries.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Conn {
    addr: SocketAddr,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn { addr, r: BufReader::new(s) })
    }

    /// One request; (status, body). Reconnects once if the connection died.
    fn call(&mut self, req: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        match self.exchange(req) {
            Ok(r) => Ok(r),
            Err(_) => {
                *self = Conn::open(self.addr)?;
                self.exchange(req)
            }
        }
    }

    fn exchange(&mut self, req: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        self.r.get_mut().write_all(req)?;
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            self.r.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body)?;
        if close {
            *self = Conn::open(self.addr)?;
        }
        Ok((status, body))
    }
}

fn request(method: &str, path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: loadgen\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[derive(Default)]
struct Stats {
    check_lat: Vec<u32>,
    write_lat: Vec<u32>,
    errors: Vec<(u16, String)>,
    wrong: u64,
}

struct Shared {
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
}

fn worker(a: Arc<Args>, qs: Arc<Vec<(String, String)>>, id: usize, shared: Arc<Shared>, start: Instant) -> Stats {
    let mut st = Stats::default();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut conn = match Conn::open(a.addr) {
        Ok(c) => c,
        Err(e) => {
            st.errors.push((0, format!("connect: {e}")));
            return st;
        }
    };
    let check_path = format!("/v1/tenants/{}/check", a.tenant);
    let write_path = format!("/v1/tenants/{}/tuples", a.tenant);
    let interval = if a.rate > 0.0 { Some(Duration::from_secs_f64(a.connections as f64 / a.rate)) } else { None };
    let mut added: Vec<String> = Vec::new();
    let mut n = 0u64;
    let mut i = 0u64;
    let end = start + Duration::from_secs(a.duration);
    while !shared.stop.load(Ordering::Relaxed) {
        if let Some(iv) = interval {
            let due = start + iv.mul_f64(i as f64) + iv.mul_f64(id as f64 / a.connections as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if Instant::now() >= end {
            break;
        }
        i += 1;
        let is_write = rng.unit() < a.write_ratio;
        let (req, expect) = if is_write {
            let body = if added.len() >= 200 || (added.len() > 20 && rng.unit() < 0.5) {
                let t = added.swap_remove((rng.next() % added.len() as u64) as usize);
                format!("{{\"deletes\":[\"{t}\"]}}")
            } else {
                let t = loop {
                    n += 1;
                    let i = if a.id_pool > 0 { n % a.id_pool } else { n };
                    let t = format!("group:soak-c{id}#member@user:soak-{id}-{i}");
                    if !added.contains(&t) {
                        break t;
                    }
                };
                added.push(t.clone());
                format!("{{\"writes\":[\"{t}\"]}}")
            };
            (request("POST", &write_path, &a.key, &body), None)
        } else {
            let (body, expect) = &qs[(rng.next() % qs.len() as u64) as usize];
            (request("POST", &check_path, &a.key, body), Some(expect.as_str()))
        };
        let t0 = Instant::now();
        let res = conn.call(&req);
        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match res {
            Ok((200, body)) => {
                if is_write {
                    st.write_lat.push(us);
                } else {
                    st.check_lat.push(us);
                    if let Some(e) = expect {
                        let want = format!("\"decision\":\"{e}\"");
                        if !String::from_utf8_lossy(&body).contains(&want) {
                            st.wrong += 1;
                        }
                    }
                }
            }
            Ok((status, body)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if st.errors.len() < 20 {
                    st.errors.push((status, String::from_utf8_lossy(&body).chars().take(200).collect()));
                }
            }
            Err(e) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                if st.errors.len() < 20 {
                    st.errors.push((0, e.to_string()));
                }
                std::thread::sleep(Duration::from_millis(50));
                if let Ok(c) = Conn::open(a.addr) {
                    conn = c;
                }
            }
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    st
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let a = match args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("holdfast-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let qs = match load_queries(&a.queries) {
        Ok(q) => Arc::new(q),
        Err(e) => {
            eprintln!("holdfast-loadgen: {e}");
            std::process::exit(2);
        }
    };
    let shared = Arc::new(Shared { done: AtomicU64::new(0), errors: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let start = Instant::now();
    let handles: Vec<_> = (0..a.connections)
        .map(|id| {
            let (a, qs, shared) = (Arc::clone(&a), Arc::clone(&qs), Arc::clone(&shared));
            std::thread::spawn(move || worker(a, qs, id, shared, start))
        })
        .collect();
    let mut last = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(a.duration) {
        std::thread::sleep(
            Duration::from_secs(a.report_every.max(1))
                .min(Duration::from_secs(a.duration) - start.elapsed().min(Duration::from_secs(a.duration))),
        );
        let done = shared.done.load(Ordering::Relaxed);
        let dt = last.0.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "[{:>5.0}s] {:>8.0} req/s  total {done}  errors {}",
            start.elapsed().as_secs_f64(),
            (done - last.1) as f64 / dt,
            shared.errors.load(Ordering::Relaxed)
        );
        last = (Instant::now(), done);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut all = Stats::default();
    for h in handles {
        let s = h.join().unwrap_or_default();
        all.check_lat.extend(s.check_lat);
        all.write_lat.extend(s.write_lat);
        all.errors.extend(s.errors);
        all.wrong += s.wrong;
    }
    let secs = start.elapsed().as_secs_f64();
    all.check_lat.sort_unstable();
    all.write_lat.sort_unstable();
    let ok = all.check_lat.len() + all.write_lat.len();
    let errors = shared.errors.load(Ordering::Relaxed);
    for (status, msg) in all.errors.iter().take(10) {
        eprintln!("error sample: {status} {msg}");
    }
    let mut both: Vec<u32> = all.check_lat.iter().chain(&all.write_lat).copied().collect();
    both.sort_unstable();
    println!(
        "{} requests in {secs:.1}s = {:.0} req/s ({} checks, {} writes), {errors} errors, {} wrong decisions",
        ok,
        ok as f64 / secs,
        all.check_lat.len(),
        all.write_lat.len(),
        all.wrong
    );
    for (name, l) in [("all", &both), ("check", &all.check_lat), ("write", &all.write_lat)] {
        println!(
            "  {name:<5} p50 {:>7} us  p99 {:>7} us  p999 {:>7} us  max {:>7} us",
            pct(l, 0.5),
            pct(l, 0.99),
            pct(l, 0.999),
            l.last().copied().unwrap_or(0)
        );
    }
    println!(
        "RESULT rps={:.0} checks={} writes={} errors={errors} wrong={} p50_us={} p99_us={} p999_us={} check_p99_us={} write_p99_us={}",
        ok as f64 / secs,
        all.check_lat.len(),
        all.write_lat.len(),
        all.wrong,
        pct(&both, 0.5),
        pct(&both, 0.99),
        pct(&both, 0.999),
        pct(&all.check_lat, 0.99),
        pct(&all.write_lat, 0.99)
    );
}
