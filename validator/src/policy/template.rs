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
    /// Where the main module is written, when it is a literal block (`rego: |`): the input
    /// line of its first line and the indentation of its lines.
    pub at: Option<(usize, usize)>,
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
    /// The kinds its Rego reads from `data.inventory`, from the
    /// `metadata.gatekeeper.sh/requires-sync-data` annotation: every requirement needs one of its
    /// kinds synced. Kinds are `group/version/Kind` (`version/Kind` for the core group).
    pub sync_requirements: Vec<Vec<String>>,
}

/// The annotation naming the kinds a referential template reads from `data.inventory`.
pub const SYNC_ANNOTATION: &str = "metadata.gatekeeper.sh/requires-sync-data";

/// Reads a `requires-sync-data` annotation: a JSON (or YAML flow) list of requirements, each a
/// list of clauses `{groups, versions, kinds}`, often wrapped in quotes.
pub fn parse_sync_requirements(text: &str) -> Result<Vec<Vec<String>>, String> {
    let trimmed = text.trim().trim_matches('"');
    let value: Value = serde_yaml::from_str(trimmed)
        .map_err(|e| format!("{SYNC_ANNOTATION} is not a list of requirements: {e}"))?;
    let requirements = value
        .as_array()
        .ok_or_else(|| format!("{SYNC_ANNOTATION} must be a list of requirements"))?;
    let strings = |clause: &Value, field: &str| -> Vec<String> {
        clause
            .get(field)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for requirement in requirements {
        let clauses = requirement.as_array().ok_or_else(|| {
            format!("{SYNC_ANNOTATION}: each requirement must be a list of clauses")
        })?;
        let mut kinds = Vec::new();
        for clause in clauses {
            for group in strings(clause, "groups") {
                for version in strings(clause, "versions") {
                    for kind in strings(clause, "kinds") {
                        let gvk = if group.is_empty() {
                            format!("{version}/{kind}")
                        } else {
                            format!("{group}/{version}/{kind}")
                        };
                        if !kinds.contains(&gvk) {
                            kinds.push(gvk);
                        }
                    }
                }
            }
        }
        if kinds.is_empty() {
            return Err(format!(
                "{SYNC_ANNOTATION}: a requirement names no kind (each clause needs groups, versions and kinds)"
            ));
        }
        out.push(kinds);
    }
    Ok(out)
}

const ADMISSION_TARGET: &str = "admission.k8s.gatekeeper.sh";

fn path(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

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
        let Some((target_index, target)) = targets
            .iter()
            .enumerate()
            .find(|(_, t)| t.get("target").and_then(Value::as_str) == Some(ADMISSION_TARGET))
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
                            at: doc.literal_block(&path(&[
                                "spec",
                                "targets",
                                &target_index.to_string(),
                                "code",
                                &i.to_string(),
                                "source",
                                "rego",
                            ])),
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
                    at: doc.literal_block(&path(&[
                        "spec",
                        "targets",
                        &target_index.to_string(),
                        "rego",
                    ])),
                });
            }
        }
        if rego.is_none() && cel.is_none() {
            return Err(err(
                "the admission target has neither `rego` nor a `code` entry".into(),
            ));
        }
        let sync_requirements = match value_at(obj, &["metadata", "annotations", SYNC_ANNOTATION])
            .and_then(Value::as_str)
        {
            Some(text) => parse_sync_requirements(text).map_err(err)?,
            None => Vec::new(),
        };
        Ok(Template {
            sync_requirements,
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
