//! Loading Kubernetes objects from files, directories and stdin, keeping each object's source position.

mod split;

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
}

impl Document {
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
}

impl Loaded {
    pub fn extend(&mut self, other: Loaded) {
        self.documents.extend(other.documents);
        self.errors.extend(other.errors);
    }
}

fn is_manifest_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Files a path stands for: the file itself, or the manifest files under a directory, sorted.
pub fn expand_path(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    if path.is_dir() {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            match entry {
                Ok(e) if e.file_type().is_file() && is_manifest_file(e.path()) => {
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
        match expand_path(path) {
            Ok(files) => {
                for file in files {
                    loaded.extend(load_file(&file));
                }
            }
            Err(e) => loaded.errors.push(e),
        }
    }
    loaded
}

/// Reads one file.
pub fn load_file(path: &Path) -> Loaded {
    match std::fs::read(path) {
        Ok(bytes) => {
            let json = path.extension().and_then(|e| e.to_str()) == Some("json");
            load_bytes(&path.display().to_string(), &bytes, json)
        }
        Err(e) => Loaded {
            documents: Vec::new(),
            errors: vec![io_error(path, &format!("cannot read file: {e}"))],
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
                documents: Vec::new(),
                errors: vec![LoadError {
                    source,
                    line,
                    column,
                    message: "file is not valid UTF-8; save it as UTF-8".to_string(),
                }],
            };
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut loaded = Loaded::default();
    if json {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => add_object(&mut loaded, &source, first_content_line(text, 1), value),
            Err(e) => loaded.errors.push(LoadError {
                source: source.clone(),
                line: e.line().max(1),
                column: e.column().max(1),
                message: format!("invalid JSON: {}", strip_location(&e.to_string())),
            }),
        }
        return loaded;
    }
    for chunk in split_documents(text) {
        let start = first_content_line(chunk.text, chunk.line);
        match serde_yaml::from_str::<Value>(chunk.text) {
            Ok(Value::Null) => {}
            Ok(value) => add_object(&mut loaded, &source, start, value),
            Err(e) => {
                let (line, column) = match e.location() {
                    Some(loc) => (chunk.line + loc.line().saturating_sub(1), loc.column()),
                    None => (start, 1),
                };
                loaded.errors.push(LoadError {
                    source: source.clone(),
                    line,
                    column: column.max(1),
                    message: format!("invalid YAML: {}", strip_location(&e.to_string())),
                });
            }
        }
    }
    loaded
}

/// serde_yaml appends " at line X column Y"; the location is reported separately.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn add_object(loaded: &mut Loaded, source: &Arc<str>, line: usize, value: Value) {
    let error = |message: String| LoadError {
        source: source.clone(),
        line,
        column: 1,
        message,
    };
    let Value::Object(map) = &value else {
        loaded.errors.push(error(format!(
            "document is a {}, not a Kubernetes object; each document must be a mapping with apiVersion and kind",
            json_type(&value)
        )));
        return;
    };
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
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
    if kind.ends_with("List") {
        if let Some(items) = map.get("items").and_then(Value::as_array) {
            for item in items {
                add_object(loaded, source, line, item.clone());
            }
            return;
        }
    }
    loaded.documents.push(Document {
        source: source.clone(),
        line,
        object: value,
        rendered_line: None,
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

/// The first line in `text` that is neither blank nor a comment, counted from `first`.
fn first_content_line(text: &str, first: usize) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            return first + i;
        }
    }
    first
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
