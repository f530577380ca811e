//! Releases: the record of each revision (exact objects applied, status, what it created),
//! kept in the cluster as one Secret per revision, and the choices made from that history
//! (the current release, interrupted operations, rollback targets).

mod history;
pub mod rollback;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use history::{History, HistoryError};

use crate::analysis::GateResult;
use crate::object::ObjectId;
use crate::strategy::blue_green;

/// The Secret type of release records.
pub const SECRET_TYPE: &str = "executor.release/v1";
/// The label every release Secret carries.
pub const OWNER_LABEL: (&str, &str) = ("owner", "executor");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// An operation is under way (or was interrupted: its executor stopped).
    Pending,
    /// The release running in the cluster.
    Deployed,
    /// Was deployed; a later revision replaced it.
    Superseded,
    /// Its rollout failed and the cluster was returned to an earlier revision.
    RolledBack,
    /// Its rollout failed and nothing could be restored, or it was interrupted.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Deployed => "deployed",
            Status::Superseded => "superseded",
            Status::RolledBack => "rolled-back",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Install,
    Upgrade,
    Rollback,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Install => "install",
            Operation::Upgrade => "upgrade",
            Operation::Rollback => "rollback",
        })
    }
}

/// Where a pending operation had got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Applying,
    Waiting,
    /// Blue-green: the new color is ready and checked; waiting for `promote` or `abort`.
    Paused,
    /// Watching the gates after the rollout (blue-green: switched to the new color).
    Observing,
    RollingBack,
}

impl Phase {
    /// As in the record (`rolling-back`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Applying => "applying",
            Phase::Waiting => "waiting",
            Phase::Paused => "paused",
            Phase::Observing => "observing",
            Phase::RollingBack => "rolling-back",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revision of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: Status,
    pub operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    pub description: String,
    /// When the operation started and when the record last changed (RFC 3339).
    pub started: String,
    pub updated: String,
    /// Digest of the objects, in apply order.
    pub digest: String,
    /// The objects exactly as applied, in apply order.
    pub objects: Vec<Value>,
    /// Objects that did not exist before this revision applied them.
    #[serde(default)]
    pub created: Vec<ObjectId>,
    /// The deployed revision when this one started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<u32>,
    /// For a rollback: the revision whose objects it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u32>,
    /// The result of every gate evaluated for this revision, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// For a blue-green rollout: the colors, the Service and the gates still to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<blue_green::State>,
}

impl Record {
    pub fn ids(&self) -> Vec<ObjectId> {
        self.objects.iter().map(ObjectId::of).collect()
    }

    /// The Secret name: `executor.release.v1.<name>.v<revision>`.
    pub fn secret_name(name: &str, revision: u32) -> String {
        format!("executor.release.v1.{name}.v{revision}")
    }
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot compress the release record: {0}")]
    Compress(#[source] std::io::Error),
    #[error("cannot decompress the release record: {0}")]
    Decompress(#[source] std::io::Error),
    #[error("the release record is not valid: {0}")]
    Decode(#[source] serde_json::Error),
}

/// gzip of the record's JSON.
pub fn encode(record: &Record) -> Result<Vec<u8>, RecordError> {
    let json = serde_json::to_vec(record).map_err(RecordError::Decode)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).map_err(RecordError::Compress)?;
    gz.finish().map_err(RecordError::Compress)
}

/// The largest release record read, decompressed. A record is stored in a Secret (at most
/// 1 MiB), and manifests compress about tenfold; anything far beyond that is not a record.
const MAX_RECORD_JSON: u64 = 64 << 20;

pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let json = crate::files::gunzip(bytes, MAX_RECORD_JSON).map_err(RecordError::Decompress)?;
    serde_json::from_slice(&json).map_err(RecordError::Decode)
}

/// The release running in the cluster: the highest deployed revision.
pub fn current(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .filter(|r| r.status == Status::Deployed)
        .max_by_key(|r| r.revision)
}

/// Operations that started and never finished.
pub fn interrupted(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| r.status == Status::Pending)
        .collect()
}

/// The revision waiting for `promote` or `abort`: the newest pending one, if it is paused.
pub fn paused(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .filter(|r| r.status == Status::Pending)
        .max_by_key(|r| r.revision)
        .filter(|r| r.phase == Some(Phase::Paused) && r.blue_green.is_some())
}

pub fn next_revision(records: &[Record]) -> u32 {
    records.iter().map(|r| r.revision).max().unwrap_or(0) + 1
}

/// What `rollback` without `--to` restores: the current release when an operation was
/// interrupted after it, otherwise the last release deployed before the current one.
pub fn default_rollback_target(records: &[Record]) -> Option<&Record> {
    let current = current(records)?;
    if interrupted(records)
        .iter()
        .any(|p| p.revision > current.revision)
    {
        return Some(current);
    }
    records
        .iter()
        .filter(|r| r.revision < current.revision && r.status == Status::Superseded)
        .max_by_key(|r| r.revision)
}

/// Revisions to delete to keep at most `max` records; never the current or pending ones.
pub fn beyond_history_max(records: &[Record], max: usize) -> Vec<u32> {
    let mut revisions: Vec<&Record> = records.iter().collect();
    revisions.sort_by_key(|r| r.revision);
    let excess = revisions.len().saturating_sub(max.max(1));
    revisions
        .into_iter()
        .filter(|r| !matches!(r.status, Status::Deployed | Status::Pending))
        .take(excess)
        .map(|r| r.revision)
        .collect()
}

/// Objects of `before` that are absent from `after` (by group, kind, namespace, name).
pub fn removed(before: &[ObjectId], after: &[ObjectId]) -> Vec<ObjectId> {
    before
        .iter()
        .filter(|b| !after.iter().any(|a| a.same_object(b)))
        .cloned()
        .collect()
}
