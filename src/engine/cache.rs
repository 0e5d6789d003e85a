//! A sharded cache of derived subject views, keyed by subject and by the
//! application the view covers ([`ViewScope`]). Readers fill it while holding
//! the tenant's read lock, writers invalidate it under the write lock, so an
//! entry never outlives the facts it was derived from.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::{AppId, NodeId, SubjectView};

const SHARDS: usize = 16;

/// What a view covers: every application, or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewScope {
    All,
    App(AppId),
}

type Entry = SmallVec<[(ViewScope, Arc<SubjectView>); 2]>;

#[derive(Debug)]
pub struct ViewCache {
    shards: Vec<Mutex<FxHashMap<NodeId, Entry>>>,
    per_shard: usize,
    /// Subjects with at least one view (kept exact under the shard locks).
    subjects: AtomicUsize,
}

impl ViewCache {
    pub fn new(capacity: usize) -> Self {
        ViewCache {
            shards: (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect(),
            per_shard: (capacity / SHARDS).max(1),
            subjects: AtomicUsize::new(0),
        }
    }

    fn shard(&self, n: NodeId) -> MutexGuard<'_, FxHashMap<NodeId, Entry>> {
        // A panic while holding a shard cannot leave a half-written entry.
        self.shards[n.idx() % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, n: NodeId, scope: ViewScope) -> Option<Arc<SubjectView>> {
        self.shard(n).get(&n)?.iter().find(|(s, _)| *s == scope).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, n: NodeId, scope: ViewScope, v: Arc<SubjectView>) {
        let mut s = self.shard(n);
        if s.len() >= self.per_shard && !s.contains_key(&n) {
            // Bounded memory: drop the shard rather than grow without limit.
            self.subjects.fetch_sub(s.len(), Ordering::Relaxed);
            s.clear();
        }
        let e = s.entry(n).or_insert_with(|| {
            self.subjects.fetch_add(1, Ordering::Relaxed);
            SmallVec::new()
        });
        match e.iter_mut().find(|(sc, _)| *sc == scope) {
            Some(slot) => slot.1 = v,
            None => e.push((scope, v)),
        }
    }

    /// Drops every view of `n`.
    pub fn remove(&self, n: NodeId) {
        if self.shard(n).remove(&n).is_some() {
            self.subjects.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn clear(&self) {
        for m in &self.shards {
            let mut s = m.lock().unwrap_or_else(|p| p.into_inner());
            self.subjects.fetch_sub(s.len(), Ordering::Relaxed);
            s.clear();
        }
    }

    /// Subjects with a cached view.
    pub fn len(&self) -> usize {
        self.subjects.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
