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
        // Objects read from a cluster (`cluster:...`) have no file in the repository: their
        // annotation has no position, and the message names the object.
        let cluster = f.file.strip_prefix("cluster:");
        if !f.file.is_empty() && cluster.is_none() {
            props.push(format!("file={}", escape_property(&f.file)));
            if f.line > 0 {
                props.push(format!("line={}", f.line));
                if f.column > 0 {
                    props.push(format!("col={}", f.column));
                }
            }
        }
        props.push(format!("title={}", escape_property(&rule_id(f))));
        let object = match (&f.object, cluster) {
            (Some(o), _) => format!("{o}: "),
            (None, Some(what)) if !what.is_empty() => format!("{what}: "),
            _ => String::new(),
        };
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
