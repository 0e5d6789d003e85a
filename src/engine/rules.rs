//! The Datalog program of `rules/holdfast.dl`, compiled by `crepe` (see
//! build.rs): `core` for checks and listings, `full` adding explain verdicts.
#![allow(clippy::all, clippy::unwrap_used, dead_code, unused_parens)]

pub mod core {
    use crate::engine::ids::{AppId, BindingId, NodeId, NodeKind, Origin, RoleId, ScopeId};
    include!(concat!(env!("OUT_DIR"), "/rules_core.rs"));
}

pub mod full {
    use crate::engine::ids::{AppId, BindingId, NodeId, NodeKind, Origin, RoleId, ScopeId, Why};
    include!(concat!(env!("OUT_DIR"), "/rules_full.rs"));
}
