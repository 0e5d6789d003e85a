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
/// one arena; the table holds only ids.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    table: hashbrown::HashTable<u32>,
    /// (offset, length) of each id's text in `arena`.
    spans: Vec<(u32, u32)>,
    arena: String,
}

/// Ids like `user:u12345` share long prefixes; FxHash leaves the high bits
/// the table probes with poorly mixed for them, foldhash does not.
fn hash(s: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x686f6c64).hash_one(s)
}

fn text<'a>(arena: &'a str, spans: &[(u32, u32)], i: u32) -> &'a str {
    match spans.get(i as usize) {
        Some(&(o, l)) => arena.get(o as usize..(o + l) as usize).unwrap_or("?"),
        None => "?",
    }
}

impl Interner {
    pub fn get(&self, s: &str) -> Option<u32> {
        self.table.find(hash(s), |&i| text(&self.arena, &self.spans, i) == s).copied()
    }

    pub fn intern(&mut self, s: &str) -> u32 {
        let h = hash(s);
        let Interner { table, spans, arena } = self;
        if let Some(&i) = table.find(h, |&i| text(arena, spans, i) == s) {
            return i;
        }
        let i = spans.len() as u32;
        spans.push((arena.len() as u32, s.len() as u32));
        arena.push_str(s);
        table.insert_unique(h, i, |&j| hash(text(arena, spans, j)));
        i
    }

    pub fn name(&self, i: u32) -> &str {
        text(&self.arena, &self.spans, i)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
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
    }
}
