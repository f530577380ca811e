//! Deploy metrics: every `apply` and `rollback` leaves a JSON line in the deploy log, Prometheus
//! metrics in a node-exporter textfile and/or a Pushgateway; `executor report` computes delivery
//! metrics (deployment frequency, change failure rate, time to restore, deploy durations) from
//! the log.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, Report};

/// Where a release's numbers go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RecordArgs {
    /// Append one JSON line per release to FILE (the input of `executor report`).
    #[arg(long, value_name = "FILE")]
    pub deploy_log: Option<PathBuf>,
    /// Write the release's metrics to FILE in the node-exporter textfile format (replaced
    /// atomically; use one file per release).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push the release's metrics to a Prometheus Pushgateway at URL.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
}

/// One line of the deploy log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployEvent {
    pub command: String,
    pub release: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    pub outcome: String,
    pub started: String,
    pub finished: String,
    /// When the failure that ended the rollout was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_detected: Option<String>,
    /// When the automatic rollback finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_complete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Seconds per phase, `total` among them.
    #[serde(default)]
    pub durations: BTreeMap<String, f64>,
}

fn outcome_name(o: Outcome) -> String {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl DeployEvent {
    pub fn of(report: &Report) -> Self {
        let at = |k: &str| {
            report
                .timeline
                .get(k)
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        DeployEvent {
            command: report.command.clone(),
            release: report.release.clone(),
            namespace: report.namespace.clone(),
            revision: report.revision,
            outcome: outcome_name(report.outcome),
            started: at("started").unwrap_or_default(),
            finished: at("finished").unwrap_or_default(),
            failure_detected: at("failureDetected"),
            rollback_complete: at("rollbackComplete"),
            rolled_back_to: report.rolled_back_to,
            failure: report.failure.as_ref().map(ToString::to_string),
            durations: report.durations.clone(),
        }
    }

    fn total(&self) -> f64 {
        self.durations.get("total").copied().unwrap_or(0.0)
    }

    /// A release that changed the cluster: deployed, rolled back or failed.
    fn is_change(&self) -> bool {
        self.command == "apply"
            && matches!(self.outcome.as_str(), "deployed" | "rolled-back" | "failed")
    }

    fn is_failed_change(&self) -> bool {
        self.is_change() && self.outcome != "deployed"
    }

    fn restores(&self) -> bool {
        self.outcome == "deployed"
            && matches!(self.command.as_str(), "apply" | "rollback" | "promote")
    }
}

/// Records a finished command as `args` asks; returns the problems met (none is fatal).
pub fn record(args: &RecordArgs, report: &Report) -> Vec<String> {
    let event = DeployEvent::of(report);
    let mut problems = Vec::new();
    if let Some(path) = &args.deploy_log {
        if let Err(e) = append_log(path, &event) {
            problems.push(format!(
                "cannot append to the deploy log {}: {e}",
                path.display()
            ));
        }
    }
    let text = exposition(&event);
    if let Some(path) = &args.metrics_file {
        if let Err(e) = write_atomically(path, &text) {
            problems.push(format!(
                "cannot write the metrics file {}: {e}",
                path.display()
            ));
        }
    }
    if let Some(url) = &args.pushgateway {
        if let Err(e) = push(url, &event) {
            problems.push(crate::redact::credentials(&format!(
                "cannot push metrics to {url}: {e}"
            )));
        }
    }
    problems
}

pub fn append_log(path: &Path, event: &DeployEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_string(event).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line.as_bytes())
}

/// Writes beside the target and renames, so a collector never reads half a file.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    crate::files::replace(path, text.as_bytes(), 0o644)
}

fn seconds_since_epoch(at: &str) -> Option<f64> {
    at.parse::<Timestamp>()
        .ok()
        .map(|t| t.as_microsecond() as f64 / 1e6)
}

/// Label pairs of one sample.
type Labels = Vec<(&'static str, String)>;

/// The release's metrics in the Prometheus text exposition format, each sample labelled with
/// the release and namespace.
pub fn exposition(e: &DeployEvent) -> String {
    encode_metrics(e, true)
}

/// The metrics; without `release` and `namespace` labels for the Pushgateway, whose grouping
/// key carries them (it refuses samples that repeat them).
fn encode_metrics(e: &DeployEvent, with_release: bool) -> String {
    let base: Labels = if with_release {
        vec![
            ("release", e.release.clone()),
            ("namespace", e.namespace.clone()),
        ]
    } else {
        Vec::new()
    };
    let labelled = |extra: &[(&'static str, String)]| -> Labels {
        base.iter().cloned().chain(extra.iter().cloned()).collect()
    };
    let mut registry = Registry::default();
    let flag = |registry: &mut Registry, name: &str, help: &str, labels: Labels, on: bool| {
        let family = Family::<Labels, Gauge>::default();
        family.get_or_create(&labels).set(i64::from(on));
        registry.register(name, help, family);
    };
    flag(
        &mut registry,
        "executor_release_info",
        "The last release: its command, outcome and revision",
        labelled(&[
            ("command", e.command.clone()),
            ("outcome", e.outcome.clone()),
            (
                "revision",
                e.revision.map(|r| r.to_string()).unwrap_or_default(),
            ),
        ]),
        true,
    );
    flag(
        &mut registry,
        "executor_release_success",
        "1 if the last release was deployed, 0 otherwise",
        labelled(&[]),
        e.outcome == "deployed",
    );
    flag(
        &mut registry,
        "executor_release_rolled_back",
        "1 if the last release was rolled back automatically",
        labelled(&[]),
        e.outcome == "rolled-back",
    );
    let durations = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (phase, seconds) in &e.durations {
        durations
            .get_or_create(&labelled(&[("phase", phase.clone())]))
            .set(*seconds);
    }
    registry.register(
        "executor_release_duration_seconds",
        "Seconds the last release spent per phase (phase=\"total\" for all of it)",
        durations,
    );
    if let Some(t) = seconds_since_epoch(&e.finished) {
        let finished = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        finished.get_or_create(&labelled(&[])).set(t);
        registry.register(
            "executor_release_timestamp_seconds",
            "When the last release finished (Unix time)",
            finished,
        );
    }
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        out = format!("# the metrics cannot be written: {e}\n");
    }
    out
}

/// PUTs the metrics to `<url>/metrics/job/executor/release/<release>/namespace/<namespace>`.
fn push(url: &str, event: &DeployEvent) -> Result<(), String> {
    validator::pushgateway::push(
        url,
        "executor",
        &[("release", &event.release), ("namespace", &event.namespace)],
        encode_metrics(event, false),
    )
}

/// A deploy log that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: cannot read the deploy log: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a deploy log entry ({source}); each line is one JSON object written by `executor apply --deploy-log`")]
    Entry {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Reads a deploy log; a line that is not an event is an error naming its line.
pub fn read_log(path: &Path) -> Result<Vec<DeployEvent>, LogError> {
    let text = std::fs::read_to_string(path).map_err(|source| LogError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: DeployEvent = serde_json::from_str(line).map_err(|source| LogError::Entry {
            path: path.display().to_string(),
            line: i + 1,
            source,
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Delivery metrics over a window of the deploy log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Start and end of the window (RFC 3339).
    pub from: String,
    pub to: String,
    pub days: f64,
    /// Applies that changed the cluster.
    pub changes: usize,
    pub deployed: usize,
    pub rolled_back: usize,
    pub failed: usize,
    /// Successful deploys per day.
    pub deployment_frequency_per_day: f64,
    /// Rolled back or failed changes over all changes (0 when there were none).
    pub change_failure_rate: f64,
    /// Mean seconds from a failure to the release being healthy again; `None` when nothing
    /// failed.
    pub mean_time_to_restore_seconds: Option<f64>,
    /// Failures not restored by the end of the log.
    pub unrestored: usize,
    /// Total duration of deployed applies, nearest-rank percentiles.
    pub deploy_duration_p50_seconds: Option<f64>,
    pub deploy_duration_p95_seconds: Option<f64>,
}

fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied()
}

/// Computes the delivery metrics of `events` (any order) for `release` (all when `None`),
/// counting events that started at or after `since`.
pub fn summarize(
    events: &[DeployEvent],
    release: Option<&str>,
    since: Option<Timestamp>,
    now: Timestamp,
) -> Summary {
    let mut events: Vec<(Timestamp, &DeployEvent)> = events
        .iter()
        .filter(|e| release.is_none_or(|r| e.release == r))
        .filter_map(|e| e.started.parse::<Timestamp>().ok().map(|t| (t, e)))
        .collect();
    events.sort_by_key(|(t, _)| *t);
    let in_window: Vec<(Timestamp, &DeployEvent)> = events
        .iter()
        .filter(|(t, _)| since.is_none_or(|s| *t >= s))
        .copied()
        .collect();
    let from = since
        .or_else(|| in_window.first().map(|(t, _)| *t))
        .unwrap_or(now);
    let days = ((now.as_second() - from.as_second()) as f64 / 86_400.0).max(1.0);
    let changes: Vec<&DeployEvent> = in_window
        .iter()
        .map(|(_, e)| *e)
        .filter(|e| e.is_change())
        .collect();
    let count = |o: &str| changes.iter().filter(|e| e.outcome == o).count();
    let (deployed, rolled_back, failed) =
        (count("deployed"), count("rolled-back"), count("failed"));
    let mut restore_times = Vec::new();
    let mut unrestored = 0;
    for (i, (_, e)) in events.iter().enumerate() {
        if !e.is_failed_change() || !in_window.iter().any(|(_, w)| std::ptr::eq(*w, *e)) {
            continue;
        }
        let failed_at = e
            .failure_detected
            .as_deref()
            .unwrap_or(&e.finished)
            .parse::<Timestamp>()
            .ok();
        // Restored by its own rollback, else by the next successful apply or rollback of the
        // same release.
        let restored_at = if e.outcome == "rolled-back" {
            e.rollback_complete
                .as_deref()
                .or(Some(e.finished.as_str()))
                .and_then(|t| t.parse::<Timestamp>().ok())
        } else {
            events[i + 1..]
                .iter()
                .find(|(_, n)| n.release == e.release && n.namespace == e.namespace && n.restores())
                .and_then(|(_, n)| n.finished.parse::<Timestamp>().ok())
        };
        match (failed_at, restored_at) {
            (Some(f), Some(r)) => {
                restore_times
                    .push(((r.as_microsecond() - f.as_microsecond()) as f64 / 1e6).max(0.0));
            }
            _ => unrestored += 1,
        }
    }
    let mut durations: Vec<f64> = changes
        .iter()
        .filter(|e| e.outcome == "deployed")
        .map(|e| e.total())
        .collect();
    durations.sort_by(f64::total_cmp);
    Summary {
        from: from.to_string(),
        to: now.to_string(),
        days,
        changes: changes.len(),
        deployed,
        rolled_back,
        failed,
        deployment_frequency_per_day: deployed as f64 / days,
        change_failure_rate: if changes.is_empty() {
            0.0
        } else {
            (rolled_back + failed) as f64 / changes.len() as f64
        },
        mean_time_to_restore_seconds: (!restore_times.is_empty())
            .then(|| restore_times.iter().sum::<f64>() / restore_times.len() as f64),
        unrestored,
        deploy_duration_p50_seconds: nearest_rank(&durations, 50.0),
        deploy_duration_p95_seconds: nearest_rank(&durations, 95.0),
    }
}

fn seconds(s: Option<f64>) -> String {
    s.map_or("-".to_string(), |s| format!("{s:.1}s"))
}

/// The summary for people.
pub fn human(summary: &Summary, release: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Delivery metrics for {} from {} to {} ({:.1} days)",
        release.unwrap_or("all releases"),
        summary.from,
        summary.to,
        summary.days
    );
    let _ = writeln!(
        out,
        "  changes:                {} ({} deployed, {} rolled back, {} failed)",
        summary.changes, summary.deployed, summary.rolled_back, summary.failed
    );
    let _ = writeln!(
        out,
        "  deployment frequency:   {:.2} per day",
        summary.deployment_frequency_per_day
    );
    let _ = writeln!(
        out,
        "  change failure rate:    {:.1}%",
        summary.change_failure_rate * 100.0
    );
    let _ = writeln!(
        out,
        "  mean time to restore:   {}{}",
        seconds(summary.mean_time_to_restore_seconds),
        if summary.unrestored > 0 {
            format!(" ({} not restored)", summary.unrestored)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "  deploy duration:        p50 {}, p95 {}",
        seconds(summary.deploy_duration_p50_seconds),
        seconds(summary.deploy_duration_p95_seconds)
    );
    out
}

#[cfg(test)]
mod tests;
