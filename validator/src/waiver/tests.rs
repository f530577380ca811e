use super::*;
use crate::policy::EnforcementAction;
use crate::report::PolicyRef;

fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("waivers.yaml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

const GOOD: &str = "apiVersion: validator.policy/v1\nkind: WaiverList\nwaivers:\n  - constraint: K8sRequiredProbes/probes\n    match: {kind: Deployment, namespace: batch-*}\n    reason: no HTTP endpoint\n    owner: team-batch\n    expires: 2999-12-31\n  # an old one\n  - constraint: no-latest\n    reason: legacy image\n    owner: team-legacy\n    expires: 2001-01-01\n";

fn violation(kind: &str, constraint: &str, ns: &str) -> Finding {
    Finding {
        file: "app.yaml".into(),
        line: 3,
        column: 0,
        rendered_line: None,
        severity: Severity::Deny,
        code: Code::PolicyViolation,
        policy: Some(PolicyRef {
            kind: kind.into(),
            constraint: constraint.into(),
        }),
        action: Some(Action::Enforcement(EnforcementAction::Deny)),
        object: Some(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: ns.into(),
            name: "report".into(),
        }),
        message: "problem".into(),
    }
}

fn date(year: i16, month: i8, day: i8) -> Date {
    jiff::civil::date(year, month, day)
}

#[test]
fn loads_with_item_lines() {
    let (_d, path) = write(GOOD);
    let (waivers, errors) = load(&path);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(waivers.len(), 2);
    assert_eq!(waivers[0].line, 4);
    assert_eq!(waivers[1].line, 10);
    assert_eq!(waivers[0].namespace.as_deref(), Some("batch-*"));
    assert_eq!(waivers[1].expires, date(2001, 1, 1));
}

#[test]
fn waived_violations_become_info_and_expired_waivers_are_findings() {
    let (_d, path) = write(GOOD);
    let (waivers, _) = load(&path);
    let findings = vec![
        violation("K8sRequiredProbes", "probes", "batch-eu"),
        violation("K8sRequiredProbes", "probes", "web"),
        violation("K8sDisallowLatestTag", "no-latest", "batch-eu"),
    ];
    let out = apply(findings, &waivers, date(2026, 11, 26));
    let waived: Vec<&Finding> = out
        .iter()
        .filter(|f| f.action == Some(Action::Waived))
        .collect();
    assert_eq!(waived.len(), 1);
    assert_eq!(waived[0].severity, Severity::Info);
    assert!(waived[0]
        .message
        .ends_with("[waived until 2999-12-31 by team-batch: no HTTP endpoint]"));
    assert_eq!(
        out.iter()
            .filter(|f| f.severity == Severity::Deny && f.code == Code::PolicyViolation)
            .count(),
        2
    );
    let expired: Vec<&Finding> = out
        .iter()
        .filter(|f| f.code == Code::ExpiredWaiver)
        .collect();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].line, 10);
    assert!(expired[0].message.contains("expired on 2001-01-01"));
}

#[test]
fn bad_waivers_are_errors_naming_the_item() {
    let (_d, path) = write("apiVersion: validator.policy/v1\nkind: WaiverList\nwaivers:\n  - constraint: x\n    owner: me\n    expires: 2026-02-30\n    match: {color: blue}\n  - constraint: '*'\n    reason: everything\n    owner: me\n    expires: 2030-01-01\n");
    let (waivers, errors) = load(&path);
    assert!(waivers.is_empty());
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].line, 4);
    assert!(
        errors[0].message.contains("`reason` is required"),
        "{}",
        errors[0].message
    );
    assert!(errors[0].message.contains("YYYY-MM-DD"));
    assert!(errors[0].message.contains("match.color"));
    assert!(errors[1].message.contains("specific objects"));
    let (_d, path) = write("apiVersion: v1\nkind: ConfigMap\n");
    assert!(load(&path).1[0].message.contains("not a waiver list"));
    assert_eq!(error_findings(&load(&path).1)[0].code, Code::InvalidWaiver);
}

#[test]
fn dates() {
    assert_eq!(parse_date("2024-02-29"), Some(date(2024, 2, 29)));
    assert_eq!(parse_date(" 2026-12-31 "), Some(date(2026, 12, 31)));
    for bad in [
        "2023-02-29",
        "2024-13-01",
        "soon",
        "2024-2-29",
        "2024-02-29T00:00",
        "+02024-02-29",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
    assert!(today() > date(2020, 1, 1));
}
