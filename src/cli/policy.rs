//! Policy as code: `validate`, `test`, `diff` and `bench-diff`.
//!
//! Exit codes: 0 clean (warnings allowed) / all assertions pass / no gated
//! change; 1 error findings / a failed assertion / a `--fail-on` kind
//! present; 2 input that cannot be read or loaded.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Args, ValueEnum};
use rand::{rngs::SmallRng, Rng, SeedableRng};
use serde_json::json;

use super::print_json;
use holdfast::model::{Conditions, Timestamp, Tuple};
use holdfast::policy::assertions::{self, summary_line};
use holdfast::policy::diff::{self, DiffOptions, Side, GATE_KINDS};
use holdfast::policy::validate::{self, read_limited, ReadError, MAX_POLICY_BYTES};
use holdfast::policy::{self, Policy, PolicyError};
use holdfast::service::Change;
use holdfast::workload::{self, Shape};

// `cli/mod.rs` names this module `policy`; the library functions it used
// under that name are re-exported here.
pub use holdfast::policy::{instantiate_owned, load, DEFAULT_TENANT};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
    Markdown,
}

// ---------------------------------------------------------------- validate

#[derive(Args)]
pub struct ValidateArgs {
    /// Policy files (YAML or JSON).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn validate(a: &ValidateArgs) -> Result<ExitCode, String> {
    let reports: Vec<_> = a.files.iter().map(|f| validate::validate_path(f)).collect();
    let errors: usize = reports.iter().map(|r| r.errors()).sum();
    let warnings: usize = reports.iter().map(|r| r.warnings()).sum();
    match a.format {
        Format::Json => print_json(&json!({
            "files": reports.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "errors": errors,
            "warnings": warnings,
        }))?,
        Format::Text => {
            for r in &reports {
                print!("{}", r.render());
            }
            println!("validated {} file(s): {errors} error(s), {warnings} warning(s)", reports.len());
        }
    }
    Ok(if reports.iter().any(|r| !r.readable) {
        ExitCode::from(2)
    } else if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

// -------------------------------------------------------------------- test

#[derive(Args)]
pub struct TestArgs {
    /// Policy files; each runs its own `assertions` and those of `tests/*.yaml` beside it.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// `now` for assertions whose context sets none (RFC 3339); default: the current time.
    #[arg(long)]
    now: Option<String>,
}

fn now_arg(now: &Option<String>) -> Result<Timestamp, String> {
    now.as_deref().map_or_else(|| Ok(Timestamp::now()), Timestamp::parse)
}

pub fn test(a: &TestArgs) -> Result<ExitCode, String> {
    let now = now_arg(&a.now)?;
    let mut reports = Vec::new();
    for f in &a.files {
        match assertions::test_policy(f, now) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let passed: usize = reports.iter().map(|r| r.passed).sum();
    let failed: usize = reports.iter().map(|r| r.failed).sum();
    match a.format {
        Format::Json => print_json(&json!({"reports": reports, "passed": passed, "failed": failed}))?,
        Format::Text => {
            for r in &reports {
                println!("{}", r.render());
            }
            println!("{}", summary_line(passed, failed));
        }
    }
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

// -------------------------------------------------------------------- diff

#[derive(Args)]
pub struct DiffArgs {
    /// The policy before the change (a path, or `REV:path` with `--git`).
    base: String,
    /// The policy after the change.
    head: String,
    /// Read BASE and HEAD with `git show REV:path` (paths from the repository root, or `./path`).
    #[arg(long)]
    git: bool,
    #[arg(long, value_enum, default_value = "text")]
    format: DiffFormat,
    /// Exit 1 when any of these is present (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = GATE_KINDS.to_vec())]
    fail_on: Vec<String>,
    /// `fan_out` flag: one changed tuple below which at least N subjects changed.
    #[arg(long, default_value_t = diff::DEFAULT_FAN_OUT)]
    fan_out: usize,
    /// Evaluate every subject instead of the ones the changed tuples can reach.
    #[arg(long)]
    all_subjects: bool,
    /// Print where the time went (to stderr).
    #[arg(long)]
    timings: bool,
    /// `now` for assertions whose context sets none (RFC 3339); default: the current time.
    #[arg(long)]
    now: Option<String>,
}

/// Reads `REV:path` with `git show`, bounded like a file.
fn git_show(spec: &str) -> Result<String, ReadError> {
    let io = |error| ReadError::Io { source_name: spec.to_string(), error };
    let mut child = Command::new("git")
        .args(["show", "--no-textconv", spec])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let text = match child.stdout.take() {
        Some(out) => read_limited(out, spec, MAX_POLICY_BYTES),
        None => Ok(String::new()),
    };
    if text.is_err() {
        let _ = child.kill();
    }
    let mut err = String::new();
    if let Some(e) = child.stderr.take() {
        let _ = e.take(4096).read_to_string(&mut err);
    }
    let status = child.wait().map_err(io)?;
    if !status.success() {
        let msg = format!("`git show {spec}` failed: {}", err.trim());
        return Err(io(std::io::Error::other(msg)));
    }
    text
}

fn load_side(spec: &str, git: bool) -> Result<Policy, PolicyError> {
    if !git {
        return policy::load(Path::new(spec));
    }
    let text = git_show(spec).map_err(|e| PolicyError { file: spec.to_string(), findings: vec![e.finding()] })?;
    policy::compile(&text, spec)
}

pub fn diff(a: &DiffArgs) -> Result<ExitCode, String> {
    let t = Instant::now();
    // The two files parse in parallel (the machine has cores to spare).
    let (b, h) = std::thread::scope(|s| {
        let b = s.spawn(|| load_side(&a.base, a.git));
        let h = load_side(&a.head, a.git);
        (b.join(), h)
    });
    let loaded = b.map_err(|_| "parsing BASE panicked".to_string())?.and_then(|b| Ok((b, h?)));
    let (base, head) = match loaded {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let parse = t.elapsed();
    let opts = DiffOptions { fan_out: a.fan_out, all_subjects: a.all_subjects, now: now_arg(&a.now)?, threads: 2 };
    let t = Instant::now();
    let d = diff::diff_policies(&base, &head, &opts).map_err(|e| e.to_string())?;
    let total = t.elapsed();
    match a.format {
        DiffFormat::Text => print!("{}", diff::render_text(&d)),
        DiffFormat::Markdown => print!("{}", diff::render_markdown(&d)),
        DiffFormat::Json => print_json(&d)?,
    }
    if a.timings {
        let ti = &d.timings;
        eprintln!(
            "timings: parse {:.3} s; load + diff {:.3} s (changed tuples {:.3} s, affected subjects {:.3} s, evaluate {:.3} s for {} subjects, risks {:.3} s)",
            parse.as_secs_f64(),
            total.as_secs_f64(),
            ti.changes.as_secs_f64(),
            ti.affected.as_secs_f64(),
            ti.evaluate.as_secs_f64(),
            d.summary.subjects_evaluated,
            ti.risks.as_secs_f64()
        );
    }
    let kinds: Vec<&str> = a.fail_on.iter().map(String::as_str).collect();
    let hit = d.gate(&kinds);
    if !hit.is_empty() {
        eprintln!("holdfast diff: failing on {}", hit.join(", "));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

// -------------------------------------------------------------- bench-diff

#[derive(Args)]
pub struct BenchDiffArgs {
    /// Users in the generated BASE (groups = users/10, bindings = users/2).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Tuples HEAD changes (memberships and bindings added, removed, re-conditioned).
    #[arg(long, default_value_t = 400)]
    changes: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also time the diff that evaluates every subject, and compare the two.
    #[arg(long)]
    all_subjects: bool,
}

/// HEAD: BASE with `n` changes: a quarter each of memberships removed,
/// memberships added, bindings re-conditioned (MFA toggled) and bindings added.
fn mutate(base: &[Change], shape: &Shape, n: usize, rng: &mut SmallRng) -> Vec<Change> {
    let quarter = (n / 4).max(1);
    let is_member = |c: &Change| matches!(c, Change::PutTuple(t, _) if t.relation == "member");
    let is_binding = |c: &Change| matches!(c, Change::PutTuple(t, _) if t.relation.starts_with("role"));
    let pick = |pred: &dyn Fn(&Change) -> bool, rng: &mut SmallRng| -> Vec<usize> {
        let idx: Vec<usize> = base.iter().enumerate().filter(|(_, c)| pred(c)).map(|(i, _)| i).collect();
        (0..quarter.min(idx.len())).filter_map(|_| idx.get(rng.random_range(0..idx.len())).copied()).collect()
    };
    let drop: std::collections::HashSet<usize> = pick(&is_member, rng).into_iter().collect();
    let flip: std::collections::HashSet<usize> = pick(&is_binding, rng).into_iter().collect();
    let mfa: Option<Conditions> = serde_json::from_value(json!({"mfa": {"required": true}})).ok();
    let mut head: Vec<Change> = Vec::with_capacity(base.len() + 2 * quarter);
    for (i, c) in base.iter().enumerate() {
        match c {
            _ if drop.contains(&i) => {}
            Change::PutTuple(t, cond) if flip.contains(&i) => {
                head.push(Change::PutTuple(t.clone(), if cond.is_some() { None } else { mfa.clone() }))
            }
            other => head.push(other.clone()),
        }
    }
    let t = |s: String| Tuple::parse(&s).ok();
    for _ in 0..quarter {
        let (g, u) = (rng.random_range(0..shape.groups), rng.random_range(0..shape.users));
        head.extend(t(format!("group:g{g}#member@{}", workload::user(u))).map(|t| Change::PutTuple(t, None)));
        let r = rng.random_range(0..shape.roles);
        let subject = format!("group:g{}", rng.random_range(0..shape.groups));
        head.extend(
            t(format!("application:{}#role{r}@{subject}", workload::app(r % shape.apps)))
                .map(|t| Change::PutTuple(t, None)),
        );
    }
    head
}

pub fn bench_diff(a: &BenchDiffArgs) -> Result<ExitCode, String> {
    let shape = Shape::for_users(a.users, a.seed);
    let mut rng = SmallRng::seed_from_u64(a.seed ^ 0xd1ff);
    let t = Instant::now();
    let base = workload::generate(&shape);
    let head = mutate(&base, &shape, a.changes, &mut rng);
    let generate = t.elapsed();
    let t = Instant::now();
    let bh = policy::instantiate_changes("bench", &base).map_err(|e| e.to_string())?;
    let hh = policy::instantiate_changes("bench", &head).map_err(|e| e.to_string())?;
    let load = t.elapsed();
    let (bt, ht) = (bh.tenant("bench").ok_or("tenant missing")?, hh.tenant("bench").ok_or("tenant missing")?);
    let (bs, hs) = (bt.read(), ht.read());
    let b = Side { source: "generated BASE", fb: bs.facts(), changes: &base };
    let h = Side { source: "generated HEAD", fb: hs.facts(), changes: &head };
    println!(
        "holdfast bench-diff: {} users, {} groups, {} bindings, {} service accounts; {} vs {} changes",
        shape.users,
        shape.groups,
        shape.bindings,
        shape.service_accounts,
        base.len(),
        head.len()
    );
    println!("generate {:.2} s; load both instances {:.2} s", generate.as_secs_f64(), load.as_secs_f64());
    let mut runs = vec![false];
    if a.all_subjects {
        runs.push(true);
    }
    let mut results = Vec::new();
    for all in runs {
        let opts = DiffOptions { all_subjects: all, ..DiffOptions::new(Timestamp::now()) };
        let t = Instant::now();
        let d = diff::diff_facts(b, h, &opts).map_err(|e| e.to_string())?;
        let took = t.elapsed();
        let s = &d.summary;
        println!(
            "diff ({} subjects): {:.3} s — {} changed tuples, {} subjects evaluated, {} changed ({} added, {} removed, {} weakened, {} strengthened); changed tuples {:.3} s, affected {:.3} s, evaluate {:.3} s, risks {:.3} s",
            s.mode,
            took.as_secs_f64(),
            s.tuples_changed,
            s.subjects_evaluated,
            s.subjects_changed,
            s.added,
            s.removed,
            s.weakened,
            s.strengthened,
            d.timings.changes.as_secs_f64(),
            d.timings.affected.as_secs_f64(),
            d.timings.evaluate.as_secs_f64(),
            d.timings.risks.as_secs_f64()
        );
        results.push(d);
    }
    if let [fast, all] = results.as_slice() {
        let same = fast.subjects == all.subjects && fast.risks == all.risks;
        println!("affected-subjects diff equals all-subjects diff: {same}");
        if !same {
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------- apply

#[derive(Args)]
pub struct ApplyArgs {
    /// The policy file (YAML or JSON).
    file: PathBuf,
    /// The server, `https://host[:port]` (or `http://` on a trusted network).
    #[arg(long)]
    server: String,
    /// The tenant (default: the file's `tenant:`, else `default`).
    #[arg(long)]
    tenant: Option<String>,
    /// Compute the batch and the access diff; apply nothing.
    #[arg(long)]
    dry_run: bool,
    /// Apply even when the file removes every role or application, or more
    /// than half of the bindings (refused by default: `mass_removal`).
    #[arg(long)]
    allow_mass_removal: bool,
    /// The API key (default: `HOLDFAST_API_KEY`).
    #[arg(long)]
    key: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: DiffFormat,
    /// Apply nothing and exit 1 when the diff has any of these (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = GATE_KINDS.to_vec())]
    fail_on: Vec<String>,
    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// `holdfast apply`: `PUT /v1/tenants/{tenant}/policy` with the file as the
/// body; prints the access diff. Exit 0 applied (or dry run), 1 a `--fail-on`
/// kind present (nothing applied), 2 invalid input, a refused request or a
/// transport error.
pub fn apply(a: &ApplyArgs) -> Result<ExitCode, String> {
    use super::http_client::{encode, put, Url};
    let url = Url::parse(&a.server)?;
    let key = match &a.key {
        Some(k) => k.clone(),
        None => std::env::var("HOLDFAST_API_KEY").map_err(|_| "give --key KEY or set HOLDFAST_API_KEY".to_string())?,
    };
    let name = a.file.display().to_string();
    let text = match validate::read_policy_text(&a.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}", policy::render_finding(&name, &e.finding()));
            return Ok(ExitCode::from(2));
        }
    };
    // The tenant: the flag, else the file's (the server checks the file whole).
    let tenant = a.tenant.clone().unwrap_or_else(|| {
        policy::parse_policy(&text)
            .ok()
            .and_then(|f| f.tenant.map(|t| t.value))
            .unwrap_or_else(|| DEFAULT_TENANT.to_string())
    });
    let format = match a.format {
        DiffFormat::Text => "text",
        DiffFormat::Json => "json",
        DiffFormat::Markdown => "markdown",
    };
    let mut path =
        format!("/v1/tenants/{}/policy?format={format}&name={}&dry_run={}", encode(&tenant), encode(&name), a.dry_run);
    if !a.fail_on.is_empty() {
        path.push_str(&format!("&fail_on={}", encode(&a.fail_on.join(","))));
    }
    if a.allow_mass_removal {
        path.push_str("&allow_mass_removal=true");
    }
    let is_json = a.file.extension().is_some_and(|x| x.eq_ignore_ascii_case("json"));
    let auth = format!("Bearer {key}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", if is_json { "application/json" } else { "application/yaml" }),
        ("accept", "application/json"),
    ];
    let timeout = std::time::Duration::from_secs(a.timeout.max(1));
    let res = put(&url, &path, &headers, text.as_bytes(), timeout)?;
    let body: serde_json::Value = serde_json::from_slice(&res.body).map_err(|_| {
        format!(
            "{} answered {} with a body that is not JSON: {}",
            a.server,
            res.status,
            String::from_utf8_lossy(&res.body)
        )
    })?;
    if res.status != 200 {
        let err = &body["error"];
        eprintln!(
            "error: {} answered {} {}: {}",
            a.server,
            res.status,
            err["code"].as_str().unwrap_or("?"),
            err["message"].as_str().unwrap_or("")
        );
        for f in err["findings"].as_array().into_iter().flatten() {
            eprintln!(
                "{}:{}:{}: {}[{}]: {}{}",
                f["file"].as_str().unwrap_or(&name),
                f["line"],
                f["col"],
                f["severity"].as_str().unwrap_or("error"),
                f["code"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or(""),
                f["hint"].as_str().map_or(String::new(), |h| format!(" ({h})"))
            );
        }
        return Ok(ExitCode::from(2));
    }
    match a.format {
        DiffFormat::Json => print_json(&body)?,
        _ => print!("{}", body["rendered"].as_str().unwrap_or("")),
    }
    for w in body["warnings"].as_array().into_iter().flatten() {
        eprintln!(
            "{}:{}:{}: warning[{}]: {}",
            w["file"].as_str().unwrap_or(&name),
            w["line"],
            w["col"],
            w["code"].as_str().unwrap_or("?"),
            w["message"].as_str().unwrap_or("")
        );
    }
    let c = &body["changes"];
    let counts = format!(
        "{} object(s) put, {} deleted; {} tuple(s) put, {} deleted; {} membership(s) kept (not owned by the file)",
        c["objects_put"], c["objects_deleted"], c["tuples_put"], c["tuples_deleted"], c["memberships_kept"]
    );
    let gate: Vec<&str> = body["gate"].as_array().into_iter().flatten().filter_map(|g| g.as_str()).collect();
    if !gate.is_empty() {
        eprintln!("holdfast apply: failing on {}; nothing applied ({counts})", gate.join(", "));
        return Ok(ExitCode::from(1));
    }
    if body["applied"] == true {
        eprintln!(
            "holdfast apply: tenant `{tenant}` applied at revision {} ({counts})",
            body["revision"].as_str().unwrap_or("?")
        );
    } else {
        eprintln!("holdfast apply: dry run, nothing applied ({counts})");
    }
    Ok(ExitCode::SUCCESS)
}
