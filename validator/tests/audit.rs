//! `validator audit` against the simulator's Kubernetes API: objects created through the API,
//! the binary run as users run it, its transcript as snapshots.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use simulator::Simulator;

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sauditlabels
spec:
  crd:
    spec:
      names:
        kind: K8sAuditLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            label:
              type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sauditlabels
        violation[{"msg": msg}] {
          not input.review.object.metadata.labels[input.parameters.label]
          msg := sprintf("%v %v has no label %v (operation %q)", [input.review.kind.kind, input.review.object.metadata.name, input.parameters.label, input.review.operation])
        }
"#;

fn constraint(name: &str, label: &str) -> String {
    format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAuditLabels\nmetadata:\n  name: {name}\nspec:\n  match:\n    kinds:\n      - apiGroups: [\"\"]\n        kinds: [Pod, Secret]\n    excludedNamespaces: [skipped]\n  parameters:\n    label: {label}\n"
    )
}

/// A directory holding the template and one constraint that requires `label`.
fn policies(root: &Path, dir: &str, label: &str) -> PathBuf {
    let path = root.join(dir);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("template.yaml"), TEMPLATE).unwrap();
    std::fs::write(
        path.join("constraint.yaml"),
        constraint(&format!("must-have-{label}"), label),
    )
    .unwrap();
    path
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(namespace: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}})
}

/// Creates the objects through the API server, as a client would.
async fn create(sim: &Simulator, objects: &[Value]) {
    let client = sim.client().unwrap();
    for object in objects {
        let (api_version, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: match kind.to_lowercase().strip_suffix('y') {
                Some(stem) => format!("{stem}ies"),
                None => format!("{}s", kind.to_lowercase()),
            },
        };
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        api.create(&PostParams::default(), &object).await.unwrap();
    }
}

/// The cluster of most tests: pods in audited, excluded, ignored and constraint-excluded
/// namespaces.
async fn shop(sim: &Simulator) {
    create(
        sim,
        &[
            namespace("shop", json!({})),
            namespace("skipped", json!({})),
            namespace("kube-ops", json!({})),
            namespace(
                "gatekeeper-system",
                json!({"admission.gatekeeper.sh/ignore": "no-self-managing"}),
            ),
            pod("shop", "api", json!({"owner": "payments", "team": "a"})),
            pod("shop", "cart", json!({"owner": "payments"})),
            pod("shop", "web-1", json!({"team": "a"})),
            pod("shop", "web-2", json!({"team": "a"})),
            pod("shop", "web-3", json!({})),
            pod("skipped", "batch", json!({})),
            pod("kube-ops", "dns", json!({})),
            pod("gatekeeper-system", "audit", json!({})),
        ],
    )
    .await;
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn audit(kubeconfig: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_validator"))
        .arg("audit")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("validator runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

macro_rules! snapshot {
    ($name:expr, $text:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots/cli", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $text);
        });
    };
}

fn writes(sim: &Simulator) -> usize {
    sim.requests().iter().filter(|r| r.is_write()).count()
}

#[tokio::test]
async fn audit_counts_violations_skips_excluded_namespaces_and_names_forbidden_kinds() {
    let sim = Simulator::start().unwrap();
    shop(&sim).await;
    sim.forbid("v1", "Secret");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let owner = policies(dir.path(), "owner", "owner");
    let owner = owner.to_str().unwrap();
    let metrics = dir.path().join("audit.prom");
    let written = writes(&sim);
    let human = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--exclude-namespace",
            "kube-*",
            "--chunk-size",
            "2",
            "--constraint-violations-limit",
            "2",
            "--metrics-file",
            metrics.to_str().unwrap(),
        ],
    );
    snapshot!("audit_forbidden_kind_human", human.transcript());
    assert_eq!(writes(&sim), written, "the audit wrote to the cluster");
    // Paged: a page of two objects at a time.
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.path == "/api/v1/pods" && r.query.contains("continue=")));

    let json = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--exclude-namespace",
            "kube-*",
            "-o",
            "json",
        ],
    );
    assert_eq!(json.code, 2, "{}", json.stderr);
    // Pods are evaluated page by page as they are read: a page of one object at a time, or
    // every object in one page, gives the same report.
    for chunk in ["1", "0"] {
        let paged = audit(
            &kubeconfig,
            &[
                "--no-default-policies",
                "--policies",
                owner,
                "--exclude-namespace",
                "kube-*",
                "--chunk-size",
                chunk,
                "-o",
                "json",
            ],
        );
        assert_eq!(paged.stdout, json.stdout, "--chunk-size {chunk}");
    }
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let totals = &report["constraints"][0];
    assert_eq!(totals["name"], "must-have-owner");
    assert_eq!(totals["totalViolations"], 3);
    assert_eq!(totals["violations"].as_array().unwrap().len(), 3);
    assert_eq!(
        totals["violations"][0],
        json!({"group": "", "version": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1",
               "message": "Pod web-1 has no label owner (operation \"\")", "enforcementAction": "deny"})
    );
    let secret = report["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "Secret")
        .unwrap();
    assert_eq!(secret["status"], "forbidden");

    let metrics = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        metrics.contains("validator_audit_violations{constraint_kind=\"K8sAuditLabels\",constraint_name=\"must-have-owner\",enforcement_action=\"deny\"} 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("validator_audit_errors 1\n"), "{metrics}");
    // node-exporter's textfile collector reads the Prometheus text format: Prometheus's own
    // linter (installed with the Prometheus package the tests use) accepts the file.
    let lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(dir.path().join("audit.prom")).unwrap())
        .output()
        .expect("promtool (from the prometheus package) runs");
    assert!(
        lint.status.success(),
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // The same totals pushed to a Pushgateway, as a CronJob run does; a gateway that cannot
    // be reached still gives the report, and exit 2.
    let gateway = simulator::pushgateway::Pushgateway::start().expect("the Pushgateway starts");
    let pushed = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--exclude-namespace",
            "kube-*",
            "--skip-kinds",
            "Secret",
            "--pushgateway",
            gateway.url.as_str(),
        ],
    );
    assert_eq!(pushed.code, 1, "{}", pushed.transcript());
    let exposed = gateway.metrics().unwrap();
    let line = exposed
        .lines()
        .find(|l| l.starts_with("validator_audit_violations{"))
        .unwrap_or_else(|| panic!("not pushed:\n{exposed}"));
    assert!(
        line.contains("job=\"validator-audit\"")
            && line.contains("constraint_name=\"must-have-owner\"")
            && line.ends_with(" 3"),
        "{line}"
    );
    drop(gateway);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let lost = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--skip-kinds",
            "Secret",
            "--pushgateway",
            &format!("http://audit:s3cret@127.0.0.1:{port}"),
        ],
    );
    assert_eq!(lost.code, 2, "{}", lost.transcript());
    assert!(
        lost.stdout.contains("constraints violated"),
        "{}",
        lost.stdout
    );
    assert!(
        lost.stderr
            .contains("error: cannot push the metrics to http://***@127.0.0.1:")
            && !lost.stderr.contains("s3cret"),
        "{}",
        lost.stderr
    );

    // Without the forbidden kind among those matched, the same violations exit 1; in one
    // namespace, only its objects are read.
    let sarif = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--namespace",
            "shop",
            "-o",
            "sarif",
        ],
    );
    assert_eq!(sarif.code, 2, "Secrets are still matched: {}", sarif.stdout);
    let skipped = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            owner,
            "--namespace",
            "shop",
            "--skip-kinds",
            "Secret",
            "-o",
            "json",
        ],
    );
    assert_eq!(skipped.code, 1, "{}", skipped.stdout);
    let report: Value = serde_json::from_str(&skipped.stdout).unwrap();
    assert!(!report["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kind"] == "Secret"));
    let only_pods = dir.path().join("pods");
    std::fs::create_dir_all(&only_pods).unwrap();
    std::fs::write(only_pods.join("template.yaml"), TEMPLATE).unwrap();
    std::fs::write(
        only_pods.join("constraint.yaml"),
        constraint("must-have-owner", "owner").replace("[Pod, Secret]", "[Pod]"),
    )
    .unwrap();
    let github = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            only_pods.to_str().unwrap(),
            "--namespace",
            "shop",
            "-o",
            "github",
        ],
    );
    snapshot!("audit_one_namespace_github", github.transcript());
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.path == "/api/v1/namespaces/shop/pods"));
}

#[tokio::test]
async fn an_interrupted_list_is_resumed_or_reported() {
    let sim = Simulator::start().unwrap();
    shop(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let owner = policies(dir.path(), "owner", "owner");
    let args = [
        "--no-default-policies",
        "--policies",
        owner.to_str().unwrap(),
        "--chunk-size",
        "3",
        "-o",
        "json",
    ];
    // One failed page is retried.
    sim.fail_continued_lists("v1", "Pod", 1);
    let resumed = audit(&kubeconfig, &args);
    assert_eq!(resumed.code, 1, "{}", resumed.stdout);
    let report: Value = serde_json::from_str(&resumed.stdout).unwrap();
    // shop's three, and kube-ops's one (no namespace is excluded here).
    assert_eq!(report["constraints"][0]["totalViolations"], 4);
    // A continue token that expired (410) starts the list again; nothing is audited twice.
    sim.expire_continued_lists("v1", "Pod", 1);
    let restarted = audit(&kubeconfig, &args);
    assert_eq!(restarted.stdout, resumed.stdout);
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.path == "/api/v1/pods" && !r.query.contains("continue="))
            .count(),
        3,
        "one list for each of the two runs, and one more to start again"
    );
    // A list that keeps failing is reported with what was not audited.
    sim.fail_continued_lists("v1", "Pod", 100);
    let broken = audit(&kubeconfig, &args[..5]);
    snapshot!("audit_interrupted_list", broken.transcript());
}

#[tokio::test]
async fn compare_to_reports_objects_that_newly_fail_and_newly_pass() {
    let sim = Simulator::start().unwrap();
    shop(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let owner = policies(dir.path(), "owner", "owner");
    let team = policies(dir.path(), "team", "team");
    let args = [
        "--no-default-policies",
        "--policies",
        owner.to_str().unwrap(),
        "--compare-to",
        team.to_str().unwrap(),
        "--exclude-namespace",
        "kube-*",
    ];
    let human = audit(&kubeconfig, &args);
    snapshot!("audit_compare_to_human", human.transcript());
    let json = audit(&kubeconfig, &[&args[..], &["-o", "json"]].concat());
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["object"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&report["impact"]["newlyFailing"]), ["web-1", "web-2"]);
    assert_eq!(names(&report["impact"]["newlyPassing"]), ["cart"]);
}

#[tokio::test]
async fn referential_templates_read_the_cluster_inventory() {
    let sim = Simulator::start().unwrap();
    create(
        &sim,
        &[
            namespace("shop", json!({})),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": "api", "namespace": "shop"},
                   "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]}}),
            pod("shop", "api", json!({"app": "api"})),
            pod("shop", "web", json!({"app": "web"})),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let library =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/network-policy-coverage");
    let run = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            library.join("template.yaml").to_str().unwrap(),
            "--policies",
            library
                .join("samples/default/constraint.yaml")
                .to_str()
                .unwrap(),
            "--namespace",
            "shop",
        ],
    );
    snapshot!("audit_referential", run.transcript());
}

#[tokio::test]
async fn validating_admission_policy_params_are_read_from_the_cluster() {
    let sim = Simulator::start().unwrap();
    create(
        &sim,
        &[
            namespace("shop", json!({})),
            namespace("policy-params", json!({})),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "limits", "namespace": "policy-params"},
                   "data": {"maxReplicas": "3"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "api", "namespace": "shop"},
                   "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "api"}},
                            "template": {"metadata": {"labels": {"app": "api"}},
                                         "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "shop"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let policy = dir.path().join("replicas.yaml");
    std::fs::write(
        &policy,
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: replica-limit
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - apiGroups: [apps]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [deployments]
  validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    message: too many replicas
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit
spec:
  policyName: replica-limit
  paramRef: {name: limits, namespace: policy-params, parameterNotFoundAction: Deny}
  validationActions: [Deny]
"#,
    )
    .unwrap();
    let run = audit(
        &kubeconfig,
        &[
            "--no-default-policies",
            "--policies",
            policy.to_str().unwrap(),
            "--chunk-size",
            "1",
            "-o",
            "json",
        ],
    );
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    let denied: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "deny")
        .map(|f| {
            (
                f["object"]["name"].as_str().unwrap(),
                f["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(denied, [("api", "too many replicas")]);
    let kinds: Vec<&str> = report["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Namespace", "ConfigMap", "Deployment"]);
}

#[test]
fn an_unreachable_api_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\ncurrent-context: gone\nusers:\n- name: gone\n  user: {{}}\n"),
    )
    .unwrap();
    let run = audit(&kubeconfig, &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.starts_with(&format!(
            "error: audit: cannot read the API server's discovery documents (http://127.0.0.1:{port}): "
        )),
        "{}",
        run.stderr
    );
}

/// Against a real cluster (KUBECONFIG): the default bundle over everything it matches.
#[test]
#[ignore = "needs a cluster"]
fn audits_a_real_cluster() {
    let Some(kubeconfig) = std::env::var_os("KUBECONFIG") else {
        panic!("KUBECONFIG must name the cluster's kubeconfig");
    };
    let run = audit(
        Path::new(&kubeconfig),
        &["-o", "json", "--exclude-namespace", "kube-*"],
    );
    let report: Value = serde_json::from_str(&run.stdout).expect(&run.stderr);
    assert!(run.code == 0 || run.code == 1, "{}", run.stdout);
    let kinds = report["kinds"].as_array().unwrap();
    assert!(kinds
        .iter()
        .any(|k| k["kind"] == "Pod" && k["status"] == "listed"));
    assert!(report["summary"]["objects"].as_u64().unwrap() > 0);
}
