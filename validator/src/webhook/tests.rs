use super::decide::{evaluate, parse, respond, respond_failure};
use super::state::{PolicyState, Sources};
use super::*;
use crate::policy::EnforcementAction;

fn sources(paths: Vec<PathBuf>) -> Sources {
    Sources {
        bundle: None,
        paths,
        enable_cel: true,
        exempt_namespaces: vec!["kube-*".into()],
        waivers: Vec::new(),
        verifier: None,
        inventory: None,
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policies")
}

fn review(op: &str, ns: &str, labels: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "operation": op, "namespace": ns, "name": "cm",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": ns, "labels": labels}},
        "userInfo": {"username": "alice"}
    }})
}

#[test]
fn warn_and_dryrun_allow_with_warnings() {
    let state = PolicyState::load(&sources(vec![fixtures()]), 1).expect("loads");
    let body = review("CREATE", "shop", json!({}));
    let req = parse(body.to_string().as_bytes()).expect("parses");
    let d = evaluate(&state, &req.request);
    assert_eq!(d.hits.len(), 2);
    let resp = respond(&req, &d, true);
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["response"]["uid"], "u-1");
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(
        resp["response"]["warnings"],
        json!(["[owner-label] ConfigMap <cm> lacks the label <owner>"])
    );
}

#[test]
fn exempt_namespaces_are_not_evaluated() {
    let state = PolicyState::load(&sources(vec![fixtures()]), 1).expect("loads");
    let req = parse(
        review("CREATE", "kube-system", json!({}))
            .to_string()
            .as_bytes(),
    )
    .expect("parses");
    assert!(evaluate(&state, &req.request).exempt);
}

#[test]
fn malformed_requests_are_explained() {
    assert!(parse(b"{not json").unwrap_err().contains("not valid JSON"));
    assert!(parse(br#"{"apiVersion": "v1", "kind": "AdmissionReview"}"#)
        .unwrap_err()
        .contains("apiVersion"));
    assert!(parse(
        br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}"#
    )
    .unwrap_err()
    .contains("uid"));
    let mut no_kind = review("CREATE", "shop", json!({}));
    no_kind["request"]["kind"] = json!({"group": "", "version": "v1"});
    assert!(parse(no_kind.to_string().as_bytes())
        .unwrap_err()
        .contains("request.kind is missing"));
}

#[test]
fn failure_policy_decides_on_errors() {
    let req = parse(review("CREATE", "shop", json!({})).to_string().as_bytes()).expect("parses");
    let closed = respond_failure(&req, "deadline", true);
    assert_eq!(closed["response"]["allowed"], false);
    assert!(closed["response"]["status"]["message"]
        .as_str()
        .expect("msg")
        .contains("failure policy `fail`"));
    let open = respond_failure(&req, "deadline", false);
    assert_eq!(open["response"]["allowed"], true);
}

#[test]
fn broken_policy_sets_are_rejected() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/broken-policies");
    let e = PolicyState::load(&sources(vec![fixtures(), dir]), 1).unwrap_err();
    assert!(e.contains("wrong-type"), "{e}");
}

#[test]
fn external_data_without_provider_refuses_to_load() {
    let mut s = sources(vec![]);
    s.bundle = Some("production".into());
    let e = PolicyState::load(&s, 1).unwrap_err();
    assert!(e.contains("external_data"), "{e}");
    s.bundle = Some("restricted".into());
    assert!(PolicyState::load(&s, 1).is_ok());
}

#[test]
fn metrics_render_in_prometheus_text() {
    let m = metrics::Metrics::default();
    m.request("denied", 0.002);
    m.violation("no-latest", "deny");
    m.reload(true);
    m.reload(false);
    let text = m.render(7, 3, 2);
    assert!(text.contains("validator_requests_total{decision=\"denied\"} 1"));
    assert!(text.contains(
        "validator_violations_total{constraint=\"no-latest\",enforcement_action=\"deny\"} 1"
    ));
    assert!(text.contains("validator_request_duration_seconds_bucket{le=\"0.0025\"} 1"));
    assert!(text.contains("validator_request_duration_seconds_bucket{le=\"0.001\"} 0"));
    assert!(text.contains("validator_policy_reloads_total{result=\"failure\"} 1"));
    assert!(text.contains("validator_policy_generation 7"));
    assert!(text.contains("validator_requests_waiting 3"), "{text}");
    assert!(text.contains("validator_evaluation_threads 2"), "{text}");
    // OpenMetrics: counters are typed by their family name, samples end in `_total`.
    assert!(
        text.contains("# TYPE validator_requests counter\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn waived_denials_are_allowed_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let deny = dir.path().join("deny.yaml");
    std::fs::write(&deny, "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: must-have-owner}\nspec:\n  parameters: {labels: [owner]}\n").expect("write");
    let waivers = dir.path().join("waivers.yaml");
    std::fs::write(&waivers, "apiVersion: validator.policy/v1\nkind: WaiverList\nwaivers:\n  - constraint: K8sRequiredLabels/must-have-owner\n    match: {namespace: legacy-*}\n    reason: migrating\n    owner: team-a\n    expires: 2999-01-01\n").expect("write");
    let mut s = sources(vec![fixtures(), deny]);
    s.waivers = vec![waivers];
    let state = PolicyState::load(&s, 1).expect("loads");
    let req = parse(
        review("CREATE", "legacy-apps", json!({"team": "x"}))
            .to_string()
            .as_bytes(),
    )
    .expect("parses");
    let resp = respond(&req, &evaluate(&state, &req.request), true);
    assert_eq!(resp["response"]["allowed"], true);
    let warnings = resp["response"]["warnings"].to_string();
    assert!(
        warnings.contains("waived until 2999-01-01 by team-a: migrating"),
        "{warnings}"
    );
    let req = parse(
        review("CREATE", "shop", json!({"team": "x"}))
            .to_string()
            .as_bytes(),
    )
    .expect("parses");
    assert_eq!(
        respond(&req, &evaluate(&state, &req.request), true)["response"]["allowed"],
        false
    );
}

fn deployment_review(ns: &str, replicas: u32, labels: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-2", "operation": "CREATE", "namespace": ns, "name": "web",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns, "labels": labels},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "resources": {"limits": {"memory": "4Gi"}}}]}}}},
        "userInfo": {"username": "alice"}
    }})
}

#[test]
fn validating_admission_policies_are_enforced_by_their_bindings() {
    let vap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vap");
    let state = PolicyState::load(&sources(vec![vap]), 1).expect("loads");
    assert!(!state.vap.is_empty());
    // `shop` is labelled env=prod and has the params: over the limit and unlabelled.
    let req = parse(
        deployment_review("shop", 10, json!({}))
            .to_string()
            .as_bytes(),
    )
    .expect("parses");
    let d = evaluate(&state, &req.request);
    let hits: Vec<(&str, EnforcementAction)> = d
        .hits
        .iter()
        .map(|h| (h.constraint.as_str(), h.action))
        .collect();
    assert_eq!(
        hits,
        vec![
            (
                "memory-ceiling/memory-ceiling-audit",
                EnforcementAction::Dryrun
            ),
            ("replica-limit/replica-limit-prod", EnforcementAction::Deny),
            ("team-label/team-label-warn", EnforcementAction::Warn),
        ],
        "{d:?}"
    );
    let resp = respond(&req, &d, true);
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(
        resp["response"]["status"]["message"],
        "[replica-limit/replica-limit-prod] replicas 10 exceed the limit of 4"
    );
    assert_eq!(
        resp["response"]["warnings"],
        json!(["[team-label/team-label-warn] deployments carry a team label"])
    );
    // A waiver of the binding turns the denial into a warning.
    let dir = tempfile::tempdir().expect("tempdir");
    let waivers = dir.path().join("waivers.yaml");
    std::fs::write(&waivers, "apiVersion: validator.policy/v1\nkind: WaiverList\nwaivers:\n  - constraint: ValidatingAdmissionPolicy/replica-limit/*\n    match: {namespace: shop}\n    reason: load test\n    owner: team-web\n    expires: 2999-01-01\n").expect("write");
    let mut waived = sources(vec![
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vap")
    ]);
    waived.waivers = vec![waivers];
    let waived = PolicyState::load(&waived, 2).expect("loads");
    let d = evaluate(&waived, &req.request);
    let resp = respond(&req, &d, true);
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert!(
        resp["response"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("[replica-limit/replica-limit-prod] replicas 10 exceed the limit of 4 [waived until 2999-01-01 by team-web")),
        "{resp}"
    );
    // Within the limit, labelled: allowed; `sandbox` is not selected by the replica limit.
    for (ns, replicas) in [("shop", 3), ("sandbox", 10)] {
        let req = parse(
            deployment_review(ns, replicas, json!({"team": "web"}))
                .to_string()
                .as_bytes(),
        )
        .expect("parses");
        let d = evaluate(&state, &req.request);
        assert!(!d.denied(), "{ns}: {d:?}");
        assert_eq!(respond(&req, &d, true)["response"]["allowed"], true);
    }
}

#[test]
fn a_broken_validating_admission_policy_rejects_the_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("vap.yaml"),
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: broken\nspec:\n  validations:\n    - expression: \"object.spec.replicas <=\"\n",
    )
    .expect("write");
    let e = PolicyState::load(&sources(vec![dir.path().to_path_buf()]), 1).unwrap_err();
    assert!(e.contains("vap.yaml"), "{e}");
    // With a broken constraint as well, the error names both problems, not the first only.
    let broken =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/broken-policies");
    let e = PolicyState::load(
        &sources(vec![fixtures(), broken, dir.path().to_path_buf()]),
        1,
    )
    .unwrap_err();
    assert!(e.contains("wrong-type"), "{e}");
    assert!(e.contains("vap.yaml"), "{e}");
    assert!(e.lines().count() >= 2, "{e}");
}

#[test]
fn evaluation_stops_at_its_deadline() {
    use super::decide::{evaluate_within, Budget, DeadlineExceeded};
    let state = PolicyState::load(&sources(vec![fixtures()]), 1).expect("loads");
    let req = parse(review("CREATE", "shop", json!({})).to_string().as_bytes()).expect("parses");
    let passed = Budget {
        deadline: Some(std::time::Instant::now()),
        reuse_engines: true,
    };
    assert_eq!(
        evaluate_within(&state, &req.request, passed),
        Err(DeadlineExceeded)
    );
    let ample = Budget {
        deadline: Some(std::time::Instant::now() + Duration::from_secs(60)),
        reuse_engines: false,
    };
    let decision = evaluate_within(&state, &req.request, ample).expect("in time");
    assert_eq!(decision, evaluate(&state, &req.request));
    assert_eq!(decision.hits.len(), 2);
}
