use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::manifest::Document;

fn doc(object: Value) -> Document {
    Document {
        source: Arc::from("test.yaml"),
        line: 1,
        rendered_line: None,
        origin: None,
        object,
    }
}

fn messages(schemas: &Schemas, object: Value) -> Vec<String> {
    schemas
        .check(&doc(object))
        .into_iter()
        .map(|f| f.message)
        .collect()
}

fn deployment(container: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {"containers": [container]}
            }
        }
    })
}

#[test]
fn valid_deployment_passes() {
    let schemas = Schemas::new(Options::default());
    let container = json!({
        "name": "web", "image": "nginx:1.27",
        "ports": [{"containerPort": 8080, "name": "http"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "1.5Gi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
        "livenessProbe": {"tcpSocket": {"port": 8080}},
        "env": null
    });
    assert_eq!(
        messages(&schemas, deployment(container)),
        Vec::<String>::new()
    );
}

#[test]
fn every_error_of_an_object_is_reported_with_its_path() {
    let schemas = Schemas::new(Options::default());
    let container = json!({
        "name": "web", "image": "nginx",
        "ports": [{"containerPort": "8080"}],
        "readinessprobe": {"httpGet": {"path": "/", "port": 80}},
        "resources": {"limits": {"cpu": "lots"}},
        "livenessProbe": {"httpGet": {"path": "/", "port": 1.5}}
    });
    let mut object = deployment(container);
    object["spec"]["replicas"] = json!("3");
    let found = messages(&schemas, object);
    assert_eq!(
        found,
        vec![
            "spec.replicas: \"3\" is not an integer",
            "spec.template.spec.containers[0].livenessProbe.httpGet.port: 1.5 is not an integer or a string",
            "spec.template.spec.containers[0].ports[0].containerPort: \"8080\" is not an integer",
            "spec.template.spec.containers[0].readinessprobe: unknown field (did you mean readinessProbe?)",
            "spec.template.spec.containers[0].resources.limits.cpu: \"lots\" is not a quantity (like 100m, 1.5, 512Mi or 2Gi)",
        ]
    );
    let f = &schemas.check(&doc(deployment(json!({"name": 1}))))[0];
    assert_eq!(f.code, Code::SchemaViolation);
    assert_eq!(f.severity, Severity::Deny);
    assert_eq!(f.object.as_ref().map(|o| o.name.as_str()), Some("web"));
}

#[test]
fn yaml_1_1_integers_and_booleans_are_read_as_kubernetes_reads_them() {
    let schemas = Schemas::new(Options::default());
    let pod = |mode: &str, stdin: &str| {
        let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: i, stdin: {stdin}}}]\n  volumes:\n  - name: v\n    configMap: {{name: c, defaultMode: {mode}}}\n");
        let loaded = crate::manifest::load_bytes("pod.yaml", text.as_bytes(), false);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let mut findings: Vec<(usize, usize, String)> = loaded
            .documents
            .iter()
            .flat_map(|d| schemas.check(d))
            .map(|f| (f.line, f.column, f.message))
            .collect();
        findings.sort();
        findings
    };
    // `defaultMode: 0555` and `stdin: yes`: an octal integer and a boolean.
    assert!(pod("0555", "yes").is_empty());
    assert!(pod("0b101", "off").is_empty());
    // Quoted, they are strings, reported at their fields.
    assert_eq!(
        pod("'0555'", "maybe"),
        vec![
            (
                5,
                36,
                "spec.containers[0].stdin: \"maybe\" is not a boolean".to_string()
            ),
            (
                8,
                26,
                "spec.volumes[0].configMap.defaultMode: \"0555\" is not an integer".to_string()
            ),
        ]
    );
    // In JSON a string is a string.
    let json_doc = Document {
        source: Arc::from("pod.json"),
        line: 1,
        rendered_line: None,
        origin: None,
        object: serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "i"}],
                        "volumes": [{"name": "v", "configMap": {"name": "c", "defaultMode": "0555"}}]}}),
    };
    assert_eq!(schemas.check(&json_doc).len(), 1);
}

#[test]
fn no_strict_allows_unknown_fields() {
    let schemas = Schemas::new(Options {
        strict: false,
        ..Options::default()
    });
    let container = json!({"name": "web", "image": "nginx", "readinessprobe": {}});
    assert!(messages(&schemas, deployment(container)).is_empty());
}

#[test]
fn required_fields_and_ranges() {
    let schemas = Schemas::new(Options::default());
    let found = messages(
        &schemas,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "annotations": {"example.com/a": "b"}},
               "spec": {"ports": [{"port": 99999999999_i64, "targetPort": "http"}, {"name": "x"}]}}),
    );
    assert_eq!(
        found,
        vec![
            "spec.ports[0].port: 99999999999 is greater than 2147483647",
            "spec.ports[1].port: required field is missing",
        ]
    );
    let found = messages(
        &schemas,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"a.b/c": 1}},
               "data": {"ok": "aGVsbG8=", "bad": "not base64!"}}),
    );
    assert_eq!(
        found,
        vec![
            "data.bad: \"not base64!\" is not base64-encoded data",
            "metadata.labels[\"a.b/c\"]: 1 is not a string",
        ]
    );
}

#[test]
fn missing_schema_is_a_warning_or_an_error_or_skipped() {
    let object =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let f = Schemas::new(Options::default()).check(&doc(object.clone()));
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].severity, f[0].code),
        (Severity::Warn, Code::MissingSchema)
    );
    let required = Schemas::new(Options {
        require: true,
        ..Options::default()
    });
    assert_eq!(
        required.check(&doc(object.clone()))[0].severity,
        Severity::Error
    );
    for skip in ["Widget", "example.com/v1/Widget"] {
        let skipping = Schemas::new(Options {
            require: true,
            skip_kinds: vec![skip.into()],
            ..Options::default()
        });
        assert!(skipping.check(&doc(object.clone())).is_empty());
    }
}

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets"},
            "scope": "Namespaced",
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 10, "exclusiveMaximum": true},
                                "port": {"x-kubernetes-int-or-string": true},
                                "timeout": {"type": "string", "format": "duration"},
                                "color": {"type": "string", "enum": ["red", "blue"], "nullable": true},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                             "properties": {"spec": {"type": "object"}}}
                            }
                        }
                    }
                }}},
                {"name": "v2", "served": true, "storage": false}
            ]
        }
    })
}

#[test]
fn custom_resources_follow_their_crd() {
    let mut schemas = Schemas::new(Options::default());
    assert!(schemas.add_crd(&doc(widget_crd())));
    assert!(schemas.has_crd("example.com/v1", "Widget"));
    let good = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 3, "port": "http", "timeout": "1m30s", "color": null, "extra": {"any": [1]},
                 "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}});
    assert_eq!(messages(&schemas, good), Vec::<String>::new());
    let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "lables": {}},
        "spec": {"size": 10, "port": true, "timeout": "PT1M", "color": "green", "colour": "red"}});
    assert_eq!(
        messages(&schemas, bad),
        vec![
            "metadata.lables: unknown field (did you mean labels?)",
            "spec.color: \"green\" is not one of \"red\", \"blue\"",
            "spec.colour: unknown field (did you mean color?)",
            "spec.port: true is not an integer or a string",
            "spec.size: 10 must be less than 10",
            "spec.timeout: \"PT1M\" is not a duration (like 30s, 1h30m)",
        ]
    );
    // A version without a schema accepts anything.
    let v2 = json!({"apiVersion": "example.com/v2", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}});
    assert!(messages(&schemas, v2).is_empty());
}

#[test]
fn crds_themselves_pass_the_builtin_schema() {
    let schemas = Schemas::new(Options::default());
    assert_eq!(messages(&schemas, widget_crd()), Vec::<String>::new());
}

#[test]
fn every_builtin_schema_compiles() {
    for b in BUILTINS {
        for strict in [true, false] {
            let schema = builtin_schema(b.api_version, b.kind, strict).expect("built in");
            if let Err(e) = validation_options().build(&schema) {
                panic!("{} {}: {e}", b.api_version, b.kind);
            }
        }
    }
    assert!(BUILTINS.len() > 90, "{}", BUILTINS.len());
}

#[test]
fn quantities_durations_and_base64() {
    for q in [
        "1", "100m", "1.5", ".5", "5.", "1Gi", "512Mi", "1e3", "1E-3", "+1k", "-2", "2n", "3u",
    ] {
        assert!(is_quantity(q), "{q}");
    }
    for q in [
        "", "m", "1.2.3", "1g", "1 Gi", "lots", "1Mii", "1e", ".", "1KiB",
    ] {
        assert!(!is_quantity(q), "{q}");
    }
    for d in ["0", "1s", "1h30m", "300ms", "-1.5h", "2us", "1µs"] {
        assert!(is_go_duration(d), "{d}");
    }
    for d in ["", "1", "PT1M", "1d", "h", "1.2.3s"] {
        assert!(!is_go_duration(d), "{d}");
    }
    for b in ["", "aGVsbG8=", "aGk=", "YQ==", "aGVs\nbG8="] {
        assert!(is_base64(b), "{b:?}");
    }
    for b in ["a", "aGVsbG8", "a===", "!!!!", "YQ=a"] {
        assert!(!is_base64(b), "{b:?}");
    }
}

#[test]
fn kubeconform_file_names() {
    assert_eq!(
        file_names("apps/v1", "Deployment"),
        vec![
            PathBuf::from("deployment-apps-v1.json"),
            PathBuf::from("apps/deployment_v1.json")
        ]
    );
    assert_eq!(
        file_names("v1", "Service"),
        vec![PathBuf::from("service-v1.json")]
    );
    assert_eq!(
        file_names("networking.k8s.io/v1", "Ingress")[0],
        PathBuf::from("ingress-networking-v1.json")
    );
}

#[test]
fn schema_location_files_are_used_before_builtins() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("_definitions.json"),
        r#"{"definitions": {"name": {"type": "string", "maxLength": 3}}}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("configmap-v1.json"),
        r#"{"$schema": "http://json-schema.org/schema#", "type": "object",
            "properties": {"metadata": {"type": "object", "properties": {"name": {"$ref": "_definitions.json#/definitions/name"}}}}}"#,
    )
    .expect("write");
    std::fs::write(dir.path().join("secret-v1.json"), "{not json").expect("write");
    let schemas = Schemas::new(Options {
        locations: vec![dir.path().to_path_buf()],
        ..Options::default()
    });
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "long-name"}});
    assert_eq!(
        messages(&schemas, cm),
        vec!["metadata.name: \"long-name\" is longer than 3 characters"]
    );
    let secret = schemas.check(&doc(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    ));
    assert_eq!(secret[0].severity, Severity::Error);
    assert!(
        secret[0].message.contains("invalid JSON"),
        "{}",
        secret[0].message
    );
    // Kinds without a file there still get the built-in schema.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "imagePullPolicy": 1}]}});
    assert_eq!(
        messages(&schemas, pod),
        vec!["spec.containers[0].imagePullPolicy: 1 is not a string"]
    );
}

#[test]
fn the_cache_is_shared_across_threads() {
    let schemas = Schemas::new(Options::default());
    let container = json!({"name": "web", "image": "nginx", "ports": [{"containerPort": "80"}]});
    let results: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| schemas.check(&doc(deployment(container.clone()))).len()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(results, vec![1, 1, 1, 1]);
    assert_eq!(schemas.cache.read().expect("lock").len(), 1);
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9 .:/-]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("spec".to_string()),
                    Just("metadata".to_string()),
                    Just("containers".to_string()),
                    Just("name".to_string()),
                    Just("ports".to_string()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary YAML, loaded as the CLI loads it, never makes schema checking panic.
    #[test]
    fn schema_checking_never_panics(
        body in arbitrary_json(),
        kind in prop_oneof![Just("Deployment"), Just("Pod"), Just("Service"), Just("Widget"), Just("CustomResourceDefinition")],
        api_version in prop_oneof![Just("apps/v1"), Just("v1"), Just("example.com/v1"), Just("apiextensions.k8s.io/v1")],
    ) {
        let mut object = match body {
            Value::Object(m) => Value::Object(m),
            other => json!({"spec": other}),
        };
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let yaml = serde_yaml::to_string(&object).expect("yaml");
        let loaded = crate::manifest::load_bytes("fuzz.yaml", yaml.as_bytes(), false);
        let mut schemas = Schemas::new(Options::default());
        schemas.add_crd(&doc(widget_crd()));
        for d in &loaded.documents {
            schemas.add_crd(d);
        }
        for d in &loaded.documents {
            let _ = schemas.check(d);
        }
    }

    /// Arbitrary text never makes loading plus schema checking panic.
    #[test]
    fn arbitrary_text_never_panics(text in "(apiVersion: (v1|apps/v1)\nkind: (Pod|Deployment)\n)?[a-z:\\[\\]{}\n -]{0,80}") {
        let loaded = crate::manifest::load_bytes("fuzz.yaml", text.as_bytes(), false);
        let schemas = Schemas::new(Options::default());
        for d in &loaded.documents {
            let _ = schemas.check(d);
        }
    }
}
