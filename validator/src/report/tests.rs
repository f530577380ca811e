use super::*;

fn findings() -> Vec<Finding> {
    vec![
        Finding {
            rendered_line: None,
            file: "deploy/web.yaml".into(),
            line: 12,
            column: 0,
            severity: Severity::Deny,
            code: Code::PolicyViolation,
            policy: Some(PolicyRef {
                kind: "K8sRequiredProbes".into(),
                constraint: "probes".into(),
            }),
            action: Some(Action::Enforcement(EnforcementAction::Deny)),
            object: Some(ObjectRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "prod".into(),
                name: "web".into(),
            }),
            message: "container <web> has no readinessProbe, 100% & <b>".into(),
        },
        Finding {
            rendered_line: None,
            file: "bad.yaml".into(),
            line: 3,
            column: 7,
            severity: Severity::Error,
            code: Code::InvalidInput,
            policy: None,
            action: None,
            object: None,
            message: "invalid YAML: x, y".into(),
        },
    ]
}

#[test]
fn summary_counts_by_severity() {
    let s = Summary::of(&findings(), 5);
    assert_eq!(
        (s.objects, s.errors, s.deny, s.warn, s.info),
        (5, 1, 1, 0, 0)
    );
}

#[test]
fn human_has_one_line_per_finding_and_no_colour_when_off() {
    let f = findings();
    let out = render(Format::Human, &f, &Summary::of(&f, 5), false);
    assert!(out.contains(
        "deny [K8sRequiredProbes/probes] Deployment/prod/web (deploy/web.yaml:12): container <web>"
    ));
    assert!(out.contains("error [invalid-input] (bad.yaml:3:7): invalid YAML"));
    assert!(!out.contains('\x1b'));
    assert!(render(Format::Human, &f, &Summary::of(&f, 5), true).contains('\x1b'));
}

#[test]
fn json_is_stable_and_parseable() {
    let f = findings();
    let v: serde_json::Value =
        serde_json::from_str(&render(Format::Json, &f, &Summary::of(&f, 5), false)).expect("json");
    assert_eq!(v["version"], 1);
    assert_eq!(v["summary"]["deny"], 1);
    assert_eq!(v["findings"][0]["policy"]["kind"], "K8sRequiredProbes");
    assert_eq!(v["findings"][0]["enforcementAction"], "deny");
    assert_eq!(v["findings"][0]["object"]["apiVersion"], "apps/v1");
    assert_eq!(v["findings"][1]["code"], "invalid-input");
    assert!(v["findings"][1].get("policy").is_none());
}

#[test]
fn sarif_has_rules_and_physical_locations() {
    let f = findings();
    let v: serde_json::Value =
        serde_json::from_str(&render(Format::Sarif, &f, &Summary::of(&f, 5), false)).expect("json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    let r0 = &run["results"][0];
    let idx = r0["ruleIndex"].as_u64().expect("index") as usize;
    assert_eq!(rules[idx]["id"], r0["ruleId"]);
    assert_eq!(r0["level"], "error");
    assert_eq!(
        r0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "deploy/web.yaml"
    );
    assert_eq!(
        r0["locations"][0]["physicalLocation"]["region"]["startLine"],
        12
    );
}

#[test]
fn junit_escapes_xml() {
    let f = findings();
    let out = render(Format::Junit, &f, &Summary::of(&f, 5), false);
    assert!(out.contains("failures=\"1\" errors=\"1\""));
    assert!(out.contains("100% &amp; &lt;b&gt;"));
    assert!(!out.contains("<b>"));
}

#[test]
fn github_annotations_escape_properties() {
    let f = findings();
    let out = render(Format::Github, &f, &Summary::of(&f, 5), false);
    assert!(out.contains("::error file=deploy/web.yaml,line=12,title=K8sRequiredProbes/probes::Deployment/prod/web: container <web> has no readinessProbe, 100%25 & <b>"));
    assert!(
        out.contains("::error file=bad.yaml,line=3,col=7,title=invalid-input::invalid YAML: x, y")
    );
}

#[test]
fn github_annotations_of_cluster_objects_have_no_position() {
    let mut f = findings();
    f[0].file = "cluster:apps/v1/Deployment/prod/web".into();
    f[0].line = 0;
    f[1].file = "cluster:v1/Secret".into();
    f[1].line = 0;
    f[1].column = 0;
    f[1].object = None;
    let out = render(Format::Github, &f, &Summary::of(&f, 5), false);
    assert!(
        out.contains("::error title=K8sRequiredProbes/probes::Deployment/prod/web: container"),
        "{out}"
    );
    assert!(
        out.contains("::error title=invalid-input::v1/Secret: invalid YAML"),
        "{out}"
    );
    assert!(!out.contains("line=0"), "{out}");
}

#[test]
fn formats_parse() {
    assert_eq!("sarif".parse::<Format>(), Ok(Format::Sarif));
    assert!("xml".parse::<Format>().unwrap_err().contains("human, json"));
}

#[test]
fn markdown_summary_lists_failing_findings() {
    let f = findings();
    let md = markdown_summary(&f, &Summary::of(&f, 5));
    assert!(md.starts_with("## Policy check: errors\n"));
    assert!(md.contains("| 5 | 1 | 0 | 0 | 1 |"));
    assert!(md.contains(
        "| deny | K8sRequiredProbes/probes | Deployment/prod/web | `deploy/web.yaml:12` |"
    ));
}

#[test]
fn sarif_uris_are_percent_encoded() {
    let mut f = findings();
    f[1].file = "<embedded>/policies/a b.yaml".into();
    let v: serde_json::Value =
        serde_json::from_str(&render(Format::Sarif, &f, &Summary::of(&f, 5), false)).expect("json");
    let uris: Vec<&str> = v["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .expect("uri")
        })
        .collect();
    assert!(
        uris.contains(&"%3Cembedded%3E/policies/a%20b.yaml"),
        "{uris:?}"
    );
}

#[test]
fn actions_are_written_and_ordered_by_name() {
    use crate::vap::Action as Validation;
    let actions = [
        Action::Enforcement(EnforcementAction::Warn),
        Action::Binding(vec![Validation::Deny, Validation::Audit]),
        Action::Waived,
        Action::Enforcement(EnforcementAction::Dryrun),
        Action::Binding(vec![Validation::Audit]),
        Action::Enforcement(EnforcementAction::Deny),
    ];
    let names: Vec<String> = actions.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        ["warn", "deny,audit", "waived", "dryrun", "audit", "deny"]
    );
    assert_eq!(
        serde_json::to_value(&actions).expect("json"),
        serde_json::json!(names)
    );
    let mut sorted = actions.to_vec();
    sorted.sort();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(
        sorted.iter().map(ToString::to_string).collect::<Vec<_>>(),
        sorted_names
    );
}
