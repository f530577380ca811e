//! GitHub Actions workflow commands (`::error file=..,line=..::message`).

use std::fmt::Write;

use super::{rule_id, Finding, Severity, Summary};

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

pub fn render(findings: &[Finding], summary: &Summary) -> String {
    let mut out = String::new();
    for f in findings {
        let command = match f.severity {
            Severity::Error | Severity::Deny => "error",
            Severity::Warn => "warning",
            Severity::Info => "notice",
        };
        let mut props = Vec::new();
        if !f.file.is_empty() {
            props.push(format!("file={}", escape_property(&f.file)));
            props.push(format!("line={}", f.line));
            if f.column > 0 {
                props.push(format!("col={}", f.column));
            }
        }
        props.push(format!("title={}", escape_property(&rule_id(f))));
        let object = f
            .object
            .as_ref()
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "::{command} {}::{}",
            props.join(","),
            escape_data(&format!("{object}{}", f.message))
        );
    }
    let _ = writeln!(
        out,
        "{} objects checked, {} deny, {} warn, {} info, {} errors",
        summary.objects, summary.deny, summary.warn, summary.info, summary.errors
    );
    out
}
