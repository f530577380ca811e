//! Admission reviews built as Gatekeeper builds them, workload expansion, and `data.inventory`.

use std::collections::BTreeMap;

use regorus::Value as RegoValue;
use serde_json::{json, Map, Value};

use crate::engine::to_rego;
use crate::manifest::{metadata_str, Document};
use crate::policy::{matching::Target, EnforcementAction, ExpansionTemplate};

/// group and version of an apiVersion string (`apps/v1` -> (apps, v1), `v1` -> ("", v1)).
pub fn group_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Who made the request and how, for reviews that do not come from an AdmissionReview.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub operation: String,
    pub user_info: Value,
    pub old_object: Value,
    pub dry_run: bool,
    pub uid: String,
}

impl Default for RequestInfo {
    fn default() -> Self {
        RequestInfo {
            operation: "CREATE".into(),
            user_info: json!({}),
            old_object: Value::Null,
            dry_run: false,
            uid: String::new(),
        }
    }
}

/// One object under review: an input object or a resource generated from it.
#[derive(Debug, Clone)]
pub struct Review {
    /// Index of the input object this review comes from.
    pub parent: usize,
    /// Name of the ExpansionTemplate that generated it, for generated resources.
    pub expansion: Option<String>,
    pub action_override: Option<EnforcementAction>,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub labels: Map<String, Value>,
    /// `input.review` as Gatekeeper builds it.
    pub input: RegoValue,
}

impl Review {
    /// Builds the review of an object for the given request.
    pub fn new(parent: usize, object: &Value, request: &RequestInfo) -> Review {
        Review::of(parent, object, to_rego(object), request)
    }

    /// Builds the review of an object already converted for the engine (`converted` is
    /// `object` as a regorus value, shared rather than copied).
    pub fn of(
        parent: usize,
        object: &Value,
        converted: RegoValue,
        request: &RequestInfo,
    ) -> Review {
        let mut review = Review::describing(parent, object);
        let (group, version, kind) = (&review.group, &review.version, &review.kind);
        let text = |s: &str| RegoValue::from(s);
        let input = rego_object([
            ("uid", text(&request.uid)),
            (
                "kind",
                rego_object([
                    ("group", text(group)),
                    ("version", text(version)),
                    ("kind", text(kind)),
                ]),
            ),
            (
                "resource",
                rego_object([
                    ("group", text(group)),
                    ("version", text(version)),
                    ("resource", text(&resource_name(kind))),
                ]),
            ),
            ("name", text(&review.name)),
            ("namespace", text(review.namespace.as_deref().unwrap_or(""))),
            ("operation", text(&request.operation)),
            ("userInfo", to_rego(&request.user_info)),
            ("object", converted),
            ("oldObject", to_rego(&request.old_object)),
            ("dryRun", RegoValue::from(request.dry_run)),
        ]);
        review.input = input;
        review
    }

    /// What the object says of itself (kind, name, namespace, labels), without `input`.
    fn describing(parent: usize, object: &Value) -> Review {
        let (group, version, kind) = type_of(object);
        let name = metadata_str(object, "name");
        let namespace = metadata_str(object, "namespace");
        Review {
            parent,
            expansion: None,
            action_override: None,
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            labels: labels_of(object),
            input: RegoValue::Null,
        }
    }

    /// Builds the review from an AdmissionReview's `request`, as the webhook receives it.
    pub fn from_admission_request(parent: usize, request: &Value) -> Review {
        let null = Value::Null;
        let object = match request.get("object") {
            Some(o) if !o.is_null() => o,
            _ => request.get("oldObject").unwrap_or(&null),
        };
        let mut review = Review::describing(parent, object);
        // The request's own kind, namespace and name come first; the object's stand in for
        // the ones it leaves out.
        let given = |key: &str| request.get(key);
        if let Some(k) = given("kind") {
            let field = |f: &str| k.get(f).and_then(Value::as_str).unwrap_or("").to_string();
            (review.group, review.version, review.kind) =
                (field("group"), field("version"), field("kind"));
        }
        if let Some(ns) = given("namespace").and_then(Value::as_str) {
            review.namespace = (!ns.is_empty()).then(|| ns.to_string());
        }
        if let Some(n) = given("name").and_then(Value::as_str) {
            review.name = n.to_string();
        }
        // The request is converted as given (no copy of it first), then completed.
        let mut input = to_rego(request);
        if let Ok(map) = input.as_object_mut() {
            let key = |s: &str| RegoValue::from(s);
            // As Gatekeeper does, a DELETE is reviewed with the deleted object as `object`.
            let is_delete = request.get("operation").and_then(Value::as_str) == Some("DELETE");
            if is_delete && given("object").is_none_or(Value::is_null) {
                let old_object = map.get(&key("oldObject")).cloned();
                map.insert(key("object"), old_object.unwrap_or(RegoValue::Null));
            }
            let mut default = |name: &str, value: &dyn Fn() -> RegoValue| {
                if !map.contains_key(&key(name)) {
                    map.insert(key(name), value());
                }
            };
            default("kind", &|| {
                rego_object([
                    ("group", key(&review.group)),
                    ("version", key(&review.version)),
                    ("kind", key(&review.kind)),
                ])
            });
            default("name", &|| key(&review.name));
            if let Some(ns) = &review.namespace {
                default("namespace", &|| key(ns));
            }
            default("object", &|| RegoValue::Null);
            default("oldObject", &|| RegoValue::Null);
            default("userInfo", &RegoValue::new_object);
        }
        review.input = input;
        review
    }

    /// Labels of the review's Namespace: its own for a Namespace, else its namespace's if known.
    pub fn namespace_labels<'a>(
        &'a self,
        known: &'a BTreeMap<String, Map<String, Value>>,
    ) -> Option<&'a Map<String, Value>> {
        if self.group.is_empty() && self.kind == "Namespace" {
            Some(&self.labels)
        } else {
            self.namespace.as_ref().and_then(|ns| known.get(ns))
        }
    }

    pub fn target<'a>(&'a self, namespace_labels: Option<&'a Map<String, Value>>) -> Target<'a> {
        Target {
            group: &self.group,
            kind: &self.kind,
            namespace: self.namespace.as_deref(),
            name: &self.name,
            labels: &self.labels,
            namespace_labels,
            generated: self.expansion.is_some(),
        }
    }
}

fn labels_of(object: &Value) -> Map<String, Value> {
    object
        .get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Lowercase plural resource name for a kind (the common English rules Kubernetes uses).
pub fn resource_name(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s')
        || lower.ends_with("sh")
        || lower.ends_with("ch")
        || lower.ends_with('x')
    {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// An object's group, version and kind, from its `apiVersion` and `kind` (empty when absent).
fn type_of(object: &Value) -> (&str, &str, &str) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = group_version(api_version);
    (group, version, kind)
}

/// Resources the expansion templates generate from one object (e.g. the Pod of a Deployment).
pub fn expand(
    parent: usize,
    object: &Value,
    expansions: &[ExpansionTemplate],
    request: &RequestInfo,
) -> Vec<Review> {
    let (group, version, kind) = type_of(object);
    expansions
        .iter()
        .filter(|x| x.applies_to(group, version, kind))
        .filter_map(|x| {
            let generated = x.generate(object)?;
            let mut review = Review::new(parent, &generated, request);
            review.expansion = Some(x.name.clone());
            review.action_override = x.action;
            Some(review)
        })
        .collect()
}

/// A regorus object of string keys.
fn rego_object<'k>(fields: impl IntoIterator<Item = (&'k str, RegoValue)>) -> RegoValue {
    RegoValue::from(
        fields
            .into_iter()
            .map(|(k, v)| (RegoValue::from(k), v))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Objects by kind, then by name.
type ByKind = BTreeMap<String, BTreeMap<String, RegoValue>>;

/// Gatekeeper's `data.inventory`: cluster/<groupVersion>/<kind>/<name> and
/// namespace/<ns>/<groupVersion>/<kind>/<name>.
pub fn inventory<'a>(objects: impl IntoIterator<Item = &'a Value>) -> RegoValue {
    inventory_of(objects.into_iter().map(|o| (o, to_rego(o))))
}

/// [`inventory`] of objects already converted for the engine, each given with its JSON (which
/// names its place); the converted values are shared, not copied.
pub fn inventory_of<'a>(objects: impl IntoIterator<Item = (&'a Value, RegoValue)>) -> RegoValue {
    let mut cluster: BTreeMap<String, ByKind> = BTreeMap::new();
    let mut namespaced: BTreeMap<String, BTreeMap<String, ByKind>> = BTreeMap::new();
    for (object, converted) in objects {
        let gv = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = metadata_str(object, "name");
        let ns = metadata_str(object, "namespace");
        if gv.is_empty() || kind.is_empty() || name.is_empty() {
            continue;
        }
        let slot = if ns.is_empty() {
            cluster.entry(gv.to_string()).or_default()
        } else {
            namespaced
                .entry(ns.to_string())
                .or_default()
                .entry(gv.to_string())
                .or_default()
        };
        slot.entry(kind.to_string())
            .or_default()
            .insert(name.to_string(), converted);
    }
    let by_kind = |kinds: ByKind| rego_map(kinds, |names| rego_map(names, |object| object));
    rego_object([
        ("cluster", rego_map(cluster, by_kind)),
        (
            "namespace",
            rego_map(namespaced, |versions| rego_map(versions, by_kind)),
        ),
    ])
}

/// A map of string keys as a regorus object, each value converted by `f`.
fn rego_map<T>(map: BTreeMap<String, T>, f: impl Fn(T) -> RegoValue) -> RegoValue {
    RegoValue::from(
        map.into_iter()
            .map(|(k, v)| (RegoValue::from(k.as_str()), f(v)))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Labels of the Namespace objects among the inputs, by namespace name.
pub fn namespace_labels(docs: &[Document]) -> BTreeMap<String, Map<String, Value>> {
    docs.iter()
        .filter(|d| d.kind() == "Namespace" && group_version(d.api_version()).0.is_empty())
        .map(|d| (d.name().to_string(), labels_of(&d.object)))
        .collect()
}

#[cfg(test)]
mod tests;
