//! Byte-level durable storage for Holdfast: one interface, [`Datastore`],
//! and two engines behind it.
//!
//! * [`fjall`] ([`Store`]): embedded, one process over one directory — the
//!   default (`holdfast serve --data DIR`).
//! * [`postgres`] ([`PgStore`]): several replicas over one PostgreSQL
//!   database (`holdfast serve --datastore postgres://...`).
//!
//! A datastore knows tenants, opaque record keys, opaque byte values, global
//! revisions and a change log. It knows nothing about authorization: the
//! service layer decides what keys and values mean. The same test suite
//! runs against every engine (`tests/it/datastore.rs`).
//!
//! # Contract
//!
//! * [`Datastore::commit`] writes a batch of [`Op`]s, its [`Change`] record
//!   and its revision atomically, or nothing. Revisions are global across
//!   tenants, start at 1, strictly increase in commit order and leave no gap
//!   a reader of the change log could skip.
//! * [`Commit::expect_head`] is checked inside the same atomic step: the
//!   tenant's last committed revision must still be the one the batch was
//!   computed from, so two writers cannot both pass a check that only one
//!   should ([`StoreError::Conflict`]).
//! * [`Datastore::load`] reads every record at one consistent revision and
//!   [`Datastore::changes_after`] follows the log from exactly there.

pub mod fjall;
pub mod postgres;

pub use self::fjall::Store;
pub use self::postgres::PgStore;

use std::collections::BTreeMap;

/// How hard [`Datastore::commit`] tries to make a commit durable before returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `fsync` (`PersistMode::SyncAll`) before commit returns: acknowledged = durable.
    #[default]
    Sync,
    /// Flushed to OS buffers only: survives a process crash, not a power loss.
    Buffered,
}

/// Errors of every datastore. No engine's types leak through this type.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine (or the file system) failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A stored record could not be decoded.
    #[error("corrupt record at `{key}`: {reason}")]
    Corrupt {
        /// The (escaped) storage key of the record.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The caller's input was rejected (invalid tenant name, oversized key, ...).
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// [`Commit::expect_head`] did not hold: another writer (another replica)
    /// committed to the tenant after the state the batch was computed from.
    /// Nothing was written; catch up and compute the batch again.
    #[error("tenant `{tenant}` changed concurrently (expected its last revision to be `{expected}`, found `{found}`)")]
    Conflict {
        /// The tenant.
        tenant: String,
        /// The head the caller computed from.
        expected: u64,
        /// The head found inside the transaction.
        found: u64,
    },
    /// The caller of [`Datastore::commit_after`] refused the batch (its own
    /// error says why); nothing was written.
    #[error("the batch was refused before it was written")]
    Aborted,
    /// The change log no longer holds the revisions asked for (retention).
    #[error("changes after revision `{since}` are no longer kept (the oldest kept follows `{horizon}`)")]
    Pruned {
        /// The revision asked for.
        since: u64,
        /// Changes up to this revision may have been removed.
        horizon: u64,
    },
}

/// One write operation on a tenant's records (key and value are opaque bytes/str chosen by the caller).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// Create or overwrite the record `key`.
    Put {
        /// Record key.
        key: String,
        /// Record value.
        value: Vec<u8>,
    },
    /// Delete the record `key` (a no-op if it does not exist).
    Delete {
        /// Record key.
        key: String,
    },
}

impl Op {
    /// The record key this op touches.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// One committed change, as kept in the change log (also the audit log).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Global revision assigned to this commit.
    pub revision: u64,
    /// Tenant the ops apply to.
    pub tenant: String,
    /// Caller-supplied commit time (milliseconds since the Unix epoch).
    pub at_unix_ms: u64,
    /// Caller-supplied actor (who made the change).
    pub actor: String,
    /// The ops exactly as passed to [`Datastore::commit`].
    pub ops: Vec<Op>,
}

/// `(tenant, key, value)`, as a [`Snapshot`] holds them.
pub type TenantRecord = (String, String, Vec<u8>);
/// One batch to commit.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// The tenant the ops apply to (non-empty, no NUL byte).
    pub tenant: &'a str,
    /// Who makes the change (kept in the change log).
    pub actor: &'a str,
    /// Commit time, milliseconds since the Unix epoch (kept in the change log).
    pub at_unix_ms: u64,
    /// The ops; if several touch one key, the last one wins.
    pub ops: &'a [Op],
    /// The tenant's last committed revision (0: none) the batch was computed
    /// from, checked atomically with the write; `None`: a blind write.
    pub expect_head: Option<u64>,
}

/// Every record of the tenants loaded, at one consistent revision.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The revision the snapshot reflects: every commit up to it, none after.
    pub revision: u64,
    /// `(tenant, key, value)`, in key order per tenant, tenants in byte order.
    pub records: Vec<TenantRecord>,
    /// The last revision that committed to each tenant (up to `revision`).
    pub heads: BTreeMap<String, u64>,
}

/// A durable datastore: the one interface the service layer writes and
/// reads through. `Send + Sync`; every method may block (call it off the
/// async threads).
pub trait Datastore: Send + Sync + std::fmt::Debug {
    /// The engine's name, for logs and metrics (`fjall`, `postgres`).
    fn kind(&self) -> &'static str;

    /// Whether other processes may commit to this datastore too (then the
    /// service follows [`Datastore::changes_after`] to see their writes).
    fn shared(&self) -> bool;

    /// Commits one batch atomically and returns its revision.
    fn commit(&self, c: &Commit<'_>) -> Result<u64, StoreError>;

    /// Commits one batch whose ops are computed inside the atomic step, with
    /// every other writer excluded: `prepare` gets the tenant's changes
    /// committed after `c.expect_head` (by other writers; empty when none)
    /// and returns the ops to write, or an error that writes nothing. For a
    /// batch that must be validated against the tenant's latest state
    /// without a [`StoreError::Conflict`]. `c.ops` is not used.
    fn commit_after(
        &self,
        c: &Commit<'_>,
        prepare: &mut dyn FnMut(Vec<Change>) -> Result<Vec<Op>, StoreError>,
    ) -> Result<u64, StoreError> {
        // One writer (this process, under the tenant's lock): nothing missed.
        let ops = prepare(Vec::new())?;
        self.commit(&Commit { ops: &ops, expect_head: None, ..*c })
    }

    /// The last committed revision, as the datastore has it now.
    fn head(&self) -> Result<u64, StoreError>;

    /// Every record of `tenants` (all tenants: `None`) at one consistent revision.
    fn load(&self, tenants: Option<&[String]>) -> Result<Snapshot, StoreError>;

    /// Changes of `tenant` with revision > `since`, oldest first, at most `limit`.
    fn tenant_changes(&self, tenant: &str, since: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// Changes of every tenant with revision > `since`, oldest first, at most
    /// `limit`, without gaps: nothing with a lower revision commits later.
    fn changes_after(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// Blocks until another writer may have committed, or `timeout` passes
    /// (a wake-up hint only: callers poll [`Datastore::changes_after`] for the truth).
    fn wait_for_commit(&self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }

    /// Removes change-log entries older than `before_unix_ms` (never the
    /// last one of a tenant); returns the horizon (the highest revision
    /// removed, or the previous horizon).
    fn prune_changes(&self, before_unix_ms: u64) -> Result<u64, StoreError>;

    /// Makes everything written so far durable and cheap to reopen (clean shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}

/// Last op per key, in the order of the keys' last ops: what a batch leaves.
pub(crate) fn last_ops(ops: &[Op]) -> Vec<&Op> {
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        last.insert(op.key(), i);
    }
    ops.iter().enumerate().filter(|(i, op)| last.get(op.key()) == Some(i)).map(|(_, op)| op).collect()
}
