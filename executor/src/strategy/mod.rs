//! Rollout strategies: how the workloads of a release are brought to their new version and
//! when that is done. `rolling` leaves it to the workload controllers and watches them;
//! `blue_green` deploys the idle color beside the serving one and switches a Service to it.

pub mod blue_green;
pub mod rolling;

use std::time::Duration;

use serde_json::Value;

use crate::apply::Applied;
use crate::health::{Failure, Thresholds};
use crate::object::ObjectId;

/// How a release is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Apply the new spec; the workload controllers replace pods in place.
    Rolling,
    /// Deploy the idle color at full size, check it, switch the Service to it.
    BlueGreen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// A workload whose rollout is watched.
#[derive(Debug, Clone)]
pub struct Workload {
    pub id: ObjectId,
    pub kind: WorkloadKind,
    /// The generation our apply produced.
    pub generation: i64,
    /// Its pod selector, in label-selector syntax.
    pub selector: String,
}

/// How a wait ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete,
    Failed { id: ObjectId, failure: Failure },
}

/// What a wait needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub thresholds: Thresholds,
    pub timeout: Duration,
}

/// A `LabelSelector` object in query syntax.
pub fn selector_string(selector: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(labels) = selector["matchLabels"].as_object() {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e["operator"].as_str() {
            Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => parts.push(key.to_string()),
            Some("DoesNotExist") => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The workloads among applied objects.
pub fn workloads(applied: &[Applied]) -> Vec<Workload> {
    applied
        .iter()
        .filter(|a| a.id.group_version().0 == "apps")
        .filter_map(|a| {
            let kind = match a.id.kind.as_str() {
                "Deployment" => WorkloadKind::Deployment,
                "StatefulSet" => WorkloadKind::StatefulSet,
                "DaemonSet" => WorkloadKind::DaemonSet,
                _ => return None,
            };
            Some(Workload {
                id: a.id.clone(),
                kind,
                generation: a.generation,
                selector: selector_string(&a.object["spec"]["selector"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_in_query_syntax() {
        let s = json!({"matchLabels": {"app": "api"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "legacy", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(&s), "app=api,tier in (web,api),!legacy");
    }
}
