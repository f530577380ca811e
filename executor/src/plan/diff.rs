//! Differences between a live object and what applying would make of it, for `plan`.
//! Secret values are never shown.

use serde_json::Value;

/// What applying does to one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create,
    Update(Vec<FieldChange>),
    Unchanged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// `.spec.template.spec.containers[0].image`
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

const REDACTED: &str = "(redacted)";

/// The comparable part of an object: no server-maintained metadata, no status.
fn comparable(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = o["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "managedFields",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            meta.remove(k);
        }
    }
    o
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(&format!("{path}.{k}"), b.get(k), a.get(k), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if a.len() == b.len() => {
            for (i, (x, y)) in b.iter().zip(a).enumerate() {
                walk(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        (b, a) if b != a => out.push(FieldChange {
            path: path.to_string(),
            before: b.cloned(),
            after: a.cloned(),
        }),
        _ => {}
    }
}

/// The change from `live` to `after` (the dry-run result); Secret data is redacted.
pub fn diff(live: Option<&Value>, after: &Value) -> Change {
    let Some(live) = live else {
        return Change::Create;
    };
    let mut changes = Vec::new();
    walk(
        "",
        Some(&comparable(live)),
        Some(&comparable(after)),
        &mut changes,
    );
    if changes.is_empty() {
        return Change::Unchanged;
    }
    let secret = after["kind"] == "Secret" && after["apiVersion"] == "v1";
    if secret {
        for c in &mut changes {
            if c.path.starts_with(".data.") || c.path.starts_with(".stringData.") {
                c.before = c.before.as_ref().map(|_| Value::String(REDACTED.into()));
                c.after = c.after.as_ref().map(|_| Value::String(REDACTED.into()));
            }
        }
    }
    Change::Update(changes)
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(Value::String(s)) if s == REDACTED => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// Lines describing a change, indented under the object's line.
pub fn render(change: &Change) -> Vec<String> {
    match change {
        Change::Update(fields) => fields
            .iter()
            .map(|f| format!("    {}: {} -> {}", f.path, show(&f.before), show(&f.after)))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_level_changes_ignoring_server_metadata() {
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "resourceVersion": "7", "generation": 2},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}},
            "status": {"replicas": 2}});
        let mut after = live.clone();
        after["metadata"]["resourceVersion"] = json!("8");
        after["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        after["spec"]["paused"] = json!(true);
        match diff(Some(&live), &after) {
            Change::Update(c) => {
                let lines: Vec<String> = render(&Change::Update(c));
                assert_eq!(
                    lines,
                    [
                        "    .spec.paused: (absent) -> true",
                        "    .spec.template.spec.containers[0].image: \"x:1\" -> \"x:2\""
                    ]
                );
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(diff(Some(&live), &live), Change::Unchanged);
        assert_eq!(diff(None, &live), Change::Create);
    }

    #[test]
    fn secret_values_are_redacted() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "aHVudGVyMg=="}});
        let mut after = live.clone();
        after["data"]["password"] = json!("czNjcjN0");
        after["data"]["user"] = json!("YWRtaW4=");
        let lines = render(&diff(Some(&live), &after));
        assert_eq!(
            lines,
            [
                "    .data.password: (redacted) -> (redacted)",
                "    .data.user: (absent) -> (redacted)"
            ]
        );
        assert!(!lines.concat().contains("czNjcjN0"));
    }
}
