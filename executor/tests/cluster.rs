#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! `executor` against a real cluster (`KUBECONFIG`): install, update, a failing update rolled
//! back. Run with `cargo test -p executor --test cluster -- --ignored`.
//!
//! The production bundle admits only `registry.example.com` images, which a test cluster
//! cannot pull, so these tests deliberately use `--no-default-policies` and a public image.

use std::process::Command;

use serde_json::Value;

const PAUSE: &str = "registry.k8s.io/pause:3.9";

fn manifests(namespace: &str, image: &str, version: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
      annotations:
        version: "{version}"
    spec:
      containers:
        - name: api
          image: {image}
"#
    )
}

fn executor(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor"))
        .args(args)
        .output()
        .expect("executor runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args(["delete", "namespace", &self.0, "--wait=false"])
            .output();
    }
}

#[test]
#[ignore = "needs cluster"]
fn install_update_and_rollback_on_a_real_cluster() {
    assert!(std::env::var_os("KUBECONFIG").is_some(), "set KUBECONFIG");
    let ns = format!("executor-test-{}", std::process::id());
    let _cleanup = Scratch(ns.clone());
    let dir = tempfile::tempdir().unwrap();
    let apply = |image: &str, version: &str, extra: &[&str]| {
        let path = dir.path().join(format!("{version}.yaml"));
        std::fs::write(&path, manifests(&ns, image, version)).unwrap();
        let path = path.display().to_string();
        let mut args = vec![
            "apply",
            "-r",
            "api",
            "-n",
            ns.as_str(),
            "--no-default-policies",
            "-o",
            "json",
            path.as_str(),
        ];
        args.extend_from_slice(extra);
        executor(&args)
    };
    let (code, report, stderr) = apply(PAUSE, "1", &["--timeout", "3m"]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let (code, report, stderr) = apply(PAUSE, "2", &["--timeout", "3m"]);
    assert_eq!(code, 0, "{report}\n{stderr}");
    let (code, report, stderr) = apply(
        "registry.k8s.io/this-image-does-not-exist:0",
        "3",
        &["--stuck-after", "20s", "--timeout", "3m"],
    );
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(report["failure"]["reason"], "imagePullBackOff");
    assert_eq!(report["rolledBackTo"], 2);
    let (code, history, _) = executor(&["history", "-r", "api", "-n", &ns, "-o", "json"]);
    assert_eq!(code, 0);
    let statuses: Vec<&str> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["superseded", "superseded", "rolled-back", "deployed"]
    );
}
