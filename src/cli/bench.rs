//! `holdfast bench`: engine figures on a generated tenant, printed as one
//! table (medians and percentiles, with the dataset size).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use rand::{rngs::SmallRng, Rng, SeedableRng};

use holdfast::model::{Context, ObjectRef, Timestamp, Tuple};
use holdfast::query;
use holdfast::service::{Change, Holdfast};
use holdfast::workload::{self, percentile, Shape};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    /// Users in the generated tenant (groups = users/10, bindings = users/2).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Checks sampled per measurement.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip the store measurements (bulk import, restart).
    #[arg(long)]
    no_store: bool,
    /// Repeat the in-process measurements on fresh instances; the table shows
    /// the median of the runs' p50, p99 and throughput.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1000.0)
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1000.0)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

struct Row {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Row {
    /// One line: the median over runs of each run's p50, p99, max and
    /// throughput; `n` is the samples of all runs together.
    fn print_median(runs: &mut [&mut Row]) {
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut max = Vec::new();
        let mut per_s = Vec::new();
        let mut n = 0;
        for r in runs.iter_mut() {
            r.samples.sort();
            n += r.samples.len();
            let total: Duration = r.samples.iter().sum();
            p50.push(percentile(&r.samples, 0.5));
            p99.push(percentile(&r.samples, 0.99));
            max.push(*r.samples.last().unwrap_or(&Duration::ZERO));
            per_s.push(if total.is_zero() { 0 } else { (r.samples.len() as f64 / total.as_secs_f64()) as u64 });
        }
        fn median<T: Ord + Copy + Default>(mut v: Vec<T>) -> T {
            v.sort();
            v.get(v.len() / 2).copied().unwrap_or_default()
        }
        println!(
            "| {:<44} | {:>7} | {:>10} | {:>10} | {:>10} | {:>12} |",
            runs.first().map_or("", |r| r.name),
            n,
            fmt(median(p50)),
            fmt(median(p99)),
            fmt(median(max)),
            median(per_s)
        );
    }
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// Write a generated policy (`policy.yaml`) and a query file
    /// (`queries.jsonl`: checks with a mix of allow and deny) to a folder.
    Gen(GenArgs),
}

#[derive(Args)]
struct GenArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Checks in the query file.
    #[arg(long, default_value_t = 10_000)]
    queries: usize,
    /// The folder to write to (created if missing).
    #[arg(long, default_value = "bench-data")]
    out: std::path::PathBuf,
    /// Also write the tenant into a new store in this folder, for
    /// `holdfast check --data DIR --batch` (policy files are capped at
    /// 16 MiB, so from ~200k users on this is the way to load it).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

/// Checks with a mix of allow and deny: half ask for something the user's
/// effective access lists, half at random.
fn make_queries(
    shape: &Shape,
    fb: &holdfast::engine::FactBase,
    n: usize,
    seed: u64,
    now: Timestamp,
) -> Result<Vec<(String, String, String)>, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed);
    let mut queries = Vec::with_capacity(n);
    while queries.len() < n {
        let (s, app, scope) = workload::random_check(shape, &mut rng);
        if rng.random_bool(0.5) {
            let ea = query::effective_access(fb, &s, now, false).map_err(|e| e.to_string())?;
            let held: Vec<_> = ea.entries.iter().filter(|e| e.application.is_some() && !e.scopes.is_empty()).collect();
            if !held.is_empty() {
                let e = held[rng.random_range(0..held.len())];
                let x = e.scopes[rng.random_range(0..e.scopes.len())].clone();
                queries.push((s, e.application.clone().unwrap_or_default(), x));
                continue;
            }
        }
        queries.push((s, app, scope));
    }
    Ok(queries)
}

/// One run's in-process rows.
struct Measured {
    rows: Vec<Row>,
    allows: usize,
    cached: usize,
    /// Subjects in a who-can-access answer, on average.
    who_subjects: usize,
}

/// One run on a fresh instance, so the first pass is cold: cold and warm
/// checks, effective access, uncached whole-subject evaluations, writes.
fn measure(shape: &Shape, queries: &[(String, String, String)], now: &Context, seed: u64) -> Result<Measured, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xbeef);
    let hf = Holdfast::in_memory();
    hf.write("bench", workload::generate(shape), &[], "bench", 0).map_err(|e| e.to_string())?;
    let tenant = hf.tenant("bench").ok_or("tenant missing")?;
    super::release_free_memory();

    let mut cold = Row { name: "check, nothing cached (first ask per subject)", samples: vec![] };
    let mut warm = Row { name: "check, warm", samples: vec![] };
    let mut ea_row = Row { name: "effective access, warm (rendered entries)", samples: vec![] };
    let mut ea_cold = Row { name: "subject evaluation, all apps, uncached", samples: vec![] };
    let mut write_row = Row { name: "write (membership) + next check of subject", samples: vec![] };
    let mut allows = 0usize;
    {
        let st = tenant.read();
        let fb = &st.facts();
        let mut seen = std::collections::HashSet::new();
        for (s, app, scope) in queries {
            let t = Instant::now();
            let r = query::check(fb, s, app, scope, now).map_err(|e| e.to_string())?;
            let d = t.elapsed();
            if seen.insert(s.clone()) {
                cold.samples.push(d);
            }
            if r.decision == query::Decision::Allow {
                allows += 1;
            }
        }
        // As a server sees it: the request's strings were just parsed, so
        // they are in cache; the tenant's data is not.
        let (mut bs, mut ba, mut bx) = (String::new(), String::new(), String::new());
        for _ in 0..3 {
            for (s, app, scope) in queries {
                for (buf, v) in [(&mut bs, s), (&mut ba, app), (&mut bx, scope)] {
                    buf.clear();
                    buf.push_str(v);
                }
                let t = Instant::now();
                let _ = query::check(fb, &bs, &ba, &bx, now).map_err(|e| e.to_string())?;
                warm.samples.push(t.elapsed());
            }
        }
        for (s, _, _) in queries.iter().take(5000) {
            let _ = query::effective_access(fb, s, now.now, false).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let _ = query::effective_access(fb, s, now.now, false).map_err(|e| e.to_string())?;
            ea_row.samples.push(t.elapsed());
            let n = fb.node_id(&ObjectRef::parse(s).map_err(|e| e.to_string())?).ok_or("no node")?;
            let t = Instant::now();
            let _ = fb.view_uncached(n).map_err(|e| e.to_string())?;
            ea_cold.samples.push(t.elapsed());
        }
    }
    for (i, (s, app, scope)) in queries.iter().take(2000).enumerate() {
        let g = rng.random_range(0..shape.groups);
        let t = Instant::now();
        let tuple = Tuple::parse(&format!("group:g{g}#member@{s}")).map_err(|e| e.to_string())?;
        let change = if i % 2 == 0 { Change::PutTuple(tuple, None) } else { Change::DeleteTuple(tuple) };
        hf.write("bench", vec![change], &[], "bench", 0).map_err(|e| e.to_string())?;
        let st = tenant.read();
        let _ = query::check(st.facts(), s, app, scope, now).map_err(|e| e.to_string())?;
        write_row.samples.push(t.elapsed());
    }
    // Who can access: the full answer (every page of 1,000) for up to 20
    // (application, scope) pairs, first after the checks above, then again.
    let mut who_first = Row { name: "who-can-access, full answer, first", samples: vec![] };
    let mut who_again = Row { name: "who-can-access, full answer, again", samples: vec![] };
    let mut who_subjects = 0;
    let mut who_answers = 1;
    {
        let st = tenant.read();
        let fb = st.facts();
        let pairs: Vec<(String, String)> = fb
            .apps()
            .into_iter()
            .filter_map(|a| {
                fb.app_scopes(a).first().map(|&x| (fb.app_name(a).to_string(), fb.scope_name(x).to_string()))
            })
            .take(20)
            .collect();
        for row in [&mut who_first, &mut who_again] {
            who_subjects = 0;
            for (app, scope) in &pairs {
                let t = Instant::now();
                let mut after: Option<String> = None;
                loop {
                    let page = query::who_can_access(fb, app, Some(scope), now.now, after.as_deref(), 1000)
                        .map_err(|e| e.to_string())?
                        .ok_or("no application")?;
                    let mut subjects: Vec<&str> = page.entries.iter().map(|e| e.subject.as_str()).collect();
                    subjects.dedup();
                    who_subjects += subjects.len();
                    match page.next_page_token {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                row.samples.push(t.elapsed());
            }
            who_answers = pairs.len().max(1);
        }
    }
    let cached = tenant.read().facts().cached_views();
    Ok(Measured {
        rows: vec![cold, warm, ea_cold, ea_row, write_row, who_first, who_again],
        allows,
        cached,
        who_subjects: who_subjects / who_answers,
    })
}

fn gen(g: &GenArgs) -> Result<ExitCode, String> {
    use std::io::Write;
    let shape = Shape::for_users(g.users, g.seed);
    let changes = workload::generate(&shape);
    std::fs::create_dir_all(&g.out).map_err(|e| format!("{}: {e}", g.out.display()))?;
    let policy = g.out.join("policy.yaml");
    std::fs::write(&policy, workload::to_policy_yaml(&changes, "bench"))
        .map_err(|e| format!("{}: {e}", policy.display()))?;
    let hf = match &g.data {
        Some(dir) => {
            if dir.exists() {
                return Err(format!("{}: already exists (give a new folder)", dir.display()));
            }
            holdfast::service::Holdfast::open(dir, holdfast::store::Durability::Sync).map_err(|e| e.to_string())?
        }
        None => Holdfast::in_memory(),
    };
    for chunk in changes.chunks(50_000) {
        hf.write("bench", chunk.to_vec(), &[], "bench", 0).map_err(|e| e.to_string())?;
    }
    if g.data.is_some() {
        hf.flush().map_err(|e| e.to_string())?;
    }
    let tenant = hf.tenant("bench").ok_or("tenant missing")?;
    let st = tenant.read();
    let now = Timestamp(1_800_000_000);
    let qs = make_queries(&shape, st.facts(), g.queries, g.seed, now)?;
    let path = g.out.join("queries.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    let ctx = Context::at(now);
    let mut allow = 0;
    for (s, a, x) in &qs {
        let d = query::check(st.facts(), s, a, x, &ctx).map_err(|e| e.to_string())?;
        allow += usize::from(d.decision == query::Decision::Allow);
        let line = serde_json::json!({"subject": s, "application": a, "scope": x, "context": {"now": now}, "expect": d.decision});
        writeln!(f, "{line}").map_err(|e| e.to_string())?;
    }
    f.flush().map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} users) and {} ({} checks, {}% allow)",
        policy.display(),
        g.users,
        path.display(),
        qs.len(),
        allow * 100 / qs.len().max(1)
    );
    if let Some(dir) = &g.data {
        println!("wrote tenant `bench` into the store {} (`holdfast check --data {0} --batch ...`)", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: &BenchArgs) -> Result<ExitCode, String> {
    if let Some(BenchCommand::Gen(g)) = &a.command {
        return gen(g);
    }
    let shape = Shape::for_users(a.users, a.seed);
    let rss0 = rss_bytes();
    let t0 = Instant::now();
    let changes = workload::generate(&shape);
    let gen_time = t0.elapsed();
    let hf = Holdfast::in_memory();
    let t1 = Instant::now();
    hf.write("bench", changes, &[], "bench", 0).map_err(|e| e.to_string())?;
    let build = t1.elapsed();
    let tenant = hf.tenant("bench").ok_or("tenant missing")?;
    // As `serve` does after loading: the input's pages go back to the OS.
    super::release_free_memory();
    let rss1 = rss_bytes();
    let tuples = tenant.read().facts().tuple_count();

    let now = Context::at(Timestamp(1_800_000_000));
    let queries = {
        let st = tenant.read();
        make_queries(&shape, st.facts(), a.samples, a.seed, now.now)?
    };
    drop(tenant);
    drop(hf);
    let mut runs: Vec<Vec<Row>> = Vec::new();
    let (mut allows, mut cached, mut rss2, mut who_subjects) = (0, 0, 0, 0);
    for run in 0..a.runs.max(1) {
        let m = measure(&shape, &queries, &now, a.seed ^ run as u64)?;
        (allows, cached, who_subjects) = (m.allows, m.cached, m.who_subjects);
        rss2 = rss_bytes();
        runs.push(m.rows);
    }

    println!(
        "holdfast bench: {} users, {} groups, {} bindings, {} service accounts, {} apps, {} roles",
        shape.users, shape.groups, shape.bindings, shape.service_accounts, shape.apps, shape.roles
    );
    println!("tuples: {tuples}; generate {:.2} s; index build (validate + load) {:.2} s; resident memory {:.0} MiB ({:.0} bytes/tuple)",
        gen_time.as_secs_f64(), build.as_secs_f64(), (rss1.saturating_sub(rss0)) as f64 / 1048576.0, (rss1.saturating_sub(rss0)) as f64 / tuples.max(1) as f64);
    println!(
        "resident memory after the runs, with {cached} subjects' views cached: {:.0} MiB",
        rss2.saturating_sub(rss0) as f64 / 1048576.0
    );
    println!(
        "queries: {} ({}% allow), single thread, in memory (no store); median of {} runs on fresh instances",
        queries.len(),
        allows * 100 / queries.len().max(1),
        runs.len()
    );
    println!();
    println!("| {:<44} | {:>7} | {:>10} | {:>10} | {:>10} | {:>12} |", "measure", "n", "p50", "p99", "max", "ops/s");
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(46),
        "-".repeat(9),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(14)
    );
    for i in 0..runs[0].len() {
        let mut per_run: Vec<&mut Row> = Vec::new();
        for r in runs.iter_mut() {
            per_run.push(&mut r[i]);
        }
        Row::print_median(&mut per_run);
    }
    println!(
        "who-can-access answers: {who_subjects} subjects on average (one scope of an application, pages of 1,000)"
    );
    if !a.no_store {
        store_figures(&shape, tuples)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Bulk import into a real store (synced commits of 50k changes), then a
/// restart: open, rebuild the indexes, answer the first check.
fn store_figures(shape: &Shape, tuples: usize) -> Result<(), String> {
    use holdfast::store::Durability;
    let dir = std::env::temp_dir().join(format!("holdfast-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let changes = workload::generate(shape);
    let n = changes.len();
    let hf = Holdfast::open(&dir, Durability::Sync).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let mut batch = Vec::with_capacity(50_000);
    for c in changes {
        batch.push(c);
        if batch.len() == 50_000 {
            hf.write("bench", std::mem::take(&mut batch), &[], "bench", 0).map_err(|e| e.to_string())?;
        }
    }
    hf.write("bench", batch, &[], "bench", 0).map_err(|e| e.to_string())?;
    let import = t.elapsed();
    let t = Instant::now();
    hf.flush().map_err(|e| e.to_string())?;
    let flush = t.elapsed();
    drop(hf);
    let t = Instant::now();
    let hf = Holdfast::open(&dir, Durability::Sync).map_err(|e| e.to_string())?;
    let tenant = hf.tenant("bench").ok_or("tenant missing after reopen")?;
    let (s, app, scope) = workload::random_check(shape, &mut SmallRng::seed_from_u64(1));
    let _ = query::check(tenant.read().facts(), &s, &app, &scope, &Context::at(Timestamp(1_800_000_000)))
        .map_err(|e| e.to_string())?;
    let restart = t.elapsed();
    drop(tenant);
    drop(hf);
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "store: bulk import {n} records ({tuples} tuples) in {:.2} s = {:.0} records/s (synced commits of 50k); flush {:.2} s",
        import.as_secs_f64(),
        n as f64 / import.as_secs_f64(),
        flush.as_secs_f64()
    );
    println!("store: restart (open, rebuild indexes) to first answered check: {:.2} s", restart.as_secs_f64());
    Ok(())
}
