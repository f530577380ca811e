//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Simplified from the real field manager: a field is a path of map keys; lists are atomic
//! (owned and replaced as a whole, where the real server merges associative lists such as
//! `containers` by key); status written through the status subresource is not tracked.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// A field: the map keys from the object root to a leaf.
pub type FieldPath = Vec<String>;

/// One manager's fields for one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<FieldPath>,
}

/// A field another manager owns with a different value, refusing an apply without force.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    /// The API version the manager wrote the field with.
    pub api_version: String,
    pub field: String,
}

/// The part of an object whose fields are owned: everything but identity, system metadata
/// and (for types with a status subresource) status.
pub fn owned_view(object: &Value, status_subresource: bool) -> Value {
    let mut view = Map::new();
    if let Some(map) = object.as_object() {
        for (k, v) in map {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "status" if status_subresource => {}
                "metadata" => {
                    let mut meta = Map::new();
                    for key in ["labels", "annotations", "ownerReferences", "finalizers"] {
                        if let Some(x) = v.get(key) {
                            meta.insert(key.to_string(), x.clone());
                        }
                    }
                    if !meta.is_empty() {
                        view.insert(k.clone(), Value::Object(meta));
                    }
                }
                _ => {
                    view.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Value::Object(view)
}

/// Every leaf path of a value (maps are walked, everything else is a leaf).
pub fn leaf_paths(value: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

fn walk(value: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                walk(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut v = value;
    for p in path {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut v = value;
    for p in parents {
        match v.as_object_mut().and_then(|m| m.get_mut(p)) {
            Some(next) => v = next,
            None => return,
        }
    }
    if let Some(map) = v.as_object_mut() {
        map.remove(last);
    }
}

/// `a` with `b` merged in: maps merge recursively, everything else is replaced.
pub fn deep_merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            for (k, bv) in bm {
                match am.get_mut(k) {
                    Some(av) if av.is_object() && bv.is_object() => deep_merge(av, bv),
                    _ => {
                        am.insert(k.clone(), bv.clone());
                    }
                }
            }
        }
        (a, b) => *a = b.clone(),
    }
}

/// A JSON merge patch (RFC 7386) applied to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(tm) = target {
                for (k, pv) in pm {
                    if pv.is_null() {
                        tm.remove(k);
                    } else {
                        let entry = tm.entry(k.clone()).or_insert(Value::Null);
                        merge_patch(entry, pv);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Reads `metadata.managedFields`.
pub fn entries(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().to_string(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    time: e["time"].as_str().unwrap_or_default().to_string(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `metadata.managedFields` (entries without fields are dropped).
pub fn set_entries(object: &mut Value, list: &[Entry]) {
    let json_list: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            })
        })
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if json_list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(json_list));
        }
    }
}

/// The `fieldsV1` form: `{"f:spec": {"f:replicas": {}}}`.
pub fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for p in path {
            let entry = node
                .entry(format!("f:{p}"))
                .or_insert_with(|| Value::Object(Map::new()));
            match entry {
                Value::Object(m) => node = m,
                _ => break,
            }
        }
    }
    Value::Object(root)
}

fn from_fields_v1(value: &Value) -> BTreeSet<FieldPath> {
    fn go(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        let children: Vec<(&String, &Value)> = v
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:")).collect())
            .unwrap_or_default();
        if children.is_empty() {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (k, child) in children {
            prefix.push(k[2..].to_string());
            go(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(value, &mut Vec::new(), &mut out);
    out
}

/// Server-side apply of `applied` by `manager` onto `live` (None: the object is created).
/// Returns the merged object with its managed fields, or the conflicts.
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    status_subresource: bool,
    time: &str,
) -> Result<Value, Vec<Conflict>> {
    let applied_view = owned_view(applied, status_subresource);
    let applied_fields = leaf_paths(&applied_view);
    let api_version = applied["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(live) = live else {
        let mut object = applied.clone();
        if status_subresource {
            if let Some(m) = object.as_object_mut() {
                m.remove("status");
            }
        }
        set_entries(
            &mut object,
            &[Entry {
                manager: manager.to_string(),
                operation: "Apply".into(),
                api_version,
                time: time.to_string(),
                fields: applied_fields,
            }],
        );
        return Ok(object);
    };
    let mut list = entries(live);
    let live_view = owned_view(live, status_subresource);
    let mut conflicts = Vec::new();
    for entry in &list {
        if entry.manager == manager && entry.operation == "Apply" {
            continue;
        }
        for f in &applied_fields {
            let clash = entry.fields.iter().any(|owned| {
                overlaps(owned, f) && lookup(&live_view, owned) != lookup(&applied_view, owned)
            });
            if clash {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    field: format!(".{}", f.join(".")),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    // Fields this manager applied before and no longer applies are removed unless someone
    // else owns them too.
    let previous: BTreeSet<FieldPath> = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut object = live.clone();
    for gone in previous.difference(&applied_fields) {
        let shared = list.iter().any(|e| {
            !(e.manager == manager && e.operation == "Apply")
                && e.fields.iter().any(|o| overlaps(o, gone))
        });
        if !shared {
            remove_path(&mut object, gone);
        }
    }
    let mut to_merge = applied.clone();
    if let Some(m) = to_merge.as_object_mut() {
        if status_subresource {
            m.remove("status");
        }
    }
    deep_merge(&mut object, &to_merge);
    if force {
        for entry in list.iter_mut() {
            if entry.manager == manager && entry.operation == "Apply" {
                continue;
            }
            entry
                .fields
                .retain(|owned| !applied_fields.iter().any(|f| overlaps(owned, f)));
        }
    }
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Apply")
    {
        Some(e) => {
            e.fields = applied_fields;
            e.time = time.to_string();
            e.api_version = api_version;
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version,
            time: time.to_string(),
            fields: applied_fields,
        }),
    }
    set_entries(&mut object, &list);
    Ok(object)
}

/// Records an update (create, replace, merge patch) by `manager`: the fields it changed
/// become its own and are taken from other managers.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    status_subresource: bool,
    time: &str,
) {
    let old_view = old
        .map(|o| owned_view(o, status_subresource))
        .unwrap_or(Value::Object(Map::new()));
    let new_view = owned_view(new, status_subresource);
    let old_paths = leaf_paths(&old_view);
    let new_paths = leaf_paths(&new_view);
    let changed: BTreeSet<FieldPath> = old_paths
        .union(&new_paths)
        .filter(|p| lookup(&old_view, p) != lookup(&new_view, p))
        .cloned()
        .collect();
    let mut list = old.map(entries).unwrap_or_default();
    if changed.is_empty() {
        set_entries(new, &list);
        return;
    }
    for entry in list.iter_mut() {
        entry.fields.retain(|owned| {
            !changed.iter().any(|c| overlaps(owned, c)) && lookup(&new_view, owned).is_some()
        });
    }
    let mine: BTreeSet<FieldPath> = changed
        .into_iter()
        .filter(|p| lookup(&new_view, p).is_some())
        .collect();
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_string();
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(e) => {
            e.fields.extend(mine);
            e.time = time.to_string();
        }
        None => list.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            api_version,
            time: time.to_string(),
            fields: mine,
        }),
    }
    set_entries(new, &list);
}

/// The API server's message for refused apply conflicts: `Apply failed with 1 conflict:
/// conflict with "unknown" using apps/v1: .spec.replicas`, and for several, per manager,
/// `conflicts with "m" using v1:` followed by `- <field>` lines.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    let head = format!(
        "Apply failed with {} conflict{}: ",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" }
    );
    if let [c] = conflicts {
        return format!(
            "{head}conflict with \"{}\" using {}: {}",
            c.manager, c.api_version, c.field
        );
    }
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for c in conflicts {
        match groups
            .iter_mut()
            .find(|(m, v, _)| *m == c.manager && *v == c.api_version)
        {
            Some((_, _, fields)) => fields.push(&c.field),
            None => groups.push((&c.manager, &c.api_version, vec![&c.field])),
        }
    }
    let body: Vec<String> = groups
        .iter()
        .map(|(m, v, fields)| {
            let word = if fields.len() == 1 {
                "conflict"
            } else {
                "conflicts"
            };
            let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
            format!("{word} with \"{m}\" using {v}:\n{}", list.join("\n"))
        })
        .collect();
    format!("{head}{}", body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "api", "labels": {"app": "api"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "a", "image": image}]}}}})
    }

    #[test]
    fn apply_creates_then_removes_fields_no_longer_applied() {
        let first = apply(None, &deployment(2, "a:1"), "executor", false, true, "t").unwrap();
        let owned = &entries(&first)[0];
        assert!(owned
            .fields
            .contains(&vec!["spec".to_string(), "replicas".to_string()]));
        let mut second_applied = deployment(2, "a:2");
        second_applied["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let second = apply(Some(&first), &second_applied, "executor", false, true, "t").unwrap();
        assert!(second.pointer("/metadata/labels/app").is_none());
        assert_eq!(
            second
                .pointer("/spec/template/spec/containers/0/image")
                .unwrap(),
            "a:2"
        );
    }

    #[test]
    fn conflicting_update_needs_force() {
        let first = apply(None, &deployment(2, "a:1"), "executor", false, true, "t").unwrap();
        let mut scaled = first.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&first), &mut scaled, "kubectl", true, "t");
        let err = apply(
            Some(&scaled),
            &deployment(2, "a:1"),
            "executor",
            false,
            true,
            "t",
        )
        .unwrap_err();
        assert_eq!(err[0].manager, "kubectl");
        assert_eq!(err[0].field, ".spec.replicas");
        // The same value is shared ownership, not a conflict.
        assert!(apply(
            Some(&scaled),
            &deployment(5, "a:1"),
            "executor",
            false,
            true,
            "t"
        )
        .is_ok());
        let forced = apply(
            Some(&scaled),
            &deployment(2, "a:1"),
            "executor",
            true,
            true,
            "t",
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 2);
        let kubectl = entries(&forced)
            .into_iter()
            .find(|e| e.manager == "kubectl");
        assert!(kubectl.is_none(), "kubectl lost its only field");
    }

    #[test]
    fn conflict_messages_read_as_the_api_servers() {
        let c = |m: &str, f: &str| Conflict {
            manager: m.into(),
            api_version: "apps/v1".into(),
            field: f.into(),
        };
        assert_eq!(
            conflict_message(&[c("unknown", ".spec.replicas")]),
            "Apply failed with 1 conflict: conflict with \"unknown\" using apps/v1: .spec.replicas"
        );
        assert_eq!(
            conflict_message(&[c("kubectl", ".a"), c("kubectl", ".b"), c("hpa", ".c")]),
            "Apply failed with 3 conflicts: conflicts with \"kubectl\" using apps/v1:\n- .a\n- .b\nconflict with \"hpa\" using apps/v1:\n- .c"
        );
    }

    #[test]
    fn fields_v1_round_trip() {
        let fields = leaf_paths(
            &json!({"spec": {"replicas": 1, "template": {"x": [1]}}, "metadata": {"labels": {"a": "b"}}}),
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&fields)), fields);
    }

    #[test]
    fn merge_patch_removes_nulls() {
        let mut v = json!({"a": {"b": 1, "c": 2}});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}}));
    }
}
