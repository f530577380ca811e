//! The `validator` command as users see it: exit code, stdout and stderr, as snapshots. The
//! snapshots and stdin run the binary; checks of the report alone run the CLI in this process.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

fn validator(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_validator"));
    cmd.args(args)
        .current_dir(root())
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
    let out = child.wait_with_output().expect("validator finishes");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `validator args...` run in this process, as the binary runs it from the repository root:
/// relative paths that name a file or directory of the repository are made absolute. Its
/// exit code, its report, and on stderr the error the binary would print.
fn validator_in_process(args: &[&str]) -> Run {
    use clap::Parser;
    let argv = std::iter::once("validator".into()).chain(args.iter().map(|a| {
        let path = root().join(a);
        if !a.starts_with('-') && Path::new(a).is_relative() && path.exists() {
            path.into_os_string()
        } else {
            std::ffi::OsString::from(a)
        }
    }));
    let cli = match validator::cli::Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let (stdout, stderr) = if e.use_stderr() {
                (String::new(), text)
            } else {
                (text, String::new())
            };
            return Run {
                code: e.exit_code(),
                stdout,
                stderr,
            };
        }
    };
    let mut out = Vec::new();
    let (code, stderr) = match validator::cli::run_to(cli, &mut out, false) {
        Ok(code) => (i32::from(code), String::new()),
        Err(e) => (
            i32::from(validator::args::exit::ERROR),
            format!("error: {e}\n"),
        ),
    };
    Run {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr,
    }
}

macro_rules! snapshot {
    ($name:expr, $run:expr) => {
        insta::with_settings!({snapshot_path => "../../snapshots/cli", prepend_module_to_snapshot => false}, {
            // The tool's version (SARIF's driver) changes with every release, not with the test.
            let transcript = $run.transcript().replace(
                &format!("\"version\": \"{}\"", env!("CARGO_PKG_VERSION")),
                "\"version\": \"[version]\"",
            );
            insta::assert_snapshot!($name, transcript);
        })
    };
}

#[test]
fn compliant_app_passes_the_production_bundle() {
    let run = validator(&["check", "tests/fixtures/app/compliant.yaml"], None);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("check_compliant", run);
}

#[test]
fn violations_in_every_format() {
    for format in ["human", "json", "sarif", "junit", "github"] {
        let run = validator(
            &[
                "check",
                "--format",
                format,
                "tests/fixtures/app/violations.yaml",
            ],
            None,
        );
        assert_eq!(run.code, 1, "{format}: {}", run.transcript());
        let run = Run {
            stdout: redact_policy_set(&run.stdout),
            ..run
        };
        snapshot!(format!("check_violations_{format}"), run);
    }
}

/// The policy set digest changes with every policy edit; snapshots show a placeholder.
fn redact_policy_set(stdout: &str) -> String {
    let key = "\"policySet\": \"";
    match stdout.find(key) {
        Some(start) => {
            let value = start + key.len();
            let end = stdout[value..]
                .find('"')
                .map_or(stdout.len(), |e| value + e);
            format!("{}sha256:<policy set>{}", &stdout[..value], &stdout[end..])
        }
        None => stdout.to_string(),
    }
}

#[test]
fn json_reports_attest_the_policy_set_and_every_object() {
    let run = validator_in_process(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/app/compliant.yaml",
    ]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let attestation = &v["attestation"];
    assert_eq!(attestation["policySet"].as_str().unwrap().len(), 71);
    let objects = attestation["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 4);
    let loaded =
        validator::manifest::load_paths(&[root().join("tests/fixtures/app/compliant.yaml")]);
    let deployment = loaded
        .documents
        .iter()
        .find(|d| d.kind() == "Deployment")
        .unwrap();
    let attested = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(
        attested["digest"].as_str().unwrap(),
        validator::digest::object(&deployment.object)
    );
    // The same policies give the same digest; other policies another one.
    let again = validator_in_process(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/app/compliant.yaml",
    ]);
    let v2: serde_json::Value = serde_json::from_str(&again.stdout).expect("json");
    assert_eq!(v2["attestation"], *attestation);
    let baseline = validator_in_process(&[
        "check",
        "--format",
        "json",
        "--bundle",
        "baseline",
        "tests/fixtures/app/compliant.yaml",
    ]);
    let v3: serde_json::Value = serde_json::from_str(&baseline.stdout).expect("json");
    assert_ne!(v3["attestation"]["policySet"], attestation["policySet"]);
}

#[test]
fn bad_input_is_reported_and_the_rest_still_checked() {
    let run = validator(&["check", "tests/fixtures/bad-input"], None);
    assert_eq!(run.code, 2, "{}", run.transcript());
    // The Pod after the broken documents is still checked.
    assert!(run.stdout.contains("Pod/shop/after"), "{}", run.stdout);
    snapshot!("check_bad_input", run);
}

#[test]
fn stdin_is_read_with_dash() {
    let text = std::fs::read_to_string(root().join("tests/fixtures/app/violations.yaml"))
        .expect("fixture");
    let run = validator(&["check", "--format", "json", "-"], Some(&text));
    assert_eq!(run.code, 1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let findings = v["findings"].as_array().expect("findings");
    assert!(findings
        .iter()
        .filter(|f| f.get("object").is_some())
        .all(|f| f["file"] == "-"));
    assert!(findings.iter().any(|f| f["file"] == "-"));
}

#[test]
fn warn_fails_only_with_fail_on_warn_and_dryrun_is_info() {
    let args = [
        "check",
        "--no-default-policies",
        "--policies",
        "tests/fixtures/policies",
        "tests/fixtures/configmaps",
    ];
    let run = validator(&args, None);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("check_warn_dryrun", run);
    let mut strict = args.to_vec();
    strict.push("--fail-on-warn");
    assert_eq!(validator_in_process(&strict).code, 1);
    let mut excluded = args.to_vec();
    excluded.extend(["--exclude-namespace", "sh*"]);
    let run = validator_in_process(&excluded);
    assert!(!run.stdout.contains("app-config"), "{}", run.stdout);
}

#[test]
fn broken_policy_is_an_error_naming_the_constraint() {
    let run = validator(
        &[
            "check",
            "--no-default-policies",
            "--policies",
            "tests/fixtures/policies",
            "--policies",
            "tests/fixtures/broken-policies",
            "tests/fixtures/configmaps",
        ],
        None,
    );
    assert_eq!(run.code, 2);
    snapshot!("check_broken_policy", run);
}

#[test]
fn usage_errors_exit_2() {
    let run = validator(&["check", "--format", "xml", "tests/fixtures/app"], None);
    assert_eq!(run.code, 2);
    snapshot!("check_unknown_format", run);
    let run = validator_in_process(&["check", "--bundle", "nope", "tests/fixtures/app"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("baseline, production, restricted"),
        "{}",
        run.stderr
    );
    let run = validator(&["check"], None);
    assert_eq!(run.code, 2);
    let run = validator_in_process(&["check"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("<PATH>"), "{}", run.stderr);
}

#[test]
fn output_is_identical_at_any_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut corpus = String::new();
    for i in 0..300 {
        corpus.push_str(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: ns-{}\nspec:\n  replicas: {}\n  selector: {{matchLabels: {{app: a{i}}}}}\n  template:\n    metadata: {{labels: {{app: a{i}}}}}\n    spec:\n      containers:\n      - name: c\n        image: nginx:1.{i}\n---\n",
            i % 7,
            i % 3 + 1
        ));
    }
    let file = dir.path().join("corpus.yaml");
    std::fs::write(&file, corpus).expect("write");
    let path = file.to_str().expect("utf8 path");
    let one = validator_in_process(&["check", "--format", "json", "--jobs", "1", path]);
    let many = validator_in_process(&["check", "--format", "json", "--jobs", "4", path]);
    assert_eq!(one.code, 1);
    assert!(one.stdout.len() > 10_000);
    assert_eq!(one.stdout, many.stdout);
}

#[test]
fn verify_our_policy_library() {
    let run = validator_in_process(&["verify", "policies"]);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(
        run.stdout.ends_with(" passed, 0 failed\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn verify_reports_failures_and_junit() {
    let run = validator_in_process(&["verify", "--format", "junit", "policies/image-tag"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("<?xml"));
    let run = validator(&["verify", "tests/fixtures/app"], None);
    assert_eq!(run.code, 2);
    snapshot!("verify_not_a_suite", run);
}

/// The Gatekeeper library's suites (library/general and library/pod-security-policy), with CEL
/// on and off. The library is not part of this repository: it is read from
/// `$GATEKEEPER_LIBRARY` or from the shared conformance data beside the checkout, and the test
/// is skipped, saying so, when neither is present.
#[test]
fn verify_gatekeeper_library_conformance() {
    let dir = std::env::var_os("GATEKEEPER_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/conformance/gatekeeper-library"));
    let suites: Vec<PathBuf> = ["library/general", "library/pod-security-policy"]
        .iter()
        .map(|s| dir.join(s))
        .collect();
    if let Some(missing) = suites.iter().find(|s| !s.is_dir()) {
        eprintln!(
            "skipped: the Gatekeeper library is absent ({} is not a directory; set GATEKEEPER_LIBRARY to a checkout of open-policy-agent/gatekeeper-library)",
            missing.display()
        );
        return;
    }
    for cel in ["--enable-cel=true", "--enable-cel=false"] {
        let mut args = vec!["verify", cel];
        args.extend(suites.iter().map(|s| s.to_str().expect("utf8")));
        let run = validator_in_process(&args);
        assert_eq!(run.code, 0, "{cel}: {}", run.transcript());
        assert!(
            run.stdout.ends_with(" passed, 0 failed\n"),
            "{}",
            run.stdout
        );
        let passed: usize = run
            .stdout
            .rsplit('\n')
            .nth(1)
            .and_then(|l| l.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            passed >= 250,
            "{cel}: only {passed} cases ran: {}",
            run.stdout
        );
    }
}

#[test]
fn waivers_and_markdown_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = dir.path().join("summary.md");
    let run = validator(
        &[
            "check",
            "--waivers",
            "tests/fixtures/waivers/waivers.yaml",
            "--summary",
            summary.to_str().expect("utf8"),
            "tests/fixtures/app/violations.yaml",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(
        run.stdout
            .contains("[waived until 2999-12-31 by platform-team@example.com"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("waiver of K8sDisallowLatestTag/production-no-latest-tag owned by web-team@example.com expired on 2020-01-31"), "{}", run.stdout);
    snapshot!("check_waivers", run);
    let md = std::fs::read_to_string(&summary).expect("summary written");
    assert!(md.starts_with("## Policy check: failed"), "{md}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: validator.policy/v1\nkind: WaiverList\nwaivers:\n  - constraint: x\n",
    )
    .expect("write");
    let run = validator_in_process(&[
        "check",
        "--waivers",
        bad.to_str().expect("utf8"),
        "tests/fixtures/app/compliant.yaml",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stdout.contains("invalid-waiver"), "{}", run.stdout);
}

#[test]
fn validating_admission_policies_are_evaluated() {
    let run = validator(
        &["check", "--no-default-policies", "tests/fixtures/vap"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    snapshot!("check_vap", run);
}

const NO_POLICIES: &str = "--no-default-policies";

#[test]
fn schema_valid_core_kinds_pass() {
    let run = validator(&["check", NO_POLICIES, "tests/fixtures/schema/valid"], None);
    assert_eq!(run.code, 0, "{}", run.transcript());
    snapshot!("schema_valid", run);
}

#[test]
fn schema_violations_name_the_field_and_fail_the_run() {
    let run = validator(
        &["check", NO_POLICIES, "tests/fixtures/schema/invalid"],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run.stdout.contains(
        "spec.template.spec.containers[0].ports[0].containerPort: \"8080\" is not an integer"
    ));
    snapshot!("schema_invalid", run);
    // Without strictness, unknown fields pass; the rest is still reported.
    let relaxed = validator_in_process(&[
        "check",
        NO_POLICIES,
        "--no-strict",
        "tests/fixtures/schema/invalid",
    ]);
    assert_eq!(relaxed.code, 1);
    assert!(
        !relaxed.stdout.contains("unknown field"),
        "{}",
        relaxed.stdout
    );
    assert!(relaxed.stdout.contains("is not an integer"));
    // And with schema checks off, nothing.
    let off = validator_in_process(&[
        "check",
        NO_POLICIES,
        "--no-schemas",
        "tests/fixtures/schema/invalid",
    ]);
    assert_eq!(off.code, 0, "{}", off.transcript());
}

#[test]
fn custom_resources_are_checked_against_crds_in_the_input() {
    let run = validator(
        &[
            "check",
            NO_POLICIES,
            "--schema-location",
            "tests/fixtures/schema/location",
            "tests/fixtures/schema/crds",
            "tests/fixtures/schema/custom",
        ],
        None,
    );
    assert_eq!(run.code, 1, "{}", run.transcript());
    snapshot!("schema_crds", run);
}

#[test]
fn crd_flag_require_schemas_and_skip_kinds() {
    let args = [
        "check",
        NO_POLICIES,
        "--crd",
        "tests/fixtures/schema/crds",
        "--schema-location",
        "tests/fixtures/schema/location",
        "tests/fixtures/schema/custom",
    ];
    let run = validator_in_process(&args);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(run
        .stdout
        .contains("warn [missing-schema] Gadget/shop/gadget-without-schema"));
    let mut required = args.to_vec();
    required.push("--require-schemas");
    let run = validator_in_process(&required);
    assert_eq!(run.code, 2, "{}", run.transcript());
    assert!(run
        .stdout
        .contains("error [missing-schema] Gadget/shop/gadget-without-schema"));
    required.extend(["--skip-kinds", "Gadget,example.com/v1/Widget"]);
    let run = validator_in_process(&required);
    assert_eq!(run.code, 1, "{}", run.transcript());
    assert!(!run.stdout.contains("Gadget"), "{}", run.stdout);
    assert!(!run.stdout.contains("Widget"), "{}", run.stdout);
    assert!(run.stdout.contains("Sprocket"), "{}", run.stdout);
}

#[test]
fn schema_findings_in_every_format() {
    for format in ["json", "sarif", "junit", "github"] {
        let run = validator(
            &[
                "check",
                NO_POLICIES,
                "--format",
                format,
                "--crd",
                "tests/fixtures/schema/crds",
                "--skip-kinds",
                "Gadget,Sprocket",
                "tests/fixtures/schema/custom",
            ],
            None,
        );
        assert_eq!(run.code, 1, "{format}: {}", run.transcript());
        snapshot!(format!("schema_crds_{format}"), run);
    }
}

#[test]
fn policy_objects_are_schema_checked_only_with_their_crd() {
    let args = [
        "check",
        NO_POLICIES,
        "--policies",
        "tests/fixtures/policies",
        "tests/fixtures/schema/policy",
    ];
    let run = validator_in_process(&args);
    assert_eq!(run.code, 0, "{}", run.transcript());
    assert!(!run.stdout.contains("schema-violation"), "{}", run.stdout);
    let mut with_crd = args.to_vec();
    with_crd.extend(["--crd", "tests/fixtures/schema/policy-crds"]);
    let run = validator(&with_crd, None);
    assert_eq!(run.code, 1, "{}", run.transcript());
    snapshot!("schema_policy_crd", run);
}

#[test]
fn help_names_the_kubernetes_version_of_the_schemas() {
    let run = validator(&["check", "--help"], None);
    assert_eq!(run.code, 0);
    let version = format!("Kubernetes {}", validator::schema::KUBERNETES_VERSION);
    assert!(run.stdout.contains(&version), "{}", run.stdout);
    for flag in [
        "--no-strict",
        "--crd",
        "--schema-location",
        "--require-schemas",
        "--skip-kinds",
        "--no-schemas",
    ] {
        assert!(run.stdout.contains(flag), "{flag}: {}", run.stdout);
    }
}

#[test]
fn serve_refuses_durations_out_of_bounds() {
    let serve = |flag: &str| {
        validator(
            &[
                "serve",
                "--tls-cert",
                "tls.crt",
                "--tls-key",
                "tls.key",
                flag,
            ],
            None,
        )
    };
    let run = serve("--timeout=0");
    assert_eq!(run.code, 2);
    snapshot!("serve_timeout_zero", run);
    let run = serve("--reload-interval=0");
    assert_eq!(run.code, 2);
    snapshot!("serve_reload_interval_zero", run);
    let run = serve("--timeout=100000000000000000000");
    assert_eq!(run.code, 2);
    snapshot!("serve_timeout_huge", run);
    let run = serve("--timeout=1m");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("`1m` is longer than 30s"),
        "{}",
        run.stderr
    );
}
