//! The plan: the objects to apply with their namespaces filled in and kinds resolved, in
//! dependency order, checked by a server-side dry run before anything changes.

pub mod diff;

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};
use validator::manifest::Document;

use crate::cluster::FIELD_MANAGER;
use crate::cluster::{Cluster, ClusterError, Resolved};
use crate::object::ObjectId;

/// An object of the release, as it will be applied.
#[derive(Debug, Clone)]
pub struct Desired {
    pub id: ObjectId,
    /// The object to apply, with the file and line it came from.
    pub doc: Document,
    /// None while its kind is defined by a CRD of the same release that is not applied yet.
    pub resolved: Option<Resolved>,
    pub namespaced: bool,
}

impl Desired {
    pub fn object(&self) -> &Value {
        &self.doc.object
    }

    /// `file:line` it came from.
    pub fn source(&self) -> String {
        format!("{}:{}", self.doc.source, self.doc.line)
    }

    /// An object restored from a release record (no file).
    pub fn stored(object: Value, resolved: Option<Resolved>) -> Self {
        let namespaced = resolved.as_ref().is_none_or(|r| r.namespaced);
        Desired {
            id: ObjectId::of(&object),
            doc: Document {
                source: std::sync::Arc::from("release record"),
                line: 0,
                object,
                rendered_line: None,
                origin: None,
            },
            resolved,
            namespaced,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{source_location}: {id}: the cluster has no kind {kind} in {api_version}, and no CustomResourceDefinition in the release defines it")]
    UnknownKind {
        id: ObjectId,
        source_location: String,
        api_version: String,
        kind: String,
    },
    #[error("{second}: {id} is also defined at {first}")]
    Duplicate {
        id: ObjectId,
        first: String,
        second: String,
    },
    #[error("{source_location}: an object needs apiVersion, kind and metadata.name")]
    Incomplete { source_location: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Apply order: namespaces and CRDs first, then what workloads use, workloads, and what
/// refers to workloads. Policies that constrain pods (network policies, quotas, limit ranges)
/// come before the pods they constrain.
pub fn rank(api_version: &str, kind: &str) -> u8 {
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    match (group, kind) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        (
            _,
            "NetworkPolicy" | "ResourceQuota" | "LimitRange" | "PriorityClass" | "StorageClass",
        ) => 2,
        ("", "ServiceAccount") => 3,
        ("rbac.authorization.k8s.io", _) => 4,
        ("", "ConfigMap" | "Secret") => 5,
        ("", "PersistentVolume" | "PersistentVolumeClaim") => 6,
        ("", "Service") => 7,
        (
            "apps" | "batch" | "",
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "Job"
            | "CronJob"
            | "Pod"
            | "ReplicationController",
        ) => 8,
        (_, "Ingress" | "HorizontalPodAutoscaler" | "PodDisruptionBudget") => 9,
        _ => 10,
    }
}

/// Sorts objects into apply order, keeping manifest order within a rank.
pub fn order(desired: &mut [Desired]) {
    desired.sort_by_key(|d| rank(&d.id.api_version, &d.id.kind));
}

/// Kinds defined by CRDs among the documents: (group, kind) -> namespaced.
fn crd_kinds(documents: &[Document]) -> BTreeMap<(String, String), bool> {
    documents
        .iter()
        .filter(|d| d.kind() == "CustomResourceDefinition")
        .filter_map(|d| {
            let spec = &d.object["spec"];
            Some((
                (
                    spec["group"].as_str()?.to_string(),
                    spec["names"]["kind"].as_str()?.to_string(),
                ),
                spec["scope"].as_str() != Some("Cluster"),
            ))
        })
        .collect()
}

/// Resolves every document's kind, fills in `namespace` for namespaced objects without one,
/// and sorts into apply order.
pub async fn resolve(
    cluster: &Cluster,
    documents: &[Document],
    namespace: &str,
) -> Result<Vec<Desired>, PlanError> {
    let from_crds = crd_kinds(documents);
    let mut seen: BTreeMap<ObjectId, String> = BTreeMap::new();
    let mut desired = Vec::new();
    for doc in documents {
        let source = format!("{}:{}", doc.source, doc.line);
        if doc.api_version().is_empty() || doc.kind().is_empty() || doc.name().is_empty() {
            return Err(PlanError::Incomplete {
                source_location: source,
            });
        }
        let resolved = cluster.resolve(doc.api_version(), doc.kind()).await?;
        let group = doc
            .api_version()
            .split_once('/')
            .map(|(g, _)| g)
            .unwrap_or("");
        let namespaced = match (
            &resolved,
            from_crds.get(&(group.to_string(), doc.kind().to_string())),
        ) {
            (Some(r), _) => r.namespaced,
            (None, Some(namespaced)) => *namespaced,
            (None, None) => {
                return Err(PlanError::UnknownKind {
                    id: ObjectId::of(&doc.object),
                    source_location: source,
                    api_version: doc.api_version().to_string(),
                    kind: doc.kind().to_string(),
                })
            }
        };
        let mut object = doc.object.clone();
        if namespaced {
            if doc.namespace().is_empty() {
                object["metadata"]["namespace"] = json!(namespace);
            }
        } else if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        let id = ObjectId::of(&object);
        if let Some((first, _)) = seen
            .iter()
            .find(|(k, _)| k.same_object(&id))
            .map(|(k, v)| (v.clone(), k.clone()))
        {
            return Err(PlanError::Duplicate {
                id,
                first,
                second: source,
            });
        }
        seen.insert(id.clone(), source.clone());
        desired.push(Desired {
            id,
            doc: Document {
                object,
                ..doc.clone()
            },
            resolved,
            namespaced,
        });
    }
    order(&mut desired);
    Ok(desired)
}

/// An object after the dry run.
#[derive(Debug, Clone)]
pub struct Planned {
    pub desired: Desired,
    /// The object in the cluster now.
    pub live: Option<Value>,
    /// The object as the server would store it.
    pub after: Option<Value>,
    /// Why the dry run skipped it (it needs a Namespace or CRD of the release first).
    pub deferred: Option<String>,
}

/// Dry-runs the server-side apply of every object; the errors are everything the server
/// refused (admission, validation, conflicts), none applied.
pub async fn dry_run(
    cluster: &Cluster,
    desired: Vec<Desired>,
    force: bool,
) -> Result<(Vec<Planned>, Vec<(ObjectId, String)>), ClusterError> {
    let new_namespaces: BTreeSet<String> = desired
        .iter()
        .filter(|d| d.id.kind == "Namespace" && d.id.group_version().0.is_empty())
        .map(|d| d.id.name.clone())
        .collect();
    let mut missing_namespaces = BTreeSet::new();
    if !new_namespaces.is_empty() {
        if let Some(ns) = cluster.resolve("v1", "Namespace").await? {
            let api = cluster.api(&ns, "");
            for name in &new_namespaces {
                if matches!(api.get_opt(name).await, Ok(None)) {
                    missing_namespaces.insert(name.clone());
                }
            }
        }
    }
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for d in desired {
        let deferred = match &d.resolved {
            None => Some("its CustomResourceDefinition is applied first".to_string()),
            Some(_) if d.namespaced && missing_namespaces.contains(&d.id.namespace) => {
                Some(format!("its Namespace {} is created first", d.id.namespace))
            }
            Some(_) => None,
        };
        let (Some(resolved), None) = (&d.resolved, &deferred) else {
            planned.push(Planned {
                desired: d,
                live: None,
                after: None,
                deferred,
            });
            continue;
        };
        let api = cluster.api(resolved, &d.id.namespace);
        let live = match api.get_opt(&d.id.name).await {
            Ok(l) => l.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)),
            Err(e) => {
                errors.push((d.id.clone(), crate::cluster::describe(&e)));
                None
            }
        };
        let mut params = PatchParams::apply(FIELD_MANAGER).dry_run();
        params.force = force;
        let after = match api
            .patch(&d.id.name, &params, &Patch::Apply(d.object()))
            .await
        {
            Ok(o) => Some(serde_json::to_value(o).unwrap_or(Value::Null)),
            Err(e) => {
                errors.push((d.id.clone(), crate::cluster::describe(&e)));
                None
            }
        };
        planned.push(Planned {
            desired: d,
            live,
            after,
            deferred: None,
        });
    }
    Ok((planned, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(api_version: &str, kind: &str, name: &str) -> Desired {
        let object = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}});
        Desired::stored(object, None)
    }

    #[test]
    fn apply_order_puts_dependencies_first() {
        let mut set = vec![
            desired("policy/v1", "PodDisruptionBudget", "api"),
            desired("apps/v1", "Deployment", "api"),
            desired("example.com/v1", "Widget", "w"),
            desired("v1", "Service", "api"),
            desired("v1", "ConfigMap", "cfg"),
            desired("rbac.authorization.k8s.io/v1", "RoleBinding", "rb"),
            desired("v1", "ServiceAccount", "api"),
            desired("networking.k8s.io/v1", "NetworkPolicy", "deny"),
            desired(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
            desired("v1", "PersistentVolumeClaim", "data"),
            desired("v1", "Namespace", "shop"),
            desired("v1", "Secret", "db"),
        ];
        order(&mut set);
        let kinds: Vec<&str> = set.iter().map(|d| d.id.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "NetworkPolicy",
                "ServiceAccount",
                "RoleBinding",
                "ConfigMap",
                "Secret",
                "PersistentVolumeClaim",
                "Service",
                "Deployment",
                "PodDisruptionBudget",
                "Widget"
            ]
        );
    }
}
