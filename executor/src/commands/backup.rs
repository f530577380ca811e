//! `executor backup`, `executor restore` and `executor dr-drill`: releases (history and live
//! objects) into an archive, and from an archive back into a cluster through the same gate,
//! order and health checks as `apply`; the drill restores into a scratch namespace, measures
//! the recovery time and removes the namespace again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{json, Value};
use validator::manifest::Document;
use validator::report::Finding;

use super::{human_findings, now, Done};
use crate::apply;
use crate::args::{BackupArgs, DrillArgs, RestoreArgs};
use crate::backup::{self, Archive, Move, ReleaseBackup};
use crate::cluster::Cluster;
use crate::events;
use crate::exit::ExitStatus;
use crate::gate::{self, PolicyArgs};
use crate::health::{Failure, Thresholds};
use crate::lock;
use crate::object::ObjectId;
use crate::outcome::{ObjectReport, Outcome, Report};
use crate::plan;
use crate::progress::Progress;
use crate::release::{self, History, OWNER_LABEL, SECRET_TYPE};
use crate::strategy::{self, rolling, Settings};
use crate::Error;

async fn connect(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> Result<Cluster, Error> {
    Ok(Cluster::connect(kubeconfig, context).await?)
}

/// The releases with a history in `namespace`.
async fn releases_in(cluster: &Cluster, namespace: &str) -> Result<Vec<String>, Error> {
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), namespace);
    let selector = format!("{}={}", OWNER_LABEL.0, OWNER_LABEL.1);
    let secrets = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            Error::Api(format!(
                "cannot list the release Secrets of namespace {namespace}: {}",
                crate::cluster::describe(&e)
            ))
        })?;
    let names: BTreeSet<String> = secrets
        .items
        .iter()
        .filter(|s| s.type_.as_deref() == Some(SECRET_TYPE))
        .filter_map(|s| s.metadata.labels.as_ref()?.get("name").cloned())
        .collect();
    Ok(names.into_iter().collect())
}

/// The live object of `id`, or None when the cluster no longer has it.
async fn live(cluster: &Cluster, id: &ObjectId) -> Result<Option<Value>, Error> {
    let Some(resolved) = cluster.resolve(&id.api_version, &id.kind).await? else {
        return Ok(None);
    };
    let api = cluster.api(&resolved, &id.namespace);
    match api.get_opt(&id.name).await {
        Ok(Some(o)) => {
            let mut v = serde_json::to_value(o).map_err(|e| Error::Api(e.to_string()))?;
            v["apiVersion"] = json!(id.api_version);
            v["kind"] = json!(id.kind);
            Ok(Some(v))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(Error::Api(format!(
            "cannot read {id}: {}",
            crate::cluster::describe(&e)
        ))),
    }
}

/// The uids of the owners an object refers to that still exist.
async fn living_owners(cluster: &Cluster, object: &Value) -> BTreeSet<String> {
    let mut alive = BTreeSet::new();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    for r in object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = ObjectId {
            api_version: r["apiVersion"].as_str().unwrap_or_default().to_string(),
            kind: r["kind"].as_str().unwrap_or_default().to_string(),
            namespace: namespace.to_string(),
            name: r["name"].as_str().unwrap_or_default().to_string(),
        };
        if let Ok(Some(owner)) = live(cluster, &id).await {
            if owner["metadata"]["uid"] == r["uid"] {
                if let Some(uid) = r["uid"].as_str() {
                    alive.insert(uid.to_string());
                }
            }
        }
    }
    alive
}

/// `executor backup`.
pub async fn backup(args: &BackupArgs, progress: &Progress) -> Result<Done, Error> {
    let cluster = connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await?;
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let names = if args.releases.is_empty() {
        let found = releases_in(&cluster, &namespace).await?;
        if found.is_empty() {
            return Err(Error::Usage(format!(
                "namespace {namespace} has no releases (no release Secrets labelled {}={}); nothing to back up",
                OWNER_LABEL.0, OWNER_LABEL.1
            )));
        }
        found
    } else {
        for r in &args.releases {
            crate::parse::check_release_name(r)?;
        }
        let mut names = args.releases.clone();
        names.dedup();
        names
    };
    let mut releases = Vec::new();
    let mut summaries = Vec::new();
    let mut text = String::new();
    for name in &names {
        let records = History::new(cluster.client.clone(), &namespace, name)
            .list()
            .await?;
        if records.is_empty() {
            return Err(Error::Usage(format!(
                "release {namespace}/{name} has no history; nothing to back up (see `executor history -r {name} -n {namespace}`)"
            )));
        }
        let mut objects = Vec::new();
        let mut missing = Vec::new();
        if let Some(current) = release::current(&records) {
            for recorded in &current.objects {
                let id = ObjectId::of(recorded);
                match live(&cluster, &id).await? {
                    Some(object) => {
                        let alive = living_owners(&cluster, &object).await;
                        objects.push(backup::strip(&object, |r| {
                            r["uid"].as_str().is_some_and(|u| alive.contains(u))
                        }));
                    }
                    None => {
                        progress.note(format!(
                            "warning: {id} of release {namespace}/{name} is not in the cluster; the archive keeps it as revision {} recorded it",
                            current.revision
                        ));
                        objects.push(backup::strip(recorded, |_| false));
                        missing.push(id);
                    }
                }
            }
        } else {
            progress.note(format!(
                "warning: release {namespace}/{name} has no deployed revision; only its history is backed up"
            ));
        }
        let revisions: Vec<u32> = records.iter().map(|r| r.revision).collect();
        text.push_str(&format!(
            "  {name}: {} revision(s) ({}), {} object(s){}\n",
            revisions.len(),
            revisions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            objects.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(", {} missing from the cluster", missing.len())
            }
        ));
        summaries.push(json!({
            "name": name,
            "revisions": revisions,
            "objects": objects.len(),
            "missing": missing,
        }));
        releases.push(ReleaseBackup {
            name: name.clone(),
            records,
            objects,
        });
    }
    let archive = Archive {
        format: backup::FORMAT.to_string(),
        created: now(),
        namespace: namespace.clone(),
        releases,
    };
    backup::write(&args.output_file, &archive).map_err(|e| Error::Usage(e.to_string()))?;
    let file = args.output_file.display().to_string();
    let message = format!(
        "backed up {} release(s) of namespace {namespace} to {file}",
        names.len()
    );
    let doc = json!({
        "version": 1,
        "command": "backup",
        "namespace": namespace,
        "file": file,
        "format": backup::FORMAT,
        "created": archive.created,
        "releases": summaries,
        "message": message,
    });
    let text = format!(
        "{message}:\n{text}the archive holds the data of Secrets: keep it as private as the cluster's Secrets\n"
    );
    Ok(Done::doc(ExitStatus::Success, doc, text))
}

/// What a restore needs besides the archive.
pub struct RestoreSettings<'a> {
    /// The archive's path, for messages.
    pub file: String,
    /// Where to restore (None: the archive's namespace).
    pub namespace: Option<String>,
    pub force: bool,
    pub policy: &'a PolicyArgs,
    pub rollout: Settings,
    pub lease_duration: Duration,
    /// Findings in colour.
    pub colour: bool,
}

/// How a restore went.
#[derive(Debug, Default)]
pub struct Restored {
    pub status: ExitStatus,
    /// `restored`, `blocked` (the gate), `failed` (apply or rollout).
    pub outcome: &'static str,
    pub message: String,
    /// Findings as the validator prints them.
    pub findings_text: String,
    pub findings: Vec<Finding>,
    pub namespace: String,
    pub objects: Vec<ObjectReport>,
    pub workloads: Vec<ObjectId>,
    pub failure: Option<(ObjectId, Failure)>,
    /// When every workload was complete.
    pub complete: Option<Instant>,
    /// Cluster-scoped objects left as they are: restored into another namespace, they exist
    /// already and are shared with the source namespace.
    pub shared: Vec<ObjectId>,
}

impl Restored {
    fn json(&self, command: &str, archive: &Archive, file: &str) -> Value {
        json!({
            "version": 1,
            "command": command,
            "file": file,
            "sourceNamespace": archive.namespace,
            "namespace": self.namespace,
            "outcome": self.outcome,
            "message": self.message,
            "releases": archive.releases.iter().map(|r| json!({
                "name": r.name,
                "revisions": r.records.iter().map(|x| x.revision).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "objects": self.objects,
            "sharedObjectsKept": self.shared,
            "failure": self.failure.as_ref().map(|(id, f)| json!({"object": id, "reason": f.reason, "message": f.message})),
            "findings": self.findings,
        })
    }
}

/// Splits the objects of a restore into another namespace: the cluster-scoped ones that exist
/// already (shared with the source namespace, left as they are) and the rest (applied). The
/// target Namespace itself is never shared.
async fn shared_objects(
    cluster: &Cluster,
    desired: Vec<plan::Desired>,
    target: &str,
) -> Result<(Vec<plan::Desired>, Vec<ObjectId>), Error> {
    let mut kept = Vec::new();
    let mut shared = Vec::new();
    for d in desired {
        let is_target = d.id.kind == "Namespace" && d.id.name == target;
        let resource = d.resolved.as_ref().map(|r| r.resource.clone());
        let (false, false, Some(resource)) = (d.namespaced, is_target, resource) else {
            kept.push(d);
            continue;
        };
        let api: Api<kube::api::DynamicObject> = Api::all_with(cluster.client.clone(), &resource);
        match api.get_opt(&d.id.name).await {
            Ok(Some(_)) => shared.push(d.id.clone()),
            Ok(None) => kept.push(d),
            Err(e) => {
                return Err(Error::Api(format!(
                    "cannot read {}: {}",
                    d.id,
                    crate::cluster::describe(&e)
                )))
            }
        }
    }
    Ok((kept, shared))
}

/// Creates the namespace when it does not exist; Ok(true) when it did not.
async fn ensure_namespace(
    cluster: &Cluster,
    namespace: &str,
    desired: &[plan::Desired],
) -> Result<bool, Error> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    if super::namespace_exists(&api, namespace).await? {
        return Ok(false);
    }
    let object = desired
        .iter()
        .find(|d| {
            d.id.kind == "Namespace" && d.id.group_version().0.is_empty() && d.id.name == namespace
        })
        .map(|d| d.object().clone())
        .unwrap_or_else(
            || json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        );
    super::create_namespace(&api, namespace, &object, apply::FIELD_MANAGER).await?;
    Ok(true)
}

/// Owner references of a restored object point at the restored owners (new uids); those
/// whose owner is not in the target namespace are dropped.
async fn reown(cluster: &Cluster, desired: &mut [plan::Desired]) {
    for d in desired.iter_mut() {
        let Some(refs) = d.doc.object["metadata"]["ownerReferences"].as_array() else {
            continue;
        };
        let mut kept = Vec::new();
        for r in refs {
            let owner = ObjectId {
                api_version: r["apiVersion"].as_str().unwrap_or_default().to_string(),
                kind: r["kind"].as_str().unwrap_or_default().to_string(),
                namespace: d.id.namespace.clone(),
                name: r["name"].as_str().unwrap_or_default().to_string(),
            };
            if let Ok(Some(o)) = live(cluster, &owner).await {
                let mut r = r.clone();
                r["uid"] = o["metadata"]["uid"].clone();
                kept.push(r);
            }
        }
        if let Some(meta) = d.doc.object["metadata"].as_object_mut() {
            if kept.is_empty() {
                meta.remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(kept));
            }
        }
    }
}

/// Restores an archive: refuses to replace existing releases without `force`, checks the
/// objects with the gate, applies them in `apply`'s order, writes the history back and waits
/// for the workloads.
pub async fn restore_archive(
    cluster: &Cluster,
    archive: &Archive,
    settings: &RestoreSettings<'_>,
    progress: &Progress,
) -> Result<Restored, Error> {
    if settings.policy.attestation.is_some() {
        return Err(Error::Usage(
            "--attestation does not apply to a restore: the archive's objects are checked by the gate itself; leave it out".into(),
        ));
    }
    let target = settings
        .namespace
        .clone()
        .unwrap_or_else(|| archive.namespace.clone());
    let moved = Move {
        from: archive.namespace.clone(),
        to: target.clone(),
    };
    let mut restored = Restored {
        namespace: target.clone(),
        ..Restored::default()
    };
    for r in &archive.releases {
        crate::parse::check_release_name(&r.name)?;
        let existing = History::new(cluster.client.clone(), &target, &r.name)
            .list()
            .await?;
        if let (Some(first), Some(last)) = (existing.first(), existing.last()) {
            if !settings.force {
                return Err(Error::Usage(format!(
                    "release {target}/{} already exists (revisions {}-{}); restoring would replace its history and objects: pass --force to do so, or restore into another namespace with -n",
                    r.name, first.revision, last.revision
                )));
            }
        }
    }
    let moving = &moved;
    let documents: Vec<Document> = archive
        .releases
        .iter()
        .flat_map(|r| {
            let source: Arc<str> = Arc::from(format!("{} (release {})", settings.file, r.name));
            r.objects.iter().enumerate().map(move |(i, o)| Document {
                source: source.clone(),
                line: i + 1,
                object: moving.object(o),
                rendered_line: None,
                origin: None,
            })
        })
        .collect();
    let policies = gate::policies(settings.policy).await?;
    let mut desired = plan::resolve(cluster, &documents, &target).await?;
    if moved.from != moved.to {
        let (kept, shared) = shared_objects(cluster, desired, &target).await?;
        desired = kept;
        for id in &shared {
            progress.note(format!(
                "{id} kept as it is: cluster-scoped, it exists already and is shared with namespace {}",
                moved.from
            ));
        }
        restored.shared = shared;
    }
    let decision = gate::check_blocking(
        desired.iter().map(|d| d.doc.clone()).collect(),
        &policies,
        settings.policy,
    )
    .await;
    if !decision.findings.is_empty() {
        restored.findings_text =
            human_findings(&decision.findings, &decision.summary, settings.colour);
    }
    restored.findings = decision.findings.clone();
    if !decision.passed() {
        restored.status = decision.exit;
        restored.outcome = "blocked";
        restored.message = format!(
            "restore of {} into namespace {target}: the validation gate refused the objects; nothing was restored",
            settings.file
        );
        return Ok(restored);
    }
    if ensure_namespace(cluster, &target, &desired).await? {
        progress.note(format!("Namespace {target} created"));
    }
    let mut locks = Vec::new();
    for r in &archive.releases {
        match lock::acquire(
            cluster.client.clone(),
            &target,
            &r.name,
            &lock::identity(),
            settings.lease_duration,
        )
        .await
        {
            Ok(l) => locks.push(l),
            Err(e) => {
                for l in locks {
                    l.release().await;
                }
                return Err(e.into());
            }
        }
    }
    reown(cluster, &mut desired).await;
    let result = locked(
        cluster,
        archive,
        &moved,
        desired,
        settings,
        &mut restored,
        progress,
    )
    .await;
    for l in locks {
        l.release().await;
    }
    result?;
    Ok(restored)
}

async fn locked(
    cluster: &Cluster,
    archive: &Archive,
    moved: &Move,
    desired: Vec<plan::Desired>,
    settings: &RestoreSettings<'_>,
    restored: &mut Restored,
    progress: &Progress,
) -> Result<(), Error> {
    let target = moved.to.clone();
    let (planned, errors) = plan::dry_run(cluster, desired, true).await?;
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|(id, m)| format!("{id}: {m}")).collect();
        restored.status = ExitStatus::Error;
        restored.outcome = "failed";
        restored.message = format!(
            "restore into namespace {target}: the server refused {} object(s) in the dry run; nothing was restored:\n  {}",
            errors.len(),
            lines.join("\n  ")
        );
        return Ok(());
    }
    let live_versions: HashMap<ObjectId, String> = planned
        .iter()
        .filter_map(|p| {
            let rv = p.live.as_ref()?["metadata"]["resourceVersion"].as_str()?;
            Some((p.desired.id.clone(), rv.to_string()))
        })
        .collect();
    let desired: Vec<plan::Desired> = planned.into_iter().map(|p| p.desired).collect();
    let (applied, error) = apply::apply_all(cluster, &desired, Some(&live_versions), true, |a| {
        progress.note(format!("{} {}", a.id, a.action.as_str()));
    })
    .await;
    restored.objects = super::object_reports(&applied);
    if let Some(e) = error {
        restored.status = ExitStatus::Error;
        restored.outcome = "failed";
        restored.message = format!(
            "restore into namespace {target} stopped after {} of {} object(s): {e}; the history was not restored",
            applied.len(),
            desired.len()
        );
        return Ok(());
    }
    for r in &archive.releases {
        let history = History::new(cluster.client.clone(), &target, &r.name);
        let keep: BTreeSet<u32> = r.records.iter().map(|x| x.revision).collect();
        for old in history.list().await? {
            if !keep.contains(&old.revision) {
                history.delete(old.revision).await?;
            }
        }
        for record in &r.records {
            let mut record = moved.record(record);
            if !restored.shared.is_empty() {
                // The restored release does not own the shared objects: a later apply there
                // must not delete or change them.
                record
                    .objects
                    .retain(|o| !restored.shared.contains(&ObjectId::of(o)));
                record.created.retain(|id| !restored.shared.contains(id));
                record.digest = crate::object::digest(&Value::Array(record.objects.clone()));
            }
            history.write(&record).await?;
        }
    }
    let workloads = strategy::workloads(&applied);
    restored.workloads = workloads.iter().map(|w| w.id.clone()).collect();
    events::record(
        cluster,
        &restored.workloads,
        events::Reason::ReleaseRestored,
        &format!(
            "restored from the backup of namespace {} taken at {}",
            archive.namespace, archive.created
        ),
        progress,
    )
    .await;
    match rolling::wait(&cluster.client, &workloads, &settings.rollout, progress).await {
        strategy::Outcome::Complete => {
            restored.complete = Some(Instant::now());
            for o in restored.objects.iter_mut() {
                o.status = progress.state(&o.id);
            }
            let releases: Vec<String> = archive
                .releases
                .iter()
                .map(|r| {
                    format!(
                        "{} (revisions {})",
                        r.name,
                        r.records
                            .iter()
                            .map(|x| x.revision.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            restored.status = ExitStatus::Success;
            restored.outcome = "restored";
            restored.message = format!(
                "restored {} into namespace {target}: {} object(s) ({}), {} workload(s) complete; releases {}",
                archive.namespace,
                applied.len(),
                super::finish::count_actions(&restored.objects),
                workloads.len(),
                releases.join(", ")
            );
        }
        strategy::Outcome::Failed { id, failure } => {
            restored.status = ExitStatus::Error;
            restored.outcome = "failed";
            restored.message = format!(
                "restore into namespace {target}: objects and history restored, but {id} did not become ready: {failure}"
            );
            restored.failure = Some((id, failure));
        }
    }
    Ok(())
}

fn thresholds(max_restarts: i32, stuck_after: Duration) -> Thresholds {
    Thresholds {
        max_restarts,
        stuck_after,
    }
}

/// `executor restore`.
pub async fn restore(args: &RestoreArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let archive = backup::read(&args.input_file).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(ns) = &args.namespace {
        check_namespace_name(ns)?;
    }
    let cluster = connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await?;
    let file = args.input_file.display().to_string();
    let settings = RestoreSettings {
        file: file.clone(),
        namespace: args.namespace.clone(),
        force: args.force,
        policy: &args.policy,
        rollout: Settings {
            thresholds: thresholds(args.health.max_restarts, args.health.stuck_after),
            timeout: args.timeout,
        },
        lease_duration: args.health.lease_duration,
        colour,
    };
    let restored = restore_archive(&cluster, &archive, &settings, progress).await?;
    let doc = restored.json("restore", &archive, &file);
    let text = format!("{}{}\n", restored.findings_text, restored.message);
    Ok(Done::doc(restored.status, doc, text))
}

/// A namespace name as Kubernetes allows it (a DNS label).
fn check_namespace_name(name: &str) -> Result<(), Error> {
    if crate::parse::is_dns_label(name, 63) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid namespace `{name}`: use lowercase letters, digits and `-` (at most 63 characters, starting and ending with a letter or digit)"
        )))
    }
}

/// The scratch namespace of a drill: `<prefix><source>-<time>`, cut to 63 characters.
pub fn scratch_namespace(prefix: &str, source: &str, unix_seconds: i64) -> String {
    let suffix = format!("-{unix_seconds:x}");
    let mut head = format!("{prefix}{source}");
    head.truncate(63 - suffix.len());
    let head = head.trim_end_matches('-');
    format!("{head}{suffix}")
}

/// Seconds as people read them: `42.1s`, `3m 05s`, `1h 02m`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h {:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

/// Label of a drill's scratch namespace: `true`, or `kept` with `--keep-namespace`.
pub const DRILL_LABEL: &str = "executor.io/dr-drill";
/// Annotation of a drill's scratch namespace: when the drill is over at the latest (RFC 3339).
pub const DRILL_DEADLINE: &str = "executor.io/dr-drill-deadline";

/// Creates the scratch namespace, labelled as a drill's with its deadline (the drill's
/// `--timeout` and 15 minutes for the gate and the cleanup), so that a later drill can remove
/// it if this one is killed.
async fn create_scratch_namespace(
    namespaces: &Api<Namespace>,
    namespace: &str,
    args: &DrillArgs,
) -> Result<(), Error> {
    let deadline = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(args.timeout).unwrap_or_default())
        .and_then(|t| t.checked_add(jiff::SignedDuration::from_mins(15)))
        .unwrap_or(jiff::Timestamp::MAX);
    let label = if args.keep_namespace { "kept" } else { "true" };
    let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace,
        "labels": {DRILL_LABEL: label},
        "annotations": {DRILL_DEADLINE: deadline.to_string()},
    }});
    // Its own field manager: applying the release's objects later does not take these off.
    super::create_namespace(namespaces, namespace, &object, "executor-dr-drill").await
}

/// Deletes the scratch namespaces of drills that were killed before they cleaned up: labelled
/// `executor.io/dr-drill=true` (not `kept`) and past their deadline. Returns their names; a
/// failure to list or delete is left for the next drill.
async fn sweep_stale_drills(namespaces: &Api<Namespace>, now: jiff::Timestamp) -> Vec<String> {
    let params = ListParams::default().labels(&format!("{DRILL_LABEL}=true"));
    let Ok(list) = namespaces.list(&params).await else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for ns in list.items {
        let Some(name) = ns.metadata.name.clone() else {
            continue;
        };
        let stale = ns
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DRILL_DEADLINE))
            .and_then(|d| d.parse::<jiff::Timestamp>().ok())
            .is_some_and(|deadline| deadline < now);
        if stale
            && namespaces
                .delete(&name, &DeleteParams::background())
                .await
                .is_ok()
        {
            swept.push(name);
        }
    }
    swept
}

/// `executor dr-drill`: the drill's result and, for the deploy log, its outcome and duration.
pub async fn drill(args: &DrillArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let archive = backup::read(&args.input_file).map_err(|e| Error::Usage(e.to_string()))?;
    let cluster = connect(
        args.cluster.kubeconfig.as_deref(),
        args.cluster.context.as_deref(),
    )
    .await?;
    let namespace = scratch_namespace(
        &args.namespace_prefix,
        &archive.namespace,
        jiff::Timestamp::now().as_second(),
    );
    check_namespace_name(&namespace)?;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    if super::namespace_exists(&namespaces, &namespace).await? {
        return Err(Error::Usage(format!(
            "the scratch namespace {namespace} already exists; a drill needs a fresh one (remove it, or give another --namespace-prefix)"
        )));
    }
    let swept = sweep_stale_drills(&namespaces, jiff::Timestamp::now()).await;
    if !swept.is_empty() {
        progress.note(format!(
            "drill: deleted the scratch namespace(s) of drills that did not finish: {}",
            swept.join(", ")
        ));
    }
    create_scratch_namespace(&namespaces, &namespace, args).await?;
    let file = args.input_file.display().to_string();
    let settings = RestoreSettings {
        file: file.clone(),
        namespace: Some(namespace.clone()),
        force: false,
        policy: &args.policy,
        rollout: Settings {
            thresholds: thresholds(args.health.max_restarts, args.health.stuck_after),
            timeout: args.timeout,
        },
        lease_duration: args.health.lease_duration,
        colour,
    };
    let started_at = now();
    progress.note(format!(
        "drill: restoring {file} (namespace {}, taken {}) into {namespace}",
        archive.namespace, archive.created
    ));
    let start = Instant::now();
    let result = restore_archive(&cluster, &archive, &settings, progress).await;
    let end = Instant::now();
    let cleanup = if args.keep_namespace {
        progress.note(format!(
            "drill: namespace {namespace} kept (--keep-namespace)"
        ));
        None
    } else {
        Some(
            match namespaces
                .delete(&namespace, &DeleteParams::background())
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(crate::cluster::describe(&e)),
            },
        )
    };
    if let Some(Err(e)) = &cleanup {
        progress.note(format!(
            "warning: cannot delete the scratch namespace {namespace}: {e}; delete it by hand"
        ));
    }
    let restored = result?;
    let rto = restored.complete.map(|c| c.duration_since(start));
    let target = args.rto_target;
    let met = rto.is_some_and(|r| r <= target);
    let (code, outcome) = match (restored.outcome, met) {
        ("restored", true) => (ExitStatus::Success, "passed"),
        ("restored", false) => (ExitStatus::Failed, "failed"),
        ("blocked", _) => (restored.status, "blocked"),
        (_, _) if restored.status == ExitStatus::Error && restored.failure.is_some() => {
            (ExitStatus::Failed, "failed")
        }
        _ => (restored.status, "error"),
    };
    let rto_text = match rto {
        Some(r) => format!(
            "RTO {} (target {}): {}",
            human_duration(r),
            human_duration(target),
            if met { "met" } else { "MISSED" }
        ),
        None => format!(
            "no RTO: the workloads were not all complete after {} (target {})",
            human_duration(end.duration_since(start)),
            human_duration(target)
        ),
    };
    let cleanup_text = match &cleanup {
        None => format!("scratch namespace {namespace} kept"),
        Some(Ok(())) => format!("scratch namespace {namespace} deleted"),
        Some(Err(_)) => format!("scratch namespace {namespace} could NOT be deleted"),
    };
    let message = format!(
        "dr-drill {outcome}: {rto_text}; {}; {cleanup_text}",
        restored.message
    );
    let mut doc = restored.json("dr-drill", &archive, &file);
    if let Some(map) = doc.as_object_mut() {
        map.insert("outcome".into(), json!(outcome));
        map.insert("message".into(), json!(message));
        map.insert("restoreOutcome".into(), json!(restored.outcome));
        map.insert("rtoSeconds".into(), json!(rto.map(|r| r.as_secs_f64())));
        map.insert("rtoTargetSeconds".into(), json!(target.as_secs_f64()));
        map.insert("targetMet".into(), json!(met));
        map.insert("workloads".into(), json!(restored.workloads));
        map.insert("started".into(), json!(started_at));
        map.insert("finished".into(), json!(now()));
        map.insert(
            "namespaceDeleted".into(),
            json!(matches!(cleanup, Some(Ok(())))),
        );
        map.insert(
            "durations".into(),
            json!(BTreeMap::from([
                ("restore", end.duration_since(start).as_secs_f64()),
                (
                    "total",
                    rto.unwrap_or(end.duration_since(start)).as_secs_f64()
                ),
            ])),
        );
    }
    let mut report = Report::new(
        "dr-drill",
        &archive
            .releases
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        &namespace,
    );
    report.outcome = match outcome {
        "passed" => Outcome::Deployed,
        "failed" => Outcome::Failed,
        "blocked" => Outcome::Blocked,
        _ => Outcome::Error,
    };
    report.message = message.clone();
    report.durations = doc["durations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    report.timeline.insert("started".into(), json!(started_at));
    report
        .timeline
        .insert("finished".into(), doc["finished"].clone());
    for problem in crate::deploy_metrics::record(&args.record, &report) {
        progress.note(format!("warning: {problem}"));
    }
    let text = format!("{}{message}\n", restored.findings_text);
    Ok(Done::doc(code, doc, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_namespaces_are_valid_labels() {
        assert_eq!(scratch_namespace("drill-", "shop", 255), "drill-shop-ff");
        let long = scratch_namespace("drill-", &"a".repeat(80), 1_700_000_000);
        assert!(long.len() <= 63, "{long}");
        assert!(check_namespace_name(&long).is_ok(), "{long}");
        let dash = scratch_namespace("drill-", &format!("{}-b", "a".repeat(53)), 1);
        assert!(check_namespace_name(&dash).is_ok(), "{dash}");
        assert!(check_namespace_name("Drill").is_err());
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(human_duration(Duration::from_secs(3720)), "1h 02m");
    }
}
