#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The executor's end-to-end scenarios, written once and run on two lanes: `simulator::*`
//! against the in-repository simulator (as Kubernetes 1.20 applies: ports need `protocol`),
//! and `cluster::*` against the real cluster of `KUBECONFIG` (ignored by default):
//!
//! ```sh
//! KUBECONFIG=$HOME/.cache/realcluster/kubeconfig \
//!   cargo test -p executor --test lane cluster:: -- --ignored --test-threads 2
//! ```
//!
//! Both lanes run in real time; every scenario has a namespace of its own.

use std::time::{Duration, Instant};

mod support;

use support::image;
use support::lane::{blue_green, rolling, Fault, Lane};

const BLUE_GREEN: &[&str] = &["--strategy", "blue-green", "--scale-down-delay", "1s"];

fn bg<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    [BLUE_GREEN, extra].concat()
}

fn s(entries: &[(u64, &str)]) -> Vec<(u64, String)> {
    entries.iter().map(|(r, s)| (*r, s.to_string())).collect()
}

fn install_rolling(l: &Lane) -> String {
    let v1 = l.write("v1.yaml", &rolling(&l.namespace, 1, Fault::None));
    let run = l.apply(&v1, &[]);
    assert_eq!(run.code, 0, "{run}");
    v1
}

fn install_blue(l: &Lane) {
    let v1 = l.write("v1.yaml", &blue_green(&l.namespace, 1, "blue", Fault::None));
    let run = l.apply(&v1, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(l.selector_color(), "blue");
}

/// Waits until the latest revision is pending in `phase`, then kills the executor (SIGKILL)
/// and waits for its lease (`--lease-duration 2s`) to expire.
fn kill_in_phase(l: &Lane, mut child: std::process::Child, phase: &str) {
    let reached = l.wait_until(Duration::from_secs(60), |l| {
        l.history()
            .last()
            .is_some_and(|(_, status, p)| status == "pending" && p.as_deref() == Some(phase))
    });
    if !reached {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("never {phase}: {}", String::from_utf8_lossy(&out.stderr));
    }
    child.kill().unwrap();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(2500));
}

fn rolling_install_and_update(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::None));
    let run = l.apply(&v2, &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "deployed");
    assert_eq!(l.image_of("api"), image("api", 2));
    assert_eq!(l.statuses(), s(&[(1, "superseded"), (2, "deployed")]));
}

fn rolling_unready_update_is_rolled_back(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::Unready));
    let run = l.apply(&v2, &["--timeout", "120s"]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(
        report["failure"]["reason"], "progressDeadlineExceeded",
        "{run}"
    );
    assert_eq!(report["rolledBackTo"], 1);
    assert_eq!(l.image_of("api"), image("api", 1));
    assert_eq!(
        l.statuses(),
        s(&[(1, "superseded"), (2, "rolled-back"), (3, "deployed")])
    );
}

fn rolling_crash_loop_is_rolled_back(l: &Lane) {
    install_rolling(l);
    // A restart every 10 s: the deadline must not come first.
    let v2 = l.write(
        "v2.yaml",
        &rolling(&l.namespace, 2, Fault::Crash)
            .replace("progressDeadlineSeconds: 10", "progressDeadlineSeconds: 60"),
    );
    let run = l.apply(&v2, &["--max-restarts", "1", "--timeout", "120s"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["failure"]["reason"], "crashLoopBackOff", "{run}");
    assert_eq!(l.image_of("api"), image("api", 1));
}

/// A failed first install removes what it created; the record says `rolled-back`, as the
/// outcome does.
fn failed_first_install_is_rolled_back(l: &Lane) {
    let v1 = l.write("v1.yaml", &rolling(&l.namespace, 1, Fault::Unready));
    let run = l.apply(&v1, &["--timeout", "120s"]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled-back", "{run}");
    assert!(report["rolledBackTo"].is_null());
    assert_eq!(l.statuses(), s(&[(1, "rolled-back")]));
    assert!(l.get("apps/v1", "Deployment", "api").is_none());
}

fn blue_green_switches_and_scales_down(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    let run = l.apply(&v2, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(l.selector_color(), "green");
    assert_eq!(l.image_of("api-green"), image("api", 2));
    assert_eq!(l.image_of("api-blue"), image("api", 1));
    assert_eq!(l.replicas("api-blue"), Some(0));
    assert_eq!(l.statuses(), s(&[(1, "superseded"), (2, "deployed")]));
}

fn blue_green_failure_before_the_switch(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    let run = l.apply(
        &v2,
        &bg(&["--smoke-url", "http://127.0.0.1:9/", "--smoke-retries", "0"]),
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["failure"]["reason"], "gateFailed", "{run}");
    assert_eq!(l.selector_color(), "blue");
    assert!(l.get("apps/v1", "Deployment", "api-green").is_none());
    assert_eq!(l.replicas("api-blue"), Some(2));
}

fn blue_green_failure_after_the_switch(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    let run = l.run(
        &[
            l.apply_args(&v2, BLUE_GREEN),
            vec![
                "--prometheus",
                "http://127.0.0.1:9",
                "--metric",
                "up",
                "--max",
                "1",
            ],
        ]
        .concat(),
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("switched from blue to green"), "{run}");
    assert!(run.stderr.contains("switched back to blue"), "{run}");
    assert_eq!(l.selector_color(), "blue");
    assert_eq!(l.replicas("api-blue"), Some(2));
    assert_eq!(l.image_of("api-blue"), image("api", 1));
}

fn blue_green_manual_promote_and_abort(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    let run = l.apply(&v2, &bg(&["--manual-promotion"]));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "paused");
    assert_eq!(l.selector_color(), "blue");
    let run = l.run(&["promote", "-r", "api", "-n", &l.namespace]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.ends_with("revision 2 deployed; green serving\n"),
        "{run}"
    );
    assert_eq!(l.selector_color(), "green");
    let v3 = l.write("v3.yaml", &blue_green(&l.namespace, 3, "blue", Fault::None));
    let run = l.apply(&v3, &bg(&["--manual-promotion"]));
    assert_eq!(run.code, 0, "{run}");
    let run = l.release_command("abort", &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["outcome"], "aborted");
    assert_eq!(l.selector_color(), "green");
    assert_eq!(l.replicas("api-blue"), Some(0));
}

fn rolling_kill_and_resume(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::None));
    let child = l.spawn(&l.apply_args(&v2, &["--observe", "60s", "--lease-duration", "2s"]));
    kill_in_phase(l, child, "observing");
    let status = l.run(&["status", "-r", "api", "-n", &l.namespace]);
    assert!(
        status
            .stdout
            .contains("interrupted: revision 2 (upgrade while observing)"),
        "{status}"
    );
    assert!(!status.stdout.contains("Some("), "{status}");
    let run = l.apply(&v2, &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("resuming revision 2 (interrupted while observing)"),
        "{run}"
    );
    assert_eq!(l.image_of("api"), image("api", 2));
    assert_eq!(l.statuses(), s(&[(1, "superseded"), (2, "deployed")]));
}

/// Killed after the switch, while observing: the next apply continues revision 2 with its
/// recorded colors. One switch only, green runs v2, blue keeps v1 (scaled down).
fn blue_green_kill_after_the_switch_and_resume(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    let child = l.spawn(&l.apply_args(&v2, &bg(&["--observe", "60s", "--lease-duration", "2s"])));
    kill_in_phase(l, child, "observing");
    assert_eq!(l.selector_color(), "green");
    let run = l.apply(&v2, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("resuming revision 2 (interrupted while observing)"),
        "{run}"
    );
    assert!(
        !run.stderr.contains("switched from blue to green"),
        "a second switch:\n{run}"
    );
    assert!(run.stderr.contains("already selects green"), "{run}");
    assert!(!run.stderr.contains("deploying blue"), "{run}");
    assert_eq!(l.selector_color(), "green");
    assert_eq!(l.image_of("api-green"), image("api", 2));
    assert_eq!(l.image_of("api-blue"), image("api", 1));
    assert_eq!(l.replicas("api-green"), Some(2));
    assert_eq!(l.replicas("api-blue"), Some(0));
    assert_eq!(l.events("BlueGreenPromoted", "api-green"), 1);
    assert_eq!(l.statuses(), s(&[(1, "superseded"), (2, "deployed")]));
}

/// Retrying a failed blue-green release scales its color up from 0 with the ReplicaSet of
/// the first attempt: the Deployment controller keeps `NewReplicaSetAvailable` and never
/// reports a deadline, so the executor's own deadline fails it after
/// `progressDeadlineSeconds`, not at `--timeout`.
fn blue_green_retry_fails_at_the_progress_deadline(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    assert_eq!(l.apply(&v2, BLUE_GREEN).code, 0);
    // v3 goes to blue, whose pods never become ready.
    let v3 = l.write(
        "v3.yaml",
        &blue_green(&l.namespace, 3, "blue", Fault::Unready),
    );
    let run = l.apply(&v3, &bg(&["--timeout", "300s"]));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(l.replicas("api-blue"), Some(0));
    let started = Instant::now();
    let run = l.apply(&v3, &bg(&["--timeout", "300s"]));
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run}");
    let failure = &run.json()["failure"];
    assert_eq!(failure["reason"], "progressDeadlineExceeded", "{run}");
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.contains("Progressing=True NewReplicaSetAvailable"),
        "{message}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert_eq!(l.selector_color(), "green");
}

/// Without the release history, the old color is not in any record: it is still scaled down
/// by server-side apply with the executor's field manager, so the next release into it does
/// not conflict with a manager `unknown` over `.spec.replicas`.
fn blue_green_scale_down_keeps_the_field_manager(l: &Lane) {
    install_blue(l);
    let v2 = l.write("v2.yaml", &blue_green(&l.namespace, 2, "blue", Fault::None));
    assert_eq!(l.apply(&v2, BLUE_GREEN).code, 0);
    for secret in l.list("v1", "Secret", "owner=executor,name=api") {
        l.delete("v1", "Secret", secret["metadata"]["name"].as_str().unwrap());
    }
    // Green serves; v3 goes to blue and scales green down, which no record has.
    let v3 = l.write("v3.yaml", &blue_green(&l.namespace, 3, "blue", Fault::None));
    let run = l.apply(&v3, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(l.replicas("api-green"), Some(0));
    let green = l.get("apps/v1", "Deployment", "api-green").unwrap();
    let replicas_owners: Vec<String> = green["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fieldsV1"]["f:spec"].get("f:replicas").is_some())
        .map(|e| format!("{} {}", e["manager"], e["operation"]))
        .collect();
    assert_eq!(replicas_owners, ["\"executor\" \"Apply\""]);
    assert_eq!(l.image_of("api-green"), image("api", 2), "its fields kept");
    let v4 = l.write("v4.yaml", &blue_green(&l.namespace, 4, "blue", Fault::None));
    let run = l.apply(&v4, BLUE_GREEN);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(l.selector_color(), "green");
    assert_eq!(l.image_of("api-green"), image("api", 4));
}

/// Before Kubernetes 1.21, server-side apply refuses ports without `protocol`; the executor
/// says which field to add.
fn ports_without_protocol(l: &Lane) {
    let text = rolling(&l.namespace, 1, Fault::None).replace(
        "      targetPort: 8080\n      protocol: TCP\n",
        "      targetPort: 8080\n",
    );
    let v1 = l.write("v1.yaml", &text);
    let run = l.apply(&v1, &[]);
    if l.apply_requires_port_protocol() {
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stdout
                .contains("add `protocol: TCP` (or UDP, SCTP) to every entry of .spec.ports"),
            "{run}"
        );
    } else {
        assert_eq!(run.code, 0, "{run}");
    }
}

fn two_executors_race_for_the_lock(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::None));
    let args = l.apply_args(&v2, &["--observe", "3s"]);
    let a = l.spawn(&args);
    let b = l.spawn(&args);
    let (a, b) = (
        support::env::finished(a.wait_with_output().unwrap()),
        support::env::finished(b.wait_with_output().unwrap()),
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 2], "\n{a}\n{b}");
    let loser = if a.code == 2 { &a } else { &b };
    assert!(loser.stdout.contains("is locked by"), "{loser}");
    assert_eq!(l.statuses(), s(&[(1, "superseded"), (2, "deployed")]));
}

fn plan_changes_nothing(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::None));
    let run = l.run(&["plan", "-r", "api", "-n", &l.namespace, &v2]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("~ Deployment {}/api", l.namespace)),
        "{run}"
    );
    assert_eq!(l.image_of("api"), image("api", 1));
    assert_eq!(l.statuses(), s(&[(1, "deployed")]));
}

fn rollback_to_earlier_revisions(l: &Lane) {
    install_rolling(l);
    let v2 = l.write("v2.yaml", &rolling(&l.namespace, 2, Fault::None));
    assert_eq!(l.apply(&v2, &[]).code, 0);
    let run = l.release_command("rollback", &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["rolledBackTo"], 1);
    assert_eq!(l.image_of("api"), image("api", 1));
    let run = l.release_command("rollback", &["--to", "2"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(l.image_of("api"), image("api", 2));
}

fn backup_and_restore_into_another_namespace(l: &Lane) {
    install_rolling(l);
    let archive = l.dir.path().join("backup.json.gz").display().to_string();
    let run = l.run(&["backup", "-n", &l.namespace, "--output-file", &archive]);
    assert_eq!(run.code, 0, "{run}");
    let target = format!("{}-copy", l.namespace);
    l.forget_namespace_later(&target);
    let run = l.run(&[
        "restore",
        "--input-file",
        &archive,
        "-n",
        &target,
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run}");
    let d = l.get_in(&target, "apps/v1", "Deployment", "api").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 1)
    );
    let run = l.run(&["history", "-r", "api", "-n", &target, "-o", "json"]);
    assert_eq!(run.json()["revisions"][0]["status"], "deployed", "{run}");
}

fn dr_drill_passes(l: &Lane) {
    install_rolling(l);
    let archive = l.dir.path().join("backup.json.gz").display().to_string();
    let run = l.run(&["backup", "-n", &l.namespace, "--output-file", &archive]);
    assert_eq!(run.code, 0, "{run}");
    let run = l.run(&[
        "dr-drill",
        "--input-file",
        &archive,
        "--timeout",
        "2m",
        "-o",
        "json",
    ]);
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "passed", "{run}");
    assert_eq!(report["namespaceDeleted"], true, "{run}");
}

macro_rules! lanes {
    ($($name:ident),* $(,)?) => {
        /// Against the simulator (run by default).
        mod simulator {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Lane::simulator(stringify!($name)));
                }
            )*
        }
        /// Against the cluster of `KUBECONFIG`.
        mod cluster {
            $(
                #[test]
                #[ignore = "needs a cluster"]
                fn $name() {
                    super::$name(&super::Lane::cluster(stringify!($name)));
                }
            )*
        }
    };
}

lanes!(
    rolling_install_and_update,
    rolling_unready_update_is_rolled_back,
    rolling_crash_loop_is_rolled_back,
    failed_first_install_is_rolled_back,
    blue_green_switches_and_scales_down,
    blue_green_failure_before_the_switch,
    blue_green_failure_after_the_switch,
    blue_green_manual_promote_and_abort,
    rolling_kill_and_resume,
    blue_green_kill_after_the_switch_and_resume,
    blue_green_retry_fails_at_the_progress_deadline,
    blue_green_scale_down_keeps_the_field_manager,
    ports_without_protocol,
    two_executors_race_for_the_lock,
    plan_changes_nothing,
    rollback_to_earlier_revisions,
    backup_and_restore_into_another_namespace,
    dr_drill_passes,
);
