use super::matching::Target;
use super::*;
use crate::glob::glob_match;
use crate::manifest::load_bytes;
use proptest::prelude::*;
use serde_json::{json, Map};

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8srequiredlabels
spec:
  crd:
    spec:
      names:
        kind: K8sRequiredLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items:
                type: string
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels
        violation[{"msg": "x"}] { true }
"#;

fn docs(text: &str) -> Vec<Document> {
    let l = load_bytes("p.yaml", text.as_bytes(), false);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.documents
}

fn set_of(extra: &str) -> (Set, Vec<PolicyError>) {
    let d = docs(&format!("{TEMPLATE}---\n{extra}"));
    Set::from_documents(&d)
}

#[test]
fn template_and_constraint_parse() {
    let (set, errors) = set_of("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: owner}\nspec:\n  enforcementAction: warn\n  parameters: {labels: [owner]}\n");
    assert!(errors.is_empty(), "{errors:?}");
    let t = &set.templates["K8sRequiredLabels"];
    assert_eq!(t.name, "k8srequiredlabels");
    assert!(t.rego.as_ref().is_some_and(|r| !r.v1 && r.libs.is_empty()));
    assert_eq!(set.constraints[0].action, EnforcementAction::Warn);
    assert_eq!(set.constraints[0].parameters, json!({"labels": ["owner"]}));
}

#[test]
fn wrong_parameter_type_names_the_field() {
    let (set, errors) = set_of("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: bad}\nspec:\n  parameters: {labels: owner}\n");
    assert!(set.constraints.is_empty());
    assert_eq!(errors.len(), 1);
    let e = errors[0].to_string();
    assert!(e.contains("K8sRequiredLabels/bad"), "{e}");
    assert!(e.contains("spec.parameters.labels"), "{e}");
    assert_eq!(errors[0].line, 24);
}

#[test]
fn invalid_enforcement_action_is_rejected() {
    let (_, errors) = set_of("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: bad}\nspec:\n  enforcementAction: block\n");
    assert!(
        errors[0].message.contains("enforcementAction"),
        "{errors:?}"
    );
}

#[test]
fn scoped_action_takes_the_strictest() {
    let (set, errors) = set_of("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: s}\nspec:\n  enforcementAction: scoped\n  scopedEnforcementActions:\n  - action: warn\n  - action: deny\n");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.constraints[0].action, EnforcementAction::Deny);
}

#[test]
fn constraint_without_template_is_an_error() {
    let d =
        docs("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: Missing\nmetadata: {name: x}\n");
    let (_, errors) = Set::from_documents(&d);
    assert!(errors[0]
        .message
        .contains("no ConstraintTemplate defines kind Missing"));
}

#[test]
fn template_errors_name_the_template() {
    let d = docs("apiVersion: templates.gatekeeper.sh/v1beta1\nkind: ConstraintTemplate\nmetadata: {name: wrong}\nspec:\n  crd: {spec: {names: {kind: K8sX}}}\n  targets: []\n");
    let (_, errors) = Set::from_documents(&d);
    assert!(errors[0].subject.contains("wrong"));
    assert!(errors[0].message.contains("lowercase"));
    let d = docs("apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8sx}\nspec:\n  crd: {spec: {names: {kind: K8sX}}}\n  targets: [{target: admission.k8s.gatekeeper.sh}]\n");
    let (_, errors) = Set::from_documents(&d);
    assert!(errors[0].message.contains("neither"));
}

#[test]
fn code_form_with_v1_and_cel() {
    let d = docs("apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {name: k8sx}\nspec:\n  crd: {spec: {names: {kind: K8sX}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    code:\n    - engine: K8sNativeValidation\n      source: {validations: []}\n    - engine: Rego\n      source:\n        version: v1\n        rego: 'package x'\n        libs: ['package lib.y']\n");
    let (set, errors) = Set::from_documents(&d);
    assert!(errors.is_empty(), "{errors:?}");
    let t = &set.templates["K8sX"];
    assert!(t.cel.is_some());
    let r = t.rego.as_ref().expect("rego");
    assert!(r.v1);
    assert_eq!(r.libs, vec!["package lib.y".to_string()]);
}

#[test]
fn expansion_generates_pod_with_parent_namespace() {
    let d = docs("apiVersion: expansion.gatekeeper.sh/v1beta1\nkind: ExpansionTemplate\nmetadata: {name: expand}\nspec:\n  applyTo:\n  - groups: [apps]\n    versions: [v1]\n    kinds: [Deployment]\n  templateSource: spec.template\n  generatedGVK: {group: '', version: v1, kind: Pod}\n  enforcementAction: warn\n");
    let (set, errors) = Set::from_documents(&d);
    assert!(errors.is_empty());
    let x = &set.expansions[0];
    assert!(x.applies_to("apps", "v1", "Deployment"));
    assert!(!x.applies_to("apps", "v1", "StatefulSet"));
    assert_eq!(x.action, Some(EnforcementAction::Warn));
    let parent = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc1-API", "namespace": "prod"}, "spec": {"template": {"metadata": {"name": "from-template", "namespace": "other", "labels": {"a": "b"}, "annotations": {"c": "d"}}, "spec": {"containers": []}}}});
    let pod = x.generate(&parent).expect("pod");
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["apiVersion"], "v1");
    // Gatekeeper's generated metadata: parent namespace, `<parent>-<kind>` lowercased (even
    // over a name in the template), owner reference to the parent; labels and annotations kept.
    assert_eq!(
        pod["metadata"],
        json!({
            "name": "svc1-api-pod",
            "namespace": "prod",
            "labels": {"a": "b"},
            "annotations": {"c": "d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc1-API"}]
        })
    );
    // An owner reference already there is not repeated; a parent without a namespace leaves
    // the template's.
    let mut again = parent.clone();
    again["spec"]["template"]["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc1-API", "uid": "u"}]);
    again["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("namespace");
    let pod = x.generate(&again).expect("pod");
    assert_eq!(
        pod["metadata"]["ownerReferences"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(pod["metadata"]["namespace"], "other");
    assert!(x.generate(&json!({"spec": {}})).is_none());
}

fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect()
}

fn target<'a>(
    kind: &'a str,
    ns: Option<&'a str>,
    l: &'a Map<String, Value>,
    nsl: Option<&'a Map<String, Value>>,
) -> Target<'a> {
    Target {
        group: "",
        kind,
        namespace: ns,
        name: "web-1",
        labels: l,
        namespace_labels: nsl,
        generated: false,
    }
}

#[test]
fn match_semantics() {
    let m = Match::parse(&json!({
        "kinds": [{"apiGroups": [""], "kinds": ["Pod"]}],
        "namespaces": ["prod-*", "*-live"],
        "excludedNamespaces": ["prod-legacy"],
        "labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
        "name": "web-*",
    })).expect("match");
    let l = labels(&[("tier", "web")]);
    assert!(m.matches(&target("Pod", Some("prod-eu"), &l, None)));
    assert!(m.matches(&target("Pod", Some("eu-live"), &l, None)));
    assert!(!m.matches(&target("Pod", Some("prod-legacy"), &l, None)));
    assert!(!m.matches(&target("Pod", Some("dev"), &l, None)));
    assert!(!m.matches(&target("Service", Some("prod-eu"), &l, None)));
    assert!(!m.matches(&target("Pod", Some("prod-eu"), &labels(&[]), None)));
    // Cluster-scoped objects are not subject to namespace lists.
    assert!(m.matches(&target("Pod", None, &l, None)));
}

#[test]
fn scope_and_namespace_selector() {
    let m = Match::parse(
        &json!({"scope": "Namespaced", "namespaceSelector": {"matchLabels": {"env": "prod"}}}),
    )
    .expect("match");
    let l = labels(&[]);
    let prod = labels(&[("env", "prod")]);
    assert!(m.matches(&target("Pod", Some("a"), &l, Some(&prod))));
    assert!(!m.matches(&target("Pod", Some("a"), &l, Some(&l))));
    assert!(!m.matches(&target("Pod", Some("a"), &l, None)));
    assert!(!m.matches(&target("ClusterRole", None, &l, None)));
    let m = Match::parse(&json!({"scope": "Cluster"})).expect("match");
    assert!(m.matches(&target("ClusterRole", None, &l, None)));
    assert!(!m.matches(&target("Pod", Some("a"), &l, None)));
}

#[test]
fn bad_match_fields_are_named() {
    assert!(Match::parse(&json!({"scope": "Everything"}))
        .unwrap_err()
        .starts_with("scope"));
    assert!(Match::parse(
        &json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})
    )
    .unwrap_err()
    .contains("values"));
    assert!(Match::parse(&json!({"namespaces": "prod"}))
        .unwrap_err()
        .starts_with("namespaces"));
}

#[test]
fn globs() {
    assert!(glob_match("kube-*", "kube-system"));
    assert!(glob_match("*-system", "kube-system"));
    assert!(glob_match("*", "anything"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exact2"));
    assert!(!glob_match("kube-*", "default"));
}

proptest! {
    #[test]
    fn glob_prefix_and_suffix(prefix in "[a-z]{0,6}", rest in "[a-z-]{0,8}") {
        let value = format!("{prefix}{rest}");
        let prefix_glob = format!("{}*", prefix);
        let suffix_glob = format!("*{}", rest);
        prop_assert!(glob_match(&prefix_glob, &value));
        prop_assert!(glob_match(&suffix_glob, &value));
        prop_assert!(glob_match(&value, &value));
    }

    #[test]
    fn selector_in_and_notin_are_complements(key in "[a-z]{1,5}", val in "[a-z]{0,4}", other in "[a-z]{0,4}", present in any::<bool>()) {
        let mut l = Map::new();
        if present { l.insert(key.clone(), json!(val)); }
        let sel_in = Selector::parse(&json!({"matchExpressions": [{"key": key, "operator": "In", "values": [other]}]})).expect("in");
        let sel_notin = Selector::parse(&json!({"matchExpressions": [{"key": key, "operator": "NotIn", "values": [other]}]})).expect("notin");
        prop_assert_ne!(sel_in.matches(&l), sel_notin.matches(&l));
        let exists = Selector::parse(&json!({"matchExpressions": [{"key": key, "operator": "Exists"}]})).expect("exists");
        let absent = Selector::parse(&json!({"matchExpressions": [{"key": key, "operator": "DoesNotExist"}]})).expect("dne");
        prop_assert_eq!(exists.matches(&l), present);
        prop_assert_eq!(absent.matches(&l), !present);
    }

    #[test]
    fn match_parse_never_panics(v in proptest::arbitrary::any::<(bool, u8, String)>()) {
        let value = json!({"kinds": if v.0 { json!([{"kinds": [v.2.clone()]}]) } else { json!(v.1) }, "scope": v.2, "name": v.1});
        let _ = Match::parse(&value);
    }
}

#[test]
fn sync_requirements_read_gatekeeper_annotations() {
    // As the Gatekeeper library writes them: quoted, with trailing commas.
    let text = "\"[\n  [\n    {\"groups\": [\"policy\"], \"versions\": [\"v1\"], \"kinds\": [\"PodDisruptionBudget\"]},\n  ],\n  [\n    {\"groups\": [\"networking.k8s.io\", \"extensions\"], \"versions\": [\"v1\"], \"kinds\": [\"Ingress\"]},\n    {\"groups\": [\"\"], \"versions\": [\"v1\"], \"kinds\": [\"Service\"]}\n  ]\n]\"\n";
    let requirements = super::template::parse_sync_requirements(text).expect("parses");
    assert_eq!(
        requirements,
        vec![
            vec!["policy/v1/PodDisruptionBudget".to_string()],
            vec![
                "networking.k8s.io/v1/Ingress".to_string(),
                "extensions/v1/Ingress".to_string(),
                "v1/Service".to_string()
            ],
        ]
    );
    assert!(super::template::parse_sync_requirements("{}")
        .unwrap_err()
        .contains("must be a list"));
    assert!(
        super::template::parse_sync_requirements("[[{\"groups\": [\"\"]}]]")
            .unwrap_err()
            .contains("names no kind")
    );
}
