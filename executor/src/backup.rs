//! Backup archives of releases: their history (the records kept in the release Secrets) and
//! the live state of the objects their deployed revision owns, as one gzip'd JSON document
//! with a format version; and the pure transformations around it (removing what the server
//! manages, moving everything to another namespace).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::object::ObjectId;
use crate::release::Record;

/// The `format` of archives this executor writes and reads.
pub const FORMAT: &str = "executor.backup/v1";

/// A backup archive (gzip of this document as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Archive {
    /// Always [`FORMAT`].
    pub format: String,
    /// When the backup was taken (RFC 3339).
    pub created: String,
    /// The namespace the releases were backed up from.
    pub namespace: String,
    pub releases: Vec<ReleaseBackup>,
}

/// One release in an archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseBackup {
    pub name: String,
    /// Every revision of its history, oldest first.
    pub records: Vec<Record>,
    /// The live state of the objects of its deployed revision, in apply order, without the
    /// fields the server manages.
    pub objects: Vec<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the backup archive {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the backup archive {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a backup archive of `executor backup` (a gzip'd JSON document): {message}"
    )]
    Invalid { path: String, message: String },
    #[error("{path} is a backup archive in format `{format}`; this executor reads `{FORMAT}` (use the executor version that wrote it)")]
    Version { path: String, format: String },
}

/// The archive as gzip'd JSON.
pub fn encode(archive: &Archive) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(archive).map_err(std::io::Error::other)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json)?;
    gz.finish()
}

/// The largest archive read, decompressed: 4 GiB of JSON.
const MAX_ARCHIVE_JSON: u64 = 4 << 30;

/// Reads an archive; `path` names it in errors.
pub fn decode(bytes: &[u8], path: &str) -> Result<Archive, ArchiveError> {
    let invalid = |message: String| ArchiveError::Invalid {
        path: path.to_string(),
        message,
    };
    let json = crate::files::gunzip(bytes, MAX_ARCHIVE_JSON).map_err(|e| invalid(e.to_string()))?;
    let value: Value = serde_json::from_slice(&json).map_err(|e| invalid(e.to_string()))?;
    let format = value["format"].as_str().unwrap_or_default();
    if format != FORMAT {
        if format.is_empty() {
            return Err(invalid("it has no `format`".into()));
        }
        return Err(ArchiveError::Version {
            path: path.to_string(),
            format: format.to_string(),
        });
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

pub fn read(path: &Path) -> Result<Archive, ArchiveError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ArchiveError::Read {
        path: name.clone(),
        source,
    })?;
    decode(&bytes, &name)
}

/// Writes an archive readable by its owner only (it holds Secrets), replacing `path` at once.
pub fn write(path: &Path, archive: &Archive) -> Result<(), ArchiveError> {
    let err = |source| ArchiveError::Write {
        path: path.display().to_string(),
        source,
    };
    let bytes = encode(archive).map_err(err)?;
    crate::files::replace(path, &bytes, 0o600).map_err(err)
}

/// Annotations the server or its controllers write.
const SERVER_ANNOTATIONS: &[&str] = &[
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// An object as it can be created again: without uid, resourceVersion, generation,
/// creationTimestamp, managedFields, status, the annotations controllers write, a Service's
/// allocated cluster IPs, and owner references whose owner is gone (`owner_exists` decides
/// from an owner reference).
pub fn strip(object: &Value, owner_exists: impl Fn(&Value) -> bool) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = o["metadata"].as_object_mut() {
        for key in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "managedFields",
            "selfLink",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for a in SERVER_ANNOTATIONS {
                annotations.remove(*a);
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
        if let Some(refs) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| owner_exists(r));
            if refs.is_empty() {
                meta.remove("ownerReferences");
            }
        }
    }
    let service = o["apiVersion"] == "v1" && o["kind"] == "Service";
    if service {
        if let Some(spec) = o["spec"].as_object_mut() {
            let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
            if !headless {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
    }
    o
}

/// Where a restore puts things: objects in `from` move to `to`; a Namespace named `from`
/// becomes one named `to`; everything else stays.
#[derive(Debug, Clone)]
pub struct Move {
    pub from: String,
    pub to: String,
}

impl Move {
    fn namespace(&self, ns: &str) -> String {
        if ns == self.from {
            self.to.clone()
        } else {
            ns.to_string()
        }
    }

    pub fn id(&self, id: &ObjectId) -> ObjectId {
        let mut id = id.clone();
        if id.kind == "Namespace" && id.group_version().0.is_empty() {
            id.name = self.namespace(&id.name);
        } else {
            id.namespace = self.namespace(&id.namespace);
        }
        id
    }

    pub fn object(&self, object: &Value) -> Value {
        let mut o = object.clone();
        let id = ObjectId::of(&o);
        if id.kind == "Namespace" && id.group_version().0.is_empty() {
            if id.name == self.from {
                o["metadata"]["name"] = Value::String(self.to.clone());
            }
        } else if !id.namespace.is_empty() {
            o["metadata"]["namespace"] = Value::String(self.namespace(&id.namespace));
        }
        o
    }

    /// A release record with its namespace, objects and object references moved.
    pub fn record(&self, record: &Record) -> Record {
        let mut r = record.clone();
        r.namespace = self.namespace(&r.namespace);
        r.objects = r.objects.iter().map(|o| self.object(o)).collect();
        r.created = r.created.iter().map(|id| self.id(id)).collect();
        if let Some(state) = r.blue_green.as_mut() {
            state.service = self.id(&state.service);
            state.deployments = state.deployments.iter().map(|id| self.id(id)).collect();
            state.old_deployments = state.old_deployments.iter().map(|id| self.id(id)).collect();
        }
        if self.from != self.to {
            r.digest = crate::object::digest(&Value::Array(r.objects.clone()));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::{Operation, Status};
    use serde_json::json;

    fn record(objects: Vec<Value>) -> Record {
        Record {
            name: "api".into(),
            namespace: "shop".into(),
            revision: 2,
            status: Status::Deployed,
            operation: Operation::Upgrade,
            phase: None,
            description: "upgrade complete".into(),
            started: "2026-01-01T00:00:00Z".into(),
            updated: "2026-01-01T00:00:01Z".into(),
            digest: crate::object::digest(&Value::Array(objects.clone())),
            created: objects.iter().map(ObjectId::of).collect(),
            objects,
            previous: Some(1),
            rollback_of: None,
            gates: Vec::new(),
            blue_green: None,
        }
    }

    #[test]
    fn strip_removes_what_the_server_manages_and_keeps_the_rest() {
        let live = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
                "managedFields": [{"manager": "executor"}], "labels": {"app": "api"},
                "annotations": {"deployment.kubernetes.io/revision": "3", "team": "shop"},
                "ownerReferences": [{"kind": "Thing", "name": "gone", "uid": "g"},
                                    {"kind": "Thing", "name": "here", "uid": "h"}]},
            "spec": {"replicas": 2},
            "status": {"availableReplicas": 2}
        });
        let s = strip(&live, |r| r["name"] == "here");
        assert_eq!(
            s,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"},
                    "annotations": {"team": "shop"},
                    "ownerReferences": [{"kind": "Thing", "name": "here", "uid": "h"}]},
                "spec": {"replicas": 2}
            })
        );
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
            "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ports": []}});
        assert_eq!(strip(&svc, |_| true)["spec"], json!({"ports": []}));
        let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"},
            "spec": {"clusterIP": "None"}});
        assert_eq!(strip(&headless, |_| true)["spec"]["clusterIP"], "None");
        let orphan = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "ownerReferences": [{"uid": "g"}]}});
        assert!(strip(&orphan, |_| false)["metadata"]
            .get("ownerReferences")
            .is_none());
    }

    #[test]
    fn move_rewrites_namespaced_objects_the_namespace_and_records() {
        let m = Move {
            from: "shop".into(),
            to: "drill".into(),
        };
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o", "namespace": "other"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "shop"}}),
        ];
        let moved: Vec<Value> = objects.iter().map(|o| m.object(o)).collect();
        assert_eq!(moved[0]["metadata"]["name"], "drill");
        assert_eq!(moved[1]["metadata"]["namespace"], "drill");
        assert_eq!(moved[2]["metadata"]["namespace"], "other");
        assert_eq!(moved[3], objects[3]);
        let r = m.record(&record(objects.clone()));
        assert_eq!(r.namespace, "drill");
        assert_eq!(r.objects, moved);
        assert_eq!(r.created[1].namespace, "drill");
        assert_eq!(r.created[0].name, "drill");
        assert_eq!(r.digest, crate::object::digest(&Value::Array(moved)));
        let same = Move {
            from: "shop".into(),
            to: "shop".into(),
        };
        assert_eq!(same.record(&record(objects.clone())), record(objects));
    }

    #[test]
    fn archives_round_trip_and_other_formats_are_refused() {
        let archive = Archive {
            format: FORMAT.into(),
            created: "2026-01-01T00:00:00Z".into(),
            namespace: "shop".into(),
            releases: vec![ReleaseBackup {
                name: "api".into(),
                records: vec![record(vec![
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "shop"}}),
                ])],
                objects: Vec::new(),
            }],
        };
        let bytes = encode(&archive).unwrap();
        assert_eq!(decode(&bytes, "a.gz").unwrap(), archive);
        let mut v2 = archive.clone();
        v2.format = "executor.backup/v2".into();
        let e = decode(&encode(&v2).unwrap(), "a.gz")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("executor.backup/v2") && e.contains("a.gz"),
            "{e}"
        );
        let e = decode(b"not gzip", "b.gz").unwrap_err().to_string();
        assert!(e.contains("b.gz is not a backup archive"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.json.gz");
        write(&path, &archive).unwrap();
        assert_eq!(read(&path).unwrap(), archive);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
