//! `validator audit` over the simulator's API: N pods (default 10,000) in 50 namespaces, the
//! production bundle, the release binary as users run it. Prints wall time, peak RSS of the
//! audit process and objects per second.
//!
//! `cargo bench -p validator --bench audit -- [PODS]`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn pod(namespace: &str, i: usize) -> Value {
    let privileged = i.is_multiple_of(10);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("app-{i}"), "namespace": namespace,
                     "labels": {"app": format!("app-{}", i % 7), "team": "shop"}},
        "spec": {
            "serviceAccountName": "app",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app",
                "image": format!("registry.example.com/shop/app-{}:1.{}", i % 13, i % 5),
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
                "securityContext": {"allowPrivilegeEscalation": privileged, "privileged": privileged,
                                    "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    })
}

/// Peak resident set of a running process (VmHWM), in KiB.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user and system) a running process has used, in seconds: fields 14 and 15 of
/// `/proc/<pid>/stat`, in clock ticks of 1/100 s.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn main() {
    let pods: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let sim = simulator::Simulator::start().unwrap();
    // Objects are stored and listed, not run: without the kubelet the seeding stays linear.
    sim.pause_controllers(true);
    let seeding = Instant::now();
    let namespaces = 50;
    for n in 0..namespaces {
        sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}}))
            .unwrap();
    }
    for i in 0..pods {
        sim.create(pod(&format!("ns-{}", i % namespaces), i))
            .unwrap();
    }
    eprintln!(
        "seeded {pods} pods in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args(["audit", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--bundle", "production", "-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut rss = 0;
    let mut cpu = 0.0;
    let reader = {
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
            text
        })
    };
    let status = loop {
        if let Some(kib) = peak_rss(pid) {
            rss = rss.max(kib);
        }
        if let Some(seconds) = cpu_seconds(pid) {
            cpu = seconds;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed().as_secs_f64();
    let text = reader.join().unwrap();
    let report: Value = serde_json::from_str(&text).expect("a JSON report");
    let objects = report["summary"]["objects"].as_u64().unwrap();
    let violations: u64 = report["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["totalViolations"].as_u64().unwrap())
        .sum();
    println!(
        "audit of {objects} objects: exit {}, {wall:.2} s wall, {cpu:.2} s CPU, peak RSS {:.0} MiB, {:.0} objects/s, {violations} violations",
        status.code().unwrap_or(-1),
        rss as f64 / 1024.0,
        objects as f64 / wall
    );
}
