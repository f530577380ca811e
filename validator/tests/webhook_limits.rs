//! `validator serve` under overload and against slow clients, over real HTTPS on 127.0.0.1:
//! deadlines that stop the work, load shedding, connection timeouts, accept-error backoff and
//! the drain on SIGTERM. Tests that measure the process's CPU time run one at a time.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use validator::webhook::{self, state::Sources, Config, Limits, Running};

/// A policy whose evaluation takes minutes: 25 million iterations for objects labelled
/// `slow: "yes"`.
const SLOW: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sslow
spec:
  crd:
    spec:
      names:
        kind: K8sSlow
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sslow
        violation[{"msg": "slow"}] {
          input.review.object.metadata.labels.slow == "yes"
          count([1 | x := numbers.range(1, 5000)[_]; y := numbers.range(1, 5000)[_]; x + y < 0]) > 0
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSlow
metadata:
  name: slow
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
"#;

/// Only one CPU-measuring test at a time in this process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Pki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: cert_path,
        key: key_path,
    }
}

fn tls_client_config(ca_pem: &str) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_client_config(ca_pem))
        .build()
        .unwrap()
}

struct Server {
    running: Running,
    client: reqwest::Client,
    base: String,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

fn policies(dir: &Path) -> PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("slow.yaml"), SLOW).unwrap();
    policies
}

async fn server(
    timeout: Duration,
    fail_closed: bool,
    concurrency: usize,
    limits: Limits,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies(dir.path());
    let pki = pki(dir.path());
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: pki.cert.clone(),
        tls_key: pki.key.clone(),
        sources: Sources {
            bundle: None,
            paths: vec![policies],
            enable_cel: true,
            exempt_namespaces: Vec::new(),
            waivers: Vec::new(),
            verifier: None,
            inventory: None,
        },
        timeout,
        fail_closed,
        max_body_bytes: 1 << 20,
        max_concurrency: concurrency,
        reload_interval: Duration::from_secs(60),
        provider: false,
        cluster: Default::default(),
        limits,
    };
    let running = webhook::start(config).await.expect("server starts");
    Server {
        base: format!("https://127.0.0.1:{}", running.addr.port()),
        client: client(&pki.ca_pem),
        ca_pem: pki.ca_pem,
        running,
        _dir: dir,
    }
}

fn review(uid: &str, slow: bool) -> Value {
    let labels = if slow {
        json!({"slow": "yes"})
    } else {
        json!({})
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "operation": "CREATE", "namespace": "shop", "name": "cm",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "shop", "labels": labels}},
        "userInfo": {"username": "alice"}
    }})
}

/// Posts a review; the answer and how long it took.
async fn post(client: &reqwest::Client, base: &str, body: &Value) -> (Value, Duration) {
    let start = Instant::now();
    let resp = client
        .post(format!("{base}/validate"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let answer = resp.json().await.expect("json");
    (answer, start.elapsed())
}

async fn metrics(s: &Server) -> String {
    s.client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// CPU time (user + system) of a process so far, from /proc.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; the name is field 2, state field 3.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evaluation_past_its_deadline_is_stopped() {
    let _serial = SERIAL.lock().await;
    let timeout = Duration::from_millis(300);
    let s = server(timeout, true, 4, Limits::default()).await;
    let rss_before = rss_mib();
    let cpu_before = cpu_time("self");
    // Four evaluations that would each run for minutes: all answered at the deadline.
    let answers = futures::future::join_all((0..4).map(|i| {
        let (client, base) = (s.client.clone(), s.base.clone());
        async move { post(&client, &base, &review(&format!("slow-{i}"), true)).await }
    }))
    .await;
    for (answer, took) in &answers {
        assert_eq!(answer["response"]["allowed"], false, "{answer}");
        assert!(
            answer
                .to_string()
                .contains("exceeded its deadline of 300 ms"),
            "{answer}"
        );
        assert!(
            took < &Duration::from_millis(1500),
            "answered after {took:?}"
        );
    }
    // The work stopped with the answers: CPU time barely grows afterwards (four evaluations
    // running on would take both cores for minutes).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_answered = cpu_time("self");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cpu_after = cpu_time("self") - cpu_answered;
    eprintln!(
        "cpu: {:?} until answered, {cpu_after:?} in the 1.5 s after; rss {rss_before} MiB before, {} MiB after",
        cpu_answered - cpu_before,
        rss_mib()
    );
    assert!(
        cpu_after < Duration::from_millis(300),
        "evaluations ran on after their answers: {cpu_after:?} of CPU in 1.5 s"
    );
    assert!(
        rss_mib() < rss_before + 256,
        "memory kept after the burst: {} MiB, {rss_before} MiB before",
        rss_mib()
    );
    // The slots are free again: a quick review is evaluated, not shed or timed out.
    let (answer, took) = post(&s.client, &s.base, &review("quick", false)).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(took < Duration::from_millis(300), "{took:?}");
    let text = metrics(&s).await;
    assert!(
        text.contains("validator_evaluation_errors_total 4"),
        "{text}"
    );
    s.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_by_failure_policy_at_once() {
    let _serial = SERIAL.lock().await;
    for fail_closed in [true, false] {
        let limits = Limits {
            max_queue: 1,
            ..Limits::default()
        };
        let s = server(Duration::from_millis(1500), fail_closed, 1, limits).await;
        // One evaluation runs, one waits for its slot: the queue is full.
        let running = tokio::spawn({
            let (client, base) = (s.client.clone(), s.base.clone());
            async move { post(&client, &base, &review("running", true)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = tokio::spawn({
            let (client, base) = (s.client.clone(), s.base.clone());
            async move { post(&client, &base, &review("waiting", false)).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (answer, took) = post(&s.client, &s.base, &review("shed", false)).await;
        assert!(took < Duration::from_millis(250), "answered after {took:?}");
        assert_eq!(answer["response"]["uid"], "shed");
        assert_eq!(answer["response"]["allowed"], !fail_closed, "{answer}");
        assert!(answer.to_string().contains("overloaded"), "{answer}");
        let text = metrics(&s).await;
        assert!(text.contains("validator_requests_shed_total 1"), "{text}");
        assert!(text.contains("validator_requests_waiting 1"), "{text}");
        // The queued request keeps the deadline of its own arrival: it waited for the slot
        // until the running one was stopped, and was answered within its own deadline.
        let (answer, took) = waiting.await.unwrap();
        assert_eq!(answer["response"]["uid"], "waiting");
        assert!(took < Duration::from_millis(1500 + 300), "{took:?}");
        let (answer, _) = running.await.unwrap();
        assert!(answer.to_string().contains("deadline"), "{answer}");
        s.running.stop();
    }
}

async fn tls_connect(s: &Server) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(&s.ca_pem)));
    connector
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the server closes; how long that took, or `None` if still open after `limit`.
async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_disconnected() {
    let limits = Limits {
        read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let s = server(Duration::from_secs(2), true, 2, limits).await;
    // Headers that never end.
    let mut slow_headers = tls_connect(&s).await;
    slow_headers
        .write_all(
            b"POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n",
        )
        .await
        .unwrap();
    slow_headers.flush().await.unwrap();
    // No TLS handshake at all.
    let mut no_handshake = tokio::net::TcpStream::connect(s.running.addr)
        .await
        .unwrap();
    // A body that never ends.
    let mut slow_body = tls_connect(&s).await;
    slow_body
        .write_all(b"POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"apiVersion\"")
        .await
        .unwrap();
    slow_body.flush().await.unwrap();
    let limit = Duration::from_secs(3);
    let headers = closed_within(&mut slow_headers, limit).await;
    let handshake = closed_within(&mut no_handshake, limit).await;
    assert!(headers.is_some(), "a slow-header client is still connected");
    assert!(
        handshake.is_some(),
        "a client without handshake is still connected"
    );
    // The slow body is answered 408 (as JSON) and the connection closed.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, slow_body.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error\":\"request body not received within 500 ms"),
        "{answer}"
    );
    // Still serving.
    let (answer, _) = post(&s.client, &s.base, &review("after", false)).await;
    assert_eq!(answer["response"]["allowed"], true);
    s.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_covers_the_body_read() {
    // A generous read timeout, a short deadline: the body must be in by the deadline.
    let limits = Limits {
        read_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let s = server(Duration::from_millis(700), true, 2, limits).await;
    let mut slow_body = tls_connect(&s).await;
    let started = Instant::now();
    slow_body
        .write_all(b"POST /validate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"apiVersion\"")
        .await
        .unwrap();
    slow_body.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow_body.read_to_end(&mut answer)).await;
    let waited = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error\":\"request body not received within 700 ms"),
        "{answer}"
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    s.running.stop();
}

/// A `validator serve` process on a free port with the slow policy; extra flags appended.
struct Process {
    child: std::process::Child,
    port: u16,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the binary under `sh -c '<prefix> exec validator serve ...'` and waits for its
/// `listening` line; stderr lines after it arrive on the returned channel.
fn spawn(prefix: &str, extra: &[&str]) -> (Process, std::sync::mpsc::Receiver<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let policies = policies(dir.path());
    let pki = pki(dir.path());
    let port = free_port();
    let mut args = vec![
        "serve".to_string(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--tls-cert={}", pki.cert.display()),
        format!("--tls-key={}", pki.key.display()),
        "--no-default-policies".into(),
        format!("--policies={}", policies.display()),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{prefix} exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_validator"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
            if send.send(value).is_err() {
                break;
            }
        }
    });
    let process = Process {
        child,
        port,
        client: client(&pki.ca_pem),
        _dir: dir,
    };
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the server logs `listening`");
        if line["event"] == "listening" {
            assert!(line["ts"].as_f64().is_some(), "{line}");
            assert_eq!(line["level"], "info");
            break;
        }
    }
    (process, lines)
}

#[test]
fn accept_errors_back_off() {
    let _serial = SERIAL.blocking_lock();
    // 64 file descriptors: the connections below exhaust them, and every accept fails.
    let (server, lines) = spawn(
        "ulimit -n 64 &&",
        &["--read-timeout=60s", "--max-connections=100000"],
    );
    let pid = server.child.id().to_string();
    let mut connections = Vec::new();
    for _ in 0..80 {
        if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", server.port)) {
            connections.push(c);
        }
    }
    // Wait for the first failure, then watch two seconds.
    let first = std::iter::from_fn(|| lines.recv_timeout(Duration::from_secs(10)).ok())
        .find(|l| l["event"] == "accept_failed")
        .expect("an accept_failed line");
    assert_eq!(first["level"], "warn");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("Too many open files"),
        "{first}"
    );
    let cpu_start = cpu_time(&pid);
    let start = Instant::now();
    let mut failures = 0;
    while start.elapsed() < Duration::from_secs(2) {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(50)) {
            if l["event"] == "accept_failed" {
                failures += 1;
            }
        }
    }
    let cpu = cpu_time(&pid) - cpu_start;
    eprintln!("{failures} accept failures logged in 2 s, {cpu:?} of CPU");
    // Backoff doubles from 10 ms to 1 s: a handful of attempts in 2 s, not a busy loop.
    assert!(
        (1..=12).contains(&failures),
        "{failures} accept failures in 2 s"
    );
    assert!(
        cpu < Duration::from_millis(300),
        "{cpu:?} of CPU in 2 s at the fd limit"
    );
    // Once connections close, the server accepts again.
    drop(connections);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let health = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let url = format!("https://127.0.0.1:{}/healthz", server.port);
            match server.client.get(url).send().await {
                Ok(r) => break r.status(),
                Err(e) if Instant::now() > deadline => panic!("no answer after the fds freed: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    assert_eq!(health, 200);
}

#[test]
fn sigterm_drains_in_flight_requests() {
    let _serial = SERIAL.blocking_lock();
    let (mut server, lines) = spawn("", &["--timeout=1500ms"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = format!("https://127.0.0.1:{}", server.port);
    let in_flight = runtime.spawn({
        let (client, base) = (server.client.clone(), base.clone());
        async move { post(&client, &base, &review("in-flight", true)).await }
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The request in flight is answered (at its deadline), then the process exits 0.
    let (answer, _) = runtime.block_on(in_flight).unwrap();
    assert_eq!(answer["response"]["uid"], "in-flight");
    assert!(answer.to_string().contains("deadline"), "{answer}");
    let start = Instant::now();
    let code = loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code}");
    let events: Vec<Value> = lines.try_iter().collect();
    let names: Vec<&str> = events.iter().filter_map(|l| l["event"].as_str()).collect();
    for wanted in ["shutting_down", "decision", "draining", "stopped"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    // New connections are refused once it stopped.
    let refused = runtime.block_on(server.client.get(format!("{base}/healthz")).send());
    assert!(refused.is_err());
}
