//! Debian's Prometheus Pushgateway on a free 127.0.0.1 port, for tests of the tools that push
//! metrics; stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Pushgateway {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pushgateway {
    /// Starts the Pushgateway and waits until it listens.
    pub fn start() -> std::io::Result<Pushgateway> {
        let binary = ["/usr/bin/prometheus-pushgateway", "/usr/local/bin/pushgateway"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                std::io::Error::other(
                    "no Pushgateway: install it with `apt-get install prometheus-pushgateway` (scripts/test.sh does)",
                )
            })?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let gateway = Pushgateway {
            child: Command::new(binary)
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(gateway);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(std::io::Error::other(format!(
            "the Pushgateway did not listen on {}",
            gateway.url
        )))
    }

    /// What the Pushgateway exposes at `/metrics`.
    pub fn metrics(&self) -> std::io::Result<String> {
        use std::io::{Read, Write};
        let host = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(host)?;
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    }
}
