//! The commands: each turns its arguments into an exit code, a result for `--output json`
//! and text for humans.

pub mod apply;
mod archive;
pub mod backup;
pub mod dr_drill;
mod finish;
pub mod history;
pub mod plan;
pub mod promote;
pub mod report;
pub mod restore;
pub mod rollback;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::Value;
use validator::manifest::Loaded;
use validator::report::{Finding, Format, Summary};

use crate::apply::Applied;
use crate::args::ClusterArgs;
use crate::cluster::Cluster;
use crate::exit::ExitStatus;
use crate::lock;
use crate::object::ObjectId;
use crate::outcome::{ObjectReport, Report};
use crate::plan::Desired;
use crate::progress::Progress;
use crate::release::{self, History, Record};
use crate::Error;

/// What a command did: how it ended, its result for `--output json` and text for people.
#[derive(Debug)]
pub struct Done {
    pub status: ExitStatus,
    /// The report of a release command: what `--deploy-log`, `--metrics-file` and
    /// `--pushgateway` record and, unless `json` is given, the result for `--output json`.
    pub report: Option<Report>,
    /// The result for `--output json` of a command without a report.
    pub json: Option<Value>,
    /// The result for people; also for `--output json` when there is neither `json` nor a
    /// report.
    pub text: String,
}

impl Done {
    /// A release command's result: its report, and text for people.
    pub fn report(status: ExitStatus, report: Report, text: String) -> Self {
        Done {
            status,
            report: Some(report),
            json: None,
            text,
        }
    }

    /// A result for `--output json` (without a report) and text for people.
    pub fn doc(status: ExitStatus, json: Value, text: String) -> Self {
        Done {
            status,
            report: None,
            json: Some(json),
            text,
        }
    }

    /// A result that is only text, whatever the output format.
    pub fn text(status: ExitStatus, text: String) -> Self {
        Done {
            status,
            report: None,
            json: None,
            text,
        }
    }

    /// What is printed on stdout: the result for `--output json` when `json`, else the text.
    pub fn output(self, json: bool) -> String {
        match (json, self.json, self.report) {
            (true, Some(doc), _) => json_text(&doc),
            (true, None, Some(report)) => report.to_json(),
            _ => self.text,
        }
    }
}

/// A JSON document as printed: pretty, with a final newline.
pub fn json_text(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs `work` holding the lock of release `namespace/name` (taking over a lock whose holder
/// stopped renewing it, and saying so), then releases the lock whatever `work` returned.
pub async fn with_release_lock<T>(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    lease: std::time::Duration,
    progress: &Progress,
    work: impl AsyncFnOnce(&lock::Lock) -> Result<T, Error>,
) -> Result<T, Error> {
    let held = lock::acquire(
        cluster.client.clone(),
        namespace,
        name,
        &lock::identity(),
        lease,
    )
    .await?;
    if let Some(previous) = &held.took_over {
        progress.note(format!(
            "took over the lock of release {namespace}/{name} from {previous}, which stopped renewing it"
        ));
    }
    let result = work(&held).await;
    held.release().await;
    result
}

/// Manifests that cannot be read: their findings in `report` and as text, or `None` when every
/// input was read.
pub fn unreadable(
    loaded: &Loaded,
    report: &mut Report,
    message: &str,
    colour: bool,
) -> Option<String> {
    if loaded.errors.is_empty() {
        return None;
    }
    let findings: Vec<_> = loaded
        .errors
        .iter()
        .map(validator::check::load_error_finding)
        .collect();
    let summary = Summary::of(&findings, 0);
    let text = human_findings(&findings, &summary, colour);
    report.message = message.to_string();
    report.findings = findings;
    Some(text)
}

/// The validation gate on a release's objects: the attestation when one is given (checked
/// against the manifests as read), else a check of the objects to apply. The findings go into
/// `report`; the text is theirs (in colour when `colour`), plus the refusal when the gate
/// refused.
pub async fn pass_gate(
    policy: &crate::gate::PolicyArgs,
    policies: &Loaded,
    manifests: &[validator::manifest::Document],
    objects: Vec<validator::manifest::Document>,
    report: &mut Report,
    colour: bool,
) -> Result<(crate::gate::Decision, String), Error> {
    let decision = match &policy.attestation {
        Some(path) => {
            crate::gate::verify(path, manifests, policies, policy.flags.run.fail_on_warn)?
        }
        None => crate::gate::check_blocking(objects, policies, policy).await,
    };
    let mut text = String::new();
    if !decision.findings.is_empty() {
        text.push_str(&human_findings(
            &decision.findings,
            &decision.summary,
            colour,
        ));
    }
    report.findings = decision.findings.clone();
    if !decision.passed() {
        for r in &decision.refusal {
            text.push_str(&format!("attestation refused: {r}\n"));
        }
        report.errors = decision.refusal.clone();
    }
    Ok((decision, text))
}

/// Whether a namespace exists (`api` is an API of Namespaces, typed or dynamic).
pub async fn namespace_exists<K>(api: &kube::Api<K>, namespace: &str) -> Result<bool, Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(namespace)
        .await
        .map(|n| n.is_some())
        .map_err(|e| {
            Error::Api(format!(
                "cannot read namespace {namespace}: {}",
                crate::cluster::describe(&e)
            ))
        })
}

/// Creates a namespace from its object, server-side applied by `manager`.
pub async fn create_namespace<K>(
    api: &kube::Api<K>,
    namespace: &str,
    object: &serde_json::Value,
    manager: &str,
) -> Result<(), Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        namespace,
        &kube::api::PatchParams::apply(manager),
        &kube::api::Patch::Apply(object),
    )
    .await
    .map(|_| ())
    .map_err(|e| {
        Error::Api(format!(
            "cannot create namespace {namespace}: {}",
            crate::cluster::describe(&e)
        ))
    })
}

/// What [`ensure_namespace`] does when the namespace is missing and the objects do not define
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// Refuse (a usage error): the namespace must be created first or be among the objects.
    Refuse,
    /// Create it empty.
    CreateEmpty,
}

/// What [`ensure_namespace`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The namespace existed already.
    Existed,
    /// It was created: from its object among the desired ones (its id), or empty (None).
    Created(Option<ObjectId>),
}

/// Creates `namespace` when it does not exist, server-side applied by the executor: from its
/// object among `desired` when they define it, else as `undefined` says.
pub async fn ensure_namespace(
    cluster: &Cluster,
    namespace: &str,
    desired: &[Desired],
    undefined: Undefined,
) -> Result<Ensured, Error> {
    let api: kube::Api<Namespace> = kube::Api::all(cluster.client.clone());
    if namespace_exists(&api, namespace).await? {
        return Ok(Ensured::Existed);
    }
    let defined = desired.iter().find(|d| {
        d.id.kind == "Namespace" && d.id.group_version().0.is_empty() && d.id.name == namespace
    });
    let object = match (defined, undefined) {
        (Some(d), _) => d.object().clone(),
        (None, Undefined::CreateEmpty) => serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        }),
        (None, Undefined::Refuse) => {
            return Err(Error::Usage(format!(
                "namespace {namespace} does not exist; create it or include it in the manifests"
            )))
        }
    };
    create_namespace(&api, namespace, &object, crate::apply::FIELD_MANAGER).await?;
    Ok(Ensured::Created(defined.map(|d| d.id.clone())))
}

/// Findings as `validator check` prints them for people, in colour when `colour` (on a
/// terminal without NO_COLOR, as the command line decides).
pub fn human_findings(findings: &[Finding], summary: &Summary, colour: bool) -> String {
    validator::report::render(Format::Human, findings, summary, colour)
}

/// Connects to the cluster of `--kubeconfig` and `--context`; returns it with the namespace to
/// work in: `namespace`, else the context's.
pub async fn connect(
    args: &ClusterArgs,
    namespace: Option<&str>,
) -> Result<(Cluster, String), Error> {
    let cluster =
        Cluster::from_kubeconfig(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let namespace = namespace.map_or_else(|| cluster.default_namespace.clone(), str::to_string);
    Ok((cluster, namespace))
}

pub fn object_reports(applied: &[Applied]) -> Vec<ObjectReport> {
    applied
        .iter()
        .map(|a| ObjectReport {
            id: a.id.clone(),
            action: a.action,
            status: None,
            diff: Vec::new(),
        })
        .collect()
}

/// Deletes revisions beyond `max`; failures are reported, not fatal.
pub async fn trim_history(history: &History, max: usize, note: impl Fn(String)) {
    let records = match history.list().await {
        Ok(r) => r,
        Err(e) => return note(e.to_string()),
    };
    for revision in release::beyond_history_max(&records, max) {
        if let Err(e) = history.delete(revision).await {
            note(e.to_string());
        }
    }
}

/// Writes a record; a failure is reported, not fatal (the cluster state is what matters).
pub async fn write_record(history: &History, record: &Record, note: impl Fn(String)) {
    if let Err(e) = history.write(record).await {
        note(e.to_string());
    }
}

pub fn now() -> String {
    crate::clock::now_rfc3339()
}
