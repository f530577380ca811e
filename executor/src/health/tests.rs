//! Verdicts over hand-built Deployment, StatefulSet, DaemonSet and Pod states, including stale
//! conditions and observedGeneration lag.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::*;

fn now() -> Timestamp {
    "2030-01-01T00:10:00Z".parse().unwrap()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn deploy(
    generation: i64,
    observed: i64,
    counts: (i32, i32, i32),
    conditions: Value,
) -> Deployment {
    let (replicas, updated, available) = counts;
    from(json!({
        "metadata": {"name": "api", "namespace": "shop", "uid": "d-1", "generation": generation,
                     "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": []}}},
        "status": {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                   "readyReplicas": available, "availableReplicas": available, "conditions": conditions}
    }))
}

fn replica_sets() -> Vec<ReplicaSet> {
    vec![
        from(
            json!({"metadata": {"name": "api-old", "labels": {"pod-template-hash": "old"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "d-1"}]}}),
        ),
        from(
            json!({"metadata": {"name": "api-new", "labels": {"pod-template-hash": "new"},
            "annotations": {"deployment.kubernetes.io/revision": "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "d-1"}]}}),
        ),
    ]
}

fn pod(name: &str, labels: Value, started: &str, waiting: Option<&str>, restarts: i32) -> Pod {
    let state = match waiting {
        Some(reason) => json!({"waiting": {"reason": reason, "message": "details"}}),
        None => json!({"running": {"startedAt": started}}),
    };
    from(json!({
        "metadata": {"name": name, "labels": labels, "creationTimestamp": started},
        "status": {"phase": "Running", "startTime": started,
                   "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false,
                                          "restartCount": restarts, "state": state}]}
    }))
}

fn progressing(reason: &str, status: &str) -> Value {
    json!([{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
           {"type": "Progressing", "status": status, "reason": reason, "message": format!("{reason} message")}])
}

const T: Thresholds = Thresholds {
    max_restarts: 3,
    stuck_after: Duration::from_secs(60),
};

#[test]
fn complete_when_observed_and_all_updated_and_available() {
    let d = deploy(
        2,
        2,
        (3, 3, 3),
        progressing("NewReplicaSetAvailable", "True"),
    );
    assert_eq!(
        deployment(&d, &replica_sets(), &[], 2, now(), &T),
        Verdict::Complete
    );
}

#[test]
fn observed_generation_lag_is_progressing_whatever_the_counts_and_conditions_say() {
    // The status still describes generation 1, fully rolled out.
    let d = deploy(
        2,
        1,
        (3, 3, 3),
        progressing("NewReplicaSetAvailable", "True"),
    );
    let v = deployment(&d, &replica_sets(), &[], 2, now(), &T);
    assert!(
        matches!(&v, Verdict::Progressing(p) if p.message.contains("observe generation 2")),
        "{v:?}"
    );
}

#[test]
fn our_generation_counts_even_if_the_object_read_is_older() {
    // A watch event from before our apply: metadata.generation 1, but we applied 2.
    let d = deploy(
        1,
        1,
        (3, 3, 3),
        progressing("NewReplicaSetAvailable", "True"),
    );
    assert!(matches!(
        deployment(&d, &replica_sets(), &[], 2, now(), &T),
        Verdict::Progressing(_)
    ));
}

#[test]
fn a_deadline_from_an_older_generation_is_not_our_failure() {
    let d = deploy(
        3,
        2,
        (3, 1, 2),
        progressing("ProgressDeadlineExceeded", "False"),
    );
    assert!(matches!(
        deployment(&d, &replica_sets(), &[], 3, now(), &T),
        Verdict::Progressing(_)
    ));
}

#[test]
fn a_current_deadline_fails() {
    let d = deploy(
        2,
        2,
        (4, 1, 3),
        progressing("ProgressDeadlineExceeded", "False"),
    );
    match deployment(&d, &replica_sets(), &[], 2, now(), &T) {
        Verdict::Failed(f) => assert_eq!(f.reason, Reason::ProgressDeadlineExceeded),
        v => panic!("{v:?}"),
    }
}

#[test]
fn a_stale_available_condition_does_not_complete_while_old_pods_remain() {
    // Updated and available match, but an old pod still runs.
    let d = deploy(2, 2, (4, 3, 3), progressing("ReplicaSetUpdated", "True"));
    match deployment(&d, &replica_sets(), &[], 2, now(), &T) {
        Verdict::Progressing(p) => assert!(p.message.contains("1 old"), "{}", p.message),
        v => panic!("{v:?}"),
    }
}

#[test]
fn crash_looping_new_pods_fail_at_the_restart_threshold_and_old_pods_do_not_count() {
    let d = deploy(2, 2, (4, 1, 3), progressing("ReplicaSetUpdated", "True"));
    let started = "2030-01-01T00:09:00Z";
    let old_bad = pod(
        "api-old-a",
        json!({"pod-template-hash": "old"}),
        started,
        Some("CrashLoopBackOff"),
        9,
    );
    let new_two = pod(
        "api-new-a",
        json!({"pod-template-hash": "new"}),
        started,
        Some("CrashLoopBackOff"),
        2,
    );
    assert!(matches!(
        deployment(
            &d,
            &replica_sets(),
            &[old_bad.clone(), new_two],
            2,
            now(),
            &T
        ),
        Verdict::Progressing(_)
    ));
    let new_three = pod(
        "api-new-a",
        json!({"pod-template-hash": "new"}),
        started,
        Some("CrashLoopBackOff"),
        3,
    );
    match deployment(&d, &replica_sets(), &[old_bad, new_three], 2, now(), &T) {
        Verdict::Failed(f) => {
            assert_eq!(f.reason, Reason::CrashLoopBackOff);
            assert!(
                f.message.contains("api-new-a") && f.message.contains("3 restarts"),
                "{}",
                f.message
            );
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn image_pull_failures_fail_once_stuck_long_enough() {
    let young = pod(
        "p",
        json!({}),
        "2030-01-01T00:09:30Z",
        Some("ImagePullBackOff"),
        0,
    );
    assert_eq!(pod_failure(&young, now(), &T), None);
    let old = pod(
        "p",
        json!({}),
        "2030-01-01T00:08:00Z",
        Some("ErrImagePull"),
        0,
    );
    assert_eq!(
        pod_failure(&old, now(), &T).unwrap().reason,
        Reason::ImagePullBackOff
    );
    let invalid = pod(
        "p",
        json!({}),
        "2030-01-01T00:09:59Z",
        Some("InvalidImageName"),
        0,
    );
    assert_eq!(
        pod_failure(&invalid, now(), &T).unwrap().reason,
        Reason::ImagePullBackOff
    );
    let config = pod(
        "p",
        json!({}),
        "2030-01-01T00:08:00Z",
        Some("CreateContainerConfigError"),
        0,
    );
    assert_eq!(
        pod_failure(&config, now(), &T).unwrap().reason,
        Reason::CreateContainerConfigError
    );
    let fine = pod("p", json!({}), "2030-01-01T00:00:00Z", None, 0);
    assert_eq!(pod_failure(&fine, now(), &T), None);
}

fn sts(observed: i64, partition: i32, status: Value) -> StatefulSet {
    let mut s = json!({
        "metadata": {"name": "db", "generation": 2},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
        "status": status,
    });
    s["status"]["observedGeneration"] = json!(observed);
    from(s)
}

#[test]
fn statefulset_waits_for_revisions_to_agree() {
    let rolling = sts(
        2,
        0,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "db-1", "updateRevision": "db-2"}),
    );
    assert!(matches!(
        statefulset(&rolling, &[], 2, now(), &T),
        Verdict::Progressing(_)
    ));
    let done = sts(
        2,
        0,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "db-2", "updateRevision": "db-2"}),
    );
    assert_eq!(statefulset(&done, &[], 2, now(), &T), Verdict::Complete);
    let lagging = sts(
        1,
        0,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3,
        "currentRevision": "db-2", "updateRevision": "db-2"}),
    );
    assert!(matches!(
        statefulset(&lagging, &[], 2, now(), &T),
        Verdict::Progressing(_)
    ));
}

#[test]
fn statefulset_partition_completes_when_the_pods_above_it_are_updated() {
    let partial = sts(
        2,
        2,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 1,
        "currentRevision": "db-1", "updateRevision": "db-2"}),
    );
    assert_eq!(statefulset(&partial, &[], 2, now(), &T), Verdict::Complete);
    let not_yet = sts(
        2,
        1,
        json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 1,
        "currentRevision": "db-1", "updateRevision": "db-2"}),
    );
    assert!(matches!(
        statefulset(&not_yet, &[], 2, now(), &T),
        Verdict::Progressing(_)
    ));
}

#[test]
fn statefulset_fails_on_pods_of_the_update_revision() {
    let s = sts(
        2,
        0,
        json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1,
        "currentRevision": "db-1", "updateRevision": "db-2"}),
    );
    let bad = pod(
        "db-2",
        json!({"controller-revision-hash": "db-2"}),
        "2030-01-01T00:09:00Z",
        Some("CrashLoopBackOff"),
        4,
    );
    let old = pod(
        "db-1",
        json!({"controller-revision-hash": "db-1"}),
        "2030-01-01T00:09:00Z",
        Some("CrashLoopBackOff"),
        4,
    );
    assert!(matches!(
        statefulset(&s, std::slice::from_ref(&old), 2, now(), &T),
        Verdict::Progressing(_)
    ));
    assert!(matches!(
        statefulset(&s, &[old, bad], 2, now(), &T),
        Verdict::Failed(_)
    ));
}

#[test]
fn daemonset_by_updated_and_available_numbers() {
    let ds = |observed: i64, updated: i32, available: i32| -> DaemonSet {
        from(json!({"metadata": {"name": "agent", "generation": 4},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {}},
            "status": {"observedGeneration": observed, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                       "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available,
                       "updatedNumberScheduled": updated}}))
    };
    assert_eq!(
        daemonset(&ds(4, 3, 3), &[], 4, now(), &T),
        Verdict::Complete
    );
    assert!(matches!(
        daemonset(&ds(4, 2, 3), &[], 4, now(), &T),
        Verdict::Progressing(_)
    ));
    assert!(matches!(
        daemonset(&ds(3, 3, 3), &[], 4, now(), &T),
        Verdict::Progressing(_)
    ));
    let bad = pod(
        "agent-x",
        json!({"pod-template-generation": "4"}),
        "2030-01-01T00:00:00Z",
        Some("ImagePullBackOff"),
        0,
    );
    assert!(matches!(
        daemonset(&ds(4, 1, 2), &[bad], 4, now(), &T),
        Verdict::Failed(_)
    ));
}

fn with_deadline(mut d: Deployment, seconds: i32) -> Deployment {
    d.spec.progress_deadline_seconds = Some(seconds);
    d
}

fn at(seconds: i64) -> Timestamp {
    now() + jiff::SignedDuration::from_secs(seconds)
}

#[test]
fn the_executor_enforces_the_deadline_when_the_controller_keeps_new_replica_set_available() {
    // A color scaled up from 0 reusing its ReplicaSet: the controller keeps the old
    // `NewReplicaSetAvailable` and never reports a deadline; the pods never become ready.
    let d = with_deadline(
        deploy(
            4,
            4,
            (3, 3, 0),
            progressing("NewReplicaSetAvailable", "True"),
        ),
        30,
    );
    let mut deadline = Deadline::new(now());
    assert!(matches!(
        deployment(&d, &replica_sets(), &[], 4, at(31), &T),
        Verdict::Progressing(_)
    ));
    assert_eq!(deadline.check(&d, 4, at(10)), None);
    assert_eq!(deadline.check(&d, 4, at(30)), None);
    let f = deadline.check(&d, 4, at(31)).expect("deadline passed");
    assert_eq!(f.reason, Reason::ProgressDeadlineExceeded);
    assert!(f.message.contains("30s"), "{}", f.message);
    assert!(
        f.message
            .contains("Progressing=True NewReplicaSetAvailable"),
        "{}",
        f.message
    );
}

#[test]
fn progress_restarts_the_executors_deadline() {
    let slow = |available| {
        with_deadline(
            deploy(
                4,
                4,
                (3, 3, available),
                progressing("ReplicaSetUpdated", "True"),
            ),
            30,
        )
    };
    let mut deadline = Deadline::new(now());
    assert_eq!(deadline.check(&slow(0), 4, at(5)), None);
    // One more pod available at 25s: the clock starts again.
    assert_eq!(deadline.check(&slow(1), 4, at(25)), None);
    assert_eq!(deadline.check(&slow(1), 4, at(50)), None);
    assert!(deadline.check(&slow(1), 4, at(56)).is_some());
    // Without progressDeadlineSeconds (never defaulted): no deadline of its own.
    let mut none = Deadline::new(now());
    let mut d = slow(0);
    d.spec.progress_deadline_seconds = None;
    assert_eq!(none.check(&d, 4, at(10_000)), None);
    // A status of an older generation is not progress, and not yet ours.
    let mut lag = Deadline::new(now());
    let old = with_deadline(
        deploy(5, 4, (3, 3, 3), progressing("ReplicaSetUpdated", "True")),
        30,
    );
    assert_eq!(lag.check(&old, 5, at(10)), None);
    assert!(lag.check(&old, 5, at(31)).is_some());
}
