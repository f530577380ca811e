//! StatefulSet rollouts: complete when every replica is ready and the pods above the
//! partition run the update revision (all of them, and the revisions agree, without one).

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::{first_failure, label, Progress, Thresholds, Verdict};

/// The verdict for a StatefulSet after we applied `generation` of it.
pub fn statefulset(
    s: &StatefulSet,
    pods: &[Pod],
    generation: i64,
    now: Timestamp,
    thresholds: &Thresholds,
) -> Verdict {
    let status = s.status.clone().unwrap_or_default();
    let wanted = generation.max(s.metadata.generation.unwrap_or(0));
    let observed = status.observed_generation.unwrap_or(0);
    if observed < wanted {
        return Verdict::Progressing(Progress::waiting(format!(
            "waiting for the controller to observe generation {wanted} (observed {observed})"
        )));
    }
    let update_revision = status.update_revision.clone().unwrap_or_default();
    if !update_revision.is_empty() {
        let new_pods = pods
            .iter()
            .filter(|p| label(p, "controller-revision-hash") == Some(update_revision.as_str()));
        if let Some(f) = first_failure(new_pods, now, thresholds) {
            return Verdict::Failed(f);
        }
    }
    let spec = s.spec.clone();
    let desired = i64::from(spec.replicas.unwrap_or(1));
    let ready = i64::from(status.ready_replicas.unwrap_or(0));
    let available = i64::from(
        status
            .available_replicas
            .unwrap_or(status.ready_replicas.unwrap_or(0)),
    );
    let updated = i64::from(status.updated_replicas.unwrap_or(0));
    let strategy = spec.update_strategy.unwrap_or_default();
    let on_delete = strategy.type_.as_deref() == Some("OnDelete");
    let partition = i64::from(
        strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0),
    );
    let revisions_agree = status.current_revision.as_deref() == Some(update_revision.as_str());
    let complete = if on_delete {
        ready == desired && available == desired
    } else if partition > 0 {
        updated >= (desired - partition).max(0) && ready == desired && available == desired
    } else {
        revisions_agree && updated == desired && ready == desired && available == desired
    };
    if complete {
        return Verdict::Complete;
    }
    let target = if partition > 0 && !on_delete {
        (desired - partition).max(0)
    } else {
        desired
    };
    Verdict::Progressing(Progress {
        message: format!("{updated}/{target} updated, {ready}/{desired} ready"),
        desired,
        updated,
        available,
    })
}
