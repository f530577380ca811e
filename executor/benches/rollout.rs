//! Rollout latencies of `executor apply` against the simulator (real time, no speed-up):
//!
//! - from the moment the last pod of the new revision became ready (in the simulator) to the
//!   moment the executor declared the rollout complete;
//! - from the moment a crash-looping pod reached the restart threshold to the moment the
//!   executor detected the failure and started the rollback;
//! - the rollback itself, from its start until the restored release was complete.
//!
//! `cargo bench -p executor --bench rollout` (optionally `-- RUNS`, default 5). Under
//! `cargo test --all-targets` (no `--bench` argument) it makes one run of each, as a smoke test.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use serde_json::{json, Value};
use simulator::{Behaviour, MarkKind, Options, Simulator};
use support::{api_manifests, image};

struct Bench {
    sim: Simulator,
    dir: tempfile::TempDir,
}

impl Bench {
    fn apply(&self, version: u32, extra: &[&str]) -> (i32, Value) {
        self.apply_with(version, "", extra)
    }

    fn apply_with(&self, version: u32, spec: &str, extra: &[&str]) -> (i32, Value) {
        let manifest = self.dir.path().join(format!("v{version}.yaml"));
        std::fs::write(
            &manifest,
            api_manifests(version, spec).replace("replicas: 2", "replicas: 3"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_executor"))
            // The images are in no registry: no signature verification.
            .args([
                "apply",
                "-r",
                "api",
                "-n",
                "shop",
                "-o",
                "json",
                "--no-signature-verification",
            ])
            .arg(&manifest)
            .args(extra)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .output()
            .expect("executor runs");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// The wall-clock time of the last (or first) mark of `image` matching `what`.
    fn mark(&self, image: &str, what: impl Fn(&MarkKind) -> bool, last: bool) -> Timestamp {
        let times: Vec<SystemTime> = self
            .sim
            .marks()
            .into_iter()
            .filter(|m| m.image == image && what(&m.what))
            .map(|m| m.at)
            .collect();
        let t = if last {
            times.iter().max()
        } else {
            times.iter().min()
        };
        Timestamp::try_from(*t.expect("a mark")).unwrap()
    }
}

fn at(report: &Value, key: &str) -> Timestamp {
    report["timeline"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        .parse()
        .unwrap()
}

fn millis(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64() * 1000.0
}

fn stats(name: &str, mut samples: Vec<f64>) -> String {
    samples.sort_by(|a, b| a.total_cmp(b));
    let median = samples[samples.len() / 2];
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        samples[0],
        median,
        samples[samples.len() - 1]
    )
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let runs: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benchmarking { 5 } else { 1 });
    let sim = Simulator::start_with(Options {
        speed: 1.0,
        default_behaviour: Behaviour::Ready {
            after: Duration::from_secs(1),
        },
        ..Options::default()
    })
    .expect("simulator");
    sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    let bench = Bench { sim, dir };
    let (code, _) = bench.apply(1, &[]);
    assert_eq!(code, 0, "install");

    let mut complete = Vec::new();
    for v in 2..2 + runs {
        let (code, report) = bench.apply(v, &[]);
        assert_eq!(code, 0, "{report}");
        let ready = bench.mark(&image("api", v), |w| *w == MarkKind::Ready, true);
        complete.push(millis(ready, at(&report, "rolloutComplete")));
    }

    let (mut detect, mut start, mut rollback, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in 50..50 + runs {
        bench.sim.set_behaviour(
            &image("api", v),
            Behaviour::CrashLoop {
                restart_every: Duration::from_secs(1),
            },
        );
        let (code, report) = bench.apply(v, &["--max-restarts", "3"]);
        assert_eq!(code, 1, "{report}");
        let threshold = bench.mark(&image("api", v), |w| *w == MarkKind::Restarted(3), false);
        detect.push(millis(threshold, at(&report, "failureDetected")));
        start.push(millis(threshold, at(&report, "rollbackStarted")));
        rollback.push(millis(
            at(&report, "rollbackStarted"),
            at(&report, "rollbackComplete"),
        ));
        total.push(report["durations"]["total"].as_f64().unwrap() * 1000.0);
    }

    // A rollout that replaced an old pod before failing: the rollback has to start one again.
    let replacing = "\n  strategy:\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 1";
    let mut rollback_restart = Vec::new();
    for v in 80..80 + runs {
        bench.sim.set_behaviour(
            &image("api", v),
            Behaviour::CrashLoop {
                restart_every: Duration::from_secs(1),
            },
        );
        let (code, report) = bench.apply_with(v, replacing, &["--max-restarts", "3"]);
        assert_eq!(code, 1, "{report}");
        rollback_restart.push(millis(
            at(&report, "rollbackStarted"),
            at(&report, "rollbackComplete"),
        ));
    }

    println!("| measure (ms) | runs | min | median | max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("{}", stats("last pod ready -> rollout complete", complete));
    println!("{}", stats("restart threshold -> failure detected", detect));
    println!("{}", stats("restart threshold -> rollback started", start));
    println!(
        "{}",
        stats("rollback started -> rollback complete", rollback)
    );
    println!(
        "{}",
        stats(
            "rollback started -> complete, one old pod to start (ready after 1 s)",
            rollback_restart
        )
    );
    println!(
        "{}",
        stats("failed apply, total (incl. 3 s of crash loop)", total)
    );
}
