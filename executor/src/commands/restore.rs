//! `executor restore`: the releases of an archive back into a cluster, through the same gate,
//! order and health checks as `apply`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use serde_json::{json, Value};
use validator::manifest::Document;
use validator::report::Finding;

use super::archive::{live, thresholds};
use super::{connect, ensure_namespace, human_findings, Done, Ensured, Undefined};
use crate::apply;
use crate::args::{HealthArgs, RestoreArgs};
use crate::backup::{self, Archive, Move};
use crate::cluster::Cluster;
use crate::events;
use crate::exit::ExitStatus;
use crate::gate::{self, PolicyArgs};
use crate::health::Failure;
use crate::lock;
use crate::object::ObjectId;
use crate::outcome::ObjectReport;
use crate::parse::check_namespace_name;
use crate::plan;
use crate::progress::Progress;
use crate::release::History;
use crate::strategy::{self, rolling, Settings};
use crate::Error;

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

impl<'a> RestoreSettings<'a> {
    /// The settings of a restore of the archive at `file` into `namespace`, with the health
    /// thresholds and deadline of the command's flags.
    pub fn new(
        file: String,
        namespace: Option<String>,
        force: bool,
        policy: &'a PolicyArgs,
        health: &HealthArgs,
        timeout: Duration,
        colour: bool,
    ) -> RestoreSettings<'a> {
        RestoreSettings {
            file,
            namespace,
            force,
            policy,
            rollout: Settings {
                thresholds: thresholds(health.max_restarts, health.stuck_after),
                timeout,
            },
            lease_duration: health.lease_duration,
            colour,
        }
    }
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
    pub fn json(&self, command: &str, archive: &Archive, file: &str) -> Value {
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
    if let Ensured::Created(_) =
        ensure_namespace(cluster, &target, &desired, Undefined::CreateEmpty).await?
    {
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

/// `executor restore`.
pub async fn run(args: &RestoreArgs, progress: &Progress, colour: bool) -> Result<Done, Error> {
    let archive = backup::read(&args.input_file)?;
    if let Some(ns) = &args.namespace {
        check_namespace_name(ns)?;
    }
    let (cluster, _) = connect(&args.cluster, None).await?;
    let file = args.input_file.display().to_string();
    let settings = RestoreSettings::new(
        file.clone(),
        args.namespace.clone(),
        args.force,
        &args.policy,
        &args.health,
        args.timeout,
        colour,
    );
    let restored = restore_archive(&cluster, &archive, &settings, progress).await?;
    let doc = restored.json("restore", &archive, &file);
    let text = format!("{}{}\n", restored.findings_text, restored.message);
    Ok(Done::doc(restored.status, doc, text))
}
