//! Rego evaluation with regorus: each template compiled once, engines cloned per worker.

mod cel;
pub mod cel_lib;
mod cel_shared;
mod compat;
mod join;
mod regex_match;
mod sprintf;

use std::collections::BTreeMap;
use std::sync::Arc;

use regorus::Value as RegoValue;
use serde_json::Value;
use thiserror::Error;

pub use cel::{rego_to_cel, to_cel, AuditAnnotation, CelInput, CelOutcome, CelTemplate};

use regorus::utils::limits::ExecutionTimerConfig;

thread_local! {
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with every evaluation it makes on this thread stopped at `deadline`: a Rego
/// evaluation by its engine's execution timer, a CEL one between its expressions. Without a
/// deadline, only the process-wide Rego limit (if any) applies.
pub fn within_deadline<T>(deadline: Option<std::time::Instant>, f: impl FnOnce() -> T) -> T {
    let before = DEADLINE.with(|d| d.replace(deadline));
    let out = f();
    DEADLINE.with(|d| d.set(before));
    out
}

/// The deadline of the evaluations on this thread, if any.
pub fn deadline() -> Option<std::time::Instant> {
    DEADLINE.with(std::cell::Cell::get)
}
pub use compat::{hoist_negated_call_arguments, normalize_v0, user_functions};
pub use sprintf::rego_text;

use crate::policy::Template;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("ConstraintTemplate {template}: Rego does not compile: {message}")]
    Compile {
        template: String,
        message: String,
        /// The input line and column the error points at, when the Rego is a literal block
        /// of the template's file.
        at: Option<(usize, usize)>,
    },
    #[error("{kind}/{constraint}: evaluation failed: {message}")]
    Runtime {
        kind: String,
        constraint: String,
        message: String,
    },
}

/// One violation as the template's `violation` rule reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub msg: String,
    pub details: Value,
}

/// What `external_data` answers for a list of keys, in Gatekeeper's provider response shape.
pub type ExternalDataFn = dyn Fn(&str, &[String]) -> Value + Send + Sync;

/// The default external-data handler: no provider is configured, so every call is a system error.
pub fn unconfigured_external_data(provider: &str, _keys: &[String]) -> Value {
    serde_json::json!({
        "responses": [],
        "errors": [],
        "status_code": 500,
        "system_error": format!("external data provider `{provider}` is not configured"),
    })
}

/// A template ready to evaluate: its CEL programs, or an engine holding its Rego, libraries and
/// `data.inventory`.
#[derive(Clone)]
pub struct CompiledTemplate {
    pub kind: String,
    pub name: String,
    rule: String,
    engine: regorus::Engine,
    /// Set when the template is evaluated with CEL (it carries CEL and CEL is enabled).
    cel: Option<Arc<CelTemplate>>,
    /// Sources added to the engine, for coverage reports: (path, text).
    pub sources: Vec<(String, String)>,
    pub uses_external_data: bool,
    /// The package's index rules (see `join`), rebuilt with each inventory.
    indexes: Vec<String>,
    /// Why the indexes could not be built for the current inventory: each evaluation fails
    /// with it rather than read a stale index.
    index_error: Option<String>,
}

impl std::fmt::Debug for CompiledTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledTemplate")
            .field("kind", &self.kind)
            .field("rule", &self.rule)
            .finish()
    }
}

/// Options shared by every compiled template.
#[derive(Clone)]
pub struct CompileOptions {
    pub external_data: Arc<ExternalDataFn>,
    pub coverage: bool,
    /// Evaluate templates that carry CEL (K8sNativeValidation) with CEL, as Gatekeeper does by default.
    pub enable_cel: bool,
    /// Turn a `violation` body's scan of `data.inventory` into a lookup in an index built once
    /// per inventory (ignored with `coverage`, whose lines must be the template's own).
    pub index_inventory: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            external_data: Arc::new(unconfigured_external_data),
            coverage: false,
            enable_cel: true,
            index_inventory: true,
        }
    }
}

fn compile_error(template: &Template, message: impl std::fmt::Display) -> EngineError {
    let mut message = message.to_string();
    let at = template
        .rego
        .as_ref()
        .and_then(|source| in_template_file(template, source, &mut message));
    EngineError::Compile {
        template: template.name.clone(),
        message,
        at,
    }
}

/// Turns the `--> <name>.rego:LINE:COLUMN` of an error in the template's main module into the
/// position in the template's file, and returns that position. The v0 rewrites may add or
/// change lines: a line of the rewrite stands for the written line it came from, and when the
/// two differ the excerpt shows the line as written, without the column marker.
fn in_template_file(
    template: &Template,
    source: &crate::policy::RegoSource,
    message: &mut String,
) -> Option<(usize, usize)> {
    let (first_line, indent) = source.at?;
    let marker = format!("--> {}.rego:", template.name);
    let start = message.find(&marker)?;
    let rest = &message[start + marker.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != ':')
        .unwrap_or(rest.len());
    let (line, column) = rest[..end].split_once(':')?;
    let (line, column): (usize, usize) = (line.parse().ok()?, column.parse().ok()?);
    let given = rewritten_main(source);
    let (written, same) = written_line(&source.rego, &given, line)?;
    let written_text = source.rego.lines().nth(written - 1).unwrap_or("");
    let column = if same {
        column
    } else {
        written_text.len() - written_text.trim_start().len() + 1
    };
    let at = (first_line + written - 1, indent + column);
    let header = format!("--> {}:{}:{}", template.source, at.0, at.1);
    let (before, after) = message.split_at(start);
    let after = &after[marker.len() + end..];
    // The source excerpt's gutter: the module's line number becomes the file's.
    let (old_number, new_number) = (line.to_string(), at.0.to_string());
    let old_blank = format!("{} |", " ".repeat(old_number.len()));
    let new_blank = format!("{} |", " ".repeat(new_number.len()));
    let gutter: Vec<String> = after
        .split('\n')
        .filter(|l| same || !(l.starts_with(&old_blank) && l.contains('^')))
        .map(|l| {
            if let Some(rest) = l.strip_prefix(&format!("{old_number} |")) {
                match same {
                    true => format!("{new_number} |{rest}"),
                    false => format!("{new_number} | {written_text}"),
                }
            } else if let Some(rest) = l.strip_prefix(&old_blank) {
                format!("{new_blank}{rest}")
            } else {
                l.to_string()
            }
        })
        .collect();
    *message = format!("{before}{header}{}", gutter.join("\n"));
    Some(at)
}

/// The line of `written` (1-based) that line `line` of `given`, a rewrite of it, comes from,
/// and whether the two read the same. The lines the rewrite kept are matched as a longest
/// common subsequence; a line it added or changed comes from the first written line of the
/// stretch it replaced, or from the next kept line when it replaced none.
fn written_line(written: &str, given: &str, line: usize) -> Option<(usize, bool)> {
    let (a, b): (Vec<&str>, Vec<&str>) = (written.lines().collect(), given.lines().collect());
    let (n, m) = (a.len(), b.len());
    let target = line.checked_sub(1).filter(|t| *t < m && n > 0)?;
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // Kept lines before and after the target: (written, given) indexes.
    let (mut before, mut after) = (None, None);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m && after.is_none() {
        if a[i] == b[j] {
            match j.cmp(&target) {
                std::cmp::Ordering::Equal => return Some((i + 1, true)),
                std::cmp::Ordering::Less => before = Some((i, j)),
                std::cmp::Ordering::Greater => after = Some((i, j)),
            }
            (i, j) = (i + 1, j + 1);
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let (first_a, first_b) = before.map_or((0, 0), |(i, j)| (i + 1, j + 1));
    let next_a = after.map_or(n, |(i, _)| i);
    let written = if first_a < next_a {
        // The stretch the rewrite replaced: its k-th line, or its last.
        (first_a + (target - first_b)).min(next_a - 1)
    } else {
        next_a.min(n - 1)
    };
    Some((written + 1, false))
}

/// The main module as the engine is given it.
fn rewritten_main(source: &crate::policy::RegoSource) -> String {
    if source.v1 {
        return source.rego.clone();
    }
    let functions = user_functions(std::iter::once(&source.rego).chain(source.libs.iter()));
    hoist_negated_call_arguments(&normalize_v0(&source.rego), &functions)
}

impl CompiledTemplate {
    /// Compiles a template: its CEL when it has CEL and CEL is enabled, else its Rego with
    /// `data.inventory`. `None` when it has no code for the enabled engines.
    pub fn compile(
        template: &Template,
        inventory: &RegoValue,
        options: &CompileOptions,
    ) -> Result<Option<Self>, EngineError> {
        if let (Some(source), true) = (&template.cel, options.enable_cel) {
            let cel = CelTemplate::compile(source).map_err(|e| compile_error(template, e))?;
            return Ok(Some(CompiledTemplate {
                kind: template.kind.clone(),
                name: template.name.clone(),
                rule: String::new(),
                engine: regorus::Engine::new(),
                cel: Some(Arc::new(cel)),
                sources: Vec::new(),
                uses_external_data: false,
                indexes: Vec::new(),
                index_error: None,
            }));
        }
        let Some(source) = &template.rego else {
            return Ok(None);
        };
        let main = rewritten_main(source);
        if options.index_inventory && !options.coverage {
            // A rewrite that does not compile or cannot build its index is not used: the
            // template as written is compiled instead, and its errors are reported.
            if let Some(joined) = join::rewrite(&main, source.v1) {
                if let Ok(compiled) = Self::compile_rego(
                    template,
                    source,
                    joined.text,
                    joined.indexes,
                    inventory,
                    options,
                ) {
                    return Ok(Some(compiled));
                }
            }
        }
        Self::compile_rego(template, source, main, 0, inventory, options).map(Some)
    }

    fn compile_rego(
        template: &Template,
        source: &crate::policy::RegoSource,
        main: String,
        indexes: usize,
        inventory: &RegoValue,
        options: &CompileOptions,
    ) -> Result<Self, EngineError> {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(!source.v1);
        engine.set_strict_builtin_errors(false);
        let mut sources = Vec::new();
        let main_path = format!("{}.rego", template.name);
        let package = engine
            .add_policy(main_path.clone(), main.clone())
            .map_err(|e| compile_error(template, e))?;
        sources.push((main_path, main));
        for (i, lib) in source.libs.iter().enumerate() {
            let path = format!("{}.lib{}.rego", template.name, i + 1);
            let text = if source.v1 {
                lib.clone()
            } else {
                normalize_v0(lib)
            };
            let lib_package = engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| compile_error(template, e))?;
            if !lib_package.starts_with("data.lib.") && lib_package != "data.lib" {
                return Err(compile_error(
                    template,
                    format!("{path}: library package `{lib_package}` must be under `lib` (e.g. `package lib.helpers`)"),
                ));
            }
            sources.push((path, text));
        }
        let uses_external_data = sources.iter().any(|(_, s)| s.contains("external_data"));
        // OPA's sprintf in place of regorus's (which fails on a missing argument).
        engine
            .add_extension("sprintf".to_string(), 2, Box::new(sprintf::sprintf))
            .map_err(|e| compile_error(template, e))?;
        // A per-thread pattern cache in place of regorus's (which rebuilds the matcher per call).
        engine
            .add_extension(
                "regex.match".to_string(),
                2,
                Box::new(regex_match::regex_match),
            )
            .map_err(|e| compile_error(template, e))?;
        let handler = options.external_data.clone();
        engine
            .add_extension(
                "external_data".to_string(),
                1,
                Box::new(move |args: Vec<RegoValue>| external_data(&handler, args)),
            )
            .map_err(|e| compile_error(template, e))?;
        if options.coverage {
            engine.set_enable_coverage(true);
        }
        let mut compiled = CompiledTemplate {
            kind: template.kind.clone(),
            name: template.name.clone(),
            rule: format!("{package}.violation"),
            engine,
            cel: None,
            sources,
            uses_external_data,
            indexes: (0..indexes)
                .map(|i| format!("{package}.{}{i}", join::INDEX_RULE))
                .collect(),
            index_error: None,
        };
        compiled
            .load_inventory(inventory)
            .map_err(|e| compile_error(template, e))?;
        // Evaluate once on an empty review so that errors found while preparing the
        // policy (unknown functions, unsafe variables) surface now, naming the template.
        let probe = input_value(&RegoValue::new_object(), &RegoValue::new_object());
        compiled.engine.set_input(probe);
        if let Err(e) = compiled.engine.eval_rule(compiled.rule.clone()) {
            let message = e.to_string();
            // An undefined result on an empty review is expected; an unsafe variable is not.
            if !message.contains("undefined") || message.contains("unsafe") {
                return Err(compile_error(template, message));
            }
        }
        if options.coverage {
            compiled.engine.clear_coverage_data();
        }
        Ok(compiled)
    }

    /// Replaces the `data.inventory` this template's Rego sees (CEL templates read none).
    pub fn set_inventory(&mut self, inventory: &RegoValue) -> Result<(), EngineError> {
        self.set_inventory_sharing(inventory, &mut None)
    }

    /// [`CompiledTemplate::set_inventory`] with the indexes another copy of this template
    /// built from the same inventory: `shared` holds them once one copy has built them (or
    /// why they could not be built), and this copy loads them rather than build them again.
    pub fn set_inventory_sharing(
        &mut self,
        inventory: &RegoValue,
        shared: &mut Option<Result<RegoValue, String>>,
    ) -> Result<(), EngineError> {
        if self.cel.is_some() {
            return Ok(());
        }
        self.engine.clear_data();
        let loaded = self
            .add_inventory(inventory)
            .and_then(|()| match shared {
                Some(built) => built.clone(),
                None => shared.insert(self.build_indexes()).clone(),
            })
            .and_then(|built| self.add_indexes(built));
        self.index_error = loaded.as_ref().err().cloned();
        loaded.map_err(|message| EngineError::Compile {
            template: self.name.clone(),
            message: format!("cannot set data.inventory: {message}"),
            at: None,
        })
    }

    /// Adds `data.inventory` and the indexes built from it to an engine without data.
    fn load_inventory(&mut self, inventory: &RegoValue) -> Result<(), String> {
        self.add_inventory(inventory)?;
        let built = self.build_indexes()?;
        self.add_indexes(built)
    }

    fn add_inventory(&mut self, inventory: &RegoValue) -> Result<(), String> {
        let mut data = BTreeMap::new();
        data.insert(RegoValue::from("inventory"), inventory.clone());
        self.engine
            .add_data(RegoValue::from(data))
            .map_err(|e| e.to_string())
    }

    /// The package's index rules evaluated over the loaded inventory, as the data they are
    /// read from (`Null` when the package has none).
    fn build_indexes(&mut self) -> Result<RegoValue, String> {
        if self.indexes.is_empty() {
            return Ok(RegoValue::Null);
        }
        self.engine.clear_execution_timer_config();
        self.engine.set_input(RegoValue::new_object());
        let mut built = BTreeMap::new();
        for (i, rule) in self.indexes.iter().enumerate() {
            let elements = self
                .engine
                .eval_rule(rule.clone())
                .map_err(|e| format!("cannot index data.inventory: {e}"))?;
            built.insert(RegoValue::from(format!("i{i}")), index_by_key(&elements));
        }
        let mut data = BTreeMap::new();
        data.insert(RegoValue::from(join::INDEX_DATA), RegoValue::from(built));
        Ok(RegoValue::from(data))
    }

    fn add_indexes(&mut self, built: RegoValue) -> Result<(), String> {
        if built == RegoValue::Null {
            return Ok(());
        }
        self.engine.add_data(built).map_err(|e| e.to_string())
    }

    /// Evaluates the `violation` rule for one review and one constraint's parameters.
    pub fn evaluate(
        &mut self,
        review: &RegoValue,
        parameters: &RegoValue,
        constraint: &str,
    ) -> Result<Vec<Violation>, EngineError> {
        let runtime = |message: String| EngineError::Runtime {
            kind: self.kind.clone(),
            constraint: constraint.to_string(),
            message,
        };
        if let Some(cel) = &self.cel {
            let input = CelInput::from_rego_cached(review, parameters);
            return cel
                .evaluate_input(&input)
                .map(|o| o.violations)
                .map_err(runtime);
        }
        if let Some(message) = &self.index_error {
            return Err(runtime(message.clone()));
        }
        // Within a deadline, the Rego engine's execution timer stops this evaluation at it.
        match deadline() {
            Some(at) => self
                .engine
                .set_execution_timer_config(ExecutionTimerConfig {
                    limit: at.saturating_duration_since(std::time::Instant::now()),
                    check_interval: std::num::NonZeroU32::MIN.saturating_add(255),
                }),
            None => self.engine.clear_execution_timer_config(),
        }
        self.engine.set_input(input_value(review, parameters));
        let result =
            self.engine
                .eval_rule(self.rule.clone())
                .map_err(|e| EngineError::Runtime {
                    kind: self.kind.clone(),
                    constraint: constraint.to_string(),
                    message: e.to_string(),
                })?;
        Ok(violations_of(&result))
    }

    /// Line coverage gathered so far, as (file, covered lines, not covered lines).
    pub fn coverage(&self) -> Vec<(String, Vec<u32>, Vec<u32>)> {
        match self.engine.get_coverage_report() {
            Ok(report) => report
                .files
                .iter()
                .map(|f| {
                    (
                        f.path.clone(),
                        f.covered.iter().copied().collect(),
                        f.not_covered.iter().copied().collect(),
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// An index rule's `[key, bindings]` elements grouped by key: `{key: [bindings, …]}`.
fn index_by_key(elements: &RegoValue) -> RegoValue {
    let mut grouped: BTreeMap<RegoValue, Vec<RegoValue>> = BTreeMap::new();
    if let RegoValue::Set(elements) = elements {
        for element in elements.iter() {
            if let RegoValue::Array(pair) = element {
                if let [key, bindings] = pair.as_slice() {
                    grouped
                        .entry(key.clone())
                        .or_default()
                        .push(bindings.clone());
                }
            }
        }
    }
    RegoValue::from(
        grouped
            .into_iter()
            .map(|(k, v)| (k, RegoValue::from(v)))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// `{"review": review, "parameters": parameters}`.
pub fn input_value(review: &RegoValue, parameters: &RegoValue) -> RegoValue {
    let mut input = BTreeMap::new();
    input.insert(RegoValue::from("review"), review.clone());
    input.insert(RegoValue::from("parameters"), parameters.clone());
    RegoValue::from(input)
}

fn violations_of(result: &RegoValue) -> Vec<Violation> {
    let items: Vec<&RegoValue> = match result {
        RegoValue::Set(items) => items.iter().collect(),
        RegoValue::Array(items) => items.iter().collect(),
        _ => return Vec::new(),
    };
    let field = |item: &RegoValue, name: &str| match item {
        RegoValue::Object(fields) => fields.get(&RegoValue::from(name)).cloned(),
        _ => None,
    };
    let mut out: Vec<Violation> = items
        .into_iter()
        .map(|item| Violation {
            msg: match field(item, "msg") {
                Some(RegoValue::String(s)) => s.to_string(),
                Some(other) => to_json(&other).map(|v| v.to_string()).unwrap_or_default(),
                None => String::new(),
            },
            details: field(item, "details")
                .and_then(|d| to_json(&d).ok())
                .unwrap_or(Value::Null),
        })
        .collect();
    out.sort_by(|a, b| a.msg.cmp(&b.msg));
    out
}

fn external_data(handler: &Arc<ExternalDataFn>, args: Vec<RegoValue>) -> anyhow::Result<RegoValue> {
    let request = args
        .first()
        .and_then(|a| a.to_json_str().ok())
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .unwrap_or(Value::Null);
    let provider = request
        .get("provider")
        .and_then(Value::as_str)
        .unwrap_or("");
    let keys: Vec<String> = request
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|k| match k {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let response = handler(provider, &keys);
    Ok(RegoValue::from(response))
}

/// A regorus value as JSON (sets become arrays, undefined null).
pub fn to_json(value: &RegoValue) -> Result<Value, String> {
    if matches!(value, RegoValue::Undefined) {
        return Ok(Value::Null);
    }
    serde_json::to_value(value).map_err(|e| e.to_string())
}

/// Converts a JSON value to a regorus value, reading it in place (no intermediate copy).
pub fn to_rego(value: &Value) -> RegoValue {
    serde::Deserialize::deserialize(value).unwrap_or(RegoValue::Undefined)
}

#[cfg(test)]
mod tests;
