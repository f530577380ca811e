//! The kubelet's part: pod status from the behaviour the test chose for the pod's image
//! (ready after a delay, never ready, crash looping, image pull failures), on simulated time.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::{str_at, Context, Mark, MarkKind, PodLife};
use crate::behaviour::Behaviour;
use crate::clock::timestamp;
use crate::resources::ResourceId;
use crate::store::State;

pub(super) fn reconcile(state: &mut State, ctx: &Context<'_>) {
    let id = ResourceId {
        group: String::new(),
        plural: "pods".into(),
    };
    let pods: Vec<Value> = state.list(&id, None).cloned().collect();
    let live: std::collections::HashSet<String> = pods
        .iter()
        .map(|p| str_at(p, "/metadata/uid").to_string())
        .collect();
    // Forget pods that are gone.
    let gone: Vec<String> = state
        .memory
        .pods
        .keys()
        .filter(|u| !live.contains(*u))
        .cloned()
        .collect();
    for uid in gone {
        state.memory.pods.remove(&uid);
    }
    for (i, pod) in pods.iter().enumerate() {
        let uid = str_at(pod, "/metadata/uid").to_string();
        let (behaviour, image) = ctx.behaviours.for_pod(pod);
        let namespace = str_at(pod, "/metadata/namespace").to_string();
        let name = str_at(pod, "/metadata/name").to_string();
        let mark = |what: MarkKind| Mark {
            at: SystemTime::now(),
            namespace: namespace.clone(),
            pod: name.clone(),
            image: image.clone(),
            what,
        };
        let mut new_marks = Vec::new();
        let life = state.memory.pods.entry(uid.clone()).or_insert_with(|| {
            new_marks.push(mark(MarkKind::Created));
            PodLife {
                created: ctx.now,
                created_at: timestamp(),
                ready: None,
                restarts: 0,
                last_restart_at: None,
                waiting: None,
            }
        });
        let elapsed = ctx.now.saturating_sub(life.created);
        let mut ready = false;
        let mut waiting: Option<(&str, String)> = None;
        let mut phase = "Running";
        let mut exited: Option<i32> = None;
        match &behaviour {
            Behaviour::Exits { after, code } => {
                if elapsed >= *after {
                    exited = Some(*code);
                    phase = if *code == 0 { "Succeeded" } else { "Failed" };
                }
            }
            Behaviour::Ready { after } => ready = elapsed >= *after,
            Behaviour::NeverReady => {}
            Behaviour::CrashLoop { restart_every } => {
                let period = (*restart_every).max(Duration::from_millis(1));
                let restarts = (elapsed.as_secs_f64() / period.as_secs_f64()) as u32;
                if restarts > life.restarts {
                    life.restarts = restarts;
                    life.last_restart_at = Some(timestamp());
                    new_marks.push(mark(MarkKind::Restarted(restarts)));
                }
                if life.restarts > 0 {
                    waiting = Some((
                        "CrashLoopBackOff",
                        format!("back-off 10s restarting failed container pod={name}_{namespace}"),
                    ));
                }
            }
            Behaviour::ImagePullBackOff => {
                phase = "Pending";
                let reason = if elapsed < Duration::from_secs(2) {
                    "ErrImagePull"
                } else {
                    "ImagePullBackOff"
                };
                waiting = Some((reason, format!("Back-off pulling image \"{image}\"")));
            }
            Behaviour::CreateContainerConfigError => {
                phase = "Pending";
                waiting = Some((
                    "CreateContainerConfigError",
                    "couldn't find key in ConfigMap or Secret".to_string(),
                ));
            }
        }
        if ready && life.ready.is_none() {
            life.ready = Some((ctx.now, timestamp()));
            new_marks.push(mark(MarkKind::Ready));
        }
        if !ready {
            life.ready = None;
        }
        let waiting_reason = waiting.as_ref().map(|(r, _)| r.to_string());
        if waiting_reason != life.waiting {
            if let Some(r) = &waiting_reason {
                new_marks.push(mark(MarkKind::Waiting(r.clone())));
            }
            life.waiting = waiting_reason;
        }
        let life = life.clone();
        state.memory.marks.extend(new_marks);

        let ready_str = if ready { "True" } else { "False" };
        let ready_since = life
            .ready
            .as_ref()
            .map(|(_, at)| at.clone())
            .unwrap_or_else(|| life.created_at.clone());
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                let state_json = match (&waiting, exited) {
                    (_, Some(code)) => json!({"terminated": {"exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "startedAt": life.created_at}}),
                    (Some((reason, message)), None) => json!({"waiting": {"reason": reason, "message": message}}),
                    (None, None) => json!({"running": {"startedAt": life.last_restart_at.clone().unwrap_or_else(|| life.created_at.clone())}}),
                };
                let mut s = json!({
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": if phase == "Pending" { json!("") } else { json!(format!("{}", str_at(c, "/image"))) },
                    "ready": ready,
                    "started": phase == "Running" && waiting.is_none() && exited.is_none(),
                    "restartCount": life.restarts,
                    "state": state_json,
                    "lastState": {},
                });
                if life.restarts > 0 {
                    s["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
                        "startedAt": life.created_at, "finishedAt": life.last_restart_at}});
                }
                s
            })
            .collect();
        let scheduled = &life.created_at;
        let status = json!({
            "phase": phase,
            "hostIP": "10.0.0.1",
            "podIP": format!("10.244.{}.{}", (i / 250) % 250, i % 250 + 2),
            "startTime": scheduled,
            "qosClass": "Burstable",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled},
                {"type": "Initialized", "status": "True", "lastTransitionTime": scheduled},
                {"type": "ContainersReady", "status": ready_str, "lastTransitionTime": ready_since},
                {"type": "Ready", "status": ready_str, "lastTransitionTime": ready_since},
            ],
            "containerStatuses": containers,
        });
        if pod["status"] != status {
            let mut next = pod.clone();
            next["status"] = status;
            state.controller_write(next, "kubelet");
        }
    }
}
