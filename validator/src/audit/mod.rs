//! `validator audit`: the policies over what a live cluster already holds, as Gatekeeper's
//! audit runs them. Every resource the constraints can match is listed (paged, several at
//! once), the objects are evaluated on the `check` path with the request Gatekeeper's audit
//! builds (no operation, no `oldObject`), and the violations are reported per constraint with
//! totals. Optionally a second policy set is audited too, for the impact of a policy change.

pub mod command;
pub mod impact;
pub mod kinds;
pub mod list;
pub mod metrics;
pub mod render;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check;
use crate::glob::glob_match;
use crate::manifest::{Document, Loaded};
use crate::report::{Code, Finding, Severity};
use crate::review::RequestInfo;
use crate::webhook::sync::ClusterConfig;

use kinds::{Served, Wanted};
use list::{ListOptions, Listed, Problem};

/// The label that exempts a namespace from Gatekeeper; its objects are not audited.
pub const IGNORE_LABEL: &str = "admission.gatekeeper.sh/ignore";

/// How an audit runs.
#[derive(Clone)]
pub struct Options {
    pub cluster: ClusterConfig,
    pub list: ListOptions,
    /// Violations shown per constraint; every violation is counted.
    pub violations_limit: usize,
    /// A progress line on stderr while listing, when it is a terminal.
    pub progress: bool,
    /// Kinds never listed: `Kind` or `apiVersion/Kind`.
    pub skip_kinds: Vec<String>,
}

/// An audit that could not read the cluster at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    List(#[from] list::ListError),
    #[error("cannot start the cluster client: {0}")]
    Runtime(#[source] std::io::Error),
}

/// How one resource was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KindStatus {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    /// Objects read (before namespace filters).
    pub objects: usize,
    /// `listed`, `forbidden`, `interrupted`, `failed` or `gone`.
    pub status: &'static str,
}

/// What an audit found.
pub struct Audit {
    /// The check over the listed objects with the policies.
    pub outcome: check::Outcome,
    /// The check with the `--compare-to` policies, when given.
    pub baseline: Option<check::Outcome>,
    pub kinds: Vec<KindStatus>,
    /// Every constraint of the policies: (template kind, name, enforcement action).
    pub constraints: Vec<(String, String, String)>,
    pub duration: Duration,
}

/// The request Gatekeeper's audit reviews objects with: no operation, user or old object.
pub fn request() -> RequestInfo {
    RequestInfo {
        operation: String::new(),
        ..RequestInfo::default()
    }
}

/// Lists the cluster and audits it with `policies` (and `baseline`, when given).
pub fn run(
    policies: &Loaded,
    baseline: Option<&Loaded>,
    check_options: &check::Options,
    options: &Options,
) -> Result<Audit, AuditError> {
    let started = Instant::now();
    let mut wanted = Wanted::of(&policies.documents);
    if let Some(b) = baseline {
        wanted.extend(Wanted::of(&b.documents));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AuditError::Runtime)?;
    let (listed, unserved) = runtime.block_on(read_cluster(&wanted, options))?;
    drop(runtime);

    let mut findings = Vec::new();
    for kind in unserved {
        findings.push(note(
            "cluster:",
            format!("the cluster serves no resource of kind {kind}, which the policies name; nothing of it was audited"),
        ));
    }
    let kinds = listed.iter().map(kind_status).collect();
    let (documents, more) = documents(listed, &check_options.exclude_namespaces);
    findings.extend(more);

    let audit_policies = |set: &Loaded, documents: Vec<Document>| {
        let mut input = Loaded {
            documents,
            ..Loaded::default()
        };
        input.errors.extend(set.errors.iter().cloned());
        let mut outcome = check::run_with_request(input, &set.documents, check_options, &request());
        outcome.findings.extend(findings.iter().cloned());
        outcome.findings.sort();
        outcome
    };
    let baseline = baseline.map(|b| audit_policies(b, documents.clone()));
    let outcome = audit_policies(policies, documents);
    let (set, _) = crate::policy::Set::from_documents(policies.documents.iter());
    let constraints = set
        .constraints
        .iter()
        .map(|c| (c.kind.clone(), c.name.clone(), c.action.to_string()))
        .collect();
    Ok(Audit {
        outcome,
        baseline,
        kinds,
        constraints,
        duration: started.elapsed(),
    })
}

async fn read_cluster(
    wanted: &Wanted,
    options: &Options,
) -> Result<(Vec<Listed>, Vec<String>), AuditError> {
    let client = crate::webhook::sync::client(&options.cluster)
        .await
        .map_err(list::ListError::Connect)?;
    let served = list::discover(&client, &cluster_url(&options.cluster)).await?;
    let mut selected = kinds::select(wanted, &served);
    selected.retain(|s| {
        !options
            .skip_kinds
            .iter()
            .any(|k| *k == s.kind || *k == s.to_string())
    });
    let unserved = wanted.unserved(&served);
    let bar = progress_bar(options.progress, selected.len());
    let report = |served: &Served, n: usize| {
        if let Some(bar) = &bar {
            bar.inc(n as u64);
            bar.set_message(served.to_string());
        }
    };
    let listed = list::list_all(&client, &selected, &options.list, &report).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok((listed, unserved))
}

/// Where the client connects, for messages: the kubeconfig's server when it can be read.
fn cluster_url(cluster: &ClusterConfig) -> String {
    let kubeconfig = match &cluster.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    let Some(kubeconfig) = kubeconfig else {
        return "in-cluster".into();
    };
    let context_name = cluster
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == context_name.as_ref())
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    kubeconfig
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .unwrap_or_else(|| "the configured cluster".into())
}

fn progress_bar(enabled: bool, kinds: usize) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} listing {kinds} kinds: {{pos}} objects ({{msg}}) {{elapsed}}"
    )) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(bar)
}

fn kind_status(listed: &Listed) -> KindStatus {
    KindStatus {
        api_version: listed.served.api_version(),
        kind: listed.served.kind.clone(),
        objects: listed.objects.len(),
        status: match &listed.problem {
            None => "listed",
            Some(Problem::Forbidden(_)) => "forbidden",
            Some(Problem::Interrupted { .. }) => "interrupted",
            Some(Problem::Failed(_)) => "failed",
            Some(Problem::Gone) => "gone",
        },
    }
}

fn note(file: &str, message: String) -> Finding {
    Finding::new(Severity::Info, Code::Note, message).at(file, 0, 0)
}

/// The finding for a resource that was not completely read, if any.
pub fn problem_finding(listed: &Listed) -> Option<Finding> {
    let kind = listed.served.to_string();
    let message = match listed.problem.as_ref()? {
        Problem::Forbidden(reason) => format!(
            "cannot list {kind}: forbidden ({reason}); none of its objects were audited (grant the audit's identity `list` on {})",
            if listed.served.group.is_empty() { listed.served.plural.clone() } else { format!("{}.{}", listed.served.plural, listed.served.group) }
        ),
        Problem::Interrupted { listed: n, remaining, error } => format!(
            "the list of {kind} was interrupted after {n} objects: {error}; {} were not audited",
            match remaining {
                Some(r) => format!("the {r} objects the server still announced"),
                None => "the objects after them".to_string(),
            }
        ),
        Problem::Failed(error) => format!("cannot list {kind}: {error}; none of its objects were audited"),
        Problem::Gone => {
            return Some(note(
                &format!("cluster:{kind}"),
                format!("{kind} is no longer served (removed after discovery); nothing of it was audited"),
            ))
        }
    };
    Some(
        Finding::new(Severity::Error, Code::InvalidInput, message).at(
            format!("cluster:{kind}"),
            0,
            0,
        ),
    )
}

/// The documents to audit: every listed object outside excluded and ignored namespaces,
/// named `cluster:<apiVersion>/<kind>/<namespace>/<name>`; and the findings about what was
/// not read or was left out.
pub fn documents(listed: Vec<Listed>, exclude: &[String]) -> (Vec<Document>, Vec<Finding>) {
    let mut findings: Vec<Finding> = listed.iter().filter_map(problem_finding).collect();
    let ignored: Vec<String> = listed
        .iter()
        .filter(|l| l.served.is_namespace())
        .flat_map(|l| &l.objects)
        .filter(|ns| {
            ns.pointer("/metadata/labels")
                .and_then(Value::as_object)
                .is_some_and(|labels| labels.contains_key(IGNORE_LABEL))
        })
        .map(|ns| crate::manifest::metadata_str(ns, "name").to_string())
        .collect();
    let mut skipped: std::collections::BTreeMap<String, usize> = Default::default();
    let mut documents = Vec::new();
    for l in listed {
        for object in l.objects {
            let name = crate::manifest::metadata_str(&object, "name").to_string();
            let namespace = if l.served.is_namespace() {
                name.clone()
            } else {
                crate::manifest::metadata_str(&object, "namespace").to_string()
            };
            if !namespace.is_empty() {
                if ignored.contains(&namespace) {
                    *skipped.entry(namespace).or_default() += 1;
                    continue;
                }
                if exclude.iter().any(|p| glob_match(p, &namespace)) {
                    continue;
                }
            }
            let source = if l.served.namespaced {
                format!("cluster:{}/{namespace}/{name}", l.served)
            } else {
                format!("cluster:{}/{name}", l.served)
            };
            documents.push(Document::new(Arc::from(source), 0, object));
        }
    }
    for (namespace, n) in skipped {
        findings.push(note(
            &format!("cluster:v1/Namespace/{namespace}"),
            format!("namespace {namespace} carries the label {IGNORE_LABEL}: its {n} objects (the namespace included) were not audited"),
        ));
    }
    (documents, findings)
}

#[cfg(test)]
mod tests;
