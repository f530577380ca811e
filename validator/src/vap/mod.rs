//! Kubernetes ValidatingAdmissionPolicies and their bindings, evaluated offline with the CEL engine.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::CelTemplate;
use crate::manifest::Document;
use crate::policy::{matching::Target, string_list as strings, PolicyError, Selector};
use crate::review::{resource_name, Review};

/// One rule of `resourceRules` / `excludeResourceRules`.
#[derive(Debug, Clone, Default)]
struct Rule {
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    operations: Vec<String>,
    scope: String,
}

impl Rule {
    fn parse(v: &Value) -> Rule {
        Rule {
            groups: strings(v.get("apiGroups")),
            versions: strings(v.get("apiVersions")),
            resources: strings(v.get("resources")),
            operations: strings(v.get("operations")),
            scope: v
                .get("scope")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_string(),
        }
    }
    fn matches(&self, r: &Review, operation: &str) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let resource = resource_name(&r.kind);
        let namespaced = r.namespace.is_some();
        any(&self.groups, &r.group)
            && any(&self.versions, &r.version)
            && any(&self.resources, &resource)
            && any(&self.operations, operation)
            && match self.scope.as_str() {
                "Cluster" => !namespaced,
                "Namespaced" => namespaced,
                _ => true,
            }
    }
}

/// `matchConstraints` of a policy or `matchResources` of a binding.
#[derive(Debug, Clone, Default)]
struct MatchResources {
    rules: Vec<Rule>,
    exclude: Vec<Rule>,
    namespace_selector: Option<Selector>,
    object_selector: Option<Selector>,
}

impl MatchResources {
    fn parse(v: &Value) -> Result<Self, String> {
        let rules = |key: &str| {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().map(Rule::parse).collect())
                .unwrap_or_default()
        };
        let selector = |key: &str| -> Result<Option<Selector>, String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(s) => Selector::parse(s)
                    .map(Some)
                    .map_err(|e| format!("{key}.{e}")),
            }
        };
        Ok(MatchResources {
            rules: rules("resourceRules"),
            exclude: rules("excludeResourceRules"),
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
        })
    }

    fn matches(&self, r: &Review, operation: &str, target: &Target<'_>) -> bool {
        let included = self.rules.iter().any(|rule| rule.matches(r, operation));
        let excluded = self.exclude.iter().any(|rule| rule.matches(r, operation));
        let ns_ok = match (&self.namespace_selector, r.namespace.is_some()) {
            (Some(sel), true) => target.namespace_labels.is_some_and(|l| sel.matches(l)),
            _ => true,
        };
        let obj_ok = self
            .object_selector
            .as_ref()
            .is_none_or(|sel| sel.matches(target.labels));
        included && !excluded && ns_ok && obj_ok
    }
}

/// A ValidatingAdmissionPolicy with its CEL compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    param_kind: Option<(String, String)>,
    constraints: MatchResources,
    cel: Arc<CelTemplate>,
}

/// A binding of a policy: which resources, which params, which actions.
#[derive(Debug, Clone)]
pub struct Binding {
    pub name: String,
    pub policy: String,
    resources: Option<MatchResources>,
    param_name: Option<String>,
    param_namespace: Option<String>,
    param_selector: Option<Selector>,
    deny_without_params: bool,
    /// Its `validationActions`, in their order.
    pub actions: Vec<Action>,
    pub source: Arc<str>,
    pub line: usize,
}

/// Policies and bindings found in the inputs, with the objects given beside them that can be
/// their params (users keep a policy's ConfigMap with the policy).
#[derive(Debug, Clone, Default)]
pub struct Set {
    pub policies: Vec<Policy>,
    pub bindings: Vec<Binding>,
    pub params: Vec<Document>,
}

impl Set {
    pub fn from_documents<'a>(
        docs: impl IntoIterator<Item = &'a Document>,
    ) -> (Set, Vec<PolicyError>) {
        let mut set = Set::default();
        let mut errors = Vec::new();
        let mut others = Vec::new();
        for doc in docs {
            if !crate::policy::is_vap_document(doc) {
                if !crate::policy::is_policy_document(doc) {
                    others.push(doc);
                }
                continue;
            }
            let spec = doc.object.get("spec").cloned().unwrap_or(Value::Null);
            let subject = format!("{} {}", doc.kind(), doc.name());
            let err = |m: String| PolicyError::at(doc, subject.clone(), m);
            if doc.kind() == "ValidatingAdmissionPolicy" {
                let constraints = match spec.get("matchConstraints") {
                    Some(m) => MatchResources::parse(m)
                        .map_err(|e| err(format!("spec.matchConstraints.{e}"))),
                    None => Err(err("spec.matchConstraints is required".into())),
                };
                let cel = CelTemplate::compile(&spec).map_err(&err);
                match (constraints, cel) {
                    (Ok(constraints), Ok(cel)) => set.policies.push(Policy {
                        name: doc.name().to_string(),
                        param_kind: spec.get("paramKind").map(|p| {
                            (
                                p.get("apiVersion")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                                p.get("kind")
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_string(),
                            )
                        }),
                        constraints,
                        cel: Arc::new(cel),
                    }),
                    (Err(e), _) | (_, Err(e)) => errors.push(e),
                }
            } else {
                let policy = spec.get("policyName").and_then(Value::as_str).unwrap_or("");
                if policy.is_empty() {
                    errors.push(err("spec.policyName is required".into()));
                    continue;
                }
                let actions: Option<Vec<Action>> = strings(spec.get("validationActions"))
                    .iter()
                    .map(|a| Action::parse(a))
                    .collect();
                let Some(actions) = actions.filter(|a| !a.is_empty()) else {
                    errors.push(err(
                        "spec.validationActions must list Deny, Warn and/or Audit".into(),
                    ));
                    continue;
                };
                let resources = match spec.get("matchResources") {
                    None | Some(Value::Null) => None,
                    Some(m) => match MatchResources::parse(m) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            errors.push(err(format!("spec.matchResources.{e}")));
                            continue;
                        }
                    },
                };
                let param_ref = spec.get("paramRef").cloned().unwrap_or(Value::Null);
                let param_selector = match param_ref.get("selector") {
                    None | Some(Value::Null) => None,
                    Some(s) => match Selector::parse(s) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            errors.push(err(format!("spec.paramRef.selector.{e}")));
                            continue;
                        }
                    },
                };
                set.bindings.push(Binding {
                    name: doc.name().to_string(),
                    policy: policy.to_string(),
                    resources,
                    param_name: param_ref
                        .get("name")
                        .and_then(Value::as_str)
                        .map(String::from),
                    param_namespace: param_ref
                        .get("namespace")
                        .and_then(Value::as_str)
                        .map(String::from),
                    param_selector,
                    deny_without_params: param_ref
                        .get("parameterNotFoundAction")
                        .and_then(Value::as_str)
                        != Some("Allow"),
                    actions,
                    source: doc.source.clone(),
                    line: doc.line,
                });
            }
        }
        set.params = others
            .into_iter()
            .filter(|d| {
                set.policies.iter().any(|p| {
                    p.param_kind
                        .as_ref()
                        .is_some_and(|(v, k)| d.api_version() == v && d.kind() == k)
                })
            })
            .cloned()
            .collect();
        for b in &set.bindings {
            if !set.policies.iter().any(|p| p.name == b.policy) {
                errors.push(PolicyError {
                    file: b.source.clone(),
                    line: b.line,
                    subject: format!("ValidatingAdmissionPolicyBinding {}", b.name),
                    message: format!("no ValidatingAdmissionPolicy named {}", b.policy),
                });
            }
        }
        (set, errors)
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

/// One failed validation of a bound policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub policy: String,
    pub binding: String,
    pub actions: Vec<Action>,
    pub message: String,
}

/// One of a binding's `validationActions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Deny,
    Warn,
    Audit,
}

impl Action {
    /// A `validationActions` entry: `Deny`, `Warn` or `Audit`.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "Deny" => Some(Action::Deny),
            "Warn" => Some(Action::Warn),
            "Audit" => Some(Action::Audit),
            _ => None,
        }
    }

    /// Lower-case, as reports name it: `deny`, `warn` or `audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Warn => "warn",
            Action::Audit => "audit",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Violation {
    /// `Deny` over `Warn` over `Audit` (the API server applies each; the strongest decides).
    pub fn action(&self) -> Action {
        if self.actions.contains(&Action::Deny) {
            Action::Deny
        } else if self.actions.contains(&Action::Warn) {
            Action::Warn
        } else {
            Action::Audit
        }
    }
}

/// An audit annotation of a bound policy, keyed `<policy>/<key>` as the API server records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub policy: String,
    pub binding: String,
    pub key: String,
    pub value: String,
}

/// What the bindings matching one review give.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub violations: Vec<Violation>,
    pub annotations: Vec<Annotation>,
    pub errors: Vec<String>,
}

fn labels(v: &Value) -> Map<String, Value> {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Evaluates the bindings matching a review as given (its JSON and match target are derived
/// here); `namespace_labels` are the known Namespaces' labels.
pub fn evaluate_review(
    set: &Set,
    review: &Review,
    namespace_labels: &std::collections::BTreeMap<String, Map<String, Value>>,
    objects: &[Document],
) -> Outcome {
    let review_json = crate::engine::to_json(&review.input).unwrap_or(Value::Null);
    let target = review.target(review.namespace_labels(namespace_labels));
    evaluate(set, review, &review_json, &target, objects)
}

/// Evaluates every binding that matches a review; `objects` are the inputs params come from.
pub fn evaluate(
    set: &Set,
    review: &Review,
    review_json: &Value,
    target: &Target<'_>,
    objects: &[Document],
) -> Outcome {
    // An audit's review has no operation: what already exists is matched as it was created.
    let operation = review_json
        .get("operation")
        .and_then(Value::as_str)
        .filter(|o| !o.is_empty())
        .unwrap_or("CREATE");
    let mut out = Outcome::default();
    for b in &set.bindings {
        let Some(policy) = set.policies.iter().find(|p| p.name == b.policy) else {
            continue;
        };
        if !policy.constraints.matches(review, operation, target)
            || !b
                .resources
                .as_ref()
                .is_none_or(|m| m.matches(review, operation, target))
        {
            continue;
        }
        let params: Vec<Value> = match &policy.param_kind {
            None => vec![Value::Null],
            Some((api_version, kind)) => {
                let namespace = b
                    .param_namespace
                    .clone()
                    .or_else(|| review.namespace.clone())
                    .unwrap_or_default();
                set.params
                    .iter()
                    .chain(objects)
                    .filter(|d| d.api_version() == api_version && d.kind() == kind)
                    .filter(|d| d.namespace().is_empty() || d.namespace() == namespace)
                    .filter(|d| b.param_name.as_deref().is_none_or(|n| d.name() == n))
                    .filter(|d| {
                        b.param_selector
                            .as_ref()
                            .is_none_or(|s| s.matches(&labels(&d.object)))
                    })
                    .map(|d| d.object.clone())
                    .collect()
            }
        };
        if params.is_empty() {
            if b.deny_without_params {
                out.violations.push(Violation {
                    policy: policy.name.clone(),
                    binding: b.name.clone(),
                    actions: b.actions.clone(),
                    message: format!(
                        "no params found for binding {} (parameterNotFoundAction: Deny)",
                        b.name
                    ),
                });
            }
            continue;
        }
        for p in params {
            match policy.cel.evaluate_all(review_json, &p) {
                Ok(outcome) => {
                    out.violations
                        .extend(outcome.violations.into_iter().map(|v| Violation {
                            policy: policy.name.clone(),
                            binding: b.name.clone(),
                            actions: b.actions.clone(),
                            message: v.msg,
                        }));
                    out.annotations
                        .extend(outcome.annotations.into_iter().map(|a| Annotation {
                            policy: policy.name.clone(),
                            binding: b.name.clone(),
                            key: a.key,
                            value: a.value,
                        }));
                }
                Err(e) => out.errors.push(format!(
                    "ValidatingAdmissionPolicy {} (binding {}): {e}",
                    policy.name, b.name
                )),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
