//! The Datalog program of `rules/holdfast.dl`, compiled by `crepe`.
#![allow(clippy::all, clippy::unwrap_used, dead_code, unused_parens)]

use super::ids::{AppId, BindingId, NodeId, NodeKind, Origin, RoleId, ScopeId, Why};

include!(concat!(env!("OUT_DIR"), "/rules.rs"));
