//! The vocabulary of Holdfast: object references, relationship tuples,
//! binding conditions and request context. Pure data and parsing; no I/O.

pub mod attributes;
pub mod conditions;
pub mod oidc;
pub mod schema;
mod tuple;

pub use attributes::{AttributeTest, Attributes};
pub use conditions::{CondOutcome, ConditionError, Conditions, Context, MfaCondition, MfaContext, Timestamp};
pub use schema::Schema;
pub use tuple::{ObjectRef, ObjectType, ParseError, Tuple};

/// Longest identifier accepted anywhere (user ids, group ids, scopes...).
pub const MAX_ID_LEN: usize = 256;
/// The AuthZEN resource type of an application that declares none.
pub const DEFAULT_RESOURCE_TYPE: &str = "application";

/// Checks an identifier: non-empty, at most [`MAX_ID_LEN`] bytes, made of
/// ASCII letters, digits and `_ - . : @ +`. No `/` (ids appear in URL paths),
/// no `#` (tuple syntax), no whitespace or control characters.
pub fn validate_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("is empty".into());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("is {} bytes long (at most {MAX_ID_LEN})", id.len()));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@' | '+')))
    {
        return Err(format!("contains `{}` (allowed: letters, digits, `_-.:@+`)", c.escape_default()));
    }
    Ok(())
}
