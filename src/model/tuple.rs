//! Object references (`user:alice`, `tenant`) and relationship tuples in the
//! Zanzibar text form `object#relation@subject`.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::validate_id;

/// The kinds of object Holdfast knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    User,
    Group,
    ServiceAccount,
    Role,
    Application,
    Scope,
    /// The tenant itself: the resource of tenant-wide bindings. It has no id.
    Tenant,
}

impl ObjectType {
    pub const ALL: [ObjectType; 7] = [
        ObjectType::User,
        ObjectType::Group,
        ObjectType::ServiceAccount,
        ObjectType::Role,
        ObjectType::Application,
        ObjectType::Scope,
        ObjectType::Tenant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::User => "user",
            ObjectType::Group => "group",
            ObjectType::ServiceAccount => "service_account",
            ObjectType::Role => "role",
            ObjectType::Application => "application",
            ObjectType::Scope => "scope",
            ObjectType::Tenant => "tenant",
        }
    }

    pub fn parse(s: &str) -> Option<ObjectType> {
        ObjectType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Users, groups and service accounts: what a binding can name.
    pub fn is_subject(self) -> bool {
        matches!(self, ObjectType::User | ObjectType::Group | ObjectType::ServiceAccount)
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parse error that names the input and the byte position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse `{input}` at position {position}: {message}")]
pub struct ParseError {
    pub input: String,
    /// Byte offset (0-based) in `input`.
    pub position: usize,
    pub message: String,
}

impl ParseError {
    fn new(input: &str, position: usize, message: impl Into<String>) -> Self {
        // Keep error messages bounded even for hostile input.
        let shown: String = input.chars().take(200).collect();
        ParseError { input: shown, position, message: message.into() }
    }
}

/// A typed reference to an object: `user:alice`, `group:sre`, `tenant`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub ty: ObjectType,
    /// Empty for [`ObjectType::Tenant`].
    pub id: String,
}

impl ObjectRef {
    pub fn new(ty: ObjectType, id: impl Into<String>) -> Self {
        ObjectRef { ty, id: id.into() }
    }

    pub fn tenant() -> Self {
        ObjectRef { ty: ObjectType::Tenant, id: String::new() }
    }

    pub fn parse(input: &str) -> Result<ObjectRef, ParseError> {
        Self::parse_at(input, input, 0)
    }

    /// Parses `text`, which sits at `offset` inside `whole` (for positions).
    fn parse_at(whole: &str, text: &str, offset: usize) -> Result<ObjectRef, ParseError> {
        if text == "tenant" {
            return Ok(ObjectRef::tenant());
        }
        let Some((ty, id)) = text.split_once(':') else {
            return Err(ParseError::new(
                whole,
                offset,
                format!("expected `type:id` (or `tenant`), found `{}`", truncate(text)),
            ));
        };
        let Some(ty) = ObjectType::parse(ty) else {
            return Err(ParseError::new(
                whole,
                offset,
                format!(
                    "unknown type `{}` (expected one of user, group, service_account, role, application, scope, tenant)",
                    truncate(ty)
                ),
            ));
        };
        if ty == ObjectType::Tenant {
            return Err(ParseError::new(whole, offset, "`tenant` takes no id"));
        }
        let id_pos = offset + ty.as_str().len() + 1;
        validate_id(id).map_err(|m| ParseError::new(whole, id_pos, format!("id `{}` {m}", truncate(id))))?;
        Ok(ObjectRef { ty, id: id.to_string() })
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ty == ObjectType::Tenant {
            f.write_str("tenant")
        } else {
            write!(f, "{}:{}", self.ty, self.id)
        }
    }
}

impl Serialize for ObjectRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ObjectRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A relationship tuple `object#relation@subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    pub object: ObjectRef,
    pub relation: String,
    pub subject: ObjectRef,
}

impl Tuple {
    pub fn new(object: ObjectRef, relation: impl Into<String>, subject: ObjectRef) -> Self {
        Tuple { object, relation: relation.into(), subject }
    }

    /// Parses the text form, e.g. `group:eng#member@user:alice`.
    pub fn parse(input: &str) -> Result<Tuple, ParseError> {
        let Some(hash) = input.find('#') else {
            return Err(ParseError::new(input, input.len(), "expected `#relation` after the object"));
        };
        let object = ObjectRef::parse_at(input, &input[..hash], 0)?;
        let rest = &input[hash + 1..];
        let Some(at) = rest.find('@') else {
            return Err(ParseError::new(input, input.len(), "expected `@subject` after the relation"));
        };
        let relation = &rest[..at];
        let rel_pos = hash + 1;
        if relation.is_empty() {
            return Err(ParseError::new(input, rel_pos, "relation is empty"));
        }
        if let Some((i, c)) =
            relation.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(ParseError::new(
                input,
                rel_pos + i,
                format!("relation contains `{}` (allowed: letters, digits, `_-.`)", c.escape_default()),
            ));
        }
        if relation.len() > super::MAX_ID_LEN {
            return Err(ParseError::new(input, rel_pos, "relation is too long"));
        }
        let subj_pos = rel_pos + at + 1;
        let subject = ObjectRef::parse_at(input, &rest[at + 1..], subj_pos)?;
        Ok(Tuple { object, relation: relation.to_string(), subject })
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.subject)
    }
}

impl Serialize for Tuple {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Tuple {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Tuple::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 64 {
        let mut t: String = s.chars().take(64).collect();
        t.push('…');
        t
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in [
            "group:engineering#member@user:alice",
            "group:engineering#member@group:sre",
            "application:deploy-mcp#deploy-operator@group:on-call",
            "tenant#auditor@user:alice",
            "role:pr-writer#grants@scope:pr:write",
            "application:github-mcp#supports@scope:repo:read",
            "group:eng#member@user:alice@example.com",
        ] {
            let t = Tuple::parse(text).unwrap();
            assert_eq!(t.to_string(), text);
        }
        let t = Tuple::parse("role:pr-writer#grants@scope:pr:write").unwrap();
        assert_eq!(t.subject, ObjectRef::new(ObjectType::Scope, "pr:write"));
    }

    #[test]
    fn errors_name_the_input_and_position() {
        let e = Tuple::parse("group:eng@user:alice").unwrap_err();
        assert!(e.message.contains("#relation"), "{e}");
        let e = Tuple::parse("grop:eng#member@user:alice").unwrap_err();
        assert_eq!(e.position, 0);
        assert!(e.to_string().contains("unknown type `grop`"), "{e}");
        let e = Tuple::parse("group:eng#member@user:al ice").unwrap_err();
        assert_eq!(e.position, 22);
        assert!(e.to_string().contains("contains ` `"), "{e}");
        let e = Tuple::parse("group:eng#mem ber@user:alice").unwrap_err();
        assert_eq!(e.position, 13);
        let e = Tuple::parse("group:#member@user:alice").unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let e = Tuple::parse("group:eng#member@tenant:x").unwrap_err();
        assert!(e.to_string().contains("takes no id"), "{e}");
        let long = format!("group:{}#member@user:a", "x".repeat(300));
        assert!(Tuple::parse(&long).unwrap_err().to_string().contains("at most 256"));
        assert!(Tuple::parse("").is_err());
        assert!(Tuple::parse("group:a/../b#member@user:x").is_err());
    }
}
