//! Findings (violations and errors as data) and their renderers: human, json, sarif, junit, github.

mod github;
mod human;
mod json;
mod junit;
mod sarif;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::policy::EnforcementAction;

pub use human::render as human;
pub use json::render as json;
pub use json::render_attested as json_attested;
pub(crate) use junit::to_xml as junit_xml;

/// How much a finding matters. Ordered from most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The input, a policy, or an evaluation is broken (exit 2).
    Error,
    /// A deny violation (exit 1).
    Deny,
    /// A warn violation (exit 1 only with --fail-on-warn).
    Warn,
    /// A dryrun violation or a note; never fails the run.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Deny => "deny",
            Severity::Warn => "warn",
            Severity::Info => "info",
        }
    }
}

impl Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Stable codes, one per kind of finding; [`Code::as_str`] names them (in every format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// A constraint's violation.
    PolicyViolation,
    /// An input that cannot be read as Kubernetes objects.
    InvalidInput,
    /// A template, constraint or expansion that cannot be used.
    InvalidPolicy,
    /// Rego failed while evaluating an object.
    EvaluationError,
    /// An object that does not conform to its schema.
    SchemaViolation,
    /// An object whose kind has no schema (a warning, or an error with --require-schemas).
    MissingSchema,
    /// An informational note about the run.
    Note,
    /// A waiver past its expiry date.
    ExpiredWaiver,
    /// A waiver file that cannot be used.
    InvalidWaiver,
    /// An audit annotation a ValidatingAdmissionPolicy recorded for an object.
    AuditAnnotation,
    /// The inputs held no Kubernetes object to check.
    NoObjects,
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::PolicyViolation => "policy-violation",
            Code::InvalidInput => "invalid-input",
            Code::InvalidPolicy => "invalid-policy",
            Code::EvaluationError => "evaluation-error",
            Code::SchemaViolation => "schema-violation",
            Code::MissingSchema => "missing-schema",
            Code::Note => "note",
            Code::ExpiredWaiver => "expired-waiver",
            Code::InvalidWaiver => "invalid-waiver",
            Code::AuditAnnotation => "audit-annotation",
            Code::NoObjects => "no-objects",
        }
    }
    pub fn description(self) -> &'static str {
        match self {
            Code::PolicyViolation => "An object violates a Gatekeeper constraint",
            Code::InvalidInput => "An input cannot be read as Kubernetes objects",
            Code::InvalidPolicy => {
                "A ConstraintTemplate, Constraint or ExpansionTemplate cannot be used"
            }
            Code::EvaluationError => "A policy failed while evaluating an object",
            Code::SchemaViolation => "An object does not conform to its Kubernetes schema",
            Code::MissingSchema => "No schema is known for an object's kind",
            Code::Note => "A note about the run",
            Code::ExpiredWaiver => "A policy waiver is past its expiry date",
            Code::InvalidWaiver => "A waiver file cannot be used",
            Code::AuditAnnotation => "A ValidatingAdmissionPolicy recorded an audit annotation",
            Code::NoObjects => "The inputs held no Kubernetes object to check",
        }
    }
}

/// The constraint a violation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PolicyRef {
    /// Template kind, e.g. `K8sRequiredProbes`.
    pub kind: String,
    /// Constraint name.
    pub constraint: String,
}

/// The Kubernetes object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The object of a document, as findings name it.
    pub fn of(doc: &crate::manifest::Document) -> ObjectRef {
        ObjectRef {
            api_version: doc.api_version().to_string(),
            kind: doc.kind().to_string(),
            namespace: doc.namespace().to_string(),
            name: doc.name().to_string(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What the constraint or binding of a finding does about it: `enforcementAction` in reports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// A constraint's enforcement action: `deny`, `warn` or `dryrun`.
    Enforcement(EnforcementAction),
    /// Waived by a waiver file: `waived`.
    Waived,
    /// A ValidatingAdmissionPolicy binding's `validationActions`, lower-case and joined with
    /// `,` (e.g. `deny,audit`).
    Binding(Vec<crate::vap::Action>),
}

impl Action {
    /// The order of the variants among actions of the same name.
    fn rank(&self) -> u8 {
        match self {
            Action::Enforcement(_) => 0,
            Action::Waived => 1,
            Action::Binding(_) => 2,
        }
    }
}

impl From<EnforcementAction> for Action {
    fn from(action: EnforcementAction) -> Action {
        Action::Enforcement(action)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Enforcement(a) => f.write_str(a.as_str()),
            Action::Waived => f.write_str("waived"),
            Action::Binding(actions) => {
                for (i, a) in actions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(a.as_str())?;
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// By name, as findings are sorted.
impl Ord for Action {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string()
            .cmp(&other.to_string())
            .then_with(|| self.rank().cmp(&other.rank()))
    }
}

impl PartialOrd for Action {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One thing the user should know: a violation, an error, or a note.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// For objects rendered from a Helm chart: the line in `helm template`'s output.
    #[serde(rename = "renderedLine", skip_serializing_if = "Option::is_none")]
    pub rendered_line: Option<usize>,
    pub severity: Severity,
    pub code: Code,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// For violations: the constraint's enforcement action, the binding's actions, or waived.
    #[serde(rename = "enforcementAction", skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    pub message: String,
}

impl Finding {
    /// A finding with its severity, code and message, not yet tied to a place, a constraint or
    /// an object (see [`Finding::at`], [`Finding::of_policy`], [`Finding::about`]).
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Finding {
        Finding {
            file: String::new(),
            line: 0,
            column: 0,
            rendered_line: None,
            severity,
            code,
            policy: None,
            action: None,
            object: None,
            message: message.into(),
        }
    }

    /// At `file:line:column` (column 0: unknown).
    pub fn at(mut self, file: impl Into<String>, line: usize, column: usize) -> Finding {
        self.file = file.into();
        self.line = line;
        self.column = column;
        self
    }

    /// With the line of the object in `helm template`'s output, for objects from a chart.
    pub fn rendered_at(mut self, rendered_line: Option<usize>) -> Finding {
        self.rendered_line = rendered_line;
        self
    }

    /// Of the constraint (or binding) `policy`, with its action.
    pub fn of_policy(mut self, policy: PolicyRef, action: Option<Action>) -> Finding {
        self.policy = Some(policy);
        self.action = action;
        self
    }

    /// About the object `object`.
    pub fn about(mut self, object: ObjectRef) -> Finding {
        self.object = Some(object);
        self
    }

    pub fn location(&self) -> String {
        let mut s = if self.file.is_empty() {
            String::new()
        } else if self.column > 0 {
            format!("{}:{}:{}", self.file, self.line, self.column)
        } else {
            format!("{}:{}", self.file, self.line)
        };
        if let Some(r) = self.rendered_line {
            s.push_str(&format!(", rendered line {r}"));
        }
        s
    }
}

/// Counts by severity, and what they mean for the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub objects: usize,
    pub errors: usize,
    pub deny: usize,
    pub warn: usize,
    pub info: usize,
}

impl Summary {
    pub fn of(findings: &[Finding], objects: usize) -> Self {
        let mut s = Summary {
            objects,
            ..Summary::default()
        };
        for f in findings {
            s.count(f.severity);
        }
        s
    }

    /// Counts one finding of `severity`.
    pub fn count(&mut self, severity: Severity) {
        match severity {
            Severity::Error => self.errors += 1,
            Severity::Deny => self.deny += 1,
            Severity::Warn => self.warn += 1,
            Severity::Info => self.info += 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
    Sarif,
    Junit,
    Github,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            "junit" => Ok(Format::Junit),
            "github" => Ok(Format::Github),
            other => Err(format!(
                "unknown format `{other}`; use human, json, sarif, junit or github"
            )),
        }
    }
}

/// Renders findings in a format. `colour` applies to the human format only.
pub fn render(format: Format, findings: &[Finding], summary: &Summary, colour: bool) -> String {
    match format {
        Format::Human => human::render(findings, summary, colour),
        Format::Json => json::render(findings, summary),
        Format::Sarif => sarif::render(findings),
        Format::Junit => junit::render(findings, summary),
        Format::Github => github::render(findings, summary),
    }
}

/// A Markdown summary for CI job summaries: verdict, counts, and the findings that matter.
pub fn markdown_summary(findings: &[Finding], summary: &Summary) -> String {
    use std::fmt::Write;
    let verdict = if summary.errors > 0 {
        "errors"
    } else if summary.deny > 0 {
        "failed"
    } else {
        "passed"
    };
    let mut out = format!("## Policy check: {verdict}\n\n");
    let _ = writeln!(
        out,
        "| objects | deny | warn | info | errors |\n| ---: | ---: | ---: | ---: | ---: |"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} |\n",
        summary.objects, summary.deny, summary.warn, summary.info, summary.errors
    );
    let shown: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .collect();
    if !shown.is_empty() {
        out.push_str("| severity | policy | object | location | message |\n| --- | --- | --- | --- | --- |\n");
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        for f in shown.iter().take(100) {
            let object = f
                .object
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | `{}` | {} |",
                f.severity.as_str(),
                cell(&rule_id(f)),
                cell(&object),
                cell(&f.location()),
                cell(&f.message)
            );
        }
        if shown.len() > 100 {
            let _ = writeln!(
                out,
                "\n{} more not shown; see the full report.",
                shown.len() - 100
            );
        }
    }
    out
}

/// `Kind/constraint` or the finding's code when it has no policy.
pub(crate) fn rule_id(f: &Finding) -> String {
    match &f.policy {
        Some(p) => format!("{}/{}", p.kind, p.constraint),
        None => f.code.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests;
