//! The JSON format: `{"version": 1, "summary": {...}, "findings": [...]}`, documented in the README.

use serde_json::json;

use super::{Finding, Summary};

pub fn render(findings: &[Finding], summary: &Summary) -> String {
    let doc = json!({
        "version": 1,
        "summary": summary,
        "findings": findings,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    s
}
