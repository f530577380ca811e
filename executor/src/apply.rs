//! Server-side apply of a release's objects in order (field manager `executor`), waiting for
//! CRDs to be established before their custom resources, and deletion of objects a release
//! no longer has.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde::Serialize;
use serde_json::Value;

use crate::cluster::{describe, Cluster, ClusterError};
use crate::object::ObjectId;
use crate::plan::Desired;

pub use crate::cluster::{post_params, FIELD_MANAGER};

/// How long a CRD may take to be established.
const CRD_ESTABLISHED: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Created,
    Configured,
    Unchanged,
    Deleted,
    /// `plan` could not dry-run it yet (its Namespace or CRD is created by the release).
    Deferred,
    /// The server refused it in the dry run.
    Refused,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Deferred => "deferred",
            Action::Refused => "refused",
        }
    }
}

/// An object as applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub id: ObjectId,
    pub action: Action,
    pub generation: i64,
    /// The object as applied (namespace filled in), for the release record.
    pub object: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{id}: {message}")]
    Refused { id: ObjectId, message: String },
    #[error("{id}: the CustomResourceDefinition was not established within {}s", CRD_ESTABLISHED.as_secs())]
    NotEstablished { id: ObjectId },
    #[error("{id}: the cluster has no kind {kind} even after its CRDs were established")]
    UnknownKind { id: ObjectId, kind: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

fn established(o: Option<&DynamicObject>) -> bool {
    o.and_then(|o| o.data.pointer("/status/conditions"))
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Applies `objects` in order; returns what was applied so far along with the first error.
/// `live_versions` has the resourceVersion of each object that existed when the plan was
/// made (None: unknown), to tell created, configured and unchanged objects apart.
pub async fn apply_all(
    cluster: &Cluster,
    objects: &[Desired],
    live_versions: Option<&HashMap<ObjectId, String>>,
    force: bool,
    mut on_applied: impl FnMut(&Applied),
) -> (Vec<Applied>, Option<ApplyError>) {
    let mut applied: Vec<Applied> = Vec::new();
    let mut pending_crds: Vec<(ObjectId, String)> = Vec::new();
    for d in objects {
        let is_crd = d.id.kind == "CustomResourceDefinition";
        if !is_crd && !pending_crds.is_empty() {
            if let Err(e) = wait_established(cluster, &pending_crds).await {
                return (applied, Some(e));
            }
            pending_crds.clear();
            cluster.forget();
        }
        let resolved = match &d.resolved {
            Some(r) => r.clone(),
            None => match cluster.resolve(&d.id.api_version, &d.id.kind).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return (
                        applied,
                        Some(ApplyError::UnknownKind {
                            id: d.id.clone(),
                            kind: d.id.kind.clone(),
                        }),
                    )
                }
                Err(e) => return (applied, Some(e.into())),
            },
        };
        let api = cluster.api(&resolved, &d.id.namespace);
        let mut params = PatchParams::apply(FIELD_MANAGER);
        params.force = force;
        match api
            .patch(&d.id.name, &params, &Patch::Apply(d.object()))
            .await
        {
            Ok(result) => {
                let action = match live_versions.map(|v| v.get(&d.id)) {
                    None => Action::Configured,
                    Some(None) => Action::Created,
                    Some(Some(rv)) if result.metadata.resource_version.as_ref() == Some(rv) => {
                        Action::Unchanged
                    }
                    Some(Some(_)) => Action::Configured,
                };
                let a = Applied {
                    id: d.id.clone(),
                    action,
                    generation: result.metadata.generation.unwrap_or(0),
                    object: d.object().clone(),
                };
                on_applied(&a);
                applied.push(a);
                if is_crd {
                    pending_crds.push((d.id.clone(), d.id.name.clone()));
                }
            }
            Err(e) => {
                return (
                    applied,
                    Some(ApplyError::Refused {
                        id: d.id.clone(),
                        message: describe(&e),
                    }),
                )
            }
        }
    }
    if !pending_crds.is_empty() {
        if let Err(e) = wait_established(cluster, &pending_crds).await {
            return (applied, Some(e));
        }
        cluster.forget();
    }
    (applied, None)
}

async fn wait_established(
    cluster: &Cluster,
    crds: &[(ObjectId, String)],
) -> Result<(), ApplyError> {
    let Some(resolved) = cluster
        .resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .await?
    else {
        return Ok(());
    };
    let api = cluster.api(&resolved, "");
    for (id, name) in crds {
        let wait = await_condition(api.clone(), name, established);
        match tokio::time::timeout(CRD_ESTABLISHED, wait).await {
            Ok(Ok(_)) => {}
            _ => return Err(ApplyError::NotEstablished { id: id.clone() }),
        }
    }
    Ok(())
}

/// Deletes objects (in reverse apply order); objects already gone are fine.
pub async fn delete_all(cluster: &Cluster, ids: &[ObjectId]) -> Vec<(ObjectId, String)> {
    let mut ordered: Vec<&ObjectId> = ids.iter().collect();
    ordered.sort_by_key(|id| std::cmp::Reverse(crate::plan::rank(&id.api_version, &id.kind)));
    let mut errors = Vec::new();
    for id in ordered {
        let resolved = match cluster.resolve(&id.api_version, &id.kind).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                errors.push((id.clone(), e.to_string()));
                continue;
            }
        };
        let api = cluster.api(&resolved, &id.namespace);
        match api.delete(&id.name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => errors.push((id.clone(), describe(&e))),
        }
    }
    errors
}

/// The fields of `live` that `manager` set by server-side apply, as an apply configuration
/// (what client-go's `Extract` functions give): `apiVersion`, `kind`, name and namespace, and
/// every field its `Apply` entry in `metadata.managedFields` lists. Applying the result with
/// a change keeps the manager the owner of exactly what it owned, where applying less would
/// make the server remove the fields left out.
pub fn extract(live: &Value, manager: &str) -> Value {
    let mut out = serde_json::json!({
        "apiVersion": live["apiVersion"],
        "kind": live["kind"],
        "metadata": {"name": live["metadata"]["name"]},
    });
    if let Some(ns) = live["metadata"]["namespace"].as_str() {
        out["metadata"]["namespace"] = Value::from(ns);
    }
    let entries = live["metadata"]["managedFields"].as_array();
    for entry in entries.into_iter().flatten().filter(|e| {
        e["manager"] == manager
            && e["operation"] == "Apply"
            && e["subresource"].as_str().unwrap_or("").is_empty()
    }) {
        if let Some(fields) = entry["fieldsV1"].as_object() {
            let owned = extract_fields(fields, live);
            merge_into(&mut out, owned);
        }
    }
    out
}

/// The parts of `value` a `fieldsV1` set lists: `f:<name>` map fields, `k:{...}` list items by
/// their keys, `v:<json>` set items; an empty set means the whole value.
fn extract_fields(fields: &serde_json::Map<String, Value>, value: &Value) -> Value {
    let children: Vec<(&String, &Value)> = fields.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, sub) in children {
                let Some(name) = k.strip_prefix("f:") else {
                    continue;
                };
                if let Some(v) = map.get(name) {
                    let sub = sub.as_object().cloned().unwrap_or_default();
                    out.insert(name.to_string(), extract_fields(&sub, v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut out = Vec::new();
            for (k, sub) in children {
                if let Some(keys) = k.strip_prefix("k:") {
                    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
                        continue;
                    };
                    let found = items.iter().find(|item| {
                        keys.iter()
                            .all(|(key, wanted)| item.get(key.as_str()) == Some(wanted))
                    });
                    if let Some(item) = found {
                        let sub = sub.as_object().cloned().unwrap_or_default();
                        let mut part = extract_fields(&sub, item);
                        if let Value::Object(m) = &mut part {
                            for (key, wanted) in &keys {
                                m.insert(key.clone(), wanted.clone());
                            }
                        }
                        out.push(part);
                    }
                } else if let Some(v) = k.strip_prefix("v:") {
                    if let Ok(v) = serde_json::from_str::<Value>(v) {
                        if items.contains(&v) {
                            out.push(v);
                        }
                    }
                }
            }
            Value::Array(out)
        }
        other => other.clone(),
    }
}

fn merge_into(target: &mut Value, part: Value) {
    match (target, part) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                match t.get_mut(&k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, p) => *t = p,
    }
}

#[cfg(test)]
mod extract_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_what_the_manager_applied() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api-blue", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "api", "color": "blue", "team": "x"},
                "managedFields": [
                    {"manager": "executor", "operation": "Apply", "apiVersion": "apps/v1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:color": {}}},
                                  "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                                      "k:{\"name\":\"api\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                    {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                     "fieldsV1": {"f:status": {"f:replicas": {}}}}
                ]},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [
                         {"name": "sidecar", "image": "s:1"},
                         {"name": "api", "image": "api:1", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"replicas": 2}
        });
        assert_eq!(
            extract(&live, "executor"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "api-blue", "namespace": "shop",
                                "labels": {"app": "api", "color": "blue"}},
                   "spec": {"replicas": 2, "template": {"spec": {"containers": [
                       {"name": "api", "image": "api:1"}]}}}})
        );
        // A manager that applied nothing owns nothing.
        assert_eq!(
            extract(&live, "someone"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "api-blue", "namespace": "shop"}})
        );
    }
}
