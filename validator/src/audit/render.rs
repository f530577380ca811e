//! Audit reports. Violations are grouped per constraint with Gatekeeper's totals
//! (`totalViolations`) and at most `--constraint-violations-limit` examples each; the human and
//! json formats show the groups, and every `check` format renders the capped findings.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;
use serde_json::json;

use super::impact::Impact;
use super::{Audit, KindStatus};
use crate::report::{self, Code, Finding, Format, Severity, Summary};

/// One constraint's totals, as Gatekeeper writes them into the constraint's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstraintTotals {
    /// Template kind, e.g. `K8sRequiredLabels`.
    pub kind: String,
    pub name: String,
    #[serde(rename = "enforcementAction")]
    pub action: String,
    #[serde(rename = "totalViolations")]
    pub total: usize,
    /// The first violations (by object), at most the limit.
    pub violations: Vec<Example>,
}

/// A violation as a constraint's status lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub message: String,
    #[serde(rename = "enforcementAction")]
    pub action: String,
}

/// A violation finding as a constraint's status lists it.
fn example(f: &Finding) -> Example {
    let object = f.object.clone().unwrap_or_else(|| report::ObjectRef {
        api_version: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
    });
    let (g, v) = crate::review::group_version(&object.api_version);
    Example {
        group: g.to_string(),
        version: v.to_string(),
        kind: object.kind,
        namespace: object.namespace,
        name: object.name,
        message: f.message.clone(),
        action: f
            .action
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// Everything an audit report shows.
pub struct Report<'a> {
    pub summary: Summary,
    pub constraints: Vec<ConstraintTotals>,
    /// The findings with at most `limit` violations per constraint.
    pub findings: Vec<Finding>,
    pub kinds: &'a [KindStatus],
    pub impact: Option<Impact>,
    pub limit: usize,
}

impl<'a> Report<'a> {
    pub fn of(audit: &'a Audit, limit: usize) -> Report<'a> {
        let tally = &audit.tally;
        let mut groups: BTreeMap<(String, String), ConstraintTotals> = audit
            .constraints
            .iter()
            .map(|(kind, name, action)| {
                (
                    (kind.clone(), name.clone()),
                    ConstraintTotals {
                        kind: kind.clone(),
                        name: name.clone(),
                        action: action.to_string(),
                        total: 0,
                        violations: Vec::new(),
                    },
                )
            })
            .collect();
        for ((kind, name), group) in &tally.groups {
            let totals = groups
                .entry((kind.clone(), name.clone()))
                .or_insert_with(|| ConstraintTotals {
                    kind: kind.clone(),
                    name: name.clone(),
                    action: group
                        .action
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    total: 0,
                    violations: Vec::new(),
                });
            totals.total = group.total;
            totals.violations = group.shown.iter().map(example).collect();
        }
        Report {
            summary: tally.summary(),
            constraints: groups.into_values().collect(),
            findings: tally.findings(),
            kinds: &audit.kinds,
            impact: audit.impact.clone(),
            limit,
        }
    }

    /// The report in `format`, in colour when `colour` (human only).
    pub fn render(&self, format: Format, colour: bool) -> String {
        match format {
            Format::Human => self.human(colour),
            Format::Json => self.json(),
            other => report::render(other, &self.findings, &self.summary, colour),
        }
    }

    fn json(&self) -> String {
        let mut doc = json!({
            "version": 1,
            "summary": self.summary,
            "constraints": self.constraints,
            "kinds": self.kinds,
            "findings": self.findings,
        });
        if let Some(impact) = &self.impact {
            doc["impact"] = json!(impact);
        }
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string());
        s.push('\n');
        s
    }

    fn human(&self, colour: bool) -> String {
        let paint = |text: &str, code: &str| {
            if colour {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let label = |s: Severity| match s {
            Severity::Error => paint("error", "1;31"),
            Severity::Deny => paint("deny", "31"),
            Severity::Warn => paint("warn", "33"),
            Severity::Info => paint("info", "36"),
        };
        let mut out = String::new();
        let mut violated = 0;
        for c in self.constraints.iter().filter(|c| c.total > 0) {
            violated += 1;
            let _ = writeln!(
                out,
                "{}/{} ({}): {} violation{}",
                c.kind,
                c.name,
                c.action,
                c.total,
                if c.total == 1 { "" } else { "s" }
            );
            for v in &c.violations {
                let object = if v.namespace.is_empty() {
                    format!("{}/{}", v.kind, v.name)
                } else {
                    format!("{}/{}/{}", v.kind, v.namespace, v.name)
                };
                let _ = writeln!(out, "  {object}: {}", v.message);
            }
            if c.total > c.violations.len() {
                let _ = writeln!(
                    out,
                    "  ... {} more not shown (--constraint-violations-limit {})",
                    c.total - c.violations.len(),
                    self.limit
                );
            }
        }
        for f in self
            .findings
            .iter()
            .filter(|f| f.code != Code::PolicyViolation)
        {
            let mut line = label(f.severity);
            match &f.policy {
                Some(p) => {
                    let _ = write!(line, " [{}/{}]", p.kind, p.constraint);
                }
                None => {
                    let _ = write!(line, " [{}]", f.code.as_str());
                }
            }
            if let Some(o) = &f.object {
                let _ = write!(line, " {o}");
            } else if !f.file.is_empty() && f.file != "cluster:" {
                let _ = write!(line, " ({})", f.file.trim_start_matches("cluster:"));
            }
            let _ = writeln!(out, "{line}: {}", f.message);
        }
        if let Some(impact) = &self.impact {
            for (title, changes) in [
                ("newly failing", &impact.newly_failing),
                ("newly passing", &impact.newly_passing),
            ] {
                let _ = writeln!(
                    out,
                    "{title} against --compare-to: {} object{}",
                    changes.len(),
                    if changes.len() == 1 { "" } else { "s" }
                );
                for change in changes {
                    for v in &change.violations {
                        let _ = writeln!(out, "  {} [{}]: {}", change.object, v.policy, v.message);
                    }
                }
            }
        }
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|k| {
                let name = format!("{}/{}", k.api_version, k.kind);
                match k.status {
                    "listed" => format!("{name} {}", k.objects),
                    status => format!("{name} {} ({status})", k.objects),
                }
            })
            .collect();
        let _ = writeln!(out, "listed: {}", kinds.join(", "));
        let s = &self.summary;
        let verdict = if s.errors > 0 {
            paint("error", "1;31")
        } else if s.deny > 0 {
            paint("failed", "31")
        } else {
            paint("passed", "32")
        };
        let _ = writeln!(
            out,
            "{verdict}: {} objects audited, {} of {} constraints violated, {} deny, {} warn, {} info, {} errors",
            s.objects,
            violated,
            self.constraints.len(),
            s.deny,
            s.warn,
            s.info,
            s.errors
        );
        out
    }
}
