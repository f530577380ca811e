//! Load benchmark of `validator serve`: a separate server process, driven at a fixed request
//! rate over HTTPS with realistic AdmissionReviews (Deployments and Pods), production policies.
//!
//! `cargo bench -p validator --bench webhook -- [RATE] [SECONDS]` (default 500 requests/s for 60 s):
//! latency percentiles, errors, the server's CPU time per request and its RSS.
//! `cargo bench -p validator --bench webhook -- burst`: 12 oversized Pods (24,000 containers)
//! at once, then the server's RSS and CPU time until it is idle again.
//! The production bundle is used without its image-signature constraint, which needs an
//! external data provider that a benchmark does not have.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn pki(dir: &Path) -> (String, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    (ca.pem(), dir.join("tls.crt"), dir.join("tls.key"))
}

/// The repository's policy library with the production bundle, minus image signatures.
fn policies(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let out = dir.join("policies");
    std::fs::create_dir_all(&out).unwrap();
    let mut n = 0;
    for entry in walk(&root) {
        let rel = entry
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let keep = rel.ends_with("/template.yaml")
            || rel.starts_with("expansion/")
            || (rel.starts_with("bundles/production/") && !rel.contains("image-signatures"));
        if keep && !rel.starts_with("image-signatures/") {
            n += 1;
            std::fs::copy(&entry, out.join(format!("{n:03}.yaml"))).unwrap();
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn reviews() -> Vec<String> {
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/app/compliant.yaml"),
    )
    .unwrap();
    let docs = validator::manifest::load_bytes("f", fixture.as_bytes(), false);
    let deployment = docs
        .documents
        .iter()
        .find(|d| d.kind() == "Deployment")
        .unwrap()
        .object
        .clone();
    let mut pod = deployment["spec"]["template"].clone();
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("api-7d9f");
    pod["metadata"]["namespace"] = json!("shop");
    let mut bad = pod.clone();
    bad["spec"]["containers"][0]["image"] = json!("nginx:latest");
    bad["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let mut out = Vec::new();
    for (i, (object, group, kind)) in [
        (deployment, "apps", "Deployment"),
        (pod, "", "Pod"),
        (bad, "", "Pod"),
    ]
    .into_iter()
    .enumerate()
    {
        let review: Value = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": format!("bench-{i}"), "operation": "CREATE", "namespace": "shop",
            "name": object["metadata"]["name"],
            "kind": {"group": group, "version": "v1", "kind": kind},
            "object": object, "userInfo": {"username": "system:serviceaccount:ci:deployer"}
        }});
        out.push(review.to_string());
    }
    out
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(end) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[end + 2..].split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// An AdmissionReview of a Pod with `containers` containers (about 130 bytes each).
fn oversized(uid: usize, containers: usize) -> String {
    let containers: Vec<Value> = (0..containers)
        .map(|i| {
            json!({"name": format!("c{i}"), "image": format!("registry.example/app:{i}"),
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}})
        })
        .collect();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("burst-{uid}"), "operation": "CREATE", "namespace": "shop", "name": "huge",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "namespace": "shop"},
            "spec": {"containers": containers}},
        "userInfo": {"username": "alice"}
    }})
    .to_string()
}

fn main() {
    let burst = std::env::args().any(|a| a == "burst");
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rate = args.first().copied().unwrap_or(500);
    let seconds = args.get(1).copied().unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path());
    let policy_dir = policies(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/validator");
    assert!(
        binary.exists(),
        "build it first: cargo build --release -p validator"
    );
    let mut server = Command::new(&binary)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--no-default-policies",
            "--max-body-bytes",
            "16777216",
        ])
        .arg("--policies")
        .arg(&policy_dir)
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap();
        let url = format!("https://127.0.0.1:{port}/validate");
        let ready = format!("https://127.0.0.1:{port}/readyz");
        for _ in 0..200 {
            if client.get(&ready).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if burst {
            let idle = rss_mb(pid);
            let cpu_idle = cpu_seconds(pid);
            let start = Instant::now();
            let handles: Vec<_> = (0..12)
                .map(|i| {
                    let (client, url, body) = (client.clone(), url.clone(), oversized(i, 24_000));
                    tokio::spawn(async move {
                        let r = client.post(&url).header("content-type", "application/json").body(body).send().await;
                        let status = r.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
                        let text = match r { Ok(r) => r.text().await.unwrap_or_default(), Err(e) => e.to_string() };
                        (start.elapsed(), status, text)
                    })
                })
                .collect();
            let mut peak = idle;
            let mut answers = Vec::new();
            for h in handles {
                while !h.is_finished() {
                    peak = peak.max(rss_mb(pid));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers.push(h.await.unwrap());
            }
            let answered = start.elapsed();
            let cpu_answered = cpu_seconds(pid);
            let slowest = answers.iter().map(|a| a.0).max().unwrap();
            let deadline = answers.iter().filter(|a| a.2.contains("deadline")).count();
            let other: Vec<String> = answers.iter().filter(|a| !a.2.contains("deadline")).map(|a| format!("{} {}", a.1, a.2.chars().take(160).collect::<String>())).collect();
            let mut after = Vec::new();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                peak = peak.max(rss_mb(pid));
                after.push(rss_mb(pid));
            }
            println!(
                "burst: 12 pods x 24000 containers; slowest answer {:.2} s ({} at the deadline, others {:?}); server CPU {:.2} s until answered ({:.2} s wall), {:.2} s in the 10 s after",
                slowest.as_secs_f64(), deadline, other, cpu_answered - cpu_idle, answered.as_secs_f64(), cpu_seconds(pid) - cpu_answered
            );
            println!(
                "burst_rss_mb: before={idle:.1} peak={peak:.1} after_1s={:.1} after_5s={:.1} after_10s={:.1}",
                after[0], after[4], after[9]
            );
            return;
        }
        let bodies = Arc::new(reviews());
        let cpu_start = cpu_seconds(pid);
        let total = rate * seconds;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now();
        let mut handles = Vec::with_capacity(total as usize);
        let mut rss = Vec::new();
        for i in 0..total {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            if i % rate == 0 {
                rss.push(rss_mb(pid));
            }
            let client = client.clone();
            let url = url.clone();
            let body = bodies[(i % bodies.len() as u64) as usize].clone();
            handles.push(tokio::spawn(async move {
                let t = Instant::now();
                // An answer by the failure policy (deadline, overload) counts as an error.
                let ok = match client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => r
                        .text()
                        .await
                        .is_ok_and(|t| !t.contains("failure policy")),
                    _ => false,
                };
                (t.elapsed(), ok)
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = 0;
        for h in handles {
            let (d, ok) = h.await.unwrap();
            latencies.push(d.as_secs_f64() * 1000.0);
            if !ok {
                errors += 1;
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds(pid) - cpu_start;
        latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "rate={rate}/s seconds={seconds} requests={} achieved={:.0}/s errors={errors} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            latencies.len(),
            latencies.len() as f64 / elapsed,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            latencies[latencies.len() - 1]
        );
        println!(
            "server_cpu: {cpu:.1} s for {total} requests = {:.3} ms per request",
            cpu * 1000.0 / total as f64
        );
        let first = rss.iter().skip(1).copied().next().unwrap_or(0.0);
        let max = rss.iter().copied().fold(0.0, f64::max);
        println!(
            "server_rss_mb: after_1s={first:.1} last={:.1} max={max:.1}",
            rss.last().copied().unwrap_or(0.0)
        );
    });
    let _ = server.kill();
    let _ = server.wait();
}
