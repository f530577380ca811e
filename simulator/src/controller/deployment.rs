//! The Deployment controller: one ReplicaSet per pod template (by pod-template-hash), the
//! revision annotation, rolling updates within maxSurge/maxUnavailable, Recreate, history
//! limits, and status with the Available and Progressing conditions.

use serde_json::{json, Value};

use super::{controller_ref, i64_at, scaled, str_at, template_hash, Context, MANAGER};
use crate::clock::timestamp;
use crate::store::{Key, Propagation, State};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(rs: &Value) -> i64 {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    i64_at(rs, "/spec/replicas")
}

fn set_replicas(state: &mut State, rs: &mut Value, replicas: i64) {
    if spec_replicas(rs) != replicas {
        rs["spec"]["replicas"] = json!(replicas);
        if let Some(written) = state.controller_write(rs.clone(), MANAGER) {
            *rs = written;
        }
    }
}

pub(super) fn reconcile(state: &mut State, ctx: &Context<'_>, d: &Value) {
    let namespace = str_at(d, "/metadata/namespace").to_string();
    let name = str_at(d, "/metadata/name").to_string();
    let uid = str_at(d, "/metadata/uid").to_string();
    let generation = i64_at(d, "/metadata/generation");
    let desired = d
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let paused = d
        .pointer("/spec/paused")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let template = d["spec"]["template"].clone();
    let hash = template_hash(&template);

    let mut all = state.owned("apps", "replicasets", &namespace, &uid);
    all.sort_by_key(revision);
    let new_index = all
        .iter()
        .position(|rs| str_at(rs, "/metadata/labels/pod-template-hash") == hash);
    let mut new_rs = new_index.map(|i| all.remove(i));
    let mut olds = all;
    let max_old = olds.iter().map(revision).max().unwrap_or(0);
    let mut progress_reason: Option<(&str, String)> = None;

    if new_rs.is_none() && !paused {
        let rs_name = format!("{name}-{hash}");
        let mut labels = template["metadata"]["labels"].clone();
        labels["pod-template-hash"] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut rs_template = template.clone();
        rs_template["metadata"]["labels"] = labels.clone();
        let existing_pods: i64 = olds.iter().map(spec_replicas).sum();
        let initial = if existing_pods == 0 { desired } else { 0 };
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": labels,
                "annotations": {
                    REVISION: (max_old + 1).to_string(),
                    "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                },
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": initial,
                "minReadySeconds": i64_at(d, "/spec/minReadySeconds"),
                "selector": selector,
                "template": rs_template,
            },
        });
        new_rs = state.controller_create(rs, MANAGER);
        progress_reason = Some((
            "NewReplicaSetCreated",
            format!("Created new replica set \"{rs_name}\""),
        ));
    } else if let Some(rs) = new_rs.as_mut() {
        // An existing ReplicaSet of this template becomes the new one again (a rollback, or
        // a Deployment scaled up from 0): its revision moves up. As the real controller does,
        // the Progressing condition is only set here when there is none yet; an earlier
        // `NewReplicaSetAvailable` stays.
        if revision(rs) <= max_old {
            rs["metadata"]["annotations"][REVISION] = json!((max_old + 1).to_string());
            if let Some(w) = state.controller_write(rs.clone(), MANAGER) {
                *rs = w;
            }
        }
        let has_progressing = d["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Progressing"));
        if !has_progressing {
            progress_reason = Some((
                "FoundNewReplicaSet",
                format!("Found new replica set \"{}\"", str_at(rs, "/metadata/name")),
            ));
        }
    }

    let strategy = d["spec"]["strategy"].clone();
    let max_surge = scaled(&strategy["rollingUpdate"]["maxSurge"], desired, true);
    let mut max_unavailable = scaled(&strategy["rollingUpdate"]["maxUnavailable"], desired, false);
    if strategy["type"] == "RollingUpdate" && max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    if strategy["type"] != "RollingUpdate" {
        max_unavailable = 0;
    }

    if let (Some(new), false) = (new_rs.as_mut(), paused) {
        if strategy["type"] == "Recreate" {
            let old_pods: i64 = olds.iter().map(|rs| i64_at(rs, "/status/replicas")).sum();
            for rs in olds.iter_mut() {
                set_replicas(state, rs, 0);
            }
            if old_pods == 0 {
                set_replicas(state, new, desired);
            }
        } else {
            // Scale the new ReplicaSet up within maxSurge.
            let current: i64 = olds.iter().map(spec_replicas).sum::<i64>() + spec_replicas(new);
            let new_replicas = spec_replicas(new);
            if new_replicas > desired {
                set_replicas(state, new, desired);
            } else if new_replicas < desired {
                let max_total = desired + max_surge;
                if current < max_total {
                    let up = (max_total - current).min(desired - new_replicas);
                    set_replicas(state, new, new_replicas + up);
                }
            }
            // Scale old ReplicaSets down within maxUnavailable.
            let old_count: i64 = olds.iter().map(spec_replicas).sum();
            if old_count > 0 {
                let all_count = old_count + spec_replicas(new);
                let min_available = desired - max_unavailable;
                let new_unavailable = spec_replicas(new) - i64_at(new, "/status/availableReplicas");
                let max_scaled_down = all_count - min_available - new_unavailable;
                if max_scaled_down > 0 {
                    // Unhealthy old replicas first.
                    let mut cleaned = 0;
                    for rs in olds.iter_mut() {
                        if cleaned >= max_scaled_down {
                            break;
                        }
                        let spec = spec_replicas(rs);
                        let available = i64_at(rs, "/status/availableReplicas");
                        if spec == available {
                            continue;
                        }
                        let down = (max_scaled_down - cleaned).min(spec - available).max(0);
                        if down > 0 {
                            set_replicas(state, rs, spec - down);
                            cleaned += down;
                        }
                    }
                    // Then available ones, keeping minAvailable.
                    let available: i64 = olds
                        .iter()
                        .map(|rs| i64_at(rs, "/status/availableReplicas").min(spec_replicas(rs)))
                        .sum::<i64>()
                        + i64_at(new, "/status/availableReplicas");
                    if available > min_available {
                        let mut total = available - min_available;
                        for rs in olds.iter_mut() {
                            if total <= 0 {
                                break;
                            }
                            let spec = spec_replicas(rs);
                            if spec == 0 {
                                continue;
                            }
                            let down = spec.min(total);
                            set_replicas(state, rs, spec - down);
                            total -= down;
                        }
                    }
                }
            }
        }
    }

    // Old ReplicaSets beyond revisionHistoryLimit.
    let limit = d
        .pointer("/spec/revisionHistoryLimit")
        .and_then(Value::as_i64)
        .unwrap_or(10);
    let idle: Vec<&Value> = olds
        .iter()
        .filter(|rs| spec_replicas(rs) == 0 && i64_at(rs, "/status/replicas") == 0)
        .collect();
    let excess = idle.len() as i64 - limit;
    if excess > 0 {
        let doomed: Vec<Key> = idle
            .iter()
            .take(excess as usize)
            .map(|rs| {
                Key::new(
                    "apps",
                    "replicasets",
                    &namespace,
                    str_at(rs, "/metadata/name"),
                )
            })
            .collect();
        for k in doomed {
            state.remove(k, Propagation::Background);
        }
    }

    // Status.
    let everything: Vec<&Value> = olds.iter().chain(new_rs.iter()).collect();
    let sum = |p: &str| -> i64 { everything.iter().map(|rs| i64_at(rs, p)).sum() };
    let replicas = sum("/status/replicas");
    let ready = sum("/status/readyReplicas");
    let available = sum("/status/availableReplicas");
    let updated = new_rs
        .as_ref()
        .map(|rs| i64_at(rs, "/status/replicas"))
        .unwrap_or(0);
    let total_spec: i64 = everything.iter().map(|rs| spec_replicas(rs)).sum();
    let old_status = d["status"].clone();
    let new_rs_name = new_rs
        .as_ref()
        .map(|rs| str_at(rs, "/metadata/name").to_string())
        .unwrap_or_default();
    let now = timestamp();
    let mut conditions: Vec<Value> = old_status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let set_condition = |conditions: &mut Vec<Value>,
                         kind: &str,
                         status: &str,
                         reason: &str,
                         message: &str,
                         update: bool| {
        let existing = conditions.iter().position(|c| c["type"] == kind);
        let mut c = json!({"type": kind, "status": status, "reason": reason, "message": message,
                           "lastUpdateTime": now, "lastTransitionTime": now});
        if let Some(i) = existing {
            let old = &conditions[i];
            if old["status"] == status {
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
                if !update && old["reason"] == reason && old["message"] == message {
                    c["lastUpdateTime"] = old["lastUpdateTime"].clone();
                }
            }
            conditions[i] = c;
        } else {
            conditions.push(c);
        }
    };
    if available >= desired - max_unavailable {
        set_condition(
            &mut conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            false,
        );
    } else {
        set_condition(
            &mut conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            false,
        );
    }
    let deadline = d
        .pointer("/spec/progressDeadlineSeconds")
        .and_then(Value::as_i64);
    if let Some(deadline) = deadline {
        let complete =
            updated == desired && replicas == desired && available == desired && new_rs.is_some();
        let progressed = updated > i64_at(&old_status, "/updatedReplicas")
            || ready > i64_at(&old_status, "/readyReplicas")
            || available > i64_at(&old_status, "/availableReplicas")
            || (replicas - updated)
                < (i64_at(&old_status, "/replicas") - i64_at(&old_status, "/updatedReplicas"));
        if let Some((reason, message)) = &progress_reason {
            state.memory.progress.insert(uid.clone(), ctx.now);
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                reason,
                message,
                true,
            );
        }
        // As the real controller's syncRolloutStatus: once the Progressing reason is
        // `NewReplicaSetAvailable` and every pod belongs to the new ReplicaSet, progress is not
        // estimated any more (no `ReplicaSetUpdated`, no `ProgressDeadlineExceeded`), even when
        // the Deployment is then scaled up from 0 with pods that never become ready.
        let settled = replicas == updated
            && conditions
                .iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "NewReplicaSetAvailable");
        if paused {
            set_condition(
                &mut conditions,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused",
                false,
            );
        } else if settled {
            // Nothing to estimate: the rollout was complete.
        } else if complete {
            state.memory.progress.insert(uid.clone(), ctx.now);
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                &format!("ReplicaSet \"{new_rs_name}\" has successfully progressed."),
                false,
            );
        } else if progress_reason.is_none() && progressed {
            state.memory.progress.insert(uid.clone(), ctx.now);
            set_condition(
                &mut conditions,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                &format!("ReplicaSet \"{new_rs_name}\" is progressing."),
                true,
            );
        } else if progress_reason.is_none() {
            let since = *state.memory.progress.entry(uid.clone()).or_insert(ctx.now);
            let timed_out = ctx.now.saturating_sub(since).as_secs_f64() > deadline as f64;
            if timed_out {
                set_condition(
                    &mut conditions,
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    &format!("ReplicaSet \"{new_rs_name}\" has timed out progressing."),
                    false,
                );
            }
        }
    }
    conditions.sort_by_key(|c| if c["type"] == "Available" { 0 } else { 1 });
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "conditions": conditions,
    });
    let unavailable = (total_spec.max(desired) - available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    let mut next = d.clone();
    if let Some(rs) = &new_rs {
        next["metadata"]["annotations"][REVISION] = json!(revision(rs).to_string());
    }
    next["status"] = status;
    state.controller_write(next, MANAGER);
}
