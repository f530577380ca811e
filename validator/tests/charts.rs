//! The Helm charts under `charts/`: every chart with every values file renders with
//! `helm template`, passes `helm lint --strict` and the embedded production bundle, and its
//! rendered output is a snapshot; values that break the rules fail at render time or give
//! findings.
//!
//! Needs `helm` on PATH: `scripts/test.sh` installs the Helm SDK and puts `scripts/helm` there.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// Release name and namespace each chart is rendered with.
const SHOP: (&str, &str) = ("shop", "shop");
const ADMISSION: (&str, &str) = ("admission", "validator-system");

/// The values files every chart ships.
const VALUES_FILES: &[&str] = &[
    "values.yaml",
    "values-dev.yaml",
    "values-staging.yaml",
    "values-prod.yaml",
];

/// The umbrella's components, in the order of its dependencies.
const COMPONENTS: &[&str] = &["postgres", "redis", "kafka", "api", "web"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn output(mut cmd: Command, what: &str) -> Output {
    cmd.current_dir(root()).env("NO_COLOR", "1");
    match cmd.output() {
        Ok(out) => out,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && what == "helm" => panic!(
            "`helm` is not on PATH: run scripts/test.sh, which installs the Helm SDK \
             (helm-python-sdk) and puts scripts/helm on PATH"
        ),
        Err(err) => panic!("cannot run {what}: {err}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A chart rendering: its release, namespace, values files (relative to the repository) and
/// `--set` values.
#[derive(Clone)]
struct Render {
    chart: &'static str,
    release: &'static str,
    namespace: &'static str,
    values: Vec<String>,
    set: Vec<String>,
}

impl Render {
    fn new(chart: &'static str) -> Self {
        let (release, namespace) = if chart == "validator-webhook" {
            ADMISSION
        } else {
            SHOP
        };
        Self {
            chart,
            release,
            namespace,
            values: Vec::new(),
            set: Vec::new(),
        }
    }

    /// With one of the chart's own values files (`values.yaml` is the default anyway).
    fn with_values_file(mut self, file: &str) -> Self {
        if file != "values.yaml" {
            self.values.push(format!("charts/{}/{file}", self.chart));
        }
        self
    }

    fn with_values(mut self, path: &str) -> Self {
        self.values.push(path.to_string());
        self
    }

    fn set(mut self, value: &str) -> Self {
        self.set.push(value.to_string());
        self
    }

    fn chart_dir(&self) -> String {
        format!("charts/{}", self.chart)
    }

    /// `helm template`: the manifests, or Helm's message on failure.
    fn template(&self) -> Result<String, String> {
        let mut cmd = Command::new("helm");
        cmd.args(["template", self.release, &self.chart_dir()])
            .args(["--namespace", self.namespace]);
        for v in &self.values {
            cmd.args(["--values", v]);
        }
        for s in &self.set {
            cmd.args(["--set", s]);
        }
        let out = output(cmd, "helm");
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr))
        }
    }

    fn rendered(&self) -> String {
        self.template()
            .unwrap_or_else(|err| panic!("{}: helm template failed:\n{err}", self.describe()))
    }

    /// `helm lint --strict` passes.
    fn assert_lints(&self) {
        let mut cmd = Command::new("helm");
        cmd.args(["lint", "--strict", &self.chart_dir()])
            .args(["--namespace", self.namespace]);
        for v in &self.values {
            cmd.args(["--values", v]);
        }
        for s in &self.set {
            cmd.args(["--set", s]);
        }
        let out = output(cmd, "helm");
        let stdout = text(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{}: helm lint --strict failed:\n{stdout}{}",
            self.describe(),
            text(&out.stderr)
        );
    }

    /// `validator check` of the rendered chart, as JSON: with `--chart` when the validator has
    /// it (findings then name the template files), else on `helm template`'s output.
    fn check(&self, extra: &[&str]) -> Report {
        require_helm();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_validator"));
        cmd.args(["check", "--format", "json"]).args(extra);
        // Custom resources of external-secrets and cert-manager: their CRDs are not part of
        // these charts, so they have no schema here.
        cmd.args(["--skip-kinds", "ExternalSecret,Certificate,Issuer"]);
        let stdin = if validator_renders_charts() {
            cmd.args(["--chart", &self.chart_dir()])
                .args(["--release", self.release])
                .args(["--namespace", self.namespace]);
            for v in &self.values {
                cmd.args(["--values", v]);
            }
            for s in &self.set {
                cmd.args(["--set", s]);
            }
            None
        } else {
            cmd.arg("-");
            Some(self.rendered())
        };
        let out = run_with_stdin(cmd, stdin.as_deref());
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
            panic!(
                "{}: validator output is not JSON ({err}):\n{}{}",
                self.describe(),
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        Report {
            code: out.status.code().unwrap_or(-1),
            json,
            context: self.describe(),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "helm template {} {} -n {}",
            self.release,
            self.chart_dir(),
            self.namespace
        );
        for v in &self.values {
            s.push_str(&format!(" -f {v}"));
        }
        for v in &self.set {
            s.push_str(&format!(" --set {v}"));
        }
        s
    }
}

fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.current_dir(root())
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("validator starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("validator finishes")
}

/// Fails with directions when there is no `helm` to run (`validator check --chart` needs it too).
fn require_helm() {
    static HELM: OnceLock<()> = OnceLock::new();
    HELM.get_or_init(|| {
        let mut cmd = Command::new("helm");
        cmd.arg("version");
        let out = output(cmd, "helm");
        assert!(
            out.status.success(),
            "`helm version` failed: {}",
            text(&out.stderr)
        );
    });
}

/// Whether `validator check` renders charts itself (`--chart`).
fn validator_renders_charts() -> bool {
    static CHART_OPTION: OnceLock<bool> = OnceLock::new();
    *CHART_OPTION.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_validator"));
        cmd.args(["check", "--help"]);
        text(&output(cmd, "validator").stdout).contains("--chart")
    })
}

struct Report {
    code: i32,
    json: Value,
    context: String,
}

impl Report {
    fn summary(&self, key: &str) -> u64 {
        self.json["summary"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: no summary.{key} in {}", self.context, self.json))
    }

    fn findings(&self) -> Vec<&Value> {
        self.json["findings"]
            .as_array()
            .map(|f| f.iter().collect())
            .unwrap_or_default()
    }

    /// Findings of one policy kind.
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.findings()
            .into_iter()
            .filter(|f| f["policy"]["kind"] == kind)
            .collect()
    }

    /// Exit 0; no error, deny or warn; one object per rendered document; the only finding is
    /// the note that image signatures are not verified (no external data provider here).
    fn assert_clean(&self, rendered: &str) {
        let pretty = serde_json::to_string_pretty(&self.json).unwrap();
        assert_eq!(
            self.code, 0,
            "{}: validator exit code\n{pretty}",
            self.context
        );
        for key in ["errors", "deny", "warn"] {
            assert_eq!(self.summary(key), 0, "{}: {key}\n{pretty}", self.context);
        }
        assert_eq!(
            self.summary("objects"),
            documents(rendered) as u64,
            "{}: every rendered object is checked\n{pretty}",
            self.context
        );
        let findings = self.findings();
        assert_eq!(findings.len(), 1, "{}: findings\n{pretty}", self.context);
        assert_eq!(findings[0]["severity"], "info", "{}", self.context);
        assert_eq!(
            findings[0]["policy"]["kind"], "K8sVerifyImageSignatures",
            "{}",
            self.context
        );
    }

    /// In `--chart` mode, findings point at the chart's template file.
    fn assert_files_end_with(&self, findings: &[&Value], template: &str) {
        if !validator_renders_charts() {
            return;
        }
        for f in findings {
            let file = f["file"].as_str().unwrap_or_default();
            assert!(
                file.ends_with(template) && root().join(file).is_file(),
                "{}: finding should name the file {template}: {f}",
                self.context
            );
        }
    }
}

/// Number of documents in `helm template` output (each has a `# Source:` line).
fn documents(rendered: &str) -> usize {
    rendered
        .lines()
        .filter(|l| l.starts_with("# Source: "))
        .count()
}

/// The rendered documents, parsed.
fn objects(rendered: &str) -> Vec<serde_yaml::Value> {
    rendered
        .split("\n---\n")
        .map(|d| d.trim_start_matches("---\n"))
        .filter(|d| {
            d.lines()
                .any(|l| !l.starts_with('#') && !l.trim().is_empty())
        })
        .map(|d| serde_yaml::from_str(d).unwrap_or_else(|e| panic!("bad YAML ({e}):\n{d}")))
        .collect()
}

fn find<'a>(objects: &'a [serde_yaml::Value], kind: &str, name: &str) -> &'a serde_yaml::Value {
    objects
        .iter()
        .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

/// What a chart's snapshot holds, short enough to review: the SHA-256 of the whole render (any
/// change shows), then per object its kind, namespace, name and template, and for workloads the
/// fields a reviewer checks (replicas, service account, each container's image).
fn summary(rendered: &str) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write as _;
    let digest = Sha256::digest(rendered.as_bytes());
    let mut out = String::from("render sha256: ");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('\n');
    for document in rendered.split("\n---\n") {
        let source = document
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .unwrap_or("?");
        let Some(object) = objects(document).into_iter().next() else {
            continue;
        };
        let field = |v: &serde_yaml::Value| match v {
            serde_yaml::Value::String(s) => s.clone(),
            serde_yaml::Value::Number(n) => n.to_string(),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{} {}/{} ({source})",
            field(&object["kind"]),
            field(&object["metadata"]["namespace"]),
            field(&object["metadata"]["name"])
        );
        let pod = match object["kind"].as_str() {
            Some("Pod") => &object["spec"],
            Some("CronJob") => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => &object["spec"]["template"]["spec"],
        };
        if let Some(containers) = pod["containers"].as_sequence() {
            let _ = writeln!(
                out,
                "  replicas: {}, serviceAccountName: {}",
                field(&object["spec"]["replicas"]),
                field(&pod["serviceAccountName"])
            );
            let init = pod["initContainers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            for (role, list) in [("init container", &init), ("container", containers)] {
                for c in list {
                    let _ = writeln!(
                        out,
                        "  {role} {}: {}",
                        field(&c["name"]),
                        field(&c["image"])
                    );
                }
            }
        }
    }
    out
}

fn snapshot(name: &str, rendered: &str) {
    let summary = summary(rendered);
    insta::with_settings!({snapshot_path => "../../snapshots/charts", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!(name, summary);
    });
}

/// Every values file of the chart: renders, lints, passes the production bundle, snapshot.
fn chart_passes_with_every_values_file(chart: &'static str) {
    for file in VALUES_FILES {
        let render = Render::new(chart).with_values_file(file);
        let rendered = render.rendered();
        assert!(
            rendered.starts_with(&format!("---\n# Source: {chart}/")),
            "{}: helm template output starts with a document and its source",
            render.describe()
        );
        snapshot(
            &format!("{chart}-{}", file.trim_end_matches(".yaml")),
            &rendered,
        );
        render.assert_lints();
        render.check(&[]).assert_clean(&rendered);
    }
}

#[test]
fn api_passes_with_every_values_file() {
    chart_passes_with_every_values_file("api");
}

#[test]
fn web_passes_with_every_values_file() {
    chart_passes_with_every_values_file("web");
}

#[test]
fn postgres_passes_with_every_values_file() {
    chart_passes_with_every_values_file("postgres");
}

#[test]
fn redis_passes_with_every_values_file() {
    chart_passes_with_every_values_file("redis");
}

#[test]
fn kafka_passes_with_every_values_file() {
    chart_passes_with_every_values_file("kafka");
}

#[test]
fn validator_webhook_passes_with_every_values_file() {
    chart_passes_with_every_values_file("validator-webhook");
}

#[test]
fn platform_passes_with_every_values_file() {
    chart_passes_with_every_values_file("platform");
}

#[test]
fn umbrella_renders_every_component_behind_one_default_deny() {
    let rendered = Render::new("platform").rendered();
    for component in COMPONENTS {
        assert!(
            rendered.contains(&format!("# Source: platform/charts/{component}/templates/")),
            "the umbrella renders {component}"
        );
    }
    let objects = objects(&rendered);
    let default_deny: Vec<_> = objects
        .iter()
        .filter(|o| {
            o["kind"].as_str() == Some("NetworkPolicy")
                && o["spec"]["podSelector"]
                    .as_mapping()
                    .is_some_and(|m| m.is_empty())
        })
        .collect();
    assert_eq!(default_deny.len(), 1, "one default-deny for the namespace");
    assert_eq!(default_deny[0]["metadata"]["name"], "shop-default-deny");

    // Without its default-deny the release fails the referential policy.
    let render = Render::new("platform").set("networkPolicy.defaultDeny=false");
    let report = render.check(&[]);
    assert_eq!(report.code, 1, "{}", report.json);
    assert!(!report
        .of_kind("K8sRequireDefaultDenyNetworkPolicy")
        .is_empty());

    // A component can be left out.
    let without_kafka = Render::new("platform").set("kafka.enabled=false");
    let rendered = without_kafka.rendered();
    assert!(!rendered.contains("platform/charts/kafka/"));
    without_kafka.check(&[]).assert_clean(&rendered);
}

#[test]
fn umbrella_environment_files_match_the_components() {
    let read = |path: &str| -> serde_yaml::Value {
        let text = std::fs::read_to_string(root().join(path)).expect(path);
        serde_yaml::from_str(&text).expect(path)
    };
    for env in ["dev", "staging", "prod"] {
        let umbrella = read(&format!("charts/platform/values-{env}.yaml"));
        for component in COMPONENTS {
            assert_eq!(
                umbrella[*component],
                read(&format!("charts/{component}/values-{env}.yaml")),
                "charts/platform/values-{env}.yaml `{component}` differs from \
                 charts/{component}/values-{env}.yaml"
            );
        }
    }
}

#[test]
fn api_and_web_render_blue_and_green_variants() {
    for chart in ["api", "web"] {
        let render = Render::new(chart)
            .with_values_file("values-prod.yaml")
            .set("color=green")
            .set("activeColor=blue");
        let rendered = render.rendered();
        snapshot(&format!("{chart}-color-green"), &rendered);
        render.check(&[]).assert_clean(&rendered);

        let objects = objects(&rendered);
        let deployment = find(&objects, "Deployment", &format!("shop-{chart}-green"));
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"]["color"],
            "green"
        );
        assert_eq!(
            deployment["spec"]["template"]["metadata"]["labels"]["color"],
            "green"
        );
        let hpa = find(
            &objects,
            "HorizontalPodAutoscaler",
            &format!("shop-{chart}-green"),
        );
        assert_eq!(
            hpa["spec"]["scaleTargetRef"]["name"],
            format!("shop-{chart}-green").as_str()
        );
        // The Service keeps sending traffic to the active color.
        let service = find(&objects, "Service", &format!("shop-{chart}"));
        assert_eq!(service["spec"]["selector"]["color"], "blue");

        // Without a color: one Deployment named after the release, no color anywhere.
        let plain = Render::new(chart).rendered();
        assert!(!plain.contains("color:"), "{chart}: no color by default");
    }
}

/// The pod template's `checksum/config` annotation of the chart's workload.
fn config_checksum(render: &Render, kind: &str, name: &str) -> String {
    let objects = objects(&render.rendered());
    let annotations = &find(&objects, kind, name)["spec"]["template"]["metadata"]["annotations"];
    annotations["checksum/config"]
        .as_str()
        .unwrap_or_else(|| {
            panic!(
                "{}: {kind} {name} has no checksum/config",
                render.describe()
            )
        })
        .to_string()
}

#[test]
fn configuration_changes_roll_the_pods() {
    let cases = [
        ("api", "Deployment", "shop-api", "config.logLevel=debug"),
        ("web", "Deployment", "shop-web", "config.logLevel=debug"),
        (
            "postgres",
            "StatefulSet",
            "shop-postgres",
            "config.maxConnections=300",
        ),
        (
            "redis",
            "StatefulSet",
            "shop-redis",
            "config.maxmemory=256mb",
        ),
        (
            "kafka",
            "StatefulSet",
            "shop-kafka",
            "config.numPartitions=3",
        ),
        (
            "validator-webhook",
            "Deployment",
            "admission-validator-webhook",
            "server.timeout=3s",
        ),
    ];
    for (chart, kind, name, change) in cases {
        let before = config_checksum(&Render::new(chart), kind, name);
        assert_eq!(
            before,
            config_checksum(&Render::new(chart), kind, name),
            "{chart}: the checksum is stable"
        );
        let after = config_checksum(&Render::new(chart).set(change), kind, name);
        assert_ne!(
            before, after,
            "{chart}: --set {change} changes the checksum"
        );
    }
}

#[test]
fn postgres_restore_job_renders_only_when_enabled() {
    let default = Render::new("postgres").rendered();
    assert!(
        !default.contains("kind: Job\n"),
        "no restore Job by default"
    );
    assert!(
        default.contains("kind: CronJob\n"),
        "the backup is scheduled"
    );

    for file in ["values.yaml", "values-prod.yaml"] {
        let render = Render::new("postgres")
            .with_values_file(file)
            .set("restore.enabled=true")
            .set("restore.from=shop-postgres-20250101T021500Z.dump");
        let rendered = render.rendered();
        let objects = objects(&rendered);
        let job = find(&objects, "Job", "shop-postgres-restore");
        let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env");
        assert!(env
            .iter()
            .any(|e| e["name"] == "RESTORE_FROM"
                && e["value"] == "shop-postgres-20250101T021500Z.dump"));
        snapshot(
            &format!("postgres-{}-restore", file.trim_end_matches(".yaml")),
            &rendered,
        );
        render.check(&[]).assert_clean(&rendered);
    }
}

#[test]
fn disaster_recovery_drill_release_passes() {
    // The settings of docs/runbooks/dr-drill.md: production values, no backups of the scratch
    // copy, the newest archive restored, no public Ingress.
    let render = Render::new("platform")
        .with_values_file("values-prod.yaml")
        .set("postgres.backup.enabled=false")
        .set("postgres.restore.enabled=true")
        .set("postgres.restore.from=latest")
        .set("web.ingress.enabled=false");
    let rendered = render.rendered();
    let objects = objects(&rendered);
    find(&objects, "Job", "shop-postgres-restore");
    assert!(!rendered.contains("kind: CronJob\n"), "no backups");
    assert!(!rendered.contains("kind: Ingress\n"), "no Ingress");
    render.check(&[]).assert_clean(&rendered);
}

fn fixture(name: &str) -> String {
    format!("tests/fixtures/chart-values/{name}")
}

/// Fails at render time: values.schema.json refuses the values, and Helm says where.
fn assert_refused_by_schema(render: &Render, expected: &[&str]) {
    let err = render
        .template()
        .expect_err(&format!("{}: must not render", render.describe()));
    assert!(
        err.contains("values don't meet the specifications of the schema(s)"),
        "{}: {err}",
        render.describe()
    );
    for part in expected {
        assert!(
            err.contains(part),
            "{}: {part:?} in {err}",
            render.describe()
        );
    }
    let mut cmd = Command::new("helm");
    cmd.args(["lint", "--strict", &render.chart_dir()]);
    for v in &render.values {
        cmd.args(["--values", v]);
    }
    assert!(
        !output(cmd, "helm").status.success(),
        "{}: helm lint fails too",
        render.describe()
    );
}

#[test]
fn plaintext_secret_in_env_fails_rendering() {
    let render = Render::new("api").with_values(&fixture("api-plaintext-secret-env.yaml"));
    assert_refused_by_schema(&render, &["/extraEnv/0", "valueFrom"]);
}

#[test]
fn credential_in_configmap_settings_fails_rendering() {
    let render = Render::new("api").with_values(&fixture("api-plaintext-secret-config.yaml"));
    assert_refused_by_schema(&render, &["PAYMENT_API_TOKEN"]);
}

#[test]
fn plaintext_password_in_values_fails_rendering() {
    let render = Render::new("postgres").with_values(&fixture("postgres-plaintext-password.yaml"));
    assert_refused_by_schema(&render, &["/auth", "'password' not allowed"]);
}

#[test]
fn disabled_probes_give_warn_findings() {
    let render = Render::new("api").with_values(&fixture("api-probes-disabled.yaml"));
    render.assert_lints();
    let report = render.check(&[]);
    assert_eq!(report.code, 0, "warn findings do not fail: {}", report.json);
    assert_eq!(report.summary("warn"), 2, "{}", report.json);
    let probes = report.of_kind("K8sRequiredProbes");
    assert_eq!(probes.len(), 2, "{}", report.json);
    for f in &probes {
        assert_eq!(f["severity"], "warn");
        assert_eq!(f["object"]["kind"], "Deployment");
        assert_eq!(f["object"]["name"], "shop-api");
    }
    let text: Vec<_> = probes.iter().map(|f| f["message"].to_string()).collect();
    assert!(text.iter().any(|m| m.contains("livenessProbe")), "{text:?}");
    assert!(
        text.iter().any(|m| m.contains("readinessProbe")),
        "{text:?}"
    );
    report.assert_files_end_with(&probes, "templates/deployment.yaml");

    assert_eq!(render.check(&["--fail-on-warn"]).code, 1);
}

/// Renders, then the open-ingress policy denies the chart's NetworkPolicy.
fn assert_open_ingress_denied(chart: &'static str, values: &str, message: &str) {
    let render = Render::new(chart).with_values(&fixture(values));
    render.assert_lints();
    let report = render.check(&[]);
    assert_eq!(report.code, 1, "{}", report.json);
    assert_eq!(report.summary("deny"), 1, "{}", report.json);
    let open = report.of_kind("K8sRestrictOpenIngress");
    assert_eq!(open.len(), 1, "{}", report.json);
    assert_eq!(open[0]["object"]["kind"], "NetworkPolicy");
    assert_eq!(open[0]["object"]["name"], format!("shop-{chart}").as_str());
    assert!(
        open[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message),
        "{}",
        open[0]
    );
    report.assert_files_end_with(&open, "templates/networkpolicy.yaml");
}

#[test]
fn network_policy_open_to_every_address_is_denied() {
    assert_open_ingress_denied("api", "api-open-ingress.yaml", "0.0.0.0/0");
}

#[test]
fn network_policy_rule_without_sources_is_denied() {
    assert_open_ingress_denied("web", "web-any-source.yaml", "any source");
}

#[test]
fn chart_without_default_deny_is_denied() {
    let render = Render::new("api").with_values(&fixture("api-no-default-deny.yaml"));
    let report = render.check(&[]);
    assert_eq!(report.code, 1, "{}", report.json);
    let missing = report.of_kind("K8sRequireDefaultDenyNetworkPolicy");
    // Ingress and Egress, for the api's Deployment.
    assert_eq!(missing.len(), 2, "{}", report.json);
    for f in &missing {
        assert_eq!(f["object"]["name"], "shop-api");
    }
    report.assert_files_end_with(&missing, "templates/deployment.yaml");
}

#[test]
fn validator_webhook_syncs_with_read_only_rbac_and_verifies_signatures() {
    require_helm();
    let rendered = Render::new("validator-webhook").rendered();
    let docs = objects(&rendered);
    let role = find(&docs, "ClusterRole", "admission-validator-webhook-sync");
    for rule in role["rules"].as_sequence().unwrap() {
        assert_eq!(
            serde_yaml::to_string(&rule["verbs"]).unwrap(),
            "- get\n- list\n- watch\n",
            "{rule:?}"
        );
    }
    let resources: Vec<&str> = role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_sequence().unwrap().iter())
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(
        resources,
        [
            "serviceaccounts",
            "networkpolicies",
            "poddisruptionbudgets",
            "roles",
            "clusterroles"
        ]
    );
    let deployment = find(&docs, "Deployment", "admission-validator-webhook");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let args = serde_yaml::to_string(&pod["containers"][0]["args"]).unwrap();
    assert!(
        args.contains("--sync=auto")
            && args.contains("--signature-key=/etc/validator/cosign/cosign.pub"),
        "{args}"
    );
    let volumes = serde_yaml::to_string(&pod["volumes"]).unwrap();
    assert!(
        volumes.contains("serviceAccountToken") && volumes.contains("secretName: validator-cosign"),
        "{volumes}"
    );

    // Keyless instead of a key; no sync: no RBAC, no token.
    let keyless = Render::new("validator-webhook")
        .set("signatures.keySecret=")
        .set("signatures.keyless.trustedRootConfigMap=sigstore-root")
        .set("signatures.keyless.identityRegexp=^https://github.com/acme/")
        .set("signatures.keyless.oidcIssuer=https://token.actions.githubusercontent.com")
        .set("server.sync=null");
    let rendered = keyless.rendered();
    let objects = objects(&rendered);
    assert!(!objects
        .iter()
        .any(|o| o["kind"].as_str() == Some("ClusterRole")));
    let deployment = find(&objects, "Deployment", "admission-validator-webhook");
    let pod = &deployment["spec"]["template"]["spec"];
    let args = serde_yaml::to_string(&pod["containers"][0]["args"]).unwrap();
    assert!(
        args.contains("--trusted-root=/etc/validator/trusted-root/trusted_root.json")
            && args
                .contains("--certificate-oidc-issuer=https://token.actions.githubusercontent.com")
            && !args.contains("--sync")
            && !args.contains("--signature-key"),
        "{args}"
    );
    assert!(!serde_yaml::to_string(&pod["volumes"])
        .unwrap()
        .contains("serviceAccountToken"));
    keyless.check(&[]).assert_clean(&rendered);

    // The production bundle without any signature configuration is refused with a message.
    let e = Render::new("validator-webhook")
        .set("signatures.keySecret=")
        .template()
        .unwrap_err();
    assert!(
        e.contains("server.bundle production verifies image signatures"),
        "{e}"
    );
    // Sync rules never grant Secrets.
    let e = Render::new("validator-webhook")
        .set("server.syncRules[0].apiGroups[0]=")
        .set("server.syncRules[0].resources[0]=secrets")
        .template()
        .unwrap_err();
    assert!(e.contains("syncRules"), "{e}");
}

#[test]
fn validator_webhook_audit_cronjob_reads_only_and_passes_the_policies() {
    require_helm();
    let render = Render::new("validator-webhook").set("audit.enabled=true");
    let rendered = render.rendered();
    let docs = objects(&rendered);
    let role = find(&docs, "ClusterRole", "admission-validator-webhook-audit");
    for rule in role["rules"].as_sequence().unwrap() {
        assert_eq!(
            serde_yaml::to_string(&rule["verbs"]).unwrap(),
            "- get\n- list\n",
            "{rule:?}"
        );
        let resources = serde_yaml::to_string(&rule["resources"]).unwrap();
        assert!(
            !resources.contains("secrets") && !resources.contains('*'),
            "{resources}"
        );
    }
    let cronjob = find(&docs, "CronJob", "admission-validator-webhook-audit");
    let pod = &cronjob["spec"]["jobTemplate"]["spec"]["template"];
    assert_eq!(
        pod["spec"]["automountServiceAccountToken"].as_bool(),
        Some(false)
    );
    assert_eq!(
        pod["spec"]["serviceAccountName"].as_str(),
        Some("admission-validator-webhook-audit")
    );
    let args = serde_yaml::to_string(&pod["spec"]["containers"][0]["args"]).unwrap();
    assert!(
        args.starts_with("- audit\n")
            && args.contains("--bundle=production")
            && args.contains("--skip-kinds=Secret")
            && args.contains("--exclude-namespace=kube-system"),
        "{args}"
    );
    // The webhook's Service and PodDisruptionBudget do not select audit pods.
    let labels = &pod["metadata"]["labels"];
    assert_eq!(
        labels["app.kubernetes.io/name"].as_str(),
        Some("validator-webhook-audit")
    );
    render.assert_lints();
    render.check(&[]).assert_clean(&rendered);
    assert!(!args.contains("--pushgateway"), "{args}");
    // Pushing the totals: the flag, and the NetworkPolicy lets the audit reach the gateway.
    let pushing = Render::new("validator-webhook")
        .set("audit.enabled=true")
        .set("audit.pushgateway.url=http://pushgateway.monitoring:9091")
        .set("audit.pushgateway.egress[0].to[0].namespaceSelector.matchLabels.name=monitoring,audit.pushgateway.egress[0].ports[0].port=9091");
    let docs = objects(&pushing.rendered());
    let cronjob = find(&docs, "CronJob", "admission-validator-webhook-audit");
    let args = serde_yaml::to_string(
        &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"],
    )
    .unwrap();
    assert!(
        args.contains("- --pushgateway=http://pushgateway.monitoring:9091\n"),
        "{args}"
    );
    let policy = find(&docs, "NetworkPolicy", "admission-validator-webhook-audit");
    let egress = serde_yaml::to_string(&policy["spec"]["egress"]).unwrap();
    assert!(
        egress.contains("port: 9091") && egress.contains("name: monitoring"),
        "{egress}"
    );
    // Off by default.
    let default = Render::new("validator-webhook").rendered();
    assert!(!objects(&default)
        .iter()
        .any(|o| o["kind"].as_str() == Some("CronJob")));
}
