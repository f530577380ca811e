//! JUnit XML: one test case per finding that fails, grouped in one suite.

use std::fmt::Write;

use super::{rule_id, xml_escape, Finding, Severity, Summary};

pub fn render(findings: &[Finding], summary: &Summary) -> String {
    let failures = findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Deny | Severity::Warn))
        .count();
    let errors = summary.errors;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"validator\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        findings.len().max(1)
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"validator check\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">",
        findings.len().max(1)
    );
    if findings.is_empty() {
        let _ = writeln!(
            out,
            "    <testcase classname=\"validator\" name=\"{} objects checked\"/>",
            summary.objects
        );
    }
    for f in findings {
        let object = f
            .object
            .as_ref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let name = xml_escape(&format!("{}{object} ({})", rule_id(f), f.location()));
        let classname = xml_escape(&f.file);
        let message = xml_escape(&f.message);
        match f.severity {
            Severity::Error => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{classname}\" name=\"{name}\">\n      <error type=\"{}\" message=\"{message}\">{message}</error>\n    </testcase>",
                    f.code.as_str()
                );
            }
            Severity::Deny | Severity::Warn => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{classname}\" name=\"{name}\">\n      <failure type=\"{}\" message=\"{message}\">{message}</failure>\n    </testcase>",
                    f.severity.as_str()
                );
            }
            Severity::Info => {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"{classname}\" name=\"{name}\">\n      <system-out>{message}</system-out>\n    </testcase>"
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
