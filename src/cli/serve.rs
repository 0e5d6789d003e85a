//! `holdfast serve`: the HTTP API on the embedded store (`--data DIR`) or,
//! as one of several replicas, on PostgreSQL (`--datastore URL`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};

use holdfast::api::{self, AppState, Keys};
use holdfast::policy::{self, Policy};
use holdfast::service::{Holdfast, WriteError};
use holdfast::store::{Durability, StoreError};

use super::datastore;

/// The worked example, embedded so `--demo` works from any directory.
const DEMO_POLICY: &str = include_str!("../../examples/acme.yaml");

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DurabilityArg {
    /// fsync every write before answering (acknowledged = durable).
    Sync,
    /// Hand writes to the OS: survives a process crash, not a power loss.
    Buffered,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The store directory (the embedded datastore, the default).
    #[arg(long, default_value = "./holdfast-data")]
    data: PathBuf,
    /// Serve from PostgreSQL instead, as one of any number of replicas:
    /// `postgres://USER@HOST:PORT/DB` (default: `HOLDFAST_DATASTORE`).
    /// Schema migrations are applied at start.
    #[arg(long)]
    datastore: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Load the worked example (tenant `acme`) if that tenant is empty.
    #[arg(long)]
    demo: bool,
    /// Load this policy file into its tenant if that tenant is empty.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// API keys: a YAML or JSON list of {name, key_sha256 | key, tenant?, access: read|write}.
    #[arg(long)]
    keys: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "sync")]
    durability: DurabilityArg,
    /// This server's issuer URL (named in protected-resource metadata and
    /// introspection). Default: the URL of the address it listens on.
    #[arg(long)]
    issuer: Option<String>,
    /// Do not serve the admin UI at `/ui/`.
    #[arg(long)]
    no_ui: bool,
    /// Accept OAuth Client ID Metadata Documents served over plain http on
    /// a loopback address (for tests and local development only).
    #[arg(long)]
    allow_insecure_client_metadata: bool,
    /// Load and serve only these tenants (comma-separated); others answer
    /// 404. Route by tenant path at the load balancer.
    #[arg(long, value_delimiter = ',')]
    tenants: Option<Vec<String>>,
    /// With `--datastore`: how long the change log is kept (older
    /// `changes?since=` answer 410).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    changes_retention: std::time::Duration,
    /// With `--datastore`: how long a read with `at_least` waits for this
    /// replica to reach that revision before answering 409.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    at_least_timeout: std::time::Duration,
    /// With `--datastore`: the longest wait between two polls of the change
    /// log (a NOTIFY wakes the tailer sooner).
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    tail_interval: std::time::Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Loads `p` into its tenant unless that tenant already has data. Decided
/// under the tenant's write lock, after catching up with the datastore, and
/// committed only if the tenant is still empty there: replicas starting
/// together load it once.
fn load_if_empty(hf: &Holdfast, p: &Policy, actor: &str) -> Result<(), String> {
    if !hf.serves(&p.tenant) {
        eprintln!("tenant `{}` is not among --tenants; not loading {}", p.tenant, p.source);
        return Ok(());
    }
    let skip = || eprintln!("tenant `{}` already has data; not loading {}", p.tenant, p.source);
    if hf.tenant(&p.tenant).is_some_and(|t| t.read().revision() > 0) {
        skip();
        return Ok(());
    }
    let written = hf.write_with(&p.tenant, actor, now_ms(), |st| {
        let changes = if st.revision() > 0 { Vec::new() } else { p.changes.clone() };
        Ok::<_, WriteError>((changes, ()))
    });
    match written {
        Ok((Some(rev), ())) => eprintln!("loaded {} into tenant `{}` (revision {rev})", p.source, p.tenant),
        Ok((None, ())) | Err(WriteError::Store(StoreError::Conflict { .. })) => skip(),
        Err(e) => return Err(format!("{}: {e}", p.source)),
    }
    Ok(())
}

/// The accepted keys: `HOLDFAST_API_KEY` and/or `--keys`; else the stored
/// hash of a key generated at first start (printed once, here).
fn keys(a: &ServeArgs) -> Result<Keys, String> {
    let mut keys = match std::env::var("HOLDFAST_API_KEY") {
        Ok(k) if !k.is_empty() => Keys::admin(&k),
        _ => Keys::default(),
    };
    if let Some(path) = &a.keys {
        keys = keys.merge(Keys::load(path).map_err(|e| e.to_string())?);
    }
    if keys.is_empty() && datastore::datastore_url(a.datastore.as_deref()).is_some() {
        return Err("with --datastore, give the API keys with HOLDFAST_API_KEY or --keys \
                    (every replica must accept the same keys)"
            .into());
    }
    if keys.is_empty() {
        let (generated, new_key) = Keys::load_or_generate(&a.data).map_err(|e| e.to_string())?;
        match new_key {
            Some(k) => {
                eprintln!(
                    "generated the admin API key (shown once; only its SHA-256 is stored in {}):",
                    a.data.join(api::auth::ADMIN_KEY_FILE).display()
                );
                eprintln!("\n    {k}\n");
            }
            None => eprintln!(
                "using the admin key whose hash is in {} (set HOLDFAST_API_KEY or --keys to use others)",
                a.data.join(api::auth::ADMIN_KEY_FILE).display()
            ),
        }
        keys = generated;
    }
    Ok(keys)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests, then flushing the store");
}

pub fn run(a: &ServeArgs) -> Result<ExitCode, String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();

    let durability = match a.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered => Durability::Buffered,
    };
    let url = datastore::datastore_url(a.datastore.as_deref());
    let (hf, place) = datastore::open(&a.data, url.as_deref(), durability, true, a.tenants.as_deref())?;
    if a.demo {
        let p = policy::compile(DEMO_POLICY, "examples/acme.yaml").map_err(|e| e.to_string())?;
        load_if_empty(&hf, &p, "demo")?;
    }
    if let Some(path) = &a.policy {
        let p = policy::load(path).map_err(|e| e.to_string())?;
        load_if_empty(&hf, &p, "policy-file")?;
    }
    super::release_free_memory();
    let keys = keys(a)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen).await.map_err(|e| format!("{}: {e}", a.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let issuer = a.issuer.clone().unwrap_or_else(|| format!("http://{addr}"));
        let issuer: &'static str = Box::leak(issuer.trim_end_matches('/').to_string().into_boxed_str());
        let hf = Arc::new(hf);
        // With a shared datastore: follow what the other replicas commit.
        let _tailer = hf.spawn_tailer(a.tail_interval, Some(a.changes_retention));
        let config = api::ApiConfig {
            issuer,
            ui: !a.no_ui,
            allow_insecure_client_metadata: a.allow_insecure_client_metadata,
            at_least_timeout: a.at_least_timeout,
            ..Default::default()
        };
        let state = AppState::with_config(hf, keys, config);
        let ui = if a.no_ui { String::new() } else { format!("; admin UI: http://{addr}/ui/") };
        eprintln!("holdfast listening on http://{addr} (data: {place}{ui})");
        api::serve(listener, state, shutdown_signal()).await.map_err(|e| e.to_string())
    })?;
    eprintln!("store flushed; bye");
    Ok(ExitCode::SUCCESS)
}
