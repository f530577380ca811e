#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The simulator as a real kube-rs client sees it.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::discovery::{self, Discovery};
use kube::runtime::wait::{await_condition, Condition};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use simulator::{Behaviour, Options, Simulator};

fn deployment(name: &str, image: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": 10,
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}
        }
    })
}

fn fast() -> Simulator {
    Simulator::start_with(Options {
        speed: 20.0,
        ..Options::default()
    })
    .unwrap()
}

fn complete(generation: i64) -> impl Condition<Deployment> {
    move |d: Option<&Deployment>| {
        let Some(d) = d else { return false };
        let spec = d.spec.replicas.unwrap_or(1);
        let s = d.status.clone().unwrap_or_default();
        s.observed_generation.unwrap_or(0) >= generation
            && s.updated_replicas.unwrap_or(0) == spec
            && s.available_replicas.unwrap_or(0) == spec
            && s.replicas.unwrap_or(0) == spec
    }
}

#[tokio::test]
async fn discovery_finds_built_in_and_crd_kinds() {
    let sim = fast();
    let client = sim.client().unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
        .unwrap();
    assert_eq!(ar.plural, "deployments");
    assert!(caps.scope == discovery::Scope::Namespaced);
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));

    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &discovery::pinned_kind(
            &client,
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        )
        .await
        .unwrap()
        .0,
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                 "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = |o: Option<&DynamicObject>| {
        o.and_then(|o| o.data.pointer("/status/conditions"))
            .and_then(|c| c.as_array())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(crds.clone(), "widgets.example.com", established),
    )
    .await
    .unwrap()
    .unwrap();
    let (ar, _) = discovery::pinned_kind(
        &client,
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
    )
    .await
    .unwrap();
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})).unwrap();
    widgets
        .patch("w", &PatchParams::apply("test"), &Patch::Apply(&w))
        .await
        .unwrap();
    assert_eq!(widgets.get("w").await.unwrap().data["spec"]["size"], 1);
}

#[tokio::test]
async fn deployment_rolls_out_and_updates_with_watch_driven_waits() {
    let sim = fast();
    let client = sim.client().unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(deployment("api", "app:1", 3)).unwrap();
    let applied = api
        .patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap();
    let generation = applied.metadata.generation.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api.clone(), "api", complete(generation)),
    )
    .await
    .expect("first rollout completes")
    .unwrap();
    let live = api.get("api").await.unwrap();
    let status = live.status.unwrap();
    let progressing = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        live.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "1"
    );

    // An update: a second ReplicaSet, revision 2, never more than 4 pods (maxSurge 1).
    let d2: Deployment = serde_json::from_value(deployment("api", "app:2", 3)).unwrap();
    let applied = api
        .patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d2))
        .await
        .unwrap();
    assert_eq!(applied.metadata.generation, Some(generation + 1));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let wait = await_condition(api.clone(), "api", complete(generation + 1));
    let mut max_pods = 0;
    let watch = async {
        loop {
            let n = pods
                .list(&ListParams::default().labels("app=api"))
                .await
                .unwrap()
                .items
                .len();
            max_pods = max_pods.max(n);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(10), wait) => { r.expect("update completes").unwrap(); }
        _ = watch => {}
    }
    assert!(
        max_pods <= 4,
        "maxSurge 1 over 3 replicas allows 4 pods, saw {max_pods}"
    );
    let rss: Api<ReplicaSet> = Api::namespaced(client, "default");
    let list = rss.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 2);
    let revisions: Vec<(String, i32)> = list
        .iter()
        .map(|rs| {
            (
                rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"]
                    .clone(),
                rs.spec.replicas.unwrap(),
            )
        })
        .collect();
    assert!(
        revisions.contains(&("2".into(), 3)) && revisions.contains(&("1".into(), 0)),
        "{revisions:?}"
    );
}

#[tokio::test]
async fn crash_looping_pods_restart_and_the_deadline_passes() {
    let sim = fast();
    sim.set_behaviour(
        "app:bad",
        Behaviour::CrashLoop {
            restart_every: Duration::from_secs(2),
        },
    );
    let client = sim.client().unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(deployment("api", "app:bad", 2)).unwrap();
    api.patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap();
    let deadline = |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                        && c.status.as_deref() == Some("False")
                })
            })
    };
    // 10 simulated seconds at 20x: about half a second.
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(api, "api", deadline),
    )
    .await
    .expect("deadline exceeded")
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = pods
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .remove(0);
    let cs = &pod.status.unwrap().container_statuses.unwrap()[0];
    assert!(cs.restart_count >= 2);
    assert_eq!(
        cs.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("CrashLoopBackOff")
    );
}

#[tokio::test]
async fn statefulset_and_daemonset_status() {
    let sim = fast();
    let client = sim.client().unwrap();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let mut s = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}}}});
    sts.patch("db", &PatchParams::apply("executor"), &Patch::Apply(&s))
        .await
        .unwrap();
    let settled = |rev_changed: bool| {
        move |o: Option<&StatefulSet>| {
            let Some(st) = o.and_then(|o| o.status.as_ref()) else {
                return false;
            };
            st.ready_replicas == Some(3)
                && st.updated_replicas == Some(3)
                && st.current_revision == st.update_revision
                && (!rev_changed || st.observed_generation == Some(2))
        }
    };
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(sts.clone(), "db", settled(false)),
    )
    .await
    .unwrap()
    .unwrap();
    let first = sts
        .get("db")
        .await
        .unwrap()
        .status
        .unwrap()
        .update_revision
        .unwrap();
    s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("db:2");
    sts.patch("db", &PatchParams::apply("executor"), &Patch::Apply(&s))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(sts.clone(), "db", settled(true)),
    )
    .await
    .unwrap()
    .unwrap();
    let status = sts.get("db").await.unwrap().status.unwrap();
    assert_ne!(status.current_revision.unwrap(), first);

    let ds: Api<DaemonSet> = Api::namespaced(client, "default");
    let d = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}}});
    ds.patch("agent", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap();
    let ready = |o: Option<&DaemonSet>| {
        o.and_then(|o| o.status.as_ref()).is_some_and(|s| {
            s.desired_number_scheduled == 3
                && s.number_available == Some(3)
                && s.updated_number_scheduled == Some(3)
        })
    };
    tokio::time::timeout(Duration::from_secs(10), await_condition(ds, "agent", ready))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn apply_conflicts_dry_run_and_optimistic_concurrency() {
    let sim = fast();
    let client = sim.client().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let before = sim.resource_version();
    cms.patch(
        "c",
        &PatchParams::apply("executor").dry_run(),
        &Patch::Apply(&cm),
    )
    .await
    .unwrap();
    assert_eq!(sim.resource_version(), before, "dry run writes nothing");
    cms.patch("c", &PatchParams::apply("executor"), &Patch::Apply(&cm))
        .await
        .unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
    let err = cms
        .patch(
            "c",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(&other),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(s.message.contains("executor"), "{}", s.message);
        }
        e => panic!("{e}"),
    }
    cms.patch(
        "c",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();

    let leases: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 5}})).unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut first = created.clone();
    first.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("l", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let err = leases
        .replace("l", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
    leases.delete("l", &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn watcher_resumes_and_sees_changes() {
    let sim = Simulator::start_with(Options {
        bookmark_interval: Duration::from_millis(50),
        ..Options::default()
    })
    .unwrap();
    let client = sim.client().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let stream = watcher(
        cms.clone(),
        watcher::Config::default().labels("watched=yes"),
    )
    .applied_objects()
    .boxed();
    let writer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..3 {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("c{i}"), "labels": {"watched": if i == 1 { "no" } else { "yes" }}}});
            cms.patch(
                &format!("c{i}"),
                &PatchParams::apply("t"),
                &Patch::Apply(&cm),
            )
            .await
            .unwrap();
        }
        futures::future::pending::<()>().await;
    };
    let seen = async {
        let names: Vec<String> = stream
            .take(2)
            .map_ok(|cm| cm.metadata.name.unwrap())
            .try_collect()
            .await
            .unwrap();
        names
    };
    let names = tokio::select! {
        n = tokio::time::timeout(Duration::from_secs(5), seen) => n.unwrap(),
        _ = writer => unreachable!(),
    };
    assert_eq!(names, vec!["c0".to_string(), "c2".to_string()]);
}

fn job(name: &str, image: &str, backoff_limit: i32) -> serde_json::Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "run", "image": image}]}}
        }
    })
}

fn job_condition(job: &k8s_openapi::api::batch::v1::Job) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.clone())
}

#[tokio::test]
async fn jobs_complete_or_fail_by_their_pods_exit_codes() {
    use k8s_openapi::api::batch::v1::Job;
    let sim = fast();
    sim.set_behaviour(
        "migrate:ok",
        Behaviour::Exits {
            after: Duration::from_secs(2),
            code: 0,
        },
    );
    sim.set_behaviour(
        "migrate:bad",
        Behaviour::Exits {
            after: Duration::from_secs(1),
            code: 1,
        },
    );
    let client = sim.client().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pp = PatchParams::apply("test");
    for (name, image, limit) in [("ok", "migrate:ok", 0), ("bad", "migrate:bad", 1)] {
        jobs.patch(name, &pp, &Patch::Apply(job(name, image, limit)))
            .await
            .unwrap();
    }
    let finished = |j: Option<&Job>| j.and_then(job_condition).is_some();
    let ok = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(jobs.clone(), "ok", finished),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(job_condition(&ok).as_deref(), Some("Complete"));
    assert_eq!(ok.status.as_ref().unwrap().succeeded, Some(1));
    let bad = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(jobs.clone(), "bad", finished),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(job_condition(&bad).as_deref(), Some("Failed"));
    // backoffLimit 1: a second pod after the first failure, then the Job fails.
    assert_eq!(bad.status.as_ref().unwrap().failed, Some(2));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let bad_pods = pods
        .list(&ListParams::default().labels("job-name=bad"))
        .await
        .unwrap();
    assert_eq!(bad_pods.items.len(), 2);
    for p in &bad_pods.items {
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Failed"));
    }
}

#[tokio::test]
async fn core_events_are_created_with_generated_names_and_listed() {
    use k8s_openapi::api::core::v1::{Event, ObjectReference};
    let sim = fast();
    let client = sim.client().unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = |reason: &str| Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("api.".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some("api".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        type_: Some("Normal".into()),
        message: Some("deployed".into()),
        ..Default::default()
    };
    let first = events
        .create(&PostParams::default(), &event("ReleaseDeployed"))
        .await
        .unwrap();
    let second = events
        .create(&PostParams::default(), &event("RolledBack"))
        .await
        .unwrap();
    let (a, b) = (first.metadata.name.unwrap(), second.metadata.name.unwrap());
    assert!(
        a.starts_with("api.") && b.starts_with("api.") && a != b,
        "{a} {b}"
    );
    let listed = events.list(&ListParams::default()).await.unwrap();
    let reasons: Vec<Option<String>> = listed.items.iter().map(|e| e.reason.clone()).collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.contains(&Some("RolledBack".into())));
    assert_eq!(
        listed.items[0].involved_object.kind.as_deref(),
        Some("Deployment")
    );
}

fn progressing(d: &Deployment) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .map(|c| {
            (
                c.status.clone().unwrap_or_default(),
                c.reason.clone().unwrap_or_default(),
            )
        })
}

/// As the real Deployment controller: a Deployment scaled up from 0 reuses its ReplicaSet and
/// keeps `Progressing=True, NewReplicaSetAvailable`, and then never reports
/// `ProgressDeadlineExceeded`, even with pods that never become ready; a new template gets
/// `NewReplicaSetCreated` and does time out.
#[tokio::test]
async fn a_reused_replica_set_keeps_new_replica_set_available_and_never_times_out() {
    let sim = fast();
    sim.set_behaviour("app:stuck", Behaviour::NeverReady);
    let client = sim.client().unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let apply = |replicas: i32, image: &'static str| {
        let api = api.clone();
        async move {
            let mut d = deployment("api", image, replicas);
            d["spec"]["progressDeadlineSeconds"] = json!(3);
            api.patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
                .await
                .unwrap()
                .metadata
                .generation
                .unwrap()
        }
    };
    let generation = apply(0, "app:stuck").await;
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(api.clone(), "api", complete(generation)),
    )
    .await
    .unwrap()
    .unwrap();
    let d = api.get("api").await.unwrap();
    assert_eq!(
        progressing(&d),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    // Scaled up from 0: the same ReplicaSet, pods that never become ready.
    let generation = apply(2, "app:stuck").await;
    // 3 simulated seconds are 0.15 s at 20x: wait for 10 of them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = api.get("api").await.unwrap();
    let status = d.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(generation));
    assert_eq!(status.updated_replicas, Some(2));
    assert_eq!(status.available_replicas.unwrap_or(0), 0);
    assert_eq!(
        progressing(&d),
        Some(("True".into(), "NewReplicaSetAvailable".into())),
        "no deadline on a reused ReplicaSet"
    );
    let rss: Api<ReplicaSet> = Api::namespaced(client, "default");
    assert_eq!(
        rss.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    // A new template is a new rollout: NewReplicaSetCreated, then the deadline.
    sim.set_behaviour("app:stuck-too", Behaviour::NeverReady);
    apply(2, "app:stuck-too").await;
    let timed_out = |d: Option<&Deployment>| {
        d.and_then(progressing)
            == Some(("False".to_string(), "ProgressDeadlineExceeded".to_string()))
    };
    tokio::time::timeout(
        Duration::from_secs(5),
        await_condition(api, "api", timed_out),
    )
    .await
    .expect("deadline exceeded")
    .unwrap();
}

/// A merge patch without `fieldManager` is recorded under the user agent's product, else
/// `unknown`, as the API server does; a later server-side apply of another value conflicts
/// with it.
#[tokio::test]
async fn a_merge_patch_without_a_field_manager_owns_its_fields_and_conflicts() {
    let sim = fast();
    let client = sim.client().unwrap();
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let d = deployment("api", "app:1", 2);
    api.patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap();
    let patched = api
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let owners: Vec<(String, String)> = patched
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter(|e| {
            e.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
        })
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(owners, [("unknown".to_string(), "Update".to_string())]);
    let err = api
        .patch(
            "api",
            &PatchParams::apply("executor").dry_run(),
            &Patch::Apply(&d),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(
                s.message,
                "Apply failed with 1 conflict: conflict with \"unknown\" using apps/v1: .spec.replicas"
            );
        }
        e => panic!("{e}"),
    }
}

/// With `apply_requires_port_protocol` (Kubernetes before 1.21), server-side apply refuses
/// a port without `protocol`, naming the list and the entry; other writes are not affected.
#[tokio::test]
async fn apply_refuses_ports_without_protocol_as_kubernetes_1_20() {
    let sim = Simulator::start_with(Options {
        apply_requires_port_protocol: true,
        ..Options::default()
    })
    .unwrap();
    let client = sim.client().unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("api", "app:1", 1);
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
    let err = api
        .patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 500);
            assert_eq!(
                s.message,
                "failed to create typed patch object: .spec.template.spec.containers[name=\"app\"].ports: element 0: associative list with keys has an element that omits key field \"protocol\" (and doesn't have default value)"
            );
        }
        e => panic!("{e}"),
    }
    d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] = json!("TCP");
    api.patch("api", &PatchParams::apply("executor"), &Patch::Apply(&d))
        .await
        .unwrap();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client, "default");
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                     "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}});
    let err = services
        .patch("api", &PatchParams::apply("executor"), &Patch::Apply(&svc))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.message.contains(".spec.ports: element 0")),
        "{err}"
    );
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(svc).unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
}
