#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The Kubernetes Events the executor records on the workloads of a release, against the
//! simulator.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use simulator::Behaviour;
use support::{api_manifests, blue_green_manifests, image};

mod support;

use support::env::{env, Env};

/// `executor apply -r api -n shop -o json` of `api_manifests(version)`: (exit code, the
/// result, stderr).
fn apply(env: &Env, version: u32) -> (i32, Value, String) {
    apply_text(env, &api_manifests(version, ""), &[])
}

fn apply_text(env: &Env, manifests: &str, extra: &[&str]) -> (i32, Value, String) {
    let manifest = env.dir.path().join("release.yaml");
    std::fs::write(&manifest, manifests).expect("write manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(support::with_signature_opt_out(&[
            "apply", "-r", "api", "-n", "shop", "-o", "json",
        ]))
        .arg(&manifest)
        .args(extra)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("executor runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: not json:\n{stdout}\n{stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

/// Events in `namespace` about `kind`/`name`: (reason, type, component, message).
fn events(env: &Env, kind: &str, name: &str) -> Vec<(String, String, String, String)> {
    let mut events: Vec<Value> = env
        .sim
        .list("v1", "Event", Some("shop"))
        .into_iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .collect();
    events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    });
    events
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
                e["source"]["component"].as_str().unwrap().to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn events_are_recorded_on_the_workloads_of_a_release() {
    let env = env(10.0);
    let (code, report, stderr) = apply(&env, 1);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let e = events(&env, "Deployment", "api");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].0.as_str(), e[0].1.as_str(), e[0].2.as_str()),
        ("ReleaseDeployed", "Normal", "executor")
    );
    assert!(e[0].3.contains("revision 1 deployed"), "{e:?}");

    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::CrashLoop {
            restart_every: Duration::from_secs(2),
        },
    );
    let (code, report, stderr) = apply(&env, 2);
    assert_eq!(code, 1, "{report}\n{stderr}");
    let e = events(&env, "Deployment", "api");
    let reasons: Vec<(&str, &str)> = e.iter().map(|x| (x.0.as_str(), x.1.as_str())).collect();
    assert_eq!(
        reasons,
        [
            ("ReleaseDeployed", "Normal"),
            ("RolloutFailed", "Warning"),
            ("RolledBack", "Normal")
        ]
    );
    assert!(e[1].3.contains("CrashLoopBackOff"), "{e:?}");
    assert!(e[2].3.contains("rolled back to revision 1"), "{e:?}");
}

#[test]
fn a_refused_event_is_a_warning_not_a_failed_release() {
    let env = env(10.0);
    env.sim
        .add_admission(|a| (a.kind == "Event").then(|| "events are not allowed here".to_string()));
    let (code, report, stderr) = apply(&env, 1);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["outcome"], "deployed");
    assert!(
        stderr.contains("warning: cannot record the event ReleaseDeployed")
            && stderr.contains("events are not allowed here"),
        "{stderr}"
    );
    assert!(env.sim.list("v1", "Event", Some("shop")).is_empty());
}

#[test]
fn a_blue_green_switch_is_recorded_on_the_new_color() {
    let env = env(10.0);
    let (code, report, stderr) = apply_text(
        &env,
        &blue_green_manifests(1, "blue"),
        &["--strategy", "blue-green", "--scale-down-delay", "0s"],
    );
    assert_eq!(code, 0, "{report}\n{stderr}");
    let (code, report, stderr) = apply_text(
        &env,
        &blue_green_manifests(2, "blue"),
        &["--strategy", "blue-green", "--scale-down-delay", "0s"],
    );
    assert_eq!(code, 0, "{report}\n{stderr}");
    let green: Vec<String> = events(&env, "Deployment", "api-green")
        .into_iter()
        .map(|e| format!("{} {} {}", e.0, e.1, e.3))
        .collect();
    assert_eq!(green.len(), 2, "{green:?}");
    assert!(
        green[0].starts_with("BlueGreenPromoted Normal")
            && green[0].contains("switched from blue to green"),
        "{green:?}"
    );
    assert!(green[1].starts_with("ReleaseDeployed Normal"), "{green:?}");
}
