//! Server-side apply of a release's objects in order (field manager `executor`), waiting for
//! CRDs to be established before their custom resources, and deletion of objects a release
//! no longer has.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, ClusterError};
use crate::object::ObjectId;
use crate::plan::Desired;

/// The field manager of everything the executor applies.
pub const FIELD_MANAGER: &str = "executor";

/// How long a CRD may take to be established.
const CRD_ESTABLISHED: Duration = Duration::from_secs(60);

/// A server answer in one line: the API's own message when there is one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.reason)
            };
            format!("{}{reason}", s.message)
        }
        other => other.to_string(),
    }
}

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
