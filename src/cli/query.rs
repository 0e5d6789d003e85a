//! check, explain, access, who, import.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{print_json, ContextArgs, Source};
use holdfast::explain;
use holdfast::model::Context;
use holdfast::policy;
use holdfast::query::{self, Decision};
use holdfast::store::Durability;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    source: Source,
    /// `user:alice`, `service_account:ci-bot`, `group:sre`.
    #[arg(long, required_unless_present = "batch")]
    subject: Option<String>,
    /// The application id (e.g. `deploy-mcp`).
    #[arg(long, required_unless_present = "batch")]
    application: Option<String>,
    /// The scope (e.g. `deploy:prod`).
    #[arg(long, required_unless_present = "batch")]
    scope: Option<String>,
    /// Answer a JSONL file of checks (`{"subject","application","scope","context"?}`
    /// a line; `-` for stdin): one JSON decision a line, in the same order.
    #[arg(long, conflicts_with_all = ["subject", "application", "scope"])]
    batch: Option<PathBuf>,
    #[command(flatten)]
    context: ContextArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn check(a: &CheckArgs, explain_it: bool) -> Result<ExitCode, String> {
    let l = a.source.load()?;
    let ctx = a.context.context()?;
    if let Some(file) = &a.batch {
        return batch(&l, file, &ctx, explain_it);
    }
    let (Some(subject), Some(application), Some(scope)) = (&a.subject, &a.application, &a.scope) else {
        return Err("give --subject, --application and --scope (or --batch FILE)".into());
    };
    let st = l.tenant.read();
    let ex = explain::explain(st.facts(), subject, application, scope, &ctx).map_err(|e| e.to_string())?;
    let code = if ex.outcome.decision == Decision::Allow { ExitCode::SUCCESS } else { ExitCode::from(1) };
    match (a.json, explain_it) {
        (true, true) => print_json(&ex)?,
        (true, false) => print_json(&json!({
            "decision": ex.outcome.decision,
            "reason": ex.outcome.reason,
            "step_up": ex.outcome.step_up,
            "trace": ex.bindings,
        }))?,
        (false, true) => print!("{}", ex.render()),
        (false, false) => {
            println!("{} ({})", ex.outcome.decision.as_str(), ex.outcome.reason);
        }
    }
    Ok(code)
}

/// One line of a batch file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchLine {
    subject: String,
    application: String,
    scope: String,
    #[serde(default)]
    context: Option<BatchContext>,
    /// Values for attribute conditions (default: the `--attr` flags).
    #[serde(default)]
    attributes: Option<holdfast::model::Attributes>,
    /// Ignored: lets a query file carry the expected answer.
    #[serde(default)]
    #[allow(dead_code)]
    expect: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchContext {
    now: Option<holdfast::model::Timestamp>,
    ip: Option<std::net::IpAddr>,
    mfa: Option<holdfast::model::MfaContext>,
}

/// Answers a JSONL query file, one decision a line, in order. A line that
/// cannot be read answers `{"error": ...}` in its place (the rest go on).
/// Lines are read in blocks; each block is answered on every core (the
/// engine is read-only here), and the answers are written in input order.
fn batch(l: &super::Loaded, file: &std::path::Path, ctx: &Context, explain_it: bool) -> Result<ExitCode, String> {
    use std::io::{BufRead, BufWriter, Write};
    const BLOCK: usize = 16 * 1024;
    let mut reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?))
    };
    let st = l.tenant.read();
    let facts = st.facts();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut lineno = 0usize;
    loop {
        // One block: (line number, text) of the non-blank lines.
        let mut block: Vec<(usize, String)> = Vec::with_capacity(BLOCK);
        while block.len() < BLOCK {
            let mut line = String::new();
            let n = reader.read_line(&mut line).map_err(|e| format!("{}:{}: {e}", file.display(), lineno + 1))?;
            if n == 0 {
                break;
            }
            lineno += 1;
            if !line.trim().is_empty() {
                block.push((lineno, line));
            }
        }
        if block.is_empty() {
            break;
        }
        let per = block.len().div_ceil(threads);
        let answers: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = block
                .chunks(per)
                .map(|part| {
                    scope.spawn(move || {
                        let mut buf = Vec::with_capacity(part.len() * 48);
                        for (i, line) in part {
                            answer_line(facts, *i, line, ctx, explain_it, &mut buf);
                        }
                        buf
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| b"{\"error\":\"internal error\"}\n".to_vec()))
                .collect()
        });
        for a in answers {
            out.write_all(&a).map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// The answer to one batch line, as one line of JSON appended to `out`.
fn answer_line(
    facts: &holdfast::engine::FactBase,
    lineno: usize,
    line: &str,
    ctx: &Context,
    explain_it: bool,
    out: &mut Vec<u8>,
) {
    #[derive(serde::Serialize)]
    struct Answer {
        decision: Decision,
        reason: &'static str,
    }
    let answer = match serde_json::from_str::<BatchLine>(line) {
        Ok(q) => {
            let mut c = match q.context {
                Some(c) => Context { now: c.now.unwrap_or(ctx.now), ip: c.ip, mfa: c.mfa, ..ctx.clone() },
                None => ctx.clone(),
            };
            if let Some(a) = q.attributes {
                c.attributes = a;
            }
            if explain_it {
                match explain::explain(facts, &q.subject, &q.application, &q.scope, &c) {
                    Ok(ex) => serde_json::to_value(&ex).unwrap_or_default(),
                    Err(e) => json!({"error": e.to_string()}),
                }
            } else {
                match query::check(facts, &q.subject, &q.application, &q.scope, &c) {
                    Ok(o) => {
                        let _ = serde_json::to_writer(&mut *out, &Answer { decision: o.decision, reason: o.reason });
                        out.push(b'\n');
                        return;
                    }
                    Err(e) => json!({"error": e.to_string()}),
                }
            }
        }
        Err(e) => json!({"error": format!("line {lineno}: {e}")}),
    };
    let _ = serde_json::to_writer(&mut *out, &answer);
    out.push(b'\n');
}

#[derive(Args)]
pub struct AccessArgs {
    #[command(flatten)]
    source: Source,
    #[arg(long)]
    subject: String,
    /// Evaluation time (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
    /// Also list expired bindings, marked `expired`.
    #[arg(long)]
    include_expired: bool,
    #[arg(long)]
    json: bool,
}

pub fn access(a: &AccessArgs) -> Result<ExitCode, String> {
    let l = a.source.load()?;
    let now = ContextArgs { now: a.now.clone(), ip: None, mfa: false, mfa_time: None, attrs: vec![] }.now()?;
    let st = l.tenant.read();
    let ea = query::effective_access(st.facts(), &a.subject, now, a.include_expired).map_err(|e| e.to_string())?;
    if a.json {
        print_json(&ea)?;
    } else {
        println!("{} ({})", ea.subject, ea.status);
        for e in &ea.entries {
            let on = e.application.as_deref().map_or("tenant-wide".to_string(), |x| format!("on {x}"));
            println!("  {} {on} [{}] scopes: {}", e.role, e.origin, e.scopes.join(" "));
            println!("    via {}  path: {}", e.binding, e.path.join(" → "));
            if let Some(c) = &e.conditions {
                println!("    conditions: {}", c.summary());
            }
            if e.status != "active" {
                println!("    status: {}", e.status);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct WhoArgs {
    #[command(flatten)]
    source: Source,
    #[arg(long)]
    application: String,
    #[arg(long)]
    scope: Option<String>,
    /// Subjects per page.
    #[arg(long, default_value_t = 100)]
    page_size: usize,
    /// The `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
    #[arg(long)]
    now: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn who(a: &WhoArgs) -> Result<ExitCode, String> {
    let l = a.source.load()?;
    let now = ContextArgs { now: a.now.clone(), ip: None, mfa: false, mfa_time: None, attrs: vec![] }.now()?;
    let st = l.tenant.read();
    let page = query::who_can_access(
        st.facts(),
        &a.application,
        a.scope.as_deref(),
        now,
        a.page_token.as_deref(),
        a.page_size,
    )
    .map_err(|e| e.to_string())?
    .ok_or_else(|| format!("unknown application `{}`", a.application))?;
    if a.json {
        print_json(&page)?;
    } else {
        for e in &page.entries {
            println!(
                "{}  {} [{}] scopes: {}  path: {}",
                e.subject,
                e.access.role,
                e.access.origin,
                e.access.scopes.join(" "),
                e.access.path.join(" → ")
            );
        }
        if let Some(t) = &page.next_page_token {
            println!("(more: --page-token {t})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct ImportArgs {
    /// The policy file.
    file: PathBuf,
    /// The store directory.
    #[arg(long, required_unless_present = "datastore", conflicts_with = "datastore")]
    data: Option<PathBuf>,
    /// A PostgreSQL datastore instead, `postgres://USER@HOST:PORT/DB`
    /// (migrated first if needed).
    #[arg(long)]
    datastore: Option<String>,
}

pub fn import(a: &ImportArgs) -> Result<ExitCode, String> {
    let pol = policy::load(&a.file).map_err(|e| e.to_string())?;
    let dir = a.data.clone().unwrap_or_default();
    let only = [pol.tenant.clone()];
    let (hf, place) = super::datastore::open(&dir, a.datastore.as_deref(), Durability::Sync, true, Some(&only))?;
    if let Some(t) = hf.tenant(&pol.tenant) {
        if t.read().facts().tuple_count() > 0 {
            return Err(format!("tenant `{}` in {place} is not empty", pol.tenant));
        }
    }
    let n = pol.changes.len();
    let rev = hf
        .write(&pol.tenant, pol.changes, &[], "cli:import", now_ms())
        .map_err(|e| format!("{}: {e}", a.file.display()))?;
    hf.flush().map_err(|e| e.to_string())?;
    println!("imported {n} records into tenant `{}` at revision {rev}", pol.tenant);
    Ok(ExitCode::SUCCESS)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
