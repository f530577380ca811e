#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! What a test can ask of the server besides objects: a kind forbidden as RBAC forbids it,
//! paged lists that fail part-way, controllers paused.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use simulator::Simulator;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_forbidden_kind_answers_403_and_other_kinds_still_answer() {
    let sim = Simulator::start().unwrap();
    sim.forbid("v1", "Secret");
    let client = sim.client().unwrap();
    let secrets: Api<Secret> = Api::all(client.clone());
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
            assert!(
                status.message.contains(
                    "cannot list resource \"secrets\" in API group \"\" at the cluster scope"
                ),
                "{}",
                status.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let in_default: Api<Secret> = Api::namespaced(client.clone(), "default");
    match in_default.get("token").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403);
            assert!(status.message.contains("cannot get resource \"secrets\""));
            assert!(status.message.contains("in the namespace \"default\""));
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    maps.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    assert_eq!(
        maps.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn continued_list_pages_fail_as_often_as_asked() {
    let sim = Simulator::start().unwrap();
    let client = sim.client().unwrap();
    let maps: Api<ConfigMap> = Api::namespaced(client, "default");
    for name in ["a", "b", "c"] {
        maps.create(&PostParams::default(), &config_map(name))
            .await
            .unwrap();
    }
    sim.fail_continued_lists("v1", "ConfigMap", 1);
    let first = maps.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().unwrap();
    let next = ListParams::default().limit(2).continue_token(&token);
    match maps.list(&next).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected 500, got {other:?}"),
    }
    // The failure was used up: the same page now answers.
    let second = maps.list(&next).await.unwrap();
    assert_eq!(second.items.len(), 1);
    assert!(second.metadata.continue_.is_none());
}

#[tokio::test]
async fn paused_controllers_leave_objects_as_created_until_resumed() {
    use std::time::Duration;
    let sim = Simulator::start().unwrap();
    sim.pause_controllers(true);
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/web:1"}]}
    });
    sim.create(pod).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let phase = |sim: &Simulator| {
        sim.get("v1", "Pod", "default", "web").unwrap()["status"]["phase"]
            .as_str()
            .map(String::from)
    };
    assert_eq!(phase(&sim), None, "the kubelet ran while paused");
    sim.pause_controllers(false);
    assert!(sim.wait_until(Duration::from_secs(10), |s| phase(s).is_some()));
}
