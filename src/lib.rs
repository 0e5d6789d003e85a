//! # Holdfast
//!
//! A relationship-based authorization server for teams that put tools behind
//! MCP servers and let people and AI agents use them. Holdfast answers "who
//! may do what, and why".
//!
//! ## Bird's-eye view
//!
//! Everything is a relationship tuple (`group:eng#member@user:alice`,
//! `application:deploy-mcp#deploy-operator@group:on-call`,
//! `tenant#auditor@user:alice`). The Datalog program in `rules/holdfast.dl`
//! (compiled by `crepe`) derives who holds which role where, and from that
//! the scopes a subject has on an application. Queries read those derived
//! facts; they never re-derive them.
//!
//! ## Layout (arrows point one way)
//!
//! - [`model`]: ids, object references, tuples, conditions, the schema. Pure.
//! - [`engine`]: the fact base of a tenant, the rules, per-subject evaluation
//!   and the view cache. No I/O, no clock.
//! - [`store`]: the `Datastore` interface and its engines (fjall, embedded;
//!   PostgreSQL, shared by replicas): records, revisions, the change log.
//!   Knows bytes.
//! - [`service`]: tenants kept in step with the store; atomic writes; with a
//!   shared datastore, tailing what other replicas commit.
//! - [`query`] / [`explain`]: check, effective access, who-can-access, traces.
//! - [`policy`]: policy files: parse, compile, validate.
//! - [`api`] / [`ui`]: the HTTP API (JSON) and the admin UI (HTML) over the
//!   same service and query calls.
//! - `cli` (binary): clap commands.
//!
//! ## Invariants
//!
//! - A check, explain or effective-access evaluation touches only the facts
//!   that concern its subject; a write never triggers a full re-evaluation.
//! - A write is validated whole before anything is applied; the store commits
//!   it in one batch; memory is updated under the tenant's write lock.
//! - Time is a parameter of every query; nothing below the API reads a clock.
//! - Groups from a verified OIDC ID token (`id_token` on a request) are
//!   request-only `MemberEdge` facts of that one evaluation: nothing is
//!   stored and such an evaluation neither reads nor fills the view cache.
//!   Key sets are fetched by the service ([`service::identity`]), never by
//!   the engine.
//! - The OAuth authorization server (`api::authz_server`, `/t/{tenant}/oauth2/*`)
//!   computes every grant's scope with [`query::token_scope_with`], takes the
//!   login's user and groups from the OIDC verification and sync, and keeps
//!   its clients, codes, refresh-token families and consents as
//!   [`service::oauth_as`] changes on the one write path (digests only).
#![deny(clippy::unwrap_used)]

pub mod api;
pub mod engine;
pub mod explain;
pub mod model;
pub mod policy;
pub mod query;
pub mod service;
pub mod store;
pub mod ui;
pub mod workload;
