//! Benchmark of reading manifests: time per input shape and size, to show that an input of N
//! bytes is read (or refused) in time linear in N.
//!
//! `cargo bench -p validator --bench load` prints, per shape and size, the median of five reads
//! and the throughput. Shapes: block-style Deployments (what charts render), flow collections
//! nested as deep as accepted (100 levels) many times over, one long flow sequence, and flow
//! nesting past the limit (refused before parsing).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use validator::manifest;

const KIB: usize = 1024;

/// Block-style Deployments until the text has `bytes` bytes.
fn deployments(bytes: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < bytes {
        let _ = write!(
            out,
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  labels:\n    app: app-{i}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/app:1.{i}\n        ports:\n        - containerPort: 8080\n        env:\n        - name: MODE\n          value: prod\n        resources:\n          limits:\n            memory: 256Mi\n        securityContext:\n          privileged: no\n---\n"
        );
        i += 1;
    }
    out
}

/// ConfigMaps whose annotation holds flow sequences nested 100 deep (the most accepted).
fn deepest_accepted(bytes: usize) -> String {
    let nested = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let mut out = String::new();
    let mut i = 0;
    while out.len() < bytes {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c{i}\n  data: {{}}\n  x: {nested}\n---\n"
        );
        i += 1;
    }
    out
}

/// One ConfigMap-like object with a single flow sequence of numbers.
fn long_flow(bytes: usize) -> String {
    let mut out = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: long\nbinaryData: {}\nx: [",
    );
    let mut i = 0u64;
    while out.len() < bytes {
        let _ = write!(out, "{i}, ");
        i += 1;
    }
    out.push_str("0]\n");
    out
}

/// `[` repeated: nesting far past the limit, refused.
fn too_deep(bytes: usize) -> String {
    format!("a: {}", "[".repeat(bytes))
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn measure(shape: &str, text: &str) {
    let mut runs = Vec::new();
    let mut outcome = String::new();
    for _ in 0..5 {
        let start = Instant::now();
        let loaded = manifest::load_bytes("bench.yaml", text.as_bytes(), false);
        runs.push(start.elapsed());
        outcome = format!(
            "{} documents, {} errors",
            loaded.documents.len(),
            loaded.errors.len()
        );
    }
    let time = median(runs);
    let mb = text.len() as f64 / 1e6;
    println!(
        "| {shape} | {:.2} | {:.1} | {:.1} | {outcome} |",
        mb,
        time.as_secs_f64() * 1e3,
        mb / time.as_secs_f64()
    );
}

fn main() {
    println!("| shape | MB | median ms | MB/s | result |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for size in [1024 * KIB, 4096 * KIB, 16384 * KIB] {
        measure("block Deployments", &deployments(size));
    }
    for size in [1024 * KIB, 4096 * KIB] {
        measure("flow nested 100 deep, repeated", &deepest_accepted(size));
        measure("one long flow sequence", &long_flow(size));
    }
    for size in [200 * KIB, 400 * KIB, 1024 * KIB, 4096 * KIB] {
        measure("flow nested past the limit", &too_deep(size));
    }
}
