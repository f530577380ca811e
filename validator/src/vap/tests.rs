use super::*;
use crate::manifest::load_bytes;
use crate::review::RequestInfo;

const POLICY: &str = r#"apiVersion: admissionregistration.k8s.io/v1
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
    namespaceSelector:
      matchLabels: {env: prod}
  variables:
  - name: max
    expression: "int(params.data.maxReplicas)"
  validations:
  - expression: "object.spec.replicas <= variables.max"
    messageExpression: "'replicas ' + string(object.spec.replicas) + ' exceed ' + string(variables.max)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-prod
spec:
  policyName: replica-limit
  validationActions: [Warn, Audit]
  paramRef: {name: limits, parameterNotFoundAction: Deny}
"#;

fn docs(text: &str) -> Vec<Document> {
    let l = load_bytes("v.yaml", text.as_bytes(), false);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    l.documents
}

fn deployment(ns: &str, replicas: i64) -> Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns}, "spec": {"replicas": replicas}})
}

fn run(
    set: &Set,
    obj: &Value,
    ns_labels: Option<&Map<String, Value>>,
    objects: &[Document],
) -> (Vec<Violation>, Vec<String>) {
    let o = outcome(set, obj, ns_labels, objects);
    (o.violations, o.errors)
}

fn outcome(
    set: &Set,
    obj: &Value,
    ns_labels: Option<&Map<String, Value>>,
    objects: &[Document],
) -> Outcome {
    let review = Review::new(0, obj, &RequestInfo::default());
    let json: Value =
        serde_json::from_str(&review.input.to_json_str().expect("json")).expect("parse");
    evaluate(set, &review, &json, &review.target(ns_labels), objects)
}

#[test]
fn bound_policy_with_params_and_namespace_selector() {
    let d = docs(POLICY);
    let (set, errors) = Set::from_documents(&d);
    assert!(errors.is_empty(), "{errors:?}");
    let objects = docs("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits, namespace: shop}\ndata: {maxReplicas: '3'}\n");
    let prod: Map<String, Value> = [("env".to_string(), serde_json::json!("prod"))]
        .into_iter()
        .collect();
    let (v, e) = run(&set, &deployment("shop", 5), Some(&prod), &objects);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].message, "replicas 5 exceed 3");
    assert_eq!(v[0].actions, vec![Action::Warn, Action::Audit]);
    assert!(run(&set, &deployment("shop", 2), Some(&prod), &objects)
        .0
        .is_empty());
    // Namespace not selected.
    assert!(
        run(&set, &deployment("shop", 5), Some(&Map::new()), &objects)
            .0
            .is_empty()
    );
    // No params: denied by parameterNotFoundAction.
    let (v, _) = run(&set, &deployment("shop", 1), Some(&prod), &[]);
    assert!(v[0].message.contains("no params found"));
}

#[test]
fn bad_policies_and_dangling_bindings_are_errors() {
    let d = docs("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec:\n  policyName: missing\n  validationActions: [Deny]\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: c}\nspec:\n  policyName: x\n  validationActions: [Block]\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: p}\nspec:\n  matchConstraints: {resourceRules: []}\n  validations: [{expression: '1 +'}]\n");
    let (_, errors) = Set::from_documents(&d);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{text:?}");
    assert!(text.iter().any(|e| e.contains("validationActions")));
    assert!(text.iter().any(|e| e.contains("does not compile")));
    assert!(text
        .iter()
        .any(|e| e.contains("no ValidatingAdmissionPolicy named missing")));
}

#[test]
fn audit_annotations_are_recorded_and_null_values_left_out() {
    let d = docs("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: sizes}\nspec:\n  matchConstraints:\n    resourceRules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}]\n  auditAnnotations:\n  - key: high-replicas\n    valueExpression: \"object.spec.replicas > 3 ? 'replicas: ' + string(object.spec.replicas) : null\"\n  - key: always\n    valueExpression: \"'seen'\"\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: sizes-all}\nspec:\n  policyName: sizes\n  validationActions: [Audit]\n");
    let (set, errors) = Set::from_documents(&d);
    assert!(errors.is_empty(), "{errors:?}");
    let o = outcome(&set, &deployment("shop", 5), None, &[]);
    assert!(o.violations.is_empty() && o.errors.is_empty(), "{o:?}");
    let keys: Vec<(&str, &str)> = o
        .annotations
        .iter()
        .map(|a| (a.key.as_str(), a.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![("high-replicas", "replicas: 5"), ("always", "seen")]
    );
    assert_eq!(o.annotations[0].policy, "sizes");
    let o = outcome(&set, &deployment("shop", 1), None, &[]);
    assert_eq!(o.annotations.len(), 1);
    assert_eq!(o.annotations[0].key, "always");
}

#[test]
fn audit_annotation_of_the_wrong_type_is_an_error() {
    let d = docs("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: p}\nspec:\n  matchConstraints:\n    resourceRules: [{apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}]\n  auditAnnotations: [{key: num, valueExpression: '1'}]\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec: {policyName: p, validationActions: [Deny]}\n");
    let (set, errors) = Set::from_documents(&d);
    assert!(errors.is_empty(), "{errors:?}");
    let o = outcome(&set, &deployment("shop", 1), None, &[]);
    assert!(o.errors[0].contains("expected a string or null"), "{o:?}");
}

const CROSS_NAMESPACE_BINDING: &str = r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: replica-limit-shared
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: policy-params, parameterNotFoundAction: Deny}
"#;

const PARAMS_IN_OTHER_NAMESPACE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits, namespace: policy-params}\ndata: {maxReplicas: '3'}\n";

/// The policy of POLICY with a binding whose params live in `policy-params`.
fn cross_namespace_policy(with_params: bool) -> Set {
    let policy = POLICY.split("\n---\n").next().expect("policy");
    let mut text = format!("{policy}\n---\n{CROSS_NAMESPACE_BINDING}");
    if with_params {
        text.push_str("---\n");
        text.push_str(PARAMS_IN_OTHER_NAMESPACE);
    }
    let (set, errors) = Set::from_documents(&docs(&text));
    assert!(errors.is_empty(), "{errors:?}");
    set
}

#[test]
fn params_in_another_namespace_given_with_the_policies() {
    let set = cross_namespace_policy(true);
    assert_eq!(
        set.params.len(),
        1,
        "the ConfigMap beside the policy is a param"
    );
    let prod: Map<String, Value> = [("env".to_string(), serde_json::json!("prod"))]
        .into_iter()
        .collect();
    let (v, e) = run(&set, &deployment("shop", 5), Some(&prod), &[]);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].message, "replicas 5 exceed 3");
    assert_eq!(v[0].action(), Action::Deny);
    assert!(run(&set, &deployment("shop", 3), Some(&prod), &[])
        .0
        .is_empty());
}

#[test]
fn params_in_another_namespace_given_with_the_inputs() {
    let set = cross_namespace_policy(false);
    let prod: Map<String, Value> = [("env".to_string(), serde_json::json!("prod"))]
        .into_iter()
        .collect();
    let inputs = docs(PARAMS_IN_OTHER_NAMESPACE);
    let (v, e) = run(&set, &deployment("shop", 5), Some(&prod), &inputs);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].message, "replicas 5 exceed 3");
    // A ConfigMap of that name in the object's own namespace is not the param.
    let wrong = docs("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits, namespace: shop}\ndata: {maxReplicas: '10'}\n");
    let (v, _) = run(&set, &deployment("shop", 5), Some(&prod), &wrong);
    assert_eq!(v.len(), 1);
    assert!(v[0].message.contains("no params found"), "{v:?}");
}

#[test]
fn missing_param_with_deny_denies() {
    let set = cross_namespace_policy(false);
    let prod: Map<String, Value> = [("env".to_string(), serde_json::json!("prod"))]
        .into_iter()
        .collect();
    let (v, e) = run(&set, &deployment("shop", 1), Some(&prod), &[]);
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].action(), Action::Deny);
    assert!(
        v[0].message.contains("parameterNotFoundAction: Deny"),
        "{v:?}"
    );
    // With Allow, a missing param allows.
    let allow = CROSS_NAMESPACE_BINDING.replace(
        "parameterNotFoundAction: Deny",
        "parameterNotFoundAction: Allow",
    );
    let policy = POLICY.split("\n---\n").next().expect("policy");
    let (set, errors) = Set::from_documents(&docs(&format!("{policy}\n---\n{allow}")));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(run(&set, &deployment("shop", 1), Some(&prod), &[])
        .0
        .is_empty());
}

/// `validator check` with the policy, binding and param ConfigMap given as policies (as with
/// `--policies DIR`): the param is found and the Deployment denied.
#[test]
fn check_finds_params_given_with_the_policies() {
    let policy = POLICY.split("\n---\n").next().expect("policy");
    let policies = docs(&format!(
        "{policy}\n---\n{CROSS_NAMESPACE_BINDING}---\n{PARAMS_IN_OTHER_NAMESPACE}"
    ));
    let input = load_bytes(
        "in.yaml",
        b"apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {env: prod}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec: {replicas: 5}\n",
        false,
    );
    let options = crate::check::Options {
        schemas: None,
        jobs: Some(1),
        ..crate::check::Options::default()
    };
    let outcome = crate::check::run(input, &policies, &options);
    let denies: Vec<&str> = outcome
        .findings
        .iter()
        .filter(|f| f.severity == crate::report::Severity::Deny)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        denies,
        vec!["replicas 5 exceed 3"],
        "{:?}",
        outcome.findings
    );
}
