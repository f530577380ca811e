//! `executor dr-drill`: an archive restored into a scratch namespace, the recovery time
//! measured against a target, and the namespace removed again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use super::restore::{restore_archive, RestoreSettings};
use super::{connect, now, Done};
use crate::args::DrillArgs;
use crate::backup;
use crate::exit::ExitStatus;
use crate::outcome::{Outcome, Report};
use crate::parse::check_namespace_name;
use crate::progress::Progress;
use crate::Error;

/// The scratch namespace of a drill: `<prefix><source>-<time>`, cut to 63 characters.
pub fn scratch_namespace(prefix: &str, source: &str, unix_seconds: i64) -> String {
    let suffix = format!("-{unix_seconds:x}");
    let mut head = format!("{prefix}{source}");
    head.truncate(63 - suffix.len());
    let head = head.trim_end_matches('-');
    format!("{head}{suffix}")
}

/// Seconds as people read them: `42.1s`, `3m 05s`, `1h 02m`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h {:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

/// Label of a drill's scratch namespace: `true`, or `kept` with `--keep-namespace`.
pub const DRILL_LABEL: &str = "executor.io/dr-drill";
/// Annotation of a drill's scratch namespace: when the drill is over at the latest (RFC 3339).
pub const DRILL_DEADLINE: &str = "executor.io/dr-drill-deadline";

/// Creates the scratch namespace, labelled as a drill's with its deadline (the drill's
/// `--timeout` and 15 minutes for the gate and the cleanup), so that a later drill can remove
/// it if this one is killed.
async fn create_scratch_namespace(
    namespaces: &Api<Namespace>,
    namespace: &str,
    args: &DrillArgs,
) -> Result<(), Error> {
    let deadline = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(args.timeout).unwrap_or_default())
        .and_then(|t| t.checked_add(jiff::SignedDuration::from_mins(15)))
        .unwrap_or(jiff::Timestamp::MAX);
    let label = if args.keep_namespace { "kept" } else { "true" };
    let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace,
        "labels": {DRILL_LABEL: label},
        "annotations": {DRILL_DEADLINE: deadline.to_string()},
    }});
    // Its own field manager: applying the release's objects later does not take these off.
    super::create_namespace(namespaces, namespace, &object, "executor-dr-drill").await
}

/// Deletes the scratch namespaces of drills that were killed before they cleaned up: labelled
/// `executor.io/dr-drill=true` (not `kept`) and past their deadline. Returns their names; a
/// failure to list or delete is left for the next drill.
async fn sweep_stale_drills(namespaces: &Api<Namespace>, now: jiff::Timestamp) -> Vec<String> {
    let params = ListParams::default().labels(&format!("{DRILL_LABEL}=true"));
    let Ok(list) = namespaces.list(&params).await else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for ns in list.items {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        let stale = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DRILL_DEADLINE))
            .and_then(|d| d.parse::<jiff::Timestamp>().ok())
            .is_some_and(|deadline| deadline < now);
        if stale
            && namespaces
                .delete(&name, &DeleteParams::background())
                .await
                .is_ok()
        {
            swept.push(name);
        }
    }
    swept
}

/// `executor dr-drill`: the drill's result and, for the deploy log, its outcome and duration.
pub async fn run(args: &DrillArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let archive = backup::read(&args.input_file)?;
    let (cluster, _) = connect(&args.cluster, None).await?;
    let namespace = scratch_namespace(
        &args.namespace_prefix,
        &archive.namespace,
        jiff::Timestamp::now().as_second(),
    );
    check_namespace_name(&namespace)?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    if super::namespace_exists(&namespaces, &namespace).await? {
        return Err(Error::Usage(format!(
            "the scratch namespace {namespace} already exists; a drill needs a fresh one (remove it, or give another --namespace-prefix)"
        )));
    }
    let swept = sweep_stale_drills(&namespaces, jiff::Timestamp::now()).await;
    if !swept.is_empty() {
        progress.note(format!(
            "drill: deleted the scratch namespace(s) of drills that did not finish: {}",
            swept.join(", ")
        ));
    }
    create_scratch_namespace(&namespaces, &namespace, args).await?;
    let file = args.input_file.display().to_string();
    let settings = RestoreSettings::new(
        file.clone(),
        Some(namespace.clone()),
        false,
        &args.policy,
        &args.health,
        args.timeout,
        colour,
    );
    let started_at = now();
    progress.note(format!(
        "drill: restoring {file} (namespace {}, taken {}) into {namespace}",
        archive.namespace, archive.created
    ));
    let start = Instant::now();
    let result = restore_archive(&cluster, &archive, &settings, progress).await;
    let end = Instant::now();
    let cleanup = if args.keep_namespace {
        progress.note(format!(
            "drill: namespace {namespace} kept (--keep-namespace)"
        ));
        None
    } else {
        Some(
            match namespaces
                .delete(&namespace, &DeleteParams::background())
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(crate::cluster::describe(&e)),
            },
        )
    };
    if let Some(Err(e)) = &cleanup {
        progress.note(format!(
            "warning: cannot delete the scratch namespace {namespace}: {e}; delete it by hand"
        ));
    }
    let restored = result?;
    let rto = restored.complete.map(|c| c.duration_since(start));
    let target = args.rto_target;
    let met = rto.is_some_and(|r| r <= target);
    let (code, outcome) = match (restored.outcome, met) {
        ("restored", true) => (ExitStatus::Success, "passed"),
        ("restored", false) => (ExitStatus::Failed, "failed"),
        ("blocked", _) => (restored.status, "blocked"),
        (_, _) if restored.status == ExitStatus::Error && restored.failure.is_some() => {
            (ExitStatus::Failed, "failed")
        }
        _ => (restored.status, "error"),
    };
    let rto_text = match rto {
        Some(r) => format!(
            "RTO {} (target {}): {}",
            human_duration(r),
            human_duration(target),
            if met { "met" } else { "MISSED" }
        ),
        None => format!(
            "no RTO: the workloads were not all complete after {} (target {})",
            human_duration(end.duration_since(start)),
            human_duration(target)
        ),
    };
    let cleanup_text = match &cleanup {
        None => format!("scratch namespace {namespace} kept"),
        Some(Ok(())) => format!("scratch namespace {namespace} deleted"),
        Some(Err(_)) => format!("scratch namespace {namespace} could NOT be deleted"),
    };
    let message = format!(
        "dr-drill {outcome}: {rto_text}; {}; {cleanup_text}",
        restored.message
    );
    let mut doc = restored.json("dr-drill", &archive, &file);
    if let Some(map) = doc.as_object_mut() {
        map.insert("outcome".into(), json!(outcome));
        map.insert("message".into(), json!(message));
        map.insert("restoreOutcome".into(), json!(restored.outcome));
        map.insert("rtoSeconds".into(), json!(rto.map(|r| r.as_secs_f64())));
        map.insert("rtoTargetSeconds".into(), json!(target.as_secs_f64()));
        map.insert("targetMet".into(), json!(met));
        map.insert("workloads".into(), json!(restored.workloads));
        map.insert("started".into(), json!(started_at));
        map.insert("finished".into(), json!(now()));
        map.insert(
            "namespaceDeleted".into(),
            json!(matches!(cleanup, Some(Ok(())))),
        );
        map.insert(
            "durations".into(),
            json!(BTreeMap::from([
                ("restore", end.duration_since(start).as_secs_f64()),
                (
                    "total",
                    rto.unwrap_or(end.duration_since(start)).as_secs_f64()
                ),
            ])),
        );
    }
    let mut report = Report::new(
        "dr-drill",
        &archive
            .releases
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        &namespace,
    );
    report.outcome = match outcome {
        "passed" => Outcome::Deployed,
        "failed" => Outcome::Failed,
        "blocked" => Outcome::Blocked,
        _ => Outcome::Error,
    };
    report.message = message.clone();
    report.durations = doc["durations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    report.timeline.insert("started".into(), json!(started_at));
    report
        .timeline
        .insert("finished".into(), doc["finished"].clone());
    for problem in crate::deploy_metrics::record(&args.record, &report) {
        progress.note(format!("warning: {problem}"));
    }
    let text = format!("{}{message}\n", restored.findings_text);
    Ok(Done::doc(code, doc, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_namespaces_are_valid_labels() {
        assert_eq!(scratch_namespace("drill-", "shop", 255), "drill-shop-ff");
        let long = scratch_namespace("drill-", &"a".repeat(80), 1_700_000_000);
        assert!(long.len() <= 63, "{long}");
        assert!(check_namespace_name(&long).is_ok(), "{long}");
        let dash = scratch_namespace("drill-", &format!("{}-b", "a".repeat(53)), 1);
        assert!(check_namespace_name(&dash).is_ok(), "{dash}");
        assert!(check_namespace_name("Drill").is_err());
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h 02m");
    }
}
