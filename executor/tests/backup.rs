#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! `executor backup`, `restore` and `dr-drill` against the simulator.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use simulator::Behaviour;
use support::{api_manifests, image, statefulset_manifests};

mod support;

use support::env::{env, executor, executor_binary, write, Env, Run};

fn path(env: &Env, name: &str) -> String {
    env.dir.path().join(name).display().to_string()
}

fn apply(env: &Env, release: &str, manifest: &str, extra: &[&str]) -> Run {
    let mut args = vec!["apply", "-r", release, "-n", "shop", "-o", "json", manifest];
    args.extend_from_slice(extra);
    executor(env, &args)
}

/// A ConfigMap, a Secret and a Service: data that must survive a restore byte for byte. (The
/// production bundle refuses literal Secrets: this release is checked with `baseline`.)
const CONFIG: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels:
    app: api
data:
  LOG_LEVEL: debug
  FEATURES: "a,b,c"
---
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: shop
type: Opaque
data:
  password: czNjcjN0
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
spec:
  type: ClusterIP
  selector:
    app: api
  ports:
    - name: http
      port: 80
      targetPort: 8080
"#;

/// (revision, status, operation, digest-independent description) of every revision.
fn history(env: &Env, release: &str, namespace: &str) -> Vec<(u64, String, String)> {
    let run = executor(
        env,
        &["history", "-r", release, "-n", namespace, "-o", "json"],
    );
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

/// The objects the deployed revision of a release records.
fn recorded_ids(env: &Env, release: &str, namespace: &str) -> Vec<(String, String, String)> {
    let secrets = env.sim.list("v1", "Secret", Some(namespace));
    let mut records: Vec<Value> = secrets
        .iter()
        .filter(|s| {
            s["type"] == "executor.release/v1" && s["metadata"]["labels"]["name"] == release
        })
        .map(|s| {
            let gz = base64_decode(s["data"]["release"].as_str().unwrap());
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut json)
                .unwrap();
            serde_json::from_slice(&json).unwrap()
        })
        .collect();
    records.sort_by_key(|r| r["revision"].as_u64());
    let deployed = records
        .iter()
        .rev()
        .find(|r| r["status"] == "deployed")
        .expect("a deployed revision");
    deployed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["apiVersion"].as_str().unwrap().to_string(),
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64") as u32;
        buffer = (buffer << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// What must be the same after a restore: everything but metadata the server owns and status.
fn content(object: &Value) -> Value {
    let mut o = object.clone();
    let map = o.as_object_mut().unwrap();
    map.remove("status");
    map.remove("metadata");
    if object["kind"] == "Service" {
        map["spec"].as_object_mut().unwrap().remove("clusterIP");
        map["spec"].as_object_mut().unwrap().remove("clusterIPs");
    }
    json!({
        "content": o,
        "labels": object["metadata"]["labels"],
    })
}

fn install(env: &Env) {
    let v1 = write(env, "v1.yaml", &api_manifests(1, ""));
    let run = apply(env, "api", &v1, &[]);
    assert_eq!(run.code, 0, "{run}");
    let v2 = write(env, "v2.yaml", &api_manifests(2, ""));
    let run = apply(env, "api", &v2, &[]);
    assert_eq!(run.code, 0, "{run}");
    let config = write(env, "config.yaml", CONFIG);
    let run = apply(env, "config", &config, &["--bundle", "baseline"]);
    assert_eq!(run.code, 0, "{run}");
}

/// Release `api` at revision 1 in `shop`, backed up to `name`; returns the archive's path.
fn api_backed_up(env: &Env, name: &str) -> String {
    let v1 = write(env, "v1.yaml", &api_manifests(1, ""));
    let run = apply(env, "api", &v1, &[]);
    assert_eq!(run.code, 0, "{run}");
    let file = path(env, name);
    let run = executor(env, &["backup", "-n", "shop", "--output-file", &file]);
    assert_eq!(run.code, 0, "{run}");
    file
}

/// `executor restore --input-file FILE -n NS --bundle baseline -o json`.
fn restore_json(env: &Env, file: &str, namespace: &str) -> Run {
    executor(
        env,
        &[
            "restore",
            "--input-file",
            file,
            "-n",
            namespace,
            "--bundle",
            "baseline",
            "-o",
            "json",
        ],
    )
}

fn backup(env: &Env) -> String {
    let file = path(env, "shop.backup.json.gz");
    let run = executor(
        env,
        &["backup", "-n", "shop", "--output-file", &file, "-o", "json"],
    );
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    let names: Vec<&str> = report["releases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "config"], "{run}");
    file
}

#[test]
fn backup_and_restore_into_a_new_namespace_loses_nothing() {
    let env = env(10.0);
    install(&env);
    let file = backup(&env);
    let human = executor(
        &env,
        &[
            "backup",
            "-n",
            "shop",
            "-r",
            "api",
            "--output-file",
            &path(&env, "api.gz"),
        ],
    );
    assert_eq!(human.code, 0, "{human}");
    assert!(
        human
            .stdout
            .contains("api: 2 revision(s) (1, 2), 4 object(s)"),
        "{human}"
    );
    assert!(human.stdout.contains("Secrets"), "{human}");

    let run = restore_json(&env, &file, "restored");
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "restored");
    assert_eq!(report["sourceNamespace"], "shop");
    assert_eq!(report["namespace"], "restored");
    assert!(env.sim.get("v1", "Namespace", "", "restored").is_some());

    for release in ["api", "config"] {
        assert_eq!(
            history(&env, release, "restored"),
            history(&env, release, "shop"),
            "{release}"
        );
        let ids = recorded_ids(&env, release, "shop");
        assert_eq!(recorded_ids(&env, release, "restored"), ids);
        for (api_version, kind, name) in &ids {
            let before = env
                .sim
                .get(api_version, kind, "shop", name)
                .unwrap_or_else(|| panic!("{kind} shop/{name}"));
            let after = env
                .sim
                .get(api_version, kind, "restored", name)
                .unwrap_or_else(|| panic!("{kind} restored/{name} was not restored"));
            assert_eq!(content(&after), content(&before), "{kind} {name}");
            assert_eq!(after["metadata"]["namespace"], "restored");
        }
    }
    let secret = env
        .sim
        .get("v1", "Secret", "restored", "db-credentials")
        .unwrap();
    assert_eq!(secret["data"]["password"], "czNjcjN0");
    let d = env
        .sim
        .get("apps/v1", "Deployment", "restored", "api")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 2)
    );
    assert_eq!(d["status"]["availableReplicas"], 2);
    let restored_events: Vec<Value> = env
        .sim
        .list("v1", "Event", Some("restored"))
        .into_iter()
        .filter(|e| e["reason"] == "ReleaseRestored")
        .collect();
    assert_eq!(restored_events.len(), 1, "{restored_events:?}");
    assert_eq!(restored_events[0]["involvedObject"]["kind"], "Deployment");
    assert_eq!(restored_events[0]["involvedObject"]["name"], "api");
    // The restored release is a working release: it rolls back to its revision 1.
    let run = executor(
        &env,
        &["rollback", "-r", "api", "-n", "restored", "-o", "json"],
    );
    assert_eq!(run.code, 0, "{run}");
    let d = env
        .sim
        .get("apps/v1", "Deployment", "restored", "api")
        .unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        image("api", 1)
    );
    // The source is untouched.
    assert_eq!(
        history(&env, "api", "shop"),
        [
            (1, "superseded".to_string(), "install".to_string()),
            (2, "deployed".to_string(), "upgrade".to_string())
        ]
    );
}

#[test]
fn restore_refuses_existing_releases_without_force_and_goes_through_the_gate() {
    let env = env(10.0);
    let file = api_backed_up(&env, "b.gz");

    let before = env.sim.snapshot("shop");
    let run = executor(&env, &["restore", "--input-file", &file]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("release shop/api already exists") && run.stderr.contains("--force"),
        "{run}"
    );
    assert_eq!(env.sim.snapshot("shop"), before, "nothing may change");

    let run = executor(
        &env,
        &[
            "restore",
            "--input-file",
            &file,
            "-n",
            "shop",
            "--force",
            "-o",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        history(&env, "api", "shop"),
        [(1, "deployed".to_string(), "install".to_string())]
    );

    // Policies changed since the backup: only a mirror registry is allowed now.
    let policy = write(
        &env,
        "mirror-only.yaml",
        r#"apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRegistries
metadata:
  name: mirror-only
spec:
  enforcementAction: deny
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["Pod"]
  parameters:
    allowedRegistries:
      - mirror.example.com/
"#,
    );
    let run = executor(
        &env,
        &[
            "restore",
            "--input-file",
            &file,
            "-n",
            "elsewhere",
            "--policies",
            &policy,
            "-o",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "blocked");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.to_string().contains("mirror-only")),
        "{run}"
    );
    assert!(env.sim.get("v1", "Namespace", "", "elsewhere").is_none());
    assert!(env.sim.snapshot("elsewhere").is_empty());

    let run = executor(
        &env,
        &["restore", "--input-file", &path(&env, "missing.gz")],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("missing.gz"), "{run}");
    let run = executor(&env, &["restore", "--input-file", &file, "-o", "json"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.json()["outcome"], "error");
    assert!(
        run.json()["message"]
            .as_str()
            .unwrap()
            .contains("release shop/api already exists"),
        "{run}"
    );
}

fn scratch_namespaces(env: &Env) -> Vec<String> {
    env.sim
        .list("v1", "Namespace", None)
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .filter(|n| n.starts_with("drill-"))
        .collect()
}

#[test]
fn dr_drill_measures_the_recovery_time_and_removes_its_namespace() {
    let env = env(10.0);
    // Slow to become ready: 20 simulated seconds, 2 real ones.
    env.sim.set_behaviour(
        &image("db", 1),
        Behaviour::Ready {
            after: Duration::from_secs(20),
        },
    );
    let db = write(&env, "db.yaml", &statefulset_manifests(1));
    let run = apply(&env, "db", &db, &[]);
    assert_eq!(run.code, 0, "{run}");
    let file = path(&env, "db.gz");
    let run = executor(&env, &["backup", "-n", "shop", "--output-file", &file]);
    assert_eq!(run.code, 0, "{run}");

    // Scratch namespaces left by earlier drills: one killed (past its deadline), one kept on
    // purpose, one of a drill still running. Only the first is removed.
    for (name, label, deadline) in [
        ("old-drill-killed", "true", "2020-01-01T00:00:00Z"),
        ("old-drill-kept", "kept", "2020-01-01T00:00:00Z"),
        ("old-drill-running", "true", "2999-01-01T00:00:00Z"),
    ] {
        env.sim
            .create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": name,
                    "labels": {"executor.io/dr-drill": label},
                    "annotations": {"executor.io/dr-drill-deadline": deadline},
                }}),
            )
            .unwrap();
    }
    let log = path(&env, "deploy.log");
    let run = executor_binary(
        &env,
        &[
            "dr-drill",
            "--input-file",
            &file,
            "--rto-target",
            "1h",
            "--deploy-log",
            &log,
            "-o",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "passed", "{run}");
    assert_eq!(report["targetMet"], true);
    assert_eq!(report["rtoTargetSeconds"], 3600.0);
    let rto = report["rtoSeconds"].as_f64().unwrap();
    // Three replicas one after the other, each 2 real seconds to become ready.
    assert!(rto > 4.0 && rto < 60.0, "{rto}");
    let namespace = report["namespace"].as_str().unwrap();
    assert!(namespace.starts_with("drill-shop-"), "{namespace}");
    assert_eq!(report["namespaceDeleted"], true);
    assert_eq!(report["workloads"][0]["name"], "db");
    assert!(
        run.stderr.contains(
            "deleted the scratch namespace(s) of drills that did not finish: old-drill-killed"
        ),
        "{run}"
    );
    let left = |name: &str| {
        env.sim
            .get("v1", "Namespace", "", name)
            .is_some_and(|n| n["metadata"]["deletionTimestamp"].is_null())
    };
    assert!(!left("old-drill-killed"));
    assert!(left("old-drill-kept") && left("old-drill-running"));
    assert!(
        scratch_namespaces(&env).is_empty(),
        "{:?}",
        scratch_namespaces(&env)
    );
    assert!(env.sim.snapshot(namespace).is_empty());
    let line = std::fs::read_to_string(&log).unwrap();
    let event: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(event["command"], "dr-drill");
    assert_eq!(event["outcome"], "deployed");

    let run = executor(
        &env,
        &["dr-drill", "--input-file", &file, "--rto-target", "500ms"],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stdout.contains("dr-drill failed: RTO")
            && run.stdout.contains("(target 0.5s): MISSED")
            && run.stdout.contains("deleted"),
        "{run}"
    );
    assert!(scratch_namespaces(&env).is_empty());
    // The source namespace is untouched.
    assert_eq!(
        env.sim.get("apps/v1", "StatefulSet", "shop", "db").unwrap()["status"]["readyReplicas"],
        3
    );
}

#[test]
fn dr_drill_of_workloads_that_never_become_ready_fails_and_cleans_up() {
    let env = env(20.0);
    let file = api_backed_up(&env, "api.gz");
    env.sim
        .set_behaviour(&image("api", 1), Behaviour::NeverReady);
    let run = executor(
        &env,
        &[
            "dr-drill",
            "--input-file",
            &file,
            "--timeout",
            "2s",
            "-o",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "{run}");
    let report = run.json();
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["rtoSeconds"], Value::Null);
    assert_eq!(report["namespaceDeleted"], true);
    assert!(scratch_namespaces(&env).is_empty());
}

#[test]
fn the_archive_is_gzipped_json_with_a_format_version() {
    let env = env(10.0);
    let config = write(&env, "config.yaml", CONFIG);
    let run = apply(&env, "config", &config, &["--bundle", "baseline"]);
    assert_eq!(run.code, 0, "{run}");
    let file = path(&env, "c.gz");
    let run = executor(&env, &["backup", "-n", "shop", "--output-file", &file]);
    assert_eq!(run.code, 0, "{run}");
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap())
        .read_to_end(&mut json)
        .unwrap();
    let mut archive: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(archive["format"], "executor.backup/v1");
    assert_eq!(archive["namespace"], "shop");
    let objects = archive["releases"][0]["objects"].as_array().unwrap();
    for o in objects {
        let meta = &o["metadata"];
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            assert!(meta.get(key).is_none(), "{key} kept: {o}");
        }
        assert!(o.get("status").is_none(), "{o}");
    }
    let service = objects.iter().find(|o| o["kind"] == "Service").unwrap();
    assert!(service["spec"].get("clusterIP").is_none(), "{service}");
    // A newer format is refused with a clear message.
    archive["format"] = json!("executor.backup/v9");
    let newer = path(&env, "newer.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(archive.to_string().as_bytes()).unwrap();
    std::fs::write(&newer, gz.finish().unwrap()).unwrap();
    let run = executor(&env, &["restore", "--input-file", &newer, "-n", "x"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("executor.backup/v9"), "{run}");
}

#[test]
fn restore_into_another_namespace_leaves_shared_cluster_objects_alone() {
    let env = env(10.0);
    let manifests = format!(
        "{}---\n{}",
        CONFIG,
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: shop-config-reader\nrules:\n  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get]\n"
    );
    let file = write(&env, "config.yaml", &manifests);
    let run = apply(&env, "config", &file, &["--bundle", "baseline"]);
    assert_eq!(run.code, 0, "{run}");
    let archive = path(&env, "config.gz");
    let run = executor(&env, &["backup", "-n", "shop", "--output-file", &archive]);
    assert_eq!(run.code, 0, "{run}");
    // Production changes its ClusterRole after the backup.
    env.sim
        .apply(
            "platform-team",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "shop-config-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
            true,
        )
        .unwrap();
    let run = restore_json(&env, &archive, "shop-copy");
    assert_eq!(run.code, 0, "{run}");
    let report = run.json();
    let shared = report["sharedObjectsKept"].to_string();
    assert!(shared.contains("shop-config-reader"), "{report}");
    // The live ClusterRole is production's, not the archive's.
    let role = env
        .sim
        .get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            "shop-config-reader",
        )
        .unwrap();
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "list"]), "{role}");
    // The copy's namespaced objects are there, and its release does not own the ClusterRole.
    assert!(env
        .sim
        .get("v1", "ConfigMap", "shop-copy", "settings")
        .is_some());
    let history = executor(
        &env,
        &["history", "-r", "config", "-n", "shop-copy", "-o", "json"],
    );
    assert_eq!(history.code, 0, "{history}");
    assert!(!history.stdout.contains("ClusterRole"), "{history}");
    let objects = |ns: &str| {
        executor(&env, &["history", "-r", "config", "-n", ns, "-o", "json"]).json()["revisions"][0]
            ["objects"]
            .as_u64()
    };
    assert_eq!((objects("shop"), objects("shop-copy")), (Some(4), Some(3)));
}
