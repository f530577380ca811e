//! Benchmark of `validator check` with the embedded production bundle over a synthetic corpus.
//!
//! `cargo bench -p validator --bench check` runs 1k, 10k and 20k objects, each in a child process
//! so that its peak RSS is its own, and prints objects/s, evaluations/s and peak RSS.
//! `cargo bench -p validator --bench check -- 10000` runs one size in this process; add
//! `--no-schemas` to leave out the schema checks (on by default, as in `validator check`), or
//! `--no-policies` to time loading and schema checks alone.
//!
//! `-- --library DIR` (with or without a size) uses the Gatekeeper library's templates instead of
//! the bundle: every `template.yaml` under `DIR/library` with its first sample constraint, plus
//! the workload ExpansionTemplates of `policies/expansion`. The library is not part of this
//! repository; give a checkout of open-policy-agent/gatekeeper-library. `--enable-cel=false`
//! evaluates templates that carry both engines with Rego.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use validator::{bundle, check, manifest};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const IMAGE: &str = "registry.example.com/shop/app:1.4.2@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

/// A realistic corpus: per namespace a Namespace and a default-deny NetworkPolicy; per app a
/// Deployment with three containers, Service, Ingress, ServiceAccount, Role, RoleBinding,
/// ConfigMap and NetworkPolicy. Some apps break some policies.
fn corpus(objects: usize) -> String {
    let mut out = String::new();
    let per_app = 8;
    let apps = objects / per_app;
    let namespaces = (apps / 25).max(1);
    let mut count = 0;
    for n in 0..namespaces {
        let _ = write!(out, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{n}\n  labels:\n    env: prod\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny\n  namespace: team-{n}\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n---\n");
        count += 2;
    }
    let mut a = 0;
    while count < objects {
        let ns = a % namespaces;
        let image = if a % 5 == 0 { "nginx:latest" } else { IMAGE };
        let mut containers = String::new();
        for c in 0..3 {
            let _ = write!(containers, "      - name: c{c}\n        image: {image}\n        ports: [{{containerPort: {}}}]\n        env:\n        - {{name: MODE, value: prod}}\n        - name: DB_PASSWORD\n          valueFrom: {{secretKeyRef: {{name: db, key: password}}}}\n        resources:\n          requests: {{cpu: 100m, memory: 128Mi}}\n          limits: {{memory: 256Mi}}\n        securityContext:\n          allowPrivilegeEscalation: false\n          readOnlyRootFilesystem: true\n          capabilities: {{drop: [ALL]}}\n        readinessProbe: {{httpGet: {{path: /ready, port: 8080}}}}\n        livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}}}\n", 8080 + c);
        }
        let _ = write!(out, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\n  labels: {{app: app-{a}}}\nspec:\n  replicas: {}\n  selector:\n    matchLabels: {{app: app-{a}}}\n  template:\n    metadata:\n      labels: {{app: app-{a}}}\n    spec:\n      serviceAccountName: app-{a}\n      automountServiceAccountToken: false\n      securityContext:\n        runAsNonRoot: true\n        runAsUser: 10001\n        seccompProfile: {{type: RuntimeDefault}}\n      containers:\n{containers}---\n", 1 + a % 3);
        let _ = write!(out, "apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nspec:\n  selector: {{app: app-{a}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\n");
        let _ = write!(out, "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nspec:\n  tls: [{{hosts: [app-{a}.example.com], secretName: app-{a}-tls}}]\n  rules:\n  - host: app-{a}.example.com\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: app-{a}, port: {{number: 80}}}}}}}}\n---\n");
        let _ = write!(out, "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nautomountServiceAccountToken: false\n---\n");
        let _ = write!(out, "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nrules:\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get, list{}]\n---\n", if a % 7 == 0 { ", '*'" } else { "" });
        let _ = write!(out, "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-{a}}}\nsubjects:\n- {{kind: ServiceAccount, name: app-{a}, namespace: team-{ns}}}\n---\n");
        let _ = write!(out, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\ndata:\n  LOG_LEVEL: info\n---\n");
        let _ = write!(out, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: app-{a}\n  namespace: team-{ns}\nspec:\n  podSelector: {{matchLabels: {{app: app-{a}}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: gateway}}}}}}]\n---\n");
        count += per_app;
        a += 1;
    }
    out
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The library set: each template with its first sample constraint, and the workload expansions.
fn library_policies(dir: &std::path::Path) -> manifest::Loaded {
    let mut paths: Vec<PathBuf> = Vec::new();
    for group in ["general", "pod-security-policy"] {
        let Ok(entries) = std::fs::read_dir(dir.join("library").join(group)) else {
            continue;
        };
        let mut templates: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        templates.sort();
        for t in templates {
            let template = t.join("template.yaml");
            if !template.is_file() {
                continue;
            }
            let mut samples: Vec<PathBuf> = std::fs::read_dir(t.join("samples"))
                .map(|e| {
                    e.flatten()
                        .map(|e| e.path().join("constraint.yaml"))
                        .collect()
                })
                .unwrap_or_default();
            samples.retain(|c| c.is_file());
            samples.sort();
            paths.push(template);
            paths.extend(samples.into_iter().take(1));
        }
    }
    paths.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/expansion"));
    let loaded = manifest::load_paths(&paths);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    loaded
}

fn run_one(objects: usize, schemas: bool, policies: bool) {
    let dir = std::env::temp_dir().join(format!("validator-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file: PathBuf = dir.join("corpus.yaml");
    std::fs::write(&file, corpus(objects)).expect("write corpus");
    let library = library_dir();
    let policies = if let Some(dir) = &library {
        library_policies(dir)
    } else if policies {
        bundle::load(bundle::DEFAULT_BUNDLE).expect("embedded bundle")
    } else {
        manifest::Loaded::default()
    };
    let start = Instant::now();
    let input = manifest::load_paths(std::slice::from_ref(&file));
    let mut options = check::Options::default();
    if !schemas {
        options.schemas = None;
    }
    options.enable_cel = !std::env::args().any(|a| a == "--enable-cel=false");
    let outcome = check::run(input, &policies.documents, &options);
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "objects={} evaluations={} findings={} schema_findings={} wall_s={:.3} objects_per_s={:.0} evaluations_per_s={:.0} peak_rss_mb={:.1}",
        outcome.objects,
        outcome.evaluations,
        outcome.findings.len(),
        outcome
            .findings
            .iter()
            .filter(|f| matches!(
                f.code,
                validator::report::Code::SchemaViolation | validator::report::Code::MissingSchema
            ))
            .count(),
        secs,
        outcome.objects as f64 / secs,
        outcome.evaluations as f64 / secs,
        peak_rss_mb()
    );
}

fn library_dir() -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--library")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
}

fn main() {
    // As the binary does (the bench runs the check in this process).
    validator::quiet_error_backtraces();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let schemas = !std::env::args().any(|a| a == "--no-schemas");
    if let [size] = sizes.as_slice() {
        run_one(
            *size,
            schemas,
            !std::env::args().any(|a| a == "--no-policies"),
        );
        return;
    }
    let me = std::env::current_exe().expect("own path");
    let passed: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.starts_with("--") && a != "--bench")
        .collect();
    let mut extra = passed.clone();
    if let Some(dir) = library_dir() {
        extra.retain(|a| a != "--library");
        extra.push("--library".into());
        extra.push(dir.display().to_string());
    }
    for size in [1_000, 10_000, 20_000] {
        let out = Command::new(&me)
            .arg(size.to_string())
            .args(&extra)
            .output()
            .expect("child runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
}
