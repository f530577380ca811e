use super::*;
use serde_json::json;

#[test]
fn review_has_gatekeeper_create_shape() {
    let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod", "labels": {"a": "b"}}});
    let r = Review::new(3, &obj, &RequestInfo::default());
    assert_eq!(
        (r.group.as_str(), r.version.as_str(), r.kind.as_str()),
        ("apps", "v1", "Deployment")
    );
    assert_eq!(r.namespace.as_deref(), Some("prod"));
    assert_eq!(r.parent, 3);
    let input: Value = serde_json::from_str(&r.input.to_json_str().expect("json")).expect("parse");
    assert_eq!(
        input["kind"],
        json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    assert_eq!(input["operation"], "CREATE");
    assert_eq!(input["name"], "web");
    assert_eq!(input["namespace"], "prod");
    assert_eq!(input["object"], obj);
    assert_eq!(input["oldObject"], Value::Null);
    assert_eq!(input["userInfo"], json!({}));
    assert_eq!(input["dryRun"], false);
    assert_eq!(input["resource"]["resource"], "deployments");
}

#[test]
fn admission_request_is_used_as_is() {
    let req = json!({"operation": "UPDATE", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}}, "userInfo": {"username": "alice"}});
    let r = Review::from_admission_request(0, &req);
    let input: Value = serde_json::from_str(&r.input.to_json_str().expect("json")).expect("parse");
    assert_eq!(input["operation"], "UPDATE");
    assert_eq!(input["userInfo"]["username"], "alice");
    assert_eq!(input["kind"]["kind"], "Pod");
    assert_eq!(input["namespace"], "n");
    assert_eq!(r.kind, "Pod");
    // DELETE carries only oldObject.
    let del = json!({"operation": "DELETE", "oldObject": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}});
    let r = Review::from_admission_request(0, &del);
    assert_eq!(r.kind, "ConfigMap");
    assert_eq!(r.name, "c");
    let input: Value = serde_json::from_str(&r.input.to_json_str().expect("json")).expect("parse");
    assert_eq!(input["object"]["metadata"]["name"], "c");
    assert_eq!(input["operation"], "DELETE");
}

#[test]
fn admission_request_fields_come_first_and_missing_ones_are_filled_in() {
    let pod =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"}});
    let as_json = |r: &Review| -> Value {
        serde_json::from_str(&r.input.to_json_str().expect("json")).expect("parse")
    };
    // Given fields are kept as they are, null ones included; only absent ones are added.
    let given = json!({"uid": "u1", "operation": "CREATE", "name": "given", "namespace": "",
        "kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": pod, "oldObject": null});
    let r = Review::from_admission_request(0, &given);
    let mut expected = given.clone();
    expected["userInfo"] = json!({});
    assert_eq!(as_json(&r), expected);
    assert_eq!((r.name.as_str(), r.namespace.as_deref()), ("given", None));
    // A request that names nothing is described by its object.
    let bare = json!({"operation": "CREATE", "object": pod});
    let r = Review::from_admission_request(0, &bare);
    assert_eq!(
        as_json(&r),
        json!({"operation": "CREATE", "object": pod, "oldObject": null, "userInfo": {},
            "kind": {"group": "", "version": "v1", "kind": "Pod"}, "name": "p", "namespace": "n"})
    );
    assert_eq!((r.name.as_str(), r.namespace.as_deref()), ("p", Some("n")));
    // A DELETE whose object is null is reviewed with its oldObject as the object.
    let delete = json!({"operation": "DELETE", "object": null, "oldObject": pod, "name": 7});
    let r = Review::from_admission_request(0, &delete);
    let input = as_json(&r);
    assert_eq!((&input["object"], &input["name"]), (&pod, &json!(7)));
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("Pod", "p"));
}

#[test]
fn inventory_layout_matches_gatekeeper() {
    let objs = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "deny", "namespace": "prod"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap"}),
    ];
    let inv = crate::engine::to_json(&inventory(objs.iter())).expect("json");
    assert_eq!(
        inv["cluster"]["v1"]["Namespace"]["prod"]["metadata"]["name"],
        "prod"
    );
    assert_eq!(
        inv["namespace"]["prod"]["networking.k8s.io/v1"]["NetworkPolicy"]["deny"]["kind"],
        "NetworkPolicy"
    );
    assert!(inv["cluster"]["v1"].get("ConfigMap").is_none());
}

#[test]
fn resource_names_are_plural() {
    assert_eq!(resource_name("Pod"), "pods");
    assert_eq!(resource_name("Ingress"), "ingresses");
    assert_eq!(resource_name("NetworkPolicy"), "networkpolicies");
    assert_eq!(resource_name("Gateway"), "gateways");
}

#[test]
fn group_versions() {
    assert_eq!(group_version("v1"), ("", "v1"));
    assert_eq!(group_version("apps/v1"), ("apps", "v1"));
}

#[test]
fn expanded_deployment_is_reviewed_as_gatekeeper_names_it() {
    let text = "apiVersion: expansion.gatekeeper.sh/v1beta1\nkind: ExpansionTemplate\nmetadata: {name: expand-deployments}\nspec:\n  applyTo:\n  - groups: [apps]\n    versions: [v1]\n    kinds: [Deployment]\n  templateSource: spec.template\n  generatedGVK: {kind: Pod, group: '', version: v1}\n";
    let loaded = crate::manifest::load_bytes("x.yaml", text.as_bytes(), false);
    let expansion = ExpansionTemplate::parse(&loaded.documents[0]).expect("expansion");
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "svc1-api", "namespace": "prod"}, "spec": {"template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    let reviews = expand(7, &deployment, &[expansion], &RequestInfo::default());
    assert_eq!(reviews.len(), 1);
    let pod = &reviews[0];
    assert_eq!(
        (
            pod.kind.as_str(),
            pod.name.as_str(),
            pod.namespace.as_deref()
        ),
        ("Pod", "svc1-api-pod", Some("prod"))
    );
    assert_eq!(pod.parent, 7);
    assert_eq!(pod.expansion.as_deref(), Some("expand-deployments"));
    let input: Value =
        serde_json::from_str(&pod.input.to_json_str().expect("json")).expect("parse");
    assert_eq!(input["name"], "svc1-api-pod");
    assert_eq!(input["namespace"], "prod");
    assert_eq!(
        input["kind"],
        json!({"group": "", "version": "v1", "kind": "Pod"})
    );
    assert_eq!(input["object"]["metadata"]["name"], "svc1-api-pod");
    assert_eq!(input["object"]["metadata"]["labels"], json!({"app": "api"}));
    assert_eq!(
        input["object"]["metadata"]["ownerReferences"],
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "svc1-api"}])
    );
}
