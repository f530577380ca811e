//! Policy exceptions: a reviewable waiver file that turns matching violations into information until it expires.
//!
//! ```yaml
//! apiVersion: validator.policy/v1
//! kind: WaiverList
//! waivers:
//!   - constraint: K8sRequiredProbes/production-required-probes   # Kind/name, or a constraint name
//!     match: {kind: Deployment, namespace: batch-*, name: report-*} # each field optional, globs allowed
//!     reason: Batch workers expose no HTTP endpoint (TICKET-123)
//!     owner: team-batch@example.com
//!     expires: 2027-03-31
//! ```

use std::path::Path;

use serde_json::Value;

use crate::glob::glob_match;
use crate::manifest::load_file;
use crate::report::{Action, Code, Finding, ObjectRef, Severity};

pub const API_VERSION: &str = "validator.policy/v1";

/// A calendar date.
pub type Date = jiff::civil::Date;

/// Reads an expiry date written `YYYY-MM-DD` (a real date of the Gregorian calendar).
pub fn parse_date(s: &str) -> Option<Date> {
    let s = s.trim();
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped.then(|| s.parse::<Date>().ok()).flatten()
}

/// Today's date in UTC.
pub fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// One waiver: which violations it covers, why, who owns it, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    /// `Kind/name` or a constraint name.
    pub constraint: String,
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub reason: String,
    pub owner: String,
    pub expires: Date,
    pub file: String,
    pub line: usize,
}

impl Waiver {
    /// Whether the waiver covers a violation of this constraint by this object.
    pub fn covers(&self, kind: &str, constraint: &str, object: &ObjectRef) -> bool {
        let constraint_ok = match self.constraint.split_once('/') {
            Some((k, n)) => k == kind && glob_match(n, constraint),
            None => glob_match(&self.constraint, constraint),
        };
        let field = |pattern: &Option<String>, value: &str| {
            pattern.as_deref().is_none_or(|p| glob_match(p, value))
        };
        constraint_ok
            && field(&self.api_version, &object.api_version)
            && field(&self.kind, &object.kind)
            && field(&self.namespace, &object.namespace)
            && field(&self.name, &object.name)
    }
}

/// A waiver file that cannot be used (reported as an error, exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiverError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for WaiverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Lines where the items of the top-level `waivers:` list start.
fn item_lines(text: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut in_list = false;
    let mut indent = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if line.starts_with("waivers:") {
            in_list = true;
            continue;
        }
        if !in_list || trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let this = line.len() - trimmed.len();
        if this == 0 && !trimmed.starts_with('-') {
            in_list = false;
            continue;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            let first = *indent.get_or_insert(this);
            if this == first {
                lines.push(i + 1);
            }
        }
    }
    lines
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.trim().is_empty())
}

/// Reads and validates a waiver file; every problem is reported.
pub fn load(path: &Path) -> (Vec<Waiver>, Vec<WaiverError>) {
    let file = path.display().to_string();
    let loaded = load_file(path);
    let mut errors: Vec<WaiverError> = loaded
        .errors
        .iter()
        .map(|e| WaiverError {
            file: file.clone(),
            line: e.line,
            message: e.message.clone(),
        })
        .collect();
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let lines = item_lines(&raw);
    let mut waivers = Vec::new();
    for doc in &loaded.documents {
        let err = |line: usize, message: String| WaiverError {
            file: file.clone(),
            line,
            message,
        };
        if doc.api_version() != API_VERSION || doc.kind() != "WaiverList" {
            errors.push(err(
                doc.line,
                format!("not a waiver list: expected apiVersion {API_VERSION} and kind WaiverList"),
            ));
            continue;
        }
        let Some(items) = doc.object.get("waivers").and_then(Value::as_array) else {
            errors.push(err(doc.line, "`waivers` must be a list".into()));
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let line = lines.get(i).copied().unwrap_or(doc.line);
            let mut problems = Vec::new();
            let constraint = text(item, "constraint");
            let reason = text(item, "reason");
            let owner = text(item, "owner");
            let expires_raw = text(item, "expires");
            for (field, value) in [
                ("constraint", &constraint),
                ("reason", &reason),
                ("owner", &owner),
                ("expires", &expires_raw),
            ] {
                if value.is_none() {
                    problems.push(format!("`{field}` is required"));
                }
            }
            let expires = expires_raw.as_deref().and_then(parse_date);
            if expires_raw.is_some() && expires.is_none() {
                problems.push("`expires` must be a date YYYY-MM-DD".into());
            }
            let m = item.get("match").cloned().unwrap_or(Value::Null);
            if !m.is_null() && !m.is_object() {
                problems.push("`match` must be a mapping".into());
            }
            let known = ["apiVersion", "kind", "namespace", "name"];
            if let Some(map) = m.as_object() {
                for key in map.keys() {
                    if !known.contains(&key.as_str()) {
                        problems.push(format!(
                            "`match.{key}` is not one of apiVersion, kind, namespace, name"
                        ));
                    }
                }
            }
            if constraint.as_deref() == Some("*") && m.as_object().is_none_or(|o| o.is_empty()) {
                problems.push("a waiver of every constraint must match specific objects".into());
            }
            match (constraint, reason, owner, expires, problems.is_empty()) {
                (Some(constraint), Some(reason), Some(owner), Some(expires), true) => {
                    waivers.push(Waiver {
                        constraint,
                        api_version: text(&m, "apiVersion"),
                        kind: text(&m, "kind"),
                        namespace: text(&m, "namespace"),
                        name: text(&m, "name"),
                        reason,
                        owner,
                        expires,
                        file: file.clone(),
                        line,
                    })
                }
                _ => errors.push(err(line, format!("waivers[{i}]: {}", problems.join("; ")))),
            }
        }
    }
    (waivers, errors)
}

/// Turns waived violations into `info` findings, and adds a finding for each expired waiver
/// (whose violations count again).
pub fn apply(findings: Vec<Finding>, waivers: &[Waiver], today: Date) -> Vec<Finding> {
    let mut out = waive(findings, waivers, today);
    out.extend(expired(waivers, today));
    out.sort();
    out
}

/// Turns the violations that a waiver in force on `today` covers into `info` findings.
pub fn waive(findings: Vec<Finding>, waivers: &[Waiver], today: Date) -> Vec<Finding> {
    let active: Vec<&Waiver> = waivers.iter().filter(|w| w.expires >= today).collect();
    findings
        .into_iter()
        .map(|mut f| {
            let waiver = match (&f.policy, &f.object, f.severity) {
                (Some(p), Some(o), Severity::Deny | Severity::Warn) => {
                    active.iter().find(|w| w.covers(&p.kind, &p.constraint, o))
                }
                _ => None,
            };
            if let Some(w) = waiver {
                f.message = format!(
                    "{} [waived until {} by {}: {}]",
                    f.message, w.expires, w.owner, w.reason
                );
                f.severity = Severity::Info;
                f.action = Some(Action::Waived);
            }
            f
        })
        .collect()
}

/// A finding for each waiver that expired before `today`.
pub fn expired(waivers: &[Waiver], today: Date) -> Vec<Finding> {
    waivers
        .iter()
        .filter(|w| w.expires < today)
        .map(|w| {
            Finding::new(
                Severity::Deny,
                Code::ExpiredWaiver,
                format!(
                    "waiver of {} owned by {} expired on {}; renew it with a new date or fix the violations",
                    w.constraint, w.owner, w.expires
                ),
            )
            .at(w.file.clone(), w.line, 0)
        })
        .collect()
}

/// Waiver errors as findings (exit 2).
pub fn error_findings(errors: &[WaiverError]) -> Vec<Finding> {
    errors
        .iter()
        .map(|e| {
            Finding::new(Severity::Error, Code::InvalidWaiver, e.message.clone()).at(
                e.file.clone(),
                e.line,
                0,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
