#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! `executor` against the simulator: exit codes, what it leaves in the cluster and in the
//! release history.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use serde_json::{json, Value};
use simulator::Behaviour;
use support::{api_manifests, daemonset_manifests, image, statefulset_manifests, CRD_AND_INSTANCE};

mod support;

use support::env::{
    apply, apply_binary, command, env, executor, executor_binary, finished, write, Env, Run,
};

fn spawn(env: &Env, args: &[&str]) -> Child {
    command(env, args).spawn().expect("executor starts")
}

/// (revision, status, operation) of every revision.
fn history(env: &Env, release: &str) -> Vec<(u64, String, String)> {
    let run = executor(env, &["history", "-r", release, "-n", "shop", "-o", "json"]);
    assert_eq!(run.code, 0, "{run}");
    run.json()["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
                r["operation"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn h(entries: &[(u64, &str, &str)]) -> Vec<(u64, String, String)> {
    entries
        .iter()
        .map(|(r, s, o)| (*r, s.to_string(), o.to_string()))
        .collect()
}

fn deployment_image(env: &Env) -> String {
    let d = env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .expect("deployment");
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn deployment_complete(env: &Env) -> bool {
    let Some(d) = env.sim.get("apps/v1", "Deployment", "shop", "api") else {
        return false;
    };
    let s = &d["status"];
    s["observedGeneration"] == d["metadata"]["generation"]
        && s["updatedReplicas"] == 2
        && s["availableReplicas"] == 2
        && s["replicas"] == 2
}

fn install_v1(env: &Env) -> String {
    let v1 = write(env, "v1.yaml", &api_manifests(1, ""));
    let run = apply(env, &v1, &[]);
    assert_eq!(run.code, 0, "{run}");
    v1
}

#[test]
fn first_install_creates_everything_and_records_revision_1() {
    let env = env(10.0);
    let mut text =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop-two\n---\n");
    text.push_str(&api_manifests(1, "").replace("namespace: shop", "namespace: shop-two"));
    let path = write(&env, "install.yaml", &text);
    // The binary: its progress on stderr is checked below.
    let run = executor_binary(
        &env,
        &["apply", "-r", "api", "-n", "shop-two", "-o", "json", &path],
    );
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["revision"], 1);
    let actions: Vec<(&str, &str)> = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["kind"].as_str().unwrap(), o["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("Namespace", "created"),
            ("NetworkPolicy", "created"),
            ("ServiceAccount", "created"),
            ("Deployment", "created"),
            ("PodDisruptionBudget", "created"),
        ]
    );
    let d = env
        .sim
        .get("apps/v1", "Deployment", "shop-two", "api")
        .unwrap();
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "executor");
    for key in ["started", "applied", "rolloutComplete", "finished"] {
        assert!(report["timeline"][key].is_string(), "{key}: {report}");
    }
    let records = executor(
        &env,
        &["history", "-r", "api", "-n", "shop-two", "-o", "json"],
    )
    .json();
    assert_eq!(records["revisions"][0]["status"], "deployed");
    assert_eq!(records["revisions"][0]["operation"], "install");
    let status = executor(&env, &["status", "-r", "api", "-n", "shop-two"]);
    assert_eq!(status.code, 0, "{status}");
    assert!(
        status.stdout.contains("Deployment shop-two/api: complete"),
        "{status}"
    );
    // Progress went to stderr, as plain lines.
    assert!(
        run.stderr
            .contains("Deployment shop-two/api: rollout complete"),
        "{run}"
    );
}

#[test]
fn update_rolls_out_and_supersedes_the_previous_revision() {
    let env = env(10.0);
    install_v1(&env);
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &[]);
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["revision"], 2);
    let deployment = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert_eq!(deployment["status"], "complete", "{report}");
    assert_eq!(deployment_image(&env), image("api", 2));
    assert!(deployment_complete(&env));
    assert_eq!(
        history(&env, "api"),
        h(&[(1, "superseded", "install"), (2, "deployed", "upgrade")])
    );
    // Applying the same manifests again changes nothing in the cluster.
    let again = apply(&env, &v2, &[]);
    assert_eq!(again.code, 0, "{again}");
    let actions: Vec<&str> = again.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap().to_string())
        .map(|a| {
            if a == "unchanged" {
                "unchanged"
            } else {
                "changed"
            }
        })
        .collect();
    assert!(actions.iter().all(|a| *a == "unchanged"), "{again}");
}

#[test]
fn crash_looping_update_is_rolled_back() {
    let env = env(10.0);
    install_v1(&env);
    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::CrashLoop {
            restart_every: Duration::from_secs(2),
        },
    );
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &["--max-restarts", "3"]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "rolled-back");
    assert_eq!(report["rolledBackTo"], 1);
    assert_eq!(report["failure"]["reason"], "crashLoopBackOff");
    let deployment = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .unwrap();
    assert!(
        deployment["status"]
            .as_str()
            .unwrap()
            .starts_with("failed: CrashLoopBackOff"),
        "{report}"
    );
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("rolled back to revision 1"),
        "{run}"
    );
    for key in ["failureDetected", "rollbackStarted", "rollbackComplete"] {
        assert!(report["timeline"][key].is_string(), "{key}: {report}");
    }
    assert_eq!(deployment_image(&env), image("api", 1));
    assert!(deployment_complete(&env));
    assert_eq!(
        history(&env, "api"),
        h(&[
            (1, "superseded", "install"),
            (2, "rolled-back", "upgrade"),
            (3, "deployed", "rollback"),
        ])
    );
    // No pod of the failed revision is left.
    let pods = env.sim.list("v1", "Pod", Some("shop"));
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == image("api", 1)));
}

#[test]
fn image_pull_failure_is_rolled_back() {
    let env = env(10.0);
    install_v1(&env);
    env.sim
        .set_behaviour(&image("api", 2), Behaviour::ImagePullBackOff);
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &["--stuck-after", "1s"]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["failure"]["reason"], "imagePullBackOff");
    assert_eq!(deployment_image(&env), image("api", 1));
}

#[test]
fn progress_deadline_is_rolled_back() {
    let env = env(20.0);
    install_v1(&env);
    env.sim
        .set_behaviour(&image("api", 2), Behaviour::NeverReady);
    let v2 = write(
        &env,
        "v2.yaml",
        &api_manifests(2, "\n  progressDeadlineSeconds: 30"),
    );
    let run = apply(&env, &v2, &[]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["failure"]["reason"], "progressDeadlineExceeded");
    assert!(report["failure"]["message"]
        .as_str()
        .unwrap()
        .contains("has timed out progressing"));
    assert_eq!(deployment_image(&env), image("api", 1));
}

#[test]
fn release_timeout_fails_a_rollout_without_a_deadline() {
    let env = env(10.0);
    let path = write(&env, "db1.yaml", &statefulset_manifests(1));
    let run = executor(
        &env,
        &["apply", "-r", "db", "-n", "shop", "-o", "json", &path],
    );
    assert_eq!(run.code, 0, "{run}");
    env.sim
        .set_behaviour(&image("db", 2), Behaviour::NeverReady);
    let path = write(&env, "db2.yaml", &statefulset_manifests(2));
    let run = executor(
        &env,
        &[
            "apply",
            "-r",
            "db",
            "-n",
            "shop",
            "-o",
            "json",
            &path,
            "--timeout",
            "2s",
            "--rollback-timeout",
            "30s",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["failure"]["reason"], "timeout");
    assert_eq!(report["rolledBackTo"], 1);
}

#[test]
fn statefulset_update_completes_by_revisions() {
    let env = env(10.0);
    let path = write(&env, "db1.yaml", &statefulset_manifests(1));
    let run = executor(
        &env,
        &["apply", "-r", "db", "-n", "shop", "-o", "json", &path],
    );
    assert_eq!(run.code, 0, "{run}");
    let first = env.sim.get("apps/v1", "StatefulSet", "shop", "db").unwrap();
    let path = write(&env, "db2.yaml", &statefulset_manifests(2));
    let run = executor(
        &env,
        &["apply", "-r", "db", "-n", "shop", "-o", "json", &path],
    );
    assert_eq!(run.code, 0, "{run}");
    let s = env.sim.get("apps/v1", "StatefulSet", "shop", "db").unwrap();
    assert_eq!(
        s["status"]["currentRevision"],
        s["status"]["updateRevision"]
    );
    assert_ne!(
        s["status"]["updateRevision"],
        first["status"]["updateRevision"]
    );
    assert_eq!(s["status"]["readyReplicas"], 3);
    let pods = env.sim.list("v1", "Pod", Some("shop"));
    assert_eq!(pods.len(), 3);
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == image("db", 2)));
}

#[test]
fn policy_violation_blocks_apply_and_changes_nothing() {
    let env = env(10.0);
    let violations =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/app/violations.yaml");
    let before = env.sim.snapshot("shop");
    let run = executor(
        &env,
        &[
            "apply",
            "-r",
            "bad",
            "-n",
            "shop",
            violations.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("deny [K8s"), "{run}");
    assert!(run.stdout.contains("nothing was applied"), "{run}");
    assert_eq!(env.sim.snapshot("shop"), before);
    let writes: Vec<_> = env
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.is_write())
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn server_refusal_in_the_dry_run_changes_nothing() {
    let env = env(10.0);
    install_v1(&env);
    env.sim.add_admission(|a| {
        (a.kind == "PodDisruptionBudget").then(|| "PDBs are frozen this week".to_string())
    });
    let before = env.sim.snapshot("shop");
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.json()["errors"][0]
            .as_str()
            .unwrap()
            .contains("PDBs are frozen"),
        "{run}"
    );
    let after = env.sim.snapshot("shop");
    let changed: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v) && !k.starts_with("Lease/"))
        .map(|(k, _)| k)
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
}

fn attest(env: &Env, manifest: &str) -> String {
    let loaded = validator::manifest::load_paths(&[PathBuf::from(manifest)]);
    let policies = validator::bundle::load("production").unwrap();
    let attestation = validator::digest::Attestation::of(&loaded.documents, &policies.documents);
    let outcome = validator::check::run(
        validator::manifest::load_paths(&[PathBuf::from(manifest)]),
        &policies.documents,
        &validator::check::Options::default(),
    );
    let summary = validator::report::Summary::of(&outcome.findings, outcome.objects);
    let text = validator::report::json_attested(&outcome.findings, &summary, &attestation);
    write(env, "attestation.json", &text)
}

#[test]
fn attestation_is_accepted_only_for_the_attested_manifests() {
    let env = env(10.0);
    let v1 = write(&env, "v1.yaml", &api_manifests(1, ""));
    let attestation = attest(&env, &v1);
    let run = apply_binary(&env, &v1, &["--attestation", &attestation]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("attestation verified"), "{run}");

    // The manifests changed after they were checked.
    std::fs::write(&v1, api_manifests(2, "")).unwrap();
    let before = env.sim.snapshot("shop");
    let run = apply(&env, &v1, &["--attestation", &attestation]);
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "blocked");
    assert!(
        report["errors"][0]
            .as_str()
            .unwrap()
            .contains("Deployment shop/api: changed since it was checked"),
        "{run}"
    );
    assert_eq!(env.sim.snapshot("shop"), before);
    assert_eq!(deployment_image(&env), image("api", 1));

    // The attestation itself was edited to match: the policy set still has to match, and a
    // report that did not pass is refused whatever its digests say.
    let mut edited: Value =
        serde_json::from_str(&std::fs::read_to_string(&attestation).unwrap()).unwrap();
    edited["attestation"]["policySet"] = json!("sha256:0000");
    std::fs::write(&attestation, edited.to_string()).unwrap();
    std::fs::write(&v1, api_manifests(1, "")).unwrap();
    let run = apply(&env, &v1, &["--attestation", &attestation]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("the policy set differs"), "{run}");
}

#[test]
fn two_executors_racing_on_one_release() {
    let env = env(1.0);
    install_v1(&env);
    // Slow pods keep the first executor busy.
    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::Ready {
            after: Duration::from_secs(3),
        },
    );
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let args = ["apply", "-r", "api", "-n", "shop", v2.as_str()];
    let a = spawn(&env, &args);
    let b = spawn(&env, &args);
    let (a, b) = (
        finished(a.wait_with_output().unwrap()),
        finished(b.wait_with_output().unwrap()),
    );
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 2], "\n{a}\n{b}");
    let loser = if a.code == 2 { &a } else { &b };
    assert!(loser.stderr.contains("is locked by"), "{loser}");
    assert!(
        loser.stderr.contains("another operation is in progress"),
        "{loser}"
    );
    assert_eq!(
        history(&env, "api"),
        h(&[(1, "superseded", "install"), (2, "deployed", "upgrade")])
    );
}

fn kill_mid_rollout(env: &Env, manifest: &str) {
    let mut child = spawn(
        env,
        &[
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            manifest,
            "--lease-duration",
            "1s",
        ],
    );
    // Killed once the new ReplicaSet exists: applied, waiting for the rollout.
    let started = env.sim.wait_until(Duration::from_secs(20), |sim| {
        sim.list("apps/v1", "ReplicaSet", Some("shop")).len() == 2
    });
    assert!(started, "the rollout did not start");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(
        history(env, "api"),
        h(&[(1, "deployed", "install"), (2, "pending", "upgrade")])
    );
    // The dead executor's lease expires.
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn killed_executor_is_resumed_by_the_next_apply() {
    let env = env(1.0);
    install_v1(&env);
    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::Ready {
            after: Duration::from_secs(2),
        },
    );
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    kill_mid_rollout(&env, &v2);
    let run = apply_binary(&env, &v2, &[]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("took over the lock"), "{run}");
    assert!(run.stderr.contains("resuming revision 2"), "{run}");
    assert_eq!(
        history(&env, "api"),
        h(&[(1, "superseded", "install"), (2, "deployed", "upgrade")])
    );
    assert_eq!(deployment_image(&env), image("api", 2));
}

#[test]
fn killed_executor_is_undone_by_rollback() {
    let env = env(1.0);
    install_v1(&env);
    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::Ready {
            after: Duration::from_secs(2),
        },
    );
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    kill_mid_rollout(&env, &v2);
    let run = executor(&env, &["rollback", "-r", "api", "-n", "shop"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stdout.contains("rolled back to revision 1"), "{run}");
    assert_eq!(
        history(&env, "api"),
        h(&[
            (1, "superseded", "install"),
            (2, "rolled-back", "upgrade"),
            (3, "deployed", "rollback"),
        ])
    );
    assert_eq!(deployment_image(&env), image("api", 1));
    assert!(deployment_complete(&env));
}

#[test]
fn manual_rollback_and_history_max() {
    let env = env(10.0);
    install_v1(&env);
    for v in 2..=4 {
        let path = write(&env, &format!("v{v}.yaml"), &api_manifests(v, ""));
        let run = apply(&env, &path, &["--history-max", "3"]);
        assert_eq!(run.code, 0, "{run}");
    }
    assert_eq!(
        history(&env, "api"),
        h(&[
            (2, "superseded", "upgrade"),
            (3, "superseded", "upgrade"),
            (4, "deployed", "upgrade")
        ])
    );
    let run = executor(
        &env,
        &[
            "rollback", "-r", "api", "-n", "shop", "--to", "2", "-o", "json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["rolledBackTo"], 2);
    assert_eq!(deployment_image(&env), image("api", 2));
    let run = executor(&env, &["rollback", "-r", "api", "-n", "shop", "--to", "9"]);
    assert_eq!(run.code, 2, "{run}");
}

#[test]
fn plan_shows_changes_and_changes_nothing() {
    let env = env(10.0);
    install_v1(&env);
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let writes_before = env.sim.requests().iter().filter(|r| r.is_write()).count();
    let run = executor(&env, &["plan", "-r", "api", "-n", "shop", &v2]);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stdout.contains("~ Deployment shop/api (configured)"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains(".spec.template.spec.containers[0].image"),
        "{run}"
    );
    assert!(
        run.stdout.contains("= ServiceAccount shop/api (unchanged)"),
        "{run}"
    );
    let writes_after = env.sim.requests().iter().filter(|r| r.is_write()).count();
    assert_eq!(writes_before, writes_after);
    // Pods may have changed status meanwhile; the objects of the release did not.
    assert_eq!(deployment_image(&env), image("api", 1));
}

#[test]
fn daemonset_update_completes_on_every_node() {
    let env = env(10.0);
    for v in 1..=2 {
        let path = write(&env, &format!("agent{v}.yaml"), &daemonset_manifests(v));
        let run = executor(
            &env,
            &["apply", "-r", "agent", "-n", "shop", "-o", "json", &path],
        );
        assert_eq!(run.code, 0, "{run}");
    }
    let ds = env
        .sim
        .get("apps/v1", "DaemonSet", "shop", "agent")
        .unwrap();
    assert_eq!(ds["status"]["updatedNumberScheduled"], 3);
    assert_eq!(ds["status"]["numberAvailable"], 3);
    let pods = env.sim.list("v1", "Pod", Some("shop"));
    assert_eq!(pods.len(), 3);
    assert!(pods
        .iter()
        .all(|p| p["spec"]["containers"][0]["image"] == image("agent", 2)));
}

#[test]
fn custom_resources_wait_for_their_crd() {
    let env = env(10.0);
    let path = write(&env, "crd.yaml", CRD_AND_INSTANCE);
    let run = executor(
        &env,
        &["apply", "-r", "widgets", "-n", "shop", "-o", "json", &path],
    );
    assert_eq!(run.code, 0, "{run}");
    let kinds: Vec<String> = run.json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["CustomResourceDefinition", "Widget"]);
    let widget = env
        .sim
        .get("example.com/v1", "Widget", "shop", "gear")
        .unwrap();
    assert_eq!(widget["spec"]["size"], 3);
    // Planning it again resolves the kind from the cluster.
    let plan = executor(&env, &["plan", "-r", "widgets", "-n", "shop", &path]);
    assert_eq!(plan.code, 0, "{plan}");
    assert!(
        plan.stdout.contains("= Widget shop/gear (unchanged)"),
        "{plan}"
    );
}

#[test]
fn chart_is_rendered_checked_and_rolled_out() {
    let env = env(10.0);
    // The chart's ExternalSecret needs its operator's CRD, as in a real cluster.
    env.sim
        .create(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "externalsecrets.external-secrets.io"},
            "spec": {"group": "external-secrets.io", "scope": "Namespaced",
                     "names": {"kind": "ExternalSecret", "plural": "externalsecrets", "singular": "externalsecret"},
                     "versions": [{"name": "v1beta1", "served": true, "storage": true,
                                   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap();
    assert!(env.sim.wait_until(Duration::from_secs(5), |sim| {
        sim.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "",
            "externalsecrets.external-secrets.io",
        )
        .is_some_and(|c| c["status"]["conditions"].is_array())
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let chart = root.join("charts/api");
    let helm = root.join("scripts/helm");
    let run = executor(
        &env,
        &[
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "-o",
            "json",
            "--chart",
            chart.to_str().unwrap(),
            "--helm",
            helm.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let d = env.sim.get("apps/v1", "Deployment", "shop", "api").unwrap();
    assert_eq!(d["status"]["availableReplicas"], d["spec"]["replicas"]);
    assert!(env
        .sim
        .get(
            "external-secrets.io/v1beta1",
            "ExternalSecret",
            "shop",
            "api-credentials"
        )
        .is_some());
    // A changed value rolls out as an upgrade.
    let run = executor(
        &env,
        &[
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "-o",
            "json",
            "--chart",
            chart.to_str().unwrap(),
            "--helm",
            helm.to_str().unwrap(),
            "--set",
            "image.tag=1.8.1",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["revision"], 2);
    let d = env.sim.get("apps/v1", "Deployment", "shop", "api").unwrap();
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    assert!(image.contains(":1.8.1@sha256:"), "{image}");
}

#[test]
fn releases_leave_a_deploy_log_metrics_and_delivery_numbers() {
    let env = env(10.0);
    let gateway = simulator::pushgateway::Pushgateway::start().expect("the Pushgateway starts");
    let log = env.dir.path().join("deploys.jsonl").display().to_string();
    let prom = env.dir.path().join("api.prom").display().to_string();
    let record = [
        "--deploy-log",
        log.as_str(),
        "--metrics-file",
        prom.as_str(),
        "--pushgateway",
        gateway.url.as_str(),
    ];
    let v1 = write(&env, "v1.yaml", &api_manifests(1, ""));
    let run = apply_binary(&env, &v1, &record);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("warning"), "{run}");
    let textfile = std::fs::read_to_string(&prom).unwrap();
    assert!(
        textfile.contains("executor_release_success{release=\"api\",namespace=\"shop\"} 1"),
        "{textfile}"
    );
    let pushed = gateway.metrics().unwrap();
    let line = pushed
        .lines()
        .find(|l| l.starts_with("executor_release_success{"))
        .unwrap_or_else(|| panic!("not pushed:\n{pushed}"));
    assert!(
        line.contains("release=\"api\"")
            && line.contains("namespace=\"shop\"")
            && line.ends_with(" 1"),
        "{line}"
    );

    env.sim.set_behaviour(
        &image("api", 2),
        Behaviour::CrashLoop {
            restart_every: Duration::from_secs(2),
        },
    );
    let v2 = write(&env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(&env, &v2, &[&record[..], &["--max-restarts", "3"]].concat());
    assert_eq!(run.code, 1, "{run}");
    let textfile = std::fs::read_to_string(&prom).unwrap();
    assert!(textfile.contains("executor_release_rolled_back{release=\"api\",namespace=\"shop\"} 1"));
    let pushed = gateway.metrics().unwrap();
    assert!(
        pushed
            .lines()
            .any(|l| l.starts_with("executor_release_rolled_back{") && l.ends_with(" 1")),
        "{pushed}"
    );

    let report = executor(
        &env,
        &["report", "--deploy-log", &log, "-r", "api", "-o", "json"],
    );
    assert_eq!(report.code, 0, "{report}");
    let summary = report.json();
    assert_eq!(summary["changes"], 2, "{summary}");
    assert_eq!(summary["deployed"], 1);
    assert_eq!(summary["rolledBack"], 1);
    assert_eq!(summary["changeFailureRate"], 0.5);
    let mttr = summary["meanTimeToRestoreSeconds"].as_f64().unwrap();
    assert!(mttr > 0.0 && mttr < 60.0, "{summary}");
    assert!(summary["deployDurationP50Seconds"].as_f64().unwrap() > 0.0);
    let human = executor(&env, &["report", "--deploy-log", &log, "--since", "1d"]);
    assert_eq!(human.code, 0, "{human}");
    assert!(
        human.stdout.contains("change failure rate:    50.0%"),
        "{human}"
    );
    let bad = executor(&env, &["report", "--deploy-log", &log, "--since", "soon"]);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("--since soon"), "{bad}");
}

/// `executor` without the tests' signature opt-out.
fn executor_as_is(env: &Env, args: &[&str]) -> Run {
    let mut cmd = command(env, &[]);
    finished(cmd.args(args).output().expect("executor runs"))
}

#[test]
fn signatures_are_required_by_the_gate() {
    let env = env(10.0);
    let v1 = write(&env, "v1.yaml", &api_manifests(1, ""));
    // The production bundle's signed-image constraint without a trust policy: refused, nothing
    // applied.
    let run = executor_as_is(
        &env,
        &["apply", "-r", "api", "-n", "shop", "-o", "json", &v1],
    );
    assert_eq!(run.code, 2, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "blocked", "{report}");
    assert!(
        run.stdout
            .contains("signature verification is not configured")
            && run.stdout.contains("--no-signature-verification"),
        "{run}"
    );
    assert!(env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .is_none());
    let plan = executor_as_is(&env, &["plan", "-r", "api", "-n", "shop", &v1]);
    assert_eq!(plan.code, 2, "{plan}");
    // With a key, the images are verified, and a registry that cannot be reached fails closed.
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/signatures/cosign.pub");
    let run = executor_as_is(
        &env,
        &[
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "-o",
            "json",
            "--signature-key",
            key.to_str().unwrap(),
            "--registry-timeout",
            "2s",
            &v1,
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.json()["outcome"], "blocked");
    assert!(run.stdout.contains("registry unreachable:"), "{run}");
    assert!(env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .is_none());
    // A key file that is not a key: a usage error naming it.
    let bad = write(&env, "bad.pub", "not a key\n");
    let run = executor_as_is(
        &env,
        &[
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "--signature-key",
            &bad,
            &v1,
        ],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("bad.pub"), "{run}");
    // Keyless identity flags reach the gate too: without a trusted root, and with one that is
    // not a Sigstore trusted root, a usage error saying so; nothing applied.
    let identity = [
        "--certificate-identity",
        "https://github.com/acme/shop/.github/workflows/deploy.yml@refs/heads/main",
        "--certificate-oidc-issuer",
        "https://token.actions.githubusercontent.com",
    ];
    let root = write(&env, "trusted_root.json", "{\"mediaType\": \"text/plain\"}");
    for (extra, wanted) in [
        (vec![], "need --trusted-root"),
        (
            vec!["--trusted-root", root.as_str()],
            "trusted_root.json: mediaType",
        ),
    ] {
        let mut args = vec!["apply", "-r", "api", "-n", "shop"];
        args.extend(identity);
        args.extend(extra);
        args.push(&v1);
        let run = executor_as_is(&env, &args);
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains(wanted), "{run}");
    }
    assert!(env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .is_none());
}
