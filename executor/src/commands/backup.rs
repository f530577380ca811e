//! `executor backup`: the releases of a namespace (history and live objects) into an archive.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

use super::archive::live;
use super::{connect, now, Done};
use crate::args::BackupArgs;
use crate::backup::{self, Archive, ReleaseBackup};
use crate::cluster::Cluster;
use crate::exit::ExitStatus;
use crate::object::ObjectId;
use crate::progress::Progress;
use crate::release::{self, History, OWNER_LABEL, SECRET_TYPE};
use crate::Error;

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
pub async fn run(args: &BackupArgs, progress: &Progress) -> Result<Done, Error> {
    let (cluster, namespace) = connect(&args.cluster, args.namespace.as_deref()).await?;
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
    backup::write(&args.output_file, &archive)?;
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
