//! The impact of a policy change on what runs: which objects fail with the policies and passed
//! with the `--compare-to` set (newly failing), and which failed with it and pass now (newly
//! passing).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::{Code, Finding, ObjectRef, Severity};

/// A violation that makes an object fail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Failure {
    /// `TemplateKind/constraint`.
    pub policy: String,
    #[serde(rename = "enforcementAction")]
    pub action: String,
    pub message: String,
}

/// An object whose verdict changed, with the violations that make the difference (those of
/// the failing side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub object: ObjectRef,
    pub violations: Vec<Failure>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Impact {
    #[serde(rename = "newlyFailing")]
    pub newly_failing: Vec<Change>,
    #[serde(rename = "newlyPassing")]
    pub newly_passing: Vec<Change>,
}

impl Impact {
    /// Adds the changes of another batch of objects.
    pub fn extend(&mut self, other: Impact) {
        self.newly_failing.extend(other.newly_failing);
        self.newly_passing.extend(other.newly_passing);
    }

    /// Puts the changes in object order.
    pub fn sort(&mut self) {
        self.newly_failing.sort_by(|a, b| a.object.cmp(&b.object));
        self.newly_passing.sort_by(|a, b| a.object.cmp(&b.object));
    }
}

/// The failing objects of a run and their failing violations: deny, and warn too when
/// `fail_on_warn`.
fn failing(findings: &[Finding], fail_on_warn: bool) -> BTreeMap<&ObjectRef, Vec<Failure>> {
    let mut out: BTreeMap<&ObjectRef, Vec<Failure>> = BTreeMap::new();
    for f in findings {
        let fails = f.severity == Severity::Deny || (fail_on_warn && f.severity == Severity::Warn);
        if f.code != Code::PolicyViolation || !fails {
            continue;
        }
        let (Some(object), Some(policy)) = (&f.object, &f.policy) else {
            continue;
        };
        out.entry(object).or_default().push(Failure {
            policy: format!("{}/{}", policy.kind, policy.constraint),
            action: f
                .action
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            message: f.message.clone(),
        });
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup();
    }
    out
}

/// Compares the findings with the policies (`current`) against those with the other set
/// (`baseline`).
pub fn compare(current: &[Finding], baseline: &[Finding], fail_on_warn: bool) -> Impact {
    let now = failing(current, fail_on_warn);
    let before = failing(baseline, fail_on_warn);
    let changes = |a: &BTreeMap<&ObjectRef, Vec<Failure>>,
                   b: &BTreeMap<&ObjectRef, Vec<Failure>>| {
        a.iter()
            .filter(|(object, _)| !b.contains_key(*object))
            .map(|(object, violations)| Change {
                object: (*object).clone(),
                violations: violations.clone(),
            })
            .collect()
    };
    Impact {
        newly_failing: changes(&now, &before),
        newly_passing: changes(&before, &now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::EnforcementAction;
    use crate::report::{Action, PolicyRef};

    fn violation(name: &str, constraint: &str, severity: Severity) -> Finding {
        Finding {
            file: format!("cluster:v1/Pod/shop/{name}"),
            line: 0,
            column: 0,
            rendered_line: None,
            severity,
            code: Code::PolicyViolation,
            policy: Some(PolicyRef {
                kind: "K8sRequiredLabels".into(),
                constraint: constraint.into(),
            }),
            action: Some(Action::Enforcement(match severity {
                Severity::Deny => EnforcementAction::Deny,
                Severity::Warn => EnforcementAction::Warn,
                _ => EnforcementAction::Dryrun,
            })),
            object: Some(ObjectRef {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "shop".into(),
                name: name.into(),
            }),
            message: format!("{name} breaks {constraint}"),
        }
    }

    #[test]
    fn objects_that_start_or_stop_failing_are_reported_with_their_violations() {
        let baseline = vec![
            violation("old", "owner", Severity::Deny),
            violation("both", "owner", Severity::Deny),
            violation("warned", "team", Severity::Warn),
        ];
        let current = vec![
            violation("both", "team", Severity::Deny),
            violation("new", "team", Severity::Deny),
            violation("new", "owner", Severity::Deny),
            violation("dry", "team", Severity::Info),
        ];
        let impact = compare(&current, &baseline, false);
        let names = |c: &[Change]| c.iter().map(|c| c.object.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&impact.newly_failing), ["new"]);
        assert_eq!(impact.newly_failing[0].violations.len(), 2);
        assert_eq!(names(&impact.newly_passing), ["old"]);
        assert_eq!(
            impact.newly_passing[0].violations[0].policy,
            "K8sRequiredLabels/owner"
        );
        // With --fail-on-warn a warned object failed before.
        let strict = compare(&current, &baseline, true);
        assert_eq!(names(&strict.newly_passing), ["old", "warned"]);
        assert_eq!(compare(&current, &current, true), Impact::default());
    }
}
