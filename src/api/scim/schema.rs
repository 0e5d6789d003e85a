//! The SCIM schemas Holdfast serves (RFC 7643 §4, §7): the attributes of
//! `User` and `Group` it stores, their canonical names, types and
//! mutability. The same table answers `/Schemas`, normalizes request
//! bodies (attribute names are case-insensitive; booleans may arrive as
//! strings) and says which attributes compare case-exactly in filters.

use serde_json::{json, Map, Value};

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    String,
    Boolean,
    Reference,
    Complex,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub ty: Ty,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: &'static str,
    pub returned: &'static str,
    pub uniqueness: &'static str,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [Attr],
    pub description: &'static str,
}

const fn s(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        ty: Ty::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: "readWrite",
        returned: "default",
        uniqueness: "none",
        canonical: &[],
        reference_types: &[],
        sub: &[],
        description,
    }
}

const fn boolean(name: &'static str, description: &'static str) -> Attr {
    Attr { ty: Ty::Boolean, ..s(name, description) }
}

const fn complex(name: &'static str, multi: bool, sub: &'static [Attr], description: &'static str) -> Attr {
    Attr { ty: Ty::Complex, multi, sub, ..s(name, description) }
}

/// `value`, `display`, `type`, `primary` of emails and phone numbers.
const fn typed_values(kinds: &'static [&'static str]) -> [Attr; 4] {
    [
        s("value", "The value."),
        s("display", "A human-readable name, primarily used for display purposes."),
        Attr { canonical: kinds, ..s("type", "A label indicating the attribute's function.") },
        boolean("primary", "Whether this is the preferred value."),
    ]
}

const NAME: [Attr; 6] = [
    s("formatted", "The full name, formatted for display."),
    s("familyName", "The family name."),
    s("givenName", "The given name."),
    s("middleName", "The middle name(s)."),
    s("honorificPrefix", "The honorific prefix(es)."),
    s("honorificSuffix", "The honorific suffix(es)."),
];
const EMAILS: [Attr; 4] = typed_values(&["work", "home", "other"]);
const PHONES: [Attr; 4] = typed_values(&["work", "home", "mobile", "fax", "pager", "other"]);
const USER_GROUPS: [Attr; 4] = [
    Attr { mutability: "readOnly", ..s("value", "The id of the group.") },
    Attr {
        ty: Ty::Reference,
        mutability: "readOnly",
        reference_types: &["Group"],
        ..s("$ref", "The URI of the group.")
    },
    Attr { mutability: "readOnly", ..s("display", "The display name of the group.") },
    Attr { mutability: "readOnly", canonical: &["direct"], ..s("type", "How the membership was derived.") },
];
const MEMBERS: [Attr; 3] = [
    Attr { mutability: "immutable", case_exact: true, ..s("value", "The id of a member (a user or a group).") },
    Attr {
        ty: Ty::Reference,
        mutability: "immutable",
        reference_types: &["User", "Group"],
        ..s("$ref", "The URI of the member.")
    },
    Attr { mutability: "immutable", canonical: &["User", "Group"], ..s("type", "The type of the member.") },
];

pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        uniqueness: "server",
        ..s("userName", "Unique identifier for the user, typically used to sign in; compared case-insensitively.")
    },
    complex("name", false, &NAME, "The components of the user's name."),
    s("displayName", "The name of the user, suitable for display."),
    s("nickName", "The casual way to address the user."),
    Attr { ty: Ty::Reference, reference_types: &["external"], ..s("profileUrl", "A URI of the user's profile.") },
    s("title", "The user's title."),
    s("userType", "The relationship between the organization and the user."),
    s("preferredLanguage", "The user's preferred written or spoken language."),
    s("locale", "The user's default location."),
    s("timezone", "The user's time zone, in IANA format."),
    boolean("active", "Whether the user may use Holdfast; `false` suspends the user (nothing is deleted)."),
    complex("emails", true, &EMAILS, "Email addresses of the user."),
    complex("phoneNumbers", true, &PHONES, "Phone numbers of the user."),
    Attr {
        mutability: "readOnly",
        ..complex("groups", true, &USER_GROUPS, "The groups the user is a direct member of (read-only).")
    },
];

pub const GROUP_ATTRS: &[Attr] = &[
    Attr { required: true, ..s("displayName", "A human-readable name for the group.") },
    complex("members", true, &MEMBERS, "Members of the group: users, and nested groups."),
];

/// Common attributes every resource carries besides its schema's.
const COMMON_CASE_EXACT: &[&str] = &["id", "externalId"];

pub fn attrs_of(schema: &str) -> &'static [Attr] {
    if schema == GROUP_SCHEMA {
        GROUP_ATTRS
    } else {
        USER_ATTRS
    }
}

/// The attribute `name` (any case) of a schema.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Does `attr[.sub]` compare strings case-exactly?
pub fn case_exact(schema: &str, attr: &str, sub: Option<&str>) -> bool {
    if sub.is_none() && COMMON_CASE_EXACT.iter().any(|c| c.eq_ignore_ascii_case(attr)) {
        return true;
    }
    let Some(a) = find(attrs_of(schema), attr) else { return false };
    match sub {
        None => a.case_exact,
        Some(s) => find(a.sub, s).is_some_and(|x| x.case_exact),
    }
}

/// Canonical key names and typed booleans, recursively over known
/// attributes; unknown attributes are kept as sent.
pub fn normalize(attrs: &[Attr], obj: &mut Map<String, Value>) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        let Some(a) = find(attrs, &k) else { continue };
        let Some(mut v) = obj.remove(&k) else { continue };
        normalize_value(a, &mut v);
        obj.insert(a.name.to_string(), v);
    }
}

fn normalize_value(a: &Attr, v: &mut Value) {
    match v {
        Value::Array(items) if a.multi => items.iter_mut().for_each(|i| normalize_one(a, i)),
        other => normalize_one(a, other),
    }
}

fn normalize_one(a: &Attr, v: &mut Value) {
    match (a.ty, &mut *v) {
        (Ty::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => *v = Value::Bool(true),
        (Ty::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => *v = Value::Bool(false),
        (Ty::Complex, Value::Object(o)) => normalize(a.sub, o),
        _ => {}
    }
}

/// Drops null attributes (RFC 7643 §2.5: null is unassigned) and checks the
/// type of every known attribute (after [`normalize`]): strings and
/// references are strings, booleans booleans, complex attributes objects,
/// multi-valued ones arrays. `skip` names attributes checked elsewhere.
/// Unknown attributes are kept as sent. The error names the attribute.
pub fn check_types(attrs: &[Attr], obj: &mut Map<String, Value>, skip: &[&str]) -> Result<(), String> {
    obj.retain(|_, v| !v.is_null());
    for (k, v) in obj.iter_mut() {
        if skip.iter().any(|s| s.eq_ignore_ascii_case(k)) {
            continue;
        }
        if k.eq_ignore_ascii_case("externalId") && !v.is_string() {
            return Err(format!("`{k}` is a string"));
        }
        let Some(a) = find(attrs, k) else { continue };
        match v {
            Value::Array(items) if a.multi => {
                items.retain(|i| !i.is_null());
                for i in items {
                    check_one(a, i).map_err(|m| format!("`{k}`: {m}"))?;
                }
            }
            _ if a.multi => return Err(format!("`{k}` is multi-valued (an array)")),
            one => check_one(a, one).map_err(|m| format!("`{k}`: {m}"))?,
        }
    }
    Ok(())
}

fn check_one(a: &Attr, v: &mut Value) -> Result<(), String> {
    match (a.ty, v) {
        (Ty::String | Ty::Reference, Value::String(_)) | (Ty::Boolean, Value::Bool(_)) => Ok(()),
        (Ty::Complex, Value::Object(o)) => check_types(a.sub, o, &[]),
        (Ty::String | Ty::Reference, _) => Err("expected a string".into()),
        (Ty::Boolean, _) => Err("expected a boolean".into()),
        (Ty::Complex, _) => Err("expected an object".into()),
    }
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": match a.ty { Ty::String => "string", Ty::Boolean => "boolean", Ty::Reference => "reference", Ty::Complex => "complex" },
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "mutability": a.mutability,
        "returned": a.returned,
    });
    if a.ty != Ty::Complex {
        v["caseExact"] = json!(a.case_exact);
        v["uniqueness"] = json!(a.uniqueness);
    }
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if !a.reference_types.is_empty() {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if !a.sub.is_empty() {
        v["subAttributes"] = Value::Array(a.sub.iter().map(attr_json).collect());
    }
    v
}

/// `/Schemas` entries, with their `meta.location` under `base`.
pub fn schemas(base: &str) -> Vec<Value> {
    [(USER_SCHEMA, "User", "User Account", USER_ATTRS), (GROUP_SCHEMA, "Group", "Group", GROUP_ATTRS)]
        .into_iter()
        .map(|(id, name, description, attrs)| {
            json!({
                "schemas": [SCHEMA_SCHEMA],
                "id": id,
                "name": name,
                "description": description,
                "attributes": attrs.iter().map(attr_json).collect::<Vec<_>>(),
                "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
            })
        })
        .collect()
}

/// `/ResourceTypes` entries.
pub fn resource_types(base: &str) -> Vec<Value> {
    [("User", "/Users", "User Account", USER_SCHEMA), ("Group", "/Groups", "Group", GROUP_SCHEMA)]
        .into_iter()
        .map(|(id, endpoint, description, schema)| {
            json!({
                "schemas": [RESOURCE_TYPE_SCHEMA],
                "id": id,
                "name": id,
                "endpoint": endpoint,
                "description": description,
                "schema": schema,
                "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}")},
            })
        })
        .collect()
}

/// `/ServiceProviderConfig`.
pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A per-tenant SCIM token: POST /v1/tenants/{tenant}/scim-tokens",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names_and_string_booleans() {
        let mut o =
            json!({"USERNAME": "a", "Active": "False", "emails": [{"Value": "x", "PRIMARY": "true"}], "custom": 1})
                .as_object()
                .unwrap()
                .clone();
        normalize(USER_ATTRS, &mut o);
        assert_eq!(
            Value::Object(o),
            json!({"userName": "a", "active": false, "emails": [{"value": "x", "primary": true}], "custom": 1})
        );
    }

    #[test]
    fn case_exactness() {
        assert!(case_exact(USER_SCHEMA, "externalId", None));
        assert!(case_exact(USER_SCHEMA, "ID", None));
        assert!(!case_exact(USER_SCHEMA, "userName", None));
        assert!(case_exact(GROUP_SCHEMA, "members", Some("value")));
        assert!(!case_exact(GROUP_SCHEMA, "displayName", None));
    }
}
