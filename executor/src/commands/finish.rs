//! How a release operation ends, shared by `apply`, `promote` and `abort`: the gates after a
//! rollout, the blue-green switch, recording a deployed revision, and rolling back (for
//! blue-green, moving the Service back before anything else).

use std::time::Duration;

use super::{now, trim_history, write_record};
use crate::analysis::{self, GateOutcome, GateResult, Gates};
use crate::apply::{self, Action};
use crate::cluster::Cluster;
use crate::events;
use crate::exit::ExitStatus;
use crate::health::{Failure, Reason};
use crate::hook::{self, HookPhase};
use crate::object::ObjectId;
use crate::outcome::{ObjectReport, Outcome, Report, Timer};
use crate::plan::Desired;
use crate::progress::Progress;
use crate::release::{self, rollback, History, Operation, Phase, Record, Status};
use crate::strategy::blue_green::{self, Color};
use crate::strategy::Settings;
use crate::Error;

/// What every ending needs.
pub struct Ctx<'a> {
    pub cluster: &'a Cluster,
    pub history: &'a History,
    pub namespace: &'a str,
    pub name: &'a str,
    pub progress: &'a Progress,
    pub history_max: usize,
    /// The settings of the rollout (hooks use its timeout); a rollback uses them with its own
    /// timeout.
    pub rollout: Settings,
    pub rollback_timeout: Duration,
}

/// A failed gate, or failed hook, as a rollout failure of `id`.
pub type Failed = (ObjectId, Failure);

fn first_failure(results: &[GateResult], id: &ObjectId, reason: Reason) -> Option<Failed> {
    results.iter().find(|r| !r.outcome.passed()).map(|r| {
        (
            id.clone(),
            Failure {
                reason,
                message: format!("{}: {}: {}", r.name, r.outcome.as_str(), r.message),
            },
        )
    })
}

/// Runs the hooks of a phase, recording their results; the first that fails fails the release.
pub async fn hooks(
    ctx: &Ctx<'_>,
    record: &mut Record,
    phase: HookPhase,
    hooks: &[Desired],
) -> Option<Failed> {
    let results = hook::run(ctx.cluster, phase, hooks, ctx.rollout.timeout, ctx.progress).await;
    let failed = results
        .iter()
        .zip(hooks)
        .find(|(r, _)| !r.outcome.passed())
        .map(|(r, d)| {
            (
                d.id.clone(),
                Failure {
                    reason: Reason::HookFailed,
                    message: format!("{}: {}", r.name, r.message),
                },
            )
        });
    record.gates.extend(results);
    failed
}

/// The gates once the workloads are complete: post-deploy hooks, then the smoke check.
pub async fn verify(
    ctx: &Ctx<'_>,
    record: &mut Record,
    post_deploy: &[Desired],
    gates: &Gates,
    subject: &ObjectId,
) -> Option<Failed> {
    record.gates.push(GateResult::new(
        "readiness",
        GateOutcome::Passed,
        "every workload is rolled out and available",
    ));
    if let Some(f) = hooks(ctx, record, HookPhase::PostDeploy, post_deploy).await {
        return Some(f);
    }
    let smoke = gates.smoke.as_ref()?;
    let result = match analysis::http_client() {
        Ok(client) => analysis::smoke::evaluate(&client, smoke, ctx.progress).await,
        Err(e) => GateResult::new("smoke", GateOutcome::Error, e),
    };
    ctx.progress.note(&result);
    record.gates.push(result);
    first_failure(
        &record.gates[record.gates.len() - 1..],
        subject,
        Reason::GateFailed,
    )
}

/// Metrics and readiness over the observation window.
pub async fn observe(
    ctx: &Ctx<'_>,
    record: &mut Record,
    gates: &Gates,
    deployments: &[ObjectId],
    subject: &ObjectId,
) -> Option<Failed> {
    if gates.metrics.is_empty() && gates.observe.is_zero() {
        return None;
    }
    if !gates.observe.is_zero() {
        ctx.progress
            .note(format!("observing for {}s", gates.observe.as_secs_f64()));
    }
    let results = match analysis::http_client() {
        Ok(client) => {
            analysis::observe(ctx.cluster, &client, gates, deployments, ctx.progress).await
        }
        Err(e) => vec![GateResult::new("metrics", GateOutcome::Error, e)],
    };
    for r in &results {
        ctx.progress.note(r);
    }
    let failed = first_failure(&results, subject, Reason::GateFailed);
    record.gates.extend(results);
    failed
}

fn service_object(record: &Record, state: &blue_green::State) -> Option<serde_json::Value> {
    record
        .objects
        .iter()
        .find(|o| ObjectId::of(o).same_object(&state.service))
        .cloned()
}

/// Blue-green promotion: switch the Service to the new color, observe, then scale the old
/// color down after the delay.
pub async fn promote(
    ctx: &Ctx<'_>,
    record: &mut Record,
    current: Option<&Record>,
) -> Option<Failed> {
    let mut state = record.blue_green.clone()?;
    let Some(service) = service_object(record, &state) else {
        return Some((
            state.service.clone(),
            Failure {
                reason: Reason::ApplyFailed,
                message: "the release record has no Service to switch".into(),
            },
        ));
    };
    let from = state
        .active
        .map(|c| c.to_string())
        .unwrap_or_else(|| "its current selector".into());
    if state.switched && state.active.is_some() {
        // A resumed revision whose switch was done before the interruption: once only.
        ctx.progress.note(format!(
            "{} already selects {} (switched from {from} before the interruption)",
            state.service, state.color
        ));
    } else {
        if let Err(e) =
            blue_green::switch(ctx.cluster, &service, state.color, &state.deployments).await
        {
            return Some((
                state.service.clone(),
                Failure {
                    reason: Reason::ApplyFailed,
                    message: e,
                },
            ));
        }
        ctx.progress.note(format!(
            "{} switched from {from} to {}",
            state.service, state.color
        ));
        events::record(
            ctx.cluster,
            &state.deployments,
            events::Reason::BlueGreenPromoted,
            &format!(
                "revision {}: {} switched from {from} to {}",
                record.revision, state.service, state.color
            ),
            ctx.progress,
        )
        .await;
    }
    state.switched = true;
    record.blue_green = Some(state.clone());
    record.phase = Some(Phase::Observing);
    record.description = format!("switched to {}; observing", state.color);
    record.updated = now();
    write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
    if let Some(f) = observe(
        ctx,
        record,
        &state.gates,
        &state.deployments,
        &state.service,
    )
    .await
    {
        return Some(f);
    }
    let old: Vec<&ObjectId> = state.old_deployments.iter().collect();
    if !old.is_empty() {
        if !state.scale_down_delay.is_zero() {
            ctx.progress.note(format!(
                "scaling {} down in {}s",
                state.active.map(|c| c.as_str()).unwrap_or("the old color"),
                state.scale_down_delay.as_secs_f64()
            ));
            tokio::time::sleep(state.scale_down_delay).await;
        }
        let recorded: &[serde_json::Value] = current.map(|c| c.objects.as_slice()).unwrap_or(&[]);
        for id in old {
            let object = blue_green::recorded(recorded, id);
            match blue_green::scale(ctx.cluster, id, 0, object).await {
                Ok(()) => ctx.progress.note(format!("{id} scaled down to 0")),
                Err(e) => ctx.progress.note(e),
            }
        }
    }
    None
}

/// Whether a stale object is the old color of an object this blue-green revision has: kept
/// (its Deployment scaled down) for a fast way back, not deleted.
/// Whether `id` is the serving color's counterpart of one of the new color's objects (kept, and
/// for Deployments scaled down, rather than deleted).
pub(super) fn old_color_of(
    id: &ObjectId,
    new_ids: &[ObjectId],
    state: Option<&blue_green::State>,
) -> bool {
    let Some(state) = state else { return false };
    let Some(active) = state.active else {
        return false;
    };
    let Some(name) = blue_green::counterpart(&id.name, active, state.color) else {
        return false;
    };
    new_ids.iter().any(|n| {
        n.same_object(&ObjectId {
            name: name.clone(),
            ..id.clone()
        })
    })
}

/// Records a deployed revision: deletes what the release no longer has, supersedes the
/// previous revision, trims the history.
pub async fn deployed(
    ctx: &Ctx<'_>,
    record: &mut Record,
    current: Option<Record>,
    interrupted: &[Record],
    timer: &mut Timer,
    report: &mut Report,
) -> Result<ExitStatus, Error> {
    timer.mark("rolloutComplete");
    timer.phase("finish");
    let new_ids = record.ids();
    let state = record.blue_green.as_ref();
    let mut stale: Vec<ObjectId> = Vec::new();
    if let Some(c) = &current {
        stale.extend(
            release::removed(&c.ids(), &new_ids)
                .into_iter()
                .filter(|id| !old_color_of(id, &new_ids, state)),
        );
    }
    for p in interrupted {
        for id in release::removed(&p.created, &new_ids) {
            if !stale.iter().any(|s| s.same_object(&id)) && !old_color_of(&id, &new_ids, state) {
                stale.push(id);
            }
        }
    }
    for (id, message) in apply::delete_all(ctx.cluster, &stale).await {
        ctx.progress
            .note(format!("could not delete {id}: {message}"));
    }
    for id in &stale {
        ctx.progress
            .note(format!("{id} deleted (no longer in the release)"));
        report.objects.push(ObjectReport {
            id: id.clone(),
            action: Action::Deleted,
            status: None,
            diff: Vec::new(),
        });
    }
    record.status = Status::Deployed;
    record.phase = None;
    record.updated = now();
    record.description = match &record.blue_green {
        Some(s) => format!("{} complete; {} serving", record.operation, s.color),
        None => format!("{} complete", record.operation),
    };
    ctx.history.write(record).await?;
    if let Some(mut c) = current {
        c.status = Status::Superseded;
        c.updated = now();
        write_record(ctx.history, &c, |m| ctx.progress.note(m)).await;
    }
    trim_history(ctx.history, ctx.history_max, |m| ctx.progress.note(m)).await;
    events::record(
        ctx.cluster,
        &events::workloads(&record.objects),
        events::Reason::ReleaseDeployed,
        &format!(
            "release {}/{}: revision {} deployed ({})",
            ctx.namespace, ctx.name, record.revision, record.operation
        ),
        ctx.progress,
    )
    .await;
    report.outcome = Outcome::Deployed;
    report.gates = record.gates.clone();
    let counts = match count_actions(&report.objects) {
        // `promote` applies no objects of its own.
        c if c.is_empty() => String::new(),
        c => format!(" ({c})"),
    };
    let serving = match &record.blue_green {
        Some(s) => format!("; {} serving", s.color),
        None => String::new(),
    };
    report.message = format!(
        "release {}/{}: revision {} deployed{counts}{serving}",
        ctx.namespace, ctx.name, record.revision
    );
    Ok(ExitStatus::Success)
}

/// Blue-green, after a failure: the Service back on the color that served before, if it was
/// switched (never onto a color without ready pods).
async fn switch_back(ctx: &Ctx<'_>, record: &mut Record) {
    let Some(mut state) = record.blue_green.clone() else {
        return;
    };
    if !state.switched {
        ctx.progress.note(format!(
            "{} was not switched: traffic is untouched",
            state.service
        ));
        return;
    }
    let (Some(active), Some(service)) = (state.active, service_object(record, &state)) else {
        // No color served before: the previous revision's Service is re-applied below.
        return;
    };
    match blue_green::switch(ctx.cluster, &service, active, &state.old_deployments).await {
        Ok(()) => {
            ctx.progress
                .note(format!("{} switched back to {active}", state.service));
            state.switched = false;
            record.blue_green = Some(state);
            write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
        }
        Err(e) => ctx.progress.note(format!(
            "cannot switch {} back to {active}: {e}",
            state.service
        )),
    }
}

/// Blue-green, after the rollback: the new color's Deployments that existed before this
/// revision (an earlier release's idle color) are scaled down rather than deleted.
async fn scale_down_new_color(ctx: &Ctx<'_>, record: &Record) {
    let Some(state) = &record.blue_green else {
        return;
    };
    for id in &state.deployments {
        if record.created.iter().any(|c| c.same_object(id)) {
            continue;
        }
        let object = blue_green::recorded(&record.objects, id);
        match blue_green::scale(ctx.cluster, id, 0, object).await {
            Ok(()) => ctx.progress.note(format!("{id} scaled down to 0")),
            Err(e) => ctx.progress.note(e),
        }
    }
}

/// Rolls a failed revision back to the deployed one (or removes what a first install
/// created). Blue-green: the Service is moved back first.
pub async fn roll_back(
    ctx: &Ctx<'_>,
    record: &mut Record,
    current: Option<Record>,
    failed: Failed,
    timer: &mut Timer,
    report: &mut Report,
) -> Result<ExitStatus, Error> {
    let (id, failure) = failed;
    let (namespace, name, revision) = (ctx.namespace, ctx.name, record.revision);
    timer.mark("failureDetected");
    ctx.progress
        .note(format!("rollout failed: {id}: {failure}"));
    for o in report.objects.iter_mut() {
        if o.id == id {
            o.status = Some(format!("failed: {failure}"));
        }
    }
    report.failure = Some(failure.clone());
    timer.phase("rollback");
    timer.mark("rollbackStarted");
    record.phase = Some(Phase::RollingBack);
    record.updated = now();
    write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
    let what = format!("rollout of revision {revision} failed ({id}: {failure})");
    // `executor abort` is a decision, not a failure of the rollout.
    if failure.reason != Reason::Aborted {
        events::record(
            ctx.cluster,
            std::slice::from_ref(&id),
            events::Reason::RolloutFailed,
            &format!("release {namespace}/{name}: {what}"),
            ctx.progress,
        )
        .await;
    }
    switch_back(ctx, record).await;
    let code = match current {
        Some(mut previous) => {
            let delete = release::removed(&record.created, &previous.ids());
            ctx.progress
                .note(format!("rolling back to revision {}", previous.revision));
            match rollback::restore(
                ctx.cluster,
                &previous.objects,
                &delete,
                &Settings {
                    timeout: ctx.rollback_timeout,
                    ..ctx.rollout
                },
                ctx.progress,
            )
            .await
            {
                Ok(_) => {
                    scale_down_new_color(ctx, record).await;
                    timer.mark("rollbackComplete");
                    record.status = Status::RolledBack;
                    record.phase = None;
                    record.updated = now();
                    record.description =
                        format!("{failure}; rolled back to revision {}", previous.revision);
                    write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
                    let restored = Record {
                        revision: revision + 1,
                        status: Status::Deployed,
                        operation: Operation::Rollback,
                        phase: None,
                        description: format!(
                            "rollback to revision {} after revision {revision} failed",
                            previous.revision
                        ),
                        started: now(),
                        updated: now(),
                        created: Vec::new(),
                        previous: Some(previous.revision),
                        rollback_of: Some(previous.revision),
                        gates: Vec::new(),
                        ..previous.clone()
                    };
                    write_record(ctx.history, &restored, |m| ctx.progress.note(m)).await;
                    previous.status = Status::Superseded;
                    previous.updated = now();
                    write_record(ctx.history, &previous, |m| ctx.progress.note(m)).await;
                    trim_history(ctx.history, ctx.history_max, |m| ctx.progress.note(m)).await;
                    events::record(
                        ctx.cluster,
                        &events::workloads(&previous.objects),
                        events::Reason::RolledBack,
                        &format!(
                            "release {namespace}/{name}: rolled back to revision {} (now revision {}) after revision {revision} failed",
                            previous.revision, restored.revision
                        ),
                        ctx.progress,
                    )
                    .await;
                    report.outcome = Outcome::RolledBack;
                    report.rolled_back_to = Some(previous.revision);
                    report.message = format!(
                        "release {namespace}/{name}: {what}; rolled back to revision {}",
                        previous.revision
                    );
                    ExitStatus::RolledBack
                }
                Err(e) => {
                    record.status = Status::Failed;
                    record.phase = None;
                    record.updated = now();
                    record.description = format!(
                        "{failure}; rollback to revision {} failed: {e}",
                        previous.revision
                    );
                    write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
                    events::record(
                        ctx.cluster,
                        &events::workloads(&previous.objects),
                        events::Reason::RollbackFailed,
                        &format!(
                            "release {namespace}/{name}: {what}; rollback to revision {} failed: {e}",
                            previous.revision
                        ),
                        ctx.progress,
                    )
                    .await;
                    report.outcome = Outcome::Failed;
                    report.message = format!(
                        "release {namespace}/{name}: {what}; rollback to revision {} failed: {e}",
                        previous.revision
                    );
                    ExitStatus::Error
                }
            }
        }
        None => {
            // A first install has nothing to go back to: its rollback removes what it
            // created. Done, the revision is `rolled-back` (outcome `rolled-back`, exit 1) as
            // any undone rollout; objects left behind make it `failed` (outcome `failed`,
            // exit 2), as a rollback that did not complete.
            let created = record.created.clone();
            let left = apply::delete_all(ctx.cluster, &created).await;
            for (oid, message) in &left {
                ctx.progress
                    .note(format!("could not delete {oid}: {message}"));
            }
            scale_down_new_color(ctx, record).await;
            record.phase = None;
            record.updated = now();
            let code = if left.is_empty() {
                timer.mark("rollbackComplete");
                record.status = Status::RolledBack;
                record.description = format!(
                    "{failure}; no earlier revision, removed the {} objects it created",
                    created.len()
                );
                report.outcome = Outcome::RolledBack;
                report.message = format!(
                    "release {namespace}/{name}: {what}; no earlier revision, removed the {} objects it created",
                    created.len()
                );
                ExitStatus::RolledBack
            } else {
                let names: Vec<String> = left.iter().map(|(id, _)| id.to_string()).collect();
                record.status = Status::Failed;
                record.description = format!(
                    "{failure}; no earlier revision, and {} of the {} objects it created could not be removed: {}",
                    left.len(),
                    created.len(),
                    names.join(", ")
                );
                report.outcome = Outcome::Failed;
                report.message = format!(
                    "release {namespace}/{name}: {what}; no earlier revision, and {} of the objects it created could not be removed ({})",
                    left.len(),
                    names.join(", ")
                );
                ExitStatus::Error
            };
            write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
            code
        }
    };
    report.gates = record.gates.clone();
    Ok(code)
}

/// Pauses a blue-green revision before its switch, for `promote` or `abort`.
pub async fn pause(
    ctx: &Ctx<'_>,
    record: &mut Record,
    report: &mut Report,
) -> Result<ExitStatus, Error> {
    let color = record
        .blue_green
        .as_ref()
        .map(|s| s.color)
        .unwrap_or(Color::Green);
    record.phase = Some(Phase::Paused);
    record.updated = now();
    record.description = format!(
        "{color} ready and checked; paused before the switch (executor promote or executor abort)"
    );
    ctx.history.write(record).await?;
    report.outcome = Outcome::Paused;
    report.gates = record.gates.clone();
    report.message = format!(
        "release {}/{}: revision {} paused before the switch to {color}; run `executor promote -r {} -n {}` to switch traffic, or `executor abort` to undo it",
        ctx.namespace, ctx.name, record.revision, ctx.name, ctx.namespace
    );
    Ok(ExitStatus::Success)
}

pub fn count_actions(objects: &[ObjectReport]) -> String {
    let mut counts: Vec<(Action, usize)> = Vec::new();
    for o in objects {
        match counts.iter_mut().find(|(a, _)| *a == o.action) {
            Some((_, n)) => *n += 1,
            None => counts.push((o.action, 1)),
        }
    }
    counts
        .iter()
        .map(|(a, n)| format!("{n} {}", a.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}
