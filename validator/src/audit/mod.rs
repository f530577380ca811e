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
pub mod tally;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check;
use crate::glob::glob_match;
use crate::manifest::{Document, Loaded};
use crate::policy::EnforcementAction;
use crate::report::{Code, Finding, Severity};
use crate::review::RequestInfo;
use crate::webhook::sync::ClusterConfig;

use impact::Impact;
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
    /// Warn violations fail an object too (for the impact of `--compare-to`).
    pub fail_on_warn: bool,
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
    /// The violations and other findings with the policies.
    pub tally: tally::Tally,
    /// With `--compare-to`: which objects newly fail and newly pass with the policies.
    pub impact: Option<Impact>,
    pub kinds: Vec<KindStatus>,
    /// Every constraint of the policies: (template kind, name, enforcement action).
    pub constraints: Vec<(String, String, EnforcementAction)>,
    pub duration: Duration,
}

/// The request Gatekeeper's audit reviews objects with: no operation, user or old object.
pub fn request() -> RequestInfo {
    RequestInfo {
        operation: String::new(),
        ..RequestInfo::default()
    }
}

/// Pages of streamed kinds waiting to be evaluated; with the page being evaluated and the
/// pages being read, this bounds the objects in memory besides those held for the inventory.
const QUEUED_PAGES: usize = 4;

/// Lists the cluster and audits it with `policies` (and `baseline`, when given).
///
/// The objects every evaluation may look at (Namespaces, the kinds the referential templates
/// read, ValidatingAdmissionPolicy params) are listed first and held; every other kind is
/// evaluated page by page as it is read, so memory is bounded by what is held.
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
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(check_options.jobs.unwrap_or(0))
        .build()
        .map_err(|e| AuditError::Runtime(std::io::Error::other(e)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(AuditError::Runtime)?;
    let mut tally = tally::Tally::new(options.violations_limit);
    tally.add(policies.errors.iter().map(check::load_error_finding));

    let client = runtime
        .block_on(crate::webhook::sync::client(&options.cluster))
        .map_err(list::ListError::Connect)?;
    let served = runtime.block_on(list::discover(&client, &cluster_url(&options.cluster)))?;
    let mut selected = kinds::select(&wanted, &served);
    selected.retain(|s| {
        !options
            .skip_kinds
            .iter()
            .any(|k| *k == s.kind || *k == s.to_string())
    });
    for kind in wanted.unserved(&served) {
        tally.add([note(
            "cluster:",
            format!("the cluster serves no resource of kind {kind}, which the policies name; nothing of it was audited"),
        )]);
    }
    if !wanted.unannotated.is_empty() {
        tally.add([note(
            "cluster:",
            format!(
                "the templates {} read data.inventory without naming the kinds they read (metadata.gatekeeper.sh/requires-sync-data): every listed object was held for their inventory",
                wanted.unannotated.join(", ")
            ),
        )]);
    }
    let order = selected.clone();
    let (held, streamed): (Vec<Served>, Vec<Served>) =
        selected.into_iter().partition(|s| wanted.holds(s));
    let bar = progress_bar(options.progress, held.len() + streamed.len());

    // The held kinds, read whole.
    let held = runtime.block_on(list::list_all(
        &client,
        &held,
        &options.list,
        list::Sink::Keep,
        &|served: &Served, n: usize| tick(&bar, served, n),
    ));
    let mut kinds: Vec<KindStatus> = held.iter().map(kind_status).collect();
    tally.add(held.iter().filter_map(problem_finding));
    let mut filter = Filter::new(&held, &check_options.exclude_namespaces);
    let mut context = Vec::new();
    let mut inventory_objects = Vec::new();
    for l in held {
        let in_inventory = wanted.in_inventory(&l.served);
        for object in l.objects {
            if let Some(doc) = filter.document(&l.served, object) {
                if in_inventory {
                    inventory_objects.push(context.len());
                }
                context.push(doc);
            }
        }
    }
    let inventory = crate::review::inventory(inventory_objects.iter().map(|&i| &context[i].object));
    drop(inventory_objects);

    let check_options = check::Options {
        progress: false,
        ..check_options.clone()
    };
    let request = request();
    let (current, previous) = pool.install(|| {
        let prepare = |set: &'_ Loaded| {
            check::Prepared::new(
                set.documents.iter(),
                &context,
                &inventory,
                &check_options,
                &request,
            )
        };
        (prepare(policies), baseline.map(prepare))
    });
    tally.add(current.findings.iter().cloned());
    let mut impact = previous.as_ref().map(|_| Impact::default());
    let mut evaluate = |tally: &mut tally::Tally, documents: &[Document]| {
        let today = crate::waiver::today();
        let run = |prepared: &check::Prepared<'_>| {
            let (mut findings, evaluations) = pool.install(|| prepared.evaluate(documents));
            findings.sort();
            findings.dedup();
            if !check_options.waivers.is_empty() {
                findings = crate::waiver::waive(findings, &check_options.waivers, today);
            }
            (findings, evaluations)
        };
        let (findings, evaluations) = run(&current);
        if let (Some(previous), Some(impact)) = (&previous, &mut impact) {
            let (before, _) = run(previous);
            impact.extend(impact::compare(&findings, &before, options.fail_on_warn));
        }
        tally.objects += documents.len();
        tally.evaluations += evaluations;
        tally.add(findings);
    };
    evaluate(&mut tally, &context);

    // The other kinds, page by page as they are read.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<list::Page>(QUEUED_PAGES);
    let streamed = std::thread::scope(|scope| {
        let (runtime, client, streamed, bar) = (&runtime, &client, &streamed, &bar);
        let lister = scope.spawn(move || {
            runtime.block_on(async move {
                // The channel closes when the lists end, which ends the loop below.
                let tx = tx;
                list::list_all(
                    client,
                    streamed,
                    &options.list,
                    list::Sink::Send(&tx),
                    &|served: &Served, n: usize| tick(bar, served, n),
                )
                .await
            })
        });
        while let Some((served, objects)) = rx.blocking_recv() {
            let documents: Vec<Document> = objects
                .into_iter()
                .filter_map(|object| filter.document(&served, object))
                .collect();
            evaluate(&mut tally, &documents);
        }
        lister.join()
    })
    .map_err(|_| AuditError::Runtime(std::io::Error::other("the list thread failed")))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    kinds.extend(streamed.iter().map(kind_status));
    kinds.sort_by_key(|k| {
        order
            .iter()
            .position(|s| s.api_version() == k.api_version && s.kind == k.kind)
    });
    tally.add(streamed.iter().filter_map(problem_finding));
    tally.add(filter.notes());
    if !check_options.waivers.is_empty() {
        tally.add(crate::waiver::expired(
            &check_options.waivers,
            crate::waiver::today(),
        ));
    }
    let constraints = current
        .constraints()
        .map(|c| (c.kind.clone(), c.name.clone(), c.action))
        .collect();
    if let Some(impact) = &mut impact {
        impact.sort();
    }
    Ok(Audit {
        tally,
        impact,
        kinds,
        constraints,
        duration: started.elapsed(),
    })
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

fn tick(bar: &Option<indicatif::ProgressBar>, served: &Served, n: usize) {
    if let Some(bar) = bar {
        bar.inc(n as u64);
        bar.set_message(served.to_string());
    }
}

fn kind_status(listed: &Listed) -> KindStatus {
    KindStatus {
        api_version: listed.served.api_version(),
        kind: listed.served.kind.clone(),
        objects: listed.count,
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

/// Which listed objects are audited: none in namespaces labelled with [`IGNORE_LABEL`]
/// (counted, for a note) or excluded by `--exclude-namespace`. Each audited object becomes a
/// document named `cluster:<apiVersion>/<kind>/<namespace>/<name>`.
pub struct Filter<'a> {
    ignored: std::collections::HashSet<String>,
    exclude: &'a [String],
    skipped: std::collections::BTreeMap<String, usize>,
}

impl<'a> Filter<'a> {
    /// A filter with the ignored namespaces among the listed Namespaces of `listed`.
    pub fn new(listed: &[Listed], exclude: &'a [String]) -> Filter<'a> {
        let ignored = listed
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
        Filter {
            ignored,
            exclude,
            skipped: Default::default(),
        }
    }

    /// The document to audit for a listed object of `served`, if it is audited.
    pub fn document(&mut self, served: &Served, object: Value) -> Option<Document> {
        let name = crate::manifest::metadata_str(&object, "name").to_string();
        let namespace = if served.is_namespace() {
            name.clone()
        } else {
            crate::manifest::metadata_str(&object, "namespace").to_string()
        };
        if !namespace.is_empty() {
            if self.ignored.contains(&namespace) {
                *self.skipped.entry(namespace).or_default() += 1;
                return None;
            }
            if self.exclude.iter().any(|p| glob_match(p, &namespace)) {
                return None;
            }
        }
        let source = if served.namespaced {
            format!("cluster:{served}/{namespace}/{name}")
        } else {
            format!("cluster:{served}/{name}")
        };
        Some(Document::new(Arc::from(source), 0, object))
    }

    /// A note per ignored namespace whose objects were left out.
    pub fn notes(&self) -> Vec<Finding> {
        self.skipped
            .iter()
            .map(|(namespace, n)| {
                note(
                    &format!("cluster:v1/Namespace/{namespace}"),
                    format!("namespace {namespace} carries the label {IGNORE_LABEL}: its {n} objects (the namespace included) were not audited"),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
