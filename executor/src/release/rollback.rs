//! Restoring a release: re-apply its exact stored objects (taking fields back from other
//! managers), delete what the undone revisions created, and wait for the workloads.

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
    let (applied, error) = apply::apply_all(cluster, &desired, None, true, |a| {
        progress.note(format!("restored {}", a.id));
    })
    .await;
    if let Some(e) = error {
        return Err(e.into());
    }
    for (id, message) in apply::delete_all(cluster, delete).await {
        progress.note(format!("could not delete {id}: {message}"));
    }
    for id in delete {
        progress.note(format!("deleted {id}"));
    }
    progress.reset();
    let workloads = strategy::workloads(&applied);
    match rolling::wait(&cluster.client, &workloads, settings, progress).await {
        Outcome::Complete => Ok(applied),
        Outcome::Failed { id, failure } => Err(RestoreError::Rollout { id, failure }),
    }
}
