//! Manifests reach the API server as kubectl would send them: YAML 1.1 scalars resolved, null
//! fields dropped, and the validation gate sees the same values.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use support::api_manifests;

mod support;

use support::env::{apply, env, write};

#[test]
fn yaml_1_1_scalars_reach_the_api_server_as_their_values() {
    let env = env(10.0);
    let mut text = api_manifests(1, "\n  revisionHistoryLimit: 012\n  paused: no")
        .replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes")
        .replace(
            "serviceAccountName: api",
            "serviceAccountName: api\n      volumes:\n        - name: settings\n          configMap:\n            name: settings\n            defaultMode: 0644",
        );
    text.push_str(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\n  labels:\nbinaryData:\ndata:\n  mode: \"0644\"\n",
    );
    let path = write(&env, "v1.yaml", &text);
    let run = apply(&env, &path, &[]);
    assert_eq!(run.code, 0, "{run}");
    let d = env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .expect("deployment");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["paused"], false);
    assert_eq!(
        d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"],
        420
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    let cm = env
        .sim
        .get("v1", "ConfigMap", "shop", "settings")
        .expect("configmap");
    // Null fields are not sent; a quoted 0644 stays a string.
    assert!(cm["metadata"].get("labels").is_none(), "{cm}");
    assert!(cm.get("binaryData").is_none(), "{cm}");
    assert_eq!(cm["data"]["mode"], "0644", "{cm}");
}

#[test]
fn privileged_yes_is_refused_by_the_gate() {
    let env = env(10.0);
    let text = api_manifests(1, "").replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: false\n            privileged: yes",
    );
    let path = write(&env, "v1.yaml", &text);
    let run = apply(&env, &path, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("privileged"), "{run}");
    assert!(env
        .sim
        .get("apps/v1", "Deployment", "shop", "api")
        .is_none());
}
