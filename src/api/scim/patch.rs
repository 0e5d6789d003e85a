//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource as JSON. Pure: the
//! handlers turn the patched resource into Holdfast changes.
//!
//! Accepts what identity providers send: operation names in any case
//! (`Add`, `Replace`), a missing `path` with an object value (whose keys
//! may themselves be paths, `name.givenName`, or an extension URN), both
//! member-removal forms (`members[value eq "id"]`, and `members` with a
//! value array), idempotent adds, and `emails[type eq "work"].value` on an
//! element that does not exist yet (created from the filter's equalities).

use serde_json::{Map, Value};

use super::filter::{self, get_ci, CompareOp, Filter, PatchPath};
use super::schema::{self, Attr, ENTERPRISE_SCHEMA};

/// Most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    /// `invalidSyntax`, `invalidPath`, `noTarget`, `invalidValue`, `mutability`.
    pub scim_type: &'static str,
    pub detail: String,
}

fn err<T>(scim_type: &'static str, detail: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError { scim_type, detail: detail.into() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// The operations of a PatchOp body.
pub fn parse_ops(body: &Value) -> Result<Vec<Operation>, PatchError> {
    let Some(obj) = body.as_object() else { return err("invalidSyntax", "a PatchOp body is a JSON object") };
    let Some(ops) = get_ci(obj, "Operations").and_then(Value::as_array) else {
        return err("invalidSyntax", "a PatchOp body has an `Operations` array");
    };
    if ops.len() > MAX_OPERATIONS {
        return err("invalidValue", format!("{} operations (at most {MAX_OPERATIONS})", ops.len()));
    }
    ops.iter()
        .enumerate()
        .map(|(i, o)| {
            let Some(o) = o.as_object() else { return err("invalidSyntax", format!("operation {i} is not an object")) };
            let op = match get_ci(o, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                other => {
                    let found = other.map_or_else(|| "missing".to_string(), |o| format!("`{o}`"));
                    return err("invalidSyntax", format!("operation {i}: `op` is {found}, not add, replace or remove"));
                }
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(
                    filter::parse_path(p)
                        .map_err(|e| PatchError { scim_type: "invalidPath", detail: format!("path `{p}`: {e}") })?,
                ),
                Some(_) => return err("invalidPath", format!("operation {i}: `path` is not a string")),
            };
            let value = get_ci(o, "value").cloned();
            if op != OpKind::Remove && value.is_none() {
                return err("invalidValue", format!("operation {i}: `{op:?}` needs a `value`"));
            }
            if op == OpKind::Remove && path.is_none() {
                return err("noTarget", format!("operation {i}: `remove` needs a `path`"));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// Applies the operations in order to `doc` (a resource without `meta`).
pub fn apply(doc: &mut Map<String, Value>, attrs: &'static [Attr], ops: &[Operation]) -> Result<(), PatchError> {
    for o in ops {
        match &o.path {
            Some(p) => apply_at(doc, attrs, o.op, p, o.value.clone())?,
            None => {
                let Some(Value::Object(v)) = &o.value else {
                    return err("invalidValue", "an operation without `path` needs an object `value`");
                };
                apply_object(doc, attrs, o.op, None, v)?;
            }
        }
    }
    Ok(())
}

/// An object value without a path: each key is a path (or an extension URN
/// holding an object of attributes).
fn apply_object(
    doc: &mut Map<String, Value>,
    attrs: &'static [Attr],
    op: OpKind,
    urn: Option<&str>,
    v: &Map<String, Value>,
) -> Result<(), PatchError> {
    for (k, val) in v {
        if urn.is_none() && k.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) {
            let Value::Object(inner) = val else {
                return err("invalidValue", format!("`{k}` is an object of attributes"));
            };
            apply_object(doc, attrs, op, Some(ENTERPRISE_SCHEMA), inner)?;
            continue;
        }
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let mut p = filter::parse_path(k)
            .map_err(|e| PatchError { scim_type: "invalidPath", detail: format!("attribute `{k}`: {e}") })?;
        if p.urn.is_none() {
            p.urn = urn.map(str::to_string);
        }
        apply_at(doc, attrs, op, &p, Some(val.clone()))?;
    }
    Ok(())
}

fn is_extension(urn: &Option<String>) -> Option<&str> {
    urn.as_deref().filter(|u| !u.to_ascii_lowercase().starts_with("urn:ietf:params:scim:schemas:core:"))
}

/// The key of `name` in `obj` (any case), else its canonical name.
fn key_of(obj: &Map<String, Value>, attrs: &[Attr], name: &str) -> String {
    obj.keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| schema::find(attrs, name).map_or(name.to_string(), |a| a.name.to_string()))
}

fn same_element(attr: &str, a: &Value, b: &Value) -> bool {
    if attr.eq_ignore_ascii_case("members") {
        let v = |x: &Value| x.as_object().and_then(|o| get_ci(o, "value")).cloned();
        return v(a).is_some() && v(a) == v(b);
    }
    a == b
}

fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => vec![other],
    }
}

fn merge(target: &mut Map<String, Value>, v: Map<String, Value>) {
    for (k, val) in v {
        let key = target.keys().find(|x| x.eq_ignore_ascii_case(&k)).cloned().unwrap_or(k);
        target.insert(key, val);
    }
}

/// Equality conditions of a filter (`type eq "work"`): the sub-attributes a
/// new element gets when a filtered path names none.
fn equalities(f: &Filter, out: &mut Map<String, Value>) {
    match f {
        Filter::Compare(p, CompareOp::Eq, v) if p.sub.is_none() => {
            out.insert(p.attr.clone(), v.clone());
        }
        Filter::And(a, b) => {
            equalities(a, out);
            equalities(b, out);
        }
        _ => {}
    }
}

fn apply_at(
    doc: &mut Map<String, Value>,
    attrs: &'static [Attr],
    op: OpKind,
    p: &PatchPath,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let (container, attrs): (&mut Map<String, Value>, &[Attr]) = match is_extension(&p.urn) {
        Some(urn) => {
            let key = key_of(doc, &[], urn);
            let entry = doc.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            match entry.as_object_mut() {
                Some(o) => (o, &[]),
                None => return err("invalidPath", format!("`{urn}` is not an object")),
            }
        }
        None => (doc, attrs),
    };
    let def = schema::find(attrs, &p.attr);
    if def.is_some_and(|a| a.mutability == "readOnly") || p.attr.eq_ignore_ascii_case("id") {
        return err("mutability", format!("`{}` is read-only", p.attr));
    }
    let multi =
        def.is_some_and(|a| a.multi) || container.get(&key_of(container, attrs, &p.attr)).is_some_and(Value::is_array);
    let key = key_of(container, attrs, &p.attr);

    if let Some(f) = &p.filter {
        if !multi {
            return err("invalidPath", format!("`{}` is not multi-valued; it takes no `[filter]`", p.attr));
        }
        let sub_attrs = def.map_or(&[][..], |a| a.sub);
        let exact = |a: &str, _: Option<&str>| schema::find(sub_attrs, a).is_some_and(|x| x.case_exact);
        let list = container.entry(key.clone()).or_insert_with(|| Value::Array(vec![]));
        let Value::Array(items) = list else { return err("invalidPath", format!("`{key}` is not multi-valued")) };
        let hit: Vec<bool> = items.iter().map(|e| filter::matches(f, e, &exact)).collect();
        match (op, &p.sub) {
            (OpKind::Remove, None) => {
                let mut i = 0;
                items.retain(|_| {
                    i += 1;
                    !hit[i - 1]
                });
            }
            (OpKind::Remove, Some(sub)) => {
                for (e, _) in items.iter_mut().zip(&hit).filter(|(_, h)| **h) {
                    if let Some(o) = e.as_object_mut() {
                        let k = key_of(o, &[], sub);
                        o.remove(&k);
                    }
                }
            }
            (_, Some(sub)) if !hit.contains(&true) => {
                let mut e = Map::new();
                equalities(f, &mut e);
                e.insert(
                    schema::find(sub_attrs, sub).map_or(sub.clone(), |a| a.name.to_string()),
                    value.unwrap_or(Value::Null),
                );
                items.push(Value::Object(e));
            }
            (_, Some(sub)) => {
                for (e, _) in items.iter_mut().zip(&hit).filter(|(_, h)| **h) {
                    if let Some(o) = e.as_object_mut() {
                        let k = key_of(o, sub_attrs, sub);
                        o.insert(k, value.clone().unwrap_or(Value::Null));
                    }
                }
            }
            (_, None) if !hit.contains(&true) => {
                if op == OpKind::Replace {
                    return err("noTarget", format!("no element of `{key}` matches the filter"));
                }
                items.extend(as_list(value.unwrap_or(Value::Null)));
            }
            (_, None) => {
                let new = value.unwrap_or(Value::Null);
                for (e, _) in items.iter_mut().zip(&hit).filter(|(_, h)| **h) {
                    match (e.as_object_mut(), &new) {
                        (Some(o), Value::Object(n)) => merge(o, n.clone()),
                        _ => *e = new.clone(),
                    }
                }
            }
        }
        if items.is_empty() {
            container.remove(&key);
        }
        return Ok(());
    }

    if let Some(sub) = &p.sub {
        let sub_attrs = def.map_or(&[][..], |a| a.sub);
        match op {
            OpKind::Remove => {
                match container.get_mut(&key) {
                    Some(Value::Object(o)) => {
                        let k = key_of(o, sub_attrs, sub);
                        o.remove(&k);
                        if o.is_empty() {
                            container.remove(&key);
                        }
                    }
                    Some(Value::Array(items)) => {
                        for e in items.iter_mut().filter_map(Value::as_object_mut) {
                            let k = key_of(e, sub_attrs, sub);
                            e.remove(&k);
                        }
                    }
                    _ => {}
                }
                return Ok(());
            }
            OpKind::Add | OpKind::Replace => {
                let entry = container.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(o) => {
                        let k = key_of(o, sub_attrs, sub);
                        o.insert(k, value.unwrap_or(Value::Null));
                    }
                    Value::Array(items) => {
                        for e in items.iter_mut().filter_map(Value::as_object_mut) {
                            let k = key_of(e, sub_attrs, sub);
                            e.insert(k, value.clone().unwrap_or(Value::Null));
                        }
                    }
                    other => {
                        let mut o = Map::new();
                        o.insert(sub.clone(), value.unwrap_or(Value::Null));
                        *other = Value::Object(o);
                    }
                }
                return Ok(());
            }
        }
    }

    match op {
        OpKind::Remove => match (value, container.get_mut(&key)) {
            // `{"op":"remove","path":"members","value":[{"value":"id"}]}`
            (Some(v), Some(Value::Array(items))) if multi => {
                let gone = as_list(v);
                items.retain(|e| !gone.iter().any(|g| same_element(&key, e, g)));
                if items.is_empty() {
                    container.remove(&key);
                }
            }
            _ => {
                container.remove(&key);
            }
        },
        OpKind::Add if multi => {
            let entry = container.entry(key.clone()).or_insert_with(|| Value::Array(vec![]));
            if !entry.is_array() {
                *entry = Value::Array(vec![entry.take()]);
            }
            if let Value::Array(items) = entry {
                for v in as_list(value.unwrap_or(Value::Null)) {
                    if !items.iter().any(|e| same_element(&key, e, &v)) {
                        items.push(v);
                    }
                }
            }
        }
        OpKind::Replace if multi => {
            container.insert(key, Value::Array(as_list(value.unwrap_or(Value::Null))));
        }
        OpKind::Add | OpKind::Replace => {
            let v = value.unwrap_or(Value::Null);
            match (container.get_mut(&key), v) {
                (Some(Value::Object(o)), Value::Object(n)) => merge(o, n),
                (_, Value::Null) => {
                    container.remove(&key);
                }
                (_, v) => {
                    container.insert(key, v);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::scim::schema::{GROUP_ATTRS, USER_ATTRS};
    use serde_json::json;

    fn patch(doc: Value, attrs: &'static [Attr], body: Value) -> Result<Value, PatchError> {
        let mut d = doc.as_object().unwrap().clone();
        apply(&mut d, attrs, &parse_ops(&body)?)?;
        Ok(Value::Object(d))
    }

    fn ops(list: Value) -> Value {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": list})
    }

    #[test]
    fn okta_deactivate_and_entra_replace_without_path() {
        let d = json!({"userName": "a", "active": true});
        let d = patch(d, USER_ATTRS, ops(json!([{"op": "replace", "value": {"active": false}}]))).unwrap();
        assert_eq!(d["active"], false);
        let d = patch(d, USER_ATTRS, ops(json!([{"op": "Replace", "path": "active", "value": "True"}]))).unwrap();
        assert_eq!(d["active"], "True", "booleans as strings are normalized later, by the schema");
        let d = patch(
            d,
            USER_ATTRS,
            ops(json!([{"op": "Replace", "value": {"name.givenName": "B", "displayName": "B C",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}}])),
        )
        .unwrap();
        assert_eq!(d["name"], json!({"givenName": "B"}));
        assert_eq!(d["displayName"], "B C");
        assert_eq!(d[ENTERPRISE_SCHEMA], json!({"department": "R&D"}));
    }

    #[test]
    fn members_add_is_idempotent_and_both_removal_forms_work() {
        let d = json!({"displayName": "g", "members": [{"value": "u1"}]});
        let add =
            ops(json!([{"op": "Add", "path": "members", "value": [{"value": "u1"}, {"value": "u2", "display": "x"}]}]));
        let d = patch(d, GROUP_ATTRS, add.clone()).unwrap();
        let d = patch(d, GROUP_ATTRS, add).unwrap();
        assert_eq!(d["members"], json!([{"value": "u1"}, {"value": "u2", "display": "x"}]));
        let d = patch(d, GROUP_ATTRS, ops(json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]))).unwrap();
        assert_eq!(d["members"], json!([{"value": "u2", "display": "x"}]));
        let d = patch(d, GROUP_ATTRS, ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u2"}]}])))
            .unwrap();
        assert!(d.get("members").is_none());
        let d = patch(d, GROUP_ATTRS, ops(json!([{"op": "replace", "path": "displayName", "value": "New"}]))).unwrap();
        assert_eq!(d["displayName"], "New");
    }

    #[test]
    fn filtered_paths_on_emails() {
        let d = json!({"userName": "a", "emails": [{"value": "a@home", "type": "home"}]});
        let d = patch(
            d,
            USER_ATTRS,
            ops(json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@work"}])),
        )
        .unwrap();
        assert_eq!(d["emails"], json!([{"value": "a@home", "type": "home"}, {"type": "work", "value": "a@work"}]));
        let d = patch(
            d,
            USER_ATTRS,
            ops(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@work"}])),
        )
        .unwrap();
        assert_eq!(d["emails"][1]["value"], "b@work");
        let d = patch(d, USER_ATTRS, ops(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]))).unwrap();
        assert_eq!(d["emails"], json!([{"type": "work", "value": "b@work"}]));
        let d = patch(d, USER_ATTRS, ops(json!([{"op": "remove", "path": "name.givenName"}]))).unwrap();
        assert!(d.get("name").is_none());
    }

    #[test]
    fn errors_name_the_problem() {
        let d = json!({"userName": "a"});
        let e = patch(d.clone(), USER_ATTRS, ops(json!([{"op": "move", "path": "x"}]))).unwrap_err();
        assert_eq!(e.scim_type, "invalidSyntax");
        let e = patch(d.clone(), USER_ATTRS, ops(json!([{"op": "remove"}]))).unwrap_err();
        assert_eq!(e.scim_type, "noTarget");
        let e = patch(d.clone(), USER_ATTRS, ops(json!([{"op": "add", "path": "groups", "value": []}]))).unwrap_err();
        assert_eq!(e.scim_type, "mutability");
        let e = patch(d.clone(), USER_ATTRS, ops(json!([{"op": "add", "path": "a[b", "value": 1}]))).unwrap_err();
        assert_eq!(e.scim_type, "invalidPath");
        let e = patch(d, USER_ATTRS, json!({"ops": []})).unwrap_err();
        assert_eq!(e.scim_type, "invalidSyntax");
    }
}
