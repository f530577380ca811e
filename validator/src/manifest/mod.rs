//! Loading Kubernetes objects from files, directories and stdin, keeping each object's source position.

mod split;
pub mod yaml;

use rayon::prelude::*;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use split::split_documents;

/// One Kubernetes object read from an input, with where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it was read from (`-` for stdin), as the user named it.
    pub source: Arc<str>,
    /// 1-based line where the object's document starts.
    pub line: usize,
    /// The object itself.
    pub object: Value,
    /// For objects rendered from a Helm chart (`source` is then the template file):
    /// the line where the document starts in the rendered output.
    pub rendered_line: Option<usize>,
    /// The text the object was read from, to find the position of any of its fields.
    pub origin: Option<Arc<Origin>>,
}

/// The YAML text of the document an object was read from.
#[derive(Debug)]
pub struct Origin {
    /// The document's text.
    pub text: Arc<str>,
    /// The line of the input where `text` starts.
    pub first_line: usize,
    /// Path of the object inside the document (`items`, index) for the items of a `List`.
    pub prefix: Vec<String>,
    /// Mapping entries dropped from the document because their value was null.
    pub dropped_nulls: Vec<yaml::DroppedNull>,
}

impl Document {
    /// An object without a known position in a text (built by the program, not read).
    pub fn new(source: Arc<str>, line: usize, object: Value) -> Document {
        Document {
            source,
            line,
            object,
            rendered_line: None,
            origin: None,
        }
    }

    /// The line and column (1-based) of a field of the object, by its path of keys and
    /// indexes: the key's position for a mapping entry, the item's for a sequence item.
    pub fn locate(&self, path: &[String]) -> Option<(usize, usize)> {
        let origin = self.origin.as_ref()?;
        let full: Vec<String> = origin.prefix.iter().chain(path).cloned().collect();
        let p = yaml::locate(&origin.text, &full)?;
        Some((origin.first_line + p.line - 1, p.column))
    }

    /// For a field written as a literal block scalar (`key: |`): the input line of the
    /// value's first line and the indentation of its lines, to turn a position inside the
    /// value into a position in the input.
    pub fn literal_block(&self, path: &[String]) -> Option<(usize, usize)> {
        let origin = self.origin.as_ref()?;
        let full: Vec<String> = origin.prefix.iter().chain(path).cloned().collect();
        let key = yaml::locate(&origin.text, &full)?;
        let mut lines = origin.text.lines().skip(key.line - 1);
        let key_line = lines.next()?;
        let after_key = key_line.get(key.column.saturating_sub(1)..)?;
        let (_, value) = after_key.split_once(':')?;
        if !value.trim_start().starts_with('|') {
            return None;
        }
        let indent = lines
            .find(|l| !l.trim().is_empty())
            .map(|l| l.len() - l.trim_start_matches(' ').len())?;
        Some((origin.first_line + key.line, indent))
    }

    /// Fields of the object that were written with a null value (and so dropped), with their
    /// line and column in the input.
    pub fn dropped_nulls(&self) -> Vec<(Vec<String>, usize, usize)> {
        let Some(origin) = &self.origin else {
            return Vec::new();
        };
        origin
            .dropped_nulls
            .iter()
            .filter_map(|d| {
                let rest = d.path.strip_prefix(origin.prefix.as_slice())?;
                Some((
                    rest.to_vec(),
                    origin.first_line + d.position.line - 1,
                    d.position.column,
                ))
            })
            .collect()
    }

    pub fn api_version(&self) -> &str {
        self.object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn name(&self) -> &str {
        metadata_str(&self.object, "name")
    }
    pub fn namespace(&self) -> &str {
        metadata_str(&self.object, "namespace")
    }
}

/// A string field of an object's metadata, or "" when absent.
pub fn metadata_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An input that could not be read as Kubernetes objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub source: Arc<str>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.source, self.line, self.column, self.message
        )
    }
}

/// Everything read from a set of inputs: the objects and the inputs that failed.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub errors: Vec<LoadError>,
    /// Inputs skipped on purpose (YAML found by a directory scan that is not a Kubernetes
    /// object), said once each.
    pub notes: Vec<LoadError>,
}

impl Loaded {
    pub fn extend(&mut self, other: Loaded) {
        self.documents.extend(other.documents);
        self.errors.extend(other.errors);
        self.notes.extend(other.notes);
    }

    /// Gives every namespaced object without `metadata.namespace` the namespace `namespace`,
    /// as the API server does for `kubectl apply -n NAMESPACE`. `cluster_scoped` tells the
    /// kinds that have no namespace.
    pub fn default_namespace(
        &mut self,
        namespace: &str,
        cluster_scoped: impl Fn(&str, &str) -> bool,
    ) {
        for doc in &mut self.documents {
            if !doc.namespace().is_empty() || cluster_scoped(doc.api_version(), doc.kind()) {
                continue;
            }
            if let Some(Value::Object(meta)) = doc.object.get_mut("metadata") {
                meta.insert("namespace".into(), Value::String(namespace.to_string()));
            } else if let Value::Object(object) = &mut doc.object {
                let mut meta = serde_json::Map::new();
                meta.insert("namespace".into(), Value::String(namespace.to_string()));
                object.insert("metadata".into(), Value::Object(meta));
            }
        }
    }
}

/// How inputs are found and read.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Files found by a directory scan that match one of these globs (on the path below the
    /// scanned directory or on the file name) are left out.
    pub exclude: Vec<String>,
}

fn is_manifest_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Files a path stands for: the file itself, or the manifest files under a directory, sorted.
pub fn expand_path(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    expand_path_excluding(path, &[])
}

fn excluded(root: &Path, file: &Path, exclude: &[String]) -> bool {
    let relative = file.strip_prefix(root).unwrap_or(file).to_string_lossy();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    exclude
        .iter()
        .any(|g| crate::glob::glob_match(g, &relative) || crate::glob::glob_match(g, &name))
}

fn expand_path_excluding(path: &Path, exclude: &[String]) -> Result<Vec<PathBuf>, LoadError> {
    if path.is_dir() {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            match entry {
                Ok(e)
                    if e.file_type().is_file()
                        && is_manifest_file(e.path())
                        && !excluded(path, e.path(), exclude) =>
                {
                    files.push(e.into_path());
                }
                Ok(_) => {}
                Err(e) => return Err(io_error(path, &e.to_string())),
            }
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(io_error(
            path,
            "no such file or directory; pass an existing file, directory or `-` for stdin",
        ))
    }
}

fn io_error(path: &Path, message: &str) -> LoadError {
    LoadError {
        source: Arc::from(path.display().to_string()),
        line: 1,
        column: 1,
        message: message.to_string(),
    }
}

/// Reads files, directories (recursively) and `-` (stdin).
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    load_paths_with(paths, &LoadOptions::default())
}

/// Reads files, directories (recursively, without the excluded files) and `-` (stdin). In
/// files found by a directory scan, YAML documents that are not Kubernetes objects (no
/// apiVersion and kind) are skipped with a note rather than reported as errors.
pub fn load_paths_with(paths: &[PathBuf], options: &LoadOptions) -> Loaded {
    let mut loaded = Loaded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            match std::io::stdin().read_to_end(&mut bytes) {
                Ok(_) => loaded.extend(load_bytes("-", &bytes, false)),
                Err(e) => loaded
                    .errors
                    .push(io_error(path, &format!("cannot read stdin: {e}"))),
            }
            continue;
        }
        let scanned = path.is_dir();
        match expand_path_excluding(path, &options.exclude) {
            Ok(files) => {
                for file in files {
                    let mut part = load_file(&file);
                    if scanned {
                        part.errors.retain(|e| {
                            let skip = e.message.starts_with(NOT_AN_OBJECT);
                            if skip {
                                loaded.notes.push(LoadError {
                                    message:
                                        "skipped: not a Kubernetes object (no apiVersion and kind)"
                                            .into(),
                                    ..e.clone()
                                });
                            }
                            !skip
                        });
                    }
                    loaded.extend(part);
                }
            }
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// How the error about a document without apiVersion and kind starts.
const NOT_AN_OBJECT: &str = "not a Kubernetes object";

/// Reads one file.
pub fn load_file(path: &Path) -> Loaded {
    match std::fs::read(path) {
        Ok(bytes) => {
            let json = path.extension().and_then(|e| e.to_str()) == Some("json");
            load_bytes(&path.display().to_string(), &bytes, json)
        }
        Err(e) => Loaded {
            errors: vec![io_error(path, &format!("cannot read file: {e}"))],
            ..Loaded::default()
        },
    }
}

/// Parses the bytes of one input into objects; `json` selects the JSON parser.
pub fn load_bytes(source: &str, bytes: &[u8], json: bool) -> Loaded {
    let source: Arc<str> = Arc::from(source);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_column(bytes, e.valid_up_to());
            return Loaded {
                errors: vec![LoadError {
                    source,
                    line,
                    column,
                    message: "file is not valid UTF-8; save it as UTF-8".to_string(),
                }],
                ..Loaded::default()
            };
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loaded = Loaded::default();
    if json {
        // JSON syntax is JSON's (YAML would take `{"a": 1,}`); the value is then read by the
        // YAML reader, for one set of rules (nulls, duplicate keys, positions) for both.
        match serde_json::from_str::<Value>(text) {
            Ok(_) => load_text(&mut loaded, &source, text, 1),
            Err(e) => loaded.errors.push(LoadError {
                source: source.clone(),
                line: e.line().max(1),
                column: e.column().max(1),
                message: format!("invalid JSON: {}", strip_location(&e.to_string())),
            }),
        }
        return loaded;
    }
    // Documents are read in parallel (in the current thread pool) and kept in file order.
    let parts: Vec<Loaded> = split_documents(text)
        .par_iter()
        .map(|chunk| {
            let mut part = Loaded::default();
            load_text(&mut part, &source, chunk.text, chunk.line);
            part
        })
        .collect();
    for part in parts {
        loaded.extend(part);
    }
    loaded
}

/// Reads one YAML document whose text starts at line `first_line` of `source`.
pub fn load_text(loaded: &mut Loaded, source: &Arc<str>, text: &str, first_line: usize) {
    match yaml::parse_document(text) {
        Ok(parsed) if parsed.value.is_null() => {}
        Ok(parsed) => {
            let line = first_line + parsed.start.line - 1;
            let item_lines: Vec<usize> = parsed
                .item_starts
                .iter()
                .map(|p| first_line + p.line - 1)
                .collect();
            let origin = Origin {
                text: Arc::from(text),
                first_line,
                prefix: Vec::new(),
                dropped_nulls: parsed.dropped_nulls,
            };
            add_object(
                loaded,
                source,
                line,
                parsed.value,
                Arc::new(origin),
                &item_lines,
            );
        }
        Err(e) => loaded.errors.push(LoadError {
            source: source.clone(),
            line: first_line + e.position.line - 1,
            column: e.position.column.max(1),
            message: e.message,
        }),
    }
}

/// serde_json appends " at line X column Y"; the location is reported separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn add_object(
    loaded: &mut Loaded,
    source: &Arc<str>,
    line: usize,
    value: Value,
    origin: Arc<Origin>,
    item_lines: &[usize],
) {
    let error = |message: String| LoadError {
        source: source.clone(),
        line,
        column: 1,
        message,
    };
    let Value::Object(map) = &value else {
        loaded.errors.push(error(format!(
            "{NOT_AN_OBJECT}: the document is a {}; each document must be a mapping with apiVersion and kind",
            json_type(&value)
        )));
        return;
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
    if api_version.is_empty() && kind.is_empty() {
        loaded.errors.push(error(format!(
            "{NOT_AN_OBJECT}: the document has no apiVersion and kind; every Kubernetes object needs both"
        )));
        return;
    }
    let missing: Vec<&str> = [("apiVersion", api_version), ("kind", kind)]
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        loaded.errors.push(error(format!(
            "object has no {}; every Kubernetes object needs apiVersion and kind strings",
            missing.join(" and ")
        )));
        return;
    }
    if kind.ends_with("List") && origin.prefix.is_empty() {
        if let Some(items) = map.get("items").and_then(Value::as_array) {
            for (i, item) in items.iter().enumerate() {
                let item_origin = Arc::new(Origin {
                    text: origin.text.clone(),
                    first_line: origin.first_line,
                    prefix: vec!["items".to_string(), i.to_string()],
                    dropped_nulls: origin.dropped_nulls.clone(),
                });
                let item_line = item_lines.get(i).copied().unwrap_or(line);
                add_object(loaded, source, item_line, item.clone(), item_origin, &[]);
            }
            return;
        }
    }
    loaded.documents.push(Document {
        source: source.clone(),
        line,
        object: value,
        rendered_line: None,
        origin: Some(origin),
    });
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// 1-based line and column of a byte offset.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1);
    (line, offset - line_start + 1)
}

#[cfg(test)]
mod tests;
