//! Choosing the datastore: `--data DIR` (the embedded fjall store, the
//! default) or `--datastore postgres://USER@HOST:PORT/DB` (also
//! `HOLDFAST_DATASTORE`), and `holdfast migrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use holdfast::service::Holdfast;
use holdfast::store::{Datastore, Durability, PgStore};

/// The environment variable naming the datastore URL.
pub const DATASTORE_ENV: &str = "HOLDFAST_DATASTORE";

/// `--datastore URL`, else `HOLDFAST_DATASTORE` (if set and not empty).
pub fn datastore_url(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string).or_else(|| std::env::var(DATASTORE_ENV).ok().filter(|v| !v.is_empty()))
}

/// Where a command's data lives, for messages (never a password).
pub enum Where {
    Dir(PathBuf),
    Postgres(String),
}

impl std::fmt::Display for Where {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Where::Dir(d) => write!(f, "{}", d.display()),
            Where::Postgres(t) => f.write_str(t),
        }
    }
}

/// Opens the datastore (PostgreSQL if `url`, else fjall in `dir`) and loads
/// the tenants (`only` these, if given). `migrate`: apply missing schema
/// migrations first (under an advisory lock).
pub fn open(
    dir: &Path,
    url: Option<&str>,
    durability: Durability,
    migrate: bool,
    only: Option<&[String]>,
) -> Result<(Holdfast, Where), String> {
    match url {
        None => {
            let hf = if only.is_some() {
                let store =
                    holdfast::store::Store::open(dir, durability).map_err(|e| format!("{}: {e}", dir.display()))?;
                Holdfast::with_datastore(Arc::new(store), only)
            } else {
                Holdfast::open(dir, durability)
            }
            .map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok((hf, Where::Dir(dir.to_path_buf())))
        }
        Some(url) => {
            let store = PgStore::open(url, migrate).map_err(|e| e.to_string())?;
            let target = store.target().to_string();
            let store: Arc<dyn Datastore> = Arc::new(store);
            let hf = Holdfast::with_datastore(store, only).map_err(|e| format!("{target}: {e}"))?;
            Ok((hf, Where::Postgres(target)))
        }
    }
}

#[derive(Args)]
pub struct MigrateArgs {
    /// The PostgreSQL datastore, `postgres://USER@HOST:PORT/DB` (default: `HOLDFAST_DATASTORE`).
    #[arg(long)]
    datastore: Option<String>,
}

/// `holdfast migrate`: applies the schema migrations not applied yet.
pub fn migrate(a: &MigrateArgs) -> Result<ExitCode, String> {
    let url = datastore_url(a.datastore.as_deref())
        .ok_or_else(|| format!("give --datastore postgres://USER@HOST:PORT/DB (or set {DATASTORE_ENV})"))?;
    let store = PgStore::connect(&url).map_err(|e| e.to_string())?;
    let applied = store.migrate().map_err(|e| e.to_string())?;
    let version = store.schema_version().map_err(|e| e.to_string())?;
    if applied.is_empty() {
        println!("{}: schema is up to date (version {version})", store.target());
    } else {
        let list: Vec<String> = applied.iter().map(i32::to_string).collect();
        println!("{}: applied migration(s) {}; schema version {version}", store.target(), list.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
