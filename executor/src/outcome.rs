//! Measurements of an operation (phase durations, a timeline of wall-clock moments) and the
//! machine-readable result that `--output json` prints.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::analysis::GateResult;
use crate::apply::Action;
use crate::clock::now_rfc3339;
use crate::health::Failure;
use crate::object::ObjectId;

/// Times phases and records moments.
pub struct Timer {
    start: Instant,
    phase: Option<(String, Instant)>,
    pub durations: BTreeMap<String, f64>,
    pub timeline: Map<String, Value>,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub fn new() -> Self {
        let mut timeline = Map::new();
        timeline.insert("started".into(), Value::String(now_rfc3339()));
        Timer {
            start: Instant::now(),
            phase: None,
            durations: BTreeMap::new(),
            timeline,
        }
    }

    /// Ends the current phase (if any) and starts `name`.
    pub fn phase(&mut self, name: &str) {
        self.end_phase();
        self.phase = Some((name.to_string(), Instant::now()));
    }

    pub fn end_phase(&mut self) {
        if let Some((name, at)) = self.phase.take() {
            *self.durations.entry(name).or_default() += at.elapsed().as_secs_f64();
        }
    }

    /// Records that `what` happened now.
    pub fn mark(&mut self, what: &str) {
        self.timeline
            .insert(what.to_string(), Value::String(now_rfc3339()));
    }

    pub fn finish(&mut self) {
        self.end_phase();
        self.durations
            .insert("total".into(), self.start.elapsed().as_secs_f64());
        self.mark("finished");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The release is deployed (or, for `rollback`, the target is restored).
    Deployed,
    /// The rollout failed and the previous release was restored.
    RolledBack,
    /// The rollout failed and could not be undone.
    Failed,
    /// The validation gate refused the manifests: nothing was applied.
    Blocked,
    /// Nothing was applied: bad input, a held lock, a refused dry run, an unreachable cluster.
    Error,
    /// `plan` only: what would change.
    Planned,
    /// Blue-green with `--manual-promotion`: the new color is ready and checked, and waits
    /// for `executor promote` or `executor abort`.
    Paused,
    /// `executor abort`: the paused release was undone as asked.
    Aborted,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReport {
    #[serde(flatten)]
    pub id: ObjectId,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// For `plan`: the fields that would change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff: Vec<String>,
}

/// The result of a command, as `--output json` prints it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub command: String,
    pub release: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    pub outcome: Outcome,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Seconds per phase (gate, dryRun, apply, rollout, rollback, total).
    pub durations: BTreeMap<String, f64>,
    /// When things happened (started, applied, rolloutComplete, failureDetected,
    /// rollbackStarted, rollbackComplete, finished).
    pub timeline: Map<String, Value>,
    pub objects: Vec<ObjectReport>,
    /// Every gate evaluated (readiness, hooks, smoke, metrics), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<validator::report::Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Report {
    pub fn new(command: &str, release: &str, namespace: &str) -> Self {
        Report {
            version: 1,
            command: command.to_string(),
            release: release.to_string(),
            namespace: namespace.to_string(),
            revision: None,
            outcome: Outcome::Error,
            message: String::new(),
            rolled_back_to: None,
            failure: None,
            durations: BTreeMap::new(),
            timeline: Map::new(),
            objects: Vec::new(),
            gates: Vec::new(),
            findings: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn with_timer(mut self, timer: &Timer) -> Self {
        self.durations = timer.durations.clone();
        self.timeline = timer.timeline.clone();
        self
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_accumulate_and_total_is_recorded() {
        let mut t = Timer::new();
        t.phase("apply");
        t.phase("rollout");
        t.phase("apply");
        t.mark("rolloutComplete");
        t.finish();
        assert!(t.durations.contains_key("apply") && t.durations.contains_key("rollout"));
        assert!(t.durations["total"] >= t.durations["apply"]);
        let keys: Vec<&String> = t.timeline.keys().collect();
        assert_eq!(keys, ["started", "rolloutComplete", "finished"]);
        let at = t.timeline["started"].as_str().unwrap();
        assert!(
            at.parse::<jiff::Timestamp>().is_ok() && at.contains('.'),
            "{at}"
        );
    }
}
