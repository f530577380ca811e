//! `validator serve`: the admission webhook over HTTPS, with hot policy and certificate reloads.

pub mod decide;
pub mod metrics;
pub mod state;
pub mod sync;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use decide::Decision;
use metrics::Metrics;
use state::{Current, PolicyState, Sources};

#[derive(Debug, Error)]
pub enum WebhookError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("policies: {0}")]
    Policies(String),
    #[error("--provider needs signature verification configured (a trust policy)")]
    ProviderWithoutVerifier,
    #[error("{0}")]
    Sync(String),
}

/// How the webhook runs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub sources: Sources,
    /// Deadline of one evaluation.
    pub timeout: Duration,
    /// On a deadline or internal error: deny (`fail`) or allow (`ignore`).
    pub fail_closed: bool,
    pub max_body_bytes: usize,
    pub max_concurrency: usize,
    /// How often policy files are checked for changes.
    pub reload_interval: Duration,
    /// Also answer Gatekeeper ProviderRequests at `POST /provider` (needs `sources.verifier`).
    pub provider: bool,
    /// The cluster `sources.inventory` is synced from.
    pub cluster: sync::ClusterConfig,
}

struct App {
    current: Current,
    metrics: Metrics,
    sources: Sources,
    timeout: Duration,
    fail_closed: bool,
    permits: Semaphore,
}

/// A running webhook.
pub struct Running {
    pub addr: SocketAddr,
    app: Arc<App>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Reloads the policies now (as SIGHUP does); the old set keeps serving if the new one is broken.
    pub async fn reload(&self) -> Result<u64, String> {
        reload(&self.app).await
    }
    pub fn generation(&self) -> u64 {
        self.app.current.generation()
    }
    /// Waits until the server stops (it runs until the process ends).
    pub async fn wait(mut self) {
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
    pub fn stop(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn log(line: Value) {
    eprintln!("{line}");
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Fingerprint of the policy files: paths, sizes and modification times.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    for p in paths {
        if let Ok(files) = crate::manifest::expand_path(p) {
            for f in files {
                let meta = std::fs::metadata(&f).ok();
                out.push((
                    f,
                    meta.as_ref().map_or(0, |m| m.len()),
                    meta.and_then(|m| m.modified().ok()),
                ));
            }
        }
    }
    out
}

async fn reload(app: &Arc<App>) -> Result<u64, String> {
    let generation = app.current.generation() + 1;
    let sources = app.sources.clone();
    let result = tokio::task::spawn_blocking(move || PolicyState::load(&sources, generation))
        .await
        .map_err(|e| format!("reload task failed: {e}"))
        .and_then(|r| r);
    match result {
        Ok(state) => {
            let constraints = state.constraints.len();
            for (kind, wanted) in &state.unmet_sync {
                log(
                    json!({"ts": now(), "event": "inventory_not_synced", "constraint_kind": kind, "requires": wanted,
                    "hint": "referential policies see no such objects; add --sync auto (or --sync KIND)"}),
                );
            }
            app.current.set(state);
            app.metrics.reload(true);
            log(
                json!({"ts": now(), "event": "policies_loaded", "generation": generation, "constraints": constraints}),
            );
            Ok(generation)
        }
        Err(e) => {
            app.metrics.reload(false);
            log(
                json!({"ts": now(), "event": "policy_reload_failed", "error": e, "serving_generation": app.current.generation()}),
            );
            Err(e)
        }
    }
}

/// Loads the policies, binds, and starts serving in the background.
pub async fn start(config: Config) -> Result<Running, WebhookError> {
    let tls = tls::server_config(config.tls_cert.clone(), config.tls_key.clone())
        .map_err(WebhookError::Tls)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| WebhookError::Listen {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| WebhookError::Listen {
            addr: config.listen,
            source,
        })?;
    let app = Arc::new(App {
        current: Current::default(),
        metrics: Metrics::default(),
        sources: config.sources.clone(),
        timeout: config.timeout,
        fail_closed: config.fail_closed,
        permits: Semaphore::new(config.max_concurrency.max(1)),
    });
    // The first set must load: a webhook without policies would only fail or allow everything.
    reload(&app).await.map_err(WebhookError::Policies)?;
    if config.provider && config.sources.verifier.is_none() {
        return Err(WebhookError::ProviderWithoutVerifier);
    }
    let mut tasks = Vec::new();
    if let Some(inventory) = &config.sources.inventory {
        log(
            json!({"ts": now(), "event": "sync_starting", "kinds": inventory.kinds.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        );
        tasks.extend(
            sync::start(
                &config.cluster,
                inventory.clone(),
                Duration::from_millis(100),
            )
            .await
            .map_err(WebhookError::Sync)?,
        );
    }

    let mut router = Router::new();
    if config.provider {
        router = router.route("/provider", post(provider));
    }
    let router = router
        .route("/validate", post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .with_state(app.clone());

    tasks.push(tokio::spawn(async move {
        loop {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(io, service)
                .await;
            });
        }
    }));
    let watched = app.clone();
    let interval = config.reload_interval;
    tasks.push(tokio::spawn(async move {
        let watched_paths: Vec<PathBuf> = watched
            .sources
            .paths
            .iter()
            .chain(watched.sources.waivers.iter())
            .cloned()
            .collect();
        let mut last = fingerprint(&watched_paths);
        loop {
            tokio::time::sleep(interval).await;
            let now = fingerprint(&watched_paths);
            if now != last {
                last = now;
                let _ = reload(&watched).await;
            }
        }
    }));
    #[cfg(unix)]
    {
        let on_hup = app.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            tasks.push(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = reload(&on_hup).await;
                }
            }));
        }
    }
    log(json!({"ts": now(), "event": "listening", "address": addr.to_string()}));
    Ok(Running { addr, app, tasks })
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.current.get().is_none() {
        return (StatusCode::SERVICE_UNAVAILABLE, "policies not loaded").into_response();
    }
    if let Some(inventory) = &app.sources.inventory {
        if !inventory.synced() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "synced kinds not listed yet",
            )
                .into_response();
        }
    }
    (StatusCode::OK, "ready").into_response()
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.current.generation()),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn validate(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let start = Instant::now();
    let request = match decide::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            app.metrics
                .request("malformed", start.elapsed().as_secs_f64());
            return json_response(StatusCode::BAD_REQUEST, &json!({"error": e}));
        }
    };
    let Ok(_permit) = app.permits.acquire().await else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "shutting down"}),
        );
    };
    let Some(state) = app.current.get() else {
        let body = decide::respond_failure(&request, "policies are not loaded", app.fail_closed);
        return json_response(StatusCode::OK, &body);
    };
    let generation = state.generation;
    let object_request = request.request.clone();
    let work = tokio::task::spawn_blocking(move || decide::evaluate(&state, &object_request));
    let outcome = tokio::time::timeout(app.timeout, work).await;
    let (body, decision_name, decision) = match outcome {
        Ok(Ok(decision)) => {
            if !decision.errors.is_empty() {
                app.metrics.evaluation_error();
            }
            let body = decide::respond(&request, &decision, app.fail_closed);
            let name = decision_label(&decision, &body);
            (body, name, Some(decision))
        }
        Ok(Err(e)) => {
            app.metrics.evaluation_error();
            let reason = format!("evaluation failed: {e}");
            let body = decide::respond_failure(&request, &reason, app.fail_closed);
            (body, failure_label(app.fail_closed), None)
        }
        Err(_) => {
            app.metrics.evaluation_error();
            let reason = format!(
                "policy evaluation exceeded its deadline of {} ms",
                app.timeout.as_millis()
            );
            let body = decide::respond_failure(&request, &reason, app.fail_closed);
            (body, failure_label(app.fail_closed), None)
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    app.metrics.request(decision_name, seconds);
    let mut violations = Vec::new();
    if let Some(d) = &decision {
        for h in &d.hits {
            app.metrics.violation(&h.constraint, h.action.as_str());
            violations.push(json!({"constraint": format!("{}/{}", h.kind, h.constraint), "action": h.action.as_str(), "message": h.message}));
        }
    }
    let r = &request.request;
    let str_at = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    log(json!({
        "ts": now(),
        "event": "decision",
        "uid": request.uid,
        "kind": str_at(r, &["kind", "kind"]),
        "namespace": str_at(r, &["namespace"]),
        "name": str_at(r, &["name"]),
        "operation": str_at(r, &["operation"]),
        "decision": decision_name,
        "violations": violations,
        "policy_generation": generation,
        "duration_ms": seconds * 1000.0,
    }));
    json_response(StatusCode::OK, &body)
}

/// Answers a Gatekeeper ProviderRequest: every key is an image, verified as the trust policy says.
async fn provider(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let start = Instant::now();
    let keys = match crate::signature::parse_provider_request(&body) {
        Ok(keys) => keys,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": e})),
    };
    let Some(verifier) = app.sources.verifier.clone() else {
        let body = crate::signature::provider_response(
            Vec::new(),
            "signature verification is not configured",
        );
        return json_response(StatusCode::OK, &body);
    };
    let Ok(_permit) = app.permits.acquire().await else {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "shutting down"}),
        );
    };
    let count = keys.len();
    let work = tokio::task::spawn_blocking(move || verifier.provider_response(&keys));
    let body = match tokio::time::timeout(app.timeout, work).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => {
            crate::signature::provider_response(Vec::new(), &format!("verification failed: {e}"))
        }
        Err(_) => crate::signature::provider_response(
            Vec::new(),
            &format!(
                "timeout: signature verification exceeded its deadline of {} ms (--timeout)",
                app.timeout.as_millis()
            ),
        ),
    };
    let errors = body["response"]["items"].as_array().map_or(0, |items| {
        items.iter().filter(|i| i.get("error").is_some()).count()
    });
    log(json!({
        "ts": now(),
        "event": "provider",
        "keys": count,
        "errors": errors,
        "system_error": body["response"]["systemError"],
        "duration_ms": start.elapsed().as_secs_f64() * 1000.0,
    }));
    json_response(StatusCode::OK, &body)
}

fn failure_label(fail_closed: bool) -> &'static str {
    if fail_closed {
        "error_denied"
    } else {
        "error_allowed"
    }
}

fn decision_label(decision: &Decision, body: &Value) -> &'static str {
    if decision.exempt {
        "exempt"
    } else if body["response"]["allowed"] == json!(false) {
        if decision.denied() {
            "denied"
        } else {
            "error_denied"
        }
    } else if decision
        .hits
        .iter()
        .any(|h| h.action == crate::policy::EnforcementAction::Warn)
    {
        "warned"
    } else {
        "allowed"
    }
}

/// Parses `2s`, `500ms`, `1m` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 2s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests;
