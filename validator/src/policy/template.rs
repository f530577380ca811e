//! ConstraintTemplates: the constraint kind they define, their Rego, and their parameter schema.

use serde_json::Value;
use std::sync::Arc;

use super::{str_at, string_list, value_at, PolicyError};
use crate::manifest::Document;

/// Rego code of a template: the main module and its libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoSource {
    pub rego: String,
    pub libs: Vec<String>,
    /// Parsed as Rego v1 (source `version: v1`); otherwise v0, as Gatekeeper does,
    /// where `import rego.v1` still switches a module to v1 syntax.
    pub v1: bool,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// `metadata.name`, e.g. `k8srequiredlabels`.
    pub name: String,
    /// The constraint kind it defines, e.g. `K8sRequiredLabels`.
    pub kind: String,
    /// openAPIV3Schema of the constraint's `parameters`.
    pub parameters_schema: Option<Value>,
    /// The Rego for the admission target; `None` when the template carries only other engines.
    pub rego: Option<RegoSource>,
    /// The CEL (K8sNativeValidation) source, when the template carries one.
    pub cel: Option<Value>,
    pub source: Arc<str>,
    pub line: usize,
}

const ADMISSION_TARGET: &str = "admission.k8s.gatekeeper.sh";

impl Template {
    pub fn parse(doc: &Document) -> Result<Template, PolicyError> {
        let obj = &doc.object;
        let name = doc.name().to_string();
        let subject = format!("ConstraintTemplate {name}");
        let err = |m: String| PolicyError::at(doc, subject.clone(), m);
        if name.is_empty() {
            return Err(err("metadata.name is missing".into()));
        }
        let kind = str_at(obj, &["spec", "crd", "spec", "names", "kind"]).to_string();
        if kind.is_empty() {
            return Err(err(
                "spec.crd.spec.names.kind is missing; it names the constraint kind this template defines".into(),
            ));
        }
        if kind.to_lowercase() != name {
            return Err(err(format!(
                "metadata.name must be the lowercase of spec.crd.spec.names.kind ({})",
                kind.to_lowercase()
            )));
        }
        let validation = value_at(obj, &["spec", "crd", "spec", "validation"]);
        let parameters_schema = validation
            .and_then(|v| v.get("openAPIV3Schema").or_else(|| v.get("legacySchema")))
            .cloned()
            .filter(|s| !s.is_null());
        let targets = value_at(obj, &["spec", "targets"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(target) = targets
            .iter()
            .find(|t| t.get("target").and_then(Value::as_str) == Some(ADMISSION_TARGET))
        else {
            return Err(err(format!(
                "spec.targets has no entry for target {ADMISSION_TARGET}"
            )));
        };
        let mut rego = None;
        let mut cel = None;
        if let Some(code) = target.get("code").and_then(Value::as_array) {
            for (i, entry) in code.iter().enumerate() {
                let engine = entry.get("engine").and_then(Value::as_str).unwrap_or("");
                let source = entry.get("source").cloned().unwrap_or(Value::Null);
                match engine {
                    "Rego" => {
                        let text = source.get("rego").and_then(Value::as_str).unwrap_or("");
                        if text.trim().is_empty() {
                            return Err(err(format!(
                                "spec.targets[].code[{i}]: engine Rego needs source.rego"
                            )));
                        }
                        rego = Some(RegoSource {
                            rego: text.to_string(),
                            libs: string_list(source.get("libs")),
                            v1: source.get("version").and_then(Value::as_str) == Some("v1"),
                        });
                    }
                    "K8sNativeValidation" => cel = Some(source),
                    other => {
                        return Err(err(format!(
                            "spec.targets[].code[{i}]: unknown engine `{other}`; use Rego or K8sNativeValidation"
                        )))
                    }
                }
            }
        }
        if rego.is_none() {
            if let Some(text) = target.get("rego").and_then(Value::as_str) {
                rego = Some(RegoSource {
                    rego: text.to_string(),
                    libs: string_list(target.get("libs")),
                    v1: false,
                });
            }
        }
        if rego.is_none() && cel.is_none() {
            return Err(err(
                "the admission target has neither `rego` nor a `code` entry".into(),
            ));
        }
        Ok(Template {
            name,
            kind,
            parameters_schema,
            rego,
            cel,
            source: doc.source.clone(),
            line: doc.line,
        })
    }
}
