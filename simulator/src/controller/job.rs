//! The Job controller: one pod at a time (parallelism and completions of 1), a new pod after
//! each failed one until `spec.backoffLimit` (default 6) failures, and the `Complete` or
//! `Failed` condition with counts in the status, as the Job controller reports them.

use serde_json::{json, Value};

use super::{create_pod, is_ready, str_at, suffix, Context, MANAGER};
use crate::clock::timestamp;
use crate::store::State;

const DEFAULT_BACKOFF_LIMIT: i64 = 6;

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

fn phase(pod: &Value) -> &str {
    str_at(pod, "/status/phase")
}

pub(super) fn reconcile(state: &mut State, _ctx: &Context<'_>, job: &Value) {
    if finished(job) || job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let namespace = str_at(job, "/metadata/namespace").to_string();
    let name = str_at(job, "/metadata/name").to_string();
    let uid = str_at(job, "/metadata/uid").to_string();
    let backoff_limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    let mut pods = state.owned("", "pods", &namespace, &uid);
    let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
    let mut active = pods
        .iter()
        .filter(|p| !matches!(phase(p), "Succeeded" | "Failed"))
        .count() as i64;
    if succeeded == 0 && failed <= backoff_limit && active == 0 {
        let seq = state.memory.next();
        let labels = [
            ("batch.kubernetes.io/job-name", name.clone()),
            ("job-name", name.clone()),
            ("batch.kubernetes.io/controller-uid", uid.clone()),
            ("controller-uid", uid.clone()),
        ];
        let pod_name = format!("{name}-{}", suffix(seq));
        create_pod(
            state,
            job,
            &pod_name,
            &job["spec"]["template"],
            &labels,
            None,
        );
        pods = state.owned("", "pods", &namespace, &uid);
        active = 1;
    }
    let now = timestamp();
    let mut status = json!({
        "active": active,
        "ready": pods.iter().filter(|p| is_ready(p)).count(),
        "succeeded": succeeded,
        "failed": failed,
        "startTime": job.pointer("/status/startTime").cloned().unwrap_or_else(|| json!(now)),
    });
    if succeeded > 0 {
        status["active"] = json!(0);
        status["completionTime"] = json!(now);
        status["conditions"] = json!([
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached",
             "message": "Reached expected number of succeeded pods", "lastTransitionTime": now},
        ]);
    } else if failed > backoff_limit {
        status["active"] = json!(0);
        status["conditions"] = json!([
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit", "lastTransitionTime": now},
        ]);
    }
    let previous = job.get("status").cloned().unwrap_or(Value::Null);
    let same_counts = ["active", "ready", "succeeded", "failed"]
        .iter()
        .all(|k| previous[*k] == status[*k]);
    if same_counts && status.get("conditions").is_none() && previous.get("startTime").is_some() {
        return;
    }
    let mut next = job.clone();
    next["status"] = status;
    state.controller_write(next, MANAGER);
}
