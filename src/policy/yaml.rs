//! A small YAML reader that keeps the position of every node, built on the
//! event parser of `yaml-rust2`.
//!
//! Why not `yaml_rust2::YamlLoader`: it drops positions, follows aliases
//! (billion-laughs), recurses without a depth limit and silently keeps the
//! last of two duplicate keys. This reader:
//!
//! - records a 1-based line/column [`Span`] for every node;
//! - keeps mapping entries in document order;
//! - types plain scalars per the YAML 1.2 core schema (`null`/`~`/empty,
//!   `true`/`false`, integers, floats, else string); quoted and block
//!   scalars are always strings;
//! - rejects aliases, custom tags, several documents, duplicate keys, nesting
//!   deeper than [`MAX_DEPTH`] and more than [`MAX_NODES`] nodes with a
//!   [`YamlError`] instead of panicking or exhausting memory.
//!
//! JSON is valid YAML, so JSON documents are read too.

use std::{collections::HashMap, fmt};

use serde::Serialize;
use yaml_rust2::{
    parser::{Event, Parser, Tag},
    scanner::{Marker, ScanError, TScalarStyle},
};

/// Deepest nesting of sequences and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, sequences, mappings, keys included) accepted.
pub const MAX_NODES: usize = 2_000_000;

/// A position in the source text, 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub const START: Span = Span { line: 1, col: 1 };

    fn from_marker(m: &Marker) -> Span {
        // yaml-rust2 markers: line is 1-based, column is 0-based.
        Span { line: m.line().max(1), col: m.col().saturating_add(1) }
    }
}

impl Default for Span {
    fn default() -> Self {
        Span::START
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.col)
    }
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order: `(key, value)`.
    Map(Vec<(Node, Node)>),
}

/// A value and where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

impl Node {
    pub fn new(value: Value, span: Span) -> Node {
        Node { value, span }
    }

    /// A short description for error messages: "a string", "a list", "a map"...
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under a string key of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// The text of a scalar as written in canonical form (`42`, `true`,
    /// `null`, the string itself); `None` for sequences and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some("null".to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(x) => Some(float_text(*x)),
            Value::Str(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Converts to JSON. Non-string keys become their text (`1` -> `"1"`,
    /// collections as compact JSON); non-finite floats become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x).map(J::Number).unwrap_or(J::Null),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    let key = k.scalar_text().unwrap_or_else(|| k.to_json().to_string());
                    out.insert(key, v.to_json());
                }
                J::Object(out)
            }
        }
    }
}

fn float_text(x: f64) -> String {
    if x.is_nan() {
        ".nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { ".inf" } else { "-.inf" }.to_string()
    } else {
        format!("{x:?}")
    }
}

/// What went wrong, for callers that report some errors differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum YamlErrorKind {
    /// Not well-formed YAML (as reported by the scanner/parser).
    Syntax,
    /// A feature this reader refuses: aliases, custom tags, several documents.
    Unsupported,
    /// Nesting depth or node count over the limits.
    Limit,
    /// The same key twice in one mapping.
    DuplicateKey,
}

/// A YAML error with the position it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct YamlError {
    pub span: Span,
    /// Lowercase, e.g. "yaml syntax error: did not find expected key".
    pub message: String,
    pub kind: YamlErrorKind,
}

impl YamlError {
    fn new(kind: YamlErrorKind, span: Span, message: impl Into<String>) -> YamlError {
        YamlError { span, message: message.into(), kind }
    }

    fn from_scan(e: &ScanError) -> YamlError {
        // The scanner looks ahead in flow collections and may hit its own
        // nesting limit (255) before we see the events that would hit ours.
        if e.info() == "recursion limit exceeded" {
            return YamlError::new(
                YamlErrorKind::Limit,
                Span::from_marker(e.marker()),
                format!("yaml nesting depth is over the limit of {MAX_DEPTH}"),
            );
        }
        YamlError::new(YamlErrorKind::Syntax, Span::from_marker(e.marker()), format!("yaml syntax error: {}", e.info()))
    }
}

/// Parses one YAML (or JSON) document. An empty document (or one holding
/// only comments) is a `Null` node at line 1, column 1.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    // The reader itself never panics; this guards against a panic inside the
    // third-party scanner on some unforeseen input.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_inner(text))) {
        Ok(result) => result,
        Err(_) => Err(YamlError::new(
            YamlErrorKind::Syntax,
            Span::START,
            "yaml syntax error: the yaml parser failed on this input",
        )),
    }
}

enum Frame {
    Seq {
        span: Span,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        start: usize,
        entries: Vec<(Node, Node)>,
        key: Option<(Node, usize)>,
        seen: HashMap<KeyRepr, Span>,
    },
}

/// Identity of a scalar key for duplicate detection (`1` and `"1"` differ,
/// as in YAML).
#[derive(PartialEq, Eq, Hash)]
enum KeyRepr {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
}

fn key_repr(v: &Value) -> Option<KeyRepr> {
    Some(match v {
        Value::Null => KeyRepr::Null,
        Value::Bool(b) => KeyRepr::Bool(*b),
        Value::Int(i) => KeyRepr::Int(*i),
        Value::Float(x) => KeyRepr::Float(x.to_bits()),
        Value::Str(s) => KeyRepr::Str(s.clone()),
        Value::Seq(_) | Value::Map(_) => return None,
    })
}

fn shown_key(node: &Node) -> String {
    let text = node.scalar_text().unwrap_or_default();
    let mut shown: String = text.chars().take(64).collect();
    if text.chars().count() > 64 {
        shown.push('…');
    }
    shown
}

fn parse_inner(text: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes: usize = 0;
    let mut documents: usize = 0;

    loop {
        let (event, mark) = parser.next_token().map_err(|e| YamlError::from_scan(&e))?;
        let span = Span::from_marker(&mark);
        let completed = match event {
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => None,
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::new(
                        YamlErrorKind::Unsupported,
                        span,
                        "multiple documents are not supported: put the whole policy in one document",
                    ));
                }
                None
            }
            Event::Alias(_) => {
                return Err(YamlError::new(
                    YamlErrorKind::Unsupported,
                    span,
                    "aliases are not supported: repeat the value instead of using `*name`",
                ));
            }
            Event::Scalar(value, style, _anchor, tag) => {
                count(&mut nodes, span)?;
                Some(Node::new(resolve_scalar(value, style, tag.as_ref(), span)?, span))
            }
            Event::SequenceStart(_anchor, tag) => {
                check_collection_tag(tag.as_ref(), "seq", span)?;
                count(&mut nodes, span)?;
                check_depth(stack.len(), span)?;
                stack.push(Frame::Seq { span, items: Vec::new() });
                None
            }
            Event::MappingStart(_anchor, tag) => {
                check_collection_tag(tag.as_ref(), "map", span)?;
                count(&mut nodes, span)?;
                check_depth(stack.len(), span)?;
                stack.push(Frame::Map {
                    span,
                    start: mark.index(),
                    entries: Vec::new(),
                    key: None,
                    seen: HashMap::new(),
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { span, items }) => Some(Node::new(Value::Seq(items), span)),
                _ => {
                    return Err(YamlError::new(
                        YamlErrorKind::Syntax,
                        span,
                        "yaml syntax error: unexpected end of sequence",
                    ))
                }
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { span, entries, key: None, .. }) => Some(Node::new(Value::Map(entries), span)),
                _ => {
                    return Err(YamlError::new(
                        YamlErrorKind::Syntax,
                        span,
                        "yaml syntax error: unexpected end of mapping",
                    ))
                }
            },
        };
        let Some(node) = completed else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key: key @ Some(_), .. }) => {
                if let Some((k, _)) = key.take() {
                    entries.push((k, node));
                }
            }
            Some(Frame::Map { span: map_span, start, entries, key: key @ None, seen }) => {
                // Block mappings are reported one character after their
                // first key; start them at that key instead.
                if entries.is_empty() && mark.index() < *start {
                    *map_span = node.span;
                    *start = mark.index();
                }
                if let Some(repr) = key_repr(&node.value) {
                    if let Some(first) = seen.get(&repr) {
                        return Err(YamlError::new(
                            YamlErrorKind::DuplicateKey,
                            node.span,
                            format!(
                                "duplicate key `{}` (first at line {}, again at line {})",
                                shown_key(&node),
                                first.line,
                                node.span.line
                            ),
                        ));
                    }
                    seen.insert(repr, node.span);
                }
                *key = Some((node, mark.index()));
            }
        }
    }
    if !stack.is_empty() {
        return Err(YamlError::new(YamlErrorKind::Syntax, Span::START, "yaml syntax error: unexpected end of input"));
    }
    Ok(root.unwrap_or(Node::new(Value::Null, Span::START)))
}

fn count(nodes: &mut usize, span: Span) -> Result<(), YamlError> {
    *nodes += 1;
    if *nodes > MAX_NODES {
        return Err(YamlError::new(YamlErrorKind::Limit, span, format!("too many yaml nodes (at most {MAX_NODES})")));
    }
    Ok(())
}

fn check_depth(open: usize, span: Span) -> Result<(), YamlError> {
    if open >= MAX_DEPTH {
        return Err(YamlError::new(
            YamlErrorKind::Limit,
            span,
            format!("yaml nesting depth is over the limit of {MAX_DEPTH}"),
        ));
    }
    Ok(())
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn tag_text(tag: &Tag) -> String {
    let t = format!("{}{}", tag.handle, tag.suffix);
    t.chars().take(64).collect()
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, span: Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle == CORE_TAG && t.suffix == expected => Ok(()),
        Some(t) if t.handle == "!" && t.suffix.is_empty() => Ok(()),
        Some(t) => Err(YamlError::new(
            YamlErrorKind::Unsupported,
            span,
            format!("tags are not supported here (`{}`)", tag_text(t)),
        )),
    }
}

fn resolve_scalar(text: String, style: TScalarStyle, tag: Option<&Tag>, span: Span) -> Result<Value, YamlError> {
    if let Some(t) = tag {
        let core = if t.handle == CORE_TAG { Some(t.suffix.as_str()) } else { None };
        return match core {
            Some("str") => Ok(Value::Str(text)),
            _ if t.handle == "!" && t.suffix.is_empty() => Ok(Value::Str(text)),
            Some(kind @ ("null" | "bool" | "int" | "float")) => {
                let v = resolve_plain(&text);
                let ok = matches!(
                    (kind, &v),
                    ("null", Value::Null)
                        | ("bool", Value::Bool(_))
                        | ("int", Value::Int(_))
                        | ("float", Value::Float(_))
                );
                match (ok, kind, &v) {
                    (true, _, _) => Ok(v),
                    (false, "float", Value::Int(i)) => Ok(Value::Float(*i as f64)),
                    _ => Err(YamlError::new(
                        YamlErrorKind::Syntax,
                        span,
                        format!(
                            "yaml syntax error: `{}` is not a valid !!{kind}",
                            text.chars().take(64).collect::<String>()
                        ),
                    )),
                }
            }
            _ => Err(YamlError::new(
                YamlErrorKind::Unsupported,
                span,
                format!("tags are not supported here (`{}`)", tag_text(t)),
            )),
        };
    }
    Ok(match style {
        TScalarStyle::Plain => resolve_plain(&text),
        _ => Value::Str(text),
    })
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = resolve_int(text) {
        return v;
    }
    if is_core_float(text) {
        if let Ok(x) = text.parse::<f64>() {
            return Value::Float(x);
        }
    }
    Value::Str(text.to_string())
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Integers out of the i64
/// range stay strings (no silent precision loss).
fn resolve_int(text: &str) -> Option<Value> {
    let parsed = if let Some(oct) = text.strip_prefix("0o") {
        if oct.is_empty() || !oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        i64::from_str_radix(oct, 8).ok()
    } else if let Some(hex) = text.strip_prefix("0x") {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(hex, 16).ok()
    } else {
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<i64>().ok()
    };
    Some(parsed.map(Value::Int).unwrap_or_else(|| Value::Str(text.to_string())))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = s.get(i..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = s.get(i..).map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count());
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(line: usize, col: usize) -> Span {
        Span { line, col }
    }

    #[test]
    fn block_document_with_positions_and_order() {
        let text = "b: 1\na:\n  - x\n  - \"y\"\n  - 'true'\nc: {d: e, f: [1, 2.5]}\nz:\n";
        let root = parse(text).unwrap();
        assert_eq!(root.span, sp(1, 1));
        let entries = root.as_map().unwrap();
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(keys, ["b", "a", "c", "z"], "document order");
        assert_eq!(entries[0].0.span, sp(1, 1));
        assert_eq!(entries[0].1, Node::new(Value::Int(1), sp(1, 4)));
        let seq = root.get("a").unwrap();
        assert_eq!(seq.span, sp(3, 3));
        let items = seq.as_seq().unwrap();
        assert_eq!(items[0], Node::new(Value::Str("x".into()), sp(3, 5)));
        assert_eq!(items[1], Node::new(Value::Str("y".into()), sp(4, 5)));
        assert_eq!(items[2].value, Value::Str("true".into()), "quoted scalars stay strings");
        let c = root.get("c").unwrap();
        assert_eq!(c.span, sp(6, 4), "flow map starts at `{{`");
        assert_eq!(c.get("d").unwrap().span, sp(6, 8));
        assert_eq!(c.get("f").unwrap().as_seq().unwrap()[1].value, Value::Float(2.5));
        assert!(root.get("z").unwrap().is_null());
        assert_eq!(
            root.to_json(),
            serde_json::json!({"b": 1, "a": ["x", "y", "true"], "c": {"d": "e", "f": [1, 2.5]}, "z": null})
        );
    }

    #[test]
    fn nested_block_map_starts_at_its_first_key() {
        let root = parse("outer:\n  inner:\n    k: v\n").unwrap();
        let outer = root.get("outer").unwrap();
        assert_eq!(outer.span, sp(2, 3));
        assert_eq!(outer.get("inner").unwrap().span, sp(3, 5));
    }

    #[test]
    fn core_schema_scalars() {
        let cases: &[(&str, Value)] = &[
            ("~", Value::Null),
            ("null", Value::Null),
            ("NULL", Value::Null),
            ("true", Value::Bool(true)),
            ("False", Value::Bool(false)),
            ("yes", Value::Str("yes".into())),
            ("42", Value::Int(42)),
            ("-7", Value::Int(-7)),
            ("+3", Value::Int(3)),
            ("0o17", Value::Int(15)),
            ("0x1F", Value::Int(31)),
            ("1.5", Value::Float(1.5)),
            ("-.5e3", Value::Float(-500.0)),
            ("1e3", Value::Float(1000.0)),
            (".inf", Value::Float(f64::INFINITY)),
            ("10.1.2.3", Value::Str("10.1.2.3".into())),
            ("15m", Value::Str("15m".into())),
            ("2026-12-31T00:00:00Z", Value::Str("2026-12-31T00:00:00Z".into())),
            ("99999999999999999999", Value::Str("99999999999999999999".into())),
            ("1e", Value::Str("1e".into())),
            (".", Value::Str(".".into())),
            ("0x", Value::Str("0x".into())),
        ];
        for (text, want) in cases {
            let node = parse(&format!("v: {text}")).unwrap();
            assert_eq!(&node.get("v").unwrap().value, want, "{text}");
        }
        assert!(matches!(parse("v: .nan").unwrap().get("v").unwrap().value, Value::Float(x) if x.is_nan()));
        assert_eq!(parse("v: !!str 42").unwrap().get("v").unwrap().value, Value::Str("42".into()));
        assert_eq!(parse("v: |\n  12\n").unwrap().get("v").unwrap().value, Value::Str("12\n".into()));
    }

    #[test]
    fn json_is_read_too() {
        let root = parse(r#"{"a": [1, "two", null, true], "b": {"c": -1.5}}"#).unwrap();
        assert_eq!(root.to_json(), serde_json::json!({"a": [1, "two", null, true], "b": {"c": -1.5}}));
    }

    #[test]
    fn empty_input_is_null() {
        for text in ["", "   \n", "# only a comment\n", "---\n"] {
            let node = parse(text).unwrap();
            assert!(node.is_null(), "{text:?}");
        }
        assert_eq!(parse("").unwrap().span, Span::START);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1\nb: 2").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Syntax);
        assert!(e.message.starts_with("yaml syntax error: "), "{e}");
        assert_eq!(e.span.line, 2);
        let e = parse("a: b\n c: d\n").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Syntax);
        assert!(e.to_string().starts_with("line "), "{e}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let e = parse("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::DuplicateKey);
        assert_eq!(e.span, sp(5, 3));
        assert_eq!(e.message, "duplicate key `x` (first at line 3, again at line 5)");
        let e = parse("{\"a\": 1, \"a\": 2}").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::DuplicateKey);
        // Same key text in different maps, and `1` vs `"1"`, are fine.
        assert!(parse("a: {x: 1}\nb: {x: 1}\n").is_ok());
        assert!(parse("1: a\n'1': b\n").is_ok());
    }

    #[test]
    fn aliases_and_custom_tags_are_rejected() {
        let e = parse("a: &x [1, 2]\nb: *x\n").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Unsupported);
        assert!(e.message.starts_with("aliases are not supported"), "{e}");
        assert_eq!(e.span, sp(2, 4));
        // An anchor alone is harmless.
        assert!(parse("a: &x 1\n").is_ok());
        let e = parse("a: !custom 1\n").unwrap_err();
        assert!(e.message.contains("tags are not supported"), "{e}");
        let e = parse("a: !!int nope\n").unwrap_err();
        assert!(e.message.contains("!!int"), "{e}");
    }

    #[test]
    fn multiple_documents_are_rejected() {
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Unsupported);
        assert!(e.message.contains("multiple documents"), "{e}");
        assert_eq!(e.span.line, 2);
        assert!(parse("---\na: 1\n...\n").is_ok());
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(10_000);
        let e = parse(&deep).unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Limit, "{e}");
        assert!(e.message.contains("depth"), "{e}");
        let deep_maps = "{a: ".repeat(10_000);
        assert_eq!(parse(&deep_maps).unwrap_err().kind, YamlErrorKind::Limit);
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&" ".repeat(i));
            block.push_str("k:\n");
        }
        assert_eq!(parse(&block).unwrap_err().kind, YamlErrorKind::Limit);
        // Exactly MAX_DEPTH is fine.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let over = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&over).is_err());
    }

    #[test]
    fn node_limit() {
        let mut text = String::with_capacity(MAX_NODES * 3);
        text.push('[');
        for _ in 0..MAX_NODES {
            text.push_str("1,");
        }
        text.push(']');
        let e = parse(&text).unwrap_err();
        assert_eq!(e.kind, YamlErrorKind::Limit);
        assert!(e.message.contains("too many"), "{e}");
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "\u{0}",
            "]",
            "}",
            ":",
            "- - - -",
            "? ? ?",
            "a: 'unterminated",
            "\"\\uZZZZ\"",
            "%YAML 1.2\n%YAML 1.2\n---\n",
            "&a",
            "*a",
            "!",
            "!!",
            "{a: 1, b}",
            "[a: b: c]",
            "\t- a",
            "a:\n\t- b",
            "- a\nb: c",
            "|\n  x\n y",
            "--- |\n\u{feff}",
        ] {
            let _ = parse(text);
        }
    }
}
