//! DaemonSet rollouts: complete when every scheduled pod is updated and available.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;

use super::{first_failure, label, Progress, Thresholds, Verdict};

/// The verdict for a DaemonSet after we applied `generation` of it.
pub fn daemonset(
    d: &DaemonSet,
    pods: &[Pod],
    generation: i64,
    now: Timestamp,
    thresholds: &Thresholds,
) -> Verdict {
    let status = d.status.clone().unwrap_or_default();
    let wanted = generation.max(d.metadata.generation.unwrap_or(0));
    let observed = status.observed_generation.unwrap_or(0);
    if observed < wanted {
        return Verdict::Progressing(Progress::waiting(format!(
            "waiting for the controller to observe generation {wanted} (observed {observed})"
        )));
    }
    let generation_label = wanted.to_string();
    let new_pods = pods
        .iter()
        .filter(|p| label(p, "pod-template-generation") == Some(generation_label.as_str()));
    if let Some(f) = first_failure(new_pods, now, thresholds) {
        return Verdict::Failed(f);
    }
    let desired = i64::from(status.desired_number_scheduled);
    let updated = i64::from(status.updated_number_scheduled.unwrap_or(0));
    let available = i64::from(status.number_available.unwrap_or(0));
    if updated == desired && available == desired {
        return Verdict::Complete;
    }
    Verdict::Progressing(Progress {
        message: format!("{updated}/{desired} updated, {available}/{desired} available"),
        desired,
        updated,
        available,
    })
}
