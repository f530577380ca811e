//! One lane of the end-to-end scenarios: the simulator (default) or a real cluster given by
//! `KUBECONFIG`, each scenario in a namespace of its own. Everything a scenario checks is read
//! through the Kubernetes API, the same way on both, and faults are injected by the pod label
//! `sim.fault` (`unready`, `crash`), which the simulator and the fake kubelet of a test
//! control plane both read. Manifests are valid for Kubernetes 1.20 and later: no policy/v1
//! PodDisruptionBudget or batch/v1 CronJob, and every port has a `protocol`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use serde_json::{json, Value};
use simulator::{Options, Simulator};

use super::env::{finished, Run};
use super::image;

pub struct Lane {
    pub sim: Option<Simulator>,
    pub namespace: String,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    /// Namespaces to delete at the end (real cluster only).
    cleanup: std::sync::Mutex<Vec<String>>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A namespace name for scenario `name`: a DNS label, unique per run.
fn namespace_for(name: &str) -> String {
    let base: String = name.replace('_', "-").chars().take(40).collect();
    format!("{base}-{}", std::process::id() % 100_000)
}

impl Lane {
    /// The simulator, as Kubernetes 1.20 applies (ports need `protocol`), in real time.
    pub fn simulator(name: &str) -> Lane {
        let sim = Simulator::start_with(Options {
            apply_requires_port_protocol: true,
            ..Options::default()
        })
        .expect("simulator starts");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let namespace = namespace_for(name);
        sim.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .expect("namespace");
        let runtime = runtime();
        let client = {
            let _inside = runtime.enter();
            sim.client().expect("client")
        };
        Lane {
            sim: Some(sim),
            namespace,
            dir,
            kubeconfig,
            runtime,
            client,
            cleanup: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The cluster of `KUBECONFIG`, in a new namespace deleted at the end.
    pub fn cluster(name: &str) -> Lane {
        let kubeconfig = PathBuf::from(
            std::env::var_os("KUBECONFIG").expect("set KUBECONFIG to the cluster's kubeconfig"),
        );
        let runtime = runtime();
        let client = runtime.block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
                &KubeConfigOptions::default(),
            )
            .await
            .expect("config");
            kube::Client::try_from(config).expect("client")
        });
        let namespace = namespace_for(name);
        let lane = Lane {
            sim: None,
            namespace: namespace.clone(),
            dir: tempfile::tempdir().expect("tempdir"),
            kubeconfig,
            runtime,
            client,
            cleanup: std::sync::Mutex::new(Vec::new()),
        };
        lane.create_namespace(&namespace);
        lane
    }

    pub fn create_namespace(&self, name: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        self.runtime
            .block_on(api.create(&PostParams::default(), &ns))
            .expect("namespace created");
        self.forget_namespace_later(name);
    }

    /// Deletes `name` at the end (on a real cluster).
    pub fn forget_namespace_later(&self, name: &str) {
        if self.sim.is_none() {
            self.cleanup.lock().unwrap().push(name.to_string());
        }
    }

    pub fn is_simulator(&self) -> bool {
        self.sim.is_some()
    }

    /// Whether server-side apply refuses ports without `protocol` (Kubernetes before 1.21).
    pub fn apply_requires_port_protocol(&self) -> bool {
        if self.sim.is_some() {
            return true;
        }
        let info = self
            .runtime
            .block_on(self.client.apiserver_version())
            .expect("version");
        let minor: u32 = info
            .minor
            .trim_end_matches('+')
            .parse()
            .expect("minor version");
        info.major == "1" && minor < 21
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write manifest");
        path.display().to_string()
    }

    /// The executor binary: `args` with `--no-signature-verification` on gated commands.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_executor"));
        cmd.args(super::with_signature_opt_out(args))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        finished(self.command(args).output().expect("executor runs"))
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("executor starts")
    }

    /// `apply -r api -n <namespace> -o json MANIFEST EXTRA...`.
    pub fn apply_args<'a>(&'a self, manifest: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "apply",
            "-r",
            "api",
            "-n",
            self.namespace.as_str(),
            "-o",
            "json",
            manifest,
        ];
        args.extend_from_slice(extra);
        args
    }

    pub fn apply(&self, manifest: &str, extra: &[&str]) -> Run {
        self.run(&self.apply_args(manifest, extra))
    }

    /// `COMMAND -r api -n <namespace> -o json EXTRA...`.
    pub fn release_command(&self, command: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            command,
            "-r",
            "api",
            "-n",
            self.namespace.as_str(),
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn api(&self, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = self
            .runtime
            .block_on(kube::discovery::pinned_kind(&self.client, &gvk))
            .expect("kind known");
        Api::namespaced_with(self.client.clone(), namespace, &ar)
    }

    /// An object of the scenario's namespace.
    pub fn get(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        self.get_in(&self.namespace, api_version, kind, name)
    }

    pub fn get_in(
        &self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Option<Value> {
        let api = self.api(api_version, kind, namespace);
        self.runtime
            .block_on(api.get_opt(name))
            .expect("get")
            .map(|o| serde_json::to_value(o).expect("json"))
    }

    pub fn list(&self, api_version: &str, kind: &str, labels: &str) -> Vec<Value> {
        let api = self.api(api_version, kind, &self.namespace);
        self.runtime
            .block_on(api.list(&ListParams::default().labels(labels)))
            .expect("list")
            .items
            .into_iter()
            .map(|o| serde_json::to_value(o).expect("json"))
            .collect()
    }

    pub fn delete(&self, api_version: &str, kind: &str, name: &str) {
        let api = self.api(api_version, kind, &self.namespace);
        self.runtime
            .block_on(api.delete(name, &DeleteParams::default()))
            .expect("delete");
    }

    pub fn wait_until(&self, timeout: Duration, mut condition: impl FnMut(&Lane) -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if condition(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// (revision, status, phase) of every revision.
    pub fn history(&self) -> Vec<(u64, String, Option<String>)> {
        let run = self.release_command("history", &[]);
        assert_eq!(run.code, 0, "{run}");
        run.json()["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["revision"].as_u64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                    r["phase"].as_str().map(str::to_string),
                )
            })
            .collect()
    }

    /// (revision, status) of every revision.
    pub fn statuses(&self) -> Vec<(u64, String)> {
        self.history().into_iter().map(|(r, s, _)| (r, s)).collect()
    }

    pub fn image_of(&self, deployment: &str) -> String {
        let d = self
            .get("apps/v1", "Deployment", deployment)
            .unwrap_or_else(|| panic!("no Deployment {deployment}"));
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn replicas(&self, deployment: &str) -> Option<i64> {
        self.get("apps/v1", "Deployment", deployment)
            .map(|d| d["spec"]["replicas"].as_i64().unwrap())
    }

    pub fn selector_color(&self) -> String {
        let s = self.get("v1", "Service", "api").expect("service");
        s["spec"]["selector"]["color"].as_str().unwrap().to_string()
    }

    /// Events with `reason` about `object` (a name).
    pub fn events(&self, reason: &str, object: &str) -> usize {
        self.list("v1", "Event", "")
            .iter()
            .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == object)
            .count()
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let names = self.cleanup.lock().map(|n| n.clone()).unwrap_or_default();
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        for name in names {
            let _ = self
                .runtime
                .block_on(api.delete(&name, &DeleteParams::background()));
        }
    }
}

/// How the api's pods misbehave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    None,
    Unready,
    Crash,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::None => "",
            Fault::Unready => "\n        sim.fault: unready",
            Fault::Crash => "\n        sim.fault: crash",
        }
    }
}

const POD: &str = r#"      serviceAccountName: api
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: api
          image: IMAGE
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 256Mi
          readinessProbe:
            httpGet:
              path: /ready
              port: 8080
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8080
"#;

fn common(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  namespace: {ns}
automountServiceAccountToken: false
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: {ns}
spec:
  podSelector: {{}}
  policyTypes: ["Ingress", "Egress"]
"#
    )
}

/// The api (ServiceAccount, NetworkPolicy, Service, Deployment `api`) at `version`, rolled out
/// in place; `progressDeadlineSeconds: 10`.
pub fn rolling(ns: &str, version: u32, fault: Fault) -> String {
    format!(
        r#"{common}---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: {ns}
spec:
  type: ClusterIP
  selector:
    app: api
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: {ns}
spec:
  replicas: 2
  progressDeadlineSeconds: 10
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api{fault}
    spec:
{pod}"#,
        common = common(ns),
        fault = fault.label(),
        pod = POD.replace("IMAGE", &image("api", version)),
    )
}

/// The api as a blue-green pair rendered `color`: the Service `api` selecting `color` and the
/// Deployment `api-<color>` at `version`; `progressDeadlineSeconds: 10`.
pub fn blue_green(ns: &str, version: u32, color: &str, fault: Fault) -> String {
    format!(
        r#"{common}---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: {ns}
spec:
  type: ClusterIP
  selector:
    app: api
    color: {color}
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-{color}
  namespace: {ns}
  labels:
    app: api
    color: {color}
spec:
  replicas: 2
  progressDeadlineSeconds: 10
  selector:
    matchLabels:
      app: api
      color: {color}
  template:
    metadata:
      labels:
        app: api
        color: {color}{fault}
    spec:
{pod}"#,
        common = common(ns),
        fault = fault.label(),
        pod = POD.replace("IMAGE", &image("api", version)),
    )
}
