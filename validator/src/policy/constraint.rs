//! Constraints: an instance of a template with its match, parameters and enforcement action.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::{matching::Match, value_at, PolicyError, Template};
use crate::manifest::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnforcementAction {
    Deny,
    Warn,
    Dryrun,
}

impl EnforcementAction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deny" => Some(Self::Deny),
            "warn" => Some(Self::Warn),
            "dryrun" => Some(Self::Dryrun),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Dryrun => "dryrun",
        }
    }
}

impl fmt::Display for EnforcementAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub kind: String,
    pub name: String,
    pub action: EnforcementAction,
    pub matcher: Match,
    /// `spec.parameters`, `{}` when absent.
    pub parameters: Value,
    pub source: Arc<str>,
    pub line: usize,
}

impl Constraint {
    pub fn parse(
        doc: &Document,
        templates: &BTreeMap<String, Template>,
    ) -> Result<Self, PolicyError> {
        let kind = doc.kind().to_string();
        let name = doc.name().to_string();
        let subject = format!("{kind}/{name}");
        let err = |m: String| PolicyError::at(doc, subject.clone(), m);
        if name.is_empty() {
            return Err(err("metadata.name is missing".into()));
        }
        let Some(template) = templates.get(&kind) else {
            return Err(err(format!(
                "no ConstraintTemplate defines kind {kind}; add its template with --policies or to the input"
            )));
        };
        let spec = doc.object.get("spec").cloned().unwrap_or(Value::Null);
        // Every problem of the constraint is reported at once.
        let mut problems = Vec::new();
        let action = action_of(&spec).map_err(|e| problems.push(e)).ok();
        let matcher = match spec.get("match") {
            None | Some(Value::Null) => Some(Match::default()),
            Some(m) => Match::parse(m)
                .map_err(|e| problems.push(format!("spec.match.{e}")))
                .ok(),
        };
        let parameters = spec
            .get("parameters")
            .cloned()
            .filter(|p| !p.is_null())
            .unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(schema) = &template.parameters_schema {
            if let Err(e) = check_parameters(schema, &parameters) {
                problems.push(e);
            }
        }
        let (Some(action), Some(matcher), true) = (action, matcher, problems.is_empty()) else {
            return Err(err(problems.join("; ")));
        };
        Ok(Constraint {
            kind,
            name,
            action,
            matcher,
            parameters,
            source: doc.source.clone(),
            line: doc.line,
        })
    }
}

/// The constraint's action; `scoped` takes the strictest of its scoped actions.
fn action_of(spec: &Value) -> Result<EnforcementAction, String> {
    let raw = spec
        .get("enforcementAction")
        .map(|v| v.as_str().unwrap_or("<not a string>"))
        .unwrap_or("deny");
    if raw == "scoped" {
        let actions = value_at(spec, &["scopedEnforcementActions"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut strictest: Option<EnforcementAction> = None;
        for a in &actions {
            let s = a.get("action").and_then(Value::as_str).unwrap_or("");
            let parsed = EnforcementAction::parse(s).ok_or_else(|| {
                format!("spec.scopedEnforcementActions[].action: `{s}` is not one of deny, warn, dryrun")
            })?;
            strictest = Some(strictest.map_or(parsed, |c| c.min(parsed)));
        }
        return strictest.ok_or_else(|| {
            "spec.enforcementAction is `scoped` but spec.scopedEnforcementActions is empty"
                .to_string()
        });
    }
    EnforcementAction::parse(raw).ok_or_else(|| {
        format!("spec.enforcementAction: `{raw}` is not one of deny, warn, dryrun, scoped")
    })
}

/// Validates parameters against the template's openAPIV3Schema, naming every bad field.
fn check_parameters(schema: &Value, parameters: &Value) -> Result<(), String> {
    let validator = jsonschema::options()
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| format!("the template's parameter schema is invalid: {e}"))?;
    let mut problems: Vec<String> = validator
        .iter_errors(parameters)
        .map(|e| {
            let path = e.instance_path().to_string();
            let field = if path.is_empty() {
                "spec.parameters".to_string()
            } else {
                format!("spec.parameters{}", path.replace('/', "."))
            };
            format!("{field}: {e}")
        })
        .collect();
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
