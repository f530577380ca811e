//! Cross-check of the built-in schemas against the strict schemas of the PyPI package
//! `kubernetes-validate` for the same Kubernetes version: the structure of every definition
//! (fields, required fields) and the verdicts over a corpus of valid and invalid objects.
//! Skipped, with a message, when python3 or the package is missing (scripts/test.sh installs it).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use validator::schema::{self, BUILTINS, KUBERNETES_VERSION};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn oracle(args: &[&str]) -> Option<String> {
    let out = Command::new("python3")
        .arg(root().join("scripts/schema-crosscheck.py"))
        .arg(KUBERNETES_VERSION)
        .args(args)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => {
            eprintln!(
                "skipped: kubernetes-validate is not usable ({}); scripts/test.sh installs it",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("skipped: python3 cannot run: {e}");
            None
        }
    }
}

fn fields(def: &Value, key: &str) -> BTreeSet<String> {
    match def.get(key) {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// What a property holds: its types (null aside) or the definition it refers to, and the same
/// for its items and map values.
fn shape(p: &Value) -> String {
    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_string();
    }
    let types: Vec<&str> = match p.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    };
    let mut out = types.join("|");
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = p.get(key).filter(|v| v.is_object()) {
            out.push_str(&format!(" {key}:{}", shape(inner)));
        }
    }
    out
}

#[test]
fn definitions_match_kubernetes_validate() {
    let Some(path) = oracle(&["--definitions"]) else {
        return;
    };
    let text = std::fs::read_to_string(path.trim()).expect("definitions");
    let theirs: Value = serde_json::from_str(&text).expect("json");
    let theirs = &theirs["$defs"];
    let mut ours: BTreeMap<String, Value> = BTreeMap::new();
    let mut differences = Vec::new();
    let mut compared = 0;
    for b in BUILTINS {
        let mut s = schema::builtin_schema(b.api_version, b.kind, false).expect("built in");
        let (group, version) = b.api_version.split_once('/').unwrap_or(("", b.api_version));
        let name = theirs
            .as_object()
            .expect("defs")
            .iter()
            .find_map(|(name, def)| {
                def["x-kubernetes-group-version-kind"]
                    .as_array()?
                    .iter()
                    .any(|g| g["group"] == group && g["version"] == version && g["kind"] == b.kind)
                    .then(|| name.clone())
            });
        match name {
            Some(name) => {
                let mut root = s.clone();
                root.as_object_mut().unwrap().remove("$defs");
                ours.insert(name, root);
            }
            None => differences.push(format!(
                "{} {}: no kubernetes-validate definition",
                b.api_version, b.kind
            )),
        }
        if let Some(Value::Object(defs)) = s.get_mut("$defs") {
            for (k, v) in std::mem::take(defs) {
                ours.insert(k, v);
            }
        }
    }
    for (name, def) in &ours {
        let Some(other) = theirs.get(name) else {
            differences.push(format!("{name}: not in kubernetes-validate"));
            continue;
        };
        for key in ["properties", "required"] {
            let (a, b) = (fields(def, key), fields(other, key));
            let only_ours: Vec<_> = a.difference(&b).collect();
            let only_theirs: Vec<_> = b.difference(&a).collect();
            if !only_ours.is_empty() || !only_theirs.is_empty() {
                differences.push(format!(
                    "{name} {key}: only ours {only_ours:?}, only theirs {only_theirs:?}"
                ));
            }
        }
        if let (Some(Value::Object(a)), Some(Value::Object(b))) =
            (def.get("properties"), other.get("properties"))
        {
            for (field, p) in a {
                if let Some(q) = b.get(field) {
                    let (x, y) = (shape(p), shape(q));
                    compared += 1;
                    if x != y {
                        differences.push(format!("{name}.{field}: ours {x}, theirs {y}"));
                    }
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "built-in schemas differ from kubernetes-validate's:\n{}",
        differences.join("\n")
    );
    assert!(ours.len() > 500, "{} definitions compared", ours.len());
    assert!(compared > 2500, "{compared} fields compared");
}

/// Objects of the corpus on which the verdicts differ, and why (the README explains each).
const EXPLAINED: &[(&str, &str)] = &[
    // Kubernetes rejects these; kubernetes-validate's schemas do not check them.
    (
        "invalid-pod-quantity",
        "quantities are checked for their syntax",
    ),
    (
        "invalid-service-port-range",
        "int32 fields are checked for their range",
    ),
    (
        "invalid-secret-base64",
        "format: byte is checked for base64",
    ),
    ("invalid-lease-time", "date-time formats are checked"),
    // A null field is an absent field for the API server, and this one is required.
    ("invalid-deployment-null-spec", "null for a required field"),
    // kubernetes-validate rejects null quantities (its oneOf string|number both accept null).
    ("valid-pod-null-fields", "null quantity"),
];

#[test]
fn verdicts_match_kubernetes_validate_on_the_corpus() {
    let dir = root().join("tests/fixtures/schema");
    let files: Vec<PathBuf> = ["valid", "invalid"]
        .iter()
        .flat_map(|d| {
            let mut f: Vec<PathBuf> = std::fs::read_dir(dir.join(d))
                .expect("corpus")
                .map(|e| e.expect("entry").path())
                .collect();
            f.sort();
            f
        })
        .collect();
    let args: Vec<&str> = files.iter().map(|f| f.to_str().expect("utf8")).collect();
    let Some(out) = oracle(&args) else {
        return;
    };
    let schemas = schema::Schemas::new(schema::Options::default());
    let mut disagreements = Vec::new();
    let mut compared = 0;
    for file in &files {
        let loaded = validator::manifest::load_file(file);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let theirs: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("verdict"))
            .filter(|v| v["file"] == file.to_str().expect("utf8"))
            .collect();
        assert_eq!(theirs.len(), loaded.documents.len(), "{}", file.display());
        for (doc, verdict) in loaded.documents.iter().zip(&theirs) {
            assert_eq!(doc.name(), verdict["name"], "{}", file.display());
            let findings = schemas.check(doc);
            let ours = findings.is_empty();
            // The corpus says what each object is.
            assert_eq!(
                ours,
                doc.name().starts_with("valid-"),
                "{}: {findings:?}",
                doc.name()
            );
            compared += 1;
            let explained = EXPLAINED.iter().any(|(name, _)| *name == doc.name());
            if verdict["valid"].as_bool() != Some(ours) && !explained {
                disagreements.push(format!(
                    "{}: ours {}, kubernetes-validate {} ({})",
                    doc.name(),
                    if ours { "valid" } else { "invalid" },
                    verdict["valid"],
                    verdict["error"]
                ));
            }
            if verdict["valid"].as_bool() == Some(ours) && explained {
                disagreements.push(format!(
                    "{}: listed as a disagreement but both agree",
                    doc.name()
                ));
            }
        }
    }
    assert!(compared >= 50, "{compared} objects compared");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// kubernetes-validate's own schema directory works as a `--schema-location` (kubeconform's
/// file names, references into `_definitions.json`), and gives the package's verdicts but
/// where a null field counts as absent or a date-time format is checked.
#[test]
fn kubernetes_validate_schemas_work_as_a_schema_location() {
    let Some(path) = oracle(&["--definitions"]) else {
        return;
    };
    let location = Path::new(path.trim()).parent().expect("dir").to_path_buf();
    let schemas = schema::Schemas::new(schema::Options {
        locations: vec![location],
        ..schema::Options::default()
    });
    let mut invalid = BTreeSet::new();
    for d in ["valid", "invalid"] {
        for entry in std::fs::read_dir(root().join("tests/fixtures/schema").join(d)).expect("dir") {
            let loaded = validator::manifest::load_file(&entry.expect("entry").path());
            for doc in &loaded.documents {
                let findings = schema::Schemas::check(&schemas, doc);
                assert!(
                    findings
                        .iter()
                        .all(|f| f.code == validator::report::Code::SchemaViolation),
                    "{findings:?}"
                );
                if !findings.is_empty() {
                    invalid.insert(doc.name().to_string());
                }
            }
        }
    }
    let expected: BTreeSet<String> = [
        "invalid-configmap-number-value",
        "invalid-cronjob-schedule-type",
        "invalid-deployment-missing-selector",
        "invalid-deployment-null-spec",
        "invalid-deployment-types",
        "invalid-ingress-backend",
        "invalid-lease-time",
        "invalid-namespace-label-type",
        "invalid-pdb-min-available",
        "invalid-pod-int-or-string-float",
        "invalid-pod-list-not-object",
        "invalid-pod-missing-container-name",
        "invalid-pod-unknown-top-level",
        "invalid-rolebinding-missing-roleref",
        "invalid-service-unknown-field",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(invalid, expected);
}
