//! Gatekeeper policy objects: ConstraintTemplates, Constraints, ExpansionTemplates, and matching.

mod constraint;
mod expansion;
pub mod matching;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use thiserror::Error;

pub use constraint::{Constraint, EnforcementAction};
pub use expansion::ExpansionTemplate;
pub use matching::{Match, Selector};
pub use template::{RegoSource, Template};

use crate::manifest::Document;

/// A policy object that cannot be used, with where it was defined.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{file}:{line}: {subject}: {message}")]
pub struct PolicyError {
    pub file: Arc<str>,
    pub line: usize,
    /// What is wrong, e.g. `ConstraintTemplate k8srequiredlabels` or `K8sRequiredLabels/must-have-owner`.
    pub subject: String,
    pub message: String,
}

impl PolicyError {
    pub(crate) fn at(
        doc: &Document,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError {
            file: doc.source.clone(),
            line: doc.line,
            subject: subject.into(),
            message: message.into(),
        }
    }
}

/// Which kind of policy object a document is, judged by its API group.
pub fn is_policy_document(doc: &Document) -> bool {
    let group = doc.api_version().split('/').next().unwrap_or("");
    matches!(
        group,
        "templates.gatekeeper.sh" | "constraints.gatekeeper.sh" | "expansion.gatekeeper.sh"
    ) || is_vap_document(doc)
}

/// Whether a document is a ValidatingAdmissionPolicy or a binding of one.
pub fn is_vap_document(doc: &Document) -> bool {
    doc.api_version()
        .starts_with("admissionregistration.k8s.io/")
        && matches!(
            doc.kind(),
            "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding"
        )
}

/// Templates, constraints and expansions, keyed for lookup; constraints in a stable order.
#[derive(Debug, Default, Clone)]
pub struct Set {
    /// Templates by the constraint kind they define.
    pub templates: BTreeMap<String, Template>,
    pub constraints: Vec<Constraint>,
    pub expansions: Vec<ExpansionTemplate>,
}

impl Set {
    /// Builds a set from policy documents; every unusable object is reported, the rest kept.
    /// Later definitions of the same template or constraint replace earlier ones.
    pub fn from_documents<'a>(
        docs: impl IntoIterator<Item = &'a Document>,
    ) -> (Set, Vec<PolicyError>) {
        let mut set = Set::default();
        let mut errors = Vec::new();
        let mut constraint_docs = Vec::new();
        for doc in docs {
            let group = doc.api_version().split('/').next().unwrap_or("");
            match (group, doc.kind()) {
                ("templates.gatekeeper.sh", "ConstraintTemplate") => match Template::parse(doc) {
                    Ok(t) => {
                        set.templates.insert(t.kind.clone(), t);
                    }
                    Err(e) => errors.push(e),
                },
                ("expansion.gatekeeper.sh", "ExpansionTemplate") => {
                    match ExpansionTemplate::parse(doc) {
                        Ok(x) => {
                            set.expansions.retain(|old| old.name != x.name);
                            set.expansions.push(x);
                        }
                        Err(e) => errors.push(e),
                    }
                }
                ("constraints.gatekeeper.sh", _) => constraint_docs.push(doc),
                ("templates.gatekeeper.sh" | "expansion.gatekeeper.sh", kind) => {
                    errors.push(PolicyError::at(
                        doc,
                        format!("{kind} {}", doc.name()),
                        format!("unknown kind {kind} in {}", doc.api_version()),
                    ));
                }
                _ => {}
            }
        }
        // Constraints after templates, so a constraint may come before its template in the input.
        for doc in constraint_docs {
            match Constraint::parse(doc, &set.templates) {
                Ok(c) => {
                    set.constraints
                        .retain(|old| !(old.kind == c.kind && old.name == c.name));
                    set.constraints.push(c);
                }
                Err(e) => errors.push(e),
            }
        }
        set.constraints
            .sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        set.expansions.sort_by(|a, b| a.name.cmp(&b.name));
        (set, errors)
    }

    /// Adds another set's objects; the other set's definitions win.
    pub fn merge(&mut self, other: Set) {
        self.templates.extend(other.templates);
        for c in other.constraints {
            self.constraints
                .retain(|old| !(old.kind == c.kind && old.name == c.name));
            self.constraints.push(c);
        }
        for x in other.expansions {
            self.expansions.retain(|old| old.name != x.name);
            self.expansions.push(x);
        }
        self.constraints
            .sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        self.expansions.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// `obj.a.b.c` as a string, or "".
pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    value_at(value, path).and_then(Value::as_str).unwrap_or("")
}

/// A list of strings at a field, ignoring anything that is not a string.
pub(crate) fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn value_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests;
