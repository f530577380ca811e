//! `validator verify`: Gatekeeper suite files (gator verify's format) run against our evaluator.

mod suite;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use regex::Regex;
use serde_json::Value;

pub use suite::{Assertion, Case, Expected, Suite, SuiteError, Test};

use crate::engine::{CompileOptions, CompiledTemplate, Violation};
use crate::manifest::{self, Document};
use crate::policy::{Constraint, Template};
use crate::review::{self, RequestInfo, Review};

/// Options of a verify run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only tests or cases whose `test/case` name matches.
    pub run: Option<Regex>,
    pub coverage: bool,
    /// Evaluate templates that carry CEL with CEL (Gatekeeper's and gator's default).
    pub enable_cel: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            run: None,
            coverage: false,
            enable_cel: true,
        }
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseStatus {
    Passed,
    Skipped,
    /// The assertions that did not hold, each with what was expected and what came.
    Failed(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct CaseResult {
    pub suite: String,
    pub test: String,
    pub case: String,
    pub status: CaseStatus,
    pub violations: Vec<String>,
}

/// Per-template Rego line coverage: file -> (covered lines, all coverable lines).
pub type Coverage = BTreeMap<String, (BTreeSet<u32>, BTreeSet<u32>)>;

#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
    /// Broken suites, templates or constraints (exit 2).
    pub errors: Vec<String>,
    pub coverage: Coverage,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.count(|s| matches!(s, CaseStatus::Passed))
    }
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, CaseStatus::Failed(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, CaseStatus::Skipped))
    }
    fn count(&self, f: impl Fn(&CaseStatus) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.status)).count()
    }
    /// 0 all passed, 1 a case failed, 2 something was broken.
    pub fn exit_code(&self) -> u8 {
        if !self.errors.is_empty() {
            2
        } else if self.failed() > 0 {
            1
        } else {
            0
        }
    }
}

/// Suite files under the given paths (a directory is searched recursively).
pub fn find_suites(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<String>) {
    let mut suites = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match manifest::expand_path(path) {
            Ok(files) => {
                for f in files {
                    let explicit = f == *path;
                    let is_suite = std::fs::read_to_string(&f)
                        .is_ok_and(|t| t.lines().any(|l| l.trim_end() == "kind: Suite"));
                    if is_suite || explicit {
                        suites.push(f);
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    (suites, errors)
}

/// Runs every suite under the paths.
pub fn run(paths: &[PathBuf], options: &Options) -> Report {
    let (files, mut errors) = find_suites(paths);
    if files.is_empty() && errors.is_empty() {
        errors.push(format!(
            "no suite files (kind: Suite) found under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut suites = Vec::new();
    for f in &files {
        match Suite::read(f) {
            Ok(s) => suites.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let coverage = Mutex::new(Coverage::new());
    let outcomes: Vec<(Vec<CaseResult>, Vec<String>)> = suites
        .par_iter()
        .flat_map_iter(|s| s.tests.iter().map(move |t| (s, t)))
        .map(|(s, t)| run_test(s, t, options, &coverage))
        .collect();
    let mut results = Vec::new();
    for (r, e) in outcomes {
        results.extend(r);
        errors.extend(e);
    }
    Report {
        results,
        errors,
        coverage: coverage.into_inner().unwrap_or_default(),
    }
}

fn selected(options: &Options, test: &str, case: Option<&str>) -> bool {
    match &options.run {
        None => true,
        Some(re) => match case {
            Some(c) => re.is_match(&format!("{test}/{c}")) || re.is_match(test) || re.is_match(c),
            None => true,
        },
    }
}

fn load_single(path: &Path, what: &str) -> Result<Vec<Document>, String> {
    let loaded = manifest::load_file(path);
    if let Some(e) = loaded.errors.first() {
        return Err(format!("{what}: {e}"));
    }
    if loaded.documents.is_empty() {
        return Err(format!("{what}: {}: no object in file", path.display()));
    }
    Ok(loaded.documents)
}

fn run_test(
    suite: &Suite,
    test: &Test,
    options: &Options,
    coverage: &Mutex<Coverage>,
) -> (Vec<CaseResult>, Vec<String>) {
    let result = |case: &Case, status: CaseStatus, violations: Vec<String>| CaseResult {
        suite: suite.name.clone(),
        test: test.name.clone(),
        case: case.name.clone(),
        status,
        violations,
    };
    let cases: Vec<&Case> = test
        .cases
        .iter()
        .filter(|c| selected(options, &test.name, Some(&c.name)))
        .collect();
    if test.skip {
        let results = cases
            .iter()
            .map(|c| result(c, CaseStatus::Skipped, Vec::new()))
            .collect();
        return (results, Vec::new());
    }
    let location = format!("{} test `{}`", suite.path.display(), test.name);
    let setup = || -> Result<(Template, Constraint), String> {
        let template_docs = load_single(&test.template, &format!("{location}: template"))?;
        let template =
            Template::parse(&template_docs[0]).map_err(|e| format!("{location}: {e}"))?;
        let mut templates = BTreeMap::new();
        templates.insert(template.kind.clone(), template.clone());
        let constraint_docs = load_single(&test.constraint, &format!("{location}: constraint"))?;
        let constraint = Constraint::parse(&constraint_docs[0], &templates)
            .map_err(|e| format!("{location}: {e}"))?;
        Ok((template, constraint))
    };
    let (template, constraint) = match setup() {
        Ok(x) => x,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let compile_options = CompileOptions {
        coverage: options.coverage,
        enable_cel: options.enable_cel,
        ..CompileOptions::default()
    };
    let empty_inventory = review::inventory(std::iter::empty());
    let base = match CompiledTemplate::compile(&template, &empty_inventory, &compile_options) {
        Ok(Some(c)) => c,
        Ok(None) => {
            return (
                Vec::new(),
                vec![format!(
                    "{}:{}: ConstraintTemplate {}: no code to evaluate (it has no Rego and CEL is disabled)",
                    template.source, template.line, template.name
                )],
            )
        }
        Err(e) => {
            return (
                Vec::new(),
                vec![format!("{}:{}: {e}", template.source, template.line)],
            )
        }
    };
    let parameters = crate::engine::to_rego(&constraint.parameters);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for case in cases {
        if case.skip {
            results.push(result(case, CaseStatus::Skipped, Vec::new()));
            continue;
        }
        match run_case(
            case,
            &template,
            &constraint,
            &base,
            &parameters,
            &compile_options,
            coverage,
        ) {
            Ok(violations) => {
                let messages: Vec<String> = violations.iter().map(|v| v.msg.clone()).collect();
                let failures: Vec<String> = case
                    .assertions
                    .iter()
                    .filter_map(|a| a.check(&messages).err())
                    .collect();
                let status = if failures.is_empty() {
                    CaseStatus::Passed
                } else {
                    CaseStatus::Failed(failures)
                };
                results.push(result(case, status, messages));
            }
            Err(e) => errors.push(format!("{location} case `{}`: {e}", case.name)),
        }
    }
    (results, errors)
}

fn run_case(
    case: &Case,
    template: &Template,
    constraint: &Constraint,
    base: &CompiledTemplate,
    parameters: &regorus::Value,
    options: &CompileOptions,
    coverage: &Mutex<Coverage>,
) -> Result<Vec<Violation>, String> {
    let docs = load_single(&case.object, "object")?;
    let object = &docs[0];
    let mut inventory_objects: Vec<Value> = Vec::new();
    for path in &case.inventory {
        let loaded = manifest::load_file(path);
        if let Some(e) = loaded.errors.first() {
            return Err(format!("inventory: {e}"));
        }
        inventory_objects.extend(loaded.documents.into_iter().map(|d| d.object));
    }
    let mut engine = if inventory_objects.is_empty() {
        base.clone()
    } else {
        let inventory = review::inventory(inventory_objects.iter());
        match CompiledTemplate::compile(template, &inventory, options) {
            Ok(Some(c)) => c,
            Ok(None) => return Err("template has no Rego".into()),
            Err(e) => return Err(e.to_string()),
        }
    };
    let review = if object.kind() == "AdmissionReview" {
        let request = object.object.get("request").cloned().unwrap_or(Value::Null);
        Review::from_admission_request(0, &request)
    } else {
        Review::new(0, &object.object, &RequestInfo::default())
    };
    let namespace_docs: Vec<Document> = inventory_objects
        .iter()
        .map(|o| Document {
            source: object.source.clone(),
            line: 0,
            object: o.clone(),
            rendered_line: None,
            origin: None,
        })
        .collect();
    let ns_labels = review::namespace_labels(&namespace_docs);
    let labels = review.namespace_labels(&ns_labels);
    if !constraint.matcher.matches(&review.target(labels)) {
        return Ok(Vec::new());
    }
    let violations = engine
        .evaluate(&review.input, parameters, &constraint.name)
        .map_err(|e| e.to_string())?;
    if options.coverage {
        let mut cov = coverage
            .lock()
            .map_err(|_| "coverage lock poisoned".to_string())?;
        for (file, covered, not_covered) in engine.coverage() {
            let entry = cov.entry(file).or_default();
            entry.0.extend(covered.iter().copied());
            entry.1.extend(covered);
            entry.1.extend(not_covered);
        }
    }
    Ok(violations)
}

/// Human output: failing cases with expected and actual violations, then `N passed, M failed`.
pub fn render_human(report: &Report, show_coverage: bool) -> String {
    let mut out = String::new();
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for r in &report.results {
        if let CaseStatus::Failed(failures) = &r.status {
            let _ = writeln!(out, "FAIL {} / {} / {}", r.suite, r.test, r.case);
            for f in failures {
                let _ = writeln!(out, "  {f}");
            }
            if r.violations.is_empty() {
                let _ = writeln!(out, "  actual violations: none");
            } else {
                let _ = writeln!(out, "  actual violations ({}):", r.violations.len());
                for v in &r.violations {
                    let _ = writeln!(out, "    - {v}");
                }
            }
        }
    }
    if show_coverage {
        out.push_str(&render_coverage(&report.coverage));
    }
    let _ = write!(
        out,
        "{} passed, {} failed",
        report.passed(),
        report.failed()
    );
    if report.skipped() > 0 {
        let _ = write!(out, ", {} skipped", report.skipped());
    }
    out.push('\n');
    out
}

/// Rego line coverage per file and in total.
pub fn render_coverage(coverage: &Coverage) -> String {
    let mut out = String::from("Rego line coverage:\n");
    let (mut covered, mut total) = (0usize, 0usize);
    for (file, (c, all)) in coverage {
        let pct = percent(c.len(), all.len());
        let _ = writeln!(out, "  {file}: {}/{} lines ({pct:.1}%)", c.len(), all.len());
        covered += c.len();
        total += all.len();
    }
    let _ = writeln!(
        out,
        "  total: {covered}/{total} lines ({:.1}%)",
        percent(covered, total)
    );
    out
}

fn percent(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// JUnit XML: a test suite per suite file, a test case per case.
pub fn render_junit(report: &Report) -> String {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut junit = quick_junit::Report::new("validator verify");
    let mut by_suite: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in &report.results {
        by_suite.entry(&r.suite).or_default().push(r);
    }
    for (suite_name, cases) in by_suite {
        let mut suite = TestSuite::new(suite_name);
        for c in cases {
            let status = match &c.status {
                CaseStatus::Passed => TestCaseStatus::success(),
                CaseStatus::Skipped => TestCaseStatus::skipped(),
                CaseStatus::Failed(f) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status
                        .set_message(f.join("; "))
                        .set_description(c.violations.join("\n"));
                    status
                }
            };
            let mut case = TestCase::new(format!("{}/{}", c.test, c.case), status);
            case.set_classname(suite_name);
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    for e in &report.errors {
        let mut suite = TestSuite::new("errors");
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(e.as_str());
        suite.add_test_case(TestCase::new("setup", status));
        junit.add_test_suite(suite);
    }
    crate::report::junit_xml(&junit)
}

#[cfg(test)]
mod tests;
