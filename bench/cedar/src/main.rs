//! Holdfast and Cedar side by side on the workload `holdfast bench gen`
//! writes: the same policy (translated into Cedar by [`model`]), the same
//! queries, the same answers (checked), and the latency of each engine.
//!
//! Exit codes: 0 every answer agreed, 1 some answer differed, 2 invalid input.

mod model;
mod queries;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Decision as CedarDecision, Request};
use clap::Parser;
use holdfast::model::{Context, Timestamp};
use holdfast::query::{self, Decision};

use model::{CedarModel, ModelKind, Types};
use queries::Query;

// The allocator the `holdfast` binary runs with; Cedar allocates per
// evaluation too, so both engines get the faster one.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Holdfast vs Cedar on the same generated policy and queries")]
struct Args {
    /// A folder written by `holdfast bench gen` (policy.yaml, queries.jsonl).
    #[arg(long, required_unless_present = "queries")]
    data: Option<PathBuf>,
    /// Generate the tenant in process (`holdfast::workload`, as `bench gen`
    /// does) instead of reading policy.yaml: Holdfast's policy parser stops
    /// at 2M YAML nodes, which a 1M-user file exceeds. Needs the queries
    /// (`--queries`, or `--data` for DATA/queries.jsonl) of the same shape.
    #[arg(long, conflicts_with = "policy")]
    users: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The policy file (instead of DATA/policy.yaml).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The JSONL query file (instead of DATA/queries.jsonl).
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Timed passes over the queries, per engine (interleaved).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Use only the first M queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Cedar models to build and measure.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ModelKind::Rbac, ModelKind::RbacSliced, ModelKind::PerBinding])]
    models: Vec<ModelKind>,
    /// Queries used with the one-policy-per-binding model (linear in bindings).
    #[arg(long, default_value_t = 200)]
    per_binding_limit: usize,
    /// Skip Cedar's strict validation of the policy set against the schema.
    #[arg(long)]
    no_validate: bool,
    /// Print the Cedar schema and the first policies of each model.
    #[arg(long)]
    show_model: bool,
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Latency samples of one measure.
struct Samples {
    name: String,
    ns: Vec<u64>,
}

impl Samples {
    fn new(name: impl Into<String>) -> Samples {
        Samples { name: name.into(), ns: Vec::new() }
    }
    fn push(&mut self, d: Duration) {
        self.ns.push(d.as_nanos() as u64);
    }
    fn sorted(&mut self) -> &[u64] {
        self.ns.sort_unstable();
        &self.ns
    }
    fn pct(&mut self, p: f64) -> u64 {
        holdfast::workload::percentile(self.sorted(), p)
    }
    fn mean(&self) -> u64 {
        if self.ns.is_empty() {
            0
        } else {
            self.ns.iter().sum::<u64>() / self.ns.len() as u64
        }
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns < 10_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// One table row; `base`: the Holdfast warm (p50, p99) a ratio is taken against.
fn row(s: &mut Samples, base: Option<(u64, u64)>) {
    let (p50, p99, mean) = (s.pct(0.5), s.pct(0.99), s.mean());
    let ratio = match base {
        Some((b50, b99)) if b50 > 0 && b99 > 0 => {
            format!("{:.1}× / {:.1}×", p50 as f64 / b50 as f64, p99 as f64 / b99 as f64)
        }
        _ => "—".to_string(),
    };
    println!(
        "| {:<58} | {:>7} | {:>9} | {:>9} | {:>9} | {:>15} |",
        s.name,
        s.ns.len(),
        fmt_ns(p50),
        fmt_ns(p99),
        fmt_ns(mean),
        ratio
    );
}

fn header() {
    println!(
        "| {:<58} | {:>7} | {:>9} | {:>9} | {:>9} | {:>15} |",
        "measure (single thread)", "n", "p50", "p99", "mean", "÷ Holdfast warm"
    );
    println!("|{}|{}|{}|{}|{}|{}|", "-".repeat(60), "-".repeat(9), "-".repeat(11), "-".repeat(11), "-".repeat(11), "-".repeat(17));
}

/// Mismatches, counted; the first few printed in full.
#[derive(Default)]
struct Mismatches {
    count: usize,
}

impl Mismatches {
    fn report(&mut self, what: &str, q: &Query, ctx: &Context, detail: String) {
        self.count += 1;
        if self.count <= 20 {
            let ctx = serde_json::to_string(ctx).unwrap_or_default();
            eprintln!(
                "MISMATCH ({what}): {} on {} scope {} context {ctx}: {detail}",
                q.subject, q.application, q.scope
            );
        }
    }
}

fn holdfast_check(fb: &holdfast::engine::FactBase, q: &Query, ctx: &Context) -> Result<Decision, String> {
    query::check(fb, &q.subject, &q.application, &q.scope, ctx).map(|o| o.decision).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs everything; `Ok(false)` when some answer differed.
fn run(a: &Args) -> Result<bool, String> {
    let dir = a.data.clone().unwrap_or_default();
    let policy_path = a.policy.clone().unwrap_or_else(|| dir.join("policy.yaml"));
    let queries_path = a.queries.clone().unwrap_or_else(|| dir.join("queries.jsonl"));

    // ---------------------------------------------------------- Holdfast
    // Both engines are built from one list of changes: the policy file
    // compiled by Holdfast's own parser (read whole: `policy::load` stops at
    // 16 MiB), or the generator's output.
    let t = Instant::now();
    let (tenant_name, changes, source) = match a.users {
        Some(n) => {
            let shape = holdfast::workload::Shape::for_users(n, a.seed);
            ("bench".to_string(), holdfast::workload::generate(&shape), format!("generated (seed {})", a.seed))
        }
        None => {
            let text =
                std::fs::read_to_string(&policy_path).map_err(|e| format!("{}: {e}", policy_path.display()))?;
            let pol =
                holdfast::policy::compile(&text, &policy_path.display().to_string()).map_err(|e| e.to_string())?;
            (pol.tenant, pol.changes, format!("policy {}", policy_path.display()))
        }
    };
    let parse_secs = t.elapsed().as_secs_f64();
    let qs = queries::read(&queries_path, a.limit, Timestamp::now())?;
    if qs.is_empty() {
        return Err(format!("{}: no queries", queries_path.display()));
    }
    let f = model::Tenant::from_changes(&changes);
    println!("{source}: {}; read in {parse_secs:.2} s", f.summary());
    let rss0 = rss_mib();
    let t = Instant::now();
    let hf = holdfast::policy::instantiate_changes(&tenant_name, &changes).map_err(|e| e.to_string())?;
    let tenant = hf.tenant(&tenant_name).ok_or("the policy's tenant is missing")?;
    let build_secs = t.elapsed().as_secs_f64();
    let st = tenant.read();
    let fb = &st.facts();
    println!(
        "holdfast: {} tuples loaded in {:.2} s, +{:.0} MiB resident",
        fb.tuple_count(),
        build_secs,
        rss_mib() - rss0
    );

    // Cold: the first pass on a fresh instance; a check is cold when its
    // (subject, application) was not asked before (nothing cached for it).
    let mut mism = Mismatches::default();
    let mut cold = Samples::new("Holdfast check, cold (first ask of subject+app)");
    let mut hf_answers = Vec::with_capacity(qs.len());
    let mut seen = std::collections::HashSet::new();
    let (mut allow, mut deny, mut step_up) = (0, 0, 0);
    for q in &qs {
        let t = Instant::now();
        let d = holdfast_check(fb, q, &q.ctx);
        let el = t.elapsed();
        let d = d.map_err(|e| format!("holdfast on {} {} {}: {e}", q.subject, q.application, q.scope))?;
        if seen.insert((q.subject.as_str(), q.application.as_str())) {
            cold.push(el);
        }
        match d {
            Decision::Allow => allow += 1,
            Decision::Deny => deny += 1,
            Decision::StepUp => step_up += 1,
        }
        if let Some(e) = &q.expect {
            if e != d.as_str() {
                mism.report("holdfast vs expected", q, &q.ctx, format!("holdfast {}, file expects {e}", d.as_str()));
            }
        }
        hf_answers.push(d);
    }
    println!(
        "queries {}: {} (holdfast: {allow} allow, {deny} deny, {step_up} step_up; {} carry an expected answer)",
        queries_path.display(),
        qs.len(),
        qs.iter().filter(|q| q.expect.is_some()).count()
    );

    let ty = Types::new();
    let authorizer = Authorizer::new();
    let mut agreed = true;
    for &kind in &a.models {
        let n = if kind == ModelKind::PerBinding { a.per_binding_limit.min(qs.len()) } else { qs.len() };
        let sub = &qs[..n];
        let rss0 = rss_mib();
        let m: CedarModel = model::build(&f, kind, !a.no_validate)?;
        println!();
        println!(
            "## Cedar, {}: {} policies, {} entities ({} grants, {} group cycles condensed), {} bindings; built in {:.2} s (validation {:.2} s), +{:.0} MiB resident; strict validation against the schema: {}",
            kind.name(),
            m.policy_count,
            m.entity_count,
            m.grants,
            m.cycles,
            m.bindings,
            m.build_secs,
            m.validate_secs,
            rss_mib() - rss0,
            match &m.validation {
                None => "skipped (over 20k policies, or --no-validate)".to_string(),
                Some(Ok(())) => "passed".to_string(),
                Some(Err(e)) => format!("FAILED: {e}"),
            }
        );
        if a.show_model {
            println!("\nschema:\n{}\nfirst policies:\n{}\n", model::schema_text(&f), m.sample);
        }
        if matches!(m.validation, Some(Err(_))) {
            agreed = false;
        }

        // Answers: each query in its own context (against Holdfast and the
        // file), then in three MFA contexts (against Holdfast).
        let before = mism.count;
        let reqs: Vec<Request> = sub.iter().map(|q| queries::cedar_request(&ty, q, &q.ctx)).collect::<Result<_, _>>()?;
        let mut cedar_allow = 0;
        let mut compared = 0;
        for (i, (q, r)) in sub.iter().zip(&reqs).enumerate() {
            let c = authorizer.is_authorized(r, m.policies_for(&q.application), &m.entities).decision()
                == CedarDecision::Allow;
            cedar_allow += usize::from(c);
            compared += 1;
            let h = hf_answers[i];
            if c != (h == Decision::Allow) {
                mism.report("cedar vs holdfast", q, &q.ctx, format!("cedar {}, holdfast {}", if c { "allow" } else { "deny" }, h.as_str()));
            }
            if let Some(e) = &q.expect {
                if c != (e == "allow") {
                    mism.report("cedar vs expected", q, &q.ctx, format!("cedar {}, file expects {e}", if c { "allow" } else { "deny" }));
                }
            }
        }
        let mut variant_allow = 0;
        for q in sub {
            for (name, ctx) in queries::mfa_variants(&q.ctx) {
                let r = queries::cedar_request(&ty, q, &ctx)?;
                let c = authorizer.is_authorized(&r, m.policies_for(&q.application), &m.entities).decision()
                    == CedarDecision::Allow;
                let h = holdfast_check(fb, q, &ctx)?;
                compared += 1;
                variant_allow += usize::from(c);
                if c != (h == Decision::Allow) {
                    mism.report(
                        &format!("cedar vs holdfast, {name}"),
                        q,
                        &ctx,
                        format!("cedar {}, holdfast {}", if c { "allow" } else { "deny" }, h.as_str()),
                    );
                }
            }
        }
        let bad = mism.count - before;
        println!(
            "answers: {compared} compared ({n} queries in their own context: cedar {cedar_allow} allow / {} deny; {} in MFA contexts: {variant_allow} allow); {}",
            n - cedar_allow,
            3 * n,
            if bad == 0 { "all agree".to_string() } else { format!("{bad} MISMATCHES") }
        );

        // Latency, interleaved rounds so background load hits both alike.
        let mut hf_warm = Samples::new("Holdfast check, warm (query::check, from strings)");
        let mut cedar = Samples::new(format!("Cedar is_authorized, {}", kind.name()));
        let mut build = Samples::new("Cedar Request::new + Context (per request, not above)");
        for _ in 0..a.repeat {
            for q in sub {
                let t = Instant::now();
                let d = query::check(fb, &q.subject, &q.application, &q.scope, &q.ctx);
                hf_warm.push(t.elapsed());
                black_box(&d);
            }
            for (q, r) in sub.iter().zip(&reqs) {
                let t = Instant::now();
                let resp = authorizer.is_authorized(r, m.policies_for(&q.application), &m.entities);
                cedar.push(t.elapsed());
                black_box(resp.decision());
            }
            for q in sub {
                let t = Instant::now();
                let r = queries::cedar_request(&ty, q, &q.ctx);
                build.push(t.elapsed());
                black_box(&r);
            }
        }
        println!();
        header();
        let base = (hf_warm.pct(0.5), hf_warm.pct(0.99));
        row(&mut hf_warm, None);
        if kind == ModelKind::Rbac || !a.models.contains(&ModelKind::Rbac) {
            row(&mut cold, Some(base));
        }
        row(&mut cedar, Some(base));
        row(&mut build, Some(base));
        println!(
            "\nratio Cedar/Holdfast warm, {}: p50 {:.1}×, p99 {:.1}×",
            kind.name(),
            cedar.pct(0.5) as f64 / base.0.max(1) as f64,
            cedar.pct(0.99) as f64 / base.1.max(1) as f64
        );
        drop(m);
    }
    if mism.count > 0 {
        agreed = false;
        eprintln!("{} mismatches in all", mism.count);
    }
    drop(st);
    Ok(agreed)
}
