//! The StatefulSet controller: pods `<name>-<ordinal>` created in order (OrderedReady waits
//! for each to be ready), rolling updates from the highest ordinal down to the partition one
//! pod at a time, and status with currentRevision/updateRevision.

use serde_json::{json, Value};

use super::{
    create_pod, delete_pod, i64_at, is_available, is_ready, str_at, template_hash, Context, MANAGER,
};
use crate::store::State;

const REVISION_LABEL: &str = "controller-revision-hash";

pub(super) fn reconcile(state: &mut State, ctx: &Context<'_>, sts: &Value) {
    let namespace = str_at(sts, "/metadata/namespace").to_string();
    let name = str_at(sts, "/metadata/name").to_string();
    let uid = str_at(sts, "/metadata/uid").to_string();
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ordered = str_at(sts, "/spec/podManagementPolicy") != "Parallel";
    let rolling = str_at(sts, "/spec/updateStrategy/type") != "OnDelete";
    let partition = i64_at(sts, "/spec/updateStrategy/rollingUpdate/partition");
    let template = sts["spec"]["template"].clone();
    let update_revision = format!("{name}-{}", template_hash(&template));
    let current_revision = match str_at(sts, "/status/currentRevision") {
        "" => update_revision.clone(),
        r => r.to_string(),
    };
    let ordinal = |p: &Value| -> i64 {
        str_at(p, "/metadata/name")
            .rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .unwrap_or(-1)
    };
    let mut pods = state.owned("", "pods", &namespace, &uid);
    pods.sort_by_key(ordinal);

    // Scale down from the highest ordinal.
    let extra: Vec<Value> = pods
        .iter()
        .filter(|p| ordinal(p) >= replicas)
        .cloned()
        .collect();
    if let Some(p) = extra.last() {
        if !ordered || pods.iter().filter(|q| ordinal(q) < replicas).all(is_ready) {
            delete_pod(state, p);
        }
    }
    // Create missing pods in order.
    for i in 0..replicas {
        if pods.iter().any(|p| ordinal(p) == i) {
            continue;
        }
        if ordered && pods.iter().filter(|p| ordinal(p) < i).any(|p| !is_ready(p)) {
            break;
        }
        let revision = if i < partition {
            current_revision.clone()
        } else {
            update_revision.clone()
        };
        // Pods at the current revision are made from the template they were made from; the
        // simulator keeps only the latest template, so older pods differ in their label only.
        let pod_name = format!("{name}-{i}");
        create_pod(
            state,
            sts,
            &pod_name,
            &template,
            &[
                (REVISION_LABEL, revision),
                ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ],
            None,
        );
        if ordered {
            break;
        }
    }
    pods = state.owned("", "pods", &namespace, &uid);
    pods.sort_by_key(ordinal);
    // Rolling update: the highest ordinal not at the update revision, once all pods are ready.
    if rolling && pods.len() as i64 == replicas && pods.iter().all(is_ready) {
        if let Some(p) = pods.iter().rev().find(|p| {
            ordinal(p) >= partition
                && str_at(p, "/metadata/labels/controller-revision-hash") != update_revision
        }) {
            delete_pod(state, p);
            pods = state.owned("", "pods", &namespace, &uid);
        }
    }
    let min_ready = i64_at(sts, "/spec/minReadySeconds");
    let at = |rev: &str| {
        pods.iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == rev)
            .count() as i64
    };
    let updated = at(&update_revision);
    let (current_rev, current) = if updated == replicas && pods.len() as i64 == replicas {
        (update_revision.clone(), updated)
    } else {
        (current_revision.clone(), at(&current_revision))
    };
    let mut next = sts.clone();
    next["status"] = json!({
        "observedGeneration": i64_at(sts, "/metadata/generation"),
        "replicas": pods.len(),
        "readyReplicas": pods.iter().filter(|p| is_ready(p)).count(),
        "availableReplicas": pods.iter().filter(|p| is_available(state, p, min_ready, ctx.now)).count(),
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_rev,
        "updateRevision": update_revision,
        "collisionCount": 0,
    });
    state.controller_write(next, MANAGER);
}
