//! ExpansionTemplates: which workload kinds generate which resource (e.g. a Pod) from which field.

use std::sync::Arc;

use serde_json::Value;

use super::{str_at, string_list as strings, value_at, EnforcementAction, PolicyError};
use crate::manifest::Document;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyTo {
    pub groups: Vec<String>,
    pub versions: Vec<String>,
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ExpansionTemplate {
    pub name: String,
    pub apply_to: Vec<ApplyTo>,
    /// Dotted path of the embedded template, e.g. `spec.template`.
    pub template_source: Vec<String>,
    pub generated_group: String,
    pub generated_version: String,
    pub generated_kind: String,
    /// Overrides the constraints' action for generated resources.
    pub action: Option<EnforcementAction>,
    pub source: Arc<str>,
    pub line: usize,
}

impl ExpansionTemplate {
    pub fn parse(doc: &Document) -> Result<Self, PolicyError> {
        let name = doc.name().to_string();
        let err = |m: &str| PolicyError::at(doc, format!("ExpansionTemplate {name}"), m);
        let spec = doc.object.get("spec").cloned().unwrap_or(Value::Null);
        let apply_to: Vec<ApplyTo> = spec
            .get("applyTo")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| ApplyTo {
                        groups: strings(e.get("groups")),
                        versions: strings(e.get("versions")),
                        kinds: strings(e.get("kinds")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        if apply_to.is_empty() {
            return Err(err(
                "spec.applyTo is empty; list the groups, versions and kinds it expands",
            ));
        }
        let template_source = str_at(&spec, &["templateSource"]);
        if template_source.is_empty() {
            return Err(err("spec.templateSource is missing, e.g. `spec.template`"));
        }
        let gvk = value_at(&spec, &["generatedGVK"])
            .cloned()
            .unwrap_or(Value::Null);
        let generated_kind = str_at(&gvk, &["kind"]).to_string();
        if generated_kind.is_empty() {
            return Err(err("spec.generatedGVK.kind is missing"));
        }
        let action = match spec.get("enforcementAction").and_then(Value::as_str) {
            None | Some("") => None,
            Some(a) => Some(EnforcementAction::parse(a).ok_or_else(|| {
                err(&format!(
                    "spec.enforcementAction: `{a}` is not one of deny, warn, dryrun"
                ))
            })?),
        };
        Ok(ExpansionTemplate {
            name,
            apply_to,
            template_source: template_source.split('.').map(String::from).collect(),
            generated_group: str_at(&gvk, &["group"]).to_string(),
            generated_version: str_at(&gvk, &["version"]).to_string(),
            generated_kind,
            action,
            source: doc.source.clone(),
            line: doc.line,
        })
    }

    /// Whether this template expands objects of this group/version/kind.
    pub fn applies_to(&self, group: &str, version: &str, kind: &str) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == v || x == "*");
        self.apply_to
            .iter()
            .any(|a| any(&a.groups, group) && any(&a.versions, version) && any(&a.kinds, kind))
    }

    /// The generated resource for a parent object, if the parent carries the template source,
    /// with the metadata Gatekeeper gives it: the parent's namespace, the name
    /// `<parent name>-<generated kind>` in lowercase, and an owner reference to the parent.
    /// Labels and annotations are the template's own.
    pub fn generate(&self, parent: &Value) -> Option<Value> {
        let mut cur = parent;
        for key in &self.template_source {
            cur = cur.get(key)?;
        }
        let mut generated = cur.as_object()?.clone();
        let api_version = if self.generated_group.is_empty() {
            self.generated_version.clone()
        } else {
            format!("{}/{}", self.generated_group, self.generated_version)
        };
        generated.insert("apiVersion".into(), Value::String(api_version));
        generated.insert("kind".into(), Value::String(self.generated_kind.clone()));
        let metadata = generated
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if !metadata.is_object() {
            *metadata = Value::Object(Default::default());
        }
        if let Value::Object(m) = metadata {
            let parent_str = |field: &str| {
                parent
                    .get("metadata")
                    .and_then(|p| p.get(field))
                    .and_then(Value::as_str)
            };
            if let Some(ns) = parent_str("namespace") {
                m.insert("namespace".into(), Value::String(ns.to_string()));
            }
            let parent_name = parent_str("name").unwrap_or("");
            m.insert(
                "name".into(),
                Value::String(generated_name(parent_name, &self.generated_kind)),
            );
            let text = |v: &Value, field: &str| {
                v.get(field)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let owner = serde_json::json!({
                "apiVersion": text(parent, "apiVersion"),
                "kind": text(parent, "kind"),
                "name": parent_name,
            });
            let complete = ["apiVersion", "kind", "name"].iter().all(|f| {
                owner
                    .get(*f)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            });
            if complete {
                let refs = m
                    .entry("ownerReferences")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !refs.is_array() {
                    *refs = Value::Array(Vec::new());
                }
                if let Value::Array(refs) = refs {
                    let same = |r: &Value| {
                        ["apiVersion", "kind", "name"]
                            .iter()
                            .all(|f| r.get(*f) == owner.get(*f))
                    };
                    if !refs.iter().any(same) {
                        refs.push(owner);
                    }
                }
            }
        }
        Some(Value::Object(generated))
    }
}

/// The name Gatekeeper gives a generated resource: `<parent name>-<kind>`, lowercased
/// (a Deployment `web` generates the Pod `web-pod`).
pub fn generated_name(parent_name: &str, kind: &str) -> String {
    let name = if kind.is_empty() {
        parent_name.to_string()
    } else {
        format!("{parent_name}-{kind}")
    };
    name.to_lowercase()
}
