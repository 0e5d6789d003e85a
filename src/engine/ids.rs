//! Interned, `Copy` identifiers the Datalog program works on, and a small
//! string interner. Ids are dense per tenant and never reused.

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            #[inline]
            pub fn idx(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A user, group or service account.
    NodeId
);
id_type!(RoleId);
id_type!(
    /// An application; [`AppId::TENANT`] stands for the whole tenant (the
    /// resource of tenant-wide bindings).
    AppId
);
id_type!(ScopeId);
id_type!(BindingId);

impl NodeId {
    /// A subject that exists only in one request (the user of an ID token
    /// Holdfast has never stored): no stored membership, binding or
    /// suspension names it; only the request's own memberships do.
    pub const REQUEST_ONLY: NodeId = NodeId(u32::MAX);
}

impl AppId {
    pub const TENANT: AppId = AppId(u32::MAX);
    pub fn is_tenant(self) -> bool {
        self == AppId::TENANT
    }
}

/// The kind of a [`NodeId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    User,
    Group,
    ServiceAccount,
}

/// How a subject came to hold a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// Bound to the subject itself (a user, or a group queried as itself).
    Direct,
    /// Bound to a group the subject is a (transitive) member of.
    Group,
    /// Bound to the service account itself.
    ServiceAccount,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Direct => "direct",
            Origin::Group => "group",
            Origin::ServiceAccount => "service-account",
        }
    }
}

/// Why a binding does or does not grant an explained query's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Why {
    Grants,
    SubjectSuspended,
    OtherApplication,
    RoleLacksScope,
    ScopeNotSupported,
}

/// Maps strings to dense `u32`s and back. Each string is stored once, in
/// one arena, right after its id.
///
/// A lookup is on every check's path (the subject's name), so the table is
/// laid out for few cache misses: one flat array of 8-byte slots, linear
/// probing, each slot holding a 16-bit fingerprint of the hash, the length
/// and the arena offset. A hit reads one slot (its neighbours share the
/// cache line) and then the arena record with the bytes and the id; a miss
/// rarely touches the arena (1 in 32,768 fingerprints collide). hashbrown
/// with ids in its buckets cost four dependent misses: control bytes,
/// bucket, span, arena.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    /// `0` = empty; else fingerprint (16 bits, top bit set) | length (16)
    /// | arena offset of the record (32).
    slots: Vec<u64>,
    /// Arena offset of each id's record.
    spans: Vec<u32>,
    /// Records: id (4 bytes, little endian), then the string's bytes.
    arena: Vec<u8>,
}

/// Ids like `user:u12345` share long prefixes; FxHash leaves the high bits
/// poorly mixed for them, foldhash does not.
fn hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x686f6c64).hash_one(s)
}

fn slot(h: u64, len: usize, offset: usize) -> u64 {
    (fingerprint(h) << 48) | ((len as u64) << 32) | offset as u64
}

/// 16 bits of the hash not used for the slot index; the top bit is set so
/// that an occupied slot is never `0`.
fn fingerprint(h: u64) -> u64 {
    (h >> 48) | 0x8000
}

/// The longest string the slot's 16-bit length holds (ids are validated to
/// 256 bytes long before they get here).
pub const MAX_INTERNED_LEN: usize = u16::MAX as usize;

impl Interner {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The record at `offset` if it holds `s`: its id.
    fn matches(&self, slot: u64, s: &[u8]) -> Option<u32> {
        let len = ((slot >> 32) & 0xffff) as usize;
        if len != s.len() {
            return None;
        }
        let offset = (slot & 0xffff_ffff) as usize;
        let rec = self.arena.get(offset..offset + 4 + len)?;
        if &rec[4..] != s {
            return None;
        }
        Some(u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]))
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let h = hash(s);
        let fp = fingerprint(h);
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if slot >> 48 == fp {
                if let Some(id) = self.matches(slot, s.as_bytes()) {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The id of `s`, adding it if new. Strings longer than
    /// [`MAX_INTERNED_LEN`] bytes are cut at a character boundary (callers
    /// validate lengths long before; this keeps the table sound regardless).
    pub fn intern(&mut self, s: &str) -> u32 {
        let s = truncate(s, MAX_INTERNED_LEN);
        if let Some(id) = self.get(s) {
            return id;
        }
        // Grow at 3/4 full: linear probing stays short.
        if (self.spans.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let id = self.spans.len() as u32;
        let offset = self.arena.len();
        self.arena.extend_from_slice(&id.to_le_bytes());
        self.arena.extend_from_slice(s.as_bytes());
        self.spans.push(offset as u32);
        self.place(slot(hash(s), s.len(), offset));
        id
    }

    fn place(&mut self, new: u64) {
        let mask = self.mask();
        let offset = (new & 0xffff_ffff) as usize;
        let len = ((new >> 32) & 0xffff) as usize;
        let h = self.arena.get(offset + 4..offset + 4 + len).map_or(0, |b| hash(std::str::from_utf8(b).unwrap_or("")));
        let mut i = h as usize & mask;
        while self.slots[i] != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = new;
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![0; (old.len() * 2).max(16)];
        for s in old.into_iter().filter(|&s| s != 0) {
            self.place(s);
        }
    }

    pub fn name(&self, i: u32) -> &str {
        let Some(&offset) = self.spans.get(i as usize) else { return "?" };
        let start = offset as usize + 4;
        // The record runs to the next id's record (or the arena's end).
        let end = self.spans.get(i as usize + 1).map_or(self.arena.len(), |&o| o as usize);
        self.arena.get(start..end).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("?")
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::Interner;

    #[test]
    fn interns_once_and_maps_back() {
        let mut i = Interner::default();
        let a = i.intern("user:alice");
        let b = i.intern("group:eng");
        assert_eq!(i.intern("user:alice"), a);
        assert_ne!(a, b);
        assert_eq!(i.name(a), "user:alice");
        assert_eq!(i.name(b), "group:eng");
        assert_eq!(i.get("group:eng"), Some(b));
        assert_eq!(i.get("group:en"), None);
        assert_eq!(i.name(99), "?");
        for n in 0..10_000 {
            i.intern(&format!("user:u{n}"));
        }
        assert_eq!(i.get("user:u9999").map(|x| i.name(x).to_string()), Some("user:u9999".to_string()));
        assert_eq!(i.len(), 10_002);
        for n in 0..10_000 {
            let name = format!("user:u{n}");
            assert_eq!(i.get(&name).map(|x| i.name(x)), Some(name.as_str()));
        }
        assert_eq!(i.get("user:u10000"), None);
        assert_eq!(i.get(""), None);
        let e = i.intern("");
        assert_eq!((i.get(""), i.name(e)), (Some(e), ""));
    }

    #[test]
    fn agrees_with_a_btreemap() {
        use proptest::prelude::*;
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&proptest::collection::vec("[a-c:é]{0,6}", 0..200), |names| {
                let mut i = Interner::default();
                let mut reference = std::collections::BTreeMap::new();
                for n in &names {
                    let next = reference.len() as u32;
                    let id = *reference.entry(n.clone()).or_insert(next);
                    prop_assert_eq!(i.intern(n), id);
                }
                for (n, &id) in &reference {
                    prop_assert_eq!(i.get(n), Some(id));
                    prop_assert_eq!(i.name(id), n.as_str());
                }
                prop_assert_eq!(i.get("zzz"), None);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn overlong_strings_are_cut_not_corrupting() {
        let mut i = Interner::default();
        let long = "é".repeat(40_000);
        let id = i.intern(&long);
        assert_eq!(i.name(id).len(), 65_534, "cut at a character boundary");
        assert_eq!(i.intern(&long), id);
        let short = i.intern("short");
        assert_eq!(i.name(short), "short");
    }
}
