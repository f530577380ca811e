//! Gatekeeper's `spec.match`: kinds, scope, namespaces, label and namespace selectors, names.

use crate::glob::glob_match;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KindMatch {
    pub api_groups: Vec<String>,
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    All,
    Cluster,
    Namespaced,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    All,
    Original,
    Generated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A Kubernetes label selector (matchLabels and matchExpressions, ANDed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn parse(value: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = value.get("matchLabels") {
            let Some(map) = labels.as_object() else {
                return Err("matchLabels: must be a mapping of label keys to values".into());
            };
            for (k, v) in map {
                let v = scalar_string(v)
                    .ok_or_else(|| format!("matchLabels.{k}: value must be a string"))?;
                requirements.push(Requirement {
                    key: k.clone(),
                    operator: Operator::In,
                    values: vec![v],
                });
            }
        }
        if let Some(exprs) = value.get("matchExpressions") {
            let Some(list) = exprs.as_array() else {
                return Err("matchExpressions: must be a list".into());
            };
            for (i, e) in list.iter().enumerate() {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("matchExpressions[{i}].key: missing"))?;
                let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
                let operator = match op {
                    "In" => Operator::In,
                    "NotIn" => Operator::NotIn,
                    "Exists" => Operator::Exists,
                    "DoesNotExist" => Operator::DoesNotExist,
                    _ => {
                        return Err(format!(
                            "matchExpressions[{i}].operator: `{op}` is not one of In, NotIn, Exists, DoesNotExist"
                        ))
                    }
                };
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(scalar_string).collect())
                    .unwrap_or_default();
                match operator {
                    Operator::In | Operator::NotIn if values.is_empty() => {
                        return Err(format!(
                            "matchExpressions[{i}].values: must not be empty for operator {op}"
                        ))
                    }
                    Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                        return Err(format!(
                            "matchExpressions[{i}].values: must be empty for operator {op}"
                        ))
                    }
                    _ => {}
                }
                requirements.push(Requirement {
                    key: key.to_string(),
                    operator,
                    values,
                });
            }
        }
        Ok(Selector { requirements })
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key).and_then(scalar_string);
            match r.operator {
                Operator::In => value.is_some_and(|v| r.values.contains(&v)),
                Operator::NotIn => value.is_none_or(|v| !r.values.contains(&v)),
                Operator::Exists => value.is_some(),
                Operator::DoesNotExist => value.is_none(),
            }
        })
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What matching needs to know about one object under review.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    /// The object's namespace; `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub labels: &'a Map<String, Value>,
    /// Labels of the object's Namespace when that Namespace is known (for a Namespace, its own).
    pub namespace_labels: Option<&'a Map<String, Value>>,
    pub generated: bool,
}

impl Target<'_> {
    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }
    /// The namespace that namespace matching applies to: a Namespace's own name, else its namespace.
    fn effective_namespace(&self) -> Option<&str> {
        if self.is_namespace() {
            Some(self.name)
        } else {
            self.namespace
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    pub kinds: Vec<KindMatch>,
    pub scope: Scope,
    pub namespaces: Vec<String>,
    pub excluded_namespaces: Vec<String>,
    pub label_selector: Option<Selector>,
    pub namespace_selector: Option<Selector>,
    pub name: Option<String>,
    pub source: Source,
}

fn string_list(value: Option<&Value>, field: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{field}[{i}]: must be a string"))
            })
            .collect(),
        Some(_) => Err(format!("{field}: must be a list of strings")),
    }
}

impl Match {
    /// Parses `spec.match`; an error names the field below `spec.match`.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let mut m = Match::default();
        if let Some(kinds) = value.get("kinds").filter(|k| !k.is_null()) {
            let Some(list) = kinds.as_array() else {
                return Err("kinds: must be a list".into());
            };
            for (i, k) in list.iter().enumerate() {
                m.kinds.push(KindMatch {
                    api_groups: string_list(k.get("apiGroups"), &format!("kinds[{i}].apiGroups"))?,
                    kinds: string_list(k.get("kinds"), &format!("kinds[{i}].kinds"))?,
                });
            }
        }
        m.scope = match value.get("scope").and_then(Value::as_str) {
            None | Some("*") => Scope::All,
            Some("Cluster") => Scope::Cluster,
            Some("Namespaced") => Scope::Namespaced,
            Some(other) => {
                return Err(format!(
                    "scope: `{other}` is not one of *, Cluster, Namespaced"
                ))
            }
        };
        m.source = match value.get("source").and_then(Value::as_str) {
            None | Some("All") => Source::All,
            Some("Original") => Source::Original,
            Some("Generated") => Source::Generated,
            Some(other) => {
                return Err(format!(
                    "source: `{other}` is not one of All, Original, Generated"
                ))
            }
        };
        m.namespaces = string_list(value.get("namespaces"), "namespaces")?;
        m.excluded_namespaces = string_list(value.get("excludedNamespaces"), "excludedNamespaces")?;
        if let Some(s) = value.get("labelSelector").filter(|s| !s.is_null()) {
            m.label_selector = Some(Selector::parse(s).map_err(|e| format!("labelSelector.{e}"))?);
        }
        if let Some(s) = value.get("namespaceSelector").filter(|s| !s.is_null()) {
            m.namespace_selector =
                Some(Selector::parse(s).map_err(|e| format!("namespaceSelector.{e}"))?);
        }
        m.name = value.get("name").and_then(Value::as_str).map(String::from);
        Ok(m)
    }

    /// Whether a constraint with this match applies to the target, as Gatekeeper decides it.
    pub fn matches(&self, t: &Target<'_>) -> bool {
        self.kinds_match(t)
            && self.scope_matches(t)
            && self.source_matches(t)
            && self.namespaces_match(t)
            && self.name.as_deref().is_none_or(|p| glob_match(p, t.name))
            && self
                .label_selector
                .as_ref()
                .is_none_or(|s| s.matches(t.labels))
            && self.namespace_selector_matches(t)
    }

    fn kinds_match(&self, t: &Target<'_>) -> bool {
        if self.kinds.is_empty() {
            return true;
        }
        let hit =
            |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == "*" || x == v);
        self.kinds
            .iter()
            .any(|k| hit(&k.api_groups, t.group) && hit(&k.kinds, t.kind))
    }

    fn scope_matches(&self, t: &Target<'_>) -> bool {
        let namespaced = t.namespace.is_some() && !t.is_namespace();
        match self.scope {
            Scope::All => true,
            Scope::Cluster => !namespaced,
            Scope::Namespaced => namespaced,
        }
    }

    fn source_matches(&self, t: &Target<'_>) -> bool {
        match self.source {
            Source::All => true,
            Source::Original => !t.generated,
            Source::Generated => t.generated,
        }
    }

    fn namespaces_match(&self, t: &Target<'_>) -> bool {
        let Some(ns) = t.effective_namespace() else {
            // Cluster-scoped objects are not subject to namespace lists.
            return true;
        };
        (self.namespaces.is_empty() || self.namespaces.iter().any(|p| glob_match(p, ns)))
            && !self.excluded_namespaces.iter().any(|p| glob_match(p, ns))
    }

    fn namespace_selector_matches(&self, t: &Target<'_>) -> bool {
        let Some(selector) = &self.namespace_selector else {
            return true;
        };
        if t.effective_namespace().is_none() {
            return true;
        }
        t.namespace_labels
            .is_some_and(|labels| selector.matches(labels))
    }
}
