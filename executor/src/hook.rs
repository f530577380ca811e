//! Hook Jobs: Jobs in the manifests annotated `executor.io/hook: pre-deploy` (run before
//! anything else is applied, e.g. database migrations) or `post-deploy` (run once the
//! workloads are rolled out, e.g. smoke tests). A hook is not part of the release's objects:
//! it is deleted and created afresh at its phase, waited for until the Job is `Complete` or
//! `Failed`, and its failure fails the release.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::Value;

use crate::analysis::{GateOutcome, GateResult};
use crate::apply::FIELD_MANAGER;
use crate::cluster::Cluster;
use crate::plan::Desired;
use crate::progress::Progress;

/// The annotation that makes a Job a hook.
pub const ANNOTATION: &str = "executor.io/hook";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    PreDeploy,
    PostDeploy,
}

impl fmt::Display for HookPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HookPhase::PreDeploy => "pre-deploy",
            HookPhase::PostDeploy => "post-deploy",
        })
    }
}

/// The hook phase an object asks for; an error for a bad value or a hook that is not a Job.
pub fn phase_of(object: &Value) -> Result<Option<HookPhase>, String> {
    let Some(value) = object["metadata"]["annotations"][ANNOTATION].as_str() else {
        return Ok(None);
    };
    let phase = match value {
        "pre-deploy" => HookPhase::PreDeploy,
        "post-deploy" => HookPhase::PostDeploy,
        other => {
            return Err(format!(
                "annotation {ANNOTATION}: `{other}` is not a hook phase (use pre-deploy or post-deploy)"
            ))
        }
    };
    if object["apiVersion"] != "batch/v1" || object["kind"] != "Job" {
        return Err(format!(
            "annotation {ANNOTATION} is only for batch/v1 Jobs, not {} {}",
            object["apiVersion"].as_str().unwrap_or("?"),
            object["kind"].as_str().unwrap_or("?")
        ));
    }
    Ok(Some(phase))
}

/// Hooks of a release, by phase, in manifest order.
#[derive(Debug, Default)]
pub struct Hooks {
    pub pre_deploy: Vec<Desired>,
    pub post_deploy: Vec<Desired>,
}

/// Separates hooks from the objects of the release; errors name the object and its source.
pub fn split(desired: Vec<Desired>) -> Result<(Vec<Desired>, Hooks), Vec<String>> {
    let mut objects = Vec::new();
    let mut hooks = Hooks::default();
    let mut errors = Vec::new();
    for d in desired {
        match phase_of(d.object()) {
            Ok(None) => objects.push(d),
            Ok(Some(HookPhase::PreDeploy)) => hooks.pre_deploy.push(d),
            Ok(Some(HookPhase::PostDeploy)) => hooks.post_deploy.push(d),
            Err(e) => errors.push(format!("{} ({}): {e}", d.id, d.source())),
        }
    }
    if errors.is_empty() {
        Ok((objects, hooks))
    } else {
        Err(errors)
    }
}

/// `Complete` or `Failed` with its reason and message, once the Job has finished.
pub fn finished(job: &Job) -> Option<(bool, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some((true, "complete".to_string())),
            "Failed" => Some((
                false,
                format!(
                    "failed: {}: {}",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("")
                ),
            )),
            _ => None,
        })
}

/// Runs the hooks of a phase one after the other; stops at the first that fails.
pub async fn run(
    cluster: &Cluster,
    phase: HookPhase,
    hooks: &[Desired],
    timeout: Duration,
    progress: &Progress,
) -> Vec<GateResult> {
    let mut results = Vec::new();
    for d in hooks {
        let result = run_one(cluster, phase, d, timeout, progress).await;
        progress.note(&result);
        let failed = !result.outcome.passed();
        results.push(result);
        if failed {
            break;
        }
    }
    results
}

async fn run_one(
    cluster: &Cluster,
    phase: HookPhase,
    d: &Desired,
    timeout: Duration,
    progress: &Progress,
) -> GateResult {
    let name = format!("hook {phase} Job {}/{}", d.id.namespace, d.id.name);
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &d.id.namespace);
    // A Job's pod template cannot change: the hook of an earlier release makes way.
    match jobs.delete(&d.id.name, &DeleteParams::background()).await {
        Ok(_) => {
            let gone = await_condition(jobs.clone(), &d.id.name, |j: Option<&Job>| j.is_none());
            if tokio::time::timeout(Duration::from_secs(30), gone)
                .await
                .is_err()
            {
                return GateResult::new(
                    name,
                    GateOutcome::Error,
                    "the Job of an earlier run was not deleted within 30s",
                );
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => {
            return GateResult::new(
                name,
                GateOutcome::Error,
                format!(
                    "cannot delete the Job of an earlier run: {}",
                    crate::cluster::describe(&e)
                ),
            )
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if let Err(e) = jobs
        .patch(&d.id.name, &params, &Patch::Apply(d.object()))
        .await
    {
        return GateResult::new(
            name,
            GateOutcome::Failed,
            format!("cannot create the Job: {}", crate::cluster::describe(&e)),
        );
    }
    progress.note(format!("{name} started"));
    let done = await_condition(jobs, &d.id.name, |j: Option<&Job>| {
        j.and_then(finished).is_some()
    });
    match tokio::time::timeout(timeout, done).await {
        Ok(Ok(Some(job))) => match finished(&job) {
            Some((true, m)) => GateResult::new(name, GateOutcome::Passed, m),
            Some((false, m)) => GateResult::new(name, GateOutcome::Failed, m),
            None => GateResult::new(name, GateOutcome::Error, "the Job has no final condition"),
        },
        Ok(Ok(None)) => GateResult::new(
            name,
            GateOutcome::Failed,
            "the Job was deleted while it ran",
        ),
        Ok(Err(e)) => GateResult::new(
            name,
            GateOutcome::Error,
            format!("cannot watch the Job: {e}"),
        ),
        Err(_) => GateResult::new(
            name,
            GateOutcome::Failed,
            format!("not finished after {}s (--timeout)", timeout.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(annotation: Option<&str>) -> Value {
        let mut j =
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"}});
        if let Some(a) = annotation {
            j["metadata"]["annotations"] = json!({ANNOTATION: a});
        }
        j
    }

    #[test]
    fn hooks_are_jobs_with_a_known_phase() {
        assert_eq!(phase_of(&job(None)), Ok(None));
        assert_eq!(
            phase_of(&job(Some("pre-deploy"))),
            Ok(Some(HookPhase::PreDeploy))
        );
        assert_eq!(
            phase_of(&job(Some("post-deploy"))),
            Ok(Some(HookPhase::PostDeploy))
        );
        assert!(phase_of(&job(Some("pre-install")))
            .unwrap_err()
            .contains("pre-install"));
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {ANNOTATION: "pre-deploy"}}});
        assert!(phase_of(&pod)
            .unwrap_err()
            .contains("only for batch/v1 Jobs"));
    }

    #[test]
    fn a_job_is_finished_by_its_complete_or_failed_condition() {
        let with = |conditions: Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "m"}, "status": {"conditions": conditions}}),
            )
            .unwrap()
        };
        assert_eq!(finished(&with(json!([]))), None);
        assert_eq!(
            finished(&with(json!([{"type": "Complete", "status": "True"}]))),
            Some((true, "complete".into()))
        );
        let failed = finished(&with(json!([
            {"type": "FailureTarget", "status": "True"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}
        ])))
        .unwrap();
        assert!(
            !failed.0 && failed.1.contains("BackoffLimitExceeded"),
            "{failed:?}"
        );
        assert_eq!(
            finished(&with(json!([{"type": "Failed", "status": "False"}]))),
            None
        );
    }
}
