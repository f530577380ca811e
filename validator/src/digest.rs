//! Digests that tie a check's result to what was checked: of each object (its canonical JSON)
//! and of the policy set, carried in JSON reports so that a deploy step can prove its inputs
//! are the ones that passed.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::manifest::Document;

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(7 + bytes.len() * 2);
    s.push_str("sha256:");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `sha256:<hex>` of a value's canonical JSON: keys sorted, no insignificant whitespace.
pub fn object(value: &Value) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    hex(&Sha256::digest(text.as_bytes()))
}

/// The digest of a policy set: of the sorted digests of its documents, so that neither file
/// order nor formatting matters, while any change to any template or constraint does.
pub fn policy_set(documents: &[Document]) -> String {
    let mut digests: Vec<String> = documents.iter().map(|d| object(&d.object)).collect();
    digests.sort();
    let mut hasher = Sha256::new();
    for d in &digests {
        hasher.update(d.as_bytes());
        hasher.update(b"\n");
    }
    hex(&hasher.finalize())
}

/// One checked object and its digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDigest {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub digest: String,
}

/// What a check was run on: the policy set and every input object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    pub policy_set: String,
    pub objects: Vec<ObjectDigest>,
}

impl Attestation {
    /// The attestation of `inputs` checked against `policies`, objects sorted.
    pub fn of(inputs: &[Document], policies: &[Document]) -> Self {
        let mut objects: Vec<ObjectDigest> = inputs
            .iter()
            .map(|d| ObjectDigest {
                api_version: d.api_version().to_string(),
                kind: d.kind().to_string(),
                namespace: d.namespace().to_string(),
                name: d.name().to_string(),
                digest: object(&d.object),
            })
            .collect();
        objects.sort();
        Attestation {
            policy_set: policy_set(policies),
            objects,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn doc(v: Value) -> Document {
        Document {
            source: Arc::from("x.yaml"),
            line: 1,
            object: v,
            rendered_line: None,
            origin: None,
        }
    }

    #[test]
    fn object_digest_ignores_key_order_only() {
        let a = json!({"b": 1, "a": [1, {"y": 2, "x": 1}]});
        let b = json!({"a": [1, {"x": 1, "y": 2}], "b": 1});
        assert_eq!(object(&a), object(&b));
        assert_ne!(
            object(&a),
            object(&json!({"a": [1, {"x": 1, "y": 3}], "b": 1}))
        );
        assert_eq!(object(&a).len(), 71);
    }

    #[test]
    fn policy_set_digest_ignores_order() {
        let p = doc(json!({"kind": "A"}));
        let q = doc(json!({"kind": "B"}));
        assert_eq!(
            policy_set(&[p.clone(), q.clone()]),
            policy_set(&[q, p.clone()])
        );
        assert_ne!(
            policy_set(std::slice::from_ref(&p)),
            policy_set(&[p, doc(json!({"kind": "C"}))])
        );
    }

    #[test]
    fn attestation_lists_objects_sorted() {
        let a = Attestation::of(
            &[
                doc(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}})),
                doc(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}}),
                ),
            ],
            &[],
        );
        assert_eq!(a.objects[0].kind, "ConfigMap");
        assert_eq!(a.objects[1].namespace, "");
    }
}
