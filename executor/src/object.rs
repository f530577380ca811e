//! Object identity (apiVersion, kind, namespace, name) and digests of objects.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which object: the same in the manifests, the release history and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectId {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    pub fn of(object: &Value) -> Self {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        ObjectId {
            api_version: s(&object["apiVersion"]),
            kind: s(&object["kind"]),
            namespace: s(&object["metadata"]["namespace"]),
            name: s(&object["metadata"]["name"]),
        }
    }

    /// `(group, version)`, the group empty for the core group.
    pub fn group_version(&self) -> (&str, &str) {
        match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        }
    }

    /// The same object under any version of its group (`apps/v1` and `apps/v1beta2`).
    pub fn same_object(&self, other: &ObjectId) -> bool {
        self.group_version().0 == other.group_version().0
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// `sha256:<hex>` of an object's canonical JSON, as the validator's attestations digest it.
pub fn digest(value: &Value) -> String {
    validator::digest::object(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_ignore_key_order_but_not_values() {
        let a = json!({"b": 1, "a": [1, {"y": 2, "x": 1}]});
        let b = json!({"a": [1, {"x": 1, "y": 2}], "b": 1});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(
            digest(&a),
            digest(&json!({"a": [1, {"x": 1, "y": 3}], "b": 1}))
        );
        assert!(digest(&a).starts_with("sha256:") && digest(&a).len() == 71);
    }

    #[test]
    fn identity_and_display() {
        let id = ObjectId::of(
            &json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "shop"}}),
        );
        assert_eq!(id.to_string(), "Deployment shop/api");
        assert_eq!(id.group_version(), ("apps", "v1"));
        let core = ObjectId::of(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        );
        assert_eq!(core.group_version(), ("", "v1"));
        assert_eq!(core.to_string(), "Namespace shop");
    }
}
