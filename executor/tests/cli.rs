#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! What users see of `executor`: exit code, stdout and stderr, as snapshots.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use simulator::{Options, Simulator};
use support::api_manifests;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run(kubeconfig: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_executor"));
    cmd.args(support::with_signature_opt_out(args))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output().expect("executor runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Replaces RFC 3339 times and `[   1.2s]` progress stamps, which change from run to run.
fn redact(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        if let Some(rest) = l.strip_prefix('[') {
            if let Some(end) = rest.find("s]") {
                l = format!("[time]{}", &rest[end + 2..]);
            }
        }
        let bytes: Vec<char> = l.chars().collect();
        let mut i = 0;
        let mut redacted = String::new();
        while i < bytes.len() {
            let looks_like_time = i + 19 <= bytes.len()
                && bytes[i..i + 4].iter().all(char::is_ascii_digit)
                && bytes[i + 4] == '-'
                && (bytes[i + 10] == 'T' || bytes[i + 10] == ' ')
                && bytes[i + 13] == ':';
            if looks_like_time {
                redacted.push_str("<time>");
                i += 19;
                while i < bytes.len()
                    && (bytes[i].is_ascii_digit() || bytes[i] == '.' || bytes[i] == 'Z')
                {
                    i += 1;
                }
            } else {
                redacted.push(bytes[i]);
                i += 1;
            }
        }
        out.push_str(&redacted);
        out.push('\n');
    }
    out
}

macro_rules! snapshot {
    ($name:expr, $run:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots/cli", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $run.transcript());
        })
    };
}

#[test]
fn help_lists_commands_and_exit_codes() {
    let r = run(None, &["--help"]);
    assert_eq!(r.code, 0);
    snapshot!("executor_help", r);
    let r = run(None, &["apply", "--help"]);
    assert_eq!(r.code, 0);
    snapshot!("executor_apply_help", r);
    let r = run(None, &["dr-drill", "--help"]);
    assert_eq!(r.code, 0);
    snapshot!("executor_dr_drill_help", r);
}

#[test]
fn usage_errors_exit_2() {
    let r = run(None, &["apply", "-r", "Not_A_Name", "x.yaml"]);
    assert_eq!(r.code, 2);
    snapshot!("executor_bad_release_name", r);
    let r = run(None, &["apply", "-r", "api", "x.yaml", "--timeout", "soon"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("`soon` is not a duration; use e.g. 500ms, 2s, 1m30s or 1h"),
        "{}",
        r.transcript()
    );
}

#[test]
fn policy_violations_are_printed_as_the_validator_prints_them() {
    let sim = Simulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let r = run(
        Some(&kubeconfig),
        &[
            "apply",
            "-r",
            "bad",
            "-n",
            "shop",
            "tests/fixtures/app/violations.yaml",
        ],
    );
    assert_eq!(r.code, 1);
    snapshot!("executor_apply_blocked", r);
}

#[test]
fn plan_history_and_status_output() {
    let sim = Simulator::start_with(Options {
        speed: 10.0,
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let v1 = dir.path().join("v1.yaml");
    std::fs::write(&v1, api_manifests(1, "")).unwrap();
    let v2 = dir.path().join("v2.yaml");
    std::fs::write(&v2, api_manifests(2, "")).unwrap();
    let (v1, v2) = (v1.to_str().unwrap(), v2.to_str().unwrap());

    let r = run(Some(&kubeconfig), &["plan", "-r", "api", "-n", "shop", v1]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    snapshot!("executor_plan_install", r);
    let r = run(Some(&kubeconfig), &["apply", "-r", "api", "-n", "shop", v1]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let r = run(Some(&kubeconfig), &["plan", "-r", "api", "-n", "shop", v2]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    snapshot!("executor_plan_update", r);
    let r = run(Some(&kubeconfig), &["apply", "-r", "api", "-n", "shop", v2]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    let r = run(Some(&kubeconfig), &["history", "-r", "api", "-n", "shop"]);
    let r = Run {
        stdout: redact(&r.stdout),
        ..r
    };
    snapshot!("executor_history", r);
    let r = run(Some(&kubeconfig), &["status", "-r", "api", "-n", "shop"]);
    assert_eq!(r.code, 0, "{}", r.transcript());
    snapshot!("executor_status", r);
}
