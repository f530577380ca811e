//! A real Prometheus (Debian's `prometheus` package) for metric gates, scraping a tiny
//! exporter in the test process whose value the test sets, and answering smoke checks.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An HTTP server on 127.0.0.1: `/metrics` serves the gauge `test_error_ratio`, any other path
/// answers with the status the test chose.
pub struct Exporter {
    pub port: u16,
    ratio: Arc<AtomicU64>,
    status: Arc<AtomicU16>,
}

impl Exporter {
    pub fn start(ratio: f64) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("exporter listens");
        let port = listener.local_addr().unwrap().port();
        let value = Arc::new(AtomicU64::new(ratio.to_bits()));
        let status = Arc::new(AtomicU16::new(200));
        let (v, s) = (value.clone(), status.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (v, s) = (v.clone(), s.clone());
                std::thread::spawn(move || answer(stream, &v, &s));
            }
        });
        Exporter {
            port,
            ratio: value,
            status,
        }
    }

    pub fn set_ratio(&self, ratio: f64) {
        self.ratio.store(ratio.to_bits(), Ordering::SeqCst);
    }

    /// The status every path but `/metrics` answers.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

fn answer(stream: TcpStream, ratio: &AtomicU64, status: &AtomicU16) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (code, body, kind) = if path == "/metrics" {
        let value = f64::from_bits(ratio.load(Ordering::SeqCst));
        (
            200,
            format!(
                "# HELP test_error_ratio Share of requests that failed.\n# TYPE test_error_ratio gauge\ntest_error_ratio {value}\n"
            ),
            "text/plain; version=0.0.4",
        )
    } else {
        let code = status.load(Ordering::SeqCst);
        (code, format!("status {code}\n"), "text/plain")
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A free port on 127.0.0.1 (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

fn prometheus_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS") {
        return PathBuf::from(p);
    }
    for dir in std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
    {
        let candidate = dir.join("prometheus");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "these tests need a real Prometheus and none was found (not on PATH, not /usr/bin/prometheus, PROMETHEUS unset): install Debian's package with `apt-get install -y prometheus` (scripts/test.sh does)"
    );
}

/// Prometheus on 127.0.0.1 with its own configuration and storage, scraping `exporter` every
/// second; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(exporter: &Exporter) -> Prometheus {
        let binary = prometheus_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                exporter.port
            ),
        )
        .expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        p.wait_for_samples();
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Until the exporter has been scraped and the gauge can be queried.
    fn wait_for_samples(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                panic!("prometheus exited ({status}):\n{log}");
            }
            if let Some(v) = self.query("test_error_ratio") {
                if !v.is_empty() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prometheus did not scrape the exporter within 30s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The samples of an instant query, by a plain HTTP request.
    pub fn query(&self, query: &str) -> Option<Vec<f64>> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        let encoded: String = query
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        write!(
            stream,
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
        let body = text.split("\r\n\r\n").nth(1)?;
        let doc: serde_json::Value = serde_json::from_str(body).ok()?;
        Some(
            doc["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|s| s["value"][1].as_str()?.parse().ok())
                .collect(),
        )
    }

    /// Until the latest scraped value of the gauge is `value`.
    pub fn wait_for_value(&self, value: f64) {
        let start = Instant::now();
        while self.query("test_error_ratio") != Some(vec![value]) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "prometheus did not see test_error_ratio {value} within 20s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
