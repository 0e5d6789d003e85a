//! How changes are laid out as store records. The store sees only keys and
//! bytes; this is the one place that knows the layout:
//!
//! | key                 | value                                  |
//! |---------------------|----------------------------------------|
//! | `o/<object>`        | JSON attributes of a declared object   |
//! | `s/<subject>`       | JSON suspension `{reason, at}`         |
//! | `t/<tuple text>`    | JSON `{}` or `{"conditions": {...}}`   |
//!
//! Tokens (`x/<sha256 hex>`) and client credentials (`c/<client_id>`) are
//! records of the tenant too; [`super::tokens`] owns their layout. SCIM
//! tokens (`k/<id>`) likewise, owned by [`super::scim_tokens`]; identity
//! providers (`p/<name>`) and what their syncs own (`m/<provider>/<user>`)
//! by [`super::identity`].

use serde::{Deserialize, Serialize};

use super::{Change, Suspension};
use crate::model::{Conditions, ObjectRef, ObjectType, Tuple};
use crate::store::Op;

/// A decoded record (the stored form of a [`Change`] that puts something).
pub type Record = Change;

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TupleValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conditions: Option<Conditions>,
}

/// The store operation of a change.
pub fn encode_change(c: &Change) -> Op {
    match c {
        Change::PutTuple(t, cond) => Op::Put {
            key: format!("t/{t}"),
            value: serde_json::to_vec(&TupleValue { conditions: cond.clone().filter(|c| !c.is_empty()) })
                .unwrap_or_else(|_| b"{}".to_vec()),
        },
        Change::DeleteTuple(t) => Op::Delete { key: format!("t/{t}") },
        Change::PutObject(o, attrs) => {
            Op::Put { key: format!("o/{o}"), value: serde_json::to_vec(attrs).unwrap_or_else(|_| b"{}".to_vec()) }
        }
        Change::DeleteObject(o) => Op::Delete { key: format!("o/{o}") },
        Change::Suspend(o, s) => {
            Op::Put { key: format!("s/{o}"), value: serde_json::to_vec(s).unwrap_or_else(|_| b"{}".to_vec()) }
        }
        Change::Reactivate(o) => Op::Delete { key: format!("s/{o}") },
        Change::Token(c) => super::tokens::encode(c),
        Change::ScimToken(c) => super::scim_tokens::encode(c),
        Change::Identity(c) => super::identity::encode(c),
        Change::OAuth(c) => super::oauth_as::encode(c),
    }
}

/// Decodes a stored record back into the change that wrote it.
pub fn decode_record(key: &str, value: &[u8]) -> Result<Change, String> {
    if let Some(c) = super::oauth_as::decode_record(key, value) {
        return c.map(Change::OAuth);
    }
    if let Some(c) = super::scim_tokens::decode_record(key, value) {
        return c.map(Change::ScimToken);
    }
    if let Some(c) = super::identity::decode_record(key, value) {
        return c.map(Change::Identity);
    }
    if let Some(c) = super::tokens::decode_record(key, value) {
        return c.map(Change::Token);
    }
    if let Some(t) = key.strip_prefix("t/") {
        let tuple = Tuple::parse(t).map_err(|e| e.to_string())?;
        let v: TupleValue = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        if let Some(c) = &v.conditions {
            c.validate().map_err(|e| format!("conditions: {e}"))?;
        }
        return Ok(Change::PutTuple(tuple, v.conditions));
    }
    if let Some(o) = key.strip_prefix("o/") {
        let o = ObjectRef::parse(o).map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        return Ok(Change::PutObject(o, v));
    }
    if let Some(o) = key.strip_prefix("s/") {
        let o = ObjectRef::parse(o).map_err(|e| e.to_string())?;
        let s: Suspension = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        return Ok(Change::Suspend(o, s));
    }
    Err("unknown record prefix".into())
}

/// Decodes one change-log operation back into the change that wrote it
/// (a delete names only its key, so it decodes to the matching removal).
pub fn decode_op(op: &Op) -> Result<Change, String> {
    if let Some(c) = super::oauth_as::decode_op(op) {
        return c.map(Change::OAuth);
    }
    if let Some(c) = super::scim_tokens::decode_op(op) {
        return c.map(Change::ScimToken);
    }
    if let Some(c) = super::identity::decode_op(op) {
        return c.map(Change::Identity);
    }
    if let Some(c) = super::tokens::decode_op(op) {
        return c.map(Change::Token);
    }
    match op {
        Op::Put { key, value } => decode_record(key, value),
        Op::Delete { key } => {
            if let Some(t) = key.strip_prefix("t/") {
                return Tuple::parse(t).map(Change::DeleteTuple).map_err(|e| e.to_string());
            }
            if let Some(o) = key.strip_prefix("o/") {
                return ObjectRef::parse(o).map(Change::DeleteObject).map_err(|e| e.to_string());
            }
            if let Some(o) = key.strip_prefix("s/") {
                return ObjectRef::parse(o).map(Change::Reactivate).map_err(|e| e.to_string());
            }
            Err("unknown record prefix".into())
        }
    }
}

/// Orders records so each applies after what it depends on: declarations,
/// then grants and supports, then memberships and bindings, then suspensions.
pub fn load_order(mut changes: Vec<Change>) -> Vec<Change> {
    changes.sort_by_key(|c| match c {
        Change::PutObject(o, _) if matches!(o.ty, ObjectType::Role | ObjectType::Application) => 0,
        Change::PutObject(..) => 1,
        Change::PutTuple(t, _) if matches!(t.relation.as_str(), "grants" | "supports") => 2,
        Change::PutTuple(..) => 3,
        _ => 4,
    });
    changes
}
