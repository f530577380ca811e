//! `validator serve`: the admission webhook over HTTPS, with hot policy and certificate reloads.
//!
//! Every admission request has one deadline, `--timeout` from the moment its headers are in:
//! reading its body, the wait for an evaluation slot, the evaluation and the writing of the
//! answer all fit in it. An evaluation is stopped at the deadline, and holds its slot until it
//! has really stopped.

pub mod decide;
mod evaluators;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod state;
pub mod sync;
pub mod tls;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore, TryAcquireError};

use decide::{Budget, Decision};
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
    /// Deadline of one admission request: queue wait, evaluation and answer.
    pub timeout: Duration,
    /// On a deadline, a full queue or an internal error: deny (`fail`) or allow (`ignore`).
    pub fail_closed: bool,
    pub max_body_bytes: usize,
    /// Evaluations running at once.
    pub max_concurrency: usize,
    /// How often policy files are checked for changes.
    pub reload_interval: Duration,
    /// Also answer Gatekeeper ProviderRequests at `POST /provider` (needs `sources.verifier`).
    pub provider: bool,
    /// The cluster `sources.inventory` is synced from.
    pub cluster: sync::ClusterConfig,
    pub limits: Limits,
}

/// Bounds that keep the webhook answering under overload and against slow clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests waiting for an evaluation slot; beyond them a request is answered at once by
    /// the failure policy.
    pub max_queue: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Time a client has for its TLS handshake, for each request's headers, and for its body.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queue: 32,
            max_connections: 1024,
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Requests larger than this do not give their evaluation engines back to the pool (the engines
/// keep their last input, which would keep the memory of a huge object alive).
const POOLED_REQUEST_BYTES: usize = 256 * 1024;

struct App {
    current: Current,
    metrics: Metrics,
    sources: Sources,
    timeout: Duration,
    fail_closed: bool,
    permits: Arc<Semaphore>,
    /// The threads evaluations run on.
    evaluators: Arc<evaluators::Evaluators>,
    max_concurrency: usize,
    max_queue: usize,
    waiting: AtomicUsize,
    max_body_bytes: usize,
    read_timeout: Duration,
}

impl App {
    /// How long a request's body may take to arrive: `--read-timeout`, and never past the
    /// request's deadline (an answer after it would reach nobody).
    fn body_time(&self) -> Duration {
        self.read_timeout.min(self.timeout)
    }
}

/// A running webhook.
pub struct Running {
    pub addr: SocketAddr,
    app: Arc<App>,
    shutdown: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
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
    /// Waits until the server has stopped: after SIGTERM, SIGINT or [`Running::shutdown`], once
    /// in-flight requests are answered.
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        tracing::info!(event = "stopped");
    }
    /// Stops accepting connections and drains in-flight requests (as SIGTERM does).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
    /// Stops everything now, in-flight requests included.
    pub fn stop(&self) {
        self.shutdown();
        if let Some(server) = &self.server {
            server.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Bounds every Rego evaluation of the process by `limit` (regorus's execution timer): a
/// constraint that runs longer fails with a time-limit error instead of running on.
pub fn bound_rego_evaluations(limit: Duration) {
    regorus::utils::limits::set_fallback_execution_timer_config(Some(
        regorus::utils::limits::ExecutionTimerConfig {
            limit,
            check_interval: NonZeroU32::MIN.saturating_add(255),
        },
    ));
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
                tracing::warn!(
                    event = "inventory_not_synced",
                    constraint_kind = kind.as_str(),
                    requires = wanted.as_str(),
                    hint = "referential policies see no such objects; add --sync auto (or --sync KIND)",
                );
            }
            app.current.set(state);
            app.metrics.reload(true);
            tracing::info!(
                event = "policies_loaded",
                generation,
                constraints = constraints as u64,
            );
            Ok(generation)
        }
        Err(e) => {
            app.metrics.reload(false);
            tracing::error!(
                event = "policy_reload_failed",
                error = e.as_str(),
                serving_generation = app.current.generation(),
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
    bound_rego_evaluations(config.timeout);
    let app = Arc::new(App {
        current: Current::default(),
        metrics: Metrics::default(),
        sources: config.sources.clone(),
        timeout: config.timeout,
        fail_closed: config.fail_closed,
        permits: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
        evaluators: evaluators::Evaluators::new(Duration::from_secs(10)),
        max_concurrency: config.max_concurrency.max(1),
        max_queue: config.limits.max_queue,
        waiting: AtomicUsize::new(0),
        max_body_bytes: config.max_body_bytes,
        read_timeout: config.limits.read_timeout,
    });
    // The first set must load: a webhook without policies would only fail or allow everything.
    reload(&app).await.map_err(WebhookError::Policies)?;
    if config.provider && config.sources.verifier.is_none() {
        return Err(WebhookError::ProviderWithoutVerifier);
    }
    let mut tasks = Vec::new();
    if let Some(inventory) = &config.sources.inventory {
        tracing::info!(
            event = "sync_starting",
            kinds = %json!(inventory.kinds.iter().map(ToString::to_string).collect::<Vec<_>>()),
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
        .with_state(app.clone());

    let (shutdown, on_shutdown) = watch::channel(false);
    let server = tokio::spawn(listener::run(
        listener::Serve {
            listener,
            tls: acceptor,
            router,
            max_connections: config.limits.max_connections,
            read_timeout: config.limits.read_timeout,
            drain: config.timeout + config.limits.read_timeout,
        },
        on_shutdown,
    ));
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
        use tokio::signal::unix::{signal, SignalKind};
        let on_hup = app.clone();
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tasks.push(tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = reload(&on_hup).await;
                }
            }));
        }
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                tracing::info!(event = "shutting_down", signal = name);
                let _ = shutdown.send(true);
            }));
        }
    }
    tracing::info!(event = "listening", address = %addr);
    Ok(Running {
        addr,
        app,
        shutdown,
        server: Some(server),
        tasks,
    })
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
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        app.metrics.render(
            app.current.generation(),
            app.waiting.load(Ordering::Relaxed),
            app.evaluators.threads(),
        ),
    )
        .into_response()
}

fn json_text(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    json_text(status, body.to_string())
}

fn error_response(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"error": message}))
}

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyError {
    TooLarge(usize),
    Slow(Duration),
    Broken(String),
}

impl BodyError {
    fn response(&self) -> Response {
        match self {
            BodyError::TooLarge(limit) => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("request body is larger than {limit} bytes (--max-body-bytes)"),
            ),
            BodyError::Slow(limit) => error_response(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body not received within {} ms (--read-timeout, or --timeout when shorter)",
                    millis(*limit)
                ),
            ),
            BodyError::Broken(e) => {
                error_response(StatusCode::BAD_REQUEST, &format!("cannot read body: {e}"))
            }
        }
    }
}

/// Reads a body of at most `limit` bytes within `within`.
async fn read_body(body: Body, limit: usize, within: Duration) -> Result<Bytes, BodyError> {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
            if out.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(out))
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or(Err(BodyError::Slow(within)))
}

/// A request counted as waiting for an evaluation slot while this lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a request got no evaluation slot.
enum NoSlot {
    /// The queue is full: answered at once.
    QueueFull,
    /// The deadline passed while waiting.
    Deadline,
    ShuttingDown,
}

/// An evaluation slot now, or a place in the bounded queue until one frees up or the deadline
/// passes.
async fn slot(app: &App, deadline: Instant) -> Result<tokio::sync::OwnedSemaphorePermit, NoSlot> {
    match app.permits.clone().try_acquire_owned() {
        Ok(permit) => return Ok(permit),
        Err(TryAcquireError::Closed) => return Err(NoSlot::ShuttingDown),
        Err(TryAcquireError::NoPermits) => {}
    }
    if app.waiting.fetch_add(1, Ordering::Relaxed) >= app.max_queue {
        app.waiting.fetch_sub(1, Ordering::Relaxed);
        return Err(NoSlot::QueueFull);
    }
    let _waiting = Waiting(&app.waiting);
    match tokio::time::timeout_at(deadline.into(), app.permits.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        Ok(Err(_)) => Err(NoSlot::ShuttingDown),
        Err(_) => Err(NoSlot::Deadline),
    }
}

/// What the log line of a decision names.
struct Subject {
    kind: String,
    namespace: String,
    name: String,
    operation: String,
}

impl Subject {
    fn of(request: &Value) -> Self {
        let at = |path: &[&str]| {
            path.iter()
                .try_fold(request, |v, k| v.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Subject {
            kind: at(&["kind", "kind"]),
            namespace: at(&["namespace"]),
            name: at(&["name"]),
            operation: at(&["operation"]),
        }
    }
}

/// An evaluated request: its decision and the serialised answer.
struct Answered {
    decision: Decision,
    label: &'static str,
    text: String,
}

async fn validate(State(app): State<Arc<App>>, request: Request) -> Response {
    let start = Instant::now();
    let deadline = start.checked_add(app.timeout).unwrap_or(start);
    let body = match read_body(request.into_body(), app.max_body_bytes, app.body_time()).await {
        Ok(body) => body,
        Err(e) => {
            app.metrics
                .request("malformed", start.elapsed().as_secs_f64());
            return e.response();
        }
    };
    let request = match decide::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            app.metrics
                .request("malformed", start.elapsed().as_secs_f64());
            return error_response(StatusCode::BAD_REQUEST, &e);
        }
    };
    let subject = Subject::of(&request.request);
    let reply_to = decide::Request {
        api_version: request.api_version.clone(),
        uid: request.uid.clone(),
        request: Value::Null,
    };
    let failure = |reason: &str| {
        (
            decide::respond_failure(&reply_to, reason, app.fail_closed).to_string(),
            failure_label(app.fail_closed),
        )
    };
    let Some(state) = app.current.get() else {
        let (text, _) = failure("policies are not loaded");
        return json_text(StatusCode::OK, text);
    };
    let generation = state.generation;
    let deadline_reason = || {
        format!(
            "policy evaluation exceeded its deadline of {} ms (--timeout)",
            millis(app.timeout)
        )
    };
    let mut waited = Duration::ZERO;
    let (text, label, decision) = match slot(&app, deadline).await {
        Err(NoSlot::ShuttingDown) => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        }
        Err(NoSlot::QueueFull) => {
            app.metrics.shed();
            let (text, label) = failure(&format!(
                "overloaded: {} evaluations running and {} waiting (--max-concurrency, --max-queue)",
                app.max_concurrency, app.max_queue
            ));
            (text, label, None)
        }
        Err(NoSlot::Deadline) => {
            app.metrics.evaluation_error();
            waited = start.elapsed();
            let (text, label) = failure(&deadline_reason());
            (text, label, None)
        }
        Ok(permit) => {
            waited = start.elapsed();
            let fail_closed = app.fail_closed;
            let budget = Budget {
                deadline: Some(deadline),
                reuse_engines: body.len() <= POOLED_REQUEST_BYTES,
            };
            drop(body);
            // The slot is held by the evaluation itself: it is free again only once the work
            // has stopped, not when the answer leaves.
            let work = app.evaluators.run(move || {
                let _permit = permit;
                let decision = decide::evaluate_within(&state, &request.request, budget)?;
                budget_left(deadline)?;
                let body = decide::respond(&request, &decision, fail_closed);
                let label = decision_label(&decision, &body);
                let text = body.to_string();
                budget_left(deadline)?;
                Ok::<_, decide::DeadlineExceeded>(Answered {
                    decision,
                    label,
                    text,
                })
            });
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(Ok(Ok(answered))) => {
                    if !answered.decision.errors.is_empty() {
                        app.metrics.evaluation_error();
                    }
                    (answered.text, answered.label, Some(answered.decision))
                }
                Ok(Ok(Err(decide::DeadlineExceeded))) | Err(_) => {
                    app.metrics.evaluation_error();
                    let (text, label) = failure(&deadline_reason());
                    (text, label, None)
                }
                Ok(Err(e)) => {
                    app.metrics.evaluation_error();
                    let (text, label) = failure(&format!("evaluation failed: {e}"));
                    (text, label, None)
                }
            }
        }
    };
    let mut violations = Vec::new();
    if let Some(d) = &decision {
        for h in &d.hits {
            app.metrics.violation(&h.constraint, h.action.as_str());
            violations.push(json!({"constraint": format!("{}/{}", h.kind, h.constraint), "action": h.action.as_str(), "message": h.message}));
        }
    }
    let violations = serde_json::Value::Array(violations);
    let response = json_text(StatusCode::OK, text);
    let seconds = start.elapsed().as_secs_f64();
    app.metrics.request(label, seconds);
    tracing::info!(
        event = "decision",
        uid = reply_to.uid.as_str(),
        kind = subject.kind.as_str(),
        namespace = subject.namespace.as_str(),
        name = subject.name.as_str(),
        operation = subject.operation.as_str(),
        decision = label,
        violations = %violations,
        policy_generation = generation,
        waited_ms = waited.as_secs_f64() * 1000.0,
        duration_ms = seconds * 1000.0,
    );
    response
}

/// `Err` once the deadline has passed.
fn budget_left(deadline: Instant) -> Result<(), decide::DeadlineExceeded> {
    if Instant::now() >= deadline {
        Err(decide::DeadlineExceeded)
    } else {
        Ok(())
    }
}

/// Answers a Gatekeeper ProviderRequest: every key is an image, verified as the trust policy says.
async fn provider(State(app): State<Arc<App>>, request: Request) -> Response {
    let start = Instant::now();
    let deadline = start.checked_add(app.timeout).unwrap_or(start);
    let body = match read_body(request.into_body(), app.max_body_bytes, app.body_time()).await {
        Ok(body) => body,
        Err(e) => return e.response(),
    };
    let keys = match crate::signature::parse_provider_request(&body) {
        Ok(keys) => keys,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, &e),
    };
    let Some(verifier) = app.sources.verifier.clone() else {
        let body = crate::signature::provider_response(
            Vec::new(),
            "signature verification is not configured",
        );
        return json_response(StatusCode::OK, &body);
    };
    let count = keys.len();
    let timeout_reason = || {
        format!(
            "timeout: signature verification exceeded its deadline of {} ms (--timeout)",
            millis(app.timeout)
        )
    };
    let body = match slot(&app, deadline).await {
        Err(NoSlot::ShuttingDown) => {
            return error_response(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
        }
        Err(NoSlot::QueueFull) => {
            app.metrics.shed();
            crate::signature::provider_response(
                Vec::new(),
                "overloaded: too many requests waiting (--max-queue)",
            )
        }
        Err(NoSlot::Deadline) => crate::signature::provider_response(Vec::new(), &timeout_reason()),
        Ok(permit) => {
            let work = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                verifier.provider_response(&keys)
            });
            match tokio::time::timeout_at(deadline.into(), work).await {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => crate::signature::provider_response(
                    Vec::new(),
                    &format!("verification failed: {e}"),
                ),
                Err(_) => crate::signature::provider_response(Vec::new(), &timeout_reason()),
            }
        }
    };
    let errors = body["response"]["items"].as_array().map_or(0, |items| {
        items.iter().filter(|i| i.get("error").is_some()).count()
    });
    let response = json_response(StatusCode::OK, &body);
    tracing::info!(
        event = "provider",
        keys = count as u64,
        errors = errors as u64,
        system_error = %body["response"]["systemError"],
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
    );
    response
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

#[cfg(test)]
mod tests;
