//! `executor plan`: the gate and the dry run of `apply`, and what would change per object.

use super::{connect, pass_gate, unreadable, Done};
use crate::apply::Action;
use crate::args::PlanArgs;
use crate::exit::ExitStatus;
use crate::gate;
use crate::outcome::{ObjectReport, Outcome, Report, Timer};
use crate::plan::{self, diff};
use crate::progress::Progress;
use crate::release::{self, History};
use crate::Error;

/// `executor plan`; findings are rendered in colour when `colour`.
pub async fn run(args: &PlanArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let mut timer = Timer::new();
    let name = args.release.release.clone();
    let loaded = args.inputs.load(&name, args.release.namespace.as_deref());
    let policies = gate::policies(&args.policy).await?;
    let mut report = Report::new(
        "plan",
        &name,
        args.release.namespace.as_deref().unwrap_or(""),
    );
    if let Some(text) = unreadable(&loaded, &mut report, "the manifests cannot be read", colour) {
        return Ok(Done::report(ExitStatus::Error, report, text));
    }
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
        report.message =
            format!("release {namespace}/{name}: the validation gate refused the manifests");
        text.push_str(&report.message);
        text.push('\n');
        timer.finish();
        return Ok(Done::report(decision.exit, report.with_timer(&timer), text));
    }
    timer.phase("dryRun");
    let prepared = super::apply::prepare(
        args.strategy,
        std::time::Duration::ZERO,
        &cluster,
        desired,
        &Default::default(),
        progress,
        None,
    )
    .await?;
    if let Some(state) = prepared.blue_green.as_ref() {
        text.push_str(&format!(
            "blue-green: {} serves {}; the apply deploys {} and switches to it once ready\n",
            state.service,
            state.active.map_or("nothing", |a| a.as_str()),
            state.color.as_str()
        ));
    }
    let desired = prepared.desired;
    let blue_green = prepared.blue_green;
    let ids: Vec<_> = desired.iter().map(|d| d.id.clone()).collect();
    let (planned, errors) = plan::dry_run(&cluster, desired, args.force_conflicts).await?;
    let history = History::new(cluster.client.clone(), &namespace, &name);
    let records = history.list().await?;
    let current = release::current(&records);
    text.push_str(&format!(
        "release {namespace}/{name}: {}\n",
        match current {
            Some(c) => format!("changes against revision {}", c.revision),
            None => "first install".to_string(),
        }
    ));
    let (mut creates, mut updates, mut same) = (0, 0, 0);
    for p in &planned {
        let refused = errors.iter().find(|(id, _)| *id == p.desired.id);
        let (action, marker, lines) = if let Some((_, message)) = refused {
            (Action::Refused, "!", vec![format!("    {message}")])
        } else if let Some(reason) = &p.deferred {
            creates += 1;
            (
                Action::Deferred,
                "+",
                vec![format!("    (not dry-run: {reason})")],
            )
        } else {
            match p.after.as_ref().map(|a| diff::diff(p.live.as_ref(), a)) {
                Some(diff::Change::Create) | None => {
                    creates += 1;
                    (Action::Created, "+", Vec::new())
                }
                Some(diff::Change::Unchanged) => {
                    same += 1;
                    (Action::Unchanged, "=", Vec::new())
                }
                Some(change) => {
                    updates += 1;
                    (Action::Configured, "~", diff::render(&change))
                }
            }
        };
        text.push_str(&format!(
            "{marker} {} ({})\n",
            p.desired.id,
            action.as_str()
        ));
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        report.objects.push(ObjectReport {
            id: p.desired.id.clone(),
            action,
            status: None,
            diff: lines.iter().map(|l| l.trim().to_string()).collect(),
        });
    }
    let (kept, deletes): (Vec<_>, Vec<_>) = current
        .map(|c| release::removed(&c.ids(), &ids))
        .unwrap_or_default()
        .into_iter()
        .partition(|id| super::finish::old_color_of(id, &ids, blue_green.as_ref()));
    for id in &kept {
        updates += 1;
        let note = "kept as the previous color; a Deployment is scaled to 0 once the switch holds";
        text.push_str(&format!("~ {id} ({note})\n"));
        report.objects.push(ObjectReport {
            id: id.clone(),
            action: Action::Configured,
            status: None,
            diff: vec![note.to_string()],
        });
    }
    for id in &deletes {
        text.push_str(&format!("- {id} (deleted: no longer in the release)\n"));
        report.objects.push(ObjectReport {
            id: id.clone(),
            action: Action::Deleted,
            status: None,
            diff: Vec::new(),
        });
    }
    timer.finish();
    if !errors.is_empty() {
        report.outcome = Outcome::Error;
        report.errors = errors.iter().map(|(id, m)| format!("{id}: {m}")).collect();
        report.message = format!(
            "release {namespace}/{name}: the server would refuse {} object(s)",
            errors.len()
        );
        text.push_str(&report.message);
        text.push('\n');
        return Ok(Done::report(
            ExitStatus::Error,
            report.with_timer(&timer),
            text,
        ));
    }
    report.outcome = Outcome::Planned;
    report.message = format!(
        "release {namespace}/{name}: {creates} to create, {updates} to change, {same} unchanged, {} to delete",
        deletes.len()
    );
    text.push_str(&report.message);
    text.push('\n');
    Ok(Done::report(
        ExitStatus::Success,
        report.with_timer(&timer),
        text,
    ))
}
