//! clap commands. Exit codes: 0 ok (check: allow), 1 a denial or a failed
//! gate (check: deny or step_up; test: a failed assertion), 2 invalid input.

mod bench;
mod bench_http;
mod datastore;
mod http_client;
mod policy;
mod query;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use holdfast::model::{Attributes, Context, MfaContext, Timestamp};
use holdfast::service::{Holdfast, Tenant};
use holdfast::store::Durability;

#[derive(Parser)]
#[command(name = "holdfast", version, about = "Relationship-based authorization for MCP servers, people and AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// May SUBJECT use SCOPE on APPLICATION? (exit 0 allow, 1 deny/step_up)
    Check(query::CheckArgs),
    /// Why: every binding, membership path and condition behind a check.
    Explain(query::CheckArgs),
    /// Effective access: everything a subject holds, one entry per binding.
    Access(query::AccessArgs),
    /// Who can access an application (optionally one scope), paginated.
    Who(query::WhoArgs),
    /// Load a policy file into a store (the tenant must be empty).
    Import(query::ImportArgs),
    /// Measure the engine on a generated tenant and print the figures.
    Bench(bench::BenchArgs),
    /// Check policy files: structure, references, bindings that grant nothing.
    Validate(policy::ValidateArgs),
    /// Run the assertions of policy files (and of their `tests/` folders).
    Test(policy::TestArgs),
    /// Access diff between two versions of a policy (BASE HEAD).
    Diff(policy::DiffArgs),
    /// Apply a policy file to a tenant on a server (atomic) and print the access diff.
    Apply(policy::ApplyArgs),
    /// Time `diff` on two generated tenants that differ in a few hundred tuples.
    BenchDiff(policy::BenchDiffArgs),
    /// Run the HTTP API server on a store directory or a PostgreSQL datastore.
    Serve(serve::ServeArgs),
    /// Apply the PostgreSQL datastore's schema migrations.
    Migrate(datastore::MigrateArgs),
    /// Measure check over HTTP (keep-alive) against an in-process server.
    BenchHttp(bench_http::BenchHttpArgs),
}

/// Where the facts come from: a policy file, or a store.
#[derive(Args, Debug, Clone)]
pub struct Source {
    /// A policy file (YAML) evaluated in memory.
    #[arg(long, conflicts_with = "data")]
    policy: Option<PathBuf>,
    /// A store directory (as written by `serve` or `import`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The tenant (default: the policy file's, or `default`).
    #[arg(long)]
    tenant: Option<String>,
}

/// The request context a check is evaluated in.
#[derive(Args, Debug, Clone)]
pub struct ContextArgs {
    /// Evaluation time (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
    /// The caller's IP address.
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    /// The caller has done MFA.
    #[arg(long)]
    mfa: bool,
    /// When the caller did MFA (RFC 3339).
    #[arg(long)]
    mfa_time: Option<String>,
    /// An attribute for attribute conditions, `PATH=VALUE` (repeatable):
    /// `--attr action.soft=true --attr subject.team=sre`. The value is
    /// JSON when it reads as a string, number or boolean, else text.
    #[arg(long = "attr", value_name = "PATH=VALUE")]
    attrs: Vec<String>,
}

impl ContextArgs {
    fn now(&self) -> Result<Timestamp, String> {
        match &self.now {
            Some(t) => Timestamp::parse(t),
            None => Ok(Timestamp::now()),
        }
    }

    fn context(&self) -> Result<Context, String> {
        let mfa = match (&self.mfa_time, self.mfa) {
            (Some(t), _) => Some(MfaContext { present: true, auth_time: Some(Timestamp::parse(t)?) }),
            (None, true) => Some(MfaContext { present: true, auth_time: None }),
            (None, false) => None,
        };
        let mut attributes = Attributes::default();
        for a in &self.attrs {
            attributes.set_from_arg(a).map_err(|e| format!("--attr: {e}"))?;
        }
        Ok(Context { now: self.now()?, ip: self.ip, mfa, attributes })
    }
}

/// A loaded source: the instance and the tenant to ask.
pub struct Loaded {
    pub _hf: Holdfast,
    pub tenant: std::sync::Arc<Tenant>,
}

impl Source {
    fn load(&self) -> Result<Loaded, String> {
        let (hf, tenant) = match (&self.policy, &self.data) {
            (Some(p), _) => {
                let pol = policy::load(p).map_err(|e| e.to_string())?;
                let tenant = self.tenant.clone().unwrap_or_else(|| pol.tenant.clone());
                let hf = policy::instantiate_owned(pol).map_err(|e| format!("{}: {e}", p.display()))?;
                (hf, tenant)
            }
            (None, Some(d)) => {
                let hf = Holdfast::open(d, Durability::Sync).map_err(|e| format!("{}: {e}", d.display()))?;
                (hf, self.tenant.clone().unwrap_or_else(|| policy::DEFAULT_TENANT.to_string()))
            }
            (None, None) => return Err("give --policy FILE or --data DIR".into()),
        };
        let t = hf.tenant(&tenant).ok_or_else(|| format!("unknown tenant `{tenant}`"))?;
        Ok(Loaded { _hf: hf, tenant: t })
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(a) => query::check(&a, false),
        Command::Explain(a) => query::check(&a, true),
        Command::Access(a) => query::access(&a),
        Command::Who(a) => query::who(&a),
        Command::Import(a) => query::import(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Validate(a) => policy::validate(&a),
        Command::Test(a) => policy::test(&a),
        Command::Diff(a) => policy::diff(&a),
        Command::BenchDiff(a) => policy::bench_diff(&a),
        Command::Apply(a) => policy::apply(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Migrate(a) => datastore::migrate(&a),
        Command::BenchHttp(a) => bench_http::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints JSON (pretty) to stdout.
/// Returns the allocator's free pages to the OS. Loading a store or a
/// policy parses and decodes far more than it keeps; mimalloc holds on to
/// those freed pages (a 100k-user tenant: 88 MiB resident before, 28 MiB
/// after). Called after each bulk load, off the request path.
pub fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called at any time
    // from any thread; `true` also returns pages other threads abandoned.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}
