//! Schema directories in kubeconform's layout (`--schema-location DIR`): `{kind}-{group}-{version}.json`
//! (lowercase kind, the group's first label, e.g. `deployment-apps-v1.json`, `ingress-networking-v1.json`),
//! `{kind}-{version}.json` for the core group (`service-v1.json`), and the CRD catalogue layout
//! `{group}/{kind}_{version}.json`. A `_definitions.json` beside them resolves their references.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jsonschema::Registry;
use serde_json::Value;

/// One `--schema-location` directory.
pub struct Location {
    dir: PathBuf,
    registry: OnceLock<Result<Registry<'static>, String>>,
}

/// A schema file found for a kind, read and ready to compile.
pub struct Found {
    pub path: PathBuf,
    pub schema: Value,
}

/// File names a kind's schema may have under a location, in the order they are tried.
pub fn file_names(api_version: &str, kind: &str) -> Vec<PathBuf> {
    let kind = kind.to_lowercase();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let version = version.to_lowercase();
    if group.is_empty() {
        return vec![PathBuf::from(format!("{kind}-{version}.json"))];
    }
    let first = group.split('.').next().unwrap_or(group).to_lowercase();
    vec![
        PathBuf::from(format!("{kind}-{first}-{version}.json")),
        Path::new(group).join(format!("{kind}_{version}.json")),
    ]
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))
}

/// `file://` URI of a path (made absolute).
pub fn file_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let text = absolute.to_string_lossy().replace('\\', "/");
    let text = text
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('#', "%23");
    if text.starts_with('/') {
        format!("file://{text}")
    } else {
        format!("file:///{text}")
    }
}

impl Location {
    pub fn new(dir: PathBuf) -> Self {
        Location {
            dir,
            registry: OnceLock::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The schema file for a kind, if this location has one.
    pub fn find(&self, api_version: &str, kind: &str) -> Option<Result<Found, (PathBuf, String)>> {
        file_names(api_version, kind)
            .into_iter()
            .map(|name| self.dir.join(name))
            .find(|p| p.is_file())
            .map(|path| match read_json(&path) {
                Ok(schema) => Ok(Found { path, schema }),
                Err(e) => Err((path, e)),
            })
    }

    /// The shared definitions (`_definitions.json`), under their file URI and their `$id`.
    pub fn registry(&self) -> Result<&Registry<'static>, String> {
        self.registry
            .get_or_init(|| {
                let mut resources: Vec<(String, Value)> = Vec::new();
                let path = self.dir.join("_definitions.json");
                if path.is_file() {
                    let defs = read_json(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    if let Some(id) = defs.get("$id").and_then(Value::as_str) {
                        resources.push((id.to_string(), defs.clone()));
                    }
                    resources.push((file_uri(&path), defs));
                }
                Registry::new()
                    .extend(resources)
                    .and_then(|b| b.prepare())
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}
