//! The object store: objects by resource, namespace and name, with uid, resourceVersion,
//! generation, managed fields, a bounded event history for watches, admission, validation,
//! defaulting and garbage collection of dependents.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, Notify};

use crate::clock::timestamp;
use crate::error::qualified;
pub use crate::error::ApiError;
use crate::fields;
use crate::memory::Memory;
use crate::resources::{Registry, ResourceId, ResourceType};

/// How many events a watch can resume from.
const HISTORY: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// A change, as watches see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub kind: EventType,
    pub resource: ResourceId,
    pub namespace: String,
    pub object: Value,
}

/// Where an object is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub resource: ResourceId,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(group: &str, plural: &str, namespace: &str, name: &str) -> Self {
        Key {
            resource: ResourceId {
                group: group.to_string(),
                plural: plural.to_string(),
            },
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// A write request as an admission hook sees it.
#[derive(Debug)]
pub struct Admission<'a> {
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    pub api_version: String,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// The object after the change (the deleted object for `DELETE`).
    pub object: &'a Value,
    pub dry_run: bool,
}

/// Decides a write: `Some(message)` denies it.
pub type AdmissionHook = Arc<dyn Fn(&Admission<'_>) -> Option<String> + Send + Sync>;

/// Who writes, and whether the write is kept.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub manager: &'a str,
    pub dry_run: bool,
    /// Run admission hooks (client requests); controllers skip them.
    pub admit: bool,
}

impl<'a> Write<'a> {
    pub fn controller(manager: &'a str) -> Self {
        Write {
            manager,
            dry_run: false,
            admit: false,
        }
    }
}

/// How dependents of a deleted object are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The server's state. Held under one lock; every write is one event.
pub struct State {
    pub registry: Registry,
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Event>>,
    live: broadcast::Sender<Arc<Event>>,
    changed: Arc<Notify>,
    uid_seq: u64,
    pub admission: Vec<AdmissionHook>,
    /// What controllers remember between passes (not visible through the API).
    pub memory: Memory,
}

impl State {
    pub fn new(changed: Arc<Notify>) -> Self {
        let (live, _) = broadcast::channel(16_384);
        State {
            registry: Registry::default(),
            rv: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            live,
            changed,
            uid_seq: 0,
            admission: Vec::new(),
            memory: Memory::default(),
        }
    }

    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest_resumable(&self) -> u64 {
        self.history
            .front()
            .map(|e| e.rv.saturating_sub(1))
            .unwrap_or(self.rv)
    }

    /// Events after `rv` and a receiver for later ones (taken together, so none is missed).
    pub fn subscribe_from(&self, rv: u64) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let replay = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        (replay, self.live.subscribe())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of a resource, in one namespace or all.
    pub fn list<'s>(
        &'s self,
        resource: &'s ResourceId,
        namespace: Option<&'s str>,
    ) -> impl Iterator<Item = &'s Value> + 's {
        self.objects
            .iter()
            .filter(move |(k, _)| {
                k.resource == *resource && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, v)| v)
    }

    /// Objects of `group`/`plural` owned by the object with `uid`.
    pub fn owned(&self, group: &str, plural: &str, namespace: &str, uid: &str) -> Vec<Value> {
        let id = ResourceId {
            group: group.into(),
            plural: plural.into(),
        };
        self.list(&id, Some(namespace))
            .filter(|o| owner_uids(o).any(|u| u == uid))
            .cloned()
            .collect()
    }

    fn emit(&mut self, kind: EventType, key: &Key, object: Value) {
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            resource: key.resource.clone(),
            namespace: key.namespace.clone(),
            object,
        });
        self.history.push_back(event.clone());
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let _ = self.live.send(event);
        self.changed.notify_one();
    }

    fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        let n = self.uid_seq;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            0x5e11_0000u32 + (n >> 32) as u32,
            (n >> 16) & 0xffff,
            n & 0xfff,
            (n >> 12) & 0xfff,
            n
        )
    }

    fn commit(&mut self, key: Key, mut object: Value, kind: EventType) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), object.clone());
        self.emit(kind, &key, object.clone());
        object
    }

    fn admit(
        &self,
        w: Write<'_>,
        operation: &str,
        rt: &ResourceType,
        object: &Value,
    ) -> Result<(), ApiError> {
        if !w.admit {
            return Ok(());
        }
        let request = Admission {
            operation,
            api_version: rt.api_version(),
            kind: &rt.kind,
            namespace: object["metadata"]["namespace"].as_str().unwrap_or_default(),
            name: object["metadata"]["name"].as_str().unwrap_or_default(),
            object,
            dry_run: w.dry_run,
        };
        for hook in &self.admission {
            if let Some(message) = hook(&request) {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!("admission webhook \"simulator.test\" denied the request: {message}"),
                ));
            }
        }
        Ok(())
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        if namespace.is_empty() {
            return Err(ApiError::bad_request(
                "the server could not find the requested resource: a namespace is required",
            ));
        }
        let key = Key::new("", "namespaces", "", namespace);
        match self.objects.get(&key) {
            None => Err(ApiError {
                details: Some(Box::new(json!({"name": namespace, "kind": "namespaces"}))),
                ..ApiError::new(404, "NotFound", format!("namespaces \"{namespace}\" not found"))
            }),
            Some(ns) if ns["metadata"].get("deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (`POST`, or a server-side apply of a new object when `applied`).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request("the body is not an object"));
        }
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let mut name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            if let Some(prefix) = object["metadata"]["generateName"].as_str() {
                name = format!("{prefix}{}", crate::memory::suffix(self.uid_seq + self.rv));
            }
        }
        let body_ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if rt.namespaced {
            if !body_ns.is_empty() && body_ns != namespace {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})"
                )));
            }
            object["metadata"]["namespace"] = json!(namespace);
        } else if let Some(m) = object["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        object["metadata"]["name"] = json!(name);
        crate::validate::name(rt, &name)?;
        self.check_namespace(rt, namespace)?;
        let key = Key {
            resource: rt.id(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.clone(),
        };
        if self.objects.contains_key(&key) {
            return Err(ApiError {
                details: Some(Box::new(
                    json!({"name": name, "group": rt.group, "kind": rt.plural}),
                )),
                ..ApiError::new(
                    409,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", qualified(rt)),
                )
            });
        }
        if rt.status && w.admit {
            if let Some(m) = object.as_object_mut() {
                m.remove("status");
            }
        }
        crate::defaults::apply(rt, &mut object);
        crate::validate::object(rt, &object, None)?;
        self.admit(w, "CREATE", rt, &object)?;
        let uid = self.next_uid();
        let meta = object["metadata"].as_object_mut();
        if let Some(meta) = meta {
            meta.insert("uid".into(), json!(uid));
            meta.insert("creationTimestamp".into(), json!(timestamp()));
            meta.insert("generation".into(), json!(1));
            meta.remove("resourceVersion");
            meta.remove("deletionTimestamp");
        }
        if object.pointer("/metadata/managedFields").is_none() {
            fields::record_update(None, &mut object, w.manager, rt.status, &timestamp());
        }
        if w.dry_run {
            return Ok(object);
        }
        Ok(self.commit(key, object, EventType::Added))
    }

    /// Replaces an object (`PUT`), the whole object or its status.
    pub fn replace(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        object: Value,
        status_only: bool,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        let key = Key {
            resource: rt.id(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
            if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                return Err(conflict(rt, name));
            }
        }
        let new = if status_only {
            let mut n = old.clone();
            n["status"] = object.get("status").cloned().unwrap_or(Value::Null);
            n
        } else {
            let mut n = object;
            n["apiVersion"] = json!(rt.api_version());
            n["kind"] = json!(rt.kind);
            if rt.status {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            carry_system_metadata(&old, &mut n);
            n
        };
        self.finish_update(rt, key, old, new, status_only, w)
    }

    /// A JSON merge patch of the object or its status (strategic merge patches are read as
    /// merge patches).
    pub fn merge_patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        let key = Key {
            resource: rt.id(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(rv) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                return Err(conflict(rt, name));
            }
        }
        let mut new = old.clone();
        fields::merge_patch(&mut new, patch);
        if status_only {
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            new = old.clone();
            new["status"] = status;
        } else {
            if rt.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            carry_system_metadata(&old, &mut new);
        }
        self.finish_update(rt, key, old, new, status_only, w)
    }

    /// Server-side apply (`application/apply-patch+yaml`).
    // The arguments of one server-side apply request as the API server receives them.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        applied: &Value,
        force: bool,
        status_only: bool,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        if applied["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let (Some(av), Some(kind)) = (applied["apiVersion"].as_str(), applied["kind"].as_str()) {
            if av != rt.api_version() || kind != rt.kind {
                return Err(ApiError::bad_request(format!(
                    "the apiVersion and kind of the body ({av}, {kind}) do not match the URL ({}, {})",
                    rt.api_version(),
                    rt.kind
                )));
            }
        } else {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        let key = Key {
            resource: rt.id(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let now = timestamp();
        let old = self.objects.get(&key).cloned();
        let status_sub = rt.status && !status_only;
        let merged = fields::apply(old.as_ref(), applied, w.manager, force, status_sub, &now)
            .map_err(|conflicts| {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| json!({"type": "FieldManagerConflict", "message": format!("conflict with \"{}\": {}", c.manager, c.field), "field": c.field}))
                    .collect();
                ApiError {
                    details: Some(Box::new(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes}))),
                    ..ApiError::new(409, "Conflict", fields::conflict_message(&conflicts))
                }
            })?;
        match old {
            None => {
                if status_only {
                    return Err(ApiError::not_found(rt, name));
                }
                self.create(rt, namespace, merged, w)
            }
            Some(old) => {
                let mut new = merged;
                if status_only {
                    let status = new.get("status").cloned().unwrap_or(Value::Null);
                    new = old.clone();
                    new["status"] = status;
                } else if rt.status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                let managed = new["metadata"].get("managedFields").cloned();
                carry_system_metadata(&old, &mut new);
                match managed {
                    Some(m) if !status_only => new["metadata"]["managedFields"] = m,
                    _ => {}
                }
                self.finish_update_tracked(rt, key, old, new, status_only, w, false)
            }
        }
    }

    fn finish_update(
        &mut self,
        rt: &ResourceType,
        key: Key,
        old: Value,
        new: Value,
        status_only: bool,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        self.finish_update_tracked(rt, key, old, new, status_only, w, true)
    }

    // One step shared by update, patch and apply; each passes what its request carried.
    #[allow(clippy::too_many_arguments)]
    fn finish_update_tracked(
        &mut self,
        rt: &ResourceType,
        key: Key,
        old: Value,
        mut new: Value,
        status_only: bool,
        w: Write<'_>,
        track: bool,
    ) -> Result<Value, ApiError> {
        crate::defaults::apply(rt, &mut new);
        crate::validate::object(rt, &new, Some(&old))?;
        if track && !status_only {
            fields::record_update(Some(&old), &mut new, w.manager, rt.status, &timestamp());
        }
        if spec_of(&old) != spec_of(&new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        self.admit(w, "UPDATE", rt, &new)?;
        if without_version(&old) == without_version(&new) {
            return Ok(old);
        }
        if w.dry_run {
            return Ok(new);
        }
        Ok(self.commit(key, new, EventType::Modified))
    }

    /// Deletes an object and, unless orphaned, its dependents.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        propagation: Propagation,
        preconditions: &Value,
        w: Write<'_>,
    ) -> Result<Value, ApiError> {
        let key = Key {
            resource: rt.id(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(uid) = preconditions["uid"].as_str() {
            if Some(uid) != old["metadata"]["uid"].as_str() {
                return Err(conflict(rt, name));
            }
        }
        if let Some(rv) = preconditions["resourceVersion"].as_str() {
            if Some(rv) != old["metadata"]["resourceVersion"].as_str() {
                return Err(conflict(rt, name));
            }
        }
        self.admit(w, "DELETE", rt, &old)?;
        if w.dry_run {
            return Ok(old);
        }
        Ok(self.remove(key, propagation))
    }

    /// Removes an object now (no finalizers or grace periods in the simulator) and its dependents.
    pub fn remove(&mut self, key: Key, propagation: Propagation) -> Value {
        let Some(mut object) = self.objects.remove(&key) else {
            return Value::Null;
        };
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.emit(EventType::Deleted, &key, object.clone());
        let uid = object["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // Dependents.
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| owner_uids(o).any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for dep in dependents {
            if propagation == Propagation::Orphan {
                if let Some(mut o) = self.objects.get(&dep).cloned() {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r["uid"].as_str() != Some(uid.as_str()));
                    }
                    self.commit(dep, o, EventType::Modified);
                }
            } else {
                self.remove(dep, propagation);
            }
        }
        // A namespace takes its contents with it; a CRD its resource and objects.
        if key.resource.group.is_empty() && key.resource.plural == "namespaces" {
            let contents: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            for k in contents {
                self.remove(k, Propagation::Background);
            }
        }
        if key.resource.group == "apiextensions.k8s.io" {
            for t in crate::resources::from_crd(&object).into_iter().take(1) {
                let id = t.id();
                let contents: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|k| k.resource == id)
                    .cloned()
                    .collect();
                for k in contents {
                    self.remove(k, Propagation::Background);
                }
                self.registry.unregister(&id);
            }
        }
        object
    }

    /// Creates an object on behalf of a controller.
    pub fn controller_create(&mut self, object: Value, manager: &str) -> Option<Value> {
        let rt = self
            .registry
            .by_kind(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            )?
            .clone();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.create(&rt, &namespace, object, Write::controller(manager))
            .ok()
    }

    /// Writes an object on behalf of a controller: the whole object including status, kept
    /// only if something changed.
    pub fn controller_write(&mut self, mut object: Value, manager: &str) -> Option<Value> {
        let rt = self
            .registry
            .by_kind(
                object["apiVersion"].as_str().unwrap_or_default(),
                object["kind"].as_str().unwrap_or_default(),
            )?
            .clone();
        let key = Key {
            resource: rt.id(),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let old = self.objects.get(&key)?.clone();
        if without_version(&old) == without_version(&object) {
            return Some(old);
        }
        if spec_of(&old) != spec_of(&object) {
            fields::record_update(Some(&old), &mut object, manager, rt.status, &timestamp());
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        Some(self.commit(key, object, EventType::Modified))
    }

    /// Registers the resource types of a CRD (when the CRD controller establishes it).
    pub fn register(&mut self, types: Vec<ResourceType>) {
        self.registry.register(types);
    }

    /// Every object (for tests that compare whole states).
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }
}

fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    ApiError {
        details: Some(Box::new(json!({"name": name, "group": rt.group, "kind": rt.plural}))),
        ..ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(rt)
            ),
        )
    }
}

/// The uids in an object's ownerReferences.
pub fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Identity and system fields a client cannot change.
fn carry_system_metadata(old: &Value, new: &mut Value) {
    if !new["metadata"].is_object() {
        new["metadata"] = json!({});
    }
    for key in [
        "uid",
        "creationTimestamp",
        "generation",
        "namespace",
        "name",
        "resourceVersion",
        "managedFields",
        "deletionTimestamp",
    ] {
        match old["metadata"].get(key) {
            Some(v) => new["metadata"][key] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(key);
                }
            }
        }
    }
}

/// Everything but metadata and status: what bumps the generation.
fn spec_of(object: &Value) -> Value {
    let mut m: Map<String, Value> = object.as_object().cloned().unwrap_or_default();
    m.remove("metadata");
    m.remove("status");
    Value::Object(m)
}

fn without_version(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(meta) = o["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        if let Some(mf) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
            for e in mf {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut s = State::new(Arc::new(Notify::new()));
        let ns = s
            .registry
            .by_plural("", "v1", "namespaces")
            .cloned()
            .unwrap();
        s.create(
            &ns,
            "",
            json!({"metadata": {"name": "default"}}),
            Write::controller("test"),
        )
        .unwrap();
        s
    }

    fn cm_type(s: &State) -> ResourceType {
        s.registry
            .by_plural("", "v1", "configmaps")
            .cloned()
            .unwrap()
    }

    const CLIENT: Write<'static> = Write {
        manager: "client",
        dry_run: false,
        admit: true,
    };

    #[test]
    fn create_sets_identity_and_rejects_duplicates_and_missing_namespaces() {
        let mut s = state();
        let rt = cm_type(&s);
        let cm = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                CLIENT,
            )
            .unwrap();
        assert_eq!(cm["metadata"]["generation"], 1);
        assert!(cm["metadata"]["uid"].as_str().unwrap().len() == 36);
        let again = s.create(&rt, "default", json!({"metadata": {"name": "a"}}), CLIENT);
        assert_eq!(again.unwrap_err().code, 409);
        let nowhere = s.create(&rt, "nope", json!({"metadata": {"name": "a"}}), CLIENT);
        assert_eq!(nowhere.unwrap_err().code, 404);
    }

    #[test]
    fn replace_checks_resource_version_and_bumps_generation_on_change() {
        let mut s = state();
        let rt = cm_type(&s);
        let cm = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                CLIENT,
            )
            .unwrap();
        let mut stale = cm.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(
            s.replace(&rt, "default", "a", stale, false, CLIENT)
                .unwrap_err()
                .code,
            409
        );
        let mut changed = cm.clone();
        changed["data"]["k"] = json!("w");
        let after = s
            .replace(&rt, "default", "a", changed, false, CLIENT)
            .unwrap();
        assert_eq!(after["metadata"]["generation"], 2);
        let rv = s.resource_version();
        let same = s
            .replace(&rt, "default", "a", after.clone(), false, CLIENT)
            .unwrap();
        assert_eq!(s.resource_version(), rv, "a no-op update writes nothing");
        assert_eq!(
            same["metadata"]["resourceVersion"],
            after["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn dry_run_changes_nothing() {
        let mut s = state();
        let rt = cm_type(&s);
        let rv = s.resource_version();
        let w = Write {
            dry_run: true,
            ..CLIENT
        };
        s.apply(
            &rt,
            "default",
            "a",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            false,
            false,
            w,
        )
        .unwrap();
        assert_eq!(s.resource_version(), rv);
        assert!(s.get(&Key::new("", "configmaps", "default", "a")).is_none());
    }

    #[test]
    fn deleting_an_owner_deletes_dependents() {
        let mut s = state();
        let rt = cm_type(&s);
        let owner = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "owner"}}),
                CLIENT,
            )
            .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        s.create(&rt, "default", json!({"metadata": {"name": "dep", "ownerReferences": [{"uid": uid, "name": "owner", "kind": "ConfigMap", "apiVersion": "v1"}]}}), CLIENT)
            .unwrap();
        s.delete(
            &rt,
            "default",
            "owner",
            Propagation::Background,
            &Value::Null,
            CLIENT,
        )
        .unwrap();
        assert!(s
            .get(&Key::new("", "configmaps", "default", "dep"))
            .is_none());
    }

    #[test]
    fn admission_hooks_deny_writes() {
        let mut s = state();
        let rt = cm_type(&s);
        s.admission.push(Arc::new(|a: &Admission<'_>| {
            (a.name == "blocked").then(|| "no".to_string())
        }));
        let e = s
            .create(
                &rt,
                "default",
                json!({"metadata": {"name": "blocked"}}),
                CLIENT,
            )
            .unwrap_err();
        assert_eq!(e.code, 403);
        assert!(e.message.contains("denied the request: no"));
    }
}
