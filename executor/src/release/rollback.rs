//! Restoring a release: re-apply its exact stored objects (taking fields back from other
//! managers), delete what the undone revisions created, and wait for the workloads.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::Value;

use crate::apply::{self, Applied, ApplyError};
use crate::cluster::Cluster;
use crate::health::Failure;
use crate::object::ObjectId;
use crate::plan::Desired;
use crate::progress::Progress;
use crate::strategy::{self, rolling, Outcome, Settings};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("re-applying the stored objects failed: {0}")]
    Apply(#[from] ApplyError),
    #[error("the restored rollout failed: {id}: {failure}")]
    Rollout { id: ObjectId, failure: Failure },
}

/// Re-applies `objects`, deletes `delete`, and waits until the workloads are complete.
pub async fn restore(
    cluster: &Cluster,
    objects: &[Value],
    delete: &[ObjectId],
    settings: &Settings,
    progress: &Progress,
) -> Result<Vec<Applied>, RestoreError> {
    let desired: Vec<Desired> = {
        let mut out = Vec::new();
        for o in objects {
            let id = ObjectId::of(o);
            let resolved = cluster
                .resolve(&id.api_version, &id.kind)
                .await
                .map_err(ApplyError::from)?;
            out.push(Desired::stored(o.clone(), resolved));
        }
        out
    };
    // A Service that selects a blue-green color is moved only once the workloads it will
    // select are complete, and what the undone revisions created is deleted only after that:
    // a Service never selects zero ready pods during a rollback.
    let (switches, desired): (Vec<Desired>, Vec<Desired>) =
        desired.into_iter().partition(|d| selects_color(d.object()));
    let stuck = stuck_statefulset_revisions(cluster, objects).await;
    let (mut applied, error) = apply::apply_all(cluster, &desired, None, true, |a| {
        progress.note(format!("restored {}", a.id));
    })
    .await;
    if let Some(e) = error {
        return Err(e.into());
    }
    for (id, revision, selector) in &stuck {
        delete_unready_pods(cluster, id, revision, selector, progress).await;
    }
    if switches.is_empty() {
        delete_undone(cluster, delete, progress).await;
    }
    progress.reset();
    let workloads = strategy::workloads(&applied);
    if let Outcome::Failed { id, failure } =
        rolling::wait(&cluster.client, &workloads, settings, progress).await
    {
        return Err(RestoreError::Rollout { id, failure });
    }
    if !switches.is_empty() {
        let (switched, error) = apply::apply_all(cluster, &switches, None, true, |a| {
            progress.note(format!("restored {}", a.id));
        })
        .await;
        applied.extend(switched);
        if let Some(e) = error {
            return Err(e.into());
        }
        delete_undone(cluster, delete, progress).await;
    }
    Ok(applied)
}

/// A Service whose selector has the blue-green color label.
fn selects_color(object: &Value) -> bool {
    object["apiVersion"] == "v1"
        && object["kind"] == "Service"
        && object["spec"]["selector"]
            .get(strategy::blue_green::COLOR_LABEL)
            .is_some()
}

async fn delete_undone(cluster: &Cluster, delete: &[ObjectId], progress: &Progress) {
    for (id, message) in apply::delete_all(cluster, delete).await {
        progress.note(format!("could not delete {id}: {message}"));
    }
    for id in delete {
        progress.note(format!("deleted {id}"));
    }
}

/// StatefulSets of `objects` caught mid-rollout: (id, the revision they were rolling to, pod
/// selector). Their controller waits for the pods of that revision to become ready before it
/// touches them again, even once the template is reverted, so those pods must be deleted.
async fn stuck_statefulset_revisions(
    cluster: &Cluster,
    objects: &[Value],
) -> Vec<(ObjectId, String, String)> {
    let mut out = Vec::new();
    for o in objects {
        let id = ObjectId::of(o);
        if id.kind != "StatefulSet" || id.group_version().0 != "apps" {
            continue;
        }
        let api: Api<StatefulSet> = Api::namespaced(cluster.client.clone(), &id.namespace);
        let Ok(Some(live)) = api.get_opt(&id.name).await else {
            continue;
        };
        let status = live.status.unwrap_or_default();
        if let (Some(update), current) = (status.update_revision, status.current_revision) {
            if current.as_deref() != Some(update.as_str()) {
                out.push((
                    id,
                    update,
                    strategy::selector_string(&o["spec"]["selector"]),
                ));
            }
        }
    }
    out
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn delete_unready_pods(
    cluster: &Cluster,
    id: &ObjectId,
    revision: &str,
    selector: &str,
    progress: &Progress,
) {
    let api: Api<Pod> = Api::namespaced(cluster.client.clone(), &id.namespace);
    let Ok(pods) = api.list(&ListParams::default().labels(selector)).await else {
        return;
    };
    for pod in pods.items {
        let at_revision = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("controller-revision-hash"))
            .is_some_and(|r| r == revision);
        if at_revision && !pod_ready(&pod) {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if api.delete(&name, &DeleteParams::default()).await.is_ok() {
                progress.note(format!("{id}: deleted pod {name} of the failed revision so that the controller replaces it"));
            }
        }
    }
}
