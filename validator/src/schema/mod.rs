//! Kubernetes schema validation: built-in schemas for the pinned Kubernetes version, CRDs and
//! `--schema-location` directories, compiled once per kind and shared across threads; every
//! problem of an object is a finding.

mod builtin;
mod dialect;
mod location;
mod message;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;

use crate::manifest::Document;
use crate::report::{Code, Finding, ObjectRef, Severity};

pub use builtin::{Builtin, BUILTINS, KUBERNETES_VERSION};
pub use dialect::{is_base64, is_go_duration, is_quantity};
pub use location::file_names;

/// How objects are checked against schemas.
#[derive(Debug, Clone)]
pub struct Options {
    /// Unknown fields are errors (every object schema that lists properties is closed).
    pub strict: bool,
    /// Files or directories with CustomResourceDefinitions (besides those in the input).
    pub crd_paths: Vec<PathBuf>,
    /// Directories of JSON schemas in kubeconform's layout, tried before the built-in schemas.
    pub locations: Vec<PathBuf>,
    /// An object without a schema is an error rather than a warning.
    pub require: bool,
    /// Kinds (`Kind` or `apiVersion/Kind`) never schema-checked.
    pub skip_kinds: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict: true,
            crd_paths: Vec::new(),
            locations: Vec::new(),
            require: false,
            skip_kinds: Vec::new(),
        }
    }
}

type Key = (String, String);

/// A CRD version's schema, and where the CRD was read.
struct Crd {
    /// `openAPIV3Schema` as written (absent: anything goes).
    open_api: Value,
    name: String,
    version: String,
    source: Arc<str>,
    line: usize,
}

/// A kind's compiled schema, or why there is none.
enum Compiled {
    Ready {
        validator: jsonschema::Validator,
        schema: Value,
    },
    Missing,
    Broken(Finding),
}

/// The schemas of a run: where each kind's schema comes from, and the compiled ones.
pub struct Schemas {
    options: Options,
    skip: HashSet<String>,
    crds: HashMap<Key, Crd>,
    locations: Vec<location::Location>,
    object_meta: OnceLock<Value>,
    cache: RwLock<HashMap<Key, Arc<OnceLock<Compiled>>>>,
}

/// Which kinds have no namespace: built-in kinds by their scope, custom resources by the
/// `spec.scope` of their CustomResourceDefinitions among the inputs, and Gatekeeper's policy
/// kinds. Other kinds are taken as namespaced.
#[derive(Debug, Default)]
pub struct ClusterScoped {
    /// (group, kind) of custom resources by their CRDs' scope.
    crds: HashMap<(String, String), bool>,
}

impl ClusterScoped {
    pub fn of(documents: &[Document]) -> ClusterScoped {
        let mut crds = HashMap::new();
        for doc in documents.iter().filter(|d| is_crd(d)) {
            let (spec, group, kind) = crd_spec(doc);
            let cluster = spec.get("scope").and_then(Value::as_str) == Some("Cluster");
            crds.insert((group.to_string(), kind.to_string()), cluster);
        }
        ClusterScoped { crds }
    }

    /// True when objects of this apiVersion and kind have no namespace.
    pub fn contains(&self, api_version: &str, kind: &str) -> bool {
        if let Some(namespaced) = builtin::namespaced(api_version, kind) {
            return !namespaced;
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if let Some(cluster) = self.crds.get(&(group.to_string(), kind.to_string())) {
            return *cluster;
        }
        matches!(
            group,
            "templates.gatekeeper.sh"
                | "constraints.gatekeeper.sh"
                | "expansion.gatekeeper.sh"
                | "mutations.gatekeeper.sh"
                | "externaldata.gatekeeper.sh"
        ) || (group == "policy" && kind == "PodSecurityPolicy")
    }
}

/// A CustomResourceDefinition's spec, and the group and kind it defines ("" when absent).
fn crd_spec(doc: &Document) -> (&Value, &str, &str) {
    let spec = doc.object.get("spec").unwrap_or(&Value::Null);
    let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
    let kind = spec
        .get("names")
        .and_then(|n| n.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (spec, group, kind)
}

/// True for a CustomResourceDefinition.
pub fn is_crd(doc: &Document) -> bool {
    doc.kind() == "CustomResourceDefinition"
        && doc.api_version().starts_with("apiextensions.k8s.io/")
}

fn validation_options<'i>() -> jsonschema::ValidationOptions<'i> {
    jsonschema::options()
        .should_validate_formats(true)
        .with_format(dialect::QUANTITY_FORMAT, dialect::is_quantity)
        .with_format(dialect::DURATION_FORMAT, dialect::is_go_duration)
        .with_format(dialect::BYTE_FORMAT, dialect::is_base64)
}

/// Kinds whose `metadata` the API requires.
const METADATA_REQUIRED: &[(&str, &str)] = &[
    ("v1", "Event"),
    ("internal.apiserver.k8s.io/v1alpha1", "StorageVersion"),
    ("resource.k8s.io/v1alpha3", "ResourcePoolStatusRequest"),
];

/// The built-in schema of a kind, made strict or not, before compilation.
pub fn builtin_schema(api_version: &str, kind: &str, strict: bool) -> Option<Value> {
    let b = builtin::find(api_version, kind)?;
    let mut schema = (b.generate)();
    if let Value::Object(root) = &mut schema {
        // k8s-openapi requires `metadata` of every kind; the API of most does not.
        if !METADATA_REQUIRED.contains(&(api_version, kind)) {
            dialect::drop_required(root, "metadata");
        }
        // And it misses one required field.
        if (api_version, kind) == ("events.k8s.io/v1", "Event") {
            if let Some(Value::Array(required)) = root.get_mut("required") {
                required.push("eventTime".into());
            } else {
                root.insert("required".into(), serde_json::json!(["eventTime"]));
            }
        }
    }
    dialect::builtin(&mut schema, strict);
    Some(schema)
}

impl Schemas {
    pub fn new(options: Options) -> Self {
        let skip = options.skip_kinds.iter().cloned().collect();
        let locations = options
            .locations
            .iter()
            .cloned()
            .map(location::Location::new)
            .collect();
        Schemas {
            options,
            skip,
            crds: HashMap::new(),
            locations,
            object_meta: OnceLock::new(),
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Takes the versions of a CustomResourceDefinition; false when `doc` is not one.
    /// A later definition of the same group, version and kind replaces an earlier one.
    pub fn add_crd(&mut self, doc: &Document) -> bool {
        if !is_crd(doc) {
            return false;
        }
        let (spec, group, kind) = crd_spec(doc);
        if group.is_empty() || kind.is_empty() {
            return true;
        }
        // apiextensions.k8s.io/v1beta1 could give one schema for all versions.
        let shared = spec
            .get("validation")
            .and_then(|v| v.get("openAPIV3Schema"))
            .cloned();
        let mut versions: Vec<(String, Option<Value>)> = spec
            .get("versions")
            .and_then(Value::as_array)
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| {
                        let name = v.get("name").and_then(Value::as_str)?;
                        let schema = v
                            .get("schema")
                            .and_then(|s| s.get("openAPIV3Schema"))
                            .cloned();
                        Some((name.to_string(), schema))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(v) = spec.get("version").and_then(Value::as_str) {
            if !versions.iter().any(|(n, _)| n == v) {
                versions.push((v.to_string(), None));
            }
        }
        for (version, schema) in versions {
            let open_api = schema.or_else(|| shared.clone()).unwrap_or_else(
                || serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}),
            );
            self.crds.insert(
                (format!("{group}/{version}"), kind.to_string()),
                Crd {
                    open_api,
                    name: doc.name().to_string(),
                    version,
                    source: doc.source.clone(),
                    line: doc.line,
                },
            );
        }
        true
    }

    /// True when a CRD gives the schema of this apiVersion and kind.
    pub fn has_crd(&self, api_version: &str, kind: &str) -> bool {
        self.crds
            .contains_key(&(api_version.to_string(), kind.to_string()))
    }

    fn skipped(&self, api_version: &str, kind: &str) -> bool {
        self.skip.contains(kind) || self.skip.contains(&format!("{api_version}/{kind}"))
    }

    /// Checks one object against its schema; every problem is a finding.
    pub fn check(&self, doc: &Document) -> Vec<Finding> {
        let (api_version, kind) = (doc.api_version(), doc.kind());
        if self.skipped(api_version, kind) {
            return Vec::new();
        }
        let entry = self.entry(api_version, kind);
        let finding = |severity, code, message: String| {
            Finding::new(severity, code, message)
                .at(doc.source.to_string(), doc.line, 0)
                .rendered_at(doc.rendered_line)
                .about(ObjectRef::of(doc))
        };
        // A finding at a field: its own line and column (for chart objects, its line in the
        // rendered output; the template line stays the object's).
        let at_field = |path: &[String], message: String| {
            let mut f = finding(Severity::Deny, Code::SchemaViolation, message);
            if let Some((line, column)) = doc.locate(path) {
                if doc.rendered_line.is_some() {
                    f.rendered_line = Some(line);
                } else {
                    f.line = line;
                    f.column = column;
                }
            }
            f
        };
        match entry.get_or_init(|| self.compile(api_version, kind)) {
            Compiled::Ready { validator, schema } => {
                // Objects not read by the loader (built in memory) may still hold nulls.
                let stripped = without_nulls(&doc.object);
                let instance = stripped.as_ref().unwrap_or(&doc.object);
                let mut messages: Vec<(Vec<String>, String)> = Vec::new();
                if !validator.is_valid(instance) {
                    messages.extend(
                        validator
                            .iter_errors(instance)
                            .flat_map(|e| message::messages(&e, instance, schema)),
                    );
                }
                if self.options.strict {
                    messages.extend(unknown_null_fields(validator, schema, doc));
                }
                messages.sort();
                messages.dedup();
                messages
                    .into_iter()
                    .map(|(path, m)| at_field(&path, m))
                    .collect()
            }
            Compiled::Missing => {
                let severity = if self.options.require {
                    Severity::Error
                } else {
                    Severity::Warn
                };
                vec![finding(
                    severity,
                    Code::MissingSchema,
                    format!(
                        "no schema for {kind} in {api_version} (not built in for Kubernetes {KUBERNETES_VERSION}, no CRD, no file in a --schema-location); not schema-checked"
                    ),
                )]
            }
            Compiled::Broken(f) => vec![f.clone()],
        }
    }

    fn entry(&self, api_version: &str, kind: &str) -> Arc<OnceLock<Compiled>> {
        let key = (api_version.to_string(), kind.to_string());
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = cache.get(&key) {
                return e.clone();
            }
        }
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.entry(key).or_default().clone()
    }

    fn compile(&self, api_version: &str, kind: &str) -> Compiled {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(crd) = self.crds.get(&key) {
            let meta = self.object_meta.get_or_init(builtin::object_meta);
            let schema = dialect::crd(&crd.open_api, meta, self.options.strict);
            return match validation_options().build(&schema) {
                Ok(validator) => Compiled::Ready { validator, schema },
                Err(e) => Compiled::Broken(
                    Finding::new(
                        Severity::Error,
                        Code::InvalidInput,
                        format!(
                            "the schema of version {} cannot be used to check {kind} objects: {e}",
                            crd.version
                        ),
                    )
                    .at(crd.source.to_string(), crd.line, 0)
                    .about(ObjectRef {
                        api_version: "apiextensions.k8s.io/v1".into(),
                        kind: "CustomResourceDefinition".into(),
                        namespace: String::new(),
                        name: crd.name.clone(),
                    }),
                ),
            };
        }
        for location in &self.locations {
            let Some(found) = location.find(api_version, kind) else {
                continue;
            };
            return match found.and_then(|f| self.compile_file(location, f)) {
                Ok((validator, schema)) => Compiled::Ready { validator, schema },
                Err((path, message)) => Compiled::Broken(
                    Finding::new(
                        Severity::Error,
                        Code::InvalidInput,
                        format!("the schema for {kind} in {api_version} cannot be used: {message}"),
                    )
                    .at(path.display().to_string(), 0, 0),
                ),
            };
        }
        match builtin_schema(api_version, kind, self.options.strict) {
            Some(schema) => match validation_options().build(&schema) {
                Ok(validator) => Compiled::Ready { validator, schema },
                Err(e) => Compiled::Broken(Finding::new(
                    Severity::Error,
                    Code::InvalidInput,
                    format!(
                        "the built-in schema for {kind} in {api_version} cannot be compiled: {e}"
                    ),
                )),
            },
            None => Compiled::Missing,
        }
    }

    fn compile_file(
        &self,
        location: &location::Location,
        found: location::Found,
    ) -> Result<(jsonschema::Validator, Value), (PathBuf, String)> {
        let location::Found { path, mut schema } = found;
        let registry = location
            .registry()
            .map_err(|e| (location.dir().join("_definitions.json"), e))?;
        let mut draft = None;
        if let Value::Object(map) = &mut schema {
            let known = map
                .get("$schema")
                .and_then(Value::as_str)
                .is_none_or(|s| s.contains("draft") || s.contains("json-schema.org/draft"));
            if !known {
                // openapi2jsonschema writes "http://json-schema.org/schema#": read as draft 4.
                map.remove("$schema");
                draft = Some(jsonschema::Draft::Draft4);
            }
        }
        let mut options = validation_options()
            .with_registry(registry)
            .with_base_uri(location::file_uri(&path));
        if let Some(d) = draft {
            options = options.with_draft(d);
        }
        match options.build(&schema) {
            Ok(validator) => Ok((validator, schema)),
            Err(e) => Err((path, e.to_string())),
        }
    }
}

/// The object with every null-valued field removed, or `None` when it has none: the API server
/// decodes `field: null` as an absent field.
fn without_nulls(value: &Value) -> Option<Value> {
    fn has_null_field(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.values().any(|c| c.is_null() || has_null_field(c)),
            Value::Array(a) => a.iter().any(has_null_field),
            _ => false,
        }
    }
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, c| !c.is_null());
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    if !has_null_field(value) {
        return None;
    }
    let mut copy = value.clone();
    strip(&mut copy);
    Some(copy)
}

/// Unknown fields written with a null value (a mistyped `readinessprobe:` left empty): the
/// reader drops them as the API server does, so they are put back as empty objects in a copy
/// and only the unknown-field errors at exactly those paths are kept.
fn unknown_null_fields(
    validator: &jsonschema::Validator,
    schema: &Value,
    doc: &Document,
) -> Vec<(Vec<String>, String)> {
    let dropped: Vec<Vec<String>> = doc.dropped_nulls().into_iter().map(|(p, ..)| p).collect();
    if dropped.is_empty() {
        return Vec::new();
    }
    let mut probe = without_nulls(&doc.object).unwrap_or_else(|| doc.object.clone());
    for path in &dropped {
        let Some((name, parent)) = path.split_last() else {
            continue;
        };
        let mut node = Some(&mut probe);
        for step in parent {
            node = node.and_then(|n| match n {
                Value::Object(m) => m.get_mut(step),
                Value::Array(a) => step.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            });
        }
        if let Some(Value::Object(m)) = node {
            m.insert(name.clone(), Value::Object(serde_json::Map::new()));
        }
    }
    validator
        .iter_errors(&probe)
        .filter(|e| {
            matches!(
                e.kind(),
                jsonschema::error::ValidationErrorKind::AdditionalProperties { .. }
                    | jsonschema::error::ValidationErrorKind::UnevaluatedProperties { .. }
            )
        })
        .flat_map(|e| message::messages(&e, &probe, schema))
        .filter(|(path, _)| dropped.contains(path))
        .collect()
}

#[cfg(test)]
mod tests;
