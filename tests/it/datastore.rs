//! One suite, every engine: the [`Datastore`] contract checked against the
//! embedded fjall store and against a real PostgreSQL started by the test
//! ([`super::pg_support`]), as SpiceDB's `pkg/datastore/test` does.

use std::collections::BTreeMap;
use std::sync::Arc;

use holdfast::store::{Commit, Datastore, Durability, Op, PgStore, Snapshot, Store, StoreError};

use super::pg_support::PgCluster;

type Another = dyn Fn(&Arc<dyn Datastore>) -> Arc<dyn Datastore>;

/// A datastore and what keeps it alive; [`Backend::reopen`] opens it again.
pub struct Backend {
    pub store: Arc<dyn Datastore>,
    reopen: Box<dyn Fn() -> Arc<dyn Datastore>>,
    /// Another handle on the same data: for PostgreSQL its own connections
    /// (as another replica has), for fjall the same store.
    another: Box<Another>,
    _guard: Box<dyn std::any::Any>,
}

impl Backend {
    pub fn fjall() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let store: Arc<dyn Datastore> = Arc::new(Store::open(&path, Durability::Sync).unwrap());
        Backend {
            store,
            reopen: Box::new(move || Arc::new(Store::open(&path, Durability::Sync).unwrap())),
            another: Box::new(Arc::clone),
            _guard: Box::new(dir),
        }
    }

    pub fn postgres(test: &str) -> Option<Backend> {
        let cluster = PgCluster::start(test)?;
        let url = cluster.fresh_db();
        let store: Arc<dyn Datastore> = Arc::new(PgStore::open(&url, true).unwrap());
        let url2 = url.clone();
        Some(Backend {
            store,
            reopen: Box::new(move || Arc::new(PgStore::open(&url, false).unwrap())),
            another: Box::new(move |_| Arc::new(PgStore::open(&url2, false).unwrap())),
            _guard: Box::new(cluster),
        })
    }

    /// Closes the datastore and opens it again (fjall: the same directory).
    fn reopen(&mut self) {
        // fjall locks its directory: the old handle must go first.
        self.store = Arc::new(Dummy);
        self.store = (self.reopen)();
    }
}

/// Stands in while a store is reopened.
#[derive(Debug)]
struct Dummy;
impl Datastore for Dummy {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn shared(&self) -> bool {
        false
    }
    fn commit(&self, _: &Commit<'_>) -> Result<u64, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn head(&self) -> Result<u64, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn load(&self, _: Option<&[String]>) -> Result<Snapshot, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn tenant_changes(&self, _: &str, _: u64, _: usize) -> Result<Vec<holdfast::store::Change>, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn changes_after(&self, _: u64, _: usize) -> Result<Vec<holdfast::store::Change>, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn prune_changes(&self, _: u64) -> Result<u64, StoreError> {
        Err(StoreError::Storage("closed".into()))
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn put(key: &str, value: &[u8]) -> Op {
    Op::Put { key: key.to_owned(), value: value.to_vec() }
}
fn del(key: &str) -> Op {
    Op::Delete { key: key.to_owned() }
}
fn commit(s: &dyn Datastore, tenant: &str, ops: &[Op]) -> Result<u64, StoreError> {
    s.commit(&Commit { tenant, actor: "test", at_unix_ms: 1000, ops, expect_head: None })
}
fn revs(cs: &[holdfast::store::Change]) -> Vec<u64> {
    cs.iter().map(|c| c.revision).collect()
}

fn empty_store_has_revision_zero(b: Backend) {
    let s = &*b.store;
    assert_eq!(s.head().unwrap(), 0);
    assert_eq!(s.load(None).unwrap(), Snapshot::default());
    assert!(s.changes_after(0, 10).unwrap().is_empty());
    assert!(s.tenant_changes("t", 0, 10).unwrap().is_empty());
}

fn commits_get_revisions_from_one_and_survive_a_reopen(mut b: Backend) {
    {
        let s = &*b.store;
        assert_eq!(commit(s, "acme", &[put("a", b"1"), put("b", b"2")]).unwrap(), 1);
        assert_eq!(commit(s, "beta", &[put("a", b"x")]).unwrap(), 2);
        assert_eq!(commit(s, "acme", &[]).unwrap(), 3, "an empty batch still takes a revision");
        assert_eq!(s.head().unwrap(), 3);
    }
    b.reopen();
    let s = &*b.store;
    let snap = s.load(None).unwrap();
    assert_eq!(snap.revision, 3);
    assert_eq!(
        snap.records,
        vec![
            ("acme".to_owned(), "a".to_owned(), b"1".to_vec()),
            ("acme".to_owned(), "b".to_owned(), b"2".to_vec()),
            ("beta".to_owned(), "a".to_owned(), b"x".to_vec()),
        ]
    );
    assert_eq!(snap.heads, BTreeMap::from([("acme".to_owned(), 3), ("beta".to_owned(), 2)]));
    assert_eq!(commit(s, "acme", &[put("c", b"3")]).unwrap(), 4);
}

fn last_op_per_key_wins_and_deletes_remove(b: Backend) {
    let s = &*b.store;
    commit(s, "t", &[put("k", b"1"), put("k", b"2"), put("gone", b"x")]).unwrap();
    commit(s, "t", &[del("gone"), del("missing"), del("k"), put("k", b"3"), put("nul\0key", b"z")]).unwrap();
    commit(s, "t", &[put("j", b"4"), del("j")]).unwrap();
    let snap = s.load(None).unwrap();
    assert_eq!(
        snap.records,
        vec![("t".to_owned(), "k".to_owned(), b"3".to_vec()), ("t".to_owned(), "nul\0key".to_owned(), b"z".to_vec())]
    );
    // The change log keeps the ops as given.
    assert_eq!(s.tenant_changes("t", 2, 10).unwrap()[0].ops, vec![put("j", b"4"), del("j")]);
}

fn change_log_by_tenant_and_across_tenants(b: Backend) {
    let s = &*b.store;
    commit(s, "a", &[put("k1", b"1")]).unwrap(); // 1
    commit(s, "b", &[put("k1", b"2")]).unwrap(); // 2
    commit(s, "a", &[del("k1")]).unwrap(); // 3
    commit(s, "ab", &[]).unwrap(); // 4: a tenant sharing a prefix with "a"
    commit(s, "a", &[put("k2", b"3")]).unwrap(); // 5
    let a = s.tenant_changes("a", 0, 100).unwrap();
    assert_eq!(revs(&a), vec![1, 3, 5]);
    assert_eq!((a[0].tenant.as_str(), a[0].actor.as_str(), a[0].at_unix_ms), ("a", "test", 1000));
    assert_eq!(a[1].ops, vec![del("k1")]);
    assert_eq!(revs(&s.tenant_changes("a", 1, 100).unwrap()), vec![3, 5]);
    assert_eq!(revs(&s.tenant_changes("a", 0, 2).unwrap()), vec![1, 3]);
    assert!(s.tenant_changes("a", 5, 100).unwrap().is_empty());
    assert!(s.tenant_changes("a", u64::MAX, 100).unwrap().is_empty());
    assert!(s.tenant_changes("a", 0, 0).unwrap().is_empty());
    assert!(s.tenant_changes("nobody", 0, 100).unwrap().is_empty());
    assert_eq!(revs(&s.changes_after(0, 100).unwrap()), vec![1, 2, 3, 4, 5]);
    assert_eq!(revs(&s.changes_after(2, 2).unwrap()), vec![3, 4]);
    assert_eq!(s.changes_after(3, 1).unwrap()[0].tenant, "ab");
}

fn load_can_be_limited_to_some_tenants(b: Backend) {
    let s = &*b.store;
    commit(s, "a", &[put("k", b"1")]).unwrap();
    commit(s, "b", &[put("k", b"2")]).unwrap();
    commit(s, "c", &[put("k", b"3")]).unwrap();
    let snap = s.load(Some(&["a".to_owned(), "c".to_owned()])).unwrap();
    assert_eq!(snap.revision, 3);
    assert_eq!(snap.records.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), vec!["a", "c"]);
    assert_eq!(snap.heads, BTreeMap::from([("a".to_owned(), 1), ("c".to_owned(), 3)]));
}

fn expect_head_is_checked_with_the_write(b: Backend) {
    let s = &*b.store;
    let c = |ops: &[Op], expect| s.commit(&Commit { tenant: "t", actor: "x", at_unix_ms: 1, ops, expect_head: expect });
    assert_eq!(c(&[put("k", b"1")], Some(0)).unwrap(), 1);
    commit(s, "other", &[put("k", b"o")]).unwrap(); // 2: another tenant moves nothing
                                                    // Computed from the state before revision 1: refused, nothing written.
    match c(&[put("k", b"stale")], Some(0)) {
        Err(StoreError::Conflict { tenant, expected: 0, found: 1 }) => assert_eq!(tenant, "t"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.head().unwrap(), 2, "a refused commit takes no revision");
    assert!(s.load(None).unwrap().records.contains(&("t".to_owned(), "k".to_owned(), b"1".to_vec())));
    assert_eq!(c(&[put("k", b"2")], Some(1)).unwrap(), 3);
    assert_eq!(revs(&s.changes_after(0, 10).unwrap()), vec![1, 2, 3], "no gap where the conflict was");
}

/// `commit_after` hands the batch's author what other writers committed to
/// the tenant since its `expect_head` (shared datastores; none for the
/// single-process one), inside the commit; a refusal writes nothing.
fn commit_after_hands_over_what_others_committed(b: Backend) {
    let s = &*b.store;
    let other = (b.another)(&b.store);
    commit(s, "t", &[put("k", b"1")]).unwrap(); // 1
    let mut seen = Vec::new();
    let c = |expect| Commit { tenant: "t", actor: "x", at_unix_ms: 1, ops: &[], expect_head: Some(expect) };
    let r = s
        .commit_after(&c(1), &mut |missed| {
            seen.push(revs(&missed));
            Ok(vec![put("k", b"2")])
        })
        .unwrap();
    assert_eq!((r, seen.clone()), (2, vec![vec![]]));
    commit(&*other, "t", &[put("j", b"x")]).unwrap(); // 3, by "another replica"
    seen.clear();
    let r = s
        .commit_after(&c(2), &mut |missed| {
            seen.push(revs(&missed));
            Ok(vec![put("k", b"4")])
        })
        .unwrap();
    let want: Vec<u64> = if s.shared() { vec![3] } else { vec![] };
    assert_eq!((r, seen), (4, vec![want]));
    assert!(matches!(s.commit_after(&c(4), &mut |_| Err(StoreError::Aborted)), Err(StoreError::Aborted)));
    assert_eq!(s.head().unwrap(), 4, "a refused batch takes no revision");
    let snap = s.load(None).unwrap();
    assert!(snap.records.contains(&("t".to_owned(), "k".to_owned(), b"4".to_vec())), "{snap:?}");
}

fn invalid_tenants_are_rejected(b: Backend) {
    let s = &*b.store;
    for bad in ["a\0b", ""] {
        assert!(matches!(commit(s, bad, &[put("k", b"v")]), Err(StoreError::Precondition(_))), "{bad:?}");
        assert!(matches!(s.tenant_changes(bad, 0, 10), Err(StoreError::Precondition(_))), "{bad:?}");
    }
    assert_eq!(s.head().unwrap(), 0);
}

/// Writers on several threads (several connections for PostgreSQL, like
/// replicas) and a tailer reading `changes_after` as they commit: the
/// tailer sees every revision exactly once, in order — no gap it skipped.
fn a_tailer_racing_writers_misses_nothing(b: Backend) {
    let s = Arc::clone(&b.store);
    let (writers, per_writer) = (4, 40);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tailer = {
        let s = Arc::clone(&s);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let after = seen.last().copied().unwrap_or(0);
                let batch = s.changes_after(after, 7).unwrap();
                seen.extend(revs(&batch));
                if finished && batch.is_empty() {
                    return seen;
                }
            }
        })
    };
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let s = (b.another)(&s);
            std::thread::spawn(move || {
                (0..per_writer)
                    .map(|i| commit(&*s, &format!("t{w}"), &[put(&format!("k{i}"), b"v")]).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = tailer.join().unwrap();
    acked.sort_unstable();
    let all: Vec<u64> = (1..=(writers * per_writer) as u64).collect();
    assert_eq!(acked, all, "distinct revisions, no gap");
    assert_eq!(seen, all, "the tailer saw every revision once, in order");
}

macro_rules! every_engine {
    ($($name:ident),* $(,)?) => {
        mod fjall_engine {
            $( #[test] fn $name() { super::$name(super::Backend::fjall()); } )*
        }
        mod postgres_engine {
            $(
                #[test]
                fn $name() {
                    if let Some(b) = super::Backend::postgres(concat!("datastore::postgres_engine::", stringify!($name))) {
                        super::$name(b);
                    }
                }
            )*
        }
    };
}

every_engine!(
    empty_store_has_revision_zero,
    commits_get_revisions_from_one_and_survive_a_reopen,
    last_op_per_key_wins_and_deletes_remove,
    change_log_by_tenant_and_across_tenants,
    load_can_be_limited_to_some_tenants,
    expect_head_is_checked_with_the_write,
    commit_after_hands_over_what_others_committed,
    invalid_tenants_are_rejected,
    a_tailer_racing_writers_misses_nothing,
);
