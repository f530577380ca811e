//! Rolling rollouts: the workload controllers replace pods; we watch each workload, its
//! ReplicaSets and its pods, and decide on every change (and on a short tick, for time-based
//! thresholds) with the pure verdicts of `health`.

use std::fmt::Debug;
use std::time::Duration;

use futures::stream::{self, BoxStream, FuturesUnordered};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::{Outcome, Settings, Workload, WorkloadKind};
use crate::health::{self, Failure, Reason, Verdict};
use crate::progress::Progress;

/// How often verdicts are re-evaluated without a change (for thresholds measured in time).
const TICK: Duration = Duration::from_millis(250);

type Events = BoxStream<'static, ()>;

fn watch<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, Events)
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, config))
        .default_backoff()
        .map(|_| ())
        .boxed();
    (reader, events)
}

fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().iter().map(|k| (**k).clone()).collect()
}

/// Waits until every workload is complete, one fails, or the timeout passes.
pub async fn wait(
    client: &Client,
    workloads: &[Workload],
    settings: &Settings,
    progress: &Progress,
) -> Outcome {
    if workloads.is_empty() {
        return Outcome::Complete;
    }
    let mut running: FuturesUnordered<_> = workloads
        .iter()
        .map(|w| watch_one(client.clone(), w.clone(), settings.thresholds, progress))
        .collect();
    let deadline = tokio::time::sleep(settings.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = running.next() => match next {
                None => return Outcome::Complete,
                Some(Ok(())) => {}
                Some(Err((id, failure))) => return Outcome::Failed { id, failure },
            },
            _ = &mut deadline => {
                let pending = progress.unfinished();
                let (id, message) = pending
                    .first()
                    .cloned()
                    .unwrap_or_else(|| (workloads[0].id.clone(), "no status yet".into()));
                let all: Vec<String> = pending.iter().map(|(id, m)| format!("{id}: {m}")).collect();
                return Outcome::Failed {
                    id,
                    failure: Failure {
                        reason: Reason::Timeout,
                        message: format!(
                            "not complete after {}s ({})",
                            settings.timeout.as_secs(),
                            if all.is_empty() { message } else { all.join("; ") }
                        ),
                    },
                };
            }
        }
    }
}

type WatchResult = Result<(), (crate::object::ObjectId, Failure)>;

async fn watch_one(
    client: Client,
    w: Workload,
    thresholds: health::Thresholds,
    progress: &Progress,
) -> WatchResult {
    let ns = w.id.namespace.clone();
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", w.id.name));
    let by_selector = watcher::Config::default().labels(&w.selector);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (pods, pod_events) = watch(pods_api, by_selector.clone());
    match w.kind {
        WorkloadKind::Deployment => {
            let (objects, object_events) =
                watch(Api::<Deployment>::namespaced(client.clone(), &ns), by_name);
            let (rss, rs_events) = watch(
                Api::<ReplicaSet>::namespaced(client.clone(), &ns),
                by_selector,
            );
            let key = ObjectRef::new(&w.id.name).within(&ns);
            let events = stream::select_all([object_events, rs_events, pod_events]).boxed();
            let deadline = std::sync::Mutex::new(health::Deadline::new(Timestamp::now()));
            drive(&w, events, progress, || {
                objects.get(&key).map(|d| {
                    let now = Timestamp::now();
                    match health::deployment(
                        &d,
                        &owned(&rss),
                        &owned(&pods),
                        w.generation,
                        now,
                        &thresholds,
                    ) {
                        Verdict::Progressing(p) => {
                            let exceeded = deadline
                                .lock()
                                .ok()
                                .and_then(|mut dl| dl.check(&d, w.generation, now));
                            match exceeded {
                                Some(f) => Verdict::Failed(f),
                                None => Verdict::Progressing(p),
                            }
                        }
                        other => other,
                    }
                })
            })
            .await
        }
        WorkloadKind::StatefulSet => {
            let (objects, object_events) =
                watch(Api::<StatefulSet>::namespaced(client.clone(), &ns), by_name);
            let key = ObjectRef::new(&w.id.name).within(&ns);
            let events = stream::select_all([object_events, pod_events]).boxed();
            drive(&w, events, progress, || {
                objects.get(&key).map(|s| {
                    health::statefulset(
                        &s,
                        &owned(&pods),
                        w.generation,
                        Timestamp::now(),
                        &thresholds,
                    )
                })
            })
            .await
        }
        WorkloadKind::DaemonSet => {
            let (objects, object_events) =
                watch(Api::<DaemonSet>::namespaced(client.clone(), &ns), by_name);
            let key = ObjectRef::new(&w.id.name).within(&ns);
            let events = stream::select_all([object_events, pod_events]).boxed();
            drive(&w, events, progress, || {
                objects.get(&key).map(|d| {
                    health::daemonset(
                        &d,
                        &owned(&pods),
                        w.generation,
                        Timestamp::now(),
                        &thresholds,
                    )
                })
            })
            .await
        }
    }
}

/// Re-evaluates on every event and tick until complete or failed.
async fn drive(
    w: &Workload,
    mut events: Events,
    progress: &Progress,
    evaluate: impl Fn() -> Option<Verdict>,
) -> WatchResult {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = false;
    loop {
        tokio::select! {
            e = events.next() => {
                if e.is_none() {
                    return Err((w.id.clone(), Failure { reason: Reason::Deleted, message: "the watch ended".into() }));
                }
            }
            _ = tick.tick() => {}
        }
        match evaluate() {
            None if seen => {
                return Err((
                    w.id.clone(),
                    Failure {
                        reason: Reason::Deleted,
                        message: format!("{} was deleted during the rollout", w.id),
                    },
                ))
            }
            None => {}
            Some(Verdict::Complete) => {
                progress.complete(&w.id);
                return Ok(());
            }
            Some(Verdict::Failed(f)) => return Err((w.id.clone(), f)),
            Some(Verdict::Progressing(p)) => {
                seen = true;
                progress.workload(&w.id, &p);
            }
        }
    }
}
