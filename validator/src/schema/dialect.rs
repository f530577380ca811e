//! Kubernetes' schema dialect made into JSON Schema 2020-12 that accepts and rejects what the API
//! server does: int-or-string values, quantities, int32 ranges, OpenAPI v3 keywords of CRDs, and
//! strictness (unknown fields are errors).

use serde_json::{json, Map, Value};

/// The `$defs` name of Kubernetes' Quantity type.
pub const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
/// The `$defs` name of the apiextensions JSON type (any JSON value: `default`, `enum`, `example`).
pub const ANY_JSON: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON";
/// The `$defs` name of ObjectMeta.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The format name of quantities (`100m`, `1.5Gi`, `1e3`), checked by [`is_quantity`].
pub const QUANTITY_FORMAT: &str = "k8s-quantity";
/// The format name of Go durations (`1h30m`), which CRDs call `duration`.
pub const DURATION_FORMAT: &str = "k8s-duration";
/// The format name of base64 data (`format: byte`), checked by [`is_base64`].
pub const BYTE_FORMAT: &str = "k8s-byte";

/// Calls `f` on every schema inside `schema` (itself included), parents before children.
pub fn visit(schema: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    let Value::Object(map) = schema else {
        return;
    };
    f(map);
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(children) = value {
                    for child in children.values_mut() {
                        visit(child, f);
                    }
                }
            }
            "items"
            | "additionalProperties"
            | "additionalItems"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contains"
            | "propertyNames"
            | "unevaluatedItems"
            | "unevaluatedProperties" => match value {
                Value::Array(children) => children.iter_mut().for_each(|c| visit(c, f)),
                other => visit(other, f),
            },
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(children) = value {
                    children.iter_mut().for_each(|c| visit(c, f));
                }
            }
            _ => {}
        }
    }
}

/// Makes a schema generated from `k8s-openapi` validate as the API server does.
pub fn builtin(schema: &mut Value, strict: bool) {
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        if let Some(quantity) = defs.get_mut(QUANTITY) {
            *quantity = quantity_schema();
        }
        // k8s-openapi says "object"; the API takes any JSON value there.
        if let Some(any) = defs.get_mut(ANY_JSON) {
            *any = json!({});
        }
        // `name` of these references is optional in the API (defaulting to ""); k8s-openapi
        // requires it because it is a plain string there.
        for (name, def) in defs.iter_mut() {
            if OPTIONAL_NAME.contains(&name.as_str()) {
                if let Value::Object(def) = def {
                    drop_required(def, "name");
                }
            }
        }
    }
    visit(schema, &mut |node| {
        node.remove("description");
        if node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            && !node.contains_key("type")
        {
            node.insert("type".into(), json!(["integer", "string"]));
        }
        if node.get("format").and_then(Value::as_str) == Some("byte") {
            node.insert("format".into(), BYTE_FORMAT.into());
        }
        int32_range(node);
        if strict {
            close(node);
        }
    });
}

/// Definitions whose `name` the API does not require.
const OPTIONAL_NAME: &[&str] = &[
    "io.k8s.api.core.v1.ConfigMapEnvSource",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.ConfigMapProjection",
    "io.k8s.api.core.v1.ConfigMapVolumeSource",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.SecretEnvSource",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretProjection",
];

pub fn drop_required(node: &mut Map<String, Value>, field: &str) {
    if let Some(Value::Array(required)) = node.get_mut("required") {
        required.retain(|r| r.as_str() != Some(field));
        if required.is_empty() {
            node.remove("required");
        }
    }
}

fn quantity_schema() -> Value {
    json!({"type": ["number", "string"], "format": QUANTITY_FORMAT})
}

/// An integer of format int32 or int64 gets its range, as decoding into such a Go integer
/// checks it.
fn int32_range(node: &mut Map<String, Value>) {
    if node.get("type").and_then(Value::as_str) != Some("integer") {
        return;
    }
    match node.get("format").and_then(Value::as_str) {
        Some("int32") => {
            node.entry("minimum").or_insert(json!(i32::MIN));
            node.entry("maximum").or_insert(json!(i32::MAX));
        }
        Some("int64") => {
            node.entry("minimum").or_insert(json!(i64::MIN));
            node.entry("maximum").or_insert(json!(i64::MAX));
        }
        _ => {}
    }
}

/// An object schema that lists its properties rejects every other field.
fn close(node: &mut Map<String, Value>) {
    let preserves = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if node.contains_key("properties") && !node.contains_key("additionalProperties") && !preserves {
        node.insert("additionalProperties".into(), Value::Bool(false));
    }
}

/// Formats the API server checks in custom resources, with JSON Schema's name for each (others
/// are dropped: Kubernetes does not check them, or checks them differently).
fn crd_format(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" | "datetime" => "date-time",
        "date" => "date",
        "byte" => BYTE_FORMAT,
        "duration" => DURATION_FORMAT,
        "ipv4" => "ipv4",
        "ipv6" => "ipv6",
        "uuid" => "uuid",
        "email" => "email",
        "hostname" => "hostname",
        _ => return None,
    })
}

/// Turns a CRD version's `openAPIV3Schema` into the schema of its custom resources.
/// `object_meta` is the built-in ObjectMeta schema with its `$defs` (see [`super::builtin::object_meta`]).
pub fn crd(open_api: &Value, object_meta: &Value, strict: bool) -> Value {
    let mut schema = open_api.clone();
    if !schema.is_object() {
        schema = json!({});
    }
    visit(&mut schema, &mut |node| {
        node.remove("description");
        if node.remove("nullable") == Some(Value::Bool(true)) {
            if let Some(Value::String(t)) = node.get("type") {
                let t = t.clone();
                node.insert("type".into(), json!([t, "null"]));
            }
        }
        if node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
            && !node.contains_key("type")
        {
            node.insert("type".into(), json!(["integer", "string"]));
        }
        for (exclusive, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if let Some(Value::Bool(on)) = node.get(exclusive).cloned() {
                node.remove(exclusive);
                if on {
                    if let Some(limit) = node.remove(bound) {
                        node.insert(exclusive.into(), limit);
                    }
                }
            }
        }
        if let Some(format) = node.get("format").and_then(Value::as_str) {
            match crd_format(format) {
                Some(f) => {
                    node.insert("format".into(), f.into());
                }
                None => {
                    int32_range(node);
                    node.remove("format");
                }
            }
        }
        if node.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
            let props = node.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(props) = props {
                props
                    .entry("apiVersion")
                    .or_insert(json!({"type": "string"}));
                props.entry("kind").or_insert(json!({"type": "string"}));
                props.entry("metadata").or_insert(json!({"type": "object"}));
            }
        }
        if strict {
            close(node);
        }
    });
    // Every custom resource has apiVersion, kind and ObjectMeta metadata, whatever its schema says.
    let mut meta = object_meta.clone();
    builtin(&mut meta, strict);
    let mut defs = match &mut meta {
        Value::Object(m) => {
            m.remove("$schema");
            m.remove("$defs").unwrap_or_else(|| json!({}))
        }
        _ => json!({}),
    };
    if let Value::Object(defs) = &mut defs {
        defs.insert(OBJECT_META.into(), meta);
    }
    let meta_ref = json!({"$ref": format!("#/$defs/{OBJECT_META}")});
    if let Value::Object(root) = &mut schema {
        let props = root.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(props) = props {
            props.insert("apiVersion".into(), json!({"type": "string"}));
            props.insert("kind".into(), json!({"type": "string"}));
            let metadata = match props.remove("metadata") {
                Some(Value::Object(mut own)) => {
                    // Its own restrictions (name patterns, ...) apply on top of ObjectMeta.
                    own.remove("additionalProperties");
                    json!({"allOf": [meta_ref, Value::Object(own)]})
                }
                _ => meta_ref,
            };
            props.insert("metadata".into(), metadata);
        }
        root.insert("$defs".into(), defs);
        root.insert(
            "$schema".into(),
            "https://json-schema.org/draft/2020-12/schema".into(),
        );
    }
    schema
}

/// A Kubernetes quantity: a signed decimal number with an optional SI, binary or exponent suffix.
pub fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let mut parts = number.split('.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    if parts.next().is_some() || (whole.is_empty() && fraction.is_none_or(str::is_empty)) {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti"
        | "Pi" | "Ei" => true,
        _ => match suffix.strip_prefix(['e', 'E']) {
            Some(exp) => {
                let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
                !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        },
    }
}

/// Standard base64 with padding, as Go decodes `[]byte` fields (line breaks are ignored).
pub fn is_base64(s: &str) -> bool {
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'\n' && *b != b'\r').collect();
    if bytes.chunks(4).any(|c| c.len() != 4) {
        return false;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    padding <= 2
        && bytes[..bytes.len() - padding]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// A Go duration: `0`, or a sequence of decimal numbers with units (`300ms`, `-1.5h`, `2h45m`).
pub fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[end..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}
