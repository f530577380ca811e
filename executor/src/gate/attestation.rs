//! Attestations: a `validator check --format json` report whose digests must match the
//! manifests being applied and the policy set in use, and whose result must be clean.

use std::path::Path;

use serde::Deserialize;
use validator::args::exit;
use validator::digest::{Attestation, ObjectDigest};
use validator::manifest::{Document, Loaded};
use validator::report::Summary;

use super::Decision;
use crate::exit::ExitStatus;

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("cannot read the attestation {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a JSON report of `validator check --format json` with an attestation: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Report {
    summary: Counts,
    attestation: Attestation,
}

#[derive(Deserialize)]
struct Counts {
    objects: usize,
    errors: usize,
    deny: usize,
    warn: usize,
    info: usize,
}

fn describe(d: &ObjectDigest) -> String {
    if d.namespace.is_empty() {
        format!("{} {}", d.kind, d.name)
    } else {
        format!("{} {}/{}", d.kind, d.namespace, d.name)
    }
}

/// What differs between an attestation and what is checked now (empty: they match).
pub fn compare(attested: &Attestation, now: &Attestation) -> Vec<String> {
    let mut problems = Vec::new();
    if attested.policy_set != now.policy_set {
        problems.push(format!(
            "the policy set differs: attested {}, in use {}",
            attested.policy_set, now.policy_set
        ));
    }
    let same = |a: &ObjectDigest, b: &ObjectDigest| {
        a.api_version == b.api_version
            && a.kind == b.kind
            && a.namespace == b.namespace
            && a.name == b.name
    };
    for o in &now.objects {
        match attested.objects.iter().find(|a| same(a, o)) {
            None => problems.push(format!("{}: not in the attestation", describe(o))),
            Some(a) if a.digest != o.digest => problems.push(format!(
                "{}: changed since it was checked (attested {}, now {})",
                describe(o),
                a.digest,
                o.digest
            )),
            Some(_) => {}
        }
    }
    for a in &attested.objects {
        if !now.objects.iter().any(|o| same(a, o)) {
            problems.push(format!(
                "{}: attested but not in the manifests",
                describe(a)
            ));
        }
    }
    problems
}

/// Verifies an attestation file against the loaded manifests and policies.
pub fn verify(
    path: &Path,
    inputs: &[Document],
    policies: &Loaded,
    fail_on_warn: bool,
) -> Result<Decision, AttestationError> {
    let text = std::fs::read_to_string(path).map_err(|source| AttestationError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(|source| AttestationError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    let now = Attestation::of(inputs, &policies.documents);
    let mut refusal = compare(&report.attestation, &now);
    let c = &report.summary;
    let summary = Summary {
        objects: c.objects,
        errors: c.errors,
        deny: c.deny,
        warn: c.warn,
        info: c.info,
    };
    let code = validator::args::exit_code(&summary, fail_on_warn);
    if code != exit::OK {
        refusal.push(format!(
            "the attested check did not pass: {} errors, {} deny, {} warn",
            summary.errors, summary.deny, summary.warn
        ));
    }
    let exit = if refusal.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Refused
    };
    Ok(Decision {
        findings: Vec::new(),
        summary,
        exit,
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(kind: &str, name: &str, d: &str) -> ObjectDigest {
        ObjectDigest {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
            digest: d.into(),
        }
    }

    #[test]
    fn every_difference_is_named() {
        let attested = Attestation {
            policy_set: "sha256:a".into(),
            objects: vec![
                digest("ConfigMap", "a", "sha256:1"),
                digest("ConfigMap", "gone", "sha256:2"),
            ],
        };
        let now = Attestation {
            policy_set: "sha256:b".into(),
            objects: vec![
                digest("ConfigMap", "a", "sha256:9"),
                digest("Service", "new", "sha256:3"),
            ],
        };
        let problems = compare(&attested, &now);
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("the policy set differs"));
        assert!(problems[1].starts_with("ConfigMap shop/a: changed since it was checked"));
        assert!(problems[2].starts_with("Service shop/new: not in the attestation"));
        assert!(problems[3].starts_with("ConfigMap shop/gone: attested but not in the manifests"));
        assert!(compare(&attested, &attested).is_empty());
    }
}
