//! Defaults the API server fills in, for the fields the controllers and clients read.

use serde_json::{json, Value};

use crate::resources::ResourceType;

fn default(object: &mut Value, pointer: &str, value: Value) {
    let mut parts: Vec<&str> = pointer.split('/').skip(1).collect();
    let Some(last) = parts.pop() else {
        return;
    };
    let mut v = object;
    for p in parts {
        if !v[p].is_object() {
            if !v[p].is_null() {
                return;
            }
            v[p] = json!({});
        }
        v = &mut v[p];
    }
    if v.get(last).is_none_or(Value::is_null) {
        v[last] = value;
    }
}

/// Fills in defaults for the object's type.
pub fn apply(rt: &ResourceType, object: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            default(object, "/spec/replicas", json!(1));
            default(object, "/spec/revisionHistoryLimit", json!(10));
            default(object, "/spec/progressDeadlineSeconds", json!(600));
            default(object, "/spec/strategy/type", json!("RollingUpdate"));
            if object["spec"]["strategy"]["type"] == "RollingUpdate" {
                default(
                    object,
                    "/spec/strategy/rollingUpdate/maxSurge",
                    json!("25%"),
                );
                default(
                    object,
                    "/spec/strategy/rollingUpdate/maxUnavailable",
                    json!("25%"),
                );
            }
        }
        ("apps", "ReplicaSet") => {
            default(object, "/spec/replicas", json!(1));
        }
        ("apps", "StatefulSet") => {
            default(object, "/spec/replicas", json!(1));
            default(object, "/spec/revisionHistoryLimit", json!(10));
            default(object, "/spec/podManagementPolicy", json!("OrderedReady"));
            default(object, "/spec/updateStrategy/type", json!("RollingUpdate"));
            if object["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/partition",
                    json!(0),
                );
            }
        }
        ("apps", "DaemonSet") => {
            default(object, "/spec/revisionHistoryLimit", json!(10));
            default(object, "/spec/updateStrategy/type", json!("RollingUpdate"));
            if object["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/maxUnavailable",
                    json!(1),
                );
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/maxSurge",
                    json!(0),
                );
            }
        }
        ("", "Service") => {
            default(object, "/spec/type", json!("ClusterIP"));
            default(object, "/spec/sessionAffinity", json!("None"));
        }
        ("", "Secret") => {
            default(object, "/type", json!("Opaque"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    #[test]
    fn deployment_defaults_keep_given_values() {
        let r = Registry::default();
        let rt = r.by_kind("apps/v1", "Deployment").unwrap();
        let mut d =
            json!({"spec": {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 0}}}});
        apply(rt, &mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0);
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            "25%"
        );
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    }
}
