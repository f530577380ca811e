//! The DaemonSet controller: one pod per node, rolling updates within maxUnavailable (old
//! unavailable pods first), and the numbered status fields.

use serde_json::{json, Value};

use super::{
    create_pod, delete_pod, i64_at, is_available, is_ready, node_names, scaled, str_at, suffix,
    template_hash, Context, MANAGER,
};
use crate::store::State;

pub(super) fn reconcile(state: &mut State, ctx: &Context<'_>, ds: &Value) {
    let namespace = str_at(ds, "/metadata/namespace").to_string();
    let name = str_at(ds, "/metadata/name").to_string();
    let uid = str_at(ds, "/metadata/uid").to_string();
    let generation = i64_at(ds, "/metadata/generation");
    let template = ds["spec"]["template"].clone();
    let hash = template_hash(&template);
    let nodes = node_names(state);
    let desired = nodes.len() as i64;
    let min_ready = i64_at(ds, "/spec/minReadySeconds");
    let rolling = str_at(ds, "/spec/updateStrategy/type") != "OnDelete";
    let max_unavailable = scaled(
        ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
            .unwrap_or(&json!(1)),
        desired,
        true,
    )
    .max(1);

    let pods = state.owned("", "pods", &namespace, &uid);
    for node in &nodes {
        if !pods.iter().any(|p| str_at(p, "/spec/nodeName") == node) {
            let seq = state.memory.next();
            let pod_name = format!("{name}-{}", suffix(seq));
            create_pod(
                state,
                ds,
                &pod_name,
                &template,
                &[
                    ("controller-revision-hash", hash.clone()),
                    ("pod-template-generation", generation.to_string()),
                ],
                Some(node),
            );
        }
    }
    let pods = state.owned("", "pods", &namespace, &uid);
    if rolling {
        let old: Vec<&Value> = pods
            .iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") != hash)
            .collect();
        let unavailable = desired
            - pods
                .iter()
                .filter(|p| is_available(state, p, min_ready, ctx.now))
                .count() as i64;
        // Old pods that are not available go first: removing them costs nothing.
        let mut doomed: Vec<Value> = old
            .iter()
            .filter(|p| !is_available(state, p, min_ready, ctx.now))
            .map(|p| (*p).clone())
            .collect();
        let budget = (max_unavailable - unavailable).max(0) as usize;
        doomed.extend(
            old.iter()
                .filter(|p| is_available(state, p, min_ready, ctx.now))
                .take(budget)
                .map(|p| (*p).clone()),
        );
        for p in &doomed {
            delete_pod(state, p);
        }
    }
    let pods = state.owned("", "pods", &namespace, &uid);
    let available = pods
        .iter()
        .filter(|p| is_available(state, p, min_ready, ctx.now))
        .count() as i64;
    let mut next = ds.clone();
    next["status"] = json!({
        "observedGeneration": generation,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": pods.len(),
        "numberMisscheduled": 0,
        "numberReady": pods.iter().filter(|p| is_ready(p)).count(),
        "numberAvailable": available,
        "numberUnavailable": (desired - available).max(0),
        "updatedNumberScheduled": pods.iter().filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == hash).count(),
    });
    state.controller_write(next, MANAGER);
}
