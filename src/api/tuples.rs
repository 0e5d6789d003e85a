//! Raw relationship tuples: atomic batches of writes and deletes with
//! preconditions, and a filtered, paginated listing.

use axum::extract::State;
use axum::routing::post;
use axum::Router;

use super::auth::{TenantRead, TenantWrite};
use super::error::{blocking, ApiError, Json, Query};
use super::wire::{
    page_size, page_token, parse_page_token, TupleList, TupleOut, TupleQuery, WriteTuplesRequest, Written,
};
use super::AppState;
use crate::model::ObjectRef;
use crate::service::{Change, Precondition};

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/tenants/{tenant}/tuples", post(write).get(list))
}

/// Applies deletes, then writes, atomically; 409 if a precondition fails.
async fn write(
    State(state): State<AppState>,
    auth: TenantWrite,
    Json(req): Json<WriteTuplesRequest>,
) -> Result<axum::Json<Written>, ApiError> {
    let mut changes = Vec::with_capacity(req.writes.len() + req.deletes.len());
    for d in &req.deletes {
        changes.push(Change::DeleteTuple(d.parse()?.0));
    }
    for w in &req.writes {
        let (t, c) = w.parse()?;
        changes.push(Change::PutTuple(t, c));
    }
    let preconditions = req
        .preconditions
        .iter()
        .map(|p| Ok(Precondition { tuple: p.tuple.parse()?.0, exists: p.exists }))
        .collect::<Result<Vec<_>, ApiError>>()?;
    if changes.is_empty() {
        return Err(ApiError::invalid("nothing to do: give `writes` or `deletes`"));
    }
    let revision = state.write(&auth.tenant, &auth.caller.name, changes, preconditions).await?;
    Ok(axum::Json(Written { revision }))
}

fn filter_ref(name: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    v.map(|s| ObjectRef::parse(&s).map(|r| r.to_string()).map_err(|e| ApiError::parameter(format!("`{name}`: {e}"))))
        .transpose()
}

async fn list(
    State(state): State<AppState>,
    auth: TenantRead,
    Query(q): Query<TupleQuery>,
) -> Result<axum::Json<TupleList>, ApiError> {
    let object = filter_ref("object", q.object)?;
    let subject = filter_ref("subject", q.subject)?;
    let after = q.page_token.as_deref().map(parse_page_token).transpose()?;
    let size = page_size(q.page_size, 100, 1000);
    let revision = state.visible(None)?;
    let tenant = state.tenant(&auth.tenant)?;
    let relation = q.relation;
    blocking(move || {
        let st = tenant.read();
        let (page, more) =
            st.tuples_matching(object.as_deref(), relation.as_deref(), subject.as_deref(), after.as_deref(), size);
        let next_page_token = more.then(|| page.last().map(|(t, _)| page_token(&t.to_string()))).flatten();
        let tuples = page.into_iter().map(|(t, c)| TupleOut::new(&t, c)).collect();
        Ok(axum::Json(TupleList { tuples, next_page_token, revision }))
    })
    .await
}
