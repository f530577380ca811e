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
    assert_eq!(v[0].actions, vec!["Warn", "Audit"]);
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
