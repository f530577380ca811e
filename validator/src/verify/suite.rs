//! The suite file format (`kind: Suite`, `apiVersion: test.gatekeeper.sh/v1alpha1`).

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;
use thiserror::Error;

use crate::manifest;

#[derive(Debug, Error)]
#[error("{path}:{line}: {message}")]
pub struct SuiteError {
    pub path: String,
    pub line: usize,
    pub message: String,
}

/// How many violations an assertion expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    AtLeastOne,
    None,
    Exactly(usize),
}

#[derive(Debug, Clone)]
pub struct Assertion {
    pub violations: Expected,
    /// Only violations whose message matches count.
    pub message: Option<Regex>,
}

impl Assertion {
    /// Ok when the violation messages satisfy the assertion; otherwise what was expected and what came.
    pub fn check(&self, messages: &[String]) -> Result<(), String> {
        let counted = messages
            .iter()
            .filter(|m| self.message.as_ref().is_none_or(|re| re.is_match(m)))
            .count();
        let ok = match self.violations {
            Expected::AtLeastOne => counted > 0,
            Expected::None => counted == 0,
            Expected::Exactly(n) => counted == n,
        };
        if ok {
            return Ok(());
        }
        let expected = match self.violations {
            Expected::AtLeastOne => "at least one violation".to_string(),
            Expected::None => "no violations".to_string(),
            Expected::Exactly(n) => format!("{n} violation(s)"),
        };
        let filter = self
            .message
            .as_ref()
            .map(|re| format!(" with message matching `{}`", re.as_str()))
            .unwrap_or_default();
        Err(format!("expected {expected}{filter}, got {counted}"))
    }
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub object: PathBuf,
    pub inventory: Vec<PathBuf>,
    pub assertions: Vec<Assertion>,
    pub skip: bool,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub template: PathBuf,
    pub constraint: PathBuf,
    pub cases: Vec<Case>,
    pub skip: bool,
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub path: PathBuf,
    pub tests: Vec<Test>,
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

impl Suite {
    pub fn read(path: &Path) -> Result<Suite, SuiteError> {
        let err = |line: usize, message: String| SuiteError {
            path: path.display().to_string(),
            line,
            message,
        };
        let loaded = manifest::load_file(path);
        if let Some(e) = loaded.errors.first() {
            return Err(err(e.line, e.message.clone()));
        }
        let Some(doc) = loaded
            .documents
            .iter()
            .find(|d| d.kind() == "Suite" && d.api_version().starts_with("test.gatekeeper.sh/"))
        else {
            return Err(err(
                1,
                "not a suite file: expected kind Suite, apiVersion test.gatekeeper.sh/v1alpha1"
                    .into(),
            ));
        };
        let line = doc.line;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| dir.join(p);
        let mut tests = Vec::new();
        for (ti, t) in doc
            .object
            .get("tests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let name = match str_field(t, "name") {
                "" => format!("test-{ti}"),
                n => n.to_string(),
            };
            let template = str_field(t, "template");
            let constraint = str_field(t, "constraint");
            if template.is_empty() || constraint.is_empty() {
                return Err(err(
                    line,
                    format!("tests[{ti}] ({name}): `template` and `constraint` are required"),
                ));
            }
            let mut cases = Vec::new();
            for (ci, c) in t
                .get("cases")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let case_name = match str_field(c, "name") {
                    "" => format!("case-{ci}"),
                    n => n.to_string(),
                };
                let object = str_field(c, "object");
                if object.is_empty() {
                    return Err(err(
                        line,
                        format!("tests[{ti}].cases[{ci}] ({case_name}): `object` is required"),
                    ));
                }
                let inventory = c
                    .get("inventory")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(resolve).collect())
                    .unwrap_or_default();
                let mut assertions = Vec::new();
                for (ai, a) in c
                    .get("assertions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let at = format!("tests[{ti}].cases[{ci}].assertions[{ai}]");
                    assertions
                        .push(parse_assertion(a).map_err(|m| err(line, format!("{at}: {m}")))?);
                }
                cases.push(Case {
                    name: case_name,
                    object: resolve(object),
                    inventory,
                    assertions,
                    skip: c.get("skip").and_then(Value::as_bool).unwrap_or(false),
                });
            }
            tests.push(Test {
                name,
                template: resolve(template),
                constraint: resolve(constraint),
                cases,
                skip: t.get("skip").and_then(Value::as_bool).unwrap_or(false),
            });
        }
        Ok(Suite {
            name: match doc.name() {
                "" => path.display().to_string(),
                n => n.to_string(),
            },
            path: path.to_path_buf(),
            tests,
        })
    }
}

fn parse_assertion(a: &Value) -> Result<Assertion, String> {
    let violations = match a.get("violations") {
        None | Some(Value::Null) => Expected::AtLeastOne,
        Some(Value::Bool(true)) => Expected::AtLeastOne,
        Some(Value::Bool(false)) => Expected::None,
        Some(Value::String(s)) => match s.as_str() {
            "yes" | "true" => Expected::AtLeastOne,
            "no" | "false" => Expected::None,
            n => n
                .parse()
                .map(Expected::Exactly)
                .map_err(|_| format!("violations: `{n}` is not yes, no or a number"))?,
        },
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| {
                if n == 0 {
                    Expected::None
                } else {
                    Expected::Exactly(n as usize)
                }
            })
            .ok_or_else(|| format!("violations: `{n}` is not a non-negative integer"))?,
        Some(other) => return Err(format!("violations: `{other}` is not yes, no or a number")),
    };
    let message = match a.get("message").and_then(Value::as_str) {
        None => None,
        Some(m) => {
            Some(Regex::new(m).map_err(|e| format!("message: invalid regular expression: {e}"))?)
        }
    };
    Ok(Assertion {
        violations,
        message,
    })
}
