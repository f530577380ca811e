//! Gatekeeper's K8sNativeValidation engine: CEL variables, match conditions and validations.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value as CelValue};
use serde_json::Value;

use super::Violation;

struct Validation {
    text: String,
    expression: Program,
    message: Option<String>,
    message_expression: Option<Program>,
}

/// A ValidatingAdmissionPolicy's `auditAnnotations` entry.
struct Annotation {
    key: String,
    text: String,
    value: Program,
}

/// A named expression: a variable or a match condition.
struct Named {
    name: String,
    text: String,
    program: Program,
}

/// One audit annotation a policy produced: `key` and the value its expression gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditAnnotation {
    pub key: String,
    pub value: String,
}

/// What evaluating a CEL source gives: failed validations and audit annotations.
#[derive(Debug, Clone, Default)]
pub struct CelOutcome {
    pub violations: Vec<Violation>,
    pub annotations: Vec<AuditAnnotation>,
}

/// A template's CEL code, every expression compiled once.
///
/// Expressions are compiled with `variables.<name>` read as a top-level variable of its own
/// (`__variables_<name>`), so that each variable's value is handed to CEL once instead of in a
/// fresh `variables` map per variable; only the top-level names the expressions use are bound.
/// A source that uses `variables` any other way is compiled as written, with the map.
pub struct CelTemplate {
    env: Arc<Env>,
    /// The top-level names the expressions use; `None` binds every name (and the `variables`
    /// map).
    uses: Option<std::collections::BTreeSet<String>>,
    /// Rewritten names of the template's own variables that hide what the evaluation lends
    /// under the same name (`variables.params`, `variables.anyObject`).
    shadowed: Vec<String>,
    variables: Vec<Named>,
    match_conditions: Vec<Named>,
    validations: Vec<Validation>,
    audit_annotations: Vec<Annotation>,
}

impl std::fmt::Debug for CelTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelTemplate")
            .field("variables", &self.variables.len())
            .field("validations", &self.validations.len())
            .finish()
    }
}

/// The CEL environment: the standard library, the string and list extensions, and the
/// Kubernetes quantity, URL and regex libraries.
pub(super) fn environment() -> Result<Env, String> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .map_err(|e| format!("cannot set up CEL: {e:?}"))?;
    env.add_extension(cel::extensions::lists)
        .map_err(|e| format!("cannot set up CEL: {e:?}"))?;
    super::cel_lib::register(&mut env)?;
    env.set_error_on_duplicate_map_keys(false);
    Ok(env)
}

fn text_of<'a>(entry: &'a Value, field: &str) -> &'a str {
    entry.get(field).and_then(Value::as_str).unwrap_or("")
}

impl CelTemplate {
    /// Compiles a `K8sNativeValidation` source: `variables`, `matchConditions`, `validations`.
    pub fn compile(source: &Value) -> Result<Self, String> {
        let env = environment()?;
        // Every expression of the source, to see whether `variables` can be rewritten.
        let texts: Vec<&str> = [
            "variables",
            "matchConditions",
            "validations",
            "auditAnnotations",
        ]
        .iter()
        .flat_map(|field| {
            source
                .get(*field)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .flat_map(|entry| {
            ["expression", "messageExpression", "valueExpression"]
                .into_iter()
                .map(move |f| text_of(entry, f))
        })
        .filter(|t| !t.is_empty())
        .collect();
        let rewritten: Option<Vec<Rewritten>> = texts.iter().map(|t| rewrite(t)).collect();
        if let Some(rewritten) = rewritten {
            let by_text: HashMap<&str, &str> = texts
                .iter()
                .zip(&rewritten)
                .map(|(text, r)| (*text, r.text.as_str()))
                .collect();
            let uses = rewritten.iter().flat_map(|r| r.names.clone()).collect();
            if let Ok(mut template) = Self::compile_with(source, env, &|text| {
                by_text.get(text).map_or(text, |r| *r).to_string()
            }) {
                template.uses = Some(uses);
                return Ok(template);
            }
            return Self::compile_with(source, environment()?, &|text| text.to_string());
        }
        Self::compile_with(source, env, &|text| text.to_string())
    }

    /// Compiles a source with each expression's text as `prepare` gives it.
    fn compile_with(
        source: &Value,
        env: Env,
        prepare: &dyn Fn(&str) -> String,
    ) -> Result<Self, String> {
        let compile = |what: &str, text: &str| {
            env.compile(&prepare(text))
                .map_err(|e| format!("{what}: CEL does not compile: {e}"))
        };
        let list = |field: &str| {
            source
                .get(field)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let mut variables = Vec::new();
        for (i, v) in list("variables").iter().enumerate() {
            let name = text_of(v, "name");
            if name.is_empty() {
                return Err(format!("variables[{i}]: name is missing"));
            }
            variables.push(Named {
                name: name.to_string(),
                text: text_of(v, "expression").to_string(),
                program: compile(
                    &format!("variables[{i}] ({name})"),
                    text_of(v, "expression"),
                )?,
            });
        }
        let mut match_conditions = Vec::new();
        for (i, m) in list("matchConditions").iter().enumerate() {
            let name = text_of(m, "name").to_string();
            match_conditions.push(Named {
                name: name.clone(),
                text: text_of(m, "expression").to_string(),
                program: compile(
                    &format!("matchConditions[{i}] ({name})"),
                    text_of(m, "expression"),
                )?,
            });
        }
        let mut validations = Vec::new();
        for (i, v) in list("validations").iter().enumerate() {
            let text = text_of(v, "expression").to_string();
            let message_expression = match text_of(v, "messageExpression") {
                "" => None,
                m => Some(compile(&format!("validations[{i}].messageExpression"), m)?),
            };
            validations.push(Validation {
                expression: compile(&format!("validations[{i}].expression"), &text)?,
                text,
                message: v.get("message").and_then(Value::as_str).map(String::from),
                message_expression,
            });
        }
        let mut audit_annotations = Vec::new();
        for (i, a) in list("auditAnnotations").iter().enumerate() {
            let key = text_of(a, "key");
            if key.is_empty() {
                return Err(format!("auditAnnotations[{i}]: key is missing"));
            }
            audit_annotations.push(Annotation {
                key: key.to_string(),
                text: text_of(a, "valueExpression").to_string(),
                value: compile(
                    &format!("auditAnnotations[{i}].valueExpression"),
                    text_of(a, "valueExpression"),
                )?,
            });
        }
        if validations.is_empty() && audit_annotations.is_empty() {
            return Err("the CEL source has no validations".into());
        }
        let shadowed = variables
            .iter()
            .filter(|v| v.name == "params" || v.name == "anyObject")
            .map(|v| rewritten_name(&v.name))
            .collect();
        Ok(CelTemplate {
            env: Arc::new(env),
            uses: None,
            shadowed,
            variables,
            match_conditions,
            validations,
            audit_annotations,
        })
    }

    /// Evaluates the validations for a review (`input.review`) and the constraint's parameters.
    pub fn evaluate(&self, review: &Value, parameters: &Value) -> Result<Vec<Violation>, String> {
        self.evaluate_all(review, parameters).map(|o| o.violations)
    }

    /// Evaluates the validations and the audit annotations.
    pub fn evaluate_all(&self, review: &Value, parameters: &Value) -> Result<CelOutcome, String> {
        self.evaluate_input(&CelInput::from_json(review, parameters))
    }

    /// Evaluates the validations and the audit annotations on converted values.
    pub fn evaluate_input(&self, input: &CelInput) -> Result<CelOutcome, String> {
        // Within a deadline (see `engine::within_deadline`), checked before each expression.
        let deadline = super::deadline();
        let in_time = || match deadline {
            Some(at) if std::time::Instant::now() >= at => {
                Err("evaluation stopped: the deadline passed".to_string())
            }
            _ => Ok(()),
        };
        // The review's values are lent to CEL as the trees built once per review (and per
        // parameters), not converted again for each evaluation.
        let lent = Lent {
            input,
            shadowed: &self.shadowed,
        };
        let mut context = Context::with_env(self.env.clone());
        context.set_variable_resolver(&lent);
        let uses = |name: &str| self.uses.as_ref().is_none_or(|u| u.contains(name));
        let bind = |context: &mut Context, name: &str, value: &dyn Fn() -> CelValue| {
            if uses(name) && lent.resolve(name).is_none() {
                context.add_variable_from_value(name, value());
            }
        };
        bind(&mut context, "object", &|| input.object.clone());
        bind(&mut context, "oldObject", &|| input.old_object.clone());
        bind(&mut context, "request", &|| input.request.clone());
        bind(&mut context, "params", &|| input.params.clone());
        bind(&mut context, "namespaceObject", &|| CelValue::Null);
        // Variables are evaluated in order, each seeing the ones before it. As in Kubernetes,
        // where variables are evaluated only when used, a variable that fails is left out:
        // an expression that uses it fails with the variable's own error, the others are
        // unaffected.
        let mut failed: Vec<(String, String)> = Vec::new();
        // Rewritten sources bind each variable as a name of its own; the others read a
        // `variables` map, given anew before each variable.
        let mut map: Option<HashMap<String, CelValue>> = match self.uses {
            Some(_) => {
                bind(&mut context, &rewritten_name("anyObject"), &|| {
                    input.any_object()
                });
                bind(&mut context, &rewritten_name("params"), &|| {
                    input.params.clone()
                });
                for name in ["anyObject", "params"] {
                    bind(&mut context, &set_flag_name(name), &|| CelValue::Bool(true));
                }
                for variable in &self.variables {
                    bind(&mut context, &set_flag_name(&variable.name), &|| {
                        CelValue::Bool(false)
                    });
                }
                None
            }
            None => Some(HashMap::from([
                ("anyObject".to_string(), input.any_object()),
                ("params".to_string(), input.params.clone()),
            ])),
        };
        for variable in &self.variables {
            in_time()?;
            if let Some(vars) = &map {
                context.add_variable_from_value("variables", CelValue::from(vars.clone()));
            }
            let outcome = match &mut map {
                Some(vars) => variable.program.execute(&context).map(|value| {
                    vars.insert(variable.name.clone(), value);
                }),
                // The value stays a CEL tree: bound as it was computed, not converted to a
                // `Value` and back.
                None => CelValue::resolve_val(variable.program.expression(), &context)
                    .map(|value| value.into_owned())
                    .map(|value| {
                        let name = rewritten_name(&variable.name);
                        if uses(&name) {
                            context.add_variable_as_val(name, value);
                        }
                        bind(&mut context, &set_flag_name(&variable.name), &|| {
                            CelValue::Bool(true)
                        });
                    }),
            };
            match outcome {
                Ok(()) => {}
                Err(e) => {
                    let message = explain(&variable.text, &failed).unwrap_or_else(|| readable(&e));
                    failed.push((variable.name.clone(), message));
                }
            }
        }
        if let Some(vars) = map {
            context.add_variable_from_value("variables", CelValue::from(vars));
        }
        let cause = |text: &str, e: &cel::ExecutionError| {
            explain(text, &failed).unwrap_or_else(|| readable(e))
        };
        for Named {
            name,
            text,
            program,
        } in &self.match_conditions
        {
            in_time()?;
            match program.execute(&context) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Ok(CelOutcome::default()),
                Ok(other) => {
                    return Err(format!(
                        "matchCondition {name}: expected a bool, got {:?}",
                        other.type_of()
                    ))
                }
                Err(e) => return Err(format!("matchCondition {name}: {}", cause(text, &e))),
            }
        }
        let mut violations = Vec::new();
        for v in &self.validations {
            in_time()?;
            match v.expression.execute(&context) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => {
                    let from_expression = v
                        .message_expression
                        .as_ref()
                        .and_then(|m| m.execute(&context).ok())
                        .and_then(|m| match m {
                            CelValue::String(s) => Some(s.to_string()),
                            _ => None,
                        });
                    let msg = from_expression
                        .or_else(|| v.message.clone())
                        .unwrap_or_else(|| format!("failed expression: {}", v.text.trim()));
                    violations.push(Violation {
                        msg,
                        details: Value::Null,
                    });
                }
                Ok(other) => {
                    return Err(format!(
                        "validation `{}`: expected a bool, got {:?}",
                        v.text.trim(),
                        other.type_of()
                    ))
                }
                Err(e) => {
                    return Err(format!(
                        "validation `{}`: {}",
                        v.text.trim(),
                        cause(&v.text, &e)
                    ))
                }
            }
        }
        violations.sort_by(|a, b| a.msg.cmp(&b.msg));
        // A value expression gives a string, or null to leave the annotation out.
        let mut annotations = Vec::new();
        for a in &self.audit_annotations {
            in_time()?;
            match a.value.execute(&context) {
                Ok(CelValue::String(s)) => annotations.push(AuditAnnotation {
                    key: a.key.clone(),
                    value: s.to_string(),
                }),
                Ok(CelValue::Null) => {}
                Ok(other) => {
                    return Err(format!(
                        "auditAnnotation {}: expected a string or null, got {:?}",
                        a.key,
                        other.type_of()
                    ))
                }
                Err(e) => return Err(format!("auditAnnotation {}: {}", a.key, cause(&a.text, &e))),
            }
        }
        Ok(CelOutcome {
            violations,
            annotations,
        })
    }
}

/// An execution error as the expression was written: `variables.<name>`, not the name it is
/// compiled as.
fn readable(e: &cel::ExecutionError) -> String {
    e.to_string().replace(VARIABLES, "variables.")
}

/// The top-level name `variables.<name>` is compiled as.
fn rewritten_name(name: &str) -> String {
    format!("{VARIABLES}{name}")
}

/// What the top-level names `variables.<name>` are compiled as start with.
const VARIABLES: &str = "__variables_";

/// The top-level name `has(variables.<name>)` is compiled as.
fn set_flag_name(name: &str) -> String {
    format!("{VARIABLES}has_{name}")
}

/// An expression with `variables.<name>` written as a top-level name, and every top-level name
/// it uses (identifiers not after a `.`; string literals are skipped).
struct Rewritten {
    text: String,
    names: Vec<String>,
}

/// Rewrites `variables.<name>` in an expression; `None` when `variables` is used any other way
/// (indexed, passed whole, tested with `has(variables.x)`).
fn rewrite(text: &str) -> Option<Rewritten> {
    let chars: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut names = Vec::new();
    let mut i = 0;
    // The last character outside blanks, to tell a member name (after `.`) from a top-level one.
    let mut last = ' ';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            // A string literal, raw when an `r` (or `R`) prefix was just written.
            let raw = i > 0
                && matches!(chars[i - 1], 'r' | 'R')
                && (i < 2 || !ident(chars[i - 2]) || matches!(chars[i - 2], 'b' | 'B'));
            let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
            let quote = if triple { 3 } else { 1 };
            out.extend(&chars[i..i + quote]);
            i += quote;
            loop {
                let ch = *chars.get(i)?;
                if ch == '\\' && !raw {
                    out.push(ch);
                    out.push(*chars.get(i + 1)?);
                    i += 2;
                    continue;
                }
                if ch == c
                    && (!triple || (chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c)))
                {
                    out.extend(&chars[i..i + quote]);
                    i += quote;
                    break;
                }
                out.push(ch);
                i += 1;
            }
            last = c;
            continue;
        }
        if ident(c) && !c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if last == '.' {
                out.push_str(&word);
            } else if word == "variables" {
                if chars.get(i) != Some(&'.') {
                    return None;
                }
                let begin = i + 1;
                let mut end = begin;
                while end < chars.len() && ident(chars[end]) {
                    end += 1;
                }
                if end == begin {
                    return None;
                }
                let name: String = chars[begin..end].iter().collect();
                let closes = chars[end..]
                    .iter()
                    .find(|c| !c.is_whitespace())
                    .is_some_and(|c| *c == ')');
                if closes && out.trim_end().ends_with("has(") {
                    // `has(variables.x)` tests whether x is set (`has(variables.x.y)` reads
                    // x): a name of its own, true once x has a value.
                    let kept = out.trim_end().len() - "has(".len();
                    if out[..kept]
                        .chars()
                        .last()
                        .is_some_and(|c| ident(c) || c == '.')
                    {
                        return None;
                    }
                    out.truncate(kept);
                    let flag = set_flag_name(&name);
                    out.push_str(&flag);
                    names.push(flag);
                    i = end + chars[end..].iter().position(|c| *c == ')')? + 1;
                    last = 'a';
                    continue;
                }
                let rewritten = rewritten_name(&name);
                out.push_str(&rewritten);
                names.push(rewritten);
                i = end;
            } else {
                out.push_str(&word);
                names.push(word);
            }
            last = 'a';
            continue;
        }
        if c.is_ascii_digit() {
            // A number, with any suffix or exponent letters it carries.
            while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                if chars[i] == '.' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                out.push(chars[i]);
                i += 1;
            }
            last = '0';
            continue;
        }
        out.push(c);
        if !c.is_whitespace() {
            last = c;
        }
        i += 1;
    }
    Some(Rewritten { text: out, names })
}

/// The cause of an expression's error when it uses a variable that failed: that variable's
/// own error (CEL reports only that the variable is missing).
fn explain(text: &str, failed: &[(String, String)]) -> Option<String> {
    failed.iter().find_map(|(name, message)| {
        uses_variable(text, name).then(|| format!("variable `{name}` failed: {message}"))
    })
}

/// Whether an expression reads `variables.<name>`.
fn uses_variable(text: &str, name: &str) -> bool {
    let pattern = format!("variables.{name}");
    text.match_indices(&pattern).any(|(at, _)| {
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
        let after_ok = text[at + pattern.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        before_ok && after_ok
    })
}

/// What a CEL expression sees of a review: `object`, `oldObject`, `request` and `params`,
/// converted once. Fields whose value is null are left out of objects, as the API server drops
/// them before admission (a `livenessProbe:` with no value is no probe).
#[derive(Debug, Clone)]
pub struct CelInput {
    pub object: CelValue,
    pub old_object: CelValue,
    pub request: CelValue,
    pub params: CelValue,
    /// `object`, `oldObject` and `request` as CEL's own value trees, built once.
    trees: Arc<Trees>,
    /// `params` as a tree, built once per parameters.
    params_tree: Arc<Tree>,
}

/// Parameters as given (kept alive so that their address stays theirs), as a value and a tree.
type ConvertedParams = (regorus::Value, CelValue, Arc<Tree>);

/// A value as the tree CEL evaluates, or none when CEL has no tree for it.
type Tree = Option<Box<dyn Val>>;

fn tree(value: &CelValue) -> Tree {
    super::cel_shared::shared_tree(value)
}

#[derive(Debug)]
struct Trees {
    object: Tree,
    old_object: Tree,
    request: Tree,
}

/// Lends an input's trees to an evaluation: `object`, `oldObject`, `request`, `params`, and
/// the rewritten `variables.anyObject` and `variables.params` unless a variable of the
/// template's own has that name.
struct Lent<'a> {
    input: &'a CelInput,
    shadowed: &'a [String],
}

impl VariableResolver for Lent<'_> {
    fn resolve<'b>(&'b self, name: &str) -> Option<CowVal<'b, 'b>> {
        let trees = &self.input.trees;
        let tree = match name {
            "object" => &trees.object,
            "oldObject" => &trees.old_object,
            "request" => &trees.request,
            "params" => &*self.input.params_tree,
            _ if self.shadowed.iter().any(|s| s == name) => return None,
            _ => match name.strip_prefix(VARIABLES) {
                Some("params") => &*self.input.params_tree,
                Some("anyObject") if matches!(self.input.object, CelValue::Null) => {
                    &trees.old_object
                }
                Some("anyObject") => &trees.object,
                _ => return None,
            },
        };
        tree.as_deref().map(CowVal::Borrowed)
    }
}

impl CelInput {
    /// From the review (`input.review`) and the parameters as JSON.
    pub fn from_json(review: &Value, parameters: &Value) -> CelInput {
        let request: HashMap<String, CelValue> = review
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect())
            .unwrap_or_default();
        CelInput::from_request(request, to_cel(parameters))
    }

    /// From the review and the parameters as regorus values, without going through JSON text.
    pub fn from_rego(review: &regorus::Value, parameters: &regorus::Value) -> CelInput {
        let request: HashMap<String, CelValue> = match review {
            regorus::Value::Object(fields) => fields
                .iter()
                .filter_map(|(k, v)| match k {
                    regorus::Value::String(k) => Some((k.to_string(), rego_to_cel(v))),
                    _ => None,
                })
                .collect(),
            _ => HashMap::new(),
        };
        CelInput::from_request(request, rego_to_cel(parameters))
    }

    /// As [`CelInput::from_rego`], reusing on this thread the conversion of the same review
    /// (the same allocation, kept alive by the cache) and of the same parameters: a review is
    /// converted once however many CEL constraints match it.
    pub fn from_rego_cached(review: &regorus::Value, parameters: &regorus::Value) -> CelInput {
        thread_local! {
            static REVIEW: RefCell<Option<(regorus::Value, CelInput)>> = const { RefCell::new(None) };
            static PARAMS: RefCell<HashMap<usize, ConvertedParams>> = RefCell::new(HashMap::new());
        }
        let convert = || {
            let converted = rego_to_cel(parameters);
            let params_tree = Arc::new(tree(&converted));
            (converted, params_tree)
        };
        let (params, params_tree) = match identity(parameters) {
            Some(id) => PARAMS.with(|cache| {
                let mut cache = cache.borrow_mut();
                if let Some((_, converted, params_tree)) = cache.get(&id) {
                    return (converted.clone(), params_tree.clone());
                }
                if cache.len() >= 1024 {
                    cache.clear();
                }
                let (converted, params_tree) = convert();
                cache.insert(
                    id,
                    (parameters.clone(), converted.clone(), params_tree.clone()),
                );
                (converted, params_tree)
            }),
            None => convert(),
        };
        let Some(id) = identity(review) else {
            return CelInput::from_rego(review, parameters);
        };
        REVIEW.with(|cache| {
            let mut cache = cache.borrow_mut();
            match cache.as_ref() {
                Some((kept, input)) if identity(kept) == Some(id) => CelInput {
                    params,
                    params_tree,
                    ..input.clone()
                },
                _ => {
                    let input = CelInput::from_rego(review, &regorus::Value::Null);
                    *cache = Some((review.clone(), input.clone()));
                    CelInput {
                        params,
                        params_tree,
                        ..input
                    }
                }
            }
        })
    }

    fn from_request(request: HashMap<String, CelValue>, params: CelValue) -> CelInput {
        let field = |name: &str| request.get(name).cloned().unwrap_or(CelValue::Null);
        let (object, old_object) = (field("object"), field("oldObject"));
        let request = CelValue::from(request);
        CelInput {
            trees: Arc::new(Trees {
                object: tree(&object),
                old_object: tree(&old_object),
                request: tree(&request),
            }),
            params_tree: Arc::new(tree(&params)),
            object,
            old_object,
            request,
            params,
        }
    }

    /// `object`, or `oldObject` when there is none (a DELETE).
    fn any_object(&self) -> CelValue {
        if matches!(self.object, CelValue::Null) {
            self.old_object.clone()
        } else {
            self.object.clone()
        }
    }
}

/// The address of an object's or array's contents: the same address (while a clone is held)
/// is the same value.
fn identity(value: &regorus::Value) -> Option<usize> {
    match value {
        regorus::Value::Object(o) => Some(&**o as *const _ as *const () as usize),
        regorus::Value::Array(a) => Some(&**a as *const _ as *const () as usize),
        _ => None,
    }
}

/// A regorus value to CEL: integers become `int` (`uint` above i64), other numbers `double`,
/// sets lists; null object fields are left out.
pub fn rego_to_cel(value: &regorus::Value) -> CelValue {
    use regorus::Value as R;
    match value {
        R::Null | R::Undefined => CelValue::Null,
        R::Bool(b) => CelValue::Bool(*b),
        R::Number(n) => {
            if let (true, Some(i)) = (n.is_integer(), n.as_i64()) {
                CelValue::Int(i)
            } else if let (true, Some(u)) = (n.is_integer(), n.as_u64()) {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        R::String(s) => CelValue::String(Arc::new(s.to_string())),
        R::Array(items) => CelValue::List(Arc::new(items.iter().map(rego_to_cel).collect())),
        R::Set(items) => CelValue::List(Arc::new(items.iter().map(rego_to_cel).collect())),
        R::Object(fields) => {
            let map: HashMap<String, CelValue> = fields
                .iter()
                .filter(|(_, v)| !matches!(v, R::Null))
                .filter_map(|(k, v)| match k {
                    R::String(k) => Some((k.to_string(), rego_to_cel(v))),
                    _ => None,
                })
                .collect();
            CelValue::from(map)
        }
    }
}

/// JSON to CEL: integers become `int` (`uint` above i64), other numbers `double`; null object
/// fields are left out.
pub fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                CelValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                CelValue::UInt(u)
            } else {
                CelValue::Float(n.as_f64().unwrap_or(0.0))
            }
        }
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<String, CelValue> = m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect();
            CelValue::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(source: Value) -> CelTemplate {
        CelTemplate::compile(&source).expect("compiles")
    }

    #[test]
    fn variables_chain_and_message_expressions() {
        let t = template(json!({
            "variables": [
                {"name": "containers", "expression": "has(variables.anyObject.spec.containers) ? variables.anyObject.spec.containers : []"},
                {"name": "bad", "expression": "variables.containers.filter(c, c.image.endsWith(':latest')).map(c, c.name)"}
            ],
            "validations": [
                {"expression": "size(variables.bad) == 0", "messageExpression": "'latest images: ' + variables.bad.join(', ')"},
                {"expression": "variables.params.max >= size(variables.containers)", "message": "too many containers"}
            ]
        }));
        let review = json!({"operation": "CREATE", "object": {"spec": {"containers": [
            {"name": "a", "image": "nginx:latest"}, {"name": "b", "image": "nginx:1"}, {"name": "c", "image": "x:latest"}
        ]}}});
        let v = t.evaluate(&review, &json!({"max": 2})).expect("evaluates");
        let msgs: Vec<&str> = v.iter().map(|v| v.msg.as_str()).collect();
        assert_eq!(msgs, vec!["latest images: a, c", "too many containers"]);
        assert!(t.evaluate(&review, &json!({"max": 5})).expect("ok").len() == 1);
    }

    #[test]
    fn any_object_is_old_object_on_delete_and_request_is_visible() {
        let t = template(json!({
            "validations": [{"expression": "request.operation != 'DELETE' || variables.anyObject.metadata.name != 'keep'"}]
        }));
        let review = json!({"operation": "DELETE", "object": null, "oldObject": {"metadata": {"name": "keep"}}});
        let v = t.evaluate(&review, &json!({})).expect("ok");
        assert_eq!(v[0].msg, "failed expression: request.operation != 'DELETE' || variables.anyObject.metadata.name != 'keep'");
    }

    #[test]
    fn match_conditions_gate_validations() {
        let t = template(json!({
            "matchConditions": [{"name": "only-prod", "expression": "object.metadata.namespace == 'prod'"}],
            "validations": [{"expression": "false", "message": "no"}]
        }));
        assert!(t
            .evaluate(
                &json!({"object": {"metadata": {"namespace": "dev"}}}),
                &json!({})
            )
            .expect("ok")
            .is_empty());
        assert_eq!(
            t.evaluate(
                &json!({"object": {"metadata": {"namespace": "prod"}}}),
                &json!({})
            )
            .expect("ok")
            .len(),
            1
        );
    }

    #[test]
    fn string_library_functions() {
        let t = template(json!({"validations": [{"expression":
            "'A-B'.lowerAscii() == 'a-b' && 'a*'.replace('*', '') == 'a' && 'a,b'.split(',') == ['a', 'b'] && ['x', 'y'].join('-') == 'x-y' && 'abc'.matches('^a') && 'abc'.startsWith('ab') && 'abc'.contains('b') && 'a.b'.indexOf('.') == 1 && ' x '.trim() == 'x'"
        }]}));
        assert!(t
            .evaluate(&json!({"object": {}}), &json!({}))
            .expect("ok")
            .is_empty());
    }

    #[test]
    fn errors_are_reported_not_panics() {
        assert!(
            CelTemplate::compile(&json!({"validations": [{"expression": "1 +"}]}))
                .unwrap_err()
                .contains("does not compile")
        );
        assert!(CelTemplate::compile(&json!({"validations": []})).is_err());
        let t = template(json!({"validations": [{"expression": "object.nope.deeper == 1"}]}));
        assert!(t.evaluate(&json!({"object": {}}), &json!({})).is_err());
        // A failing variable only fails the expressions that use it.
        let t = template(json!({
            "variables": [{"name": "broken", "expression": "object.nope.deeper"}, {"name": "fine", "expression": "1"}],
            "validations": [{"expression": "variables.fine == 1"}]
        }));
        assert!(t
            .evaluate(&json!({"object": {}}), &json!({}))
            .expect("ok")
            .is_empty());
        let t = template(json!({
            "variables": [{"name": "broken", "expression": "object.nope.deeper"}],
            "validations": [{"expression": "false", "messageExpression": "'got ' + variables.broken", "message": "fallback"}]
        }));
        assert_eq!(
            t.evaluate(&json!({"object": {}}), &json!({})).expect("ok")[0].msg,
            "fallback"
        );
        let t = template(json!({"validations": [{"expression": "'not a bool'"}]}));
        assert!(t
            .evaluate(&json!({"object": {}}), &json!({}))
            .unwrap_err()
            .contains("expected a bool"));
    }

    /// A probe check in the style of the library's host-probes template.
    fn probe_template() -> CelTemplate {
        template(json!({
            "variables": [
                {"name": "containers", "expression": "has(object.spec.containers) ? object.spec.containers : []"},
                {"name": "badProbeContainers", "expression": "variables.containers.filter(c, has(c.livenessProbe) && has(c.livenessProbe.httpGet) && has(c.livenessProbe.httpGet.host)).map(c, 'Container ' + c.name + ' has probe with host field set')"}
            ],
            "validations": [
                {"expression": "size(variables.badProbeContainers) == 0", "messageExpression": "variables.badProbeContainers.join(', ')"}
            ]
        }))
    }

    #[test]
    fn null_fields_are_absent() {
        let t = probe_template();
        let pod = |probe: Value| json!({"operation": "CREATE", "object": {"spec": {"containers": [{"name": "c", "livenessProbe": probe}]}}, "oldObject": null});
        for probe in [Value::Null, json!({}), json!({"httpGet": null})] {
            let v = t.evaluate(&pod(probe.clone()), &json!({}));
            assert_eq!(v, Ok(Vec::new()), "livenessProbe: {probe}");
        }
        let v = t
            .evaluate(&pod(json!({"httpGet": {"host": "x"}})), &json!({}))
            .expect("evaluates");
        assert_eq!(v[0].msg, "Container c has probe with host field set");
        // The same through regorus values (the path `check` takes).
        let review = crate::engine::to_rego(&pod(Value::Null));
        let input = CelInput::from_rego(&review, &crate::engine::to_rego(&json!({})));
        assert!(t
            .evaluate_input(&input)
            .expect("evaluates")
            .violations
            .is_empty());
        assert_eq!(input.old_object, CelValue::Null);
    }

    #[test]
    fn cached_conversion_follows_the_values() {
        let a = crate::engine::to_rego(&json!({"object": {"n": 1}, "oldObject": null}));
        let b = crate::engine::to_rego(&json!({"object": {"n": 2}, "oldObject": null}));
        let p1 = crate::engine::to_rego(&json!({"max": 1}));
        let p2 = crate::engine::to_rego(&json!({"max": 2}));
        for (review, params) in [(&a, &p1), (&a, &p2), (&b, &p2), (&a, &p1), (&b, &p1)] {
            let cached = CelInput::from_rego_cached(review, params);
            let fresh = CelInput::from_rego(review, params);
            assert_eq!(cached.object, fresh.object);
            assert_eq!(cached.request, fresh.request);
            assert_eq!(cached.params, fresh.params);
        }
    }

    #[test]
    fn error_in_a_variable_is_reported_as_its_own() {
        let t = template(json!({
            "variables": [
                {"name": "first", "expression": "object.spec.missing.deeper"},
                {"name": "second", "expression": "variables.first + 1"}
            ],
            "validations": [{"expression": "variables.second > 0"}]
        }));
        let e = t
            .evaluate(&json!({"object": {"spec": {}}}), &json!({}))
            .unwrap_err();
        assert!(e.starts_with("validation `variables.second > 0`: variable `second` failed: variable `first` failed: "), "{e}");
        assert!(!e.contains("No such key: second"), "{e}");
        assert!(e.contains("missing"), "{e}");
        assert!(uses_variable("variables.a+variables.bb", "bb"));
        assert!(!uses_variable("variables.abc", "ab"));
        assert!(!uses_variable("x.variables.ab", "ab"));
    }

    #[test]
    fn numbers_convert_to_cel_types() {
        assert_eq!(to_cel(&json!(3)), CelValue::Int(3));
        assert_eq!(to_cel(&json!(u64::MAX)), CelValue::UInt(u64::MAX));
        assert_eq!(to_cel(&json!(1.5)), CelValue::Float(1.5));
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "[a-zA-Z0-9 .:/%?=&-]{0,12}".prop_map(Value::from),
            prop_oneof![
                Just("1.5Gi"),
                Just("100m"),
                Just("https://x.io:8/p?q=1"),
                Just("/p"),
                Just("nginx:latest")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("metadata".to_string()),
                        Just("spec".to_string()),
                        Just("containers".to_string()),
                        Just("image".to_string()),
                        Just("name".to_string()),
                        Just("resources".to_string()),
                        "[a-z]{1,6}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Arbitrary objects and parameters never panic the CEL path: every expression gives
        /// a result or an error, the same one every time.
        #[test]
        fn arbitrary_objects_never_panic(object in json_value(), params in json_value()) {
            let t = template(json!({
                "variables": [
                    {"name": "containers", "expression": "has(object.spec) && has(object.spec.containers) ? object.spec.containers : []"},
                    {"name": "images", "expression": "variables.containers.map(c, c.image)"}
                ],
                "matchConditions": [{"name": "any", "expression": "object != null || true"}],
                "validations": [
                    {"expression": "variables.images.all(i, !i.endsWith(':latest'))", "messageExpression": "'bad: ' + variables.images.join(',')"},
                    {"expression": "!has(object.spec) || !isQuantity(string(object.spec)) || quantity(string(object.spec)).sign() >= 0"},
                    {"expression": "!has(object.metadata) || !isURL(string(object.metadata)) || url(string(object.metadata)).getScheme() != 'ftp'"},
                    {"expression": "size(string(params).findAll('[0-9]+')) >= 0"},
                    {"expression": "object.spec.replicas <= params.max", "message": "too many"}
                ]
            }));
            let review = json!({"operation": "CREATE", "object": object});
            let first = t.evaluate(&review, &params);
            let second = t.evaluate(&review, &params);
            proptest::prop_assert_eq!(first, second);
            let always = template(json!({"validations": [{"expression": "true"}]}));
            proptest::prop_assert!(always.evaluate(&review, &params).expect("true holds").is_empty());
        }
    }
}

#[cfg(test)]
mod rewrite_tests {
    use super::*;

    #[test]
    fn variables_become_top_level_names_outside_strings() {
        let r = rewrite(r#"has(variables.anyObject.metadata) && variables.params.labels.all(e, e.key in variables.anyObject.metadata.labels) && "variables.x" != 'it''s' && r"\d" != """variables.y""""#)
            .expect("rewritten");
        assert_eq!(
            r.text,
            r#"has(__variables_anyObject.metadata) && __variables_params.labels.all(e, e.key in __variables_anyObject.metadata.labels) && "variables.x" != 'it''s' && r"\d" != """variables.y""""#
        );
        assert!(r.names.contains(&"__variables_params".to_string()));
        assert!(r.names.contains(&"e".to_string()));
        assert!(
            !r.names.contains(&"labels".to_string()),
            "a member is no top-level name"
        );
        let r = rewrite("object.spec.x == oldObject.spec.x && 1.5e3 > 2u").expect("rewritten");
        assert!(
            r.names.contains(&"object".to_string()) && r.names.contains(&"oldObject".to_string())
        );
        assert!(!r.names.iter().any(|n| n == "spec" || n == "x"));
        // `variables` used as a whole map is left as written.
        for whole in [
            "xhas(variables.x)",
            "variables['x']",
            "size(variables)",
            "'a\\'b' + variables",
        ] {
            assert!(rewrite(whole).is_none(), "{whole}");
        }
        assert!(rewrite("'unterminated").is_none());
        let r = rewrite("!has( variables.x ) || has(variables.y.z)").expect("rewritten");
        assert_eq!(r.text, "!__variables_has_x || has(__variables_y.z)");
    }

    #[test]
    fn errors_name_variables_as_written() {
        let t = CelTemplate::compile(&serde_json::json!({
            "validations": [{"expression": "variables.missing > 1"}]
        }))
        .expect("compiles");
        assert!(t.uses.is_some());
        let e = t
            .evaluate(&serde_json::json!({"object": {}}), &serde_json::json!({}))
            .unwrap_err();
        assert!(
            e.contains("variables.missing") && !e.contains("__variables_"),
            "{e}"
        );
    }

    #[test]
    fn has_of_a_variable_is_true_once_it_has_a_value() {
        // `x` fails on an object without replicas (the field is missing), `y` never does.
        let source = serde_json::json!({
            "variables": [
                {"name": "before", "expression": "has(variables.x)"},
                {"name": "x", "expression": "variables.anyObject.spec.replicas"},
                {"name": "y", "expression": "has(variables.x) && has(variables.params)"}
            ],
            "validations": [
                {"expression": "!has(variables.x) || variables.x < 3", "message": "too many"},
                {"expression": "!variables.before", "message": "x was set before it was evaluated"},
                {"expression": "variables.y == has(variables.anyObject.spec.replicas)", "message": "y"}
            ]
        });
        let t = CelTemplate::compile(&source).expect("compiles");
        let uses = t.uses.as_ref().expect("rewritten");
        assert!(uses.contains("__variables_has_x"), "{uses:?}");
        let messages = |object: serde_json::Value| -> Vec<String> {
            t.evaluate(
                &serde_json::json!({"object": object}),
                &serde_json::json!({}),
            )
            .expect("evaluates")
            .into_iter()
            .map(|v| v.msg)
            .collect()
        };
        assert_eq!(
            messages(serde_json::json!({"spec": {"replicas": 5}})),
            ["too many"]
        );
        assert!(messages(serde_json::json!({"spec": {"replicas": 1}})).is_empty());
        assert!(messages(serde_json::json!({"spec": {}})).is_empty());
    }
}
