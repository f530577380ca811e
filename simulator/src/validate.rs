//! Validation the API server does before it stores an object (the checks clients run into).

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::selector::LabelSelector;

/// A DNS-1123 subdomain (names of most objects).
pub fn name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            rt,
            name,
            format!("metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ))
    }
}

/// Type-specific checks; `old` is the stored object for updates.
pub fn object(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let n = object["metadata"]["name"].as_str().unwrap_or_default();
    let workload = rt.group == "apps"
        && matches!(
            rt.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        );
    if workload {
        let selector = &object["spec"]["selector"];
        if !selector.is_object() {
            return Err(ApiError::invalid(rt, n, "spec.selector: Required value"));
        }
        let s = LabelSelector::from_object(selector);
        if s.is_empty() {
            return Err(ApiError::invalid(
                rt,
                n,
                "spec.selector: Invalid value: empty selector is invalid for deployment",
            ));
        }
        if !s.matches(
            object
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object),
        ) {
            return Err(ApiError::invalid(
                rt,
                n,
                "spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`",
            ));
        }
        if let Some(old) = old {
            if old["spec"]["selector"] != *selector {
                return Err(ApiError::invalid(
                    rt,
                    n,
                    "spec.selector: Invalid value: field is immutable",
                ));
            }
        }
        if object["spec"]["replicas"].as_i64().is_some_and(|r| r < 0) {
            return Err(ApiError::invalid(
                rt,
                n,
                "spec.replicas: Invalid value: must be greater than or equal to 0",
            ));
        }
        let containers = object
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array);
        match containers {
            Some(cs) if !cs.is_empty() => {
                for (i, c) in cs.iter().enumerate() {
                    if c["name"].as_str().is_none_or(str::is_empty) {
                        return Err(ApiError::invalid(
                            rt,
                            n,
                            format!("spec.template.spec.containers[{i}].name: Required value"),
                        ));
                    }
                    if c["image"].as_str().is_none_or(str::is_empty) {
                        return Err(ApiError::invalid(
                            rt,
                            n,
                            format!("spec.template.spec.containers[{i}].image: Required value"),
                        ));
                    }
                }
            }
            _ => {
                return Err(ApiError::invalid(
                    rt,
                    n,
                    "spec.template.spec.containers: Required value",
                ))
            }
        }
    }
    if rt.group == "coordination.k8s.io" && rt.kind == "Lease" {
        if let Some(d) = object["spec"]["leaseDurationSeconds"].as_i64() {
            if d <= 0 {
                return Err(ApiError::invalid(
                    rt,
                    n,
                    "spec.leaseDurationSeconds: Invalid value: must be greater than 0",
                ));
            }
        }
    }
    Ok(())
}

/// Kubernetes before 1.21: server-side apply refuses a port without `protocol` (a key of the
/// `ports` lists of Services and containers, without a default in apply), with the message
/// of its structured-merge-diff library.
pub fn apply_port_protocols(applied: &Value) -> Result<(), ApiError> {
    let mut lists: Vec<(String, &Value)> = vec![(".spec.ports".into(), &applied["spec"]["ports"])];
    for (prefix, spec) in [
        (".spec", &applied["spec"]),
        (".spec.template.spec", &applied["spec"]["template"]["spec"]),
        (
            ".spec.jobTemplate.spec.template.spec",
            &applied["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        ),
    ] {
        for field in ["initContainers", "containers"] {
            for c in spec[field].as_array().into_iter().flatten() {
                let name = c["name"].as_str().unwrap_or_default();
                lists.push((
                    format!("{prefix}.{field}[name=\"{name}\"].ports"),
                    &c["ports"],
                ));
            }
        }
    }
    for (path, ports) in lists {
        let missing = ports
            .as_array()
            .into_iter()
            .flatten()
            .position(|p| p.get("protocol").is_none());
        if let Some(i) = missing {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!("failed to create typed patch object: {path}: element {i}: associative list with keys has an element that omits key field \"protocol\" (and doesn't have default value)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    #[test]
    fn deployment_selector_must_match_and_stay() {
        let r = Registry::default();
        let rt = r.by_kind("apps/v1", "Deployment").unwrap();
        let d = json!({"metadata": {"name": "api"}, "spec": {"selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}}}});
        assert!(object(rt, &d, None).is_ok());
        let mut other = d.clone();
        other["spec"]["selector"]["matchLabels"]["app"] = json!("web");
        other["spec"]["template"]["metadata"]["labels"]["app"] = json!("web");
        assert_eq!(object(rt, &other, Some(&d)).unwrap_err().code, 422);
        let mut mismatch = d.clone();
        mismatch["spec"]["template"]["metadata"]["labels"]["app"] = json!("web");
        assert!(object(rt, &mismatch, None).is_err());
        assert!(name(rt, "Bad_Name").is_err());
    }
}
