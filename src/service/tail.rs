//! Following a shared datastore: every replica keeps its in-memory fact
//! base and applies what the others commit, in revision order, from the
//! datastore's change log ([`Datastore::changes_after`]). NOTIFY (or any
//! other hint, [`Datastore::wait_for_commit`]) only wakes the tailer up;
//! the poll is the truth, so a lost notification or a reconnect loses
//! nothing.
//!
//! [`Holdfast::revision`] is the tail's watermark: every change up to it is
//! applied to every tenant this replica serves. A tenant may be further
//! ahead (its own writes, or a catch-up before a write), never behind. A
//! write on this replica answers after the watermark reached it, so an
//! `at_least` read of its revision on the same replica never waits.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{decode_ops, Holdfast, StoreError};
use crate::store::Datastore;

/// Change-log entries read per poll.
const TAIL_PAGE: usize = 1000;
/// How often the change log is pruned (with `retention`).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The replication state of one instance (idle without a shared datastore).
#[derive(Debug, Default)]
pub struct Replication {
    /// One tail pass at a time (the tailer thread, or a writer catching up).
    tail_lock: Mutex<()>,
    /// Signalled after every pass: `at_least` waiters check the watermark.
    applied: (Mutex<()>, Condvar),
    /// `--tenants`: serve (load, tail, accept writes for) only these.
    pub(super) only: Option<BTreeSet<String>>,
    stats: Mutex<Stats>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    /// A pass reached the datastore's head since the last error or lag.
    caught_up: bool,
    /// The datastore's head as last read.
    head: u64,
    /// Since when this replica has been behind the head it last read.
    behind_since: Option<Instant>,
    /// Datastore errors (tailing and commits) since start.
    errors: u64,
    /// The last error's text (never a password: [`crate::store::PgStore`] keeps it out).
    last_error: Option<String>,
}

/// What `/readyz` and `/metrics` report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationStatus {
    /// The datastore is shared with other replicas (else the rest is trivial).
    pub shared: bool,
    /// Loaded and caught up with the datastore's head at the last poll.
    pub ready: bool,
    /// The watermark ([`Holdfast::revision`]).
    pub applied: u64,
    /// The datastore's head at the last poll.
    pub head: u64,
    /// How long this replica has been behind that head (0: it is not).
    pub lag_seconds: f64,
    pub errors: u64,
    /// The last poll failed: the datastore is unreachable (reads go on from memory).
    pub datastore_down: bool,
}

impl Holdfast {
    /// Other replicas may write to this instance's datastore.
    pub fn is_shared(&self) -> bool {
        self.store.as_ref().is_some_and(|s| s.shared())
    }

    /// Does this replica serve `tenant` (`--tenants`)?
    pub fn serves(&self, tenant: &str) -> bool {
        self.replication.only.as_ref().is_none_or(|only| only.contains(tenant))
    }

    pub(super) fn note_store_error(&self, e: &StoreError) {
        if matches!(e, StoreError::Storage(_)) {
            let mut s = self.replication.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.errors += 1;
            s.last_error = Some(e.to_string());
        }
    }

    /// Applies everything committed after the watermark, up to the
    /// datastore's head. Returns how many change-log entries it read.
    pub fn tail(&self) -> Result<usize, StoreError> {
        let Some(store) = self.store.as_ref().filter(|s| s.shared()) else {
            return Ok(0);
        };
        let _one = self.replication.tail_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.tail_locked(store.as_ref());
        {
            let mut s = self.replication.stats.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Ok(_) => {
                    s.caught_up = true;
                    s.last_error = None;
                    if self.revision() >= s.head {
                        s.behind_since = None;
                    }
                }
                Err(e) => {
                    s.errors += 1;
                    s.last_error = Some(e.to_string());
                }
            }
        }
        let (m, cv) = &self.replication.applied;
        drop(m.lock().unwrap_or_else(|p| p.into_inner()));
        cv.notify_all();
        result
    }

    fn tail_locked(&self, store: &dyn Datastore) -> Result<usize, StoreError> {
        let head = store.head()?;
        {
            let mut s = self.replication.stats.lock().unwrap_or_else(|p| p.into_inner());
            s.head = s.head.max(head);
            if head > self.revision() && s.behind_since.is_none() {
                s.behind_since = Some(Instant::now());
            }
        }
        let mut read = 0;
        loop {
            let batch = store.changes_after(self.revision(), TAIL_PAGE)?;
            if batch.is_empty() {
                return Ok(read);
            }
            if batch.len() == TAIL_PAGE {
                // Far behind (a reconnect, a restart): not current until caught up.
                self.replication.stats.lock().unwrap_or_else(|p| p.into_inner()).caught_up = false;
            }
            read += batch.len();
            for c in batch {
                if self.serves(&c.tenant) {
                    let t = self.tenant_or_create(&c.tenant);
                    let mut st = t.write();
                    if c.revision > st.revision {
                        let changes = decode_ops(&c.tenant, &c)?;
                        self.apply_locked(&c.tenant, &mut st, &changes, c.revision);
                    }
                }
                self.revision.fetch_max(c.revision, std::sync::atomic::Ordering::AcqRel);
            }
        }
    }

    /// The commit path of a blind write on a shared datastore: inside the
    /// commit transaction, with every other writer excluded, applies what
    /// other replicas committed to the tenant since `st` was current, then
    /// validates the batch against that state and writes it. No conflict
    /// to retry: two replicas racing one precondition cannot both pass.
    pub(super) fn commit_shared_locked(
        &self,
        tenant: &str,
        st: &mut super::TenantState,
        changes: &[super::Change],
        preconditions: &[super::Precondition],
        actor: &str,
        at_unix_ms: u64,
    ) -> Result<u64, super::WriteError> {
        let Some(store) = self.store.as_ref() else {
            return Err(StoreError::Storage("no datastore".into()).into());
        };
        // Fail fast (no transaction) on what no newer state could make valid.
        st.validate(changes, preconditions)?;
        let mut refused: Option<super::WriteError> = None;
        let commit = crate::store::Commit { tenant, actor, at_unix_ms, ops: &[], expect_head: Some(st.revision) };
        let result = store.commit_after(&commit, &mut |missed| {
            for c in missed {
                let decoded = decode_ops(tenant, &c)?;
                self.apply_locked(tenant, st, &decoded, c.revision);
            }
            if let Err(e) = st.validate(changes, preconditions) {
                refused = Some(e);
                return Err(StoreError::Aborted);
            }
            Ok(changes.iter().map(super::encode_change).collect())
        });
        match result {
            Ok(revision) => {
                self.apply_locked(tenant, st, changes, revision);
                Ok(revision)
            }
            Err(StoreError::Aborted) => Err(refused.unwrap_or(super::WriteError::Store(StoreError::Aborted))),
            Err(e) => {
                self.note_store_error(&e);
                Err(e.into())
            }
        }
    }

    /// After a commit at `revision` on this replica: returns once the
    /// watermark reached it (read-your-writes). The write itself is
    /// durable and applied to its tenant already, so a failure here is
    /// only logged: the tailer retries.
    pub(super) fn after_commit(&self, revision: u64) {
        if !self.is_shared() || self.revision() >= revision {
            return;
        }
        if let Err(e) = self.tail() {
            tracing::warn!(error = %e, revision, "datastore: catching up after a write failed; the tailer retries");
        }
    }

    /// Waits until the watermark reaches `revision` or `timeout` passes;
    /// the revision reached.
    pub fn wait_for_revision(&self, revision: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &self.replication.applied;
        let mut guard = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = self.revision();
            if now >= revision || !self.is_shared() {
                return now;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                return now;
            };
            // Woken after every tail pass; re-check at least every 50 ms.
            guard = cv.wait_timeout(guard, left.min(Duration::from_millis(50))).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Readiness, lag and error counts.
    pub fn replication_status(&self) -> ReplicationStatus {
        let s = self.replication.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let applied = self.revision();
        if !self.is_shared() {
            return ReplicationStatus {
                shared: false,
                ready: true,
                applied,
                head: applied,
                lag_seconds: 0.0,
                errors: s.errors,
                datastore_down: false,
            };
        }
        let behind = s.head > applied;
        ReplicationStatus {
            shared: true,
            ready: s.caught_up && !behind,
            applied,
            head: s.head.max(applied),
            lag_seconds: if behind { s.behind_since.map_or(0.0, |t| t.elapsed().as_secs_f64()) } else { 0.0 },
            errors: s.errors,
            datastore_down: s.last_error.is_some(),
        }
    }

    /// Starts the tailer thread of a shared datastore: waits for a commit
    /// hint or `interval`, then [`Holdfast::tail`]s; with `retention`, also
    /// prunes change-log entries older than that now and then. It stops
    /// when the instance is dropped. `None` without a shared datastore.
    pub fn spawn_tailer(
        self: &Arc<Self>,
        interval: Duration,
        retention: Option<Duration>,
    ) -> Option<std::thread::JoinHandle<()>> {
        let store = Arc::clone(self.store.as_ref().filter(|s| s.shared())?);
        let weak: Weak<Holdfast> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("holdfast-tail".into()).spawn(move || {
            let mut last_prune: Option<Instant> = None;
            let mut failing = false;
            loop {
                let Some(hf) = weak.upgrade() else { return };
                match hf.tail() {
                    Ok(_) if failing => {
                        tracing::info!("datastore: reachable again; caught up at revision {}", hf.revision());
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "datastore: tailing failed; serving reads from memory and retrying");
                        }
                        failing = true;
                    }
                }
                if let Some(keep) = retention {
                    if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) && !failing {
                        let now_ms =
                            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                        let before = now_ms.saturating_sub(keep.as_millis() as u64);
                        match store.prune_changes(before) {
                            Ok(horizon) => tracing::debug!(horizon, "datastore: change log pruned"),
                            Err(e) => tracing::warn!(error = %e, "datastore: pruning the change log failed"),
                        }
                        last_prune = Some(Instant::now());
                    }
                }
                drop(hf);
                store.wait_for_commit(interval);
            }
        });
        match spawned {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the datastore tailer");
                None
            }
        }
    }
}
