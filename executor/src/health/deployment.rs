//! Deployment rollouts: complete when the controller has seen our generation and every
//! replica is updated and available; failed on ProgressDeadlineExceeded or failing new pods.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

use super::{first_failure, label, Failure, Progress, Reason, Thresholds, Verdict};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> Option<&str> {
    annotations
        .and_then(|a| a.get(REVISION))
        .map(String::as_str)
}

/// The verdict for a Deployment after we applied `generation` of it.
/// The progress deadline as the executor enforces it itself: the Deployment controller's
/// `ProgressDeadlineExceeded` does not come when the controller keeps an earlier
/// `Progressing=True, NewReplicaSetAvailable` condition (a Deployment scaled up from 0 that
/// reuses its ReplicaSet, as a blue-green color does), so a rollout without progress would only
/// fail at `--timeout`. The clock starts when the executor starts watching the rollout and
/// restarts whenever the counts move forward (more updated, ready or available replicas, fewer
/// old ones), as the controller measures progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    since: Timestamp,
    best: Option<Counts>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Counts {
    updated: i64,
    ready: i64,
    available: i64,
    old: i64,
}

impl Deadline {
    /// A deadline for a rollout started at `started`.
    pub fn new(started: Timestamp) -> Self {
        Deadline {
            since: started,
            best: None,
        }
    }

    /// Called on every evaluation of a rollout that is not complete: a failure once
    /// `spec.progressDeadlineSeconds` passed without progress.
    pub fn check(&mut self, d: &Deployment, generation: i64, now: Timestamp) -> Option<Failure> {
        let seconds = d.spec.progress_deadline_seconds?;
        let status = d.status.clone().unwrap_or_default();
        let wanted = generation.max(d.metadata.generation.unwrap_or(0));
        if status.observed_generation.unwrap_or(0) >= wanted {
            let total = i64::from(status.replicas.unwrap_or(0));
            let updated = i64::from(status.updated_replicas.unwrap_or(0));
            let counts = Counts {
                updated,
                ready: i64::from(status.ready_replicas.unwrap_or(0)),
                available: i64::from(status.available_replicas.unwrap_or(0)),
                old: (total - updated).max(0),
            };
            let progressed = match self.best {
                None => false,
                Some(b) => {
                    counts.updated > b.updated
                        || counts.ready > b.ready
                        || counts.available > b.available
                        || counts.old < b.old
                }
            };
            if progressed {
                self.since = now;
            }
            self.best = Some(match self.best {
                None => counts,
                Some(b) => Counts {
                    updated: b.updated.max(counts.updated),
                    ready: b.ready.max(counts.ready),
                    available: b.available.max(counts.available),
                    old: b.old.min(counts.old),
                },
            });
        }
        let waited = now.duration_since(self.since).as_secs_f64();
        if waited <= f64::from(seconds) {
            return None;
        }
        let condition = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            .map(|c| {
                format!(
                    "; the controller reports Progressing={} {}",
                    c.status.as_deref().unwrap_or("?"),
                    c.reason.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        Some(Failure {
            reason: Reason::ProgressDeadlineExceeded,
            message: format!(
                "no progress for {seconds}s (progressDeadlineSeconds) since the rollout started or last progressed{condition}"
            ),
        })
    }
}

pub fn deployment(
    d: &Deployment,
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
    generation: i64,
    now: Timestamp,
    thresholds: &Thresholds,
) -> Verdict {
    let status = d.status.clone().unwrap_or_default();
    let wanted = generation.max(d.metadata.generation.unwrap_or(0));
    let observed = status.observed_generation.unwrap_or(0);
    if observed < wanted {
        // Whatever the status says describes an older spec.
        return Verdict::Progressing(Progress::waiting(format!(
            "waiting for the controller to observe generation {wanted} (observed {observed})"
        )));
    }
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
    {
        if c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        {
            return Verdict::Failed(Failure {
                reason: Reason::ProgressDeadlineExceeded,
                message: c
                    .message
                    .clone()
                    .unwrap_or_else(|| "progress deadline exceeded".into()),
            });
        }
    }
    // The new ReplicaSet: ours, at the Deployment's revision.
    let uid = d.metadata.uid.as_deref();
    let revision = revision_of(d.metadata.annotations.as_ref());
    let new_rs = replica_sets.iter().find(|rs| {
        let owned = rs
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(o.uid.as_str()) == uid);
        owned && revision.is_some() && revision_of(rs.metadata.annotations.as_ref()) == revision
    });
    if let Some(hash) = new_rs
        .and_then(|rs| rs.metadata.labels.as_ref())
        .and_then(|l| l.get("pod-template-hash"))
    {
        let new_pods = pods
            .iter()
            .filter(|p| label(p, "pod-template-hash") == Some(hash.as_str()));
        if let Some(f) = first_failure(new_pods, now, thresholds) {
            return Verdict::Failed(f);
        }
    }
    let desired = i64::from(d.spec.replicas.unwrap_or(1));
    let updated = i64::from(status.updated_replicas.unwrap_or(0));
    let available = i64::from(status.available_replicas.unwrap_or(0));
    let total = i64::from(status.replicas.unwrap_or(0));
    if updated == desired && total == desired && available == desired {
        return Verdict::Complete;
    }
    let old = (total - updated).max(0);
    let mut message = format!("{updated}/{desired} updated, {available}/{desired} available");
    if old > 0 {
        message.push_str(&format!(", {old} old"));
    }
    if d.spec.paused.unwrap_or(false) {
        message.push_str(" (paused)");
    }
    Verdict::Progressing(Progress {
        message,
        desired,
        updated,
        available,
    })
}
