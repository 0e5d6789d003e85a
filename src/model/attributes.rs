//! Attribute conditions: typed tests over values a request supplies about
//! its subject, resource, action and context (AuthZEN `properties`, the
//! `attributes` object of `/check`).
//!
//! A test names an attribute by path (`subject.department`,
//! `action.soft`, `context.device.managed`), an operator (`eq`, `ne`, `in`,
//! `not_in`) and the value(s) it compares with: strings, numbers or
//! booleans. **A missing attribute never satisfies**, whatever the
//! operator (so `ne` on a missing value is unmet), and neither does one
//! that is not a string, number or boolean (`null`, a list, an object).
//! Values compare by type and value: `"true"` is not `true`, `1` equals
//! `1.0`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// The four places an attribute comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    Subject,
    Resource,
    Action,
    Context,
}

impl Namespace {
    pub const ALL: [Namespace; 4] = [Namespace::Subject, Namespace::Resource, Namespace::Action, Namespace::Context];

    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Subject => "subject",
            Namespace::Resource => "resource",
            Namespace::Action => "action",
            Namespace::Context => "context",
        }
    }
}

/// `subject.department`: a namespace and one or more keys into its object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttributePath {
    pub namespace: Namespace,
    pub keys: Vec<String>,
}

/// What a path must look like, for error messages.
pub const PATH_HELP: &str =
    "an attribute path is `subject.<key>`, `resource.<key>`, `action.<key>` or `context.<key>` (keys may nest: `context.device.managed`)";

impl AttributePath {
    pub fn parse(s: &str) -> Result<AttributePath, String> {
        let mut parts = s.split('.');
        let ns = match parts.next().unwrap_or_default() {
            "subject" => Namespace::Subject,
            "resource" => Namespace::Resource,
            "action" => Namespace::Action,
            "context" => Namespace::Context,
            other => return Err(format!("`{s}`: unknown namespace `{other}`; {PATH_HELP}")),
        };
        let keys: Vec<String> = parts.map(str::to_string).collect();
        if keys.is_empty() {
            return Err(format!("`{s}` names no attribute; {PATH_HELP}"));
        }
        if keys.iter().any(|k| k.is_empty() || k.chars().any(char::is_whitespace)) {
            return Err(format!("`{s}` has an empty key or whitespace; {PATH_HELP}"));
        }
        Ok(AttributePath { namespace: ns, keys })
    }
}

impl fmt::Display for AttributePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.namespace.as_str())?;
        for k in &self.keys {
            write!(f, ".{k}")?;
        }
        Ok(())
    }
}

/// The comparison of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrOp {
    Eq,
    Ne,
    In,
    NotIn,
}

pub const OPS: &[&str] = &["eq", "ne", "in", "not_in"];

impl AttrOp {
    pub fn parse(s: &str) -> Result<AttrOp, String> {
        match s {
            "eq" => Ok(AttrOp::Eq),
            "ne" => Ok(AttrOp::Ne),
            "in" => Ok(AttrOp::In),
            "not_in" => Ok(AttrOp::NotIn),
            _ => Err(format!("unknown operator `{s}` (expected one of {})", OPS.join(", "))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttrOp::Eq => "eq",
            AttrOp::Ne => "ne",
            AttrOp::In => "in",
            AttrOp::NotIn => "not_in",
        }
    }

    /// `in` and `not_in` take a list; `eq` and `ne` one value.
    pub fn takes_list(self) -> bool {
        matches!(self, AttrOp::In | AttrOp::NotIn)
    }

    /// True for the operators that hold when the value is *not* among the
    /// listed ones (`ne`, `not_in`).
    pub fn negated(self) -> bool {
        matches!(self, AttrOp::Ne | AttrOp::NotIn)
    }
}

/// A string, number or boolean.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    Bool(bool),
    Num(Number),
    Str(String),
}

impl Scalar {
    /// The scalar a JSON value is, if it is one.
    pub fn from_json(v: &Value) -> Option<Scalar> {
        match v {
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Number(n) => Some(Scalar::Num(n.clone())),
            Value::String(s) => Some(Scalar::Str(s.clone())),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Num(n) => Value::Number(n.clone()),
            Scalar::Str(s) => Value::String(s.clone()),
        }
    }

    /// Equality of a request's value with this one: same type, same value;
    /// numbers by numeric value (`1` equals `1.0`).
    pub fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Scalar::Bool(a), Value::Bool(b)) => a == b,
            (Scalar::Str(a), Value::String(b)) => a == b,
            (Scalar::Num(a), Value::Number(b)) => num_eq(a, b),
            _ => false,
        }
    }
}

fn num_eq(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// One test: `action.soft eq true`, `subject.department in [eng, sre]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttributeTest {
    pub attribute: AttributePath,
    pub op: AttrOp,
    /// One value for `eq`/`ne`, one or more for `in`/`not_in`.
    pub values: Vec<Scalar>,
}

/// The keys of one test.
pub const TEST_KEYS: &[&str] = &["attribute", "op", "value"];

/// A test that could not be read: the key at fault (`attribute`, `op`,
/// `value`, `value[1]`, or empty for the test itself) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError {
    pub field: String,
    pub message: String,
}

impl TestError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        TestError { field: field.into(), message: message.into() }
    }
}

impl AttributeTest {
    /// Reads `{attribute, op, value}`, naming the key at fault.
    pub fn from_json(v: &Value) -> Result<AttributeTest, TestError> {
        let Value::Object(m) = v else {
            return Err(TestError::new("", "must be an object `{attribute, op, value}`"));
        };
        if let Some(k) = m.keys().find(|k| !TEST_KEYS.contains(&k.as_str())) {
            return Err(TestError::new(k.clone(), format!("unknown key (expected one of {})", TEST_KEYS.join(", "))));
        }
        let text = |k: &str| -> Result<&str, TestError> {
            match m.get(k) {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Err(TestError::new(k, format!("must be a string, found `{other}`"))),
                None => Err(TestError::new(k, "is missing")),
            }
        };
        let attribute = AttributePath::parse(text("attribute")?).map_err(|e| TestError::new("attribute", e))?;
        let op = AttrOp::parse(text("op")?).map_err(|e| TestError::new("op", e))?;
        let value = m.get("value").ok_or_else(|| TestError::new("value", "is missing"))?;
        let values = AttributeTest::values_from_json(op, value)?;
        Ok(AttributeTest { attribute, op, values })
    }

    /// The value(s) of a test with operator `op`, naming the one at fault.
    pub fn values_from_json(op: AttrOp, value: &Value) -> Result<Vec<Scalar>, TestError> {
        const SCALAR: &str = "a string, number or boolean";
        if op.takes_list() {
            let Value::Array(items) = value else {
                return Err(TestError::new(
                    "value",
                    format!("`{}` compares with a list of values, found `{value}`", op.as_str()),
                ));
            };
            if items.is_empty() {
                return Err(TestError::new(
                    "value",
                    format!("`{}` with an empty list tests nothing; list at least one value", op.as_str()),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, x)| {
                    Scalar::from_json(x)
                        .ok_or_else(|| TestError::new(format!("value[{i}]"), format!("must be {SCALAR}, found `{x}`")))
                })
                .collect()
        } else {
            match Scalar::from_json(value) {
                Some(s) => Ok(vec![s]),
                None => Err(TestError::new(
                    "value",
                    format!("`{}` compares with one value ({SCALAR}), found `{value}`", op.as_str()),
                )),
            }
        }
    }

    pub fn to_json(&self) -> Value {
        let value = if self.op.takes_list() {
            Value::Array(self.values.iter().map(Scalar::to_json).collect())
        } else {
            self.values.first().map_or(Value::Null, Scalar::to_json)
        };
        serde_json::json!({"attribute": self.attribute.to_string(), "op": self.op.as_str(), "value": value})
    }

    /// Does the request's value satisfy the test? A missing value, or one
    /// that is not a scalar, never does.
    pub fn holds(&self, attrs: &Attributes) -> bool {
        match attrs.get(&self.attribute).filter(|v| Scalar::from_json(v).is_some()) {
            None => false,
            Some(v) => self.values.iter().any(|s| s.matches(v)) != self.op.negated(),
        }
    }

    /// `action.soft eq true`, `subject.team in ["a", "b"]`.
    pub fn summary(&self) -> String {
        let value = if self.op.takes_list() {
            format!("[{}]", self.values.iter().map(Scalar::to_string).collect::<Vec<_>>().join(", "))
        } else {
            self.values.first().map_or(String::new(), Scalar::to_string)
        };
        format!("{} {} {value}", self.attribute, self.op.as_str())
    }
}

impl Serialize for AttributeTest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AttributeTest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        AttributeTest::from_json(&v).map_err(|e| {
            let at = if e.field.is_empty() { String::new() } else { format!("`{}` ", e.field) };
            serde::de::Error::custom(format!("attribute test: {at}{}", e.message))
        })
    }
}

/// The attributes a request supplies: an object per namespace. Values of
/// any JSON type are accepted; only strings, numbers and booleans can
/// satisfy a test.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub subject: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub resource: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub action: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub context: Map<String, Value>,
}

/// The keys of an `attributes` object.
pub const ATTRIBUTE_KEYS: &[&str] = &["subject", "resource", "action", "context"];

impl Attributes {
    pub fn is_empty(&self) -> bool {
        Namespace::ALL.iter().all(|&n| self.of(n).is_empty())
    }

    pub fn of(&self, n: Namespace) -> &Map<String, Value> {
        match n {
            Namespace::Subject => &self.subject,
            Namespace::Resource => &self.resource,
            Namespace::Action => &self.action,
            Namespace::Context => &self.context,
        }
    }

    pub fn of_mut(&mut self, n: Namespace) -> &mut Map<String, Value> {
        match n {
            Namespace::Subject => &mut self.subject,
            Namespace::Resource => &mut self.resource,
            Namespace::Action => &mut self.action,
            Namespace::Context => &mut self.context,
        }
    }

    /// The value at `path`, descending nested objects; `None` if absent.
    pub fn get(&self, path: &AttributePath) -> Option<&Value> {
        let (first, rest) = path.keys.split_first()?;
        let mut v = self.of(path.namespace).get(first)?;
        for k in rest {
            v = v.as_object()?.get(k)?;
        }
        Some(v)
    }

    /// Sets the value at `path`, creating nested objects on the way (the
    /// CLI's `--attr subject.team=sre`). Refuses to descend into a value
    /// that is not an object.
    pub fn set(&mut self, path: &AttributePath, value: Value) -> Result<(), String> {
        let (last, init) = path.keys.split_last().ok_or_else(|| format!("`{path}` names no attribute"))?;
        let mut m = self.of_mut(path.namespace);
        for k in init {
            let slot = m.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
            m = slot.as_object_mut().ok_or_else(|| format!("`{path}`: `{k}` is already set to a value"))?;
        }
        m.insert(last.clone(), value);
        Ok(())
    }

    /// Reads `PATH=VALUE` (the CLI's `--attr`): the value is JSON when it
    /// reads as a JSON string, number or boolean (`true`, `42`, `"42"`),
    /// and text otherwise (`sre`).
    pub fn set_from_arg(&mut self, arg: &str) -> Result<(), String> {
        let (path, raw) =
            arg.split_once('=').ok_or_else(|| format!("`{arg}` is not PATH=VALUE (e.g. `action.soft=true`)"))?;
        let path = AttributePath::parse(path.trim())?;
        let value = match serde_json::from_str::<Value>(raw) {
            Ok(v) if Scalar::from_json(&v).is_some() => v,
            _ => Value::String(raw.to_string()),
        };
        self.set(&path, value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn test(v: Value) -> AttributeTest {
        AttributeTest::from_json(&v).unwrap()
    }

    fn attrs(v: Value) -> Attributes {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn operators_over_strings_numbers_and_booleans() {
        let a = attrs(json!({"subject": {"team": "sre", "level": 3}, "action": {"soft": true}}));
        assert!(test(json!({"attribute": "subject.team", "op": "eq", "value": "sre"})).holds(&a));
        assert!(!test(json!({"attribute": "subject.team", "op": "ne", "value": "sre"})).holds(&a));
        assert!(test(json!({"attribute": "subject.team", "op": "in", "value": ["eng", "sre"]})).holds(&a));
        assert!(!test(json!({"attribute": "subject.team", "op": "not_in", "value": ["eng", "sre"]})).holds(&a));
        assert!(test(json!({"attribute": "subject.level", "op": "eq", "value": 3.0})).holds(&a), "1 equals 1.0");
        assert!(test(json!({"attribute": "action.soft", "op": "eq", "value": true})).holds(&a));
        assert!(!test(json!({"attribute": "action.soft", "op": "eq", "value": "true"})).holds(&a), "typed");
        assert!(test(json!({"attribute": "action.soft", "op": "ne", "value": "true"})).holds(&a));
    }

    #[test]
    fn missing_or_non_scalar_never_satisfies() {
        let a = attrs(json!({"subject": {"tags": ["x"], "none": null, "o": {"k": 1}}}));
        for op in OPS {
            let value = if AttrOp::parse(op).unwrap().takes_list() { json!(["x"]) } else { json!("x") };
            for path in ["subject.absent", "subject.tags", "subject.none", "subject.o", "resource.tags"] {
                let t = test(json!({"attribute": path, "op": op, "value": value}));
                assert!(!t.holds(&a), "{path} {op}");
            }
        }
        let nested = attrs(json!({"context": {"device": {"managed": true}}}));
        assert!(test(json!({"attribute": "context.device.managed", "op": "eq", "value": true})).holds(&nested));
        assert!(!test(json!({"attribute": "context.device.managed.x", "op": "ne", "value": 1})).holds(&nested));
    }

    #[test]
    fn bad_tests_name_the_key_at_fault() {
        let e = |v: Value| AttributeTest::from_json(&v).unwrap_err();
        assert_eq!(e(json!({"attribute": "user.x", "op": "eq", "value": 1})).field, "attribute");
        assert_eq!(e(json!({"attribute": "subject", "op": "eq", "value": 1})).field, "attribute");
        assert_eq!(e(json!({"attribute": "subject..x", "op": "eq", "value": 1})).field, "attribute");
        let op = e(json!({"attribute": "subject.x", "op": "gt", "value": 1}));
        assert_eq!(op.field, "op");
        assert!(op.message.contains("unknown operator `gt`"), "{}", op.message);
        assert_eq!(e(json!({"attribute": "subject.x", "op": "eq"})).field, "value");
        assert_eq!(e(json!({"attribute": "subject.x", "op": "eq", "value": [1]})).field, "value");
        assert_eq!(e(json!({"attribute": "subject.x", "op": "in", "value": 1})).field, "value");
        assert_eq!(e(json!({"attribute": "subject.x", "op": "in", "value": []})).field, "value");
        assert_eq!(e(json!({"attribute": "subject.x", "op": "in", "value": [1, null]})).field, "value[1]");
        assert_eq!(e(json!({"attribute": "subject.x", "op": "eq", "value": 1, "extra": 2})).field, "extra");
        assert_eq!(e(json!("subject.x eq 1")).field, "");
    }

    #[test]
    fn round_trips_through_json() {
        for v in [
            json!({"attribute": "action.soft", "op": "eq", "value": true}),
            json!({"attribute": "subject.team", "op": "not_in", "value": ["a", 2, false]}),
        ] {
            assert_eq!(test(v.clone()).to_json(), v);
            let back: AttributeTest = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&back).unwrap(), v);
        }
        assert_eq!(
            test(json!({"attribute": "subject.team", "op": "in", "value": ["a", 2]})).summary(),
            r#"subject.team in ["a", 2]"#
        );
    }

    #[test]
    fn cli_arguments() {
        let mut a = Attributes::default();
        a.set_from_arg("action.soft=true").unwrap();
        a.set_from_arg("subject.team=sre").unwrap();
        a.set_from_arg("subject.id=\"42\"").unwrap();
        a.set_from_arg("context.device.managed=false").unwrap();
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"subject": {"team": "sre", "id": "42"}, "action": {"soft": true},
                   "context": {"device": {"managed": false}}})
        );
        assert!(a.set_from_arg("context.device.managed.x=1").is_err(), "cannot descend into a value");
        assert!(a.set_from_arg("nope").is_err());
        assert!(a.set_from_arg("user.x=1").is_err());
    }
}
