//! `validator serve` end to end over real HTTPS on 127.0.0.1, with a CA generated per test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use validator::webhook::{self, state::Sources, Config, Running};

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
            labels: {type: array, items: {type: string}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8srequiredlabels
        violation[{"msg": msg}] {
          required := input.parameters.labels[_]
          not input.review.object.metadata.labels[required]
          msg := sprintf("%v <%v> lacks the label <%v>", [input.review.kind.kind, input.review.object.metadata.name, required])
        }
"#;

const SLOW: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sslow
spec:
  crd:
    spec:
      names:
        kind: K8sSlow
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sslow
        violation[{"msg": "slow"}] {
          input.review.object.metadata.labels.slow == "yes"
          count([x | x := numbers.range(1, 3000000)[_]; x < 0]) > 0
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sSlow
metadata:
  name: slow
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [ConfigMap]}]
"#;

fn constraint(name: &str, action: &str, label: &str) -> String {
    format!("apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata:\n  name: {name}\nspec:\n  enforcementAction: {action}\n  match:\n    kinds: [{{apiGroups: [\"\"], kinds: [ConfigMap]}}]\n  parameters:\n    labels: [{label}]\n")
}

struct Pki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    Pki {
        ca_pem: ca.pem(),
        cert: cert_path,
        key: key_path,
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("client")
}

struct Server {
    running: Running,
    client: reqwest::Client,
    base: String,
    policies: PathBuf,
    _dir: tempfile::TempDir,
}

/// A webhook on a free port of 127.0.0.1 with this CA's certificate, no sync, no provider.
fn config(pki: &Pki, sources: Sources, timeout: Duration, fail_closed: bool) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tls_cert: pki.cert.clone(),
        tls_key: pki.key.clone(),
        sources,
        timeout,
        fail_closed,
        max_body_bytes: 64 * 1024,
        max_concurrency: 8,
        reload_interval: Duration::from_millis(100),
        provider: false,
        cluster: Default::default(),
        limits: Default::default(),
    }
}

async fn server(timeout: Duration, fail_closed: bool, extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("mkdir");
    std::fs::write(policies.join("template.yaml"), TEMPLATE).expect("write");
    std::fs::write(
        policies.join("deny.yaml"),
        constraint("must-have-owner", "deny", "owner"),
    )
    .expect("write");
    std::fs::write(
        policies.join("warn.yaml"),
        constraint("should-have-team", "warn", "team"),
    )
    .expect("write");
    std::fs::write(
        policies.join("namespaces.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: legacy\n  labels:\n    admission.gatekeeper.sh/ignore: \"true\"\n",
    )
    .expect("write");
    for (name, text) in extra {
        std::fs::write(policies.join(name), text).expect("write");
    }
    let pki = pki(dir.path());
    let config = config(
        &pki,
        Sources {
            bundle: None,
            paths: vec![policies.clone()],
            enable_cel: true,
            exempt_namespaces: vec!["kube-*".into()],
            waivers: Vec::new(),
            verifier: None,
            inventory: None,
        },
        timeout,
        fail_closed,
    );
    let running = webhook::start(config).await.expect("server starts");
    Server {
        base: format!("https://127.0.0.1:{}", running.addr.port()),
        client: client(&pki.ca_pem),
        running,
        policies,
        _dir: dir,
    }
}

fn review(op: &str, ns: &str, labels: Value, api_version: &str) -> Value {
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": ns, "labels": labels}});
    let (obj, old) = match op {
        "DELETE" => (Value::Null, object),
        "UPDATE" => (object.clone(), object),
        _ => (object, Value::Null),
    };
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": {
        "uid": format!("uid-{op}-{ns}"), "operation": op, "namespace": ns, "name": "cm",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "object": obj, "oldObject": old, "userInfo": {"username": "alice"}
    }})
}

async fn post(s: &Server, body: &Value) -> Value {
    let resp = s
        .client
        .post(format!("{}/validate", s.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_over_https() {
    let s = server(Duration::from_secs(2), true, &[]).await;
    // Allowed: both labels present.
    let r = post(
        &s,
        &review(
            "CREATE",
            "shop",
            json!({"owner": "a", "team": "b"}),
            "admission.k8s.io/v1",
        ),
    )
    .await;
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(r["response"]["uid"], "uid-CREATE-shop");
    assert_eq!(r["response"]["allowed"], true);
    assert!(r["response"].get("warnings").is_none());
    // Denied, with the warn violation as a warning; v1beta1 answered as v1beta1.
    let r = post(
        &s,
        &review("CREATE", "shop", json!({}), "admission.k8s.io/v1beta1"),
    )
    .await;
    assert_eq!(r["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(r["response"]["allowed"], false);
    assert_eq!(r["response"]["status"]["code"], 403);
    assert_eq!(
        r["response"]["status"]["message"],
        "[must-have-owner] ConfigMap <cm> lacks the label <owner>"
    );
    assert_eq!(
        r["response"]["warnings"],
        json!(["[should-have-team] ConfigMap <cm> lacks the label <team>"])
    );
    // Warn only: allowed with a warning.
    let r = post(
        &s,
        &review(
            "UPDATE",
            "shop",
            json!({"owner": "a"}),
            "admission.k8s.io/v1",
        ),
    )
    .await;
    assert_eq!(r["response"]["allowed"], true);
    assert_eq!(r["response"]["warnings"].as_array().map(Vec::len), Some(1));
    // DELETE is reviewed with the deleted object.
    let r = post(
        &s,
        &review("DELETE", "shop", json!({}), "admission.k8s.io/v1"),
    )
    .await;
    assert_eq!(r["response"]["allowed"], false);
    // Exempt namespaces: by flag and by the ignore label on a listed Namespace.
    for ns in ["kube-system", "legacy"] {
        let r = post(&s, &review("CREATE", ns, json!({}), "admission.k8s.io/v1")).await;
        assert_eq!(r["response"]["allowed"], true, "{ns}");
        assert!(r["response"].get("warnings").is_none());
    }
    // Health, readiness and metrics.
    for path in ["healthz", "readyz"] {
        let resp = s
            .client
            .get(format!("{}/{path}", s.base))
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 200);
    }
    let metrics = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("validator_requests_total{decision=\"denied\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("validator_requests_total{decision=\"exempt\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("validator_violations_total{constraint=\"must-have-owner\",enforcement_action=\"deny\"} 2"), "{metrics}");
    assert!(metrics.contains("validator_policy_generation 1"));
    s.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_bodies() {
    let s = server(Duration::from_secs(2), true, &[]).await;
    let resp = s
        .client
        .post(format!("{}/validate", s.base))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("not valid JSON"));
    let big = "x".repeat(100 * 1024);
    let resp = s
        .client
        .post(format!("{}/validate", s.base))
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "413 is answered as JSON like the other errors"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body["error"],
        "request body is larger than 65536 bytes (--max-body-bytes)"
    );
    // No request.kind: refused, not allowed.
    let mut no_kind = review("CREATE", "shop", json!({}), "admission.k8s.io/v1");
    no_kind["request"]
        .as_object_mut()
        .expect("request")
        .remove("kind");
    let resp = s
        .client
        .post(format!("{}/validate", s.base))
        .body(no_kind.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error"]
        .as_str()
        .expect("error")
        .contains("request.kind"));
    // Still serving.
    let r = post(
        &s,
        &review(
            "CREATE",
            "shop",
            json!({"owner": "a", "team": "b"}),
            "admission.k8s.io/v1",
        ),
    )
    .await;
    assert_eq!(r["response"]["allowed"], true);
    s.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_follows_the_failure_policy() {
    for fail_closed in [true, false] {
        let s = server(
            Duration::from_millis(30),
            fail_closed,
            &[("slow.yaml", SLOW)],
        )
        .await;
        let r = post(
            &s,
            &review(
                "CREATE",
                "shop",
                json!({"owner": "a", "team": "b", "slow": "yes"}),
                "admission.k8s.io/v1",
            ),
        )
        .await;
        assert_eq!(r["response"]["allowed"], !fail_closed, "{r}");
        let text = r.to_string();
        assert!(text.contains("exceeded its deadline of 30 ms"), "{text}");
        s.running.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_atomic_and_reject_broken_sets() {
    let s = server(Duration::from_secs(2), true, &[]).await;
    assert_eq!(s.running.generation(), 1);
    let client = s.client.clone();
    let base = s.base.clone();
    // Requests in flight during both reloads always get a whole answer.
    let load = tokio::spawn(async move {
        let mut answers = 0;
        for _ in 0..40 {
            let body = review(
                "CREATE",
                "shop",
                json!({"owner": "a", "team": "b"}),
                "admission.k8s.io/v1",
            );
            let resp = client
                .post(format!("{base}/validate"))
                .body(body.to_string())
                .send()
                .await
                .expect("post");
            assert_eq!(resp.status(), 200);
            let v: Value = resp.json().await.expect("json");
            assert!(v["response"]["allowed"].is_boolean());
            answers += 1;
        }
        answers
    });
    // A broken constraint: rejected, the old set keeps serving.
    std::fs::write(s.policies.join("broken.yaml"), "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sRequiredLabels\nmetadata: {name: broken}\nspec:\n  parameters: {labels: owner}\n").expect("write");
    assert!(s.running.reload().await.is_err());
    assert_eq!(s.running.generation(), 1);
    let r = post(
        &s,
        &review(
            "CREATE",
            "shop",
            json!({"owner": "a", "team": "b"}),
            "admission.k8s.io/v1",
        ),
    )
    .await;
    assert_eq!(r["response"]["allowed"], true);
    // A good change: picked up by the file watcher, new generation, new decisions.
    std::fs::remove_file(s.policies.join("broken.yaml")).expect("rm");
    std::fs::write(
        s.policies.join("deny2.yaml"),
        constraint("must-have-tier", "deny", "tier"),
    )
    .expect("write");
    let mut waited = 0;
    while s.running.generation() < 2 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(s.running.generation() >= 2, "new policies were not loaded");
    let r = post(
        &s,
        &review(
            "CREATE",
            "shop",
            json!({"owner": "a", "team": "b"}),
            "admission.k8s.io/v1",
        ),
    )
    .await;
    assert_eq!(r["response"]["allowed"], false);
    assert!(r["response"]["status"]["message"]
        .as_str()
        .expect("msg")
        .contains("must-have-tier"));
    assert_eq!(load.await.expect("load task"), 40);
    let metrics = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("validator_policy_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );
    s.running.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_when_files_change() {
    let s = server(Duration::from_secs(2), true, &[]).await;
    // Replace the key pair with one from a new CA: new connections use it.
    let dir = tempfile::tempdir().expect("tempdir");
    let next = pki(dir.path());
    let cert_path = s.policies.parent().expect("parent").join("tls.crt");
    let key_path = s.policies.parent().expect("parent").join("tls.key");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(&next.cert, &cert_path).expect("copy cert");
    std::fs::copy(&next.key, &key_path).expect("copy key");
    let fresh = client(&next.ca_pem);
    let resp = fresh
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .expect("new CA is trusted after rotation");
    assert_eq!(resp.status(), 200);
    s.running.stop();
}

fn pod_review(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("uid-{ns}-{name}"), "operation": "CREATE", "namespace": ns, "name": name,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "object": {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        "userInfo": {"username": "alice"}
    }})
}

/// Polls `check` every 50 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_cluster_objects_feed_referential_policies() {
    let sim = Arc::new(simulator::Simulator::start().expect("simulator"));
    for ns in ["shop", "web"] {
        sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
            .expect("namespace");
    }
    sim.create(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"]}}),
    )
    .expect("network policy");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let library =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/network-policy-coverage");
    let sources = Sources {
        bundle: None,
        paths: vec![
            library.join("template.yaml"),
            library.join("samples/default/constraint.yaml"),
        ],
        enable_cel: true,
        exempt_namespaces: Vec::new(),
        waivers: Vec::new(),
        verifier: None,
        inventory: None,
    };
    // `--sync auto` reads the kinds from the template's requires-sync-data annotation.
    let templates = validator::webhook::state::used_templates(&sources).expect("templates");
    let kinds = webhook::sync::required_kinds(&templates);
    assert_eq!(
        kinds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["networking.k8s.io/v1/NetworkPolicy"]
    );
    let inventory = Arc::new(webhook::sync::Inventory::new(kinds));
    let pki = pki(dir.path());
    let config = Config {
        cluster: webhook::sync::ClusterConfig {
            kubeconfig: Some(kubeconfig.clone()),
            context: None,
        },
        ..config(
            &pki,
            Sources {
                inventory: Some(inventory.clone()),
                ..sources
            },
            Duration::from_secs(5),
            true,
        )
    };
    let running = webhook::start(config).await.expect("server starts");
    let s = Server {
        base: format!("https://127.0.0.1:{}", running.addr.port()),
        client: client(&pki.ca_pem),
        running,
        policies: dir.path().to_path_buf(),
        _dir: dir,
    };
    let ready = || async {
        s.client
            .get(format!("{}/readyz", s.base))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    };
    eventually("ready once NetworkPolicies are listed", ready).await;
    assert!(inventory.synced());
    let allowed = |body: Value| {
        let s = &s;
        async move { post(s, &body).await["response"]["allowed"] == true }
    };
    // The listed policy selects app=api in `shop` only.
    assert!(allowed(pod_review("shop", "api", json!({"app": "api"}))).await);
    let denied = post(&s, &pod_review("shop", "debug", json!({"app": "debug"}))).await;
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    assert!(
        denied["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no NetworkPolicy in namespace <shop> selects this pod"),
        "{denied}"
    );
    assert!(!allowed(pod_review("web", "site", json!({"app": "site"}))).await);

    // A policy created in the cluster is seen without a restart, and its deletion too.
    sim.create(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": "web"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
    )
    .expect("network policy");
    eventually("the new NetworkPolicy admits web pods", || {
        allowed(pod_review("web", "site", json!({"app": "site"})))
    })
    .await;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        sim.client().expect("client"),
        "web",
        &kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
        )),
    );
    api.delete("default-deny", &Default::default())
        .await
        .expect("delete");
    eventually(
        "the deleted NetworkPolicy no longer admits web pods",
        || async { !allowed(pod_review("web", "site", json!({"app": "site"}))).await },
    )
    .await;
    s.running.stop();
}
