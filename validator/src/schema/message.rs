//! Schema errors as users read them: `field.path[0].name: problem`.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError};
use serde_json::Value;

use super::dialect::{BYTE_FORMAT, DURATION_FORMAT, QUANTITY_FORMAT};

/// The messages for one error (several when it lists several unknown fields), each with the
/// path (keys and indexes) of the field it is about. `schema` is the root schema the error
/// comes from, used to suggest the field meant by an unknown one.
pub fn messages(
    error: &ValidationError<'_>,
    instance: &Value,
    schema: &Value,
) -> Vec<(Vec<String>, String)> {
    let tokens = pointer_tokens(error.instance_path().as_str());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let path = field_path(error.instance_path().as_str(), instance);
            let known = known_fields(schema, error.evaluation_path().as_str());
            unexpected
                .iter()
                .map(|name| {
                    let mut at = tokens.clone();
                    at.push(name.clone());
                    (at, unknown_field(&path, name, &known))
                })
                .collect()
        }
        _ => texts(error, instance, schema)
            .into_iter()
            .map(|m| (tokens.clone(), m))
            .collect(),
    }
}

/// The message about an unknown field `name` under `path`, suggesting the closest known one.
pub fn unknown_field(path: &str, name: &str, known: &[&str]) -> String {
    match closest(name, known) {
        Some(s) => format!("{}: unknown field (did you mean {s}?)", join(path, name)),
        None => format!("{}: unknown field", join(path, name)),
    }
}

/// The tokens of a JSON pointer.
pub fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

fn texts(error: &ValidationError<'_>, instance: &Value, schema: &Value) -> Vec<String> {
    let path = field_path(error.instance_path().as_str(), instance);
    let value = error.instance();
    let at = |p: &str, what: String| {
        if p.is_empty() {
            what
        } else {
            format!("{p}: {what}")
        }
    };
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let known = known_fields(schema, error.evaluation_path().as_str());
            unexpected
                .iter()
                .map(|name| unknown_field(&path, name, &known))
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![format!("{}: required field is missing", join(&path, &name))]
        }
        ValidationErrorKind::Type { kind } => {
            let expected: Vec<JsonType> = match kind {
                TypeKind::Single(t) => vec![*t],
                TypeKind::Multiple(set) => set.iter().collect(),
            };
            let names: Vec<&str> = expected
                .iter()
                .filter(|t| **t != JsonType::Null || expected.len() == 1)
                .map(|t| type_name(*t))
                .collect();
            vec![at(
                &path,
                format!("{} is not {}", show(value), names.join(" or ")),
            )]
        }
        ValidationErrorKind::Format { format } => {
            let what = match format.as_str() {
                QUANTITY_FORMAT => "a quantity (like 100m, 1.5, 512Mi or 2Gi)",
                DURATION_FORMAT => "a duration (like 30s, 1h30m)",
                BYTE_FORMAT => "base64-encoded data",
                "date-time" => "an RFC 3339 date-time (like 2024-01-31T12:00:00Z)",
                other => return vec![at(&path, format!("{} is not a valid {other}", show(value)))],
            };
            vec![at(&path, format!("{} is not {what}", show(value)))]
        }
        ValidationErrorKind::Enum { options } => {
            let options = match &**options {
                Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
                other => show(other),
            };
            vec![at(
                &path,
                format!("{} is not one of {options}", show(value)),
            )]
        }
        ValidationErrorKind::Constant { expected_value } => vec![at(
            &path,
            format!("{} is not {}", show(value), show(expected_value)),
        )],
        ValidationErrorKind::Minimum { limit } => {
            vec![at(&path, format!("{} is less than {limit}", show(value)))]
        }
        ValidationErrorKind::Maximum { limit } => {
            vec![at(
                &path,
                format!("{} is greater than {limit}", show(value)),
            )]
        }
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            vec![at(
                &path,
                format!("{} must be greater than {limit}", show(value)),
            )]
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            vec![at(
                &path,
                format!("{} must be less than {limit}", show(value)),
            )]
        }
        ValidationErrorKind::Pattern { pattern } => vec![at(
            &path,
            format!("{} does not match the pattern {pattern}", show(value)),
        )],
        ValidationErrorKind::MinLength { limit } => vec![at(
            &path,
            format!("{} is shorter than {limit} characters", show(value)),
        )],
        ValidationErrorKind::MaxLength { limit } => vec![at(
            &path,
            format!("{} is longer than {limit} characters", show(value)),
        )],
        ValidationErrorKind::MinItems { limit } => {
            vec![at(&path, format!("has fewer than {limit} items"))]
        }
        ValidationErrorKind::MaxItems { limit } => {
            vec![at(&path, format!("has more than {limit} items"))]
        }
        ValidationErrorKind::MinProperties { limit } => {
            vec![at(&path, format!("has fewer than {limit} fields"))]
        }
        ValidationErrorKind::MaxProperties { limit } => {
            vec![at(&path, format!("has more than {limit} fields"))]
        }
        ValidationErrorKind::FalseSchema => vec![at(&path, "is not allowed here".into())],
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            // Alternatives that are only types (int-or-string): name the types.
            let mut names: Vec<&str> = Vec::new();
            for branch in context {
                match branch.as_slice() {
                    [e] if e.instance_path() == error.instance_path() => match e.kind() {
                        ValidationErrorKind::Type { kind } => {
                            let types: Vec<JsonType> = match kind {
                                TypeKind::Single(t) => vec![*t],
                                TypeKind::Multiple(set) => set.iter().collect(),
                            };
                            names.extend(
                                types
                                    .into_iter()
                                    .filter(|t| *t != JsonType::Null)
                                    .map(type_name),
                            );
                        }
                        _ => return vec![at(&path, error.to_string())],
                    },
                    _ => return vec![at(&path, error.to_string())],
                }
            }
            names.dedup();
            vec![at(
                &path,
                format!("{} is not {}", show(value), names.join(" or ")),
            )]
        }
        _ => vec![at(&path, error.to_string())],
    }
}

fn type_name(t: JsonType) -> &'static str {
    match t {
        JsonType::Null => "null",
        JsonType::Boolean => "a boolean",
        JsonType::Integer => "an integer",
        JsonType::Number => "a number",
        JsonType::String => "a string",
        JsonType::Array => "a list",
        JsonType::Object => "an object",
    }
}

/// A value as JSON, cut short when long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// A field name appended to a path: `a.b`, or `a["x.y/z"]` when it is not a plain name.
fn join(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (plain, path.is_empty()) {
        (true, true) => name.to_string(),
        (true, false) => format!("{path}.{name}"),
        (false, _) => format!("{path}[{}]", Value::String(name.to_string())),
    }
}

/// A JSON pointer into `instance` as a field path (`spec.containers[0].image`).
pub fn field_path(pointer: &str, instance: &Value) -> String {
    let mut path = String::new();
    let mut node = Some(instance);
    for raw in pointer.split('/').skip(1) {
        let token = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                let index = token.parse::<usize>().ok();
                path.push_str(&format!("[{token}]"));
                node = index.and_then(|i| items.get(i));
            }
            Some(Value::Object(map)) => {
                path = join(&path, &token);
                node = map.get(&token);
            }
            _ => {
                path = join(&path, &token);
                node = None;
            }
        }
    }
    path
}

/// The properties of the object schema an `additionalProperties` error was raised by: its
/// evaluation path is walked from the root, following local `$ref`s.
fn known_fields<'a>(root: &'a Value, evaluation_path: &str) -> Vec<&'a str> {
    let mut node = root;
    let tokens: Vec<String> = evaluation_path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, walk)) = tokens.split_last() else {
        return Vec::new();
    };
    if last != "additionalProperties" && last != "unevaluatedProperties" {
        return Vec::new();
    }
    for token in walk {
        let next = if token == "$ref" {
            node.get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| root.pointer(pointer))
        } else {
            match node {
                Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                other => other.get(token.as_str()),
            }
        };
        match next {
            Some(n) => node = n,
            None => return Vec::new(),
        }
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// The known field a misspelt one most likely means: the same but for case, or at most two
/// edits away (one for short names).
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    if let Some(k) = known.iter().find(|k| k.to_lowercase() == lower) {
        return Some(k);
    }
    let limit = if name.chars().count() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
