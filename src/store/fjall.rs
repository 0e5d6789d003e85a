//! The embedded datastore, built on [fjall]: one process over one directory
//! (the default; see [`super`] for the interface it implements).
//!
//! The store knows about tenants, opaque keys, opaque byte values and global
//! revisions. It knows nothing about authorization: higher layers decide what
//! the keys and values mean.
//!
//! # Key layout
//!
//! Four fjall keyspaces live in one fjall database:
//!
//! | keyspace            | key                                         | value                         |
//! |---------------------|---------------------------------------------|-------------------------------|
//! | `records`           | `tenant` bytes, `0x00`, record key bytes    | record value (raw bytes)      |
//! | `changes`           | revision as `u64` big-endian (8 bytes)      | `serde_json` of a [`Change`]  |
//! | `changes_by_tenant` | `tenant` bytes, `0x00`, revision `u64` BE   | empty                         |
//! | `meta`              | `"revision"`                                | last revision as `u64` BE     |
//!
//! Tenant names must be non-empty and must not contain `0x00`, so the first
//! `0x00` in a `records` / `changes_by_tenant` key always ends the tenant.
//! Record keys may be any string (including empty, including `0x00`). Because
//! every key of tenant `t` lies in `[t 0x00, t 0x01)`, per-tenant scans and
//! skipping over a tenant are simple range reads. Big-endian revisions make
//! byte order equal numeric order.
//!
//! # Revisions
//!
//! Revisions are global across tenants, start at 1 and strictly increase by
//! one per [`Store::commit`] (an empty op list still consumes a revision).
//! Commits are serialized by a mutex. The `meta` revision, the [`Change`]
//! record, its per-tenant index entry and all record writes of one commit are
//! written in **one** fjall write batch, so after a crash either all of them
//! are present or none is. On open the revision is read from `meta` (and
//! cross-checked against the last `changes` key).
//!
//! # Durability contract
//!
//! * [`Durability::Sync`] (the default): the batch's journal entry is written
//!   and `fsync`ed (`PersistMode::SyncAll`) before `commit` returns. A commit
//!   that returned `Ok` survives process crashes and power loss.
//! * [`Durability::Buffered`]: the journal entry is handed to the OS before
//!   `commit` returns. It survives a process crash but may be lost (as a
//!   whole batch, never partially) on power loss / OS crash.
//!
//! If `commit` returns a storage error, the outcome is unknown only in the
//! fsync-failure case (fjall then poisons the database and refuses further
//! writes); the store must be reopened. Otherwise nothing was written.
//!
//! [`Store::flush`] writes all memtables to disk tables and syncs the journal
//! so that the next open does not need to replay the journal; call it on
//! clean shutdown. It is not needed for durability.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};

use super::{Change, Commit, Datastore, Durability, Op, Snapshot, StoreError, TenantRecord};

const KS_RECORDS: &str = "records";
const KS_CHANGES: &str = "changes";
const KS_CHANGES_BY_TENANT: &str = "changes_by_tenant";
const KS_META: &str = "meta";
const META_REVISION: &[u8] = b"revision";

/// Separator between the tenant and the rest of a key.
const SEP: u8 = 0x00;
/// fjall keys are limited to 65535 bytes.
const MAX_KEY_LEN: usize = u16::MAX as usize;
/// fjall values are limited to 2^32 - 1 bytes.
const MAX_VALUE_LEN: usize = u32::MAX as usize;
/// How long [`Store::flush`] waits for background memtable flushes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// Memtable size of the keyspaces written on every commit. fjall's default
/// (64 MiB each) lets a write-heavy server grow by ~200 MiB of memtables
/// before the first flush; 8 MiB keeps resident memory flat under load at
/// the cost of more (background) flushes. Stored per keyspace at creation.
const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;
/// fjall's block cache (its default is 32 MiB). Reads are served from the
/// in-memory indexes; the store is read at start and for the change feed.
const BLOCK_CACHE_BYTES: u64 = 16 * 1024 * 1024;

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

/// The durable store. `Send + Sync`; share it behind an `Arc`.
pub struct Store {
    db: Database,
    records: Keyspace,
    changes: Keyspace,
    changes_by_tenant: Keyspace,
    meta: Keyspace,
    durability: Durability,
    /// Serializes commits; holds the last committed revision.
    commit_lock: Mutex<u64>,
    /// Last committed revision, readable without taking the lock.
    revision: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("durability", &self.durability)
            .field("revision", &self.revision())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, durability: Durability) -> Result<Store, StoreError> {
        let db = Database::builder(dir)
            .cache_size(BLOCK_CACHE_BYTES)
            .open()
            .map_err(|e| StoreError::Storage(format!("opening {}: {e}", dir.display())))?;
        let opts = || KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES);
        let records = db.keyspace(KS_RECORDS, opts)?;
        let changes = db.keyspace(KS_CHANGES, opts)?;
        let changes_by_tenant = db.keyspace(KS_CHANGES_BY_TENANT, opts)?;
        let meta = db.keyspace(KS_META, KeyspaceCreateOptions::default)?;

        let meta_rev = match meta.get(META_REVISION)? {
            None => 0,
            Some(v) => decode_u64(&v).ok_or_else(|| StoreError::Corrupt {
                key: format!("{KS_META}/revision"),
                reason: format!("expected 8 bytes, found {}", v.len()),
            })?,
        };
        let log_rev = match changes.last_key_value() {
            None => 0,
            Some(guard) => {
                let k = guard.key()?;
                decode_u64(&k).ok_or_else(|| StoreError::Corrupt {
                    key: format!("{KS_CHANGES}/{}", escape(&k)),
                    reason: "change log key is not an 8-byte revision".to_owned(),
                })?
            }
        };
        if meta_rev != log_rev {
            // Both are written in the same batch, so this should never happen.
            // Never hand out a revision twice: continue from the larger one.
            tracing::warn!(meta_rev, log_rev, "store: revision counter and change log disagree");
        }
        let revision = meta_rev.max(log_rev);
        tracing::debug!(dir = %dir.display(), revision, ?durability, "store opened");

        Ok(Store {
            db,
            records,
            changes,
            changes_by_tenant,
            meta,
            durability,
            commit_lock: Mutex::new(revision),
            revision: AtomicU64::new(revision),
        })
    }

    /// The durability mode the store was opened with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The last committed revision (0 for an empty store). Revisions are global
    /// across tenants and strictly increasing.
    ///
    /// Updated right after a commit's data becomes visible, so a read started
    /// after calling this sees at least this revision's data.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Every record of every tenant: `(tenant, key, value)`, in key order per
    /// tenant (tenants in byte order). One sequential scan of a consistent snapshot.
    pub fn scan_all(&self) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        Ok(self.scan_all_with_revision()?.1)
    }

    /// The last revision as `snapshot` sees it (0 for a new store).
    fn snapshot_revision(&self, snapshot: &fjall::Snapshot) -> Result<u64, StoreError> {
        match snapshot.get(&self.meta, META_REVISION)? {
            None => Ok(0),
            Some(v) => decode_u64(&v).ok_or_else(|| StoreError::Corrupt {
                key: format!("{KS_META}/revision"),
                reason: format!("expected 8 bytes, found {}", v.len()),
            }),
        }
    }

    /// Like [`Store::scan_all`], but also returns the revision the scan reflects
    /// (read from the same snapshot), so a caller can rebuild an index and then
    /// follow [`Store::changes`] from exactly that revision.
    pub fn scan_all_with_revision(&self) -> Result<(u64, Vec<TenantRecord>), StoreError> {
        let snapshot = self.db.snapshot();
        let revision = self.snapshot_revision(&snapshot)?;
        let mut out = Vec::with_capacity(self.records.approximate_len());
        // Reuse the tenant string while consecutive rows share the tenant.
        let mut last_tenant: Option<String> = None;
        for guard in snapshot.iter(&self.records) {
            let (k, v) = guard.into_inner()?;
            let (tenant_bytes, key) = split_record_key(&k)?;
            let tenant = match &last_tenant {
                Some(t) if t.as_bytes() == tenant_bytes => t.clone(),
                _ => {
                    let t = utf8(tenant_bytes, &k)?;
                    last_tenant = Some(t.clone());
                    t
                }
            };
            out.push((tenant, utf8(key, &k)?, v.to_vec()));
        }
        Ok((revision, out))
    }

    /// Records of one tenant whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, tenant: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        validate_tenant(tenant)?;
        let scan_prefix = record_key(tenant, prefix);
        let skip = tenant.len() + 1;
        let mut out = Vec::new();
        // A snapshot, so a concurrent commit is seen whole or not at all
        // (a plain keyspace iterator can observe a batch being applied).
        let snapshot = self.db.snapshot();
        for guard in snapshot.prefix(&self.records, &scan_prefix) {
            let (k, v) = guard.into_inner()?;
            let key = k.get(skip..).ok_or_else(|| corrupt(&k, "key shorter than its tenant prefix"))?;
            out.push((utf8(key, &k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// The value of one record, if it exists.
    pub fn get(&self, tenant: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_tenant(tenant)?;
        let k = record_key(tenant, key);
        if k.len() > MAX_KEY_LEN {
            return Ok(None); // could never have been stored
        }
        Ok(self.records.get(&k)?.map(|v| v.to_vec()))
    }

    /// Applies `ops` for `tenant` atomically in one fjall write batch that also
    /// writes the new revision counter and the [`Change`] record (plus its
    /// per-tenant index entry), then — with [`Durability::Sync`] — fsyncs the
    /// journal before returning. Returns the new revision.
    ///
    /// Commits are serialized, so revisions are assigned in order. An empty
    /// `ops` list still gets a revision. If several ops touch the same key, the
    /// last one wins. Nothing is half-applied.
    pub fn commit(&self, tenant: &str, actor: &str, at_unix_ms: u64, ops: &[Op]) -> Result<u64, StoreError> {
        self.commit_batch(&Commit { tenant, actor, at_unix_ms, ops, expect_head: None })
    }

    /// [`Store::commit`] with [`Commit::expect_head`] checked under the commit lock.
    fn commit_batch(&self, c: &Commit<'_>) -> Result<u64, StoreError> {
        let Commit { tenant, actor, at_unix_ms, ops, expect_head } = *c;
        validate_tenant(tenant)?;
        // Validate everything before taking the lock / touching the database.
        for op in ops {
            let klen = tenant.len() + 1 + op.key().len();
            if klen > MAX_KEY_LEN {
                return Err(StoreError::Precondition(format!(
                    "record key too long ({klen} bytes with tenant prefix, max {MAX_KEY_LEN})"
                )));
            }
            if let Op::Put { value, .. } = op {
                if value.len() > MAX_VALUE_LEN {
                    return Err(StoreError::Precondition(format!(
                        "record value too large ({} bytes, max {MAX_VALUE_LEN})",
                        value.len()
                    )));
                }
            }
        }
        // Last op per key wins; one batch item per key keeps fjall's view of
        // the batch unambiguous (all items of a batch share one seqno).
        let mut last_op: HashMap<&str, usize> = HashMap::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            last_op.insert(op.key(), i);
        }

        let mut last_rev = self
            .commit_lock
            .lock()
            .map_err(|_| StoreError::Storage("commit lock poisoned by an earlier panic".to_owned()))?;
        if let Some(expected) = expect_head {
            let found = self.tenant_head(&self.db.snapshot(), tenant)?;
            if found != expected {
                return Err(StoreError::Conflict { tenant: tenant.to_owned(), expected, found });
            }
        }
        let revision =
            last_rev.checked_add(1).ok_or_else(|| StoreError::Storage("revision counter overflow".to_owned()))?;

        let change =
            Change { revision, tenant: tenant.to_owned(), at_unix_ms, actor: actor.to_owned(), ops: ops.to_vec() };
        let change_json =
            serde_json::to_vec(&change).map_err(|e| StoreError::Storage(format!("encoding change record: {e}")))?;
        if change_json.len() > MAX_VALUE_LEN {
            return Err(StoreError::Precondition(format!(
                "change too large ({} bytes encoded, max {MAX_VALUE_LEN})",
                change_json.len()
            )));
        }

        let mode = match self.durability {
            Durability::Sync => PersistMode::SyncAll,
            Durability::Buffered => PersistMode::Buffer,
        };
        let mut batch = self.db.batch().durability(Some(mode));
        for (i, op) in ops.iter().enumerate() {
            if last_op.get(op.key()) != Some(&i) {
                continue;
            }
            match op {
                Op::Put { key, value } => batch.insert(&self.records, record_key(tenant, key), value.as_slice()),
                Op::Delete { key } => batch.remove(&self.records, record_key(tenant, key)),
            }
        }
        let rev_bytes = revision.to_be_bytes();
        batch.insert(&self.changes, rev_bytes, change_json);
        batch.insert(&self.changes_by_tenant, tenant_rev_key(tenant, revision), b"");
        batch.insert(&self.meta, META_REVISION, rev_bytes);
        batch.commit()?;

        *last_rev = revision;
        self.revision.store(revision, Ordering::Release);
        drop(last_rev);
        tracing::trace!(tenant, revision, ops = ops.len(), "store: committed");
        Ok(revision)
    }

    /// The last revision that committed to `tenant` in `snapshot` (0: none).
    fn tenant_head(&self, snapshot: &fjall::Snapshot, tenant: &str) -> Result<u64, StoreError> {
        let start = tenant_rev_key(tenant, 0);
        let end = tenant_end(tenant);
        match snapshot.range(&self.changes_by_tenant, start..end).next_back() {
            None => Ok(0),
            Some(guard) => {
                let k = guard.key()?;
                k.get(tenant.len() + 1..)
                    .and_then(decode_u64)
                    .ok_or_else(|| corrupt(&k, "tenant change index key does not end in an 8-byte revision"))
            }
        }
    }

    /// Changes of every tenant with revision > `since`, oldest first, at most `limit`.
    pub fn changes_after(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let Some(start_rev) = since.checked_add(1) else {
            return Ok(Vec::new());
        };
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        for guard in snapshot.range(&self.changes, start_rev.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = guard.into_inner()?;
            let rev = decode_u64(&k).ok_or_else(|| corrupt(&k, "change log key is not an 8-byte revision"))?;
            let change: Change = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("{KS_CHANGES}/{rev}"),
                reason: format!("undecodable change record: {e}"),
            })?;
            out.push(change);
        }
        Ok(out)
    }

    /// Every record with the revision it reflects and each tenant's head, from one snapshot.
    fn snapshot_load(&self, tenants: Option<&[String]>) -> Result<Snapshot, StoreError> {
        let snapshot = self.db.snapshot();
        let revision = self.snapshot_revision(&snapshot)?;
        let mut records = Vec::with_capacity(self.records.approximate_len());
        let mut last_tenant: Option<String> = None;
        let wanted = |t: &[u8]| tenants.is_none_or(|ts| ts.iter().any(|w| w.as_bytes() == t));
        for guard in snapshot.iter(&self.records) {
            let (k, v) = guard.into_inner()?;
            let (tenant_bytes, key) = split_record_key(&k)?;
            if !wanted(tenant_bytes) {
                continue;
            }
            let tenant = match &last_tenant {
                Some(t) if t.as_bytes() == tenant_bytes => t.clone(),
                _ => {
                    let t = utf8(tenant_bytes, &k)?;
                    last_tenant = Some(t.clone());
                    t
                }
            };
            records.push((tenant, utf8(key, &k)?, v.to_vec()));
        }
        let mut heads = std::collections::BTreeMap::new();
        for (t, _, _) in &records {
            if !heads.contains_key(t) {
                heads.insert(t.clone(), self.tenant_head(&snapshot, t)?);
            }
        }
        Ok(Snapshot { revision, records, heads })
    }

    /// Changes of `tenant` with revision > `since`, oldest first, at most `limit`.
    pub fn changes(&self, tenant: &str, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        validate_tenant(tenant)?;
        let Some(start_rev) = since.checked_add(1) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = tenant_rev_key(tenant, start_rev);
        let end = tenant_end(tenant);
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        for guard in snapshot.range(&self.changes_by_tenant, start..end) {
            if out.len() >= limit {
                break;
            }
            let k = guard.key()?;
            let rev = k
                .get(tenant.len() + 1..)
                .and_then(decode_u64)
                .ok_or_else(|| corrupt(&k, "tenant change index key does not end in an 8-byte revision"))?;
            let change_key = rev.to_be_bytes();
            let bytes = snapshot.get(&self.changes, change_key)?.ok_or_else(|| StoreError::Corrupt {
                key: format!("{KS_CHANGES}/{rev}"),
                reason: "indexed change record is missing".to_owned(),
            })?;
            let change: Change = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                key: format!("{KS_CHANGES}/{rev}"),
                reason: format!("undecodable change record: {e}"),
            })?;
            if change.revision != rev || change.tenant != tenant {
                return Err(StoreError::Corrupt {
                    key: format!("{KS_CHANGES}/{rev}"),
                    reason: format!(
                        "change record is for tenant `{}` revision {}, index says `{tenant}` revision {rev}",
                        change.tenant, change.revision
                    ),
                });
            }
            out.push(change);
        }
        Ok(out)
    }

    /// Tenants that have at least one record, in byte order.
    ///
    /// Seeks past each tenant's records instead of reading them all.
    pub fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let snapshot = self.db.snapshot();
        let mut out = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        loop {
            let next = if from.is_empty() {
                snapshot.first_key_value(&self.records)
            } else {
                snapshot.range(&self.records, from.as_slice()..).next()
            };
            let Some(guard) = next else { break };
            let k = guard.key()?;
            let (tenant_bytes, _) = split_record_key(&k)?;
            out.push(utf8(tenant_bytes, &k)?);
            // Every key of this tenant is < tenant 0x01; every later tenant's is >=.
            from = tenant_bytes.to_vec();
            from.push(SEP + 1);
        }
        Ok(out)
    }

    /// Flushes memtables to disk tables and syncs the journal, so that
    /// reopening does not replay the journal. Call on clean shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        // Hold the commit lock so no commit lands between the rotation and the sync.
        let _guard = self
            .commit_lock
            .lock()
            .map_err(|_| StoreError::Storage("commit lock poisoned by an earlier panic".to_owned()))?;
        self.db.persist(PersistMode::SyncAll)?;
        let keyspaces = [&self.records, &self.changes, &self.changes_by_tenant, &self.meta];
        for ks in keyspaces {
            ks.rotate_memtable()?;
        }
        // Memtables are written out by fjall's background workers; wait for them.
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        while keyspaces.iter().any(|ks| ks.sealed_memtable_count() > 0) {
            if Instant::now() >= deadline {
                return Err(StoreError::Storage(format!(
                    "memtable flush did not finish within {}s",
                    FLUSH_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.db.persist(PersistMode::SyncAll)?;
        tracing::debug!(revision = self.revision(), "store flushed");
        Ok(())
    }
}

impl Datastore for Store {
    fn kind(&self) -> &'static str {
        "fjall"
    }

    /// One process owns the directory (fjall locks it).
    fn shared(&self) -> bool {
        false
    }

    fn commit(&self, c: &Commit<'_>) -> Result<u64, StoreError> {
        self.commit_batch(c)
    }

    fn head(&self) -> Result<u64, StoreError> {
        Ok(self.revision())
    }

    fn load(&self, tenants: Option<&[String]>) -> Result<Snapshot, StoreError> {
        self.snapshot_load(tenants)
    }

    fn tenant_changes(&self, tenant: &str, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changes(tenant, since, limit)
    }

    fn changes_after(&self, since: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        Store::changes_after(self, since, limit)
    }

    /// The embedded store keeps its whole change log (it is also the audit
    /// log of a single node); retention applies to shared datastores.
    fn prune_changes(&self, _before_unix_ms: u64) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Store::flush(self)
    }
}

fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    if tenant.is_empty() {
        return Err(StoreError::Precondition("tenant name must not be empty".to_owned()));
    }
    if tenant.as_bytes().contains(&SEP) {
        return Err(StoreError::Precondition("tenant name must not contain a NUL (0x00) byte".to_owned()));
    }
    // Leave room for the separator and an 8-byte revision in index keys.
    if tenant.len() + 1 + 8 > MAX_KEY_LEN {
        return Err(StoreError::Precondition(format!("tenant name too long ({} bytes)", tenant.len())));
    }
    Ok(())
}

/// `tenant 0x00 key`
fn record_key(tenant: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 1 + key.len());
    k.extend_from_slice(tenant.as_bytes());
    k.push(SEP);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `tenant 0x00 revision(BE)`
fn tenant_rev_key(tenant: &str, revision: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 9);
    k.extend_from_slice(tenant.as_bytes());
    k.push(SEP);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// `tenant 0x01`: exclusive upper bound of every `tenant 0x00 ...` key.
fn tenant_end(tenant: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(tenant.len() + 1);
    k.extend_from_slice(tenant.as_bytes());
    k.push(SEP + 1);
    k
}

/// Splits `tenant 0x00 key` at the first 0x00.
fn split_record_key(k: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let pos = k.iter().position(|&b| b == SEP).ok_or_else(|| corrupt(k, "record key has no tenant separator"))?;
    let (tenant, rest) = k.split_at(pos);
    if tenant.is_empty() {
        return Err(corrupt(k, "record key has an empty tenant"));
    }
    Ok((tenant, rest.get(1..).unwrap_or_default()))
}

fn decode_u64(b: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = b.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

fn utf8(b: &[u8], full_key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(b.to_vec()).map_err(|_| corrupt(full_key, "not valid UTF-8"))
}

fn escape(k: &[u8]) -> String {
    k.escape_ascii().to_string()
}

fn corrupt(k: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt { key: escape(k), reason: reason.to_owned() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn put(key: &str, value: &[u8]) -> Op {
        Op::Put { key: key.to_owned(), value: value.to_vec() }
    }
    fn del(key: &str) -> Op {
        Op::Delete { key: key.to_owned() }
    }

    #[test]
    fn store_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
        assert_send_sync::<Arc<Store>>();
    }

    #[test]
    fn empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        assert_eq!(s.revision(), 0);
        assert!(s.scan_all().unwrap().is_empty());
        assert!(s.tenants().unwrap().is_empty());
        assert!(s.changes("t", 0, 10).unwrap().is_empty());
        assert_eq!(s.get("t", "k").unwrap(), None);
    }

    #[test]
    fn commit_and_reopen_sees_records_and_revision() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), Durability::Sync).unwrap();
            assert_eq!(s.commit("acme", "alice", 1000, &[put("a", b"1"), put("b", b"2")]).unwrap(), 1);
            assert_eq!(s.commit("beta", "bob", 1001, &[put("a", b"x")]).unwrap(), 2);
            assert_eq!(s.get("acme", "a").unwrap(), Some(b"1".to_vec()));
            assert_eq!(s.revision(), 2);
            // no flush: recovery must come from the journal
        }
        {
            let s = Store::open(dir.path(), Durability::Sync).unwrap();
            assert_eq!(s.revision(), 2);
            assert_eq!(
                s.scan_all().unwrap(),
                vec![
                    ("acme".to_owned(), "a".to_owned(), b"1".to_vec()),
                    ("acme".to_owned(), "b".to_owned(), b"2".to_vec()),
                    ("beta".to_owned(), "a".to_owned(), b"x".to_vec()),
                ]
            );
            assert_eq!(s.scan_all_with_revision().unwrap().0, 2);
            assert_eq!(s.commit("acme", "alice", 1002, &[]).unwrap(), 3);
            s.flush().unwrap();
        }
        {
            let s = Store::open(dir.path(), Durability::Buffered).unwrap();
            assert_eq!(s.revision(), 3);
            assert_eq!(s.get("beta", "a").unwrap(), Some(b"x".to_vec()));
            assert_eq!(s.commit("acme", "alice", 1003, &[put("c", b"3")]).unwrap(), 4);
        }
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        assert_eq!(s.revision(), 4);
        assert_eq!(s.get("acme", "c").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn delete_removes_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), Durability::Sync).unwrap();
            s.commit("t", "a", 1, &[put("k1", b"v1"), put("k2", b"v2")]).unwrap();
            s.commit("t", "a", 2, &[del("k1"), del("missing")]).unwrap();
            assert_eq!(s.get("t", "k1").unwrap(), None);
            assert_eq!(s.get("t", "k2").unwrap(), Some(b"v2".to_vec()));
            s.commit("t", "a", 3, &[del("k2")]).unwrap();
            assert!(s.tenants().unwrap().is_empty());
            s.commit("t", "a", 4, &[put("k3", b"v3")]).unwrap();
        }
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        assert_eq!(s.scan_all().unwrap(), vec![("t".to_owned(), "k3".to_owned(), b"v3".to_vec())]);
    }

    #[test]
    fn last_op_per_key_wins_within_a_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        s.commit("t", "a", 1, &[put("k", b"1"), put("k", b"2")]).unwrap();
        assert_eq!(s.get("t", "k").unwrap(), Some(b"2".to_vec()));
        s.commit("t", "a", 2, &[del("k"), put("k", b"3")]).unwrap();
        assert_eq!(s.get("t", "k").unwrap(), Some(b"3".to_vec()));
        s.commit("t", "a", 3, &[put("k", b"4"), del("k")]).unwrap();
        assert_eq!(s.get("t", "k").unwrap(), None);
        // the change log keeps the ops as given
        let c = s.changes("t", 2, 10).unwrap();
        assert_eq!(c[0].ops, vec![put("k", b"4"), del("k")]);
    }

    #[test]
    fn revisions_strictly_increase_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0;
        for round in 0..3 {
            let s = Store::open(dir.path(), Durability::Sync).unwrap();
            assert_eq!(s.revision(), last);
            for i in 0..5 {
                let tenant = if i % 2 == 0 { "a" } else { "b" };
                let r = s.commit(tenant, "x", round * 10 + i, &[put("k", &[i as u8])]).unwrap();
                assert_eq!(r, last + 1);
                assert_eq!(s.revision(), r);
                last = r;
            }
            if round == 1 {
                s.flush().unwrap();
            }
        }
        assert_eq!(last, 15);
    }

    #[test]
    fn concurrent_commits_get_distinct_ordered_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open(dir.path(), Durability::Buffered).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| s.commit(&format!("t{t}"), "x", i, &[put(&format!("k{i}"), b"v")]).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (1..=100).collect::<Vec<_>>());
        assert_eq!(s.revision(), 100);
        for t in 0..4 {
            let c = s.changes(&format!("t{t}"), 0, 1000).unwrap();
            assert_eq!(c.len(), 25);
            assert!(c.windows(2).all(|w| w[0].revision < w[1].revision));
        }
    }

    #[test]
    fn changes_filtered_by_tenant_and_since() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), Durability::Sync).unwrap();
            s.commit("a", "alice", 10, &[put("k1", b"1")]).unwrap(); // 1
            s.commit("b", "bob", 11, &[put("k1", b"2")]).unwrap(); // 2
            s.commit("a", "alice", 12, &[del("k1")]).unwrap(); // 3
            s.commit("ab", "carol", 13, &[]).unwrap(); // 4 (tenant sharing a prefix with "a")
            s.commit("a", "dave", 14, &[put("k2", b"3")]).unwrap(); // 5
        }
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        let a = s.changes("a", 0, 100).unwrap();
        assert_eq!(a.iter().map(|c| c.revision).collect::<Vec<_>>(), vec![1, 3, 5]);
        assert_eq!(
            a[0],
            Change {
                revision: 1,
                tenant: "a".into(),
                at_unix_ms: 10,
                actor: "alice".into(),
                ops: vec![put("k1", b"1")]
            }
        );
        assert_eq!(a[1].ops, vec![del("k1")]);
        assert_eq!(s.changes("a", 1, 100).unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), vec![3, 5]);
        assert_eq!(s.changes("a", 3, 100).unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), vec![5]);
        assert!(s.changes("a", 5, 100).unwrap().is_empty());
        assert!(s.changes("a", u64::MAX, 100).unwrap().is_empty());
        assert_eq!(s.changes("a", 0, 2).unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), vec![1, 3]);
        assert!(s.changes("a", 0, 0).unwrap().is_empty());
        assert_eq!(s.changes("b", 0, 100).unwrap().iter().map(|c| c.revision).collect::<Vec<_>>(), vec![2]);
        let ab = s.changes("ab", 0, 100).unwrap();
        assert_eq!(ab.len(), 1);
        assert_eq!((ab[0].revision, ab[0].actor.as_str(), ab[0].ops.len()), (4, "carol", 0));
        assert!(s.changes("nobody", 0, 100).unwrap().is_empty());
    }

    #[test]
    fn scan_prefix_and_tenants() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        s.commit("t", "x", 1, &[put("user:1", b"a"), put("user:2", b"b"), put("group:1", b"c"), put("", b"empty")])
            .unwrap();
        s.commit("t2", "x", 2, &[put("user:9", b"z")]).unwrap();
        s.commit("s", "x", 3, &[put("user:0", b"y")]).unwrap();
        s.commit("u", "x", 4, &[]).unwrap(); // no records: not a tenant
        assert_eq!(
            s.scan_prefix("t", "user:").unwrap(),
            vec![("user:1".to_owned(), b"a".to_vec()), ("user:2".to_owned(), b"b".to_vec())]
        );
        assert_eq!(s.scan_prefix("t", "group:").unwrap(), vec![("group:1".to_owned(), b"c".to_vec())]);
        assert_eq!(s.scan_prefix("t", "").unwrap().len(), 4);
        assert_eq!(s.scan_prefix("t", "").unwrap()[0], ("".to_owned(), b"empty".to_vec()));
        assert!(s.scan_prefix("t", "nope").unwrap().is_empty());
        assert!(s.scan_prefix("nobody", "").unwrap().is_empty());
        assert_eq!(s.get("t", "").unwrap(), Some(b"empty".to_vec()));
        assert_eq!(s.tenants().unwrap(), vec!["s".to_owned(), "t".to_owned(), "t2".to_owned()]);
    }

    #[test]
    fn commit_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let ops: Vec<Op> = (0..500).map(|i| put(&format!("k{i:04}"), format!("v{i}").as_bytes())).collect();
        {
            let s = Arc::new(Store::open(dir.path(), Durability::Buffered).unwrap());
            s.commit("t", "x", 1, &ops[..10]).unwrap();
            // A reader racing a large commit sees either none or all of its ops.
            let reader = {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let n = s.scan_prefix("t", "k").unwrap().len();
                        assert!(n == 10 || n == 500, "saw a partial batch: {n} records");
                        let (rev, all) = s.scan_all_with_revision().unwrap();
                        assert_eq!(all.len(), if rev == 1 { 10 } else { 500 });
                    }
                })
            };
            s.commit("t", "x", 2, &ops).unwrap();
            reader.join().unwrap();
        }
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        let recs = s.scan_prefix("t", "").unwrap();
        assert_eq!(recs.len(), 500);
        assert_eq!(s.changes("t", 1, 10).unwrap()[0].ops.len(), 500);
        // A rejected commit writes nothing at all, not even a revision.
        let too_long = "x".repeat(MAX_KEY_LEN);
        let err = s.commit("t", "x", 3, &[del("k0000"), put(&too_long, b"v")]).unwrap_err();
        assert!(matches!(err, StoreError::Precondition(_)), "{err}");
        assert_eq!(s.revision(), 2);
        assert!(s.get("t", "k0000").unwrap().is_some());
        assert_eq!(s.commit("t", "x", 4, &[]).unwrap(), 3);
    }

    #[test]
    fn invalid_tenants_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        for bad in ["a\0b", "\0", ""] {
            assert!(matches!(s.commit(bad, "x", 1, &[put("k", b"v")]), Err(StoreError::Precondition(_))));
            assert!(matches!(s.get(bad, "k"), Err(StoreError::Precondition(_))));
            assert!(matches!(s.scan_prefix(bad, ""), Err(StoreError::Precondition(_))));
            assert!(matches!(s.changes(bad, 0, 10), Err(StoreError::Precondition(_))));
        }
        assert_eq!(s.revision(), 0);
        assert!(s.scan_all().unwrap().is_empty());
        // NUL inside record keys is fine.
        s.commit("t", "x", 1, &[put("a\0b", b"v")]).unwrap();
        assert_eq!(s.scan_all().unwrap(), vec![("t".to_owned(), "a\0b".to_owned(), b"v".to_vec())]);
        assert_eq!(s.get("t", "a\0b").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn second_open_of_same_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path(), Durability::Sync).unwrap();
        assert!(matches!(Store::open(dir.path(), Durability::Sync), Err(StoreError::Storage(_))));
    }

    #[test]
    fn scan_all_many_records() {
        let dir = tempfile::tempdir().unwrap();
        let n_tenants = 5;
        let per_commit = 2000;
        {
            let s = Store::open(dir.path(), Durability::Buffered).unwrap();
            for t in 0..n_tenants {
                for c in 0..5 {
                    let ops: Vec<Op> =
                        (0..per_commit).map(|i| put(&format!("obj:{c}:{i:05}"), &[t as u8; 16])).collect();
                    s.commit(&format!("tenant{t}"), "x", 0, &ops).unwrap();
                }
            }
            s.flush().unwrap();
        }
        let s = Store::open(dir.path(), Durability::Sync).unwrap();
        let start = Instant::now();
        let all = s.scan_all().unwrap();
        let took = start.elapsed();
        assert_eq!(all.len(), n_tenants * 5 * per_commit);
        assert!(all.windows(2).all(|w| (&w[0].0, &w[0].1) < (&w[1].0, &w[1].1)));
        assert_eq!(s.tenants().unwrap().len(), n_tenants);
        eprintln!("scan_all of {} records took {took:?}", all.len());
    }
}
