//! `holdfast bench-http`: check over HTTP. Starts the API in-process on
//! 127.0.0.1:0 with a generated tenant and drives it with C keep-alive
//! connections (a raw HTTP/1.1 client over tokio), first with single checks,
//! then with `check/batch`. Prints requests/s, checks/s and latencies.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rand::{rngs::SmallRng, SeedableRng};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use holdfast::api::{self, AppState, Keys};
use holdfast::service::Holdfast;
use holdfast::workload::{self, percentile, Shape};

const TENANT: &str = "bench";
const KEY: &str = "bench-key";
/// Distinct request bodies cycled through by each connection.
const DISTINCT: usize = 4096;

#[derive(Args)]
pub struct BenchHttpArgs {
    /// Users in the generated tenant (groups = users/10, bindings = users/2).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds measured per phase (after a one-second warm-up).
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Checks per `check/batch` request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Worker threads of the server runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn check_body(shape: &Shape, rng: &mut SmallRng) -> serde_json::Value {
    let (s, a, x) = workload::random_check(shape, rng);
    json!({"subject": s, "application": a, "scope": x})
}

/// One keep-alive connection: sends `reqs` round-robin until `until`,
/// returning the latency of every answered request (after `from`).
async fn drive(
    addr: SocketAddr,
    reqs: Arc<Vec<Vec<u8>>>,
    offset: usize,
    from: Instant,
    until: Instant,
) -> Result<Vec<Duration>, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut lat = Vec::new();
    let mut i = offset;
    loop {
        let t0 = Instant::now();
        if t0 >= until {
            break;
        }
        s.write_all(&reqs[i % reqs.len()]).await.map_err(|e| e.to_string())?;
        i += 1;
        read_response(&mut s, &mut buf).await?;
        if t0 >= from {
            lat.push(t0.elapsed());
        }
    }
    Ok(lat)
}

/// Reads one response (Content-Length body); errors on a non-200 status.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = s.read(&mut buf[filled..]).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = std::str::from_utf8(&buf[..end]).map_err(|e| e.to_string())?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!("unexpected answer: {}", head.lines().next().unwrap_or("")));
        }
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
            })
            .ok_or("no content-length")?;
        let total = end + 4 + len;
        while filled < total {
            if filled == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            let n = s.read(&mut buf[filled..]).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            filled += n;
        }
        return Ok(());
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Runs one phase: C connections, a warm-up second, then `secs` measured.
fn phase(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    reqs: Arc<Vec<Vec<u8>>>,
    a: &BenchHttpArgs,
) -> Result<(Vec<Duration>, f64), String> {
    let start = Instant::now();
    let from = start + Duration::from_secs(1);
    let until = from + Duration::from_secs(a.duration);
    let lat = rt.block_on(async {
        let tasks: Vec<_> =
            (0..a.connections).map(|c| tokio::spawn(drive(addr, Arc::clone(&reqs), c * 997, from, until))).collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(all)
    })?;
    let mut lat = lat;
    lat.sort();
    let secs = a.duration as f64;
    Ok((lat, secs))
}

pub fn run(a: &BenchHttpArgs) -> Result<ExitCode, String> {
    let shape = Shape::for_users(a.users, a.seed);
    let t0 = Instant::now();
    let hf = Holdfast::in_memory();
    for chunk in workload::generate(&shape).chunks(50_000) {
        hf.write(TENANT, chunk.to_vec(), &[], "bench", 0).map_err(|e| e.to_string())?;
    }
    println!(
        "tenant: {} users, {} groups, {} bindings ({} tuples), loaded in {:.1?}",
        shape.users,
        shape.groups,
        shape.bindings,
        hf.tenant(TENANT).map_or(0, |t| t.read().facts().tuple_count()),
        t0.elapsed()
    );
    let state = AppState::new(Arc::new(hf), Keys::admin(KEY));
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.server_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = server_rt.spawn(api::serve(listener, state, async {
        let _ = stopped.await;
    }));
    // The client runs on its own single thread.
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;

    let mut rng = SmallRng::seed_from_u64(a.seed ^ 0x5eed);
    let path = format!("/v1/tenants/{TENANT}/check");
    let singles: Vec<Vec<u8>> =
        (0..DISTINCT).map(|_| request(&path, &check_body(&shape, &mut rng).to_string())).collect();
    let batch_path = format!("/v1/tenants/{TENANT}/check/batch");
    let batches: Vec<Vec<u8>> = (0..DISTINCT / 16)
        .map(|_| {
            let checks: Vec<_> = (0..a.batch).map(|_| check_body(&shape, &mut rng)).collect();
            request(&batch_path, &json!({ "checks": checks }).to_string())
        })
        .collect();

    println!(
        "server: {} worker threads; client: 1 thread, {} keep-alive connections; {} s per phase after 1 s warm-up",
        a.server_threads, a.connections, a.duration
    );
    println!(
        "| {:<28} | {:>9} | {:>12} | {:>12} | {:>9} | {:>9} | {:>9} |",
        "phase", "requests", "requests/s", "checks/s", "p50", "p99", "max"
    );
    println!("|{:-<30}|{:-<11}|{:-<14}|{:-<14}|{:-<11}|{:-<11}|{:-<11}|", "", "", "", "", "", "", "");
    for (name, reqs, per) in [("check (single)", singles, 1usize), ("check/batch", batches, a.batch)] {
        let (lat, secs) = phase(&client_rt, addr, Arc::new(reqs), a)?;
        let rps = lat.len() as f64 / secs;
        let label = if per == 1 { name.to_string() } else { format!("{name} ({per} per request)") };
        println!(
            "| {:<28} | {:>9} | {:>12.0} | {:>12.0} | {:>9} | {:>9} | {:>9} |",
            label,
            lat.len(),
            rps,
            rps * per as f64,
            us(percentile(&lat, 0.5)),
            us(percentile(&lat, 0.99)),
            us(lat.last().copied().unwrap_or_default())
        );
    }
    let _ = stop.send(());
    server_rt.block_on(server).map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
