//! The relationship schema (`schema/relationships.json`) and validation of
//! tuples against it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ObjectType, Tuple};

const SCHEMA_JSON: &str = include_str!("../../schema/relationships.json");

/// What a valid tuple means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TupleKind {
    /// `group:g#member@S`.
    Membership,
    /// `role:r#grants@scope:x`.
    Grant,
    /// `application:a#supports@scope:x`.
    Supports,
    /// `application:a#ROLE@S` or `tenant#ROLE@S`.
    Binding,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("`{tuple}`: type `{ty}` has no relation `{relation}` (it has: {known})")]
    UnknownRelation { tuple: String, ty: ObjectType, relation: String, known: String },
    #[error(
        "`{tuple}`: relation `{relation}` of `{ty}` does not accept a `{subject}` subject (it accepts: {allowed})"
    )]
    SubjectType { tuple: String, ty: ObjectType, relation: String, subject: ObjectType, allowed: String },
    #[error("`{tuple}`: role `{role}` is not defined{hint}")]
    UnknownRole { tuple: String, role: String, hint: String },
    #[error("`{tuple}`: a group cannot be a member of itself")]
    SelfMembership { tuple: String },
}

#[derive(Debug, Deserialize)]
struct RawSchema {
    types: BTreeMap<String, RawType>,
}

#[derive(Debug, Deserialize)]
struct RawType {
    #[serde(default)]
    relations: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    bindings: Vec<String>,
}

#[derive(Debug, Clone)]
struct TypeDef {
    relations: BTreeMap<String, Vec<ObjectType>>,
    bindings: Vec<ObjectType>,
}

/// The parsed relationship schema.
#[derive(Debug, Clone)]
pub struct Schema {
    types: BTreeMap<ObjectType, TypeDef>,
}

impl Schema {
    /// The schema shipped in `schema/relationships.json`.
    pub fn builtin() -> &'static Schema {
        static SCHEMA: std::sync::OnceLock<Schema> = std::sync::OnceLock::new();
        SCHEMA.get_or_init(|| match Schema::parse(SCHEMA_JSON) {
            Ok(s) => s,
            // The file is compiled in and covered by a unit test.
            Err(e) => panic!("built-in schema is invalid: {e}"),
        })
    }

    pub fn parse(json: &str) -> Result<Schema, String> {
        let raw: RawSchema = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let ty = |s: &str| ObjectType::parse(s).ok_or_else(|| format!("unknown type `{s}` in schema"));
        let mut types = BTreeMap::new();
        for (name, def) in raw.types {
            let mut relations = BTreeMap::new();
            for (rel, subjects) in def.relations {
                relations.insert(rel, subjects.iter().map(|s| ty(s)).collect::<Result<_, _>>()?);
            }
            let bindings = def.bindings.iter().map(|s| ty(s)).collect::<Result<_, _>>()?;
            types.insert(ty(&name)?, TypeDef { relations, bindings });
        }
        Ok(Schema { types })
    }

    /// Validates a tuple. `role_defined` says whether a role id is defined in
    /// the tenant (bindings name roles as their relation).
    pub fn validate(&self, t: &Tuple, role_defined: impl Fn(&str) -> bool) -> Result<TupleKind, SchemaError> {
        // Formatted only when an error names it (validation is on the bulk path).
        let tuple = LazyText(t);
        let Some(def) = self.types.get(&t.object.ty) else {
            return Err(SchemaError::UnknownRelation {
                tuple: tuple.get(),
                ty: t.object.ty,
                relation: t.relation.clone(),
                known: "none".into(),
            });
        };
        if let Some(allowed) = def.relations.get(&t.relation) {
            if !allowed.contains(&t.subject.ty) {
                return Err(SchemaError::SubjectType {
                    tuple: tuple.get(),
                    ty: t.object.ty,
                    relation: t.relation.clone(),
                    subject: t.subject.ty,
                    allowed: join(allowed),
                });
            }
            if t.relation == "member" && t.object == t.subject {
                return Err(SchemaError::SelfMembership { tuple: tuple.get() });
            }
            return Ok(match (t.object.ty, t.relation.as_str()) {
                (ObjectType::Group, "member") => TupleKind::Membership,
                (ObjectType::Role, "grants") => TupleKind::Grant,
                (ObjectType::Application, "supports") => TupleKind::Supports,
                _ => {
                    return Err(SchemaError::UnknownRelation {
                        tuple: tuple.get(),
                        ty: t.object.ty,
                        relation: t.relation.clone(),
                        known: "none the engine understands".into(),
                    })
                }
            });
        }
        if def.bindings.is_empty() {
            let known: Vec<&str> = def.relations.keys().map(String::as_str).collect();
            return Err(SchemaError::UnknownRelation {
                tuple: tuple.get(),
                ty: t.object.ty,
                relation: t.relation.clone(),
                known: if known.is_empty() { "none".into() } else { known.join(", ") },
            });
        }
        if !role_defined(&t.relation) {
            return Err(SchemaError::UnknownRole { tuple: tuple.get(), role: t.relation.clone(), hint: String::new() });
        }
        if !def.bindings.contains(&t.subject.ty) {
            return Err(SchemaError::SubjectType {
                tuple: tuple.get(),
                ty: t.object.ty,
                relation: t.relation.clone(),
                subject: t.subject.ty,
                allowed: join(&def.bindings),
            });
        }
        Ok(TupleKind::Binding)
    }
}

struct LazyText<'a>(&'a Tuple);

impl LazyText<'_> {
    fn get(&self) -> String {
        self.0.to_string()
    }
}

fn join(types: &[ObjectType]) -> String {
    types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Result<TupleKind, SchemaError> {
        Schema::builtin().validate(&Tuple::parse(s).unwrap(), |r| r == "auditor" || r == "deploy-operator")
    }

    #[test]
    fn builtin_schema_parses_and_classifies() {
        assert_eq!(v("group:eng#member@user:alice"), Ok(TupleKind::Membership));
        assert_eq!(v("group:eng#member@group:sre"), Ok(TupleKind::Membership));
        assert_eq!(v("group:eng#member@service_account:ci"), Ok(TupleKind::Membership));
        assert_eq!(v("role:pr-writer#grants@scope:pr:write"), Ok(TupleKind::Grant));
        assert_eq!(v("application:gh#supports@scope:repo:read"), Ok(TupleKind::Supports));
        assert_eq!(v("application:deploy-mcp#deploy-operator@group:on-call"), Ok(TupleKind::Binding));
        assert_eq!(v("tenant#auditor@user:alice"), Ok(TupleKind::Binding));
    }

    #[test]
    fn rejects_what_the_schema_does_not_allow() {
        let e = v("group:eng#owner@user:alice").unwrap_err().to_string();
        assert!(e.contains("has no relation `owner`"), "{e}");
        let e = v("group:eng#member@role:x").unwrap_err().to_string();
        assert!(e.contains("does not accept a `role` subject"), "{e}");
        let e = v("tenant#nobody@user:alice").unwrap_err().to_string();
        assert!(e.contains("role `nobody` is not defined"), "{e}");
        let e = v("tenant#auditor@scope:x").unwrap_err().to_string();
        assert!(e.contains("does not accept a `scope`"), "{e}");
        let e = v("user:alice#member@user:bob").unwrap_err().to_string();
        assert!(e.contains("type `user` has no relation `member`"), "{e}");
        let e = v("group:eng#member@group:eng").unwrap_err().to_string();
        assert!(e.contains("member of itself"), "{e}");
    }
}
