//! A small, strict parser for SCIM filters and PATCH paths (RFC 7644
//! §3.4.2.2 and §3.5.2), and the evaluation of a filter against a resource
//! as JSON. Pure: no I/O. Inputs are bounded in length and nesting.
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / "not" "(" FILTER ")" / "(" FILTER ")"
//! valuePath = attrPath "[" FILTER "]" [ "." subAttr SP compareOp SP value ]
//! attrExp   = attrPath SP "pr" / attrPath SP compareOp SP compValue
//! logExp    = FILTER SP ("and" / "or") SP FILTER      ; not > and > or
//! PATH      = attrPath / attrPath "[" FILTER "]" [ "." subAttr ]
//! attrPath  = [URN ":"] ATTRNAME [ "." subAttr ]
//! ```
//!
//! Attribute names and operators are case-insensitive. The valuePath form
//! followed by a comparison (`emails[type eq "work"].value eq "x"`, which
//! identity providers send) means "some element matches both".

use serde_json::Value;

/// Longest filter or path accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and brackets.
pub const MAX_DEPTH: usize = 16;

/// `[urn:]attr[.sub]`; `attr` and `sub` as written (compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    /// `attr[filter]`: some element of `attr` matches `filter`.
    ValuePath(AttrPath, Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
}

/// A PATCH operation's target: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub urn: Option<String>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at byte {at}")]
pub struct FilterError {
    pub message: String,
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(Value),
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// `.` right after `]` (`emails[...].value`).
    Dot,
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    if input.len() > MAX_LEN {
        return Err(FilterError { message: format!("is {} bytes long (at most {MAX_LEN})", input.len()), at: 0 });
    }
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            b')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            b'[' => {
                out.push((start, Tok::LBracket));
                i += 1;
            }
            b']' => {
                out.push((start, Tok::RBracket));
                i += 1;
            }
            b'.' => {
                out.push((start, Tok::Dot));
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return Err(FilterError { message: "unterminated string".into(), at: start });
                }
                i += 1;
                let s: String = serde_json::from_str(&input[start..i])
                    .map_err(|_| FilterError { message: "invalid string escape".into(), at: start })?;
                out.push((start, Tok::Str(s)));
            }
            b'-' | b'0'..=b'9' => {
                while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E')) {
                    i += 1;
                }
                let n: serde_json::Number = input[start..i].parse().map_err(|_| FilterError {
                    message: format!("`{}` is not a number", &input[start..i]),
                    at: start,
                })?;
                out.push((start, Tok::Num(Value::Number(n))));
            }
            c if c.is_ascii_alphabetic() || c == b'$' || c == b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'$' | b'_' | b'-' | b':' | b'.'))
                {
                    i += 1;
                }
                out.push((start, Tok::Word(input[start..i].to_string())));
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(FilterError { message: format!("unexpected `{}`", ch.escape_default()), at: start });
            }
        }
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
}

/// Parses `[urn:]attr[.sub]`. The URN is everything up to the last `:`
/// (it may itself contain dots, as in `...:core:2.0:User`).
pub fn parse_attr_path(word: &str) -> Result<AttrPath, String> {
    let (urn, rest) = match word.rfind(':') {
        Some(i) if word[..i].to_ascii_lowercase().starts_with("urn:") => (Some(word[..i].to_string()), &word[i + 1..]),
        Some(_) => return Err(format!("`{word}` is not an attribute path")),
        None => (None, word),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    if !valid_name(attr) || sub.is_some_and(|s| !valid_name(s)) {
        return Err(format!("`{word}` is not an attribute path"));
    }
    Ok(AttrPath { urn, attr: attr.to_string(), sub: sub.map(str::to_string) })
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
}

fn op_of(w: &str) -> Option<CompareOp> {
    Some(match w.to_ascii_lowercase().as_str() {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        _ => return None,
    })
}

impl Parser {
    fn new(input: &str) -> Result<Self, FilterError> {
        Ok(Parser { toks: lex(input)?, pos: 0, end: input.len(), depth: 0 })
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.0)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError { message: message.into(), at: self.at() })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.1.clone());
        self.pos += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected {what}"))
        }
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") && matches!(self.toks.get(self.pos + 1), Some((_, Tok::LParen))) {
            self.pos += 2;
            self.enter()?;
            let f = self.or()?;
            self.expect(Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(f)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.enter()?;
            let f = self.or()?;
            self.expect(Tok::RParen, "`)`")?;
            self.depth -= 1;
            return Ok(f);
        }
        self.attr_exp()
    }

    fn attr_path(&mut self) -> Result<AttrPath, FilterError> {
        let at = self.at();
        match self.next() {
            Some(Tok::Word(w)) => parse_attr_path(&w).map_err(|message| FilterError { message, at }),
            _ => Err(FilterError { message: "expected an attribute name".into(), at }),
        }
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, FilterError> {
        let at = self.at();
        let Some(Tok::Word(w)) = self.next() else {
            return Err(FilterError { message: "expected an operator (`eq`, `pr`, ...)".into(), at });
        };
        if w.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = op_of(&w).ok_or_else(|| FilterError { message: format!("`{w}` is not an operator"), at })?;
        let at = self.at();
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s),
            Some(Tok::Num(n)) => n,
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Value::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Value::Null,
            _ => {
                return Err(FilterError { message: "expected a value (string, number, true, false, null)".into(), at })
            }
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn attr_exp(&mut self) -> Result<Filter, FilterError> {
        let path = self.attr_path()?;
        if self.peek() != Some(&Tok::LBracket) {
            return self.comparison(path);
        }
        if path.sub.is_some() {
            return self.err("a `[filter]` follows an attribute, not a sub-attribute");
        }
        self.pos += 1;
        self.enter()?;
        let inner = self.or()?;
        self.expect(Tok::RBracket, "`]`")?;
        self.depth -= 1;
        if self.peek() == Some(&Tok::Dot) {
            self.pos += 1;
            let at = self.at();
            let sub = match self.next() {
                Some(Tok::Word(w)) if valid_name(&w) => w,
                _ => return Err(FilterError { message: "expected a sub-attribute after `].`".into(), at }),
            };
            let cmp = self.comparison(AttrPath { urn: None, attr: sub, sub: None })?;
            return Ok(Filter::ValuePath(path, Box::new(Filter::And(Box::new(inner), Box::new(cmp)))));
        }
        Ok(Filter::ValuePath(path, Box::new(inner)))
    }
}

/// Parses a filter (`userName eq "bjensen" and active eq true`).
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    let mut p = Parser::new(input)?;
    if p.toks.is_empty() {
        return p.err("the filter is empty");
    }
    let f = p.or()?;
    if p.pos < p.toks.len() {
        return p.err("unexpected text after the filter");
    }
    Ok(f)
}

/// Parses a PATCH path (`members[value eq "2819c223"]`, `name.givenName`).
pub fn parse_path(input: &str) -> Result<PatchPath, FilterError> {
    let mut p = Parser::new(input)?;
    let path = p.attr_path()?;
    let mut out = PatchPath { urn: path.urn, attr: path.attr, filter: None, sub: path.sub };
    if p.peek() == Some(&Tok::LBracket) {
        if out.sub.is_some() {
            return p.err("a `[filter]` follows an attribute, not a sub-attribute");
        }
        p.pos += 1;
        p.enter()?;
        out.filter = Some(p.or()?);
        p.expect(Tok::RBracket, "`]`")?;
        if p.peek() == Some(&Tok::Dot) {
            p.pos += 1;
            let at = p.at();
            match p.next() {
                Some(Tok::Word(w)) if valid_name(&w) => out.sub = Some(w),
                _ => return Err(FilterError { message: "expected a sub-attribute after `].`".into(), at }),
            }
        }
    }
    if p.pos < p.toks.len() {
        return p.err("unexpected text after the path");
    }
    Ok(out)
}

// ---------------------------------------------------------------- evaluation

/// The value of `key` in an object, matching the key case-insensitively.
pub fn get_ci<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The values a path names in a resource: every element of a multi-valued
/// attribute, the `value` sub-attribute of complex ones when no
/// sub-attribute is named.
fn values_at<'a>(doc: &'a Value, p: &AttrPath) -> Vec<&'a Value> {
    let Some(obj) = doc.as_object() else { return vec![] };
    let container = match &p.urn {
        Some(urn) if !urn.to_ascii_lowercase().contains(":core:") => {
            match get_ci(obj, urn).and_then(Value::as_object) {
                Some(o) => o,
                None => return vec![],
            }
        }
        _ => obj,
    };
    let Some(v) = get_ci(container, &p.attr) else { return vec![] };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| match (&p.sub, item) {
            (Some(s), Value::Object(o)) => get_ci(o, s),
            (Some(_), _) => None,
            (None, Value::Object(o)) => get_ci(o, "value"),
            (None, other) => Some(other),
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, case_exact: bool) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (actual, expected) {
        (Value::String(a), Value::String(e)) => {
            let (a, e) = if case_exact { (a.clone(), e.clone()) } else { (a.to_lowercase(), e.to_lowercase()) };
            return match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            };
        }
        (Value::Number(a), Value::Number(e)) => a.as_f64().zip(e.as_f64()).and_then(|(a, e)| a.partial_cmp(&e)),
        (Value::Bool(a), Value::Bool(e)) => {
            return match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                _ => false,
            }
        }
        _ => return op == CompareOp::Ne,
    };
    match (op, ord) {
        (CompareOp::Eq, Some(o)) => o == Ordering::Equal,
        (CompareOp::Ne, Some(o)) => o != Ordering::Equal,
        (CompareOp::Gt, Some(o)) => o == Ordering::Greater,
        (CompareOp::Ge, Some(o)) => o != Ordering::Less,
        (CompareOp::Lt, Some(o)) => o == Ordering::Less,
        (CompareOp::Le, Some(o)) => o != Ordering::Greater,
        _ => false,
    }
}

/// Does `doc` match `f`? `case_exact(attr, sub)` says which attributes
/// compare strings case-sensitively (`id`, `externalId`...).
pub fn matches(f: &Filter, doc: &Value, case_exact: &dyn Fn(&str, Option<&str>) -> bool) -> bool {
    match f {
        Filter::Present(p) => values_at(doc, p).iter().any(|v| match v {
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        }),
        Filter::Compare(p, op, expected) => {
            let exact = case_exact(&p.attr, p.sub.as_deref());
            let vals = values_at(doc, p);
            if expected.is_null() {
                return match op {
                    CompareOp::Eq => vals.is_empty(),
                    CompareOp::Ne => !vals.is_empty(),
                    _ => false,
                };
            }
            if *op == CompareOp::Ne {
                return vals.iter().all(|v| compare(v, CompareOp::Ne, expected, exact));
            }
            vals.iter().any(|v| compare(v, *op, expected, exact))
        }
        Filter::ValuePath(p, inner) => {
            let Some(obj) = doc.as_object() else { return false };
            let elements: Vec<&Value> = match get_ci(obj, &p.attr) {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(v) => vec![v],
                None => vec![],
            };
            let attr = p.attr.clone();
            let inner_exact = move |a: &str, _s: Option<&str>| case_exact(&attr, Some(a));
            elements.into_iter().any(|e| matches(inner, e, &inner_exact))
        }
        Filter::And(a, b) => matches(a, doc, case_exact) && matches(b, doc, case_exact),
        Filter::Or(a, b) => matches(a, doc, case_exact) || matches(b, doc, case_exact),
        Filter::Not(a) => !matches(a, doc, case_exact),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ap(attr: &str, sub: Option<&str>) -> AttrPath {
        AttrPath { urn: None, attr: attr.into(), sub: sub.map(Into::into) }
    }

    fn exact(a: &str, s: Option<&str>) -> bool {
        matches!((a, s), ("id" | "externalId", None) | ("members", Some("value")))
    }

    #[test]
    fn parses_the_filters_identity_providers_send() {
        assert_eq!(
            parse(r#"userName eq "bjensen@example.com""#).unwrap(),
            Filter::Compare(ap("userName", None), CompareOp::Eq, json!("bjensen@example.com"))
        );
        assert_eq!(
            parse(r#"UserName EQ "x""#).unwrap(),
            Filter::Compare(ap("UserName", None), CompareOp::Eq, json!("x"))
        );
        let f = parse(r#"externalId eq "00u1" and emails[type eq "work"].value eq "a@b.c""#).unwrap();
        let Filter::And(a, b) = f else { panic!("and") };
        assert_eq!(*a, Filter::Compare(ap("externalId", None), CompareOp::Eq, json!("00u1")));
        assert!(matches!(*b, Filter::ValuePath(ref p, _) if p.attr == "emails"));
        assert_eq!(parse("title pr").unwrap(), Filter::Present(ap("title", None)));
        assert_eq!(
            parse("name.familyName co \"O'Malley\"").unwrap(),
            Filter::Compare(ap("name", Some("familyName")), CompareOp::Co, json!("O'Malley"))
        );
        let f = parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#).unwrap();
        let Filter::Compare(p, CompareOp::Sw, _) = f else { panic!("compare") };
        assert_eq!(p.urn.as_deref(), Some("urn:ietf:params:scim:schemas:core:2.0:User"));
        assert_eq!(p.attr, "userName");
        // not > and > or
        let f = parse(r#"a eq 1 or b eq 2 and not (c eq 3)"#).unwrap();
        assert!(
            matches!(f, Filter::Or(_, ref r) if matches!(**r, Filter::And(_, ref n) if matches!(**n, Filter::Not(_))))
        );
        assert_eq!(parse("active eq True").unwrap(), Filter::Compare(ap("active", None), CompareOp::Eq, json!(true)));
        assert_eq!(parse("x gt -1.5").unwrap(), Filter::Compare(ap("x", None), CompareOp::Gt, json!(-1.5)));
    }

    #[test]
    fn rejects_malformed_and_oversized_input() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName equals \"x\"",
            "userName eq \"x",
            "userName eq \"x\" and",
            "(userName eq \"x\"",
            "emails[type eq \"work\"",
            "userName eq x",
            "userName eq \"x\" extra",
            "user;Name eq \"x\"",
            "1abc eq 1",
            "a.b.c eq 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let deep = format!("{}a eq 1{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
        let long = format!("a eq \"{}\"", "x".repeat(MAX_LEN));
        assert!(parse(&long).unwrap_err().message.contains("at most"));
        let e = parse("userName xx \"a\"").unwrap_err();
        assert_eq!(e.to_string(), "`xx` is not an operator at byte 9");
    }

    #[test]
    fn parses_patch_paths() {
        let p = parse_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!(p.attr, "members");
        assert_eq!(p.filter, Some(Filter::Compare(ap("value", None), CompareOp::Eq, json!("2819c223"))));
        let p = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!((p.attr.as_str(), p.sub.as_deref()), ("emails", Some("value")));
        let p = parse_path("name.givenName").unwrap();
        assert_eq!((p.attr.as_str(), p.sub.as_deref(), p.filter), ("name", Some("givenName"), None));
        let p = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber").unwrap();
        assert_eq!(p.urn.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert!(parse_path("members[value eq \"x\"] junk").is_err());
        assert!(parse_path("name.givenName[value eq \"x\"]").is_err());
    }

    #[test]
    fn evaluates_against_resources() {
        let doc = json!({
            "id": "u1", "userName": "BJensen@example.com", "externalId": "00uAbC", "active": true,
            "name": {"givenName": "Barbara"},
            "emails": [{"value": "b@home.example", "type": "home"}, {"value": "bjensen@work.example", "type": "work"}],
            "members": [{"value": "abc"}]
        });
        let m = |f: &str| matches(&parse(f).unwrap(), &doc, &exact);
        assert!(m(r#"userName eq "bjensen@example.com""#), "userName is case-insensitive");
        assert!(!m(r#"externalId eq "00uabc""#), "externalId is case-exact");
        assert!(m(r#"externalId eq "00uAbC""#));
        assert!(m(r#"emails[type eq "work"].value eq "bjensen@work.example""#));
        assert!(!m(r#"emails[type eq "home"].value eq "bjensen@work.example""#));
        assert!(m(r#"emails eq "b@home.example""#), "a complex multi-valued attribute compares its `value`");
        assert!(m(r#"emails[type eq "work" and value ew "@work.example"]"#));
        assert!(m(r#"name.givenName sw "bar" and active eq true"#));
        assert!(m(r#"title eq null"#));
        assert!(!m(r#"title pr"#));
        assert!(m(r#"not (active eq false)"#));
        assert!(m(r#"members[value eq "abc"]"#));
        assert!(!m(r#"members[value eq "ABC"]"#));
        assert!(m(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName ew "example.com""#));
        assert!(!m(r#"userName ne "bjensen@example.com""#));
    }
}
