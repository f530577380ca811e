//! The JSON format: `{"version": 1, "summary": {...}, "findings": [...], "attestation": {...}}`,
//! documented in the README.

use serde_json::json;

use super::{Finding, Summary};
use crate::digest::Attestation;

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

/// The JSON report with the digests of what was checked (policy set and every input object).
pub fn render_attested(
    findings: &[Finding],
    summary: &Summary,
    attestation: &Attestation,
) -> String {
    let doc = json!({
        "version": 1,
        "summary": summary,
        "findings": findings,
        "attestation": attestation,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    s
}
