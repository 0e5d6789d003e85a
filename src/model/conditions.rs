//! Conditions a binding may carry, the request context they are evaluated
//! against, and their three-state evaluation.
//!
//! Evaluation order is fixed and total: the validity window (`not_before`,
//! `expires_at`), then IP ranges, then attribute tests
//! ([`super::attributes`]), then MFA. A failing window, IP range or
//! attribute test is final (`Unmet`); a missing or too old MFA asks for
//! step-up. **Missing context never counts as satisfied**: no `ip` fails an
//! IP condition, a missing attribute fails its test (whatever the
//! operator), no `mfa` (or `present: false`) asks for step-up. Time is
//! always a parameter.

use std::{fmt, net::IpAddr, str::FromStr, time::Duration};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::attributes::{AttributeTest, Attributes};

/// Seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The latest time Holdfast accepts: 9999-12-31T23:59:59Z. RFC 3339 has
    /// four-digit years; a later time could not be printed, stored or read
    /// back, so input beyond it is refused and [`Timestamp::plus`] stops here.
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    pub fn parse(s: &str) -> Result<Timestamp, String> {
        let t = humantime::parse_rfc3339_weak(s.trim())
            .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e}); example: 2026-12-31T23:59:59Z"))?;
        let secs = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        Timestamp::from_secs(secs).map_err(|m| format!("`{s}`: {m}"))
    }

    /// Seconds since the epoch, within `0..=`[`Timestamp::MAX`].
    pub fn from_secs(secs: i64) -> Result<Timestamp, String> {
        if (0..=Timestamp::MAX.0).contains(&secs) {
            Ok(Timestamp(secs))
        } else {
            Err(format!("`{secs}` is outside 1970-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z"))
        }
    }

    pub fn now() -> Timestamp {
        let secs =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Timestamp(secs)
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_secs().min(i64::MAX as u64) as i64).min(Timestamp::MAX.0.max(self.0)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (0..=Timestamp::MAX.0).contains(&self.0) {
            let t = std::time::UNIX_EPOCH + Duration::from_secs(self.0 as u64);
            write!(f, "{}", humantime::format_rfc3339_seconds(t))
        } else {
            write!(f, "@{}", self.0)
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Secs(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => Timestamp::parse(&s).map_err(serde::de::Error::custom),
            Raw::Secs(n) => Timestamp::from_secs(n).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses a duration such as `15m`, `4h`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("`{s}` is not a duration ({e}); examples: 15m, 4h, 7days"))
}

pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

mod duration_text {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// `mfa: {required: true, max_age: 15m}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaCondition {
    #[serde(default = "yes")]
    pub required: bool,
    /// MFA must have happened at most this long before `now`.
    #[serde(default, with = "duration_text", skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
}

fn yes() -> bool {
    true
}

/// `ip: {allow: ["10.0.0.0/8", "2001:db8::/32"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpCondition {
    #[serde(deserialize_with = "de_nets")]
    pub allow: Vec<IpNet>,
}

fn de_nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter().map(|s| parse_net(s).map_err(serde::de::Error::custom)).collect()
}

/// Parses a CIDR range; a bare address is a single-address range.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = IpNet::from_str(s) {
        return Ok(n.trunc());
    }
    IpAddr::from_str(s)
        .map(IpNet::from)
        .map_err(|_| format!("`{s}` is not an IP range (examples: 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)"))
}

/// The conditions of one binding. All present conditions must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Tests over the request's attributes; all must hold (null is none).
    #[serde(default, deserialize_with = "null_as_empty", skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeTest>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.mfa.as_ref().is_none_or(|m| !m.required)
            && self.ip.is_none()
            && self.not_before.is_none()
            && self.expires_at.is_none()
            && self.attributes.is_empty()
    }

    /// The first attribute test the request does not satisfy, if any.
    pub fn failed_attribute(&self, attrs: &Attributes) -> Option<&AttributeTest> {
        self.attributes.iter().find(|t| !t.holds(attrs))
    }

    /// True when the validity window has closed at `now` (drops out of queries).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Three-state evaluation against a request context.
    pub fn evaluate(&self, ctx: &Context) -> CondOutcome {
        if self.is_expired(ctx.now) {
            return CondOutcome::Unmet(Unmet::Expired);
        }
        if self.not_before.is_some_and(|nb| ctx.now < nb) {
            return CondOutcome::Unmet(Unmet::NotYetValid);
        }
        if let Some(ip) = &self.ip {
            match ctx.ip {
                Some(addr) if ip.allow.iter().any(|n| n.contains(&addr)) => {}
                _ => return CondOutcome::Unmet(Unmet::Ip),
            }
        }
        if self.failed_attribute(&ctx.attributes).is_some() {
            return CondOutcome::Unmet(Unmet::Attribute);
        }
        if let Some(mfa) = self.mfa.as_ref().filter(|m| m.required) {
            let fresh = match (&ctx.mfa, mfa.max_age) {
                (Some(m), _) if !m.present => false,
                (Some(_), None) => true,
                (Some(m), Some(max)) => {
                    m.auth_time.is_some_and(|t| t <= ctx.now && ctx.now.0 - t.0 <= max.as_secs() as i64)
                }
                (None, _) => false,
            };
            if !fresh {
                return CondOutcome::StepUp { max_age: mfa.max_age };
            }
        }
        CondOutcome::Satisfied
    }

    /// A one-line human summary, e.g. `mfa (max_age 15m), ip in 10.0.0.0/8`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.mfa.as_ref().filter(|m| m.required) {
            match m.max_age {
                Some(a) => parts.push(format!("mfa (max_age {})", format_duration(a))),
                None => parts.push("mfa".to_string()),
            }
        }
        if let Some(ip) = &self.ip {
            let nets: Vec<String> = ip.allow.iter().map(|n| n.to_string()).collect();
            parts.push(format!("ip in {}", nets.join(", ")));
        }
        for t in &self.attributes {
            parts.push(t.summary());
        }
        if let Some(t) = self.not_before {
            parts.push(format!("not before {t}"));
        }
        if let Some(t) = self.expires_at {
            parts.push(format!("expires {t}"));
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A binding's conditions that are malformed or could never hold. The one
/// statement of what a valid set of conditions is: the API, policy files and
/// the store decode all use [`Conditions::from_json`] / [`Conditions::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}`: {message}", self.path())]
pub struct ConditionError {
    /// The offending field, e.g. `ip.allow` or `not_before`.
    pub field: String,
    pub message: String,
}

impl ConditionError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConditionError { field: field.into(), message: message.into() }
    }

    /// The field as a path from the binding: `conditions.ip.allow`, or
    /// `conditions` for the object itself.
    pub fn path(&self) -> String {
        if self.field.is_empty() {
            "conditions".to_string()
        } else {
            format!("conditions.{}", self.field)
        }
    }
}

/// Why an empty IP allow-list is refused.
pub const EMPTY_ALLOW: &str =
    "an empty allow-list admits no address, so the binding could never be used (remove `ip` to allow any address)";

/// The keys a conditions object may have.
pub const CONDITION_KEYS: &[&str] = &["mfa", "ip", "not_before", "expires_at", "attributes"];
const MFA_KEYS: &[&str] = &["required", "max_age"];
const IP_KEYS: &[&str] = &["allow"];

fn known_keys(v: &serde_json::Value, prefix: &str, keys: &[&str]) -> Result<(), ConditionError> {
    let field = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
    let serde_json::Value::Object(m) = v else {
        return Err(ConditionError::new(prefix, "must be an object"));
    };
    match m.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(ConditionError::new(field(k), format!("unknown key (expected one of {})", keys.join(", ")))),
        None => Ok(()),
    }
}

impl Conditions {
    /// Parses conditions from JSON, naming the offending field on error,
    /// and validates them ([`Conditions::validate`]).
    pub fn from_json(v: &serde_json::Value) -> Result<Conditions, ConditionError> {
        known_keys(v, "", CONDITION_KEYS)?;
        if let Some(m) = v.get("mfa") {
            known_keys(m, "mfa", MFA_KEYS)?;
        }
        if let Some(ip) = v.get("ip") {
            known_keys(ip, "ip", IP_KEYS)?;
        }
        if let Some(list) = v.get("attributes").filter(|l| !l.is_null()) {
            attribute_tests(list)?;
        }
        let field = |k: &str| -> Result<(), ConditionError> {
            match v.get(k) {
                None => Ok(()),
                Some(x) => {
                    let r = match k {
                        "mfa" => MfaCondition::deserialize(x).map(drop),
                        "ip" => IpCondition::deserialize(x).map(drop),
                        _ => Option::<Timestamp>::deserialize(x).map(drop),
                    };
                    r.map_err(|e| ConditionError::new(k, e.to_string()))
                }
            }
        };
        CONDITION_KEYS.iter().filter(|k| **k != "attributes").try_for_each(|k| field(k))?;
        let c = Conditions::deserialize(v).map_err(|e| ConditionError::new("", e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Refuses conditions that could never hold: an empty IP allow-list
    /// admits no address; a validity window whose start is not before its
    /// end admits no time.
    pub fn validate(&self) -> Result<(), ConditionError> {
        if self.ip.as_ref().is_some_and(|ip| ip.allow.is_empty()) {
            return Err(ConditionError::new("ip.allow", EMPTY_ALLOW));
        }
        if let Some(path) = contradictory_attribute(&self.attributes) {
            return Err(ConditionError::new(
                "attributes",
                format!("the tests on `{path}` admit no value together: the binding could never apply"),
            ));
        }
        if let (Some(nb), Some(exp)) = (self.not_before, self.expires_at) {
            if nb >= exp {
                return Err(ConditionError::new(
                    "not_before",
                    format!("`not_before` ({nb}) is not before `expires_at` ({exp}): the binding could never apply"),
                ));
            }
        }
        Ok(())
    }
}

/// An attribute whose tests no value passes together: the values every
/// `eq`/`in` test admits, less those a `ne`/`not_in` test refuses, are none.
fn contradictory_attribute(tests: &[AttributeTest]) -> Option<&super::attributes::AttributePath> {
    tests.iter().map(|t| &t.attribute).find(|path| {
        let on: Vec<&AttributeTest> = tests.iter().filter(|t| &t.attribute == *path).collect();
        let Some(first) = on.iter().find(|t| !t.op.negated()) else { return false };
        let admitted =
            |v: &serde_json::Value| on.iter().all(|t| t.values.iter().any(|s| s.matches(v)) != t.op.negated());
        !first.values.iter().any(|v| admitted(&v.to_json()))
    })
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<AttributeTest>, D::Error> {
    Ok(Option::<Vec<AttributeTest>>::deserialize(d)?.unwrap_or_default())
}

/// Why an empty list of attribute tests is refused.
pub const EMPTY_ATTRIBUTES: &str = "an empty list tests nothing (remove `attributes`, or list at least one test)";

/// Reads a list of attribute tests, naming the offending one as
/// `attributes[i].key`.
fn attribute_tests(list: &serde_json::Value) -> Result<Vec<AttributeTest>, ConditionError> {
    let serde_json::Value::Array(items) = list else {
        return Err(ConditionError::new("attributes", "must be a list of tests `{attribute, op, value}`"));
    };
    if items.is_empty() {
        return Err(ConditionError::new("attributes", EMPTY_ATTRIBUTES));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            AttributeTest::from_json(t).map_err(|e| {
                let field = if e.field.is_empty() {
                    format!("attributes[{i}]")
                } else {
                    format!("attributes[{i}].{}", e.field)
                };
                ConditionError::new(field, e.message)
            })
        })
        .collect()
}

/// Why a binding's conditions failed for good (step-up would not help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unmet {
    Expired,
    NotYetValid,
    Ip,
    Attribute,
}

impl Unmet {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Unmet::Expired => "expired",
            Unmet::NotYetValid => "not_yet_valid",
            Unmet::Ip => "condition_unmet:ip",
            Unmet::Attribute => "condition_unmet:attribute",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondOutcome {
    Satisfied,
    /// Only MFA is missing (or too old): the client can step up.
    StepUp {
        max_age: Option<Duration>,
    },
    Unmet(Unmet),
}

/// What the request brings: the caller's IP, its MFA state, `now`, and
/// the attributes it supplies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub now: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<MfaContext>,
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    pub attributes: Attributes,
}

impl Context {
    /// A context that carries only the time: no IP, no MFA, no attributes.
    pub fn at(now: Timestamp) -> Context {
        Context { now, ip: None, mfa: None, attributes: Attributes::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaContext {
    #[serde(default)]
    pub present: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn ctx(now: &str) -> Context {
        Context::at(t(now))
    }

    #[test]
    fn missing_context_never_satisfies() {
        let c = Conditions {
            ip: Some(IpCondition { allow: vec![parse_net("10.0.0.0/8").unwrap()] }),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&ctx("2026-01-01T00:00:00Z")), CondOutcome::Unmet(Unmet::Ip));
        let m = Conditions { mfa: Some(MfaCondition { required: true, max_age: None }), ..Default::default() };
        assert!(matches!(m.evaluate(&ctx("2026-01-01T00:00:00Z")), CondOutcome::StepUp { .. }));
        let mut c2 = ctx("2026-01-01T00:00:00Z");
        c2.mfa = Some(MfaContext { present: false, auth_time: None });
        assert!(matches!(m.evaluate(&c2), CondOutcome::StepUp { .. }));
        c2.mfa = Some(MfaContext { present: true, auth_time: None });
        assert_eq!(m.evaluate(&c2), CondOutcome::Satisfied);
    }

    #[test]
    fn mfa_max_age_needs_recent_auth_time() {
        let m = Conditions {
            mfa: Some(MfaCondition { required: true, max_age: Some(Duration::from_secs(900)) }),
            ..Default::default()
        };
        let mut c = ctx("2026-01-01T00:30:00Z");
        c.mfa = Some(MfaContext { present: true, auth_time: None });
        assert!(matches!(m.evaluate(&c), CondOutcome::StepUp { max_age: Some(_) }));
        c.mfa = Some(MfaContext { present: true, auth_time: Some(t("2026-01-01T00:15:00Z")) });
        assert_eq!(m.evaluate(&c), CondOutcome::Satisfied, "exactly max_age old is fresh");
        c.mfa = Some(MfaContext { present: true, auth_time: Some(t("2026-01-01T00:14:59Z")) });
        assert!(matches!(m.evaluate(&c), CondOutcome::StepUp { .. }));
        c.mfa = Some(MfaContext { present: true, auth_time: Some(t("2026-01-01T00:31:00Z")) });
        assert!(matches!(m.evaluate(&c), CondOutcome::StepUp { .. }), "auth_time in the future is not trusted");
    }

    #[test]
    fn ip_ranges_v4_v6_and_edges() {
        let c = Conditions {
            ip: Some(IpCondition {
                allow: vec![parse_net("10.0.0.0/8").unwrap(), parse_net("2001:db8::/32").unwrap()],
            }),
            ..Default::default()
        };
        let eval = |ip: &str| {
            let mut x = ctx("2026-01-01T00:00:00Z");
            x.ip = Some(ip.parse().unwrap());
            c.evaluate(&x)
        };
        assert_eq!(eval("10.0.0.0"), CondOutcome::Satisfied);
        assert_eq!(eval("10.255.255.255"), CondOutcome::Satisfied);
        assert_eq!(eval("11.0.0.0"), CondOutcome::Unmet(Unmet::Ip));
        assert_eq!(eval("9.255.255.255"), CondOutcome::Unmet(Unmet::Ip));
        assert_eq!(eval("2001:db8::1"), CondOutcome::Satisfied);
        assert_eq!(eval("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), CondOutcome::Satisfied);
        assert_eq!(eval("2001:db9::"), CondOutcome::Unmet(Unmet::Ip));
        assert_eq!(eval("::ffff:10.0.0.1"), CondOutcome::Unmet(Unmet::Ip), "mapped v6 is not v4");
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }

    #[test]
    fn validity_window_edges() {
        let c = Conditions {
            not_before: Some(t("2026-01-01T00:00:00Z")),
            expires_at: Some(t("2026-02-01T00:00:00Z")),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&ctx("2025-12-31T23:59:59Z")), CondOutcome::Unmet(Unmet::NotYetValid));
        assert_eq!(c.evaluate(&ctx("2026-01-01T00:00:00Z")), CondOutcome::Satisfied);
        assert_eq!(c.evaluate(&ctx("2026-01-31T23:59:59Z")), CondOutcome::Satisfied);
        assert_eq!(c.evaluate(&ctx("2026-02-01T00:00:00Z")), CondOutcome::Unmet(Unmet::Expired));
    }

    #[test]
    fn attribute_tests_are_unmet_when_missing_and_named_when_malformed() {
        let c = Conditions::from_json(&serde_json::json!({
            "attributes": [{"attribute": "action.soft", "op": "eq", "value": true}],
            "mfa": {"required": true}
        }))
        .unwrap();
        let mut x = ctx("2026-01-01T00:00:00Z");
        assert_eq!(c.evaluate(&x), CondOutcome::Unmet(Unmet::Attribute), "missing: unmet before step-up");
        x.attributes.action.insert("soft".into(), serde_json::json!(false));
        assert_eq!(c.evaluate(&x), CondOutcome::Unmet(Unmet::Attribute));
        x.attributes.action.insert("soft".into(), serde_json::json!(true));
        assert!(matches!(c.evaluate(&x), CondOutcome::StepUp { .. }), "attributes hold, MFA is missing");
        assert_eq!(c.summary(), "mfa, action.soft eq true");
        let err = |v: serde_json::Value| Conditions::from_json(&v).unwrap_err().path();
        assert_eq!(err(serde_json::json!({"attributes": []})), "conditions.attributes");
        assert_eq!(err(serde_json::json!({"attributes": {}})), "conditions.attributes");
        assert_eq!(
            err(serde_json::json!({"attributes": [{"attribute": "action.soft", "op": "eq", "value": 1},
                                                  {"attribute": "action.soft", "op": "gt", "value": 1}]})),
            "conditions.attributes[1].op"
        );
        assert_eq!(err(serde_json::json!({"attributes": [7]})), "conditions.attributes[0]");
        assert!(Conditions::from_json(&serde_json::json!({"attributes": null})).unwrap().is_empty());
        let never = serde_json::json!({"attributes": [{"attribute": "subject.team", "op": "in", "value": ["a", "b"]},
                                                      {"attribute": "subject.team", "op": "not_in", "value": ["b", "a"]}]});
        assert!(Conditions::from_json(&never).unwrap_err().message.contains("admit no value"));
        let some = serde_json::json!({"attributes": [{"attribute": "subject.team", "op": "in", "value": ["a", "b"]},
                                                     {"attribute": "subject.team", "op": "ne", "value": "a"}]});
        assert!(Conditions::from_json(&some).is_ok());
        let back: Conditions = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c, "stored form round-trips");
    }

    #[test]
    fn serde_rejects_unknown_keys_and_bad_values() {
        let ok: Conditions = serde_json::from_str(r#"{"mfa":{"required":true,"max_age":"15m"},"ip":{"allow":["10.0.0.0/8"]},"expires_at":"2026-12-31T00:00:00Z"}"#).unwrap();
        assert_eq!(ok.mfa.unwrap().max_age, Some(Duration::from_secs(900)));
        let e = serde_json::from_str::<Conditions>(r#"{"mfaa":{}}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `mfaa`"), "{e}");
        let e = serde_json::from_str::<Conditions>(r#"{"ip":{"allow":["10.0.0.0/99"]}}"#).unwrap_err().to_string();
        assert!(e.contains("not an IP range"), "{e}");
        let e = serde_json::from_str::<Conditions>(r#"{"mfa":{"max_age":"soon"}}"#).unwrap_err().to_string();
        assert!(e.contains("not a duration"), "{e}");
        let e = serde_json::from_str::<Conditions>(r#"{"expires_at":"tomorrow"}"#).unwrap_err().to_string();
        assert!(e.contains("RFC 3339"), "{e}");
    }
}
