//! The HTTP API: an axum router over [`Holdfast`]. This layer alone knows
//! HTTP and JSON; it authenticates the caller, reads the clock, maps errors
//! to status codes ([`error`]) and calls the service, query and explain
//! layers. Blocking work (fsyncing writes, explanations, listings) runs on
//! `spawn_blocking`; single checks are microseconds and run inline.
//!
//! Routes are composed per area (`routes()` of each module) so another file
//! can be merged in with one line in [`router`]. [`ROUTES`] lists every
//! (method, path); tests check it against the router and `schema/openapi.yaml`.

pub mod auth;
mod authz_server;
mod authzen;
mod changes;
mod drain;
pub mod error;
mod identity;
mod limit;
mod metrics;
mod oauth;
mod ops;
pub(crate) mod policy;
pub(crate) mod query;
mod replication;
pub(crate) mod resources;
pub mod scim;
pub(crate) mod subjects;
mod tuples;
mod uflow;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::Router;

use crate::model::Timestamp;
use crate::service::{Change, Holdfast, Precondition, Tenant, TenantState};
pub use auth::{Access, Keys};
pub use error::{ApiError, ErrorCode};
pub use limit::InFlight;
pub use metrics::Metrics;
use wire::Revision;

/// Every route: (method, path template). Kept equal to the router and to
/// `schema/openapi.yaml` by tests.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/readyz"),
    ("POST", "/v1/tenants/{tenant}/tuples"),
    ("GET", "/v1/tenants/{tenant}/tuples"),
    ("GET", "/v1/tenants/{tenant}/roles"),
    ("GET", "/v1/tenants/{tenant}/roles/{role}"),
    ("PUT", "/v1/tenants/{tenant}/roles/{role}"),
    ("DELETE", "/v1/tenants/{tenant}/roles/{role}"),
    ("GET", "/v1/tenants/{tenant}/applications"),
    ("GET", "/v1/tenants/{tenant}/applications/{application}"),
    ("PUT", "/v1/tenants/{tenant}/applications/{application}"),
    ("DELETE", "/v1/tenants/{tenant}/applications/{application}"),
    ("GET", "/v1/tenants/{tenant}/applications/{application}/access"),
    ("POST", "/v1/tenants/{tenant}/bindings"),
    ("GET", "/v1/tenants/{tenant}/bindings"),
    ("DELETE", "/v1/tenants/{tenant}/bindings"),
    ("GET", "/v1/tenants/{tenant}/groups/{group}"),
    ("PUT", "/v1/tenants/{tenant}/groups/{group}/members/{subject}"),
    ("DELETE", "/v1/tenants/{tenant}/groups/{group}/members/{subject}"),
    ("GET", "/v1/tenants/{tenant}/users/{user}"),
    ("PUT", "/v1/tenants/{tenant}/users/{user}"),
    ("DELETE", "/v1/tenants/{tenant}/users/{user}"),
    ("GET", "/v1/tenants/{tenant}/service-accounts/{service_account}"),
    ("PUT", "/v1/tenants/{tenant}/service-accounts/{service_account}"),
    ("DELETE", "/v1/tenants/{tenant}/service-accounts/{service_account}"),
    ("POST", "/v1/tenants/{tenant}/check"),
    ("POST", "/v1/tenants/{tenant}/check/batch"),
    ("GET", "/v1/tenants/{tenant}/subjects/{subject}/effective-access"),
    ("POST", "/v1/tenants/{tenant}/effective-access"),
    ("GET", "/v1/tenants/{tenant}/changes"),
    ("POST", "/uflow/v2/groups/{group_id}/role-bindings"),
    ("GET", "/uflow/v2/users/{user_id}/effective-access"),
    ("POST", "/v1/tenants/{tenant}/subjects/{subject}/suspend"),
    ("POST", "/v1/tenants/{tenant}/subjects/{subject}/reactivate"),
    ("GET", "/v1/tenants/{tenant}/subjects/{subject}/status"),
    ("POST", "/v1/tenants/{tenant}/token-scope"),
    ("POST", "/v1/tenants/{tenant}/tokens"),
    ("POST", "/v1/tenants/{tenant}/applications/{application}/credentials"),
    ("GET", "/v1/tenants/{tenant}/applications/{application}/credentials"),
    ("DELETE", "/v1/tenants/{tenant}/applications/{application}/credentials/{client_id}"),
    ("GET", "/v1/tenants/{tenant}/applications/{application}/.well-known/oauth-protected-resource"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/revoke"),
    ("PUT", "/v1/tenants/{tenant}/policy"),
    ("POST", "/v1/policy/validate"),
    ("POST", "/v1/policy/test"),
    ("POST", "/v1/policy/diff"),
    ("GET", "/v1/tenants/{tenant}/scim-tokens"),
    ("POST", "/v1/tenants/{tenant}/scim-tokens"),
    ("DELETE", "/v1/tenants/{tenant}/scim-tokens/{id}"),
    ("GET", "/scim/v2/{tenant}/ServiceProviderConfig"),
    ("GET", "/scim/v2/{tenant}/ResourceTypes"),
    ("GET", "/scim/v2/{tenant}/ResourceTypes/{id}"),
    ("GET", "/scim/v2/{tenant}/Schemas"),
    ("GET", "/scim/v2/{tenant}/Schemas/{id}"),
    ("POST", "/scim/v2/{tenant}/.search"),
    ("GET", "/scim/v2/{tenant}/Users"),
    ("POST", "/scim/v2/{tenant}/Users"),
    ("POST", "/scim/v2/{tenant}/Users/.search"),
    ("GET", "/scim/v2/{tenant}/Users/{id}"),
    ("PUT", "/scim/v2/{tenant}/Users/{id}"),
    ("PATCH", "/scim/v2/{tenant}/Users/{id}"),
    ("DELETE", "/scim/v2/{tenant}/Users/{id}"),
    ("GET", "/scim/v2/{tenant}/Groups"),
    ("POST", "/scim/v2/{tenant}/Groups"),
    ("POST", "/scim/v2/{tenant}/Groups/.search"),
    ("GET", "/scim/v2/{tenant}/Groups/{id}"),
    ("PUT", "/scim/v2/{tenant}/Groups/{id}"),
    ("PATCH", "/scim/v2/{tenant}/Groups/{id}"),
    ("DELETE", "/scim/v2/{tenant}/Groups/{id}"),
    ("POST", "/v1/tenants/{tenant}/access/v1/evaluation"),
    ("POST", "/v1/tenants/{tenant}/access/v1/evaluations"),
    ("POST", "/v1/tenants/{tenant}/access/v1/search/subject"),
    ("POST", "/v1/tenants/{tenant}/access/v1/search/resource"),
    ("POST", "/v1/tenants/{tenant}/access/v1/search/action"),
    ("GET", "/.well-known/authzen-configuration/v1/tenants/{tenant}"),
    ("GET", "/v1/tenants/{tenant}/identity-providers"),
    ("GET", "/v1/tenants/{tenant}/identity-providers/{name}"),
    ("PUT", "/v1/tenants/{tenant}/identity-providers/{name}"),
    ("DELETE", "/v1/tenants/{tenant}/identity-providers/{name}"),
    ("POST", "/v1/tenants/{tenant}/identity-providers/{name}/sync"),
    ("GET", "/.well-known/oauth-authorization-server/t/{tenant}"),
    ("POST", "/t/{tenant}/oauth2/token"),
    ("POST", "/t/{tenant}/oauth2/revoke"),
    ("POST", "/t/{tenant}/oauth2/register"),
    ("GET", "/v1/tenants/{tenant}/oauth-server"),
    ("PUT", "/v1/tenants/{tenant}/oauth-server"),
    ("GET", "/v1/tenants/{tenant}/oauth-clients"),
    ("POST", "/v1/tenants/{tenant}/oauth-clients"),
    ("DELETE", "/v1/tenants/{tenant}/oauth-clients/{client_id}"),
];

/// An authorization-server change in words (the admin UI's activity log).
pub fn oauth_change_words(c: &crate::service::oauth_as::OAuthChange) -> String {
    authz_server::change_words(c)
}

/// The issuer URL when none is configured.
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080";

/// Limits and the clock of one API instance.
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    /// Largest request body, in bytes (413 `body_too_large` beyond).
    pub body_limit: usize,
    /// Most checks in one `check/batch` request (413 `batch_too_large` beyond).
    pub max_batch_checks: usize,
    /// Most tuple changes (writes + deletes + preconditions) in one request.
    pub max_write_batch: usize,
    /// The server clock: the default `now` of checks and listings.
    pub clock: fn() -> Timestamp,
    /// This server's issuer URL, named as the authorization server in
    /// protected-resource metadata and as `iss` in introspection answers.
    pub issuer: &'static str,
    /// Most requests one caller may have in flight (429 `too_many_requests`
    /// beyond; 0 = no limit). See [`limit`].
    pub max_in_flight_per_caller: usize,
    /// Serve the admin UI at `/ui/` ([`crate::ui`]; `holdfast serve --no-ui` turns it off).
    pub ui: bool,
    /// Fetch Client ID Metadata Documents over http on loopback addresses
    /// (tests; `holdfast serve --allow-insecure-client-metadata`).
    pub allow_insecure_client_metadata: bool,
    /// With a shared datastore, how long a read with `at_least` waits for
    /// this replica to reach that revision before answering 409
    /// `revision_not_visible` (`holdfast serve --at-least-timeout`).
    pub at_least_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            body_limit: 4 << 20,
            max_batch_checks: 10_000,
            max_write_batch: 50_000,
            clock: Timestamp::now,
            issuer: DEFAULT_ISSUER,
            max_in_flight_per_caller: 64,
            ui: true,
            allow_insecure_client_metadata: false,
            at_least_timeout: std::time::Duration::from_secs(1),
        }
    }
}

struct Shared {
    hf: Arc<Holdfast>,
    keys: Keys,
    metrics: Metrics,
    config: ApiConfig,
    in_flight: InFlight,
    ui_sessions: crate::ui::Sessions,
    authz: authz_server::Runtime,
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(hf: Arc<Holdfast>, keys: Keys) -> Self {
        AppState::with_config(hf, keys, ApiConfig::default())
    }

    pub fn with_config(hf: Arc<Holdfast>, keys: Keys, config: ApiConfig) -> Self {
        AppState(Arc::new(Shared {
            hf,
            keys,
            metrics: Metrics::new(),
            config,
            in_flight: InFlight::default(),
            ui_sessions: crate::ui::Sessions::default(),
            authz: authz_server::Runtime::default(),
        }))
    }

    pub fn holdfast(&self) -> &Arc<Holdfast> {
        &self.0.hf
    }

    pub fn keys(&self) -> &Keys {
        &self.0.keys
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    /// Requests in flight per caller ([`limit`]).
    pub fn in_flight(&self) -> &InFlight {
        &self.0.in_flight
    }

    /// Signed-in sessions of the admin UI.
    pub fn ui_sessions(&self) -> &crate::ui::Sessions {
        &self.0.ui_sessions
    }

    /// Logins in progress and caches of the OAuth authorization server.
    pub(crate) fn authz(&self) -> &authz_server::Runtime {
        &self.0.authz
    }

    /// The server clock (the API layer is the only one that reads it).
    pub fn now(&self) -> Timestamp {
        (self.0.config.clock)()
    }

    /// A tenant to read; 404 `unknown_tenant` if it has never been written.
    pub fn tenant(&self, name: &str) -> Result<Arc<Tenant>, ApiError> {
        self.0.hf.tenant(name).ok_or_else(|| ApiError::unknown_tenant(name))
    }

    /// The revision a read answers from, after checking `at_least`: every
    /// write acknowledged on this node is already visible, so only a
    /// revision this node has not reached is refused (409). With a shared
    /// datastore, a revision another replica wrote is waited for first, at
    /// most [`ApiConfig::at_least_timeout`].
    pub fn visible(&self, at_least: Option<Revision>) -> Result<Revision, ApiError> {
        let mut current = self.0.hf.revision();
        if let Some(Revision(r)) = at_least.filter(|r| r.0 > current && self.0.hf.is_shared()) {
            let (hf, timeout) = (&self.0.hf, self.0.config.at_least_timeout);
            // The wait blocks: off the async workers where the runtime allows it.
            current = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(|| hf.wait_for_revision(r, timeout))
                }
                Ok(_) => hf.revision(),
                Err(_) => hf.wait_for_revision(r, timeout),
            };
        }
        match at_least {
            Some(Revision(r)) if r > current => Err(ApiError::new(
                ErrorCode::RevisionNotVisible,
                format!("revision `{r}` is not visible yet (this node is at `{current}`)"),
            )),
            _ => Ok(Revision(current)),
        }
    }

    /// Applies a batch atomically on the blocking pool; the credential's
    /// name is the actor of the change log.
    pub async fn write(
        &self,
        tenant: &str,
        actor: &str,
        changes: Vec<Change>,
        preconditions: Vec<Precondition>,
    ) -> Result<Revision, ApiError> {
        let max = self.0.config.max_write_batch;
        if changes.len() + preconditions.len() > max {
            return Err(ApiError::new(
                ErrorCode::BatchTooLarge,
                format!("the request carries {} changes (at most {max})", changes.len() + preconditions.len()),
            ));
        }
        let hf = Arc::clone(&self.0.hf);
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        error::blocking(move || Ok(hf.write(&tenant, changes, &preconditions, &actor, at_ms)?)).await.map(Revision)
    }
    /// A read-modify-write on the blocking pool: `f` computes the changes
    /// from the tenant's state under its write lock, so nothing can change
    /// between the read and the commit ([`Holdfast::write_with`]). `None`:
    /// `f` answered no changes and nothing was written.
    pub async fn write_with<T, F>(&self, tenant: &str, actor: &str, mut f: F) -> Result<(Option<Revision>, T), ApiError>
    where
        T: Send + 'static,
        F: FnMut(&TenantState) -> Result<(Vec<Change>, T), ApiError> + Send + 'static,
    {
        let max = self.0.config.max_write_batch;
        let hf = Arc::clone(&self.0.hf);
        let (tenant, actor) = (tenant.to_string(), actor.to_string());
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        error::blocking(move || {
            let (revision, out) = hf.write_with(&tenant, &actor, at_ms, |st| {
                let (changes, out) = f(st)?;
                if changes.len() > max {
                    return Err(ApiError::new(
                        ErrorCode::BatchTooLarge,
                        format!("the request carries {} changes (at most {max})", changes.len()),
                    ));
                }
                Ok((changes, out))
            })?;
            Ok((revision.map(Revision), out))
        })
        .await
    }
}

/// The whole API (and the admin UI at `/ui/` unless [`ApiConfig::ui`] is off).
pub fn router(state: AppState) -> Router {
    let limit = state.config().body_limit;
    let ui = if state.config().ui { crate::ui::routes() } else { Router::new() };
    Router::new()
        .merge(ops::routes())
        .merge(replication::routes())
        .merge(tuples::routes())
        .merge(resources::routes())
        .merge(query::routes())
        .merge(changes::routes())
        .merge(uflow::routes())
        .merge(subjects::routes())
        .merge(oauth::routes())
        .merge(policy::routes())
        .merge(scim::routes())
        .merge(authzen::routes())
        .merge(ui)
        .merge(identity::routes())
        .merge(authz_server::routes())
        .fallback(error::unknown_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), drain::refuse_oversized))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limit::per_caller))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish and flushes the store.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let hf = Arc::clone(state.holdfast());
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    tokio::task::spawn_blocking(move || hf.flush()).await.map_err(std::io::Error::other)?.map_err(std::io::Error::other)
}
