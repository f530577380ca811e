//! The ReplicaSet controller: as many pods as `spec.replicas`, removing not-ready and newest
//! pods first, and status counts of ready and available pods.

use serde_json::{json, Value};

use super::{
    create_pod, delete_pod, i64_at, is_available, is_ready, str_at, suffix, Context, MANAGER,
};
use crate::store::State;

pub(super) fn reconcile(state: &mut State, ctx: &Context<'_>, rs: &Value) {
    let namespace = str_at(rs, "/metadata/namespace").to_string();
    let name = str_at(rs, "/metadata/name").to_string();
    let uid = str_at(rs, "/metadata/uid").to_string();
    let desired = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let mut pods = state.owned("", "pods", &namespace, &uid);
    let count = pods.len() as i64;
    if count < desired {
        for _ in count..desired {
            let seq = state.memory.next();
            let pod_name = format!("{name}-{}", suffix(seq));
            create_pod(state, rs, &pod_name, &rs["spec"]["template"], &[], None);
        }
        pods = state.owned("", "pods", &namespace, &uid);
    } else if count > desired {
        // Not ready first, then the newest.
        pods.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(str_at(p, "/metadata/uid").to_string()),
            )
        });
        let excess = (count - desired) as usize;
        for p in pods.iter().take(excess) {
            delete_pod(state, p);
        }
        pods = state.owned("", "pods", &namespace, &uid);
    }
    let min_ready = i64_at(rs, "/spec/minReadySeconds");
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let available = pods
        .iter()
        .filter(|p| is_available(state, p, min_ready, ctx.now))
        .count();
    let mut next = rs.clone();
    next["status"] = json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": i64_at(rs, "/metadata/generation"),
    });
    state.controller_write(next, MANAGER);
}
