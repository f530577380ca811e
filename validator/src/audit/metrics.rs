//! The audit's totals as Prometheus metrics in the text exposition format, for node-exporter's
//! textfile collector (written whole, then renamed into place).

use std::fmt::Write;
use std::path::Path;

use super::render::Report;

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of an audit that took `seconds` and ended at `timestamp` (Unix seconds).
pub fn text(report: &Report<'_>, seconds: f64, timestamp: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP validator_audit_violations Violations of each constraint found by the last audit (totalViolations).");
    let _ = writeln!(out, "# TYPE validator_audit_violations gauge");
    for c in &report.constraints {
        let _ = writeln!(
            out,
            "validator_audit_violations{{constraint_kind=\"{}\",constraint_name=\"{}\",enforcement_action=\"{}\"}} {}",
            escape(&c.kind),
            escape(&c.name),
            escape(&c.action),
            c.total
        );
    }
    let s = &report.summary;
    let gauges = [
        (
            "validator_audit_objects",
            "Objects the last audit evaluated.",
            s.objects as f64,
        ),
        (
            "validator_audit_errors",
            "Errors of the last audit (kinds not listed, policies that failed).",
            s.errors as f64,
        ),
        (
            "validator_audit_duration_seconds",
            "Wall time of the last audit.",
            seconds,
        ),
        (
            "validator_audit_last_run_timestamp_seconds",
            "When the last audit ended (Unix time).",
            timestamp,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP validator_audit_kind_objects Objects listed per kind, by how the list ended."
    );
    let _ = writeln!(out, "# TYPE validator_audit_kind_objects gauge");
    for k in report.kinds {
        let _ = writeln!(
            out,
            "validator_audit_kind_objects{{api_version=\"{}\",kind=\"{}\",status=\"{}\"}} {}",
            escape(&k.api_version),
            escape(&k.kind),
            k.status,
            k.objects
        );
    }
    out
}

/// Writes `text` to `path` atomically (a temporary file beside it, then a rename).
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
