//! `executor apply`: gate, lock, dry run, apply, roll out, and on failure roll back.

use std::collections::{BTreeSet, HashMap};

use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::{connect, human_findings, load, now, object_reports, trim_history, write_record, Done};
use crate::apply::{self, Action};
use crate::cli::{exit, ApplyArgs};
use crate::cluster::Cluster;
use crate::gate;
use crate::health::{Failure, Reason, Thresholds};
use crate::lock;
use crate::metrics::{ObjectReport, Outcome, Report, Timer};
use crate::object::{digest, ObjectId};
use crate::plan::{self, Desired};
use crate::progress::Progress;
use crate::release::{self, rollback, History, Operation, Phase, Record, Status};
use crate::strategy::{self, rolling, Settings};
use crate::Error;

pub async fn run(args: &ApplyArgs, progress: &Progress) -> Result<Done, Error> {
    let mut timer = Timer::new();
    let name = args.release.release.clone();
    let loaded = load(&args.inputs, &name, args.release.namespace.as_deref());
    let policies = gate::policies(&args.policy)?;
    let mut report = Report::new(
        "apply",
        &name,
        args.release.namespace.as_deref().unwrap_or(""),
    );
    if !loaded.errors.is_empty() {
        let findings: Vec<_> = loaded
            .errors
            .iter()
            .map(validator::check::load_error_finding)
            .collect();
        let summary = validator::report::Summary::of(&findings, 0);
        let text = human_findings(&findings, &summary);
        report.message = "the manifests cannot be read; nothing was applied".into();
        report.findings = findings;
        return Ok((exit::ERROR, Some(report.with_timer(&timer)), text));
    }
    timer.phase("connect");
    let (cluster, namespace) = connect(&args.release).await?;
    report.namespace = namespace.clone();
    let desired = plan::resolve(&cluster, &loaded.documents, &namespace).await?;

    timer.phase("gate");
    let decision = match &args.policy.attestation {
        Some(path) => gate::verify(path, &loaded.documents, &policies, args.policy.fail_on_warn)?,
        None => gate::check(
            desired.iter().map(|d| d.doc.clone()).collect(),
            &policies,
            &args.policy,
            false,
        ),
    };
    let mut text = String::new();
    if !decision.findings.is_empty() {
        text.push_str(&human_findings(&decision.findings, &decision.summary));
    }
    report.findings = decision.findings.clone();
    if !decision.passed() {
        for r in &decision.refusal {
            text.push_str(&format!("attestation refused: {r}\n"));
        }
        report.errors = decision.refusal.clone();
        report.outcome = Outcome::Blocked;
        report.message = format!(
            "release {namespace}/{name}: the validation gate refused the manifests; nothing was applied"
        );
        text.push_str(&report.message);
        text.push('\n');
        timer.finish();
        return Ok((decision.exit, Some(report.with_timer(&timer)), text));
    }
    if args.policy.attestation.is_some() {
        progress.note(format!(
            "gate: attestation verified ({} objects)",
            loaded.documents.len()
        ));
    }

    timer.phase("lock");
    let created_namespace = ensure_namespace(&cluster, &namespace, &desired, progress).await?;
    let me = lock::identity();
    let held = lock::acquire(
        cluster.client.clone(),
        &namespace,
        &name,
        &me,
        args.rollout.lease_duration,
    )
    .await?;
    if let Some(previous) = &held.took_over {
        progress.note(format!(
            "took over the lock of release {namespace}/{name} from {previous}, which stopped renewing it"
        ));
    }
    let result = locked(
        args,
        &held,
        &cluster,
        &namespace,
        desired,
        created_namespace,
        &mut timer,
        &mut report,
        progress,
    )
    .await;
    held.release().await;
    let code = result?;
    timer.finish();
    text.push_str(&report.message);
    text.push('\n');
    Ok((code, Some(report.with_timer(&timer)), text))
}

/// The release namespace holds the history and the lock: it must exist before anything else.
/// When it does not but the manifests define it, it is applied first (and kept should the
/// install fail, with the history in it).
async fn ensure_namespace(
    cluster: &Cluster,
    namespace: &str,
    desired: &[Desired],
    progress: &Progress,
) -> Result<Option<ObjectId>, Error> {
    let Some(resolved) = cluster.resolve("v1", "Namespace").await? else {
        return Ok(None);
    };
    let api = cluster.api(&resolved, "");
    match api.get_opt(namespace).await {
        Ok(Some(_)) => return Ok(None),
        Ok(None) => {}
        Err(e) => {
            return Err(Error::Api(format!(
                "cannot read namespace {namespace}: {}",
                apply::describe(&e)
            )))
        }
    }
    let Some(d) = desired.iter().find(|d| {
        d.id.kind == "Namespace" && d.id.group_version().0.is_empty() && d.id.name == namespace
    }) else {
        return Err(Error::Usage(format!(
            "namespace {namespace} does not exist; create it or include it in the manifests"
        )));
    };
    api.patch(
        namespace,
        &PatchParams::apply(apply::FIELD_MANAGER),
        &Patch::Apply(d.object()),
    )
    .await
    .map_err(|e| {
        Error::Api(format!(
            "cannot create namespace {namespace}: {}",
            apply::describe(&e)
        ))
    })?;
    progress.note(format!(
        "Namespace {namespace} created first: it holds the release history and lock"
    ));
    Ok(Some(d.id.clone()))
}

fn set_digest(desired: &[Desired]) -> String {
    digest(&Value::Array(
        desired.iter().map(|d| d.object().clone()).collect(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn locked(
    args: &ApplyArgs,
    held: &lock::Lock,
    cluster: &Cluster,
    namespace: &str,
    desired: Vec<Desired>,
    created_namespace: Option<ObjectId>,
    timer: &mut Timer,
    report: &mut Report,
    progress: &Progress,
) -> Result<u8, Error> {
    let name = &args.release.release;
    let history = History::new(cluster.client.clone(), namespace, name);
    let records = history.list().await?;
    let current = release::current(&records).cloned();
    let interrupted: Vec<Record> = release::interrupted(&records)
        .into_iter()
        .cloned()
        .collect();
    let set_digest = set_digest(&desired);
    // An interrupted operation on exactly these objects is resumed, not started again.
    let resume = interrupted
        .iter()
        .rev()
        .find(|r| {
            r.digest == set_digest
                && r.operation != Operation::Rollback
                && current.as_ref().is_none_or(|c| r.revision > c.revision)
        })
        .cloned();
    if let Some(r) = &resume {
        progress.note(format!(
            "resuming revision {} (interrupted while {:?})",
            r.revision,
            r.phase.unwrap_or(Phase::Applying)
        ));
    }

    timer.phase("dryRun");
    let objects: Vec<Value> = desired.iter().map(|d| d.object().clone()).collect();
    let (planned, errors) = plan::dry_run(cluster, desired, args.force_conflicts).await?;
    if !errors.is_empty() {
        report.outcome = Outcome::Error;
        report.errors = errors.iter().map(|(id, m)| format!("{id}: {m}")).collect();
        report.message = format!(
            "release {namespace}/{name}: the server refused {} object(s) in the dry run; nothing was applied:\n  {}",
            errors.len(),
            report.errors.join("\n  ")
        );
        return Ok(exit::ERROR);
    }
    let revision = resume
        .as_ref()
        .map(|r| r.revision)
        .unwrap_or_else(|| release::next_revision(&records));
    report.revision = Some(revision);
    for mut p in interrupted
        .iter()
        .filter(|p| Some(p.revision) != resume.as_ref().map(|r| r.revision))
        .cloned()
    {
        p.status = Status::Failed;
        p.phase = None;
        p.updated = now();
        p.description = format!("interrupted; superseded by revision {revision}");
        write_record(&history, &p, |m| progress.note(m)).await;
    }
    let live_versions: HashMap<ObjectId, String> = planned
        .iter()
        .filter(|p| Some(&p.desired.id) != created_namespace.as_ref())
        .filter_map(|p| {
            let rv = p.live.as_ref()?["metadata"]["resourceVersion"].as_str()?;
            Some((p.desired.id.clone(), rv.to_string()))
        })
        .collect();
    let mut created: BTreeSet<ObjectId> = planned
        .iter()
        .filter(|p| p.live.is_none())
        .map(|p| p.desired.id.clone())
        .collect();
    if let Some(r) = &resume {
        created.extend(r.created.iter().cloned());
    }
    if held.lost() {
        return Err(lock::LockError::Lost {
            release: name.clone(),
        }
        .into());
    }
    let started = now();
    let mut record = Record {
        name: name.clone(),
        namespace: namespace.to_string(),
        revision,
        status: Status::Pending,
        operation: if current.is_some() {
            Operation::Upgrade
        } else {
            Operation::Install
        },
        phase: Some(Phase::Applying),
        description: "applying".into(),
        started: resume
            .as_ref()
            .map(|r| r.started.clone())
            .unwrap_or(started),
        updated: now(),
        digest: set_digest,
        objects,
        created: created.into_iter().collect(),
        previous: current.as_ref().map(|c| c.revision),
        rollback_of: None,
    };
    history.write(&record).await?;

    timer.phase("apply");
    let desired: Vec<Desired> = planned.into_iter().map(|p| p.desired).collect();
    let (applied, apply_error) = apply::apply_all(
        cluster,
        &desired,
        Some(&live_versions),
        args.force_conflicts,
        |a| progress.note(format!("{} {}", a.id, a.action.as_str())),
    )
    .await;
    timer.mark("applied");
    report.objects = object_reports(&applied);
    let settings = Settings {
        thresholds: Thresholds {
            max_restarts: args.rollout.max_restarts,
            stuck_after: args.rollout.stuck_after,
        },
        timeout: args.rollout.timeout,
    };
    let outcome = match apply_error {
        Some(e) => strategy::Outcome::Failed {
            id: desired
                .get(applied.len())
                .map(|d| d.id.clone())
                .unwrap_or_else(|| desired[0].id.clone()),
            failure: Failure {
                reason: Reason::ApplyFailed,
                message: e.to_string(),
            },
        },
        None => {
            record.phase = Some(Phase::Waiting);
            record.description = "waiting for the rollout".into();
            record.updated = now();
            write_record(&history, &record, |m| progress.note(m)).await;
            timer.phase("rollout");
            let workloads = strategy::workloads(&applied);
            rolling::wait(&cluster.client, &workloads, &settings, progress).await
        }
    };

    for o in report.objects.iter_mut() {
        o.status = match &outcome {
            strategy::Outcome::Failed { id, failure } if *id == o.id => {
                Some(format!("failed: {failure}"))
            }
            _ => progress.state(&o.id),
        };
    }
    match outcome {
        strategy::Outcome::Complete => {
            timer.mark("rolloutComplete");
            timer.phase("finish");
            let new_ids = record.ids();
            let mut stale: Vec<ObjectId> = Vec::new();
            if let Some(c) = &current {
                stale.extend(release::removed(&c.ids(), &new_ids));
            }
            for p in &interrupted {
                for id in release::removed(&p.created, &new_ids) {
                    if !stale.iter().any(|s| s.same_object(&id)) {
                        stale.push(id);
                    }
                }
            }
            for (id, message) in apply::delete_all(cluster, &stale).await {
                progress.note(format!("could not delete {id}: {message}"));
            }
            for id in &stale {
                progress.note(format!("{id} deleted (no longer in the release)"));
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
            record.description = format!("{} complete", record.operation);
            history.write(&record).await?;
            if let Some(mut c) = current {
                c.status = Status::Superseded;
                c.updated = now();
                write_record(&history, &c, |m| progress.note(m)).await;
            }
            trim_history(&history, args.rollout.history_max, |m| progress.note(m)).await;
            report.outcome = Outcome::Deployed;
            let counts = count_actions(&report.objects);
            report.message =
                format!("release {namespace}/{name}: revision {revision} deployed ({counts})");
            Ok(exit::OK)
        }
        strategy::Outcome::Failed { id, failure } => {
            timer.mark("failureDetected");
            progress.note(format!("rollout failed: {id}: {failure}"));
            report.failure = Some(failure.clone());
            timer.phase("rollback");
            timer.mark("rollbackStarted");
            record.phase = Some(Phase::RollingBack);
            record.updated = now();
            write_record(&history, &record, |m| progress.note(m)).await;
            let rollback_settings = Settings {
                timeout: args.rollback_timeout,
                ..settings
            };
            let what = format!("rollout of revision {revision} failed ({id}: {failure})");
            match current {
                Some(mut previous) => {
                    let delete = release::removed(&record.created, &previous.ids());
                    progress.note(format!("rolling back to revision {}", previous.revision));
                    match rollback::restore(
                        cluster,
                        &previous.objects,
                        &delete,
                        &rollback_settings,
                        progress,
                    )
                    .await
                    {
                        Ok(_) => {
                            timer.mark("rollbackComplete");
                            record.status = Status::RolledBack;
                            record.phase = None;
                            record.updated = now();
                            record.description =
                                format!("{failure}; rolled back to revision {}", previous.revision);
                            write_record(&history, &record, |m| progress.note(m)).await;
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
                                ..previous.clone()
                            };
                            write_record(&history, &restored, |m| progress.note(m)).await;
                            previous.status = Status::Superseded;
                            previous.updated = now();
                            write_record(&history, &previous, |m| progress.note(m)).await;
                            trim_history(&history, args.rollout.history_max, |m| progress.note(m))
                                .await;
                            report.outcome = Outcome::RolledBack;
                            report.rolled_back_to = Some(previous.revision);
                            report.message = format!(
                                "release {namespace}/{name}: {what}; rolled back to revision {}",
                                previous.revision
                            );
                            Ok(exit::VIOLATIONS)
                        }
                        Err(e) => {
                            record.status = Status::Failed;
                            record.phase = None;
                            record.updated = now();
                            record.description = format!(
                                "{failure}; rollback to revision {} failed: {e}",
                                previous.revision
                            );
                            write_record(&history, &record, |m| progress.note(m)).await;
                            report.outcome = Outcome::Failed;
                            report.message = format!(
                                "release {namespace}/{name}: {what}; rollback to revision {} failed: {e}",
                                previous.revision
                            );
                            Ok(exit::ERROR)
                        }
                    }
                }
                None => {
                    // A first install has nothing to go back to: remove what it created.
                    let created = record.created.clone();
                    for (oid, message) in apply::delete_all(cluster, &created).await {
                        progress.note(format!("could not delete {oid}: {message}"));
                    }
                    timer.mark("rollbackComplete");
                    record.status = Status::Failed;
                    record.phase = None;
                    record.updated = now();
                    record.description = format!(
                        "{failure}; removed the {} objects it created",
                        created.len()
                    );
                    write_record(&history, &record, |m| progress.note(m)).await;
                    report.outcome = Outcome::RolledBack;
                    report.message = format!(
                        "release {namespace}/{name}: {what}; no earlier revision, removed the {} objects it created",
                        created.len()
                    );
                    Ok(exit::VIOLATIONS)
                }
            }
        }
    }
}

fn count_actions(objects: &[ObjectReport]) -> String {
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
