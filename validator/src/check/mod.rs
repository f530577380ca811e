//! `validator check`: load, build the policy set, expand, match, evaluate in parallel, collect findings.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Map, Value};

use crate::engine::{CompileOptions, CompiledTemplate, ExternalDataFn};
use crate::glob::glob_match;
use crate::manifest::{Document, LoadError, Loaded};
use crate::policy::{self, Constraint, EnforcementAction, PolicyError, Set};
use crate::report::{Action, Code, Finding, ObjectRef, PolicyRef, Severity};
use crate::review::{self, RequestInfo, Review};
use crate::schema::{self, Schemas};

/// How a check runs.
#[derive(Clone)]
pub struct Options {
    /// Worker threads; `None` uses every core.
    pub jobs: Option<usize>,
    /// Namespaces (globs) never checked.
    pub exclude_namespaces: Vec<String>,
    /// Show a progress bar on stderr when it is a terminal.
    pub progress: bool,
    /// Answers `external_data` calls; `None` means no provider is configured, and constraints
    /// whose templates call `external_data` are skipped with a note.
    pub external_data: Option<Arc<ExternalDataFn>>,
    /// Schema checks; `None` turns them off.
    pub schemas: Option<schema::Options>,
    /// Evaluate templates that carry CEL with CEL (Gatekeeper's default).
    pub enable_cel: bool,
    /// Policy exceptions; waived violations become information.
    pub waivers: Vec<crate::waiver::Waiver>,
    /// A constraint that calls `external_data` while no provider is configured is an error
    /// (the executor's gate) instead of a note (`check`).
    pub require_external_data: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: None,
            exclude_namespaces: Vec::new(),
            progress: false,
            external_data: None,
            schemas: Some(schema::Options::default()),
            enable_cel: true,
            waivers: Vec::new(),
            require_external_data: false,
        }
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    /// Input objects checked (policy objects excluded).
    pub objects: usize,
    /// (review, constraint) pairs evaluated.
    pub evaluations: usize,
}

pub fn load_error_finding(e: &LoadError) -> Finding {
    Finding::new(Severity::Error, Code::InvalidInput, e.message.clone()).at(
        e.source.to_string(),
        e.line,
        e.column,
    )
}

/// A note about an input skipped on purpose.
pub fn load_note_finding(e: &LoadError) -> Finding {
    Finding {
        severity: Severity::Info,
        code: Code::Note,
        ..load_error_finding(e)
    }
}

/// The finding of a run whose inputs held no object: a warning, or an error when objects are
/// required.
pub fn no_objects_finding(required: bool) -> Finding {
    let (severity, advice) = if required {
        (Severity::Error, "")
    } else {
        (Severity::Warn, "; with --require-objects this is an error")
    };
    Finding::new(
        severity,
        Code::NoObjects,
        format!(
            "no Kubernetes objects found in the inputs, so nothing was checked (an empty stdin often means the command before the pipe failed){advice}"
        ),
    )
}

pub fn policy_error_finding(e: &PolicyError) -> Finding {
    Finding::new(
        Severity::Error,
        Code::InvalidPolicy,
        format!("{}: {}", e.subject, e.message),
    )
    .at(e.file.to_string(), e.line, 0)
}

/// Templates compiled against one inventory, by constraint kind, plus the errors found.
pub struct Compiled {
    pub templates: BTreeMap<String, CompiledTemplate>,
    pub findings: Vec<Finding>,
}

/// Compiles every template of the set (in parallel); a template that fails is reported and left out.
pub fn compile_set(set: &Set, inventory: &regorus::Value, options: &CompileOptions) -> Compiled {
    let results: Vec<_> = set
        .templates
        .par_iter()
        .map(|(kind, t)| (kind, t, CompiledTemplate::compile(t, inventory, options)))
        .collect();
    let mut templates = BTreeMap::new();
    let mut findings = Vec::new();
    for (kind, t, result) in results {
        match result {
            Ok(Some(c)) => {
                templates.insert(kind.clone(), c);
            }
            Ok(None) => findings.push(
                Finding::new(
                    Severity::Info,
                    Code::Note,
                    format!(
                        "ConstraintTemplate {} has no Rego code and CEL is disabled (--enable-cel=false); its constraints are skipped",
                        t.name
                    ),
                )
                .at(t.source.to_string(), t.line, 0),
            ),
            Err(e) => {
                let (line, column) = match &e {
                    crate::engine::EngineError::Compile { at: Some(at), .. } => *at,
                    _ => (t.line, 0),
                };
                findings.push(
                    Finding::new(Severity::Error, Code::InvalidPolicy, e.to_string()).at(
                        t.source.to_string(),
                        line,
                        column,
                    ),
                )
            }
        }
    }
    Compiled {
        templates,
        findings,
    }
}

/// The severity a violation gets from its enforcement action.
pub fn severity_of(action: EnforcementAction) -> Severity {
    match action {
        EnforcementAction::Deny => Severity::Deny,
        EnforcementAction::Warn => Severity::Warn,
        EnforcementAction::Dryrun => Severity::Info,
    }
}

/// Evaluates one review against the matching constraints, with per-worker engines.
pub fn evaluate_review(
    review: &Review,
    constraints: &[(&Constraint, regorus::Value)],
    templates: &BTreeMap<String, CompiledTemplate>,
    namespace_labels: &BTreeMap<String, Map<String, Value>>,
    engines: &mut HashMap<String, CompiledTemplate>,
    mut emit: impl FnMut(&Constraint, Result<Vec<crate::engine::Violation>, crate::engine::EngineError>),
) -> usize {
    let ns_labels = review.namespace_labels(namespace_labels);
    let target = review.target(ns_labels);
    let mut evaluations = 0;
    for (constraint, parameters) in constraints {
        if !constraint.matcher.matches(&target) {
            continue;
        }
        let Some(template) = templates.get(&constraint.kind) else {
            continue;
        };
        let engine = engines
            .entry(constraint.kind.clone())
            .or_insert_with(|| template.clone());
        evaluations += 1;
        emit(
            constraint,
            engine.evaluate(&review.input, parameters, &constraint.name),
        );
    }
    evaluations
}

/// Runs a check over loaded inputs with the given policy documents (embedded and `--policies`).
pub fn run(input: Loaded, policy_docs: &[Document], options: &Options) -> Outcome {
    run_with_request(input, policy_docs, options, &RequestInfo::default())
}

/// Runs a check as [`run`] does, with every object reviewed as part of `request` (the
/// operation and user that `input.review` carries).
pub fn run_with_request(
    input: Loaded,
    policy_docs: &[Document],
    options: &Options,
    request: &RequestInfo,
) -> Outcome {
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(options.jobs.unwrap_or(0))
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            return Outcome {
                findings: vec![Finding::new(
                    Severity::Error,
                    Code::EvaluationError,
                    format!("cannot start worker threads: {e}"),
                )],
                ..Outcome::default()
            }
        }
    };
    pool.install(|| run_in_pool(input, policy_docs, options, request))
}

fn run_in_pool(
    input: Loaded,
    policy_docs: &[Document],
    options: &Options,
    request: &RequestInfo,
) -> Outcome {
    let mut findings: Vec<Finding> = input.errors.iter().map(load_error_finding).collect();
    findings.extend(input.notes.iter().map(load_note_finding));
    let (input_policies, resources): (Vec<Document>, Vec<Document>) = input
        .documents
        .into_iter()
        .partition(policy::is_policy_document);
    // Each object is converted for the engine once; the inventory and its reviews share it.
    let converted: Vec<regorus::Value> = resources
        .par_iter()
        .map(|d| crate::engine::to_rego(&d.object))
        .collect();
    let inventory = review::inventory_of(
        resources
            .iter()
            .map(|d| &d.object)
            .zip(converted.iter().cloned()),
    );
    let prepared = Prepared::new(
        policy_docs.iter().chain(input_policies.iter()),
        &resources,
        &inventory,
        options,
        request,
    );
    findings.extend(prepared.findings.iter().cloned());
    if let Some(schema_options) = &options.schemas {
        findings.extend(schema_findings(
            schema_options,
            &resources,
            &input_policies,
            &|ns| excluded(options, ns),
        ));
    }
    let (more, evaluations) = prepared.evaluate_converted(&resources, &converted);
    findings.extend(more);
    findings.sort();
    findings.dedup();
    if !options.waivers.is_empty() {
        findings = crate::waiver::apply(findings, &options.waivers, crate::waiver::today());
    }
    Outcome {
        findings,
        objects: resources.len(),
        evaluations,
    }
}

/// Whether `--exclude-namespace` leaves out objects of namespace `ns`.
fn excluded(options: &Options, ns: Option<&str>) -> bool {
    ns.is_some_and(|ns| options.exclude_namespaces.iter().any(|p| glob_match(p, ns)))
}

/// A policy set made ready to evaluate objects: its templates compiled against one
/// `data.inventory`, the constraints that can run, and the objects that namespace selectors and
/// ValidatingAdmissionPolicy params read (`context`). `check` evaluates its inputs in one batch;
/// `audit` evaluates the cluster page by page against the same preparation.
pub struct Prepared<'a> {
    set: Set,
    vap_set: crate::vap::Set,
    templates: BTreeMap<String, CompiledTemplate>,
    /// Indices into `set.constraints` of the constraints that can run, with their parameters.
    runnable: Vec<(usize, regorus::Value)>,
    namespace_labels: BTreeMap<String, Map<String, Value>>,
    context: &'a [Document],
    options: &'a Options,
    request: &'a RequestInfo,
    /// Each worker thread's engines, cloned from `templates` on first use and kept for every
    /// batch evaluated.
    engines: thread_local::ThreadLocal<std::cell::RefCell<HashMap<String, CompiledTemplate>>>,
    /// What the preparation found: invalid policies, templates that do not compile,
    /// constraints that cannot run.
    pub findings: Vec<Finding>,
}

impl<'a> Prepared<'a> {
    /// Builds the policy set of `policies`, compiles its templates against `inventory`, and
    /// takes namespace labels and ValidatingAdmissionPolicy params from `context`.
    pub fn new<'p>(
        policies: impl Iterator<Item = &'p Document> + Clone,
        context: &'a [Document],
        inventory: &regorus::Value,
        options: &'a Options,
        request: &'a RequestInfo,
    ) -> Prepared<'a> {
        let (set, errors) = Set::from_documents(policies.clone());
        let mut findings: Vec<Finding> = errors.iter().map(policy_error_finding).collect();
        let (vap_set, vap_errors) = crate::vap::Set::from_documents(policies);
        findings.extend(vap_errors.iter().map(policy_error_finding));
        let compile_options = CompileOptions {
            external_data: options
                .external_data
                .clone()
                .unwrap_or_else(|| CompileOptions::default().external_data),
            coverage: false,
            enable_cel: options.enable_cel,
            ..CompileOptions::default()
        };
        let compiled = compile_set(&set, inventory, &compile_options);
        findings.extend(compiled.findings);
        let templates = compiled.templates;

        // Constraints that can run; those needing an unconfigured external-data provider are
        // noted once.
        let mut runnable = Vec::new();
        for (i, c) in set.constraints.iter().enumerate() {
            let Some(t) = templates.get(&c.kind) else {
                continue;
            };
            if t.uses_external_data && options.external_data.is_none() {
                findings.push(external_data_finding(c, options.require_external_data));
                continue;
            }
            runnable.push((i, crate::engine::to_rego(&c.parameters)));
        }
        Prepared {
            set,
            vap_set,
            templates,
            runnable,
            namespace_labels: review::namespace_labels(context),
            context,
            options,
            request,
            engines: thread_local::ThreadLocal::new(),
            findings,
        }
    }

    /// The constraints of the policy set.
    pub fn constraints(&self) -> impl Iterator<Item = &Constraint> {
        self.set.constraints.iter()
    }

    /// Reviews `resources` (expanded, outside excluded namespaces) against every matching
    /// constraint and binding, in parallel: the findings and the number of evaluations.
    pub fn evaluate(&self, resources: &[Document]) -> (Vec<Finding>, usize) {
        let converted: Vec<regorus::Value> = resources
            .par_iter()
            .map(|d| crate::engine::to_rego(&d.object))
            .collect();
        self.evaluate_converted(resources, &converted)
    }

    /// [`Prepared::evaluate`] with each resource already converted for the engine: one value
    /// per resource, `converted[i]` being `resources[i]`'s object.
    pub fn evaluate_converted(
        &self,
        resources: &[Document],
        converted: &[regorus::Value],
    ) -> (Vec<Finding>, usize) {
        let runnable: Vec<(&Constraint, regorus::Value)> = self
            .runnable
            .iter()
            .map(|(i, parameters)| (&self.set.constraints[*i], parameters.clone()))
            .collect();
        // Each object's reviews (its own and those of its expansions) are built, evaluated and
        // dropped in turn, so that they are never all held at once.
        let progress = progress_bar(self.options.progress, resources.len());
        let results: Vec<(usize, Vec<Finding>)> = resources
            .par_iter()
            .zip(converted)
            .enumerate()
            .map(|(i, (doc, object))| {
                let own = Review::of(i, &doc.object, object.clone(), self.request);
                let expanded = review::expand(i, &doc.object, &self.set.expansions, self.request);
                let mut engines = self.engines.get_or_default().borrow_mut();
                let mut out = Vec::new();
                let mut located = Located::new();
                let mut n = 0;
                for r in std::iter::once(own).chain(expanded) {
                    let ns = if r.group.is_empty() && r.kind == "Namespace" {
                        Some(r.name.as_str())
                    } else {
                        r.namespace.as_deref()
                    };
                    if excluded(self.options, ns) {
                        continue;
                    }
                    n += evaluate_review(
                        &r,
                        &runnable,
                        &self.templates,
                        &self.namespace_labels,
                        &mut engines,
                        |c, result| {
                            out.extend(violation_findings(doc, &r, c, result, &mut located));
                        },
                    );
                    if !self.vap_set.is_empty() && r.expansion.is_none() {
                        out.extend(vap_findings(
                            &self.vap_set,
                            doc,
                            &r,
                            &self.namespace_labels,
                            self.context,
                        ));
                    }
                }
                if let Some(p) = &progress {
                    p.inc(1);
                }
                (n, out)
            })
            .collect();
        if let Some(p) = progress {
            p.finish_and_clear();
        }
        let mut evaluations = 0;
        let mut findings = Vec::new();
        for (n, f) in results {
            evaluations += n;
            findings.extend(f);
        }
        (findings, evaluations)
    }
}

/// The finding of a constraint whose template calls `external_data` while no provider is
/// configured: an error when one is required, else a note.
fn external_data_finding(c: &Constraint, required: bool) -> Finding {
    let (severity, code, message) = if required {
        (
            Severity::Error,
            Code::InvalidPolicy,
            "signature verification is not configured, and this constraint needs it (its template calls external_data): give a trust policy (--trust-policy FILE or --signature-key FILE), or --no-signature-verification to go ahead without it",
        )
    } else {
        (
            Severity::Info,
            Code::Note,
            "not evaluated: signature verification is not configured (its template calls external_data and no trust policy is given)",
        )
    };
    Finding::new(severity, code, message.to_string())
        .at(c.source.to_string(), c.line, 0)
        .of_policy(
            PolicyRef {
                kind: c.kind.clone(),
                constraint: c.name.clone(),
            },
            Some(c.action.into()),
        )
}

/// Findings of the ValidatingAdmissionPolicy bindings that match a review.
fn vap_findings(
    set: &crate::vap::Set,
    doc: &Document,
    review: &Review,
    namespace_labels: &BTreeMap<String, Map<String, Value>>,
    objects: &[Document],
) -> Vec<Finding> {
    let outcome = crate::vap::evaluate_review(set, review, namespace_labels, objects);
    let base = |severity: Severity,
                code: Code,
                policy: Option<PolicyRef>,
                action: Option<Action>,
                message: String| {
        let finding = Finding::new(severity, code, message)
            .at(doc.source.to_string(), doc.line, 0)
            .rendered_at(doc.rendered_line)
            .about(ObjectRef::of(doc));
        match policy {
            Some(policy) => finding.of_policy(policy, action),
            None => finding,
        }
    };
    let mut out: Vec<Finding> = outcome
        .violations
        .into_iter()
        .map(|v| {
            let severity = match v.action() {
                crate::vap::Action::Deny => Severity::Deny,
                crate::vap::Action::Warn => Severity::Warn,
                crate::vap::Action::Audit => Severity::Info,
            };
            base(
                severity,
                Code::PolicyViolation,
                Some(PolicyRef {
                    kind: "ValidatingAdmissionPolicy".into(),
                    constraint: format!("{}/{}", v.policy, v.binding),
                }),
                Some(Action::Binding(v.actions)),
                v.message,
            )
        })
        .collect();
    out.extend(outcome.annotations.into_iter().map(|a| {
        base(
            Severity::Info,
            Code::AuditAnnotation,
            Some(PolicyRef {
                kind: "ValidatingAdmissionPolicy".into(),
                constraint: format!("{}/{}", a.policy, a.binding),
            }),
            None,
            format!("{}/{}: {}", a.policy, a.key, a.value),
        )
    }));
    out.extend(
        outcome
            .errors
            .into_iter()
            .map(|e| base(Severity::Error, Code::EvaluationError, None, None, e)),
    );
    out
}

/// Schema findings for the input objects, in parallel. CRDs come from the input and from
/// `--crd` paths; policy objects are checked only when a CRD for them is given.
fn schema_findings(
    options: &schema::Options,
    resources: &[Document],
    input_policies: &[Document],
    excluded: &(dyn Fn(Option<&str>) -> bool + Sync),
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut schemas = Schemas::new(options.clone());
    let crd_files = crate::manifest::load_paths(&options.crd_paths);
    findings.extend(crd_files.errors.iter().map(load_error_finding));
    for doc in crd_files.documents.iter().chain(resources) {
        schemas.add_crd(doc);
    }
    let policies = input_policies
        .iter()
        .filter(|d| schemas.has_crd(d.api_version(), d.kind()));
    let checked: Vec<&Document> = resources
        .iter()
        .chain(policies)
        .filter(|d| {
            let ns = if d.kind() == "Namespace" && d.api_version() == "v1" {
                d.name()
            } else {
                d.namespace()
            };
            ns.is_empty() || !excluded(Some(ns))
        })
        .collect();
    let results: Vec<Vec<Finding>> = checked.par_iter().map(|d| schemas.check(d)).collect();
    findings.extend(results.into_iter().flatten());
    findings
}

/// Positions of the fields of one document found so far (by path), so that its findings read
/// its text once per field rather than once per finding.
pub type Located = HashMap<Vec<String>, Option<(usize, usize)>>;

/// Findings for one (review, constraint) evaluation.
pub fn violation_findings(
    doc: &Document,
    review: &Review,
    constraint: &Constraint,
    result: Result<Vec<crate::engine::Violation>, crate::engine::EngineError>,
    located: &mut Located,
) -> Vec<Finding> {
    let policy = PolicyRef {
        kind: constraint.kind.clone(),
        constraint: constraint.name.clone(),
    };
    match result {
        Ok(violations) => {
            let action = review.action_override.unwrap_or(constraint.action);
            violations
                .into_iter()
                .map(|v| {
                    let (line, column, rendered_line) = violation_position(doc, &v.msg, located);
                    let message = match &review.expansion {
                        Some(x) => format!("[Implied by {x}] {}", v.msg),
                        None => v.msg,
                    };
                    Finding::new(severity_of(action), Code::PolicyViolation, message)
                        .at(doc.source.to_string(), line, column)
                        .rendered_at(rendered_line)
                        .of_policy(policy.clone(), Some(action.into()))
                        .about(ObjectRef::of(doc))
                })
                .collect()
        }
        Err(e) => vec![
            Finding::new(Severity::Error, Code::EvaluationError, e.to_string())
                .at(doc.source.to_string(), doc.line, 0)
                .rendered_at(doc.rendered_line)
                .of_policy(policy, None)
                .about(ObjectRef::of(doc)),
        ],
    }
}

/// Where a violation points: at the container it names, when the message speaks of a
/// container and exactly one container of the object's pod spec is named in it, else at the
/// object. For chart objects the
/// template line stays the object's and the container's line is the rendered line.
fn violation_position(
    doc: &Document,
    message: &str,
    located: &mut Located,
) -> (usize, usize, Option<usize>) {
    let object = (doc.line, 0, doc.rendered_line);
    if doc.origin.is_none() || !message.to_lowercase().contains("container") {
        return object;
    }
    const POD_SPECS: &[&[&str]] = &[
        &["spec"],
        &["spec", "template", "spec"],
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ];
    let named = |name: &str| {
        !name.is_empty()
            && message.match_indices(name).any(|(i, _)| {
                let before = message[..i].chars().next_back();
                let after = message[i + name.len()..].chars().next();
                let part = |c: Option<char>| {
                    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                };
                !part(before) && !part(after)
            })
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for spec in POD_SPECS {
        let Some(pod) = spec.iter().try_fold(&doc.object, |v, k| v.get(*k)) else {
            continue;
        };
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(containers) = pod.get(list).and_then(Value::as_array) else {
                continue;
            };
            for (i, c) in containers.iter().enumerate() {
                if named(c.get("name").and_then(Value::as_str).unwrap_or("")) {
                    let mut path: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
                    path.push(list.to_string());
                    path.push(i.to_string());
                    found.push(path);
                }
            }
        }
    }
    let [path] = found.as_slice() else {
        return object;
    };
    let at = *located
        .entry(path.clone())
        .or_insert_with(|| doc.locate(path));
    match at {
        Some((line, _)) if doc.rendered_line.is_some() => (doc.line, 0, Some(line)),
        Some((line, column)) => (line, column, None),
        None => object,
    }
}

fn progress_bar(enabled: bool, len: usize) -> Option<indicatif::ProgressBar> {
    if !enabled || len < 2000 || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} checking {pos}/{len} objects [{bar:30}] {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_naming_one_container_points_at_it_and_each_field_is_read_once() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: web\n    image: a\n  - name: web-sidecar\n    image: b\n";
        let loaded = crate::manifest::load_bytes("pod.yaml", text.as_bytes(), false);
        let doc = &loaded.documents[0];
        let mut located = Located::new();
        // `web` is a whole word only in the first message (`web-sidecar` is another name).
        assert_eq!(
            violation_position(doc, "container <web> is privileged", &mut located),
            (7, 5, None)
        );
        assert_eq!(
            violation_position(doc, "container <web-sidecar> has no probe", &mut located),
            (9, 5, None)
        );
        assert_eq!(
            violation_position(doc, "container <web> runs as root", &mut located),
            (7, 5, None)
        );
        assert_eq!(located.len(), 2, "{located:?}");
        // No container named, or two of them: the object's own line.
        assert_eq!(
            violation_position(doc, "pod has no labels", &mut located),
            (1, 0, None)
        );
        assert_eq!(
            violation_position(doc, "containers <web> and <web-sidecar>", &mut located),
            (1, 0, None)
        );
    }
}
