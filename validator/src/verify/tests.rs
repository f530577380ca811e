use super::suite::Expected;
use super::*;

fn assertion(v: Expected, m: Option<&str>) -> Assertion {
    Assertion {
        violations: v,
        message: m.map(|m| Regex::new(m).expect("regex")),
    }
}

#[test]
fn assertions_count_matching_messages() {
    let msgs = vec![
        "container a is privileged".to_string(),
        "container b has no probe".to_string(),
    ];
    assert!(assertion(Expected::AtLeastOne, None).check(&msgs).is_ok());
    assert!(assertion(Expected::Exactly(2), None).check(&msgs).is_ok());
    assert!(assertion(Expected::Exactly(1), Some("privileged"))
        .check(&msgs)
        .is_ok());
    let e = assertion(Expected::None, Some("probe"))
        .check(&msgs)
        .unwrap_err();
    assert_eq!(
        e,
        "expected no violations with message matching `probe`, got 1"
    );
    assert!(assertion(Expected::AtLeastOne, None).check(&[]).is_err());
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

const TEMPLATE: &str = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8snolatest}\nspec:\n  crd: {spec: {names: {kind: K8sNoLatest}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8snolatest\n      violation[{\"msg\": msg}] {\n        c := input.review.object.spec.containers[_]\n        endswith(c.image, \":latest\")\n        msg := sprintf(\"container <%v> uses latest\", [c.name])\n      }\n";

fn suite_dir(assert_latest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "template.yaml", TEMPLATE);
    write(d, "constraint.yaml", "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNoLatest\nmetadata: {name: no-latest}\nspec:\n  match: {kinds: [{apiGroups: [''], kinds: [Pod]}]}\n");
    write(d, "latest.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: 'nginx:latest'}]\n");
    write(d, "pinned.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: a, image: 'nginx:1.25'}]\n");
    write(d, "suite.yaml", &format!("kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\nmetadata: {{name: s}}\ntests:\n- name: latest\n  template: template.yaml\n  constraint: constraint.yaml\n  cases:\n  - name: latest\n    object: latest.yaml\n    assertions: [{{violations: {assert_latest}, message: 'uses latest'}}]\n  - name: pinned\n    object: pinned.yaml\n    assertions: [{{violations: no}}]\n  - name: skipped\n    object: pinned.yaml\n    skip: true\n"));
    dir
}

#[test]
fn suites_pass_fail_and_skip() {
    let dir = suite_dir("1");
    let report = run(&[dir.path().to_path_buf()], &Options::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        (report.passed(), report.failed(), report.skipped()),
        (2, 0, 1)
    );
    assert_eq!(report.exit_code(), 0);
    assert!(render_human(&report, false).ends_with("2 passed, 0 failed, 1 skipped\n"));

    let dir = suite_dir("2");
    let report = run(&[dir.path().to_path_buf()], &Options::default());
    assert_eq!((report.passed(), report.failed()), (1, 1));
    assert_eq!(report.exit_code(), 1);
    let text = render_human(&report, false);
    assert!(text.contains("FAIL s / latest / latest"));
    assert!(text.contains("expected 2 violation(s) with message matching `uses latest`, got 1"));
    assert!(text.contains("- container <a> uses latest"));
    let junit = render_junit(&report);
    assert!(junit.contains("<failure message="));
}

#[test]
fn run_filter_and_coverage() {
    let dir = suite_dir("yes");
    let options = Options {
        run: Some(Regex::new("pinned").expect("re")),
        coverage: true,
        ..Options::default()
    };
    let report = run(&[dir.path().to_path_buf()], &options);
    assert_eq!(report.results.len(), 1);
    assert!(!report.coverage.is_empty());
    let text = render_coverage(&report.coverage);
    assert!(text.contains("k8snolatest.rego"));
    assert!(text.contains("total:"));
}

#[test]
fn broken_suite_is_an_error() {
    let dir = suite_dir("yes");
    write(dir.path(), "template.yaml", "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8snolatest}\nspec:\n  crd: {spec: {names: {kind: K8sNoLatest}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n      package k8snolatest\n      violation[{\"msg\": msg}] {\n        msg := \n      }\n");
    let report = run(&[dir.path().to_path_buf()], &Options::default());
    assert_eq!(report.exit_code(), 2);
    assert!(
        report.errors[0].contains("k8snolatest"),
        "{:?}",
        report.errors
    );
    let none = run(&[dir.path().join("nothing")], &Options::default());
    assert_eq!(none.exit_code(), 2);
}
