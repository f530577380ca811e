//! YAML read as kubectl and Helm read it (sigs.k8s.io/yaml over go-yaml, a port of libyaml;
//! here parsed by a safe port of libyaml, so the same texts are accepted), into JSON values as
//! the API server stores them, with the position of every value kept findable.
//!
//! - Plain scalars resolve by YAML 1.1: `yes`/`no`/`on`/`off`/`y`/`n` (any of their spellings)
//!   are booleans; `0644` is octal, `0x3E8` hex, `0b101` binary, `1_000` is 1000; numbers that
//!   do not fit an int64 are floats; timestamps stay strings. Quoted and block scalars, and
//!   `!!str`, are strings.
//! - `<<` merges mappings (the mapping's own keys win, then earlier merged mappings).
//! - A duplicate key, `.inf`/`.nan`, a non-scalar key, or an unresolvable alias is an error at
//!   its line and column.
//! - A mapping entry whose value is null is dropped (the API server decodes it as absent); its
//!   path is kept so that a strict schema check can still report an unknown field.
//! - Input of N bytes is read in O(N): flow collections nested deeper than [`MAX_FLOW_DEPTH`],
//!   any nesting deeper than [`MAX_DEPTH`] and alias expansion beyond [`MAX_ALIAS_NODES`] nodes
//!   are refused.

use std::collections::HashMap;

use libyaml_safer::{EventData, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// Deepest nesting of flow collections (`[`, `{`) accepted.
pub const MAX_FLOW_DEPTH: usize = 100;
/// Deepest nesting of collections accepted.
pub const MAX_DEPTH: usize = 1000;
/// Most value nodes that aliases may expand to in one document.
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(mark: libyaml_safer::Mark) -> Position {
        Position {
            line: usize::try_from(mark.line).unwrap_or(usize::MAX - 1) + 1,
            column: usize::try_from(mark.column).unwrap_or(usize::MAX - 1) + 1,
        }
    }
}

/// A parser event, as far as reading values needs it.
enum Event {
    DocumentStart,
    Scalar {
        text: String,
        plain: bool,
        anchor: Option<String>,
        /// The tag's suffix when it is a YAML core tag (`!!str` -> `str`); other tags do not
        /// change how a value is read.
        core_tag: Option<String>,
    },
    Alias(String),
    SequenceStart(Option<String>),
    MappingStart(Option<String>),
    SequenceEnd,
    MappingEnd,
}

/// The events of a text, each with its start position, until the end of the stream or the
/// first error.
struct Events<'a> {
    parser: Parser<&'a mut &'a [u8]>,
    done: bool,
    /// Where the last event started: the place named when the parser gives up.
    last: Position,
}

impl<'a> Events<'a> {
    fn new(input: &'a mut &'a [u8]) -> Events<'a> {
        let mut parser = Parser::new();
        parser.set_input_string(input);
        Events {
            parser,
            done: false,
            last: Position { line: 1, column: 1 },
        }
    }
}

/// Runs one step of the parser, turning a panic inside it (the port has a few unfinished
/// branches, e.g. a tag directly followed by `,` in a flow collection) into `None`. The panic
/// message is kept off stderr: the caller reports the input error instead.
fn guarded<T>(step: impl FnOnce() -> T) -> Option<T> {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parser = info
                .location()
                .is_some_and(|l| l.file().contains("libyaml-safer"));
            if !in_parser {
                previous(info);
            }
        }));
    });
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).ok()
}

impl Iterator for Events<'_> {
    type Item = Result<(Event, Position), YamlError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let parser = &mut self.parser;
            let Some(step) = guarded(|| parser.parse()) else {
                self.done = true;
                return Some(Err(YamlError {
                    position: self.last,
                    message: "invalid YAML at or after this point: the parser cannot read it (e.g. a tag directly followed by `,` in `[...]` or `{...}`); check the syntax".into(),
                }));
            };
            let event = match step {
                Ok(e) => e,
                Err(e) => {
                    self.done = true;
                    let mark = e.problem_mark().unwrap_or_default();
                    let message = match e.context() {
                        Some(context) => format!("invalid YAML: {context}, {}", e.problem()),
                        None => format!("invalid YAML: {}", e.problem()),
                    };
                    return Some(Err(YamlError {
                        position: Position::of(mark),
                        message,
                    }));
                }
            };
            let position = Position::of(event.start_mark);
            self.last = position;
            let ours = match event.data {
                EventData::StreamEnd => {
                    self.done = true;
                    return None;
                }
                EventData::StreamStart { .. } | EventData::DocumentEnd { .. } => continue,
                EventData::DocumentStart { .. } => Event::DocumentStart,
                EventData::Alias { anchor } => Event::Alias(anchor),
                EventData::Scalar {
                    anchor,
                    tag,
                    value,
                    style,
                    ..
                } => Event::Scalar {
                    text: value,
                    plain: style == ScalarStyle::Plain,
                    anchor,
                    core_tag: tag
                        .and_then(|t| t.strip_prefix("tag:yaml.org,2002:").map(str::to_string)),
                },
                EventData::SequenceStart { anchor, .. } => Event::SequenceStart(anchor),
                EventData::SequenceEnd => Event::SequenceEnd,
                EventData::MappingStart { anchor, .. } => Event::MappingStart(anchor),
                EventData::MappingEnd => Event::MappingEnd,
            };
            return Some(Ok((ours, position)));
        }
        None
    }
}

/// Why a document could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub position: Position,
    pub message: String,
}

/// A mapping entry dropped because its value is null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedNull {
    /// Path of the entry (mapping keys and sequence indexes as strings).
    pub path: Vec<String>,
    pub position: Position,
}

/// One document read from YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The document's value (`Null` for an empty document).
    pub value: Value,
    /// Where the document's content starts.
    pub start: Position,
    /// Mapping entries dropped because their value was null.
    pub dropped_nulls: Vec<DroppedNull>,
    /// Where each item of a top-level `items` sequence starts (for `kind: List`).
    pub item_starts: Vec<Position>,
}

/// Reads one YAML document (the text of one `---`-separated part of a stream).
pub fn parse_document(text: &str) -> Result<Parsed, YamlError> {
    check_flow_depth(text)?;
    let mut builder = Builder::default();
    let mut bytes = text.as_bytes();
    let mut seen_document = false;
    for item in Events::new(&mut bytes) {
        let (event, position) = item?;
        if let Event::DocumentStart = event {
            if seen_document {
                return Err(YamlError {
                    position,
                    message: "invalid YAML: a second document where one was expected; separate documents with a `---` line".into(),
                });
            }
            seen_document = true;
            continue;
        }
        builder.event(event, position)?;
    }
    Ok(builder.finish())
}

/// Refuses text whose flow collections nest deeper than [`MAX_FLOW_DEPTH`], in one pass, before
/// the parser (whose cost grows with that depth for every token) sees it. Brackets inside
/// strings count too: real manifests never come near the limit.
fn check_flow_depth(text: &str) -> Result<(), YamlError> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut column = 0usize;
    for c in text.chars() {
        column += 1;
        match c {
            '\n' => {
                line += 1;
                column = 0;
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(YamlError {
                        position: Position { line, column },
                        message: format!(
                            "flow collections (`[`, `{{`) nested deeper than {MAX_FLOW_DEPTH} levels; write the value in block style"
                        ),
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A collection being built.
enum Frame {
    Sequence {
        items: Vec<Value>,
        anchor: Option<String>,
        /// Index in the parent, or key, for paths.
        at: Option<String>,
    },
    Mapping {
        map: Map<String, Value>,
        anchor: Option<String>,
        at: Option<String>,
        /// The key read and waiting for its value.
        key: Option<Key>,
        /// Keys whose value was null (dropped), to find duplicates.
        null_keys: Vec<String>,
        /// Mappings from `<<`, in order of precedence.
        merges: Vec<Map<String, Value>>,
        /// Where the mapping started, for errors about merges.
        start: Position,
    },
}

struct Key {
    name: String,
    position: Position,
    merge: bool,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<String, (Value, usize)>,
    alias_nodes: usize,
    root: Option<Value>,
    start: Option<Position>,
    dropped_nulls: Vec<DroppedNull>,
    item_starts: Vec<Position>,
}

impl Builder {
    fn finish(self) -> Parsed {
        Parsed {
            value: self.root.unwrap_or(Value::Null),
            start: self.start.unwrap_or(Position { line: 1, column: 1 }),
            dropped_nulls: self.dropped_nulls,
            item_starts: self.item_starts,
        }
    }

    fn event(&mut self, event: Event, position: Position) -> Result<(), YamlError> {
        if self.start.is_none() {
            self.start = Some(position);
        }
        let sequence = matches!(event, Event::SequenceStart(_));
        match event {
            Event::DocumentStart => Ok(()),
            Event::Scalar {
                text,
                plain,
                anchor,
                core_tag,
            } => {
                if self.expects_key() {
                    return self.key(&text, plain, core_tag.as_deref(), position);
                }
                self.note_item_start(position);
                let value = scalar(&text, plain, core_tag.as_deref())
                    .map_err(|message| YamlError { position, message })?;
                self.value(value, anchor)
            }
            Event::Alias(name) => {
                let Some((value, nodes)) = self.anchors.get(&name).cloned() else {
                    return Err(YamlError {
                        position,
                        message: format!("alias *{name} to an anchor that is not defined before it in this document"),
                    });
                };
                self.alias_nodes += nodes;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(YamlError {
                        position,
                        message: format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} values; the document is refused"
                        ),
                    });
                }
                if self.expects_key() {
                    return match value {
                        Value::String(s) => self.key(&s, false, None, position),
                        other => self.key_value(other, position),
                    };
                }
                self.note_item_start(position);
                self.value(value, None)
            }
            Event::SequenceStart(anchor) | Event::MappingStart(anchor) => {
                if self.expects_key() {
                    return Err(YamlError {
                        position,
                        message:
                            "a mapping key must be a scalar; Kubernetes objects have string keys"
                                .into(),
                    });
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        position,
                        message: format!("collections nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                self.note_item_start(position);
                let at = self.child_name();
                let frame = if sequence {
                    Frame::Sequence {
                        items: Vec::new(),
                        anchor,
                        at,
                    }
                } else {
                    Frame::Mapping {
                        map: Map::new(),
                        anchor,
                        at,
                        key: None,
                        null_keys: Vec::new(),
                        merges: Vec::new(),
                        start: position,
                    }
                };
                self.stack.push(frame);
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return Ok(());
                };
                let (value, anchor) = match frame {
                    Frame::Sequence { items, anchor, .. } => (Value::Array(items), anchor),
                    Frame::Mapping {
                        mut map,
                        anchor,
                        merges,
                        ..
                    } => {
                        for merged in merges {
                            for (k, v) in merged {
                                map.entry(k).or_insert(v);
                            }
                        }
                        (Value::Object(map), anchor)
                    }
                };
                self.value(value, anchor)
            }
        }
    }

    fn expects_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }

    /// The name of the next child of the innermost collection (key or index).
    fn child_name(&self) -> Option<String> {
        match self.stack.last()? {
            Frame::Sequence { items, .. } => Some(items.len().to_string()),
            Frame::Mapping { key, .. } => key.as_ref().map(|k| k.name.clone()),
        }
    }

    /// Remembers where the items of a top-level `items` sequence start.
    fn note_item_start(&mut self, position: Position) {
        if let [Frame::Mapping { .. }, Frame::Sequence { at: Some(at), .. }] = self.stack.as_slice()
        {
            if at == "items" {
                self.item_starts.push(position);
            }
        }
    }

    fn key(
        &mut self,
        text: &str,
        plain: bool,
        core_tag: Option<&str>,
        position: Position,
    ) -> Result<(), YamlError> {
        if plain && core_tag.is_none() && text == "<<" {
            if let Some(Frame::Mapping { key, .. }) = self.stack.last_mut() {
                *key = Some(Key {
                    name: "<<".into(),
                    position,
                    merge: true,
                });
            }
            return Ok(());
        }
        let value =
            scalar(text, plain, core_tag).map_err(|message| YamlError { position, message })?;
        self.key_value(value, position)
    }

    /// Takes a resolved key, written as sigs.k8s.io/yaml writes non-string keys.
    fn key_value(&mut self, value: Value, position: Position) -> Result<(), YamlError> {
        let name = match value {
            Value::String(s) => s,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => {
                return Err(YamlError {
                    position,
                    message: "a mapping key is null; quote it (`\"null\"`) or remove it".into(),
                })
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(YamlError {
                    position,
                    message: "a mapping key must be a scalar; Kubernetes objects have string keys"
                        .into(),
                })
            }
        };
        if let Some(Frame::Mapping {
            map,
            key,
            null_keys,
            ..
        }) = self.stack.last_mut()
        {
            if map.contains_key(&name) || null_keys.contains(&name) {
                return Err(YamlError {
                    position,
                    message: format!(
                        "duplicate key `{name}`; kubectl and Helm refuse a mapping that repeats a key: remove one"
                    ),
                });
            }
            *key = Some(Key {
                name,
                position,
                merge: false,
            });
        }
        Ok(())
    }

    /// Places a finished value in its parent (or as the document).
    fn value(&mut self, value: Value, anchor: Option<String>) -> Result<(), YamlError> {
        if let Some(anchor) = anchor {
            let nodes = count_nodes(&value);
            self.anchors.insert(anchor, (value.clone(), nodes));
        }
        let path_for_null = if value.is_null() {
            Some(self.path())
        } else {
            None
        };
        match self.stack.last_mut() {
            None => {
                self.root = Some(value);
                Ok(())
            }
            Some(Frame::Sequence { items, .. }) => {
                items.push(value);
                Ok(())
            }
            Some(Frame::Mapping {
                map,
                key,
                null_keys,
                merges,
                start,
                ..
            }) => {
                let Some(key) = key.take() else {
                    return Ok(());
                };
                if key.merge {
                    return merge_into(merges, value).map_err(|message| YamlError {
                        position: *start,
                        message,
                    });
                }
                if value.is_null() {
                    null_keys.push(key.name.clone());
                    let mut path = path_for_null.unwrap_or_default();
                    path.push(key.name);
                    self.dropped_nulls.push(DroppedNull {
                        path,
                        position: key.position,
                    });
                    return Ok(());
                }
                map.insert(key.name, value);
                Ok(())
            }
        }
    }

    /// Path of the innermost collection from the document root.
    fn path(&self) -> Vec<String> {
        self.stack
            .iter()
            .skip(1)
            .filter_map(|f| match f {
                Frame::Sequence { at, .. } | Frame::Mapping { at, .. } => at.clone(),
            })
            .collect()
    }
}

/// Adds the value of a `<<` key: a mapping or a sequence of mappings.
fn merge_into(merges: &mut Vec<Map<String, Value>>, value: Value) -> Result<(), String> {
    let bad = || {
        "the value of a merge key `<<` must be a mapping or a list of mappings (usually an alias such as `*defaults`)".to_string()
    };
    match value {
        Value::Object(m) => merges.push(m),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) => merges.push(m),
                    _ => return Err(bad()),
                }
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(a) => 1 + a.iter().map(count_nodes).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// The value of a scalar by its style and YAML core tag (`str`, `int`, ...).
fn scalar(text: &str, plain: bool, core_tag: Option<&str>) -> Result<Value, String> {
    match core_tag {
        Some("str" | "binary" | "timestamp") => Ok(Value::String(text.to_string())),
        Some("null") => Ok(Value::Null),
        Some("bool") => match resolve_plain(text)? {
            v @ Value::Bool(_) => Ok(v),
            _ => Err(format!("`!!bool {text}` is not a boolean")),
        },
        Some("int") => match resolve_plain(text)? {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Value::Number(n)),
            _ => Err(format!("`!!int {text}` is not an integer")),
        },
        Some("float") => match resolve_plain(text)? {
            v @ Value::Number(_) => Ok(v),
            _ => Err(format!("`!!float {text}` is not a number")),
        },
        Some(_) => resolve_plain(text),
        None if plain => resolve_plain(text),
        None => Ok(Value::String(text.to_string())),
    }
}

/// Resolves a plain scalar as YAML 1.1 (go-yaml v2) does.
pub fn resolve_plain(text: &str) -> Result<Value, String> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Ok(Value::Bool(true))
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Ok(Value::Bool(false))
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!(
                "`{text}` is not a number JSON can carry (infinity or NaN); quote it to make it a string"
            ))
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if first == b'.' {
        if let Some(n) = parse_float(text) {
            return Ok(Value::Number(n));
        }
        return Ok(Value::String(text.to_string()));
    }
    if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
        return Ok(Value::String(text.to_string()));
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(v) = parse_int(&plain) {
        return Ok(Value::Number(v));
    }
    if is_yaml_float(&plain) {
        if let Some(n) = parse_float(&plain) {
            return Ok(Value::Number(n));
        }
    }
    Ok(Value::String(text.to_string()))
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` (then `ParseUint`) reads it: sign, then
/// `0x`, `0o`, `0b` or a leading `0` (octal) prefix, or decimal.
fn parse_int(s: &str) -> Option<Number> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(r) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        (16, r)
    } else if let Some(r) = digits
        .strip_prefix("0o")
        .or_else(|| digits.strip_prefix("0O"))
    {
        (8, r)
    } else if let Some(r) = digits
        .strip_prefix("0b")
        .or_else(|| digits.strip_prefix("0B"))
    {
        (2, r)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(body, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or_else(|| (magnitude == 1u128 << 63).then_some(i64::MIN))?;
        Some(Number::from(n))
    } else if let Ok(n) = i64::try_from(magnitude) {
        Some(Number::from(n))
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    }
}

/// go-yaml v2's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A float as JSON carries it from Go: integral values within int64 are integers (Go's
/// encoder writes `1.0` as `1`).
fn parse_float(s: &str) -> Option<Number> {
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)] // integral and well within i64
        return Some(Number::from(f as i64));
    }
    Number::from_f64(f)
}

/// An open collection while locating a path.
struct Open {
    mapping: bool,
    index: usize,
    key: Option<String>,
    expect_key: bool,
    on_path: bool,
}

impl Open {
    /// A collection starting with `event`, on the searched path or not.
    fn start(event: &Event, on_path: bool) -> Open {
        Open {
            mapping: matches!(event, Event::MappingStart(_)),
            index: 0,
            key: None,
            expect_key: true,
            on_path,
        }
    }

    /// Moves past the value just read.
    fn advance(&mut self) {
        if self.mapping {
            self.expect_key = true;
            self.key = None;
        } else {
            self.index += 1;
        }
    }
}

/// Where the value at `path` (mapping keys and sequence indexes) is in a YAML document: the
/// key's position for a mapping entry, the item's for a sequence item. `None` when the path
/// is not found (e.g. it comes from a merge or an alias).
pub fn locate(text: &str, path: &[String]) -> Option<Position> {
    if path.is_empty() {
        return None;
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut bytes = text.as_bytes();
    for item in Events::new(&mut bytes) {
        let Ok((event, position)) = item else {
            return None;
        };
        let collection = matches!(event, Event::MappingStart(_) | Event::SequenceStart(_));
        let starts_node = collection || matches!(event, Event::Scalar { .. } | Event::Alias(_));
        let depth = stack.len();
        if starts_node {
            if let Some(top) = stack.last_mut() {
                if top.mapping && top.expect_key {
                    // A key: only scalar keys can name a path step.
                    let key = match &event {
                        Event::Scalar { text, plain, .. } => Some(key_name(text, *plain)),
                        _ => None,
                    };
                    if top.on_path
                        && depth == path.len()
                        && key.as_deref() == Some(&path[depth - 1])
                    {
                        return Some(position);
                    }
                    top.key = key;
                    top.expect_key = false;
                    if collection {
                        // A complex key: skip it as an unnamed collection.
                        stack.push(Open::start(&event, false));
                    }
                    continue;
                }
            }
            let on_path = match stack.last() {
                None => true,
                Some(top) => {
                    top.on_path
                        && depth <= path.len()
                        && if top.mapping {
                            top.key.as_deref() == Some(&path[depth - 1])
                        } else {
                            top.index.to_string() == path[depth - 1]
                        }
                }
            };
            if on_path && depth == path.len() && depth > 0 {
                return Some(position);
            }
            if collection {
                stack.push(Open::start(&event, on_path));
            } else if let Some(top) = stack.last_mut() {
                top.advance();
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
            if let Some(top) = stack.last_mut() {
                top.advance();
            }
        }
    }
    None
}

/// A mapping key as it appears in the JSON object.
fn key_name(text: &str, plain: bool) -> String {
    if !plain {
        return text.to_string();
    }
    match resolve_plain(text) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) | Err(_) => text.to_string(),
        Ok(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
