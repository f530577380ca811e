//! Helm charts: rendering with the `helm` command and mapping rendered objects to their templates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use thiserror::Error;

use std::collections::HashMap;

use crate::manifest::{load_bytes, load_text, split_documents, Loaded};

/// How to render a chart.
#[derive(Debug, Clone, Default)]
pub struct Render {
    pub chart: PathBuf,
    pub values: Vec<PathBuf>,
    pub set: Vec<String>,
    pub release: String,
    pub namespace: Option<String>,
    /// The helm binary; `helm` on PATH when `None`.
    pub helm: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum ChartError {
    #[error("chart {chart}: cannot run `{helm}`: {source}; install Helm or pass --helm PATH")]
    Spawn {
        chart: String,
        helm: String,
        #[source]
        source: std::io::Error,
    },
    #[error("chart {chart}: helm template failed: {message}")]
    Render { chart: String, message: String },
}

impl Render {
    /// Runs `helm template` and loads its output; objects point at their template files.
    pub fn run(&self) -> Result<Loaded, ChartError> {
        let helm = self.helm.clone().unwrap_or_else(|| PathBuf::from("helm"));
        let chart = self.chart.display().to_string();
        let mut cmd = Command::new(&helm);
        cmd.arg("template").arg(&self.release).arg(&self.chart);
        for v in &self.values {
            cmd.arg("--values").arg(v);
        }
        for s in &self.set {
            cmd.arg("--set").arg(s);
        }
        if let Some(ns) = &self.namespace {
            cmd.arg("--namespace").arg(ns);
        }
        let out = cmd.output().map_err(|source| ChartError::Spawn {
            chart: chart.clone(),
            helm: helm.display().to_string(),
            source,
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(ChartError::Render {
                chart,
                message: stderr.trim().to_string(),
            });
        }
        Ok(load_rendered(&self.chart, &out.stdout))
    }
}

/// The path with `a/..` pairs removed, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

/// Directories of a chart's `file://` dependencies, by dependency name (from its Chart.yaml).
fn local_dependencies(chart_dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(text) = std::fs::read_to_string(chart_dir.join("Chart.yaml")) else {
        return Vec::new();
    };
    let Ok(chart) = serde_yaml::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    chart
        .get("dependencies")
        .and_then(serde_json::Value::as_array)
        .map(|deps| {
            deps.iter()
                .filter_map(|d| {
                    let name = d.get("alias").or_else(|| d.get("name"))?.as_str()?;
                    let repo = d.get("repository")?.as_str()?.strip_prefix("file://")?;
                    Some((name.to_string(), lexical(&chart_dir.join(repo))))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The template file a `# Source: <chart>/templates/<file>` comment names, below the chart
/// directory. Subcharts (`<chart>/charts/<dep>/templates/...`) that come from a `file://`
/// dependency resolve to that dependency's own directory.
fn source_path(chart_dir: &Path, source: &str) -> PathBuf {
    // The first component is the chart's name.
    let rest = source.split_once('/').map_or(source, |(_, r)| r);
    if let Some((dep, inner)) = rest.strip_prefix("charts/").and_then(|r| r.split_once('/')) {
        if let Some((_, dir)) = local_dependencies(chart_dir)
            .into_iter()
            .find(|(name, _)| name == dep)
        {
            return source_path(&dir, &format!("{dep}/{inner}"));
        }
    }
    chart_dir.join(rest)
}

/// Loads `helm template` output. Each object's source is its template file (from the
/// `# Source:` comment), its line the line of its document in that template, and its rendered
/// line is kept beside it.
pub fn load_rendered(chart_dir: &Path, output: &[u8]) -> Loaded {
    let label = format!("{} (rendered)", chart_dir.display());
    let Ok(text) = std::str::from_utf8(output) else {
        return load_bytes(&label, output, false);
    };
    let mut loaded = Loaded::default();
    let mut templates = Templates::default();
    for chunk in split_documents(text) {
        let source = chunk
            .text
            .lines()
            .find_map(|l| l.trim().strip_prefix("# Source:").map(str::trim))
            .map(|s| source_path(chart_dir, s));
        let name: Arc<str> = Arc::from(
            source
                .as_ref()
                .map_or_else(|| label.clone(), |p| p.display().to_string()),
        );
        let mut part = Loaded::default();
        load_text(&mut part, &name, chunk.text, chunk.line);
        for d in &mut part.documents {
            d.rendered_line = Some(d.line);
            if let Some(path) = &source {
                d.line = templates.line_of_next(path, d.kind());
            }
        }
        loaded.extend(part);
    }
    loaded
}

/// The line where a template document's object starts, and its kind when written literally.
type TemplateDocument = (usize, Option<String>);

/// The documents of template files, to find the line each rendered object comes from.
#[derive(Default)]
struct Templates {
    /// Per template file: its documents, and how many rendered objects came from it so far.
    files: HashMap<PathBuf, (Vec<TemplateDocument>, usize)>,
}

impl Templates {
    /// The template line of the next object rendered from `path`: the n-th object document
    /// of the template when the n-th rendered object has its kind (or the kind is templated),
    /// else the first document of that kind, else line 1.
    fn line_of_next(&mut self, path: &Path, kind: &str) -> usize {
        let (docs, seen) = self
            .files
            .entry(path.to_path_buf())
            .or_insert_with(|| (template_documents(path), 0));
        let n = *seen;
        *seen += 1;
        if let Some((line, k)) = docs.get(n) {
            if k.as_deref().is_none_or(|k| k == kind) {
                return *line;
            }
        }
        docs.iter()
            .find(|(_, k)| k.as_deref() == Some(kind))
            .map_or(1, |(line, _)| *line)
    }
}

/// The object documents of a template file: the line of each one's first `apiVersion:` or
/// `kind:` line, and its kind when written literally.
fn template_documents(path: &Path) -> Vec<TemplateDocument> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    split_documents(&text)
        .iter()
        .filter_map(|chunk| {
            let mut start = None;
            let mut kind = None;
            for (i, line) in chunk.text.lines().enumerate() {
                if line.starts_with("apiVersion:") || line.starts_with("kind:") {
                    start.get_or_insert(chunk.line + i);
                }
                if let Some(k) = line.strip_prefix("kind:") {
                    let k = k.trim();
                    if kind.is_none() {
                        kind = Some((!k.contains("{{")).then(|| k.to_string()));
                    }
                }
            }
            start.map(|s| (s, kind.flatten()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_point_at_their_templates() {
        let out = b"---\n# Source: api/templates/service.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n---\n# Source: api/charts/redis/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: redis\n";
        let l = load_rendered(Path::new("charts/api"), out);
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        assert_eq!(&*l.documents[0].source, "charts/api/templates/service.yaml");
        assert_eq!(l.documents[0].rendered_line, Some(3));
        // The template file does not exist here: its line is unknown.
        assert_eq!(l.documents[0].line, 1);
        assert_eq!(
            &*l.documents[1].source,
            "charts/api/charts/redis/templates/deploy.yaml"
        );
        assert_eq!(l.documents[1].rendered_line, Some(9));
    }

    #[test]
    fn umbrella_subcharts_point_at_their_own_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let umbrella = dir.path().join("platform");
        std::fs::create_dir_all(&umbrella).expect("mkdir");
        std::fs::write(
            umbrella.join("Chart.yaml"),
            "apiVersion: v2\nname: platform\nversion: 0.1.0\ndependencies:\n- name: api\n  version: 0.1.0\n  repository: file://../api\n",
        )
        .expect("write");
        let p = source_path(&umbrella, "platform/charts/api/templates/deployment.yaml");
        assert_eq!(p, dir.path().join("api/templates/deployment.yaml"));
        assert_eq!(
            lexical(Path::new("charts/platform/../api/./x")),
            PathBuf::from("charts/api/x")
        );
        let p = source_path(&umbrella, "platform/charts/other/templates/x.yaml");
        assert_eq!(p, umbrella.join("charts/other/templates/x.yaml"));
        assert_eq!(
            source_path(&umbrella, "platform/templates/np.yaml"),
            umbrella.join("templates/np.yaml")
        );
    }

    #[test]
    fn render_errors_name_the_chart() {
        let r = Render {
            chart: PathBuf::from("charts/none"),
            release: "r".into(),
            helm: Some(PathBuf::from("/nonexistent/helm")),
            ..Render::default()
        };
        let e = r.run().unwrap_err().to_string();
        assert!(
            e.contains("chart charts/none: cannot run `/nonexistent/helm`"),
            "{e}"
        );
        let r = Render {
            chart: PathBuf::from("charts/none"),
            release: "r".into(),
            helm: Some(PathBuf::from("false")),
            ..Render::default()
        };
        assert!(r
            .run()
            .unwrap_err()
            .to_string()
            .contains("helm template failed"));
    }
}
