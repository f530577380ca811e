use serde_json::json;

use super::kinds::Served;
use super::list::{Listed, Problem};
use super::*;

fn served(kind: &str, plural: &str, namespaced: bool) -> Served {
    Served {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        namespaced,
    }
}

fn namespace(name: &str, ignored: bool) -> Value {
    let labels = if ignored {
        json!({IGNORE_LABEL: "no-self-managing"})
    } else {
        json!({})
    };
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}})
}

#[test]
fn ignored_and_excluded_namespaces_are_left_out_and_problems_reported() {
    let listed = vec![
        Listed {
            served: served("Namespace", "namespaces", false),
            objects: vec![
                namespace("shop", false),
                namespace("gatekeeper-system", true),
                namespace("kube-system", false),
            ],
            count: 3,
            problem: None,
        },
        Listed {
            served: served("Pod", "pods", true),
            objects: vec![
                pod("shop", "web"),
                pod("gatekeeper-system", "audit"),
                pod("kube-system", "dns"),
            ],
            count: 3,
            problem: Some(Problem::Interrupted {
                listed: 3,
                remaining: Some(7),
                error: "boom".into(),
            }),
        },
        Listed {
            served: served("Secret", "secrets", true),
            objects: Vec::new(),
            count: 0,
            problem: Some(Problem::Forbidden("secrets is forbidden".into())),
        },
    ];
    let exclude = ["kube-*".to_string()];
    let mut filter = Filter::new(&listed, &exclude);
    let mut findings: Vec<Finding> = listed.iter().filter_map(problem_finding).collect();
    let docs: Vec<Document> = listed
        .into_iter()
        .flat_map(|l| {
            let served = l.served;
            l.objects.into_iter().map(move |o| (served.clone(), o))
        })
        .filter_map(|(served, o)| filter.document(&served, o))
        .collect();
    findings.extend(filter.notes());
    let sources: Vec<&str> = docs.iter().map(|d| &*d.source).collect();
    assert_eq!(
        sources,
        ["cluster:v1/Namespace/shop", "cluster:v1/Pod/shop/web"]
    );
    let messages: Vec<(Severity, &str, &str)> = findings
        .iter()
        .map(|f| (f.severity, f.file.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert_eq!(messages[0].0, Severity::Error);
    assert_eq!(messages[0].1, "cluster:v1/Pod");
    assert!(
        messages[0].2.contains("interrupted after 3 objects: boom")
            && messages[0]
                .2
                .contains("the 7 objects the server still announced were not audited"),
        "{}",
        messages[0].2
    );
    assert!(messages[1]
        .2
        .starts_with("cannot list v1/Secret: forbidden (secrets is forbidden)"));
    assert_eq!(messages[2].0, Severity::Info);
    assert!(messages[2].2.contains("namespace gatekeeper-system carries the label admission.gatekeeper.sh/ignore: its 2 objects"));
}

#[test]
fn reviews_are_built_as_gatekeeper_audit_builds_them() {
    let review = crate::review::Review::new(0, &pod("shop", "web"), &request());
    let input: Value = serde_json::from_str(&review.input.to_json_str().unwrap()).unwrap();
    assert_eq!(input["operation"], "");
    assert_eq!(input["oldObject"], Value::Null);
    assert_eq!(input["object"]["metadata"]["name"], "web");
}
