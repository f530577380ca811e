//! Kubernetes Events (core/v1) on the workloads of a release: what the executor did to them
//! (deployed, rollout failed, rolled back, promoted, restored), so that `kubectl describe` and
//! event-based alerting see it. Recording an event is best effort: a failure is a warning.

use std::fmt;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta};
use serde_json::Value;

use crate::cluster::Cluster;
use crate::object::ObjectId;
use crate::progress::Progress;

/// The component events are reported by.
pub const COMPONENT: &str = "executor";

/// The event type Kubernetes knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Normal => "Normal",
            Type::Warning => "Warning",
        })
    }
}

/// Why an event is recorded (its `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    ReleaseDeployed,
    RolloutFailed,
    RolledBack,
    RollbackFailed,
    BlueGreenPromoted,
    ReleaseRestored,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ReleaseDeployed => "ReleaseDeployed",
            Reason::RolloutFailed => "RolloutFailed",
            Reason::RolledBack => "RolledBack",
            Reason::RollbackFailed => "RollbackFailed",
            Reason::BlueGreenPromoted => "BlueGreenPromoted",
            Reason::ReleaseRestored => "ReleaseRestored",
        }
    }

    pub fn event_type(self) -> Type {
        match self {
            Reason::RolloutFailed | Reason::RollbackFailed => Type::Warning,
            _ => Type::Normal,
        }
    }
}

/// The workloads (Deployments, StatefulSets, DaemonSets) among a release's objects.
pub fn workloads(objects: &[Value]) -> Vec<ObjectId> {
    objects
        .iter()
        .map(ObjectId::of)
        .filter(|id| {
            id.group_version().0 == "apps"
                && matches!(id.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
        })
        .collect()
}

/// The Event that says `reason: message` about `id`, at `now`, reported by `instance`.
pub fn event(
    id: &ObjectId,
    reason: Reason,
    message: &str,
    now: Timestamp,
    instance: &str,
) -> Event {
    let mut message = message.to_string();
    // The API server refuses messages longer than 1 KiB (on a character boundary here).
    if message.len() > 1024 {
        let mut end = 1021;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", id.name)),
            namespace: Some(id.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(id.api_version.clone()),
            kind: Some(id.kind.clone()),
            namespace: Some(id.namespace.clone()),
            name: Some(id.name.clone()),
            ..ObjectReference::default()
        },
        reason: Some(reason.as_str().to_string()),
        message: Some(message),
        type_: Some(reason.event_type().to_string()),
        source: Some(EventSource {
            component: Some(COMPONENT.to_string()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.to_string()),
        reporting_instance: Some(instance.to_string()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        action: Some(reason.as_str().to_string()),
        ..Event::default()
    }
}

/// Records `reason: message` on each object of `ids` (namespaced ones; an Event lives in its
/// object's namespace). A failure is noted as a warning and changes nothing else.
pub async fn record(
    cluster: &Cluster,
    ids: &[ObjectId],
    reason: Reason,
    message: &str,
    progress: &Progress,
) {
    let instance = crate::lock::identity();
    for id in ids.iter().filter(|id| !id.namespace.is_empty()) {
        let api: Api<Event> = Api::namespaced(cluster.client.clone(), &id.namespace);
        let e = event(id, reason, message, Timestamp::now(), &instance);
        if let Err(err) = api.create(&crate::apply::post_params(), &e).await {
            progress.note(format!(
                "warning: cannot record the event {} on {id} (the release is not affected; check that the executor may create events in namespace {}): {}",
                reason.as_str(),
                id.namespace,
                crate::cluster::describe(&err)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_names_the_workload_and_the_executor() {
        let id = ObjectId::of(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"}}),
        );
        let now: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let e = event(
            &id,
            Reason::RolloutFailed,
            "revision 2 failed",
            now,
            "host/1",
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["involvedObject"]["kind"], "Deployment");
        assert_eq!(v["involvedObject"]["name"], "api");
        assert_eq!(v["involvedObject"]["namespace"], "shop");
        assert_eq!(v["metadata"]["generateName"], "api.");
        assert_eq!(v["metadata"]["namespace"], "shop");
        assert_eq!(v["reason"], "RolloutFailed");
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["source"]["component"], "executor");
        assert_eq!(v["reportingInstance"], "host/1");
        assert_eq!(v["firstTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(
            event(&id, Reason::ReleaseDeployed, "ok", now, "h")
                .type_
                .as_deref(),
            Some("Normal")
        );
    }

    #[test]
    fn long_messages_are_cut_to_what_the_server_accepts() {
        let id = ObjectId::of(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"}}),
        );
        let long = "é".repeat(2000);
        let e = event(&id, Reason::RolledBack, &long, Timestamp::UNIX_EPOCH, "h");
        let m = e.message.unwrap();
        assert!(m.len() <= 1024 && m.ends_with("..."), "{}", m.len());
    }

    #[test]
    fn workloads_are_the_apps_kinds() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "s"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "s"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "s"}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "s"}}),
        ];
        let names: Vec<String> = workloads(&objects).into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["db", "api"]);
    }
}
