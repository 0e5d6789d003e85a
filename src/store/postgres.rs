//! The shared datastore: several Holdfast replicas over one PostgreSQL
//! database (`holdfast serve --datastore postgres://USER@HOST:PORT/DB`).
//!
//! # Tables (schema version [`SCHEMA_VERSION`], applied by [`PgStore::migrate`])
//!
//! | table                        | holds                                                         |
//! |------------------------------|---------------------------------------------------------------|
//! | `holdfast_schema_migrations` | one row per applied migration (`version`, `name`, time)       |
//! | `holdfast_revision`          | the one counter row: last revision, change-log horizon        |
//! | `holdfast_records`           | `(tenant, key bytea) -> value bytea`                          |
//! | `holdfast_changes`           | the change log: `revision -> tenant, at, actor, ops`          |
//! | `holdfast_tenants`           | each tenant's last revision (`head`) and its pruned horizon   |
//!
//! # Revisions
//!
//! Every commit is one short transaction that first increments the counter
//! row (`UPDATE ... RETURNING`). That row lock is held until the
//! transaction ends, so commits from every replica take revisions one at a
//! time, in commit order, and a rolled-back commit gives its number back:
//! a reader of `holdfast_changes WHERE revision > R` never sees `R + 2`
//! before `R + 1`. (A sequence or `bigserial` would hand out numbers at
//! insert time and let a later number commit first: a tailer then skips the
//! earlier row for good.)
//!
//! [`Commit::expect_head`] is compared with the tenant's `head` inside the
//! same transaction, after the counter lock is taken, so no other commit
//! can land between the check and the write.
//!
//! Every session sets `lock_timeout` and `statement_timeout`; a commit
//! that cannot get the counter row in time fails (nothing written) instead
//! of queueing for ever. A connection that fails is dropped and opened
//! again on the next call, so the store recovers when PostgreSQL is back.
//!
//! The datastore URL's password is never logged: [`PgStore::target`] names
//! user, host, port and database only.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::{last_ops, Change, Commit, Datastore, Op, Snapshot, StoreError};

/// The schema version this binary writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i32, &str, &str)] = &[(
    1,
    "initial",
    r#"
CREATE TABLE holdfast_revision (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint NOT NULL,
    pruned_through bigint NOT NULL DEFAULT 0
);
INSERT INTO holdfast_revision (id, revision) VALUES (true, 0);
CREATE TABLE holdfast_records (
    tenant text NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tenant, key)
);
CREATE TABLE holdfast_changes (
    revision bigint PRIMARY KEY,
    tenant text NOT NULL,
    at_unix_ms bigint NOT NULL,
    actor text NOT NULL,
    ops bytea NOT NULL
);
CREATE INDEX holdfast_changes_tenant ON holdfast_changes (tenant, revision);
CREATE INDEX holdfast_changes_at ON holdfast_changes (at_unix_ms);
CREATE TABLE holdfast_tenants (
    tenant text PRIMARY KEY,
    head bigint NOT NULL,
    pruned_through bigint NOT NULL DEFAULT 0
);
"#,
)];

/// `pg_advisory_lock` key under which migrations run ("holdfast" in ASCII).
const MIGRATION_LOCK: i64 = 0x686f_6c64_6661_7374;
/// The NOTIFY channel: a wake-up for tailers, never the truth.
const CHANNEL: &str = "holdfast_changes";
/// How long a commit waits for a lock (the counter row) before failing.
const LOCK_TIMEOUT: &str = "5s";
/// Longest statement (a bulk import is one statement per kind of op).
const STATEMENT_TIMEOUT: &str = "120s";
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A PostgreSQL datastore. `Send + Sync`; share it behind an `Arc`.
pub struct PgStore {
    config: Config,
    target: String,
    /// Commits (one at a time per replica; the counter row serializes them across replicas anyway).
    writer: Mutex<Option<Client>>,
    /// Loads, change-log reads.
    reader: Mutex<Option<Client>>,
    /// `LISTEN`s on [`CHANNEL`].
    listener: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("target", &self.target).finish_non_exhaustive()
    }
}

fn pg_err(what: &str, e: postgres::Error) -> StoreError {
    // `postgres::Error`'s text names the server's message, never the password.
    match e.as_db_error() {
        Some(db) => StoreError::Storage(format!("postgres: {what}: {} ({})", db.message(), db.code().code())),
        None => StoreError::Storage(format!("postgres: {what}: {e}")),
    }
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Precondition(format!("revision `{v}` is out of range")))
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt { key: what.to_owned(), reason: format!("negative value {v}") })
}

impl PgStore {
    /// Parses `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB` or a
    /// `key=value` connection string) and connects, without migrating.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config =
            Config::from_str(url).map_err(|e| StoreError::Precondition(format!("invalid datastore url: {e}")))?;
        config.connect_timeout(CONNECT_TIMEOUT);
        if config.get_application_name().is_none() {
            config.application_name("holdfast");
        }
        let target = describe(&config);
        let store =
            PgStore { config, target, writer: Mutex::new(None), reader: Mutex::new(None), listener: Mutex::new(None) };
        store.with(&store.writer, "connecting", |_| Ok(()))?;
        Ok(store)
    }

    /// Connects and checks that the schema is at [`SCHEMA_VERSION`]
    /// (applying the missing migrations first if `migrate`).
    pub fn open(url: &str, migrate: bool) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url)?;
        if migrate {
            store.migrate()?;
        }
        let version = store.schema_version()?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Storage(format!(
                "the database at `{}` has schema version {version}, this binary needs {SCHEMA_VERSION} \
                 (run `holdfast migrate --datastore URL`)",
                store.target
            )));
        }
        Ok(store)
    }

    /// `postgres://USER@HOST:PORT/DB`, without the password: safe to log.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The schema version applied (0: none).
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.with(&self.reader, "reading the schema version", |c| {
            let exists: bool = c.query_one("SELECT to_regclass('holdfast_schema_migrations') IS NOT NULL", &[])?.get(0);
            if !exists {
                return Ok(0);
            }
            Ok(c.query_one("SELECT coalesce(max(version), 0) FROM holdfast_schema_migrations", &[])?.get(0))
        })
    }

    /// Applies the migrations not applied yet, under an advisory lock so
    /// replicas starting together do not race. Returns the versions applied.
    pub fn migrate(&self) -> Result<Vec<i32>, StoreError> {
        self.with(&self.writer, "migrating", |c| {
            c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
            let result = (|| {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS holdfast_schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )?;
                let done: Vec<i32> =
                    c.query("SELECT version FROM holdfast_schema_migrations", &[])?.iter().map(|r| r.get(0)).collect();
                let mut applied = Vec::new();
                for (version, name, sql) in MIGRATIONS {
                    if done.contains(version) {
                        continue;
                    }
                    let mut tx = c.transaction()?;
                    tx.batch_execute(sql)?;
                    tx.execute(
                        "INSERT INTO holdfast_schema_migrations (version, name) VALUES ($1, $2)",
                        &[version, name],
                    )?;
                    tx.commit()?;
                    applied.push(*version);
                }
                Ok::<_, postgres::Error>((done, applied))
            })();
            // Unlock whatever happened (the lock also ends with the session).
            let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
            let (done, applied) = result?;
            unlock?;
            if let Some(newer) = done.iter().find(|v| **v > SCHEMA_VERSION) {
                tracing::warn!(version = newer, "datastore schema is newer than this binary");
            }
            Ok(applied)
        })
    }

    /// One commit transaction. The counter row is taken first and held to
    /// COMMIT (see the module docs); then `c.expect_head` is compared with
    /// the tenant's head: a mismatch is a [`StoreError::Conflict`], or, with
    /// `catch_up`, the changes in between are read in the same transaction
    /// and handed to `prepare`, which computes the ops against them.
    fn commit_inner(
        &self,
        c: &Commit<'_>,
        prepare: &mut dyn FnMut(Vec<Change>) -> Result<Vec<Op>, StoreError>,
        catch_up: bool,
    ) -> Result<u64, StoreError> {
        validate_tenant(c.tenant)?;
        let at = to_i64(c.at_unix_ms)?;
        self.with_store_err(&self.writer, "committing", |client| {
            let mut tx = client.transaction()?;
            let revision: i64 =
                tx.query_one("UPDATE holdfast_revision SET revision = revision + 1 RETURNING revision", &[])?.get(0);
            let mut missed = Vec::new();
            if let Some(expected) = c.expect_head {
                let found = match tx.query_opt("SELECT head FROM holdfast_tenants WHERE tenant = $1", &[&c.tenant])? {
                    Some(row) => to_u64(row.get(0), "holdfast_tenants.head")?,
                    None => 0,
                };
                if found != expected && !catch_up {
                    // Dropping `tx` rolls back: the revision is given back.
                    return Err(StoreError::Conflict { tenant: c.tenant.to_owned(), expected, found }.into());
                }
                if found != expected {
                    let rows = tx.query(
                        "SELECT revision, tenant, at_unix_ms, actor, ops FROM holdfast_changes \
                         WHERE tenant = $1 AND revision > $2 ORDER BY revision",
                        &[&c.tenant, &to_i64(expected)?],
                    )?;
                    missed = rows.iter().map(change_from_row).collect::<Result<Vec<_>, _>>()?;
                }
            }
            let ops = prepare(missed)?;
            let ops_json =
                serde_json::to_vec(&ops).map_err(|e| StoreError::Storage(format!("encoding change record: {e}")))?;
            let mut put_keys: Vec<&[u8]> = Vec::new();
            let mut put_values: Vec<&[u8]> = Vec::new();
            let mut del_keys: Vec<&[u8]> = Vec::new();
            for op in last_ops(&ops) {
                match op {
                    Op::Put { key, value } => {
                        put_keys.push(key.as_bytes());
                        put_values.push(value);
                    }
                    Op::Delete { key } => del_keys.push(key.as_bytes()),
                }
            }
            if !del_keys.is_empty() {
                tx.execute(
                    "DELETE FROM holdfast_records WHERE tenant = $1 AND key = ANY($2::bytea[])",
                    &[&c.tenant, &del_keys],
                )?;
            }
            if !put_keys.is_empty() {
                tx.execute(
                    "INSERT INTO holdfast_records (tenant, key, value) \
                     SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS u(k, v) \
                     ON CONFLICT (tenant, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&c.tenant, &put_keys, &put_values],
                )?;
            }
            tx.execute(
                "INSERT INTO holdfast_changes (revision, tenant, at_unix_ms, actor, ops) VALUES ($1, $2, $3, $4, $5)",
                &[&revision, &c.tenant, &at, &c.actor, &ops_json],
            )?;
            tx.execute(
                "INSERT INTO holdfast_tenants (tenant, head) VALUES ($1, $2) \
                 ON CONFLICT (tenant) DO UPDATE SET head = EXCLUDED.head",
                &[&c.tenant, &revision],
            )?;
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &revision.to_string()])?;
            tx.commit()?;
            Ok(to_u64(revision, "holdfast_revision.revision")?)
        })
    }

    /// Runs `f` on the connection in `slot`, connecting first if needed;
    /// a failed connection is dropped so the next call connects again.
    fn with<T>(
        &self,
        slot: &Mutex<Option<Client>>,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        self.with_store_err(slot, what, |c| f(c).map_err(|e| Inner::Pg(what.to_owned(), e)))
    }

    fn with_store_err<T>(
        &self,
        slot: &Mutex<Option<Client>>,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, Inner>,
    ) -> Result<T, StoreError> {
        let mut guard =
            slot.lock().map_err(|_| StoreError::Storage("datastore connection lock poisoned".to_owned()))?;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            let mut client = self
                .config
                .connect(NoTls)
                .map_err(|e| StoreError::Storage(format!("postgres: cannot connect to `{}`: {e}", self.target)))?;
            client
                .batch_execute(&format!(
                    "SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = '{STATEMENT_TIMEOUT}'; \
                     SET idle_in_transaction_session_timeout = '{STATEMENT_TIMEOUT}'"
                ))
                .map_err(|e| pg_err("configuring the session", e))?;
            *guard = Some(client);
        }
        let Some(client) = guard.as_mut() else {
            return Err(StoreError::Storage(format!("postgres: {what}: no connection")));
        };
        match f(client) {
            Ok(v) => Ok(v),
            Err(Inner::Pg(what, e)) => {
                if e.is_closed() || e.as_db_error().is_none() {
                    *guard = None;
                }
                Err(pg_err(&what, e))
            }
            Err(Inner::Store(e)) => Err(e),
        }
    }
}

/// An error inside a connection: PostgreSQL's, or the store's own.
enum Inner {
    Pg(String, postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Inner {
    fn from(e: postgres::Error) -> Self {
        Inner::Pg("query".to_owned(), e)
    }
}

impl From<StoreError> for Inner {
    fn from(e: StoreError) -> Self {
        Inner::Store(e)
    }
}

/// `postgres://USER@HOST:PORT/DB` (no password).
fn describe(c: &Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{}@{host}:{port}/{}", c.get_user().unwrap_or(""), c.get_dbname().unwrap_or(""))
}

fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    if tenant.is_empty() {
        return Err(StoreError::Precondition("tenant name must not be empty".to_owned()));
    }
    if tenant.as_bytes().contains(&0) {
        return Err(StoreError::Precondition("tenant name must not contain a NUL (0x00) byte".to_owned()));
    }
    Ok(())
}

fn change_from_row(row: &postgres::Row) -> Result<Change, StoreError> {
    let revision = to_u64(row.get(0), "holdfast_changes.revision")?;
    let ops_bytes: Vec<u8> = row.get(4);
    let ops: Vec<Op> = serde_json::from_slice(&ops_bytes).map_err(|e| StoreError::Corrupt {
        key: format!("holdfast_changes/{revision}"),
        reason: format!("undecodable ops: {e}"),
    })?;
    Ok(Change {
        revision,
        tenant: row.get(1),
        at_unix_ms: to_u64(row.get(2), "holdfast_changes.at_unix_ms")?,
        actor: row.get(3),
        ops,
    })
}

impl Datastore for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn shared(&self) -> bool {
        true
    }

    fn commit(&self, c: &Commit<'_>) -> Result<u64, StoreError> {
        let ops = c.ops;
        self.commit_inner(c, &mut |_| Ok(ops.to_vec()), false)
    }

    fn commit_after(
        &self,
        c: &Commit<'_>,
        prepare: &mut dyn FnMut(Vec<Change>) -> Result<Vec<Op>, StoreError>,
    ) -> Result<u64, StoreError> {
        self.commit_inner(c, prepare, true)
    }

    fn head(&self) -> Result<u64, StoreError> {
        let rev: i64 = self.with(&self.reader, "reading the revision", |c| {
            Ok(c.query_one("SELECT revision FROM holdfast_revision", &[])?.get(0))
        })?;
        to_u64(rev, "holdfast_revision.revision")
    }

    fn load(&self, tenants: Option<&[String]>) -> Result<Snapshot, StoreError> {
        self.with_store_err(&self.reader, "loading", |c| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let revision = to_u64(
                tx.query_one("SELECT revision FROM holdfast_revision", &[])?.get(0),
                "holdfast_revision.revision",
            )?;
            let filter: Vec<&str> = tenants.map(|t| t.iter().map(String::as_str).collect()).unwrap_or_default();
            let all = tenants.is_none();
            let rows = tx.query(
                "SELECT tenant, key, value FROM holdfast_records WHERE $1 OR tenant = ANY($2) \
                 ORDER BY tenant COLLATE \"C\", key",
                &[&all, &filter],
            )?;
            let mut records = Vec::with_capacity(rows.len());
            for row in rows {
                let tenant: String = row.get(0);
                let key: Vec<u8> = row.get(1);
                let key = String::from_utf8(key).map_err(|e| StoreError::Corrupt {
                    key: format!("holdfast_records/{tenant}/{}", e.as_bytes().escape_ascii()),
                    reason: "not valid UTF-8".to_owned(),
                })?;
                records.push((tenant, key, row.get::<_, Vec<u8>>(2)));
            }
            let mut heads = std::collections::BTreeMap::new();
            for row in
                tx.query("SELECT tenant, head FROM holdfast_tenants WHERE $1 OR tenant = ANY($2)", &[&all, &filter])?
            {
                heads.insert(row.get::<_, String>(0), to_u64(row.get(1), "holdfast_tenants.head")?);
            }
            tx.commit()?;
            Ok(Snapshot { revision, records, heads })
        })
    }

    fn tenant_changes(&self, tenant: &str, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        validate_tenant(tenant)?;
        if limit == 0 || since >= i64::MAX as u64 {
            return Ok(Vec::new());
        }
        let since_i = to_i64(since)?;
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_store_err(&self.reader, "reading the change log", |c| {
            if let Some(row) =
                c.query_opt("SELECT pruned_through FROM holdfast_tenants WHERE tenant = $1", &[&tenant])?
            {
                let horizon = to_u64(row.get(0), "holdfast_tenants.pruned_through")?;
                if since < horizon {
                    return Err(StoreError::Pruned { since, horizon }.into());
                }
            }
            let rows = c.query(
                "SELECT revision, tenant, at_unix_ms, actor, ops FROM holdfast_changes \
                 WHERE tenant = $1 AND revision > $2 ORDER BY revision LIMIT $3",
                &[&tenant, &since_i, &limit_i],
            )?;
            Ok(rows.iter().map(change_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn changes_after(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        if limit == 0 || since >= i64::MAX as u64 {
            return Ok(Vec::new());
        }
        let since_i = to_i64(since)?;
        let limit_i = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_store_err(&self.reader, "reading the change log", |c| {
            let horizon = to_u64(
                c.query_one("SELECT pruned_through FROM holdfast_revision", &[])?.get(0),
                "holdfast_revision.pruned_through",
            )?;
            if since < horizon {
                return Err(StoreError::Pruned { since, horizon }.into());
            }
            let rows = c.query(
                "SELECT revision, tenant, at_unix_ms, actor, ops FROM holdfast_changes \
                 WHERE revision > $1 ORDER BY revision LIMIT $2",
                &[&since_i, &limit_i],
            )?;
            Ok(rows.iter().map(change_from_row).collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn wait_for_commit(&self, timeout: Duration) {
        let waited = self.with(&self.listener, "listening", |c| {
            // Idempotent; a new connection (after a reconnect) needs it again.
            c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            let mut n = c.notifications();
            let mut it = n.timeout_iter(timeout);
            // One wake-up is enough; drain the rest without waiting.
            let _ = it.next()?;
            drop(it);
            let mut rest = n.iter();
            while rest.next()?.is_some() {}
            Ok(())
        });
        if waited.is_err() {
            // PostgreSQL is away: wait as long as a poll would have.
            std::thread::sleep(timeout);
        }
    }

    fn prune_changes(&self, before_unix_ms: u64) -> Result<u64, StoreError> {
        let before = to_i64(before_unix_ms)?;
        self.with_store_err(&self.writer, "pruning the change log", |c| {
            let mut tx = c.transaction()?;
            // Never a tenant's last change: it is what `head` names.
            tx.execute(
                "WITH del AS (
                    DELETE FROM holdfast_changes c WHERE c.at_unix_ms < $1
                    AND c.revision < (SELECT t.head FROM holdfast_tenants t WHERE t.tenant = c.tenant)
                    RETURNING c.tenant, c.revision)
                 UPDATE holdfast_tenants t SET pruned_through = GREATEST(t.pruned_through, d.m)
                 FROM (SELECT tenant, max(revision) AS m FROM del GROUP BY tenant) d WHERE t.tenant = d.tenant",
                &[&before],
            )?;
            let horizon: i64 = tx
                .query_one(
                    "UPDATE holdfast_revision SET pruned_through = GREATEST(pruned_through, \
                     coalesce((SELECT max(pruned_through) FROM holdfast_tenants), 0)) RETURNING pruned_through",
                    &[],
                )?
                .get(0);
            tx.commit()?;
            Ok(to_u64(horizon, "holdfast_revision.pruned_through")?)
        })
    }

    /// PostgreSQL made every commit durable before it returned.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
