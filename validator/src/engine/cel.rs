//! Gatekeeper's K8sNativeValidation engine: CEL variables, match conditions and validations.

use std::collections::HashMap;
use std::sync::Arc;

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
    value: Program,
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
pub struct CelTemplate {
    env: Arc<Env>,
    variables: Vec<(String, Program)>,
    match_conditions: Vec<(String, Program)>,
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
fn environment() -> Result<Env, String> {
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
        let compile = |what: &str, text: &str| {
            env.compile(text)
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
            variables.push((
                name.to_string(),
                compile(
                    &format!("variables[{i}] ({name})"),
                    text_of(v, "expression"),
                )?,
            ));
        }
        let mut match_conditions = Vec::new();
        for (i, m) in list("matchConditions").iter().enumerate() {
            let name = text_of(m, "name").to_string();
            match_conditions.push((
                name.clone(),
                compile(
                    &format!("matchConditions[{i}] ({name})"),
                    text_of(m, "expression"),
                )?,
            ));
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
                value: compile(
                    &format!("auditAnnotations[{i}].valueExpression"),
                    text_of(a, "valueExpression"),
                )?,
            });
        }
        if validations.is_empty() && audit_annotations.is_empty() {
            return Err("the CEL source has no validations".into());
        }
        Ok(CelTemplate {
            env: Arc::new(env),
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
        let object = review.get("object").cloned().unwrap_or(Value::Null);
        let old_object = review.get("oldObject").cloned().unwrap_or(Value::Null);
        let any_object = if object.is_null() {
            old_object.clone()
        } else {
            object.clone()
        };
        let params = to_cel(parameters);
        let mut vars: HashMap<String, CelValue> = HashMap::new();
        vars.insert("anyObject".into(), to_cel(&any_object));
        vars.insert("params".into(), params.clone());
        let mut context = Context::with_env(self.env.clone());
        context.add_variable_from_value("object", to_cel(&object));
        context.add_variable_from_value("oldObject", to_cel(&old_object));
        context.add_variable_from_value("request", to_cel(review));
        context.add_variable_from_value("params", params);
        context.add_variable_from_value("namespaceObject", CelValue::Null);
        // Variables are evaluated in order, each seeing the ones before it. As in Kubernetes,
        // where variables are evaluated only when used, a variable that fails is left out:
        // an expression that uses it fails, the others are unaffected.
        for (name, program) in &self.variables {
            context.add_variable_from_value("variables", CelValue::from(vars.clone()));
            if let Ok(value) = program.execute(&context) {
                vars.insert(name.clone(), value);
            }
        }
        context.add_variable_from_value("variables", CelValue::from(vars));
        for (name, program) in &self.match_conditions {
            match program.execute(&context) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Ok(CelOutcome::default()),
                Ok(other) => {
                    return Err(format!(
                        "matchCondition {name}: expected a bool, got {:?}",
                        other.type_of()
                    ))
                }
                Err(e) => return Err(format!("matchCondition {name}: {e}")),
            }
        }
        let mut violations = Vec::new();
        for v in &self.validations {
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
                Err(e) => return Err(format!("validation `{}`: {e}", v.text.trim())),
            }
        }
        violations.sort_by(|a, b| a.msg.cmp(&b.msg));
        // A value expression gives a string, or null to leave the annotation out.
        let mut annotations = Vec::new();
        for a in &self.audit_annotations {
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
                Err(e) => return Err(format!("auditAnnotation {}: {e}", a.key)),
            }
        }
        Ok(CelOutcome {
            violations,
            annotations,
        })
    }
}

/// JSON to CEL: integers become `int` (`uint` above i64), other numbers `double`.
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
            let map: HashMap<String, CelValue> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
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
