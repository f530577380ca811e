//! `executor history` and `executor status`: what the release history and the cluster say.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::{json, Value};

use super::{connect, json_text, Done};
use crate::args::{Output, ReleaseArgs};
use crate::exit::ExitStatus;
use crate::health::{self, Thresholds, Verdict};
use crate::lock;
use crate::object::ObjectId;
use crate::outcome::Report;
use crate::release::{self, History, Phase, Record, Status};
use crate::strategy::selector_string;
use crate::Error;

fn summary(r: &Record) -> Value {
    json!({
        "revision": r.revision,
        "status": r.status,
        "operation": r.operation,
        "phase": r.phase,
        "started": r.started,
        "updated": r.updated,
        "description": r.description,
        "objects": r.objects.len(),
        "rollbackOf": r.rollback_of,
        "digest": r.digest,
        "gates": r.gates,
        "blueGreen": r.blue_green.as_ref().map(|b| json!({
            "service": b.service.to_string(),
            "color": b.color.as_str(),
            "switched": b.switched,
        })),
    })
}

pub async fn history(args: &ReleaseArgs) -> Result<Done, Error> {
    let (cluster, namespace) = connect(&args.cluster, args.namespace.as_deref()).await?;
    let records = History::new(cluster.client.clone(), &namespace, &args.release)
        .list()
        .await?;
    if args.cluster.output == Output::Json {
        let doc = json!({
            "release": args.release,
            "namespace": namespace,
            "revisions": records.iter().map(summary).collect::<Vec<_>>(),
        });
        return Ok(Done::text(ExitStatus::Success, json_text(&doc)));
    }
    if records.is_empty() {
        return Ok(Done::text(
            ExitStatus::Error,
            format!("release {namespace}/{} has no history\n", args.release),
        ));
    }
    let mut text = format!(
        "{:<9} {:<20} {:<12} {:<10} DESCRIPTION\n",
        "REVISION", "UPDATED", "STATUS", "OPERATION"
    );
    for r in &records {
        let updated = r
            .updated
            .chars()
            .take(19)
            .collect::<String>()
            .replace('T', " ");
        text.push_str(&format!(
            "{:<9} {:<20} {:<12} {:<10} {}\n",
            r.revision,
            updated,
            r.status.as_str(),
            r.operation.to_string(),
            r.description
        ));
    }
    Ok(Done::text(ExitStatus::Success, text))
}

/// The live verdict of one workload of the release.
async fn live_verdict(client: &Client, object: &Value) -> Option<(ObjectId, Verdict)> {
    let id = ObjectId::of(object);
    if id.group_version().0 != "apps" {
        return None;
    }
    let selector = selector_string(&object["spec"]["selector"]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &id.namespace);
    let lp = ListParams::default().labels(&selector);
    let now = jiff::Timestamp::now();
    let t = Thresholds::default();
    let pod_list = pods.list(&lp).await.ok()?.items;
    let verdict = match id.kind.as_str() {
        "Deployment" => {
            let d = Api::<Deployment>::namespaced(client.clone(), &id.namespace)
                .get_opt(&id.name)
                .await
                .ok()??;
            let rss = Api::<ReplicaSet>::namespaced(client.clone(), &id.namespace)
                .list(&lp)
                .await
                .ok()?
                .items;
            let g = d.metadata.generation.unwrap_or(0);
            health::deployment(&d, &rss, &pod_list, g, now, &t)
        }
        "StatefulSet" => {
            let s = Api::<StatefulSet>::namespaced(client.clone(), &id.namespace)
                .get_opt(&id.name)
                .await
                .ok()??;
            let g = s.metadata.generation.unwrap_or(0);
            health::statefulset(&s, &pod_list, g, now, &t)
        }
        "DaemonSet" => {
            let d = Api::<DaemonSet>::namespaced(client.clone(), &id.namespace)
                .get_opt(&id.name)
                .await
                .ok()??;
            let g = d.metadata.generation.unwrap_or(0);
            health::daemonset(&d, &pod_list, g, now, &t)
        }
        _ => return None,
    };
    Some((id, verdict))
}

pub async fn status(args: &ReleaseArgs) -> Result<Done, Error> {
    let (cluster, namespace) = connect(&args.cluster, args.namespace.as_deref()).await?;
    let records = History::new(cluster.client.clone(), &namespace, &args.release)
        .list()
        .await?;
    let Some(latest) = records.last() else {
        let mut report = Report::new("status", &args.release, &namespace);
        report.message = format!("release {namespace}/{} has no history", args.release);
        let text = format!("{}\n", report.message);
        return Ok(Done::report(ExitStatus::Error, report, text));
    };
    let current = release::current(&records);
    // A blue-green revision paused for `promote`/`abort` is waiting, not interrupted.
    let paused = release::paused(&records);
    let interrupted: Vec<&Record> = release::interrupted(&records)
        .into_iter()
        .filter(|r| paused.is_none_or(|p| p.revision != r.revision))
        .collect();
    let lease = Api::<Lease>::namespaced(cluster.client.clone(), &namespace)
        .get_opt(&lock::lease_name(&args.release))
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity);
    let mut text = format!("release {namespace}/{}\n", args.release);
    match current {
        Some(c) => text.push_str(&format!(
            "current: revision {} ({}, {}), {}\n",
            c.revision, c.status, c.operation, c.description
        )),
        None => text.push_str("current: none deployed\n"),
    }
    if latest.status != Status::Deployed {
        text.push_str(&format!(
            "latest: revision {} {} ({})\n",
            latest.revision, latest.status, latest.description
        ));
    }
    for p in &interrupted {
        text.push_str(&format!(
            "interrupted: revision {} ({} while {}); the next apply or rollback finishes it\n",
            p.revision,
            p.operation,
            p.phase.unwrap_or(Phase::Applying)
        ));
    }
    if let Some(holder) = &lease {
        text.push_str(&format!("locked by: {holder}\n"));
    }
    // Blue-green: which color the Service selects now, and a rollout waiting for promotion.
    let blue_green = records.iter().rev().find_map(|r| r.blue_green.as_ref());
    let mut serving_color = None;
    if let Some(state) = blue_green {
        let live = crate::strategy::blue_green::serving(&cluster, &state.service).await;
        let serving = match &live {
            Ok(Some(Some(color))) => {
                serving_color = Some(color.as_str());
                format!("selects {}", color.as_str())
            }
            Ok(Some(None)) => "selects no color".to_string(),
            Ok(None) => "does not exist".to_string(),
            Err(e) => format!("cannot be read ({e})"),
        };
        text.push_str(&format!("blue-green: {} {serving}\n", state.service));
        if let Some((p, b)) = paused.and_then(|p| p.blue_green.as_ref().map(|b| (p, b))) {
            text.push_str(&format!(
                "paused: revision {} runs {} beside the serving color; `executor promote` switches to it, `executor abort` removes it\n",
                p.revision,
                b.color.as_str()
            ));
        }
    }
    let mut healthy = current.is_some() && interrupted.is_empty();
    let mut workloads = Vec::new();
    if let Some(c) = current {
        for o in &c.objects {
            if let Some((id, verdict)) = live_verdict(&cluster.client, o).await {
                let state = match &verdict {
                    Verdict::Complete => "complete".to_string(),
                    Verdict::Progressing(p) => {
                        healthy = false;
                        format!("progressing: {}", p.message)
                    }
                    Verdict::Failed(f) => {
                        healthy = false;
                        format!("failing: {f}")
                    }
                };
                text.push_str(&format!("  {id}: {state}\n"));
                workloads.push(json!({"object": id, "state": state}));
            }
        }
    }
    let code = if healthy {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    };
    if args.cluster.output == Output::Json {
        let doc = json!({
            "release": args.release,
            "namespace": namespace,
            "current": current.map(summary),
            "latest": summary(latest),
            "interrupted": interrupted.iter().map(|r| summary(r)).collect::<Vec<_>>(),
            "lockedBy": lease,
            "serving": serving_color,
            "paused": paused.map(summary),
            "healthy": healthy,
            "workloads": workloads,
        });
        return Ok(Done::text(code, json_text(&doc)));
    }
    Ok(Done::text(code, text))
}
