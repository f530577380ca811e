//! JUnit XML: one test case per finding that fails, grouped in one suite.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{rule_id, Finding, Severity, Summary};

pub fn render(findings: &[Finding], summary: &Summary) -> String {
    let mut suite = TestSuite::new("validator check");
    if findings.is_empty() {
        let mut case = TestCase::new(
            format!("{} objects checked", summary.objects),
            TestCaseStatus::success(),
        );
        case.set_classname("validator");
        suite.add_test_case(case);
    }
    for f in findings {
        let object = f
            .object
            .as_ref()
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let name = format!("{}{object} ({})", rule_id(f), f.location());
        let status = match f.severity {
            Severity::Error => non_success(NonSuccessKind::Error, f.code.as_str(), &f.message),
            Severity::Deny | Severity::Warn => {
                non_success(NonSuccessKind::Failure, f.severity.as_str(), &f.message)
            }
            Severity::Info => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(f.file.as_str());
        if f.severity == Severity::Info {
            case.set_system_out(f.message.as_str());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("validator");
    report.add_test_suite(suite);
    to_xml(&report)
}

/// A failed or broken test case with its type and message.
fn non_success(kind: NonSuccessKind, ty: &str, message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status
        .set_type(ty)
        .set_message(message)
        .set_description(message);
    status
}

/// The report as XML; a report that cannot be written is said in the XML's place.
pub(crate) fn to_xml(report: &Report) -> String {
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- the JUnit report cannot be written: {e} -->\n"))
}
