//! Interned, `Copy` identifiers the Datalog program works on, and a small
//! string interner. Ids are dense per tenant and never reused.

use rustc_hash::FxHashMap;

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

/// Maps strings to dense `u32`s and back.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    map: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    pub fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }

    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.map.insert(s.into(), i);
        i
    }

    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(|b| &**b).unwrap_or("?")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
