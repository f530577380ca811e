//! Inputs read as Kubernetes reads them: YAML 1.1 scalars, nulls, namespace-less objects,
//! merge and duplicate keys, exact lines, empty input. The fixtures in
//! tests/fixtures/real-world have the shapes of real install bundles and rendered charts.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    root()
        .join("tests/fixtures/real-world")
        .join(name)
        .display()
        .to_string()
}

/// `validator check ARGS -o json` in process: exit code and the JSON report.
fn check(args: &[&str]) -> (u8, Value) {
    let argv = ["validator", "check", "-o", "json"]
        .iter()
        .chain(args)
        .map(|s| s.to_string());
    let cli = validator::cli::Cli::try_parse_from(argv).expect("arguments parse");
    let mut out = Vec::new();
    let code = validator::cli::run_to(cli, &mut out, false).expect("runs");
    (code, serde_json::from_slice(&out).expect("JSON report"))
}

fn findings(report: &Value) -> Vec<&Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .collect()
}

fn with_code<'a>(report: &'a Value, code: &str) -> Vec<&'a Value> {
    findings(report)
        .into_iter()
        .filter(|f| f["code"] == code)
        .collect()
}

fn constraints(report: &Value) -> Vec<String> {
    let mut c: Vec<String> = with_code(report, "policy-violation")
        .iter()
        .map(|f| f["policy"]["constraint"].as_str().unwrap_or("").to_string())
        .collect();
    c.sort();
    c.dedup();
    c
}

#[test]
fn privileged_yes_is_denied_by_every_bundle() {
    for bundle in ["baseline", "restricted", "production"] {
        let (code, report) = check(&["--bundle", bundle, &fixture("yaml11.yaml")]);
        assert_eq!(code, 1, "{bundle}: {report:#}");
        let denied: Vec<&Value> = with_code(&report, "policy-violation")
            .into_iter()
            .filter(|f| {
                f["severity"] == "deny" && f["message"].as_str().unwrap().contains("rivileged")
            })
            .collect();
        assert!(!denied.is_empty(), "{bundle}: {report:#}");
        assert!(
            with_code(&report, "evaluation-error").is_empty(),
            "{report:#}"
        );
        // `0644`, `on` and `Off` are what the schema expects once read as YAML 1.1.
        assert!(
            with_code(&report, "schema-violation").is_empty(),
            "{report:#}"
        );
    }
}

#[test]
fn octal_modes_reach_policies_as_numbers() {
    let loaded = validator::manifest::load_file(Path::new(&fixture("yaml11.yaml")));
    let deployment = loaded
        .documents
        .iter()
        .find(|d| d.kind() == "Deployment")
        .expect("deployment");
    let spec = &deployment.object["spec"]["template"]["spec"];
    assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["containers"][0]["securityContext"]["privileged"], true);
}

#[test]
fn null_fields_give_no_evaluation_errors() {
    for bundle in ["baseline", "restricted", "production"] {
        let (code, report) = check(&["--bundle", bundle, "-n", "shop", &fixture("nulls.yaml")]);
        assert!(
            with_code(&report, "evaluation-error").is_empty(),
            "{bundle}: {report:#}"
        );
        assert!(
            with_code(&report, "schema-violation").is_empty(),
            "{bundle}: {report:#}"
        );
        assert!(code <= 1, "{bundle}: {report:#}");
    }
    // With CEL off too.
    let (_, report) = check(&["--enable-cel=false", "-n", "shop", &fixture("nulls.yaml")]);
    assert!(
        with_code(&report, "evaluation-error").is_empty(),
        "{report:#}"
    );
}

#[test]
fn namespace_less_objects_are_reviewed_in_one_namespace_everywhere() {
    // The compliant app without metadata.namespace passes as it does with one: inventory,
    // referential policies and matching all see the same namespace.
    let (code, report) = check(&[&fixture("namespaceless.yaml")]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(constraints(&report), Vec::<String>::new(), "{report:#}");
    let (code, report) = check(&["-n", "shop", &fixture("namespaceless.yaml")]);
    assert_eq!(code, 0, "{report:#}");
    // --exclude-namespace applies to the defaulted namespace.
    let (_, report) = check(&[
        "-n",
        "shop",
        "--exclude-namespace",
        "shop",
        &fixture("yaml11.yaml"),
    ]);
    assert!(constraints(&report).is_empty(), "{report:#}");
    // Findings name the namespace the object gets.
    let (_, report) = check(&["-n", "shop", &fixture("yaml11.yaml")]);
    let v = with_code(&report, "policy-violation");
    assert!(!v.is_empty());
    assert!(
        v.iter().all(|f| f["object"]["namespace"] == "shop"),
        "{report:#}"
    );
}

#[test]
fn merge_keys_are_merged() {
    let (code, report) = check(&["--no-default-policies", &fixture("merge-keys.yaml")]);
    assert_eq!(code, 0, "{report:#}");
    let loaded = validator::manifest::load_file(Path::new(&fixture("merge-keys.yaml")));
    let service = &loaded.documents[1].object;
    assert_eq!(service["metadata"]["labels"]["tier"], "frontend");
    assert_eq!(service["metadata"]["labels"]["app"], "api");
    assert_eq!(service["spec"]["ports"][1]["targetPort"], 8080);
    assert_eq!(service["spec"]["ports"][1]["port"], 8080);
    assert_eq!(service["spec"]["selector"]["tier"], "backend");
}

#[test]
fn duplicate_keys_and_infinity_are_input_errors_and_others_are_kept() {
    let (code, report) = check(&["--no-default-policies", &fixture("duplicate-key.yaml")]);
    assert_eq!(code, 2, "{report:#}");
    let errors = with_code(&report, "invalid-input");
    let at: Vec<(u64, u64)> = errors
        .iter()
        .map(|f| (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(at, vec![(12, 3), (19, 10)], "{report:#}");
    assert!(errors[0]["message"]
        .as_str()
        .unwrap()
        .contains("duplicate key `name`"));
    assert!(errors[1]["message"].as_str().unwrap().contains(".inf"));
    assert_eq!(report["summary"]["objects"], 2, "{report:#}");
}

#[test]
fn schema_findings_point_at_the_field() {
    let (code, report) = check(&["--no-default-policies", &fixture("typo.yaml")]);
    assert_eq!(code, 1, "{report:#}");
    let mut got: Vec<(u64, u64, String)> = with_code(&report, "schema-violation")
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{got:#?}");
    // A mistyped field left empty (null) is still an unknown field.
    assert_eq!((got[0].0, got[0].1), (10, 7));
    assert!(
        got[0]
            .2
            .contains("readinessprobe: unknown field (did you mean readinessProbe?)"),
        "{got:?}"
    );
    assert_eq!((got[1].0, got[1].1), (13, 11));
    assert!(got[1].2.contains("memory"), "{got:?}");
    // int64 fields are range-checked.
    assert_eq!((got[2].0, got[2].1), (14, 3));
    assert!(
        got[2].2.contains("terminationGracePeriodSeconds"),
        "{got:?}"
    );
}

#[test]
fn empty_input_warns_and_fails_when_objects_are_required() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "# nothing rendered\n---\n").unwrap();
    let path = empty.display().to_string();
    let (code, report) = check(&[&path]);
    assert_eq!(code, 0);
    let w = with_code(&report, "no-objects");
    assert_eq!(w.len(), 1, "{report:#}");
    assert_eq!(w[0]["severity"], "warn");
    let (code, report) = check(&["--require-objects", &path]);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(with_code(&report, "no-objects")[0]["severity"], "error");
}

#[test]
fn directory_scans_skip_non_objects_and_excluded_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("values.yaml"), "replicas: 2\nimage: x\n").unwrap();
    std::fs::write(
        dir.path().join("cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("ci")).unwrap();
    std::fs::write(dir.path().join("ci/broken.yaml"), "a: [\n").unwrap();
    let d = dir.path().display().to_string();
    let (code, report) = check(&["--no-default-policies", "--exclude", "ci/*", &d]);
    assert_eq!(code, 0, "{report:#}");
    let notes = with_code(&report, "note");
    assert_eq!(notes.len(), 1, "{report:#}");
    assert!(notes[0]["file"].as_str().unwrap().ends_with("values.yaml"));
    assert_eq!(report["summary"]["objects"], 1);
    // Named explicitly, a file that is not an object is an error.
    let values = dir.path().join("values.yaml").display().to_string();
    let (code, _) = check(&["--no-default-policies", &values]);
    assert_eq!(code, 2);
    // Without --exclude, the broken file is reported.
    let (code, report) = check(&["--no-default-policies", &d]);
    assert_eq!(code, 2, "{report:#}");
}

#[test]
fn deep_flow_nesting_of_a_megabyte_is_refused_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.yaml");
    let n = 500_000;
    std::fs::write(&path, format!("a: {}{}\n", "[".repeat(n), "]".repeat(n))).unwrap();
    let start = std::time::Instant::now();
    let loaded = validator::manifest::load_file(&path);
    let took = start.elapsed();
    assert_eq!(loaded.errors.len(), 1);
    assert!(loaded.errors[0].message.contains("nested deeper"));
    // Generous for a debug build on a busy machine; the release figure is in BENCHMARKS.md.
    assert!(took.as_secs_f64() < 5.0, "{took:?}");
}
