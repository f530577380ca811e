//! A Kubernetes API server for tests, served over HTTP on 127.0.0.1 to real clients.
//!
//! It keeps objects (uid, resourceVersion, generation, labels, managed fields), answers get,
//! list, watch (with bookmarks), create, update, merge patch, server-side apply and delete,
//! with `dryRun=All`, the status subresource and discovery; CRDs add resources. Controllers
//! run Deployments (ReplicaSets, rolling updates, conditions), StatefulSets, DaemonSets and
//! Jobs, and pods behave as the test chose for their image, on a clock the test can speed up.
//!
//! ```no_run
//! use simulator::{Behaviour, Simulator};
//! let sim = Simulator::start().unwrap();
//! sim.set_behaviour("registry.example.com/shop/api:2*", Behaviour::ImagePullBackOff);
//! sim.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig")).unwrap();
//! ```
//!
//! What is simplified: lists in server-side apply are atomic; deletion is immediate (no
//! finalizers or grace periods); strategic merge patches are merge patches and JSON patches are
//! refused; there is no authentication, no protobuf and no aggregated discovery; StatefulSet
//! pods of an older revision are recreated from the latest template (with the older revision
//! label), and no ControllerRevisions are written. The crate's README lists where it differs
//! from a real control plane (measured against Kubernetes 1.20).

pub mod behaviour;
pub mod clock;
mod controller;
mod defaults;
mod error;
pub mod fields;
mod memory;
pub mod pushgateway;
mod refusal;
pub mod resources;
pub mod selector;
mod server;
pub mod store;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;

pub use behaviour::{Behaviour, Behaviours};
pub use clock::Clock;
pub use controller::{Mark, MarkKind};
pub use server::RequestRecord;
pub use store::{Admission, ApiError};

use server::Shared;
use store::{Key, State, Write};

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(#[source] std::io::Error),
    #[error("cannot start the server thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build a client: {0}")]
    Client(#[from] kube::Error),
    #[error("invalid server address: {0}")]
    Address(String),
}

/// How the simulator starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// Nodes (DaemonSets run one pod per node).
    pub nodes: usize,
    /// How often controllers look at the clock when nothing else happens.
    pub tick: Duration,
    /// How often watches that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The behaviour of pods whose image has no rule.
    pub default_behaviour: Behaviour,
    /// Server-side apply as Kubernetes before 1.21 does it: a port (of a Service or a
    /// container) without `protocol` is refused, because `protocol` is a key of those lists
    /// and had no default in apply.
    pub apply_requires_port_protocol: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            speed: 1.0,
            nodes: 3,
            tick: Duration::from_millis(10),
            bookmark_interval: Duration::from_secs(1),
            default_behaviour: Behaviour::default(),
            apply_requires_port_protocol: false,
        }
    }
}

/// A running simulator; stops when dropped.
pub struct Simulator {
    shared: Arc<Shared>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts with default options on a free port.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Result<Self, Error> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(Error::Listen)?;
        listener.set_nonblocking(true).map_err(Error::Listen)?;
        let port = listener.local_addr().map_err(Error::Listen)?.port();
        let changed = Arc::new(Notify::new());
        let mut behaviours = Behaviours::default();
        behaviours.default = options.default_behaviour.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(changed.clone())),
            clock: Clock::new(options.speed),
            behaviours: Mutex::new(behaviours),
            changed,
            requests: Mutex::new(Vec::new()),
            server_address: Mutex::new(format!("127.0.0.1:{port}")),
            bookmark_interval: options.bookmark_interval,
            apply_requires_port_protocol: options.apply_requires_port_protocol,
            refusals: Mutex::new(refusal::Refusals::default()),
            controllers_paused: std::sync::atomic::AtomicBool::new(false),
        });
        seed(&shared, options.nodes);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let for_thread = shared.clone();
        let tick = options.tick;
        let thread = std::thread::Builder::new()
            .name("simulator".into())
            .spawn(move || serve(for_thread, listener, tick, stopped))
            .map_err(Error::Thread)?;
        Ok(Simulator {
            shared,
            port,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig whose current context points at the simulator (namespace `default`).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: simulator\n  cluster:\n    server: {}\ncontexts:\n- name: simulator\n  context:\n    cluster: simulator\n    user: simulator\n    namespace: default\ncurrent-context: simulator\nusers:\n- name: simulator\n  user: {{}}\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        std::fs::write(path, self.kubeconfig()).map_err(|source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// A client configuration for the simulator.
    pub fn config(&self) -> Result<kube::Config, Error> {
        let uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Address(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        Ok(config)
    }

    /// A kube client (call from inside a tokio runtime).
    pub fn client(&self) -> Result<kube::Client, Error> {
        Ok(kube::Client::try_from(self.config()?)?)
    }

    /// The simulated clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Sets how pods whose image matches `image` (exact, or a prefix ending in `*`) behave;
    /// applies to existing pods too.
    pub fn set_behaviour(&self, image: &str, behaviour: Behaviour) {
        if let Ok(mut b) = self.shared.behaviours.lock() {
            b.set(image, behaviour);
        }
        self.shared.changed.notify_one();
    }

    /// Denies client writes for which `hook` returns a message (an admission webhook).
    pub fn add_admission(
        &self,
        hook: impl Fn(&Admission<'_>) -> Option<String> + Send + Sync + 'static,
    ) {
        self.shared.state().admission.push(Arc::new(hook));
    }

    /// Answers every request for objects of `kind` (of `api_version`) with 403 Forbidden, as
    /// the API server does when the client's RBAC does not allow it; discovery still lists
    /// the kind.
    pub fn forbid(&self, api_version: &str, kind: &str) {
        if let Ok(mut r) = self.shared.refusals.lock() {
            r.forbid(api_version, kind);
        }
    }

    /// Fails the next `times` list requests for `kind` that carry a `continue` token with 500,
    /// as a paged list interrupted part-way.
    pub fn fail_continued_lists(&self, api_version: &str, kind: &str, times: usize) {
        if let Ok(mut r) = self.shared.refusals.lock() {
            r.fail_continued_lists(api_version, kind, times);
        }
    }

    /// Answers the next `times` list requests for `kind` that carry a `continue` token with
    /// 410 Expired, as the API server answers a token older than its last compaction.
    pub fn expire_continued_lists(&self, api_version: &str, kind: &str, times: usize) {
        if let Ok(mut r) = self.shared.refusals.lock() {
            r.expire_continued_lists(api_version, kind, times);
        }
    }

    /// Stops (`true`) or resumes the controllers and the kubelet: while paused, objects are
    /// stored and served but nothing reconciles them (to load many objects quickly).
    pub fn pause_controllers(&self, paused: bool) {
        self.shared
            .controllers_paused
            .store(paused, std::sync::atomic::Ordering::Release);
        self.shared.changed.notify_one();
    }

    /// The latest resourceVersion: unchanged means nothing was written.
    pub fn resource_version(&self) -> u64 {
        self.shared.state().resource_version()
    }

    /// An object by apiVersion, kind, namespace (empty for cluster-scoped) and name.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let state = self.shared.state();
        let rt = state.registry.by_kind(api_version, kind)?;
        let key = Key {
            resource: rt.id(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        state.get(&key).cloned()
    }

    /// Objects of a kind, in one namespace or all.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = self.shared.state();
        let Some(rt) = state.registry.by_kind(api_version, kind) else {
            return Vec::new();
        };
        let id = rt.id();
        state.list(&id, namespace).cloned().collect()
    }

    /// Every object of a namespace by `Kind/name` (for before/after comparisons).
    pub fn snapshot(&self, namespace: &str) -> BTreeMap<String, Value> {
        let state = self.shared.state();
        state
            .all()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(_, v)| {
                (
                    format!(
                        "{}/{}",
                        v["kind"].as_str().unwrap_or_default(),
                        v["metadata"]["name"].as_str().unwrap_or_default()
                    ),
                    v.clone(),
                )
            })
            .collect()
    }

    /// Creates an object as a client would (manager `test`).
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let mut state = self.shared.state();
        let rt = state
            .registry
            .by_kind(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            )
            .cloned()
            .ok_or_else(|| ApiError::bad_request("unknown apiVersion/kind"))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        state.create(
            &rt,
            &namespace,
            object,
            Write {
                manager: "test",
                dry_run: false,
                admit: true,
            },
        )
    }

    /// Server-side applies an object as `manager`.
    pub fn apply(&self, manager: &str, object: Value, force: bool) -> Result<Value, ApiError> {
        let mut state = self.shared.state();
        let rt = state
            .registry
            .by_kind(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            )
            .cloned()
            .ok_or_else(|| ApiError::bad_request("unknown apiVersion/kind"))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        state.apply(
            &rt,
            &namespace,
            &name,
            &object,
            force,
            false,
            Write {
                manager,
                dry_run: false,
                admit: true,
            },
        )
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Pod life events with wall-clock times (created, ready, restarted, waiting).
    pub fn marks(&self) -> Vec<Mark> {
        self.shared.state().memory.marks().to_vec()
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` passes.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Simulator) -> bool,
    ) -> bool {
        let start = Instant::now();
        loop {
            if condition(self) {
                return true;
            }
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn seed(shared: &Arc<Shared>, nodes: usize) {
    let mut state = shared.state();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = state.controller_create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "status": {"phase": "Active"}}),
            "kube-apiserver",
        );
    }
    for i in 1..=nodes {
        let name = format!("node-{i}");
        let _ = state.controller_create(
            json!({"apiVersion": "v1", "kind": "Node",
                   "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
                   "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                              "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}}}),
            "kubelet",
        );
    }
}

fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tick: Duration,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let controllers = tokio::spawn(run_controllers(shared, tick));
        tokio::select! {
            _ = axum::serve(listener, app) => {}
            _ = stopped => {}
        }
        controllers.abort();
    });
    runtime.shutdown_background();
}

async fn run_controllers(shared: Arc<Shared>, tick: Duration) {
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
        if shared
            .controllers_paused
            .load(std::sync::atomic::Ordering::Acquire)
        {
            continue;
        }
        let behaviours = shared
            .behaviours
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        {
            let mut state = shared.state();
            let ctx = controller::Context {
                now: shared.clock.now(),
                behaviours: &behaviours,
            };
            controller::pass(&mut state, &ctx);
        }
        // Let clients in between passes.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
