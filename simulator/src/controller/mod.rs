//! The controllers: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs, the kubelet's
//! view of pods, CRDs and Namespaces. Each pass reads the store and writes what changed.

mod daemonset;
mod deployment;
mod job;
mod kubelet;
mod replicaset;
mod statefulset;

use std::time::Duration;

use serde_json::{json, Value};

use crate::behaviour::Behaviours;
use crate::clock::timestamp;
use crate::resources::{from_crd, ResourceId};
use crate::store::State;

pub use crate::memory::{suffix, Mark, MarkKind};
pub(crate) use crate::memory::{PodLife, ALPHABET};

pub(crate) const MANAGER: &str = "kube-controller-manager";

/// Everything a pass needs besides the state.
pub(crate) struct Context<'a> {
    pub now: Duration,
    pub behaviours: &'a Behaviours,
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for k in keys {
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                canonical(&map[k], out);
                out.push(',');
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for i in items {
                canonical(i, out);
                out.push(',');
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A stable hash of a pod template, encoded as Kubernetes encodes pod-template-hash.
pub fn template_hash(template: &Value) -> String {
    let mut text = String::new();
    canonical(template, &mut text);
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut x = u64::from(h);
    let mut s = String::new();
    loop {
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
        x /= ALPHABET.len() as u64;
        if x == 0 {
            break;
        }
    }
    s
}

pub(crate) fn i64_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An owner reference to `owner` marking it as the controller.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// `intOrString` against a total: percentages round up or down.
pub(crate) fn scaled(value: &Value, total: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let x = p * total;
                if round_up {
                    (x + 99) / 100
                } else {
                    x / 100
                }
            }
            None => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

pub(crate) fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Ready for at least `min_ready` (simulated).
pub(crate) fn is_available(state: &State, pod: &Value, min_ready: i64, now: Duration) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready <= 0 {
        return true;
    }
    let uid = str_at(pod, "/metadata/uid");
    state
        .memory
        .pods
        .get(uid)
        .and_then(|l| l.ready.as_ref())
        .is_some_and(|(at, _)| now.saturating_sub(*at) >= Duration::from_secs(min_ready as u64))
}

/// Creates a pod from a template.
pub(crate) fn create_pod(
    state: &mut State,
    owner: &Value,
    name: &str,
    template: &Value,
    extra_labels: &[(&str, String)],
    node: Option<&str>,
) {
    let namespace = str_at(owner, "/metadata/namespace").to_string();
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut spec = template["spec"].clone();
    let node = match node {
        Some(n) => n.to_string(),
        None => {
            let nodes = node_names(state);
            let i = state.memory.next() as usize;
            nodes
                .get(i % nodes.len().max(1))
                .cloned()
                .unwrap_or_else(|| "node-1".into())
        }
    };
    spec["nodeName"] = json!(node);
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [controller_ref(owner)],
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    });
    if let Some(a) = template["metadata"].get("annotations") {
        pod["metadata"]["annotations"] = a.clone();
    }
    state.controller_create(pod, MANAGER);
}

pub(crate) fn delete_pod(state: &mut State, pod: &Value) {
    let key = crate::store::Key::new(
        "",
        "pods",
        str_at(pod, "/metadata/namespace"),
        str_at(pod, "/metadata/name"),
    );
    state.remove(key, crate::store::Propagation::Background);
}

pub(crate) fn node_names(state: &State) -> Vec<String> {
    let id = ResourceId {
        group: String::new(),
        plural: "nodes".into(),
    };
    let mut names: Vec<String> = state
        .list(&id, None)
        .map(|n| str_at(n, "/metadata/name").to_string())
        .collect();
    names.sort();
    names
}

fn of_kind(state: &State, group: &str, plural: &str) -> Vec<Value> {
    let id = ResourceId {
        group: group.into(),
        plural: plural.into(),
    };
    state.list(&id, None).cloned().collect()
}

/// Registers established CRDs and marks them Established; marks namespaces Active.
fn crds_and_namespaces(state: &mut State) {
    for crd in of_kind(state, "apiextensions.k8s.io", "customresourcedefinitions") {
        let types = from_crd(&crd);
        state.register(types.clone());
        let established = crd
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            });
        let stored: Vec<&str> = types
            .first()
            .map(|t| vec![t.version.as_str()])
            .unwrap_or_default();
        if !established {
            let now = timestamp();
            let mut c = crd.clone();
            c["status"] = json!({
                "acceptedNames": crd["spec"]["names"],
                "storedVersions": stored,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            });
            state.controller_write(c, "kube-apiserver");
        }
    }
    for ns in of_kind(state, "", "namespaces") {
        if ns.pointer("/status/phase").is_none() {
            let mut n = ns.clone();
            n["status"] = json!({"phase": "Active"});
            state.controller_write(n, "kube-apiserver");
        }
    }
}

/// One pass of every controller.
pub(crate) fn pass(state: &mut State, ctx: &Context<'_>) {
    crds_and_namespaces(state);
    for d in of_kind(state, "apps", "deployments") {
        deployment::reconcile(state, ctx, &d);
    }
    for rs in of_kind(state, "apps", "replicasets") {
        replicaset::reconcile(state, ctx, &rs);
    }
    for sts in of_kind(state, "apps", "statefulsets") {
        statefulset::reconcile(state, ctx, &sts);
    }
    for ds in of_kind(state, "apps", "daemonsets") {
        daemonset::reconcile(state, ctx, &ds);
    }
    for job in of_kind(state, "batch", "jobs") {
        job::reconcile(state, ctx, &job);
    }
    kubelet::reconcile(state, ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_ignores_key_order() {
        let a = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}});
        let b = json!({"spec": {"x": 1}, "metadata": {"labels": {"b": "2", "a": "1"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&json!({"spec": {"x": 2}})));
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        assert_eq!(scaled(&json!("25%"), 3, true), 1);
        assert_eq!(scaled(&json!("25%"), 3, false), 0);
        assert_eq!(scaled(&json!(2), 3, false), 2);
    }

    #[test]
    fn suffixes_use_the_safe_alphabet() {
        let s = suffix(42);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(suffix(1), suffix(2));
    }
}
