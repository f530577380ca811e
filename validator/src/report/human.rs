//! The default, human-readable format: one line per finding, then a summary.

use std::fmt::Write;

use super::{Finding, Severity, Summary};

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

pub fn render(findings: &[Finding], summary: &Summary, colour: bool) -> String {
    let mut out = String::new();
    for f in findings {
        let (label, code) = match f.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Deny => ("deny", "31"),
            Severity::Warn => ("warn", "33"),
            Severity::Info => ("info", "36"),
        };
        let mut line = paint(label, code, colour);
        if let Some(p) = &f.policy {
            let _ = write!(line, " [{}/{}]", p.kind, p.constraint);
        } else {
            let _ = write!(line, " [{}]", f.code.as_str());
        }
        if let Some(o) = &f.object {
            let _ = write!(line, " {o}");
        }
        let location = f.location();
        if !location.is_empty() {
            let _ = write!(line, " ({location})");
        }
        let _ = writeln!(out, "{line}: {}", f.message);
    }
    let verdict = if summary.errors > 0 {
        paint("error", "1;31", colour)
    } else if summary.deny > 0 {
        paint("failed", "31", colour)
    } else {
        paint("passed", "32", colour)
    };
    let _ = writeln!(
        out,
        "{verdict}: {} objects checked, {} deny, {} warn, {} info, {} errors",
        summary.objects, summary.deny, summary.warn, summary.info, summary.errors
    );
    out
}
