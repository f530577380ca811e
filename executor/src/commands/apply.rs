//! `executor apply`: gate, lock, dry run, hooks, apply, roll out (rolling or blue-green), the
//! gates after the rollout, and on failure roll back.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::finish::{self, Ctx};
use super::{
    connect, ensure_namespace, now, object_reports, pass_gate, unreadable, with_release_lock,
    write_record, Done, Ensured, Undefined,
};
use crate::analysis::Gates;
use crate::apply;
use crate::args::ApplyArgs;
use crate::cluster::Cluster;
use crate::exit::ExitStatus;
use crate::gate;
use crate::health::{Failure, Reason};
use crate::hook::{self, HookPhase, Hooks};
use crate::lock;
use crate::object::{digest, ObjectId};
use crate::outcome::{Outcome, Report, Timer};
use crate::plan::{self, Desired};
use crate::progress::Progress;
use crate::release::{self, History, Operation, Phase, Record, Status};
use crate::strategy::blue_green::{self, Color};
use crate::strategy::{self, rolling, Strategy};
use crate::Error;

/// `executor apply`; findings are rendered in colour when `colour`.
pub async fn run(args: &ApplyArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let mut timer = Timer::new();
    let name = args.release.release.clone();
    let loaded = args.inputs.load(&name, args.release.namespace.as_deref());
    let policies = gate::policies(&args.policy).await?;
    let gates = args.gates.gates()?;
    if args.manual_promotion && args.strategy != Strategy::BlueGreen {
        return Err(Error::Usage(
            "--manual-promotion is for --strategy blue-green".into(),
        ));
    }
    let mut report = Report::new(
        "apply",
        &name,
        args.release.namespace.as_deref().unwrap_or(""),
    );
    if let Some(text) = unreadable(
        &loaded,
        &mut report,
        "the manifests cannot be read; nothing was applied",
        colour,
    ) {
        return Ok(Done::report(
            ExitStatus::Error,
            report.with_timer(&timer),
            text,
        ));
    }
    timer.phase("connect");
    let (cluster, namespace) =
        connect(&args.release.cluster, args.release.namespace.as_deref()).await?;
    report.namespace = namespace.clone();
    let desired = plan::resolve(&cluster, &loaded.documents, &namespace).await?;

    timer.phase("gate");
    let (decision, mut text) = pass_gate(
        &args.policy,
        &policies,
        &loaded.documents,
        desired.iter().map(|d| d.doc.clone()).collect(),
        &mut report,
        colour,
    )
    .await?;
    if !decision.passed() {
        report.outcome = Outcome::Blocked;
        report.message = format!(
            "release {namespace}/{name}: the validation gate refused the manifests; nothing was applied"
        );
        text.push_str(&report.message);
        text.push('\n');
        timer.finish();
        return Ok(Done::report(decision.exit, report.with_timer(&timer), text));
    }
    if args.policy.attestation.is_some() {
        progress.note(format!(
            "gate: attestation verified ({} objects)",
            loaded.documents.len()
        ));
    }

    let set_digest = set_digest(&desired);
    let (desired, hooks) = hook::split(desired).map_err(|e| {
        Error::Usage(format!(
            "the manifests' hooks are not valid:\n  {}",
            e.join("\n  ")
        ))
    })?;
    if args.strategy == Strategy::BlueGreen {
        // Refused before anything is touched; the colors are chosen under the lock.
        let objects: Vec<&Value> = desired.iter().map(|d| d.object()).collect();
        blue_green::find(&objects).map_err(Error::Usage)?;
    }

    timer.phase("lock");
    // The release namespace holds the history and the lock: it must exist before anything
    // else. When it does not but the manifests define it, it is applied first (and kept
    // should the install fail, with the history in it).
    let created_namespace =
        match ensure_namespace(&cluster, &namespace, &desired, Undefined::Refuse).await? {
            Ensured::Existed => None,
            Ensured::Created(id) => {
                progress.note(format!(
                    "Namespace {namespace} created first: it holds the release history and lock"
                ));
                id
            }
        };
    let code = with_release_lock(
        &cluster,
        &namespace,
        &name,
        args.rollout.lease_duration,
        progress,
        async |held| {
            let release = Release {
                desired,
                hooks,
                gates,
                digest: set_digest,
            };
            locked(
                args,
                held,
                &cluster,
                &namespace,
                release,
                created_namespace,
                &mut timer,
                &mut report,
                progress,
            )
            .await
        },
    )
    .await?;
    timer.finish();
    text.push_str(&report.message);
    text.push('\n');
    Ok(Done::report(code, report.with_timer(&timer), text))
}

fn set_digest(desired: &[Desired]) -> String {
    digest(&Value::Array(
        desired.iter().map(|d| d.object().clone()).collect(),
    ))
}

/// The objects to apply, those to record, and the blue-green state, once the colors are
/// chosen.
pub(super) struct Prepared {
    /// What is applied now (for blue-green: the Service still on the serving color).
    pub desired: Vec<Desired>,
    /// The objects as the release has them once complete (recorded).
    pub recorded: Vec<Value>,
    pub blue_green: Option<blue_green::State>,
}

/// Everything about the release that `locked` carries out.
struct Release {
    /// The manifests as given (for blue-green, not yet turned into the idle color).
    desired: Vec<Desired>,
    hooks: Hooks,
    gates: Gates,
    /// The digest of the manifests as given (an interrupted operation on them is resumed).
    digest: String,
}

/// For blue-green: picks the idle color (the one the live Service does not select), turns
/// the manifests' color into it, and keeps the Service on the serving color until the switch.
/// A resumed revision (`resumed`: its recorded blue-green state) keeps the colors it recorded,
/// whatever the Service selects now: after an interrupted switch the Service already selects
/// the new color, and picking again would deploy the other one and switch a second time.
/// `plan` prepares the same way.
pub(super) async fn prepare(
    strategy: Strategy,
    scale_down_delay: std::time::Duration,
    cluster: &Cluster,
    mut desired: Vec<Desired>,
    gates: &Gates,
    progress: &Progress,
    resumed: Option<&blue_green::State>,
) -> Result<Prepared, Error> {
    if strategy != Strategy::BlueGreen {
        let recorded = desired.iter().map(|d| d.object().clone()).collect();
        return Ok(Prepared {
            desired,
            recorded,
            blue_green: None,
        });
    }
    let target = {
        let objects: Vec<&Value> = desired.iter().map(|d| d.object()).collect();
        blue_green::find(&objects).map_err(Error::Usage)?
    };
    let service_id = desired[target.service].id.clone();
    let serving = match resumed {
        // What the Service selected when the revision started, unless it was switched since
        // (then it selects the new color, and is applied as such).
        Some(s) if s.switched => None,
        Some(s) => Some(s.active),
        None => blue_green::serving(cluster, &service_id)
            .await
            .map_err(Error::Api)?,
    };
    let (active, color) = match resumed {
        Some(s) => (s.active, s.color),
        None => {
            let active: Option<Color> = serving.flatten();
            (active, active.map(Color::other).unwrap_or(target.rendered))
        }
    };
    let mut objects: Vec<Value> = desired.iter().map(|d| d.object().clone()).collect();
    blue_green::recolor(&mut objects, target.rendered, color);
    objects[target.service] = blue_green::selecting(&objects[target.service], color);
    for (d, o) in desired.iter_mut().zip(&objects) {
        d.doc.object = o.clone();
        d.id = ObjectId::of(o);
    }
    let deployments: Vec<ObjectId> = target
        .deployments
        .iter()
        .map(|i| desired[*i].id.clone())
        .collect();
    let old_deployments: Vec<ObjectId> = match active {
        Some(a) => deployments
            .iter()
            .filter_map(|id| {
                Some(ObjectId {
                    name: blue_green::counterpart(&id.name, color, a)?,
                    ..id.clone()
                })
            })
            .collect(),
        None => Vec::new(),
    };
    match serving {
        // Traffic stays on the serving color until the switch.
        Some(Some(a)) => {
            let s = &mut desired[target.service];
            s.doc.object = blue_green::selecting(&objects[target.service], a);
        }
        // A Service that selects no color yet keeps its selector until the switch.
        Some(None) => {
            desired.remove(target.service);
        }
        // No Service yet: nothing to protect.
        None => {}
    }
    let rendered = target.rendered;
    if let Some(s) = resumed {
        progress.note(format!(
            "blue-green: resuming the deployment of {color} ({} served before{})",
            active.map(|a| a.as_str()).unwrap_or("nothing"),
            if s.switched {
                format!("; {service_id} already selects {color}")
            } else {
                String::new()
            }
        ));
    } else if rendered != color {
        progress.note(format!(
            "blue-green: {} serves {}; deploying {color} (the manifests' {rendered} objects recolored)",
            service_id,
            active.map(|a| a.as_str()).unwrap_or("nothing")
        ));
    }
    Ok(Prepared {
        desired,
        recorded: objects,
        blue_green: Some(blue_green::State {
            service: service_id,
            color,
            active,
            deployments,
            old_deployments,
            switched: resumed.map(|s| s.switched).unwrap_or(serving.is_none()),
            gates: gates.clone(),
            scale_down_delay,
        }),
    })
}

/// How a rollout went on from a complete rollout.
enum Next {
    Deployed,
    Paused,
    Failed(finish::Failed),
}

// The apply run's state, each borrowed separately: the caller keeps ownership of the timer,
// report and progress it reports from after this returns.
#[allow(clippy::too_many_arguments)]
async fn locked(
    args: &ApplyArgs,
    held: &lock::Lock,
    cluster: &Cluster,
    namespace: &str,
    release_input: Release,
    created_namespace: Option<ObjectId>,
    timer: &mut Timer,
    report: &mut Report,
    progress: &Progress,
) -> Result<ExitStatus, Error> {
    let Release {
        desired,
        hooks,
        gates,
        digest: set_digest,
    } = release_input;
    let name = &args.release.release;
    let history = History::new(cluster.client.clone(), namespace, name);
    let records = history.list().await?;
    let current = release::current(&records).cloned();
    let interrupted: Vec<Record> = release::interrupted(&records)
        .into_iter()
        .cloned()
        .collect();
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
            "resuming revision {} (interrupted while {})",
            r.revision,
            r.phase.unwrap_or(Phase::Applying)
        ));
    }
    let prepared = prepare(
        args.strategy,
        args.scale_down_delay,
        cluster,
        desired,
        &gates,
        progress,
        resume.as_ref().and_then(|r| r.blue_green.as_ref()),
    )
    .await?;

    timer.phase("dryRun");
    let objects = prepared.recorded;
    let (planned, errors) = plan::dry_run(cluster, prepared.desired, args.force_conflicts).await?;
    if !errors.is_empty() {
        report.outcome = Outcome::Error;
        report.errors = errors.iter().map(|(id, m)| format!("{id}: {m}")).collect();
        report.message = format!(
            "release {namespace}/{name}: the server refused {} object(s) in the dry run; nothing was applied:\n  {}",
            errors.len(),
            report.errors.join("\n  ")
        );
        return Ok(ExitStatus::Error);
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
        gates: Vec::new(),
        blue_green: prepared.blue_green,
    };
    history.write(&record).await?;

    let ctx = Ctx {
        cluster,
        history: &history,
        namespace,
        name,
        progress,
        history_max: args.rollout.history_max,
        rollout: args.rollout.settings(),
        rollback_timeout: args.rollback_timeout,
    };
    let mut failed: Option<finish::Failed> = None;
    if !hooks.pre_deploy.is_empty() {
        timer.phase("hooks");
        failed = finish::hooks(&ctx, &mut record, HookPhase::PreDeploy, &hooks.pre_deploy).await;
    }

    timer.phase("apply");
    let desired: Vec<Desired> = planned.into_iter().map(|p| p.desired).collect();
    let (applied, apply_error) = match failed {
        Some(_) => (Vec::new(), None),
        None => {
            apply::apply_all(
                cluster,
                &desired,
                Some(&live_versions),
                args.force_conflicts,
                |a| progress.note(format!("{} {}", a.id, a.action.as_str())),
            )
            .await
        }
    };
    timer.mark("applied");
    report.objects = object_reports(&applied);
    let next = match (failed, apply_error) {
        (Some(f), _) => Next::Failed(f),
        (None, Some(e)) => Next::Failed((
            desired
                .get(applied.len())
                .map(|d| d.id.clone())
                .unwrap_or_else(|| desired[0].id.clone()),
            Failure {
                reason: Reason::ApplyFailed,
                message: e.to_string(),
            },
        )),
        (None, None) => {
            record.phase = Some(Phase::Waiting);
            record.description = "waiting for the rollout".into();
            record.updated = now();
            write_record(&history, &record, |m| progress.note(m)).await;
            timer.phase("rollout");
            let workloads = strategy::workloads(&applied);
            match rolling::wait(&cluster.client, &workloads, &ctx.rollout, progress).await {
                strategy::Outcome::Failed { id, failure } => Next::Failed((id, failure)),
                strategy::Outcome::Complete => {
                    timer.phase("gates");
                    after_rollout(
                        args,
                        &ctx,
                        &mut record,
                        current.as_ref(),
                        &hooks,
                        &gates,
                        &workloads,
                        &desired,
                    )
                    .await
                }
            }
        }
    };
    for o in report.objects.iter_mut() {
        o.status = progress.state(&o.id);
    }
    report.gates = record.gates.clone();
    match next {
        Next::Deployed => {
            finish::deployed(&ctx, &mut record, current, &interrupted, timer, report).await
        }
        Next::Paused => finish::pause(&ctx, &mut record, report).await,
        Next::Failed(f) => finish::roll_back(&ctx, &mut record, current, f, timer, report).await,
    }
}

/// Gates once the workloads are complete, then (blue-green) the switch or the pause.
// What the rollout produced, borrowed from `locked`, which goes on using it afterwards.
#[allow(clippy::too_many_arguments)]
async fn after_rollout(
    args: &ApplyArgs,
    ctx: &Ctx<'_>,
    record: &mut Record,
    current: Option<&Record>,
    hooks: &Hooks,
    gates: &Gates,
    workloads: &[strategy::Workload],
    desired: &[Desired],
) -> Next {
    let subject = workloads
        .first()
        .map(|w| w.id.clone())
        .or_else(|| desired.first().map(|d| d.id.clone()))
        .unwrap_or_else(|| ObjectId::of(&Value::Null));
    if let Some(f) = finish::verify(ctx, record, &hooks.post_deploy, gates, &subject).await {
        return Next::Failed(f);
    }
    match args.strategy {
        Strategy::Rolling => {
            let deployments: Vec<ObjectId> = workloads
                .iter()
                .filter(|w| w.kind == strategy::WorkloadKind::Deployment)
                .map(|w| w.id.clone())
                .collect();
            if !gates.observe.is_zero() || !gates.metrics.is_empty() {
                record.phase = Some(Phase::Observing);
                record.description = "rolled out; observing".into();
                record.updated = now();
                write_record(ctx.history, record, |m| ctx.progress.note(m)).await;
            }
            match finish::observe(ctx, record, gates, &deployments, &subject).await {
                Some(f) => Next::Failed(f),
                None => Next::Deployed,
            }
        }
        Strategy::BlueGreen if args.manual_promotion => Next::Paused,
        Strategy::BlueGreen => match finish::promote(ctx, record, current).await {
            Some(f) => Next::Failed(f),
            None => Next::Deployed,
        },
    }
}
