//! `executor rollback [--to N]`: restore an earlier revision as a new revision.

use super::{connect, now, object_reports, trim_history, with_release_lock, write_record, Done};
use crate::args::RollbackArgs;
use crate::events;
use crate::exit::ExitStatus;
use crate::object::ObjectId;
use crate::outcome::{Outcome, Report, Timer};
use crate::progress::Progress;
use crate::release::{self, rollback, History, Operation, Phase, Record, Status};
use crate::Error;

pub async fn run(args: &RollbackArgs, progress: &Progress) -> Result<Done, Error> {
    let mut timer = Timer::new();
    let name = args.release.release.clone();
    let (cluster, namespace) =
        connect(&args.release.cluster, args.release.namespace.as_deref()).await?;
    let mut report = Report::new("rollback", &name, &namespace);
    timer.phase("lock");
    let history = History::new(cluster.client.clone(), &namespace, &name);
    let code = with_release_lock(
        &cluster,
        &namespace,
        &name,
        args.rollout.lease_duration,
        progress,
        async |_held| {
            let records = history.list().await?;
            let current = release::current(&records).cloned();
            let interrupted: Vec<Record> = release::interrupted(&records).into_iter().cloned().collect();
            let target = match args.to {
                Some(n) => records.iter().find(|r| r.revision == n).cloned().ok_or_else(|| {
                    Error::Usage(format!("release {namespace}/{name} has no revision {n}"))
                })?,
                None => release::default_rollback_target(&records).cloned().ok_or_else(|| {
                    Error::Usage(format!(
                        "release {namespace}/{name} has no earlier deployed revision to roll back to"
                    ))
                })?,
            };
            if target.objects.is_empty() {
                return Err(Error::Usage(format!("revision {} has no objects", target.revision)));
            }
            let revision = release::next_revision(&records);
            report.revision = Some(revision);
            let mut record = Record {
                revision,
                status: Status::Pending,
                operation: Operation::Rollback,
                phase: Some(Phase::Applying),
                description: format!("rollback to revision {}", target.revision),
                started: now(),
                updated: now(),
                created: Vec::new(),
                previous: current.as_ref().map(|c| c.revision),
                rollback_of: Some(target.revision),
                ..target.clone()
            };
            history.write(&record).await?;
            let target_ids = target.ids();
            let mut undone: Vec<ObjectId> = current.as_ref().map(|c| c.ids()).unwrap_or_default();
            for p in &interrupted {
                undone.extend(p.created.iter().cloned());
            }
            let mut delete: Vec<ObjectId> = Vec::new();
            for id in release::removed(&undone, &target_ids) {
                if !delete.iter().any(|d| d.same_object(&id)) {
                    delete.push(id);
                }
            }
            let settings = args.rollout.settings();
            progress.note(format!("restoring revision {} as revision {revision}", target.revision));
            timer.phase("rollback");
            timer.mark("rollbackStarted");
            match rollback::restore(&cluster, &target.objects, &delete, &settings, progress).await {
                Ok(applied) => {
                    timer.mark("rollbackComplete");
                    report.objects = object_reports(&applied);
                    record.status = Status::Deployed;
                    record.phase = None;
                    record.updated = now();
                    history.write(&record).await?;
                    if let Some(mut c) = current {
                        c.status = Status::Superseded;
                        c.updated = now();
                        write_record(&history, &c, |m| progress.note(m)).await;
                    }
                    for mut p in interrupted {
                        p.status = Status::RolledBack;
                        p.phase = None;
                        p.updated = now();
                        p.description = format!(
                            "interrupted; rolled back to revision {} by revision {revision}",
                            target.revision
                        );
                        write_record(&history, &p, |m| progress.note(m)).await;
                    }
                    trim_history(&history, args.rollout.history_max, |m| progress.note(m)).await;
                    events::record(
                        &cluster,
                        &events::workloads(&target.objects),
                        events::Reason::RolledBack,
                        &format!(
                            "release {namespace}/{name}: rolled back to revision {} (now revision {revision}) by executor rollback",
                            target.revision
                        ),
                        progress,
                    )
                    .await;
                    report.outcome = Outcome::Deployed;
                    report.rolled_back_to = Some(target.revision);
                    report.message = format!(
                        "release {namespace}/{name}: rolled back to revision {} (now revision {revision})",
                        target.revision
                    );
                    Ok(ExitStatus::Success)
                }
                Err(e) => {
                    record.status = Status::Failed;
                    record.phase = None;
                    record.updated = now();
                    record.description = format!("rollback to revision {} failed: {e}", target.revision);
                    write_record(&history, &record, |m| progress.note(m)).await;
                    report.outcome = Outcome::Failed;
                    report.message = format!(
                        "release {namespace}/{name}: rollback to revision {} failed: {e}",
                        target.revision
                    );
                    Ok(ExitStatus::Error)
                }
            }
        },
    )
    .await?;
    timer.finish();
    let text = format!("{}\n", report.message);
    Ok(Done::report(code, report.with_timer(&timer), text))
}
