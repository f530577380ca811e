//! Health verdicts: pure functions that decide from a workload, its ReplicaSets and its pods
//! whether a rollout is complete, still progressing, or has failed.

mod daemonset;
mod deployment;
mod statefulset;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;

pub use daemonset::daemonset;
pub use deployment::{deployment, Deadline};
pub use statefulset::statefulset;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not done yet; what it is waiting for.
    Progressing(Progress),
    Complete,
    Failed(Failure),
}

/// Counts for progress reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    pub message: String,
    pub desired: i64,
    pub updated: i64,
    pub available: i64,
}

impl Progress {
    fn waiting(message: impl Into<String>) -> Self {
        Progress {
            message: message.into(),
            ..Progress::default()
        }
    }
}

/// Why a rollout failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    ProgressDeadlineExceeded,
    CrashLoopBackOff,
    ImagePullBackOff,
    CreateContainerConfigError,
    Timeout,
    Deleted,
    ApplyFailed,
    /// A hook Job failed.
    HookFailed,
    /// A smoke, metric or readiness gate failed (or could not be evaluated).
    GateFailed,
    /// `executor abort` stopped a paused blue-green release.
    Aborted,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Reason::CrashLoopBackOff => "CrashLoopBackOff",
            Reason::ImagePullBackOff => "ImagePullBackOff",
            Reason::CreateContainerConfigError => "CreateContainerConfigError",
            Reason::Timeout => "Timeout",
            Reason::Deleted => "Deleted",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::HookFailed => "HookFailed",
            Reason::GateFailed => "GateFailed",
            Reason::Aborted => "Aborted",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// When failing pods fail the rollout without waiting for a deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// A new pod whose containers restarted this often has failed.
    pub max_restarts: i32,
    /// A new pod still waiting on its image or its configuration after this long has failed.
    pub stuck_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_restarts: 3,
            stuck_after: Duration::from_secs(60),
        }
    }
}

fn age(pod: &Pod, now: Timestamp) -> Duration {
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    match since {
        Some(t) => now
            .since(t)
            .ok()
            .and_then(|span| span.total(jiff::Unit::Second).ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_default(),
        None => Duration::ZERO,
    }
}

/// Whether one pod of the new revision has failed, by the thresholds.
pub fn pod_failure(pod: &Pod, now: Timestamp, thresholds: &Thresholds) -> Option<Failure> {
    let status = pod.status.as_ref()?;
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    let age = age(pod, now);
    for c in statuses {
        let waiting = c
            .state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| {
                w.reason
                    .as_deref()
                    .map(|r| (r, w.message.as_deref().unwrap_or("")))
            });
        if c.restart_count >= thresholds.max_restarts {
            let state = waiting.map(|(r, _)| r).unwrap_or("restarting");
            return Some(Failure {
                reason: Reason::CrashLoopBackOff,
                message: format!(
                    "pod {name} container {}: {state}, {} restarts (limit {})",
                    c.name, c.restart_count, thresholds.max_restarts
                ),
            });
        }
        let Some((reason, message)) = waiting else {
            continue;
        };
        let kind = match reason {
            "ImagePullBackOff" | "ErrImagePull" | "ErrImageNeverPull" | "InvalidImageName" => {
                Reason::ImagePullBackOff
            }
            "CreateContainerConfigError" | "CreateContainerError" => {
                Reason::CreateContainerConfigError
            }
            _ => continue,
        };
        let immediate = reason == "InvalidImageName";
        if immediate || age >= thresholds.stuck_after {
            let detail = if message.is_empty() {
                String::new()
            } else {
                format!(" ({message})")
            };
            return Some(Failure {
                reason: kind,
                message: format!(
                    "pod {name} container {}: {reason} for {}s{detail}",
                    c.name,
                    age.as_secs()
                ),
            });
        }
    }
    None
}

/// The first failing pod among those selected.
fn first_failure<'a>(
    pods: impl Iterator<Item = &'a Pod>,
    now: Timestamp,
    thresholds: &Thresholds,
) -> Option<Failure> {
    let mut pods: Vec<&Pod> = pods.collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods.into_iter()
        .find_map(|p| pod_failure(p, now, thresholds))
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}
