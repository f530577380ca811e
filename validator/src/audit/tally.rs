//! What an audit found, gathered batch by batch: every violation counted per constraint, the
//! first `limit` of each kept (in report order, whatever order the batches come in), and every
//! other finding kept once. Memory grows with the constraints and the limit, not with the
//! objects audited.

use std::collections::{BTreeMap, BTreeSet};

use crate::report::{Action, Code, Finding, Summary};

/// One constraint's violations: how many, and the first ones in report order.
#[derive(Debug, Default)]
pub struct Group {
    pub total: usize,
    /// Its action, from the first violation seen.
    pub action: Option<Action>,
    pub shown: BTreeSet<Finding>,
}

#[derive(Debug)]
pub struct Tally {
    limit: usize,
    /// Objects audited.
    pub objects: usize,
    /// (review, constraint) pairs evaluated.
    pub evaluations: usize,
    /// Violations by (template kind, constraint name).
    pub groups: BTreeMap<(String, String), Group>,
    /// Counts of the violations, by severity.
    violations: Summary,
    /// Every finding that is not a violation.
    others: BTreeSet<Finding>,
}

impl Tally {
    /// A tally that keeps at most `limit` violations per constraint.
    pub fn new(limit: usize) -> Tally {
        Tally {
            limit,
            objects: 0,
            evaluations: 0,
            groups: BTreeMap::new(),
            violations: Summary::default(),
            others: BTreeSet::new(),
        }
    }

    /// Adds findings. A batch's violations are counted as they are (the batches are disjoint
    /// sets of objects); other findings are kept once however often they come.
    pub fn add(&mut self, findings: impl IntoIterator<Item = Finding>) {
        for f in findings {
            let (Code::PolicyViolation, Some(policy)) = (f.code, &f.policy) else {
                self.others.insert(f);
                continue;
            };
            self.violations.count(f.severity);
            let group = self
                .groups
                .entry((policy.kind.clone(), policy.constraint.clone()))
                .or_default();
            if group.total == 0 {
                group.action = f.action.clone();
            }
            group.total += 1;
            if group.shown.len() < self.limit {
                group.shown.insert(f);
            } else if group.shown.last().is_some_and(|last| f < *last) {
                group.shown.pop_last();
                group.shown.insert(f);
            }
        }
    }

    /// The counts of every finding, violations included.
    pub fn summary(&self) -> Summary {
        let mut s = self.violations;
        s.objects = self.objects;
        for f in &self.others {
            s.count(f.severity);
        }
        s
    }

    /// The findings to render: the kept violations and every other finding, in report order.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self
            .groups
            .values()
            .flat_map(|g| g.shown.iter().cloned())
            .chain(self.others.iter().cloned())
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::EnforcementAction;
    use crate::report::{PolicyRef, Severity};

    fn violation(object: &str, constraint: &str) -> Finding {
        Finding::new(
            Severity::Deny,
            Code::PolicyViolation,
            format!("{object} breaks it"),
        )
        .at(format!("cluster:v1/Pod/shop/{object}"), 0, 0)
        .of_policy(
            PolicyRef {
                kind: "K8sRequiredLabels".into(),
                constraint: constraint.into(),
            },
            Some(Action::Enforcement(EnforcementAction::Deny)),
        )
    }

    #[test]
    fn violations_are_counted_and_the_first_kept_whatever_the_batch_order() {
        let note = Finding::new(Severity::Info, Code::Note, "listed late").at("cluster:", 0, 0);
        let mut forward = Tally::new(2);
        let mut backward = Tally::new(2);
        let batches: Vec<Vec<Finding>> = (0..5)
            .map(|i| vec![violation(&format!("web-{i}"), "owner"), note.clone()])
            .collect();
        for b in &batches {
            forward.add(b.clone());
        }
        for b in batches.iter().rev() {
            backward.add(b.clone());
        }
        for tally in [&forward, &backward] {
            let group = &tally.groups[&("K8sRequiredLabels".to_string(), "owner".to_string())];
            assert_eq!(group.total, 5);
            assert_eq!(
                group.action,
                Some(Action::Enforcement(EnforcementAction::Deny))
            );
            let files: Vec<&str> = group.shown.iter().map(|f| f.file.as_str()).collect();
            assert_eq!(
                files,
                ["cluster:v1/Pod/shop/web-0", "cluster:v1/Pod/shop/web-1"]
            );
            let summary = tally.summary();
            assert_eq!((summary.deny, summary.info), (5, 1));
            assert_eq!(tally.findings().len(), 3);
        }
    }
}
