//! The audit's totals as Prometheus metrics in the text exposition format, for node-exporter's
//! textfile collector (written whole, then renamed into place).

use std::path::Path;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::render::Report;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConstraintLabels {
    constraint_kind: String,
    constraint_name: String,
    enforcement_action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    api_version: String,
    kind: String,
    status: &'static str,
}

fn seconds_gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g = Gauge::<f64, AtomicU64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn count_gauge(registry: &mut Registry, name: &str, help: &str, value: usize) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// The metrics of an audit that took `seconds` and ended at `timestamp` (Unix seconds).
pub fn text(report: &Report<'_>, seconds: f64, timestamp: f64) -> String {
    let mut registry = Registry::default();
    let violations = Family::<ConstraintLabels, Gauge>::default();
    for c in &report.constraints {
        violations
            .get_or_create(&ConstraintLabels {
                constraint_kind: c.kind.clone(),
                constraint_name: c.name.clone(),
                enforcement_action: c.action.clone(),
            })
            .set(i64::try_from(c.total).unwrap_or(i64::MAX));
    }
    registry.register(
        "validator_audit_violations",
        "Violations of each constraint found by the last audit (totalViolations)",
        violations,
    );
    let s = &report.summary;
    count_gauge(
        &mut registry,
        "validator_audit_objects",
        "Objects the last audit evaluated",
        s.objects,
    );
    count_gauge(
        &mut registry,
        "validator_audit_errors",
        "Errors of the last audit (kinds not listed, policies that failed)",
        s.errors,
    );
    seconds_gauge(
        &mut registry,
        "validator_audit_duration_seconds",
        "Wall time of the last audit",
        seconds,
    );
    seconds_gauge(
        &mut registry,
        "validator_audit_last_run_timestamp_seconds",
        "When the last audit ended (Unix time)",
        timestamp,
    );
    let kinds = Family::<KindLabels, Gauge>::default();
    for k in report.kinds {
        kinds
            .get_or_create(&KindLabels {
                api_version: k.api_version.clone(),
                kind: k.kind.clone(),
                status: k.status,
            })
            .set(i64::try_from(k.objects).unwrap_or(i64::MAX));
    }
    registry.register(
        "validator_audit_kind_objects",
        "Objects listed per kind, by how the list ended",
        kinds,
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        out = format!("# the metrics cannot be written: {e}\n");
    }
    out
}

/// Writes `text` to `path` whole, readable by the collector (mode 0644).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    crate::files::replace(path, text.as_bytes(), 0o644)
}
