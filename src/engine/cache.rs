//! A sharded cache of derived subject views. Readers fill it while holding
//! the tenant's read lock, writers invalidate it under the write lock, so an
//! entry never outlives the facts it was derived from.

use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxHashMap;

use super::{NodeId, SubjectView};

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct ViewCache {
    shards: Vec<Mutex<FxHashMap<NodeId, Arc<SubjectView>>>>,
    per_shard: usize,
}

impl ViewCache {
    pub fn new(capacity: usize) -> Self {
        ViewCache {
            shards: (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect(),
            per_shard: (capacity / SHARDS).max(1),
        }
    }

    fn shard(&self, n: NodeId) -> MutexGuard<'_, FxHashMap<NodeId, Arc<SubjectView>>> {
        let m = &self.shards[n.idx() % SHARDS];
        // A panic while holding a shard cannot leave a half-written entry.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, n: NodeId) -> Option<Arc<SubjectView>> {
        self.shard(n).get(&n).cloned()
    }

    pub fn insert(&self, n: NodeId, v: Arc<SubjectView>) {
        let mut s = self.shard(n);
        if s.len() >= self.per_shard {
            // Bounded memory: drop the shard rather than grow without limit.
            s.clear();
        }
        s.insert(n, v);
    }

    pub fn remove(&self, n: NodeId) {
        self.shard(n).remove(&n);
    }

    pub fn clear(&self) {
        for i in 0..SHARDS {
            self.shards[i].lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
