//! Accepting connections: a connection cap, TLS-handshake and header-read timeouts, backoff on
//! accept errors (e.g. at the file-descriptor limit), and a graceful drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long to wait after a failed `accept` before the next one: 10 ms, doubling, at most 1 s;
/// back to the start after a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(1);

    /// The wait before the next attempt; each call doubles the following one.
    pub fn failed(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
    pub fn succeeded(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

/// What the accept loop needs.
pub struct Serve {
    pub listener: TcpListener,
    pub tls: tokio_rustls::TlsAcceptor,
    pub router: Router,
    /// Connections open at once; the next one is accepted when one closes.
    pub max_connections: usize,
    /// Time a client has for its TLS handshake, and then for each request's headers.
    pub read_timeout: Duration,
    /// On shutdown, how long in-flight requests may take to finish.
    pub drain: Duration,
}

/// Accepts and serves connections until `shutdown` turns true, then stops accepting, lets
/// in-flight requests finish (at most `drain`) and returns.
pub async fn run(serve: Serve, mut shutdown: watch::Receiver<bool>) {
    let connections = Arc::new(Semaphore::new(serve.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(serve.read_timeout);
    let http = Arc::new(http);
    let mut backoff = Backoff::default();
    // The cap is logged when reached, at most once a minute.
    let mut cap_logged: Option<std::time::Instant> = None;
    loop {
        let permit = match connections.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if cap_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    cap_logged = Some(std::time::Instant::now());
                    tracing::warn!(
                        event = "connection_limit_reached",
                        max_connections = serve.max_connections,
                    );
                }
                tokio::select! {
                    permit = connections.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    _ = shutdown.changed() => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = serve.listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff.succeeded();
                stream
            }
            Err(e) => {
                let wait = backoff.failed();
                tracing::warn!(
                    event = "accept_failed",
                    error = %e,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue,
                    _ = shutdown.changed() => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = serve.tls.clone();
        let router = serve.router.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        let read_timeout = serve.read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(stream)) = tokio::time::timeout(read_timeout, tls.accept(stream)).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(connection).await;
        });
    }
    let open = graceful.count();
    tracing::info!(event = "draining", connections = open);
    if tokio::time::timeout(serve.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            event = "drain_timed_out",
            drain_ms = u64::try_from(serve.drain.as_millis()).unwrap_or(u64::MAX)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..9).map(|_| b.failed().as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(10));
    }
}
