//! `executor promote` and `executor abort`: finish or undo a blue-green revision that
//! `apply --manual-promotion` left paused before its switch. The pause is kept in the release
//! record, so these run in any process, at any later time.

use super::finish::{self, Ctx};
use super::{connect, with_release_lock, Done};
use crate::args::PromotionArgs;
use crate::exit::ExitStatus;
use crate::health::{Failure, Reason};
use crate::outcome::{Outcome, Report, Timer};
use crate::progress::Progress;
use crate::release::{self, History, Record};
use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Promote,
    Abort,
}

pub async fn promote(args: &PromotionArgs, progress: &Progress) -> Result<Done, Error> {
    decide(args, progress, Decision::Promote).await
}

pub async fn abort(args: &PromotionArgs, progress: &Progress) -> Result<Done, Error> {
    decide(args, progress, Decision::Abort).await
}

async fn decide(
    args: &PromotionArgs,
    progress: &Progress,
    decision: Decision,
) -> Result<Done, Error> {
    let mut timer = Timer::new();
    let name = args.release.release.clone();
    let (cluster, namespace) =
        connect(&args.release.cluster, args.release.namespace.as_deref()).await?;
    let command = match decision {
        Decision::Promote => "promote",
        Decision::Abort => "abort",
    };
    let mut report = Report::new(command, &name, &namespace);
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
            let Some(mut record) = release::paused(&records).cloned() else {
                return Err(Error::Usage(format!(
                    "release {namespace}/{name} has no revision paused before a blue-green switch (see `executor history -r {name} -n {namespace}`)"
                )));
            };
            report.revision = Some(record.revision);
            let current = release::current(&records).cloned();
            let interrupted: Vec<Record> = release::interrupted(&records)
                .into_iter()
                .filter(|r| r.revision != record.revision)
                .cloned()
                .collect();
            let ctx = Ctx {
                cluster: &cluster,
                history: &history,
                namespace: &namespace,
                name: &name,
                progress,
                history_max: args.rollout.history_max,
                rollout: args.rollout.settings(),
                rollback_timeout: args.rollback_timeout,
            };
            let service = record
                .blue_green
                .as_ref()
                .map(|s| s.service.clone())
                .unwrap_or_else(|| crate::object::ObjectId::of(&serde_json::Value::Null));
            match decision {
                Decision::Promote => {
                    timer.phase("promote");
                    match finish::promote(&ctx, &mut record, current.as_ref()).await {
                        None => {
                            finish::deployed(&ctx, &mut record, current, &interrupted, &mut timer, &mut report)
                                .await
                        }
                        Some(f) => {
                            finish::roll_back(&ctx, &mut record, current, f, &mut timer, &mut report)
                                .await
                        }
                    }
                }
                Decision::Abort => {
                    let failure = Failure {
                        reason: Reason::Aborted,
                        message: "aborted before the switch by `executor abort`".into(),
                    };
                    let code = finish::roll_back(
                        &ctx,
                        &mut record,
                        current,
                        (service, failure),
                        &mut timer,
                        &mut report,
                    )
                    .await?;
                    if code == ExitStatus::RolledBack {
                        report.outcome = Outcome::Aborted;
                        report.message = format!(
                            "release {namespace}/{name}: revision {} aborted; traffic stayed where it was{}",
                            record.revision,
                            report
                                .rolled_back_to
                                .map(|r| format!(", revision {r} restored"))
                                .unwrap_or_default()
                        );
                        Ok(ExitStatus::Success)
                    } else {
                        Ok(code)
                    }
                }
            }
        },
    )
    .await?;
    timer.finish();
    let text = format!("{}\n", report.message);
    Ok(Done::report(code, report.with_timer(&timer), text))
}
