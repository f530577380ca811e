use super::*;
use crate::manifest::load_bytes;
use crate::policy::Template;

pub(super) fn template(rego: &str) -> Template {
    let text = format!(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: k8stest}}\nspec:\n  crd: {{spec: {{names: {{kind: K8sTest}}}}}}\n  targets:\n  - target: admission.k8s.gatekeeper.sh\n    rego: |\n{}",
        rego.lines().map(|l| format!("      {l}\n")).collect::<String>()
    );
    let l = load_bytes("t.yaml", text.as_bytes(), false);
    Template::parse(&l.documents[0]).expect("template")
}

pub(super) fn empty_inventory() -> RegoValue {
    to_rego(&serde_json::json!({"cluster": {}, "namespace": {}}))
}

/// A template's Rego compiled with the default options over an empty inventory.
fn compiled(rego: &str) -> CompiledTemplate {
    CompiledTemplate::compile(
        &template(rego),
        &empty_inventory(),
        &CompileOptions::default(),
    )
    .expect("compiles")
    .expect("has rego")
}

fn review(obj: serde_json::Value) -> RegoValue {
    to_rego(&serde_json::json!({"object": obj, "operation": "CREATE"}))
}

#[test]
fn violations_come_back_sorted_with_details() {
    let mut c = compiled("package k8stest\nviolation[{\"msg\": msg, \"details\": {\"n\": n}}] {\n  n := input.review.object.items[_]\n  n > input.parameters.max\n  msg := sprintf(\"%v is too big\", [n])\n}");
    let params = to_rego(&serde_json::json!({"max": 2}));
    let v = c
        .evaluate(
            &review(serde_json::json!({"items": [5, 1, 3]})),
            &params,
            "c",
        )
        .expect("evaluates");
    let msgs: Vec<&str> = v.iter().map(|v| v.msg.as_str()).collect();
    assert_eq!(msgs, vec!["3 is too big", "5 is too big"]);
    assert_eq!(v[0].details, serde_json::json!({"n": 3}));
    assert!(c
        .evaluate(&review(serde_json::json!({})), &params, "c")
        .expect("ok")
        .is_empty());
}

#[test]
fn syntax_error_names_the_template_and_line() {
    let t = template("package k8stest\nviolation[{\"msg\": msg}] {\n  msg := \n}");
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("ConstraintTemplate k8stest: Rego does not compile"),
        "{text}"
    );
    // The Rego starts on line 9 of t.yaml, indented by 6: its line 2, column 25 is there.
    assert!(text.contains("--> t.yaml:10:31\n"), "{text}");
    assert!(
        text.contains("\n10 | violation[{\"msg\": msg}] {\n"),
        "{text}"
    );
}

#[test]
fn compile_errors_point_into_the_templates_file() {
    // In `template`'s text the Rego starts on line 9, indented by 6.
    let t = template("package k8stest\nviolation[{\"msg\": msg}] {\n  x := input.review.object +\n  msg := \"m\"\n}");
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    let EngineError::Compile { at, message, .. } = &e else {
        panic!("{e}");
    };
    let (line, column) = at.expect("a position in t.yaml");
    assert!((11..=12).contains(&line), "{line} {message}");
    assert!(column > 6, "{column} {message}");
    assert!(
        message.contains(&format!("--> t.yaml:{line}:{column}")),
        "{message}"
    );
}

#[test]
fn an_unsafe_variable_is_a_compile_error_at_its_line() {
    let t =
        template("package k8stest\nviolation[{\"msg\": msg}] {\n  msg := sprintf(\"%v\", [y])\n}");
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    let EngineError::Compile { at, message, .. } = &e else {
        panic!("{e}");
    };
    assert!(message.contains("unsafe"), "{message}");
    assert_eq!(at.map(|(line, _)| line), Some(11), "{message}");
}

#[test]
fn errors_in_rewritten_rego_point_at_the_line_as_written() {
    // Two bodies on one rule: the v0 rewrite adds a line before the error, which the parser
    // reports at the head of the unfinished rule. In `template`'s text the Rego starts on
    // line 9, indented by 6, so its line 3, column 25 is line 11, column 31 of t.yaml.
    let t = template("package k8stest\nviolation[{\"msg\": \"x\"}] { false } { false }\nviolation[{\"msg\": msg}] {\n  msg := \n}");
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    let EngineError::Compile { at, message, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(*at, Some((11, 31)), "{message}");
    assert!(message.contains("--> t.yaml:11:31\n"), "{message}");
    assert!(
        message.contains("\n11 | violation[{\"msg\": msg}] {\n"),
        "{message}"
    );
    // An error in a line the rewrite changed (`not f(x.y)` takes `x.y` out into a variable of
    // its own) points at that line as written, and shows it as written.
    let t = template("package k8stest\nok(x) {\n  x == 1\n}\nviolation[{\"msg\": \"m\"}] {\n  true\n  not ok(foo.bar)\n}");
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    let EngineError::Compile { at, message, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(*at, Some((15, 9)), "{message}");
    assert!(message.contains("--> t.yaml:15:9\n"), "{message}");
    assert!(message.contains("\n15 |   not ok(foo.bar)\n"), "{message}");
    assert!(!message.contains("__negated"), "{message}");
}

#[test]
fn rewritten_lines_come_from_the_lines_they_replace() {
    let written = "a\nb\nc\nd";
    // Kept lines map to themselves; lines added before a changed one map to it.
    let given = "a\nb\nnew1\nc2\nd";
    let lines: Vec<_> = (1..=5).map(|l| written_line(written, given, l)).collect();
    assert_eq!(
        lines,
        [
            Some((1, true)),
            Some((2, true)),
            Some((3, false)),
            Some((3, false)),
            Some((4, true))
        ]
    );
    // A line added where nothing was replaced maps to the next kept line, or the last line.
    assert_eq!(
        written_line(written, "a\nnew\nb\nc\nd", 2),
        Some((2, false))
    );
    assert_eq!(
        written_line(written, "a\nb\nc\nd\nend", 5),
        Some((4, false))
    );
    assert_eq!(written_line(written, written, 0), None);
    assert_eq!(written_line(written, written, 5), None);
    assert_eq!(written_line("", "x", 1), None);
}

#[test]
fn unknown_function_is_a_compile_error() {
    let t =
        template("package k8stest\nviolation[{\"msg\": msg}] {\n  msg := no_such_function(1)\n}");
    assert!(CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).is_err());
}

#[test]
fn libs_must_live_under_lib() {
    let mut t = template("package k8stest\nviolation[{\"msg\": \"x\"}] { false }");
    if let Some(r) = t.rego.as_mut() {
        r.libs.push("package helpers\nx := 1\n".into());
    }
    let e =
        CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default()).unwrap_err();
    assert!(e.to_string().contains("must be under `lib`"));
}

#[test]
fn inventory_is_visible_to_rego() {
    let t = template("package k8stest\nviolation[{\"msg\": \"no namespace object\"}] {\n  ns := input.review.object.metadata.namespace\n  not data.inventory.cluster[\"v1\"].Namespace[ns]\n}");
    let inv = crate::review::inventory(
        [serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}})].iter(),
    );
    let mut c = CompiledTemplate::compile(&t, &inv, &CompileOptions::default())
        .expect("ok")
        .expect("rego");
    let p = to_rego(&serde_json::json!({}));
    assert!(c
        .evaluate(
            &review(serde_json::json!({"metadata": {"namespace": "prod"}})),
            &p,
            "c"
        )
        .expect("ok")
        .is_empty());
    assert_eq!(
        c.evaluate(
            &review(serde_json::json!({"metadata": {"namespace": "dev"}})),
            &p,
            "c"
        )
        .expect("ok")
        .len(),
        1
    );
}

#[test]
fn external_data_goes_to_the_handler() {
    let t = template("package k8stest\nviolation[{\"msg\": msg}] {\n  r := external_data({\"provider\": \"p\", \"keys\": [\"a\", \"b\"]})\n  e := r.errors[_]\n  msg := sprintf(\"%v: %v\", [e[0], e[1]])\n}\nviolation[{\"msg\": r.system_error}] {\n  r := external_data({\"provider\": \"p\", \"keys\": []})\n  r.system_error != \"\"\n}");
    let handler: Arc<ExternalDataFn> = Arc::new(
        |provider: &str, keys: &[String]| serde_json::json!({"responses": [], "system_error": "", "errors": keys.iter().map(|k| [k.clone(), format!("{provider} says no")]).collect::<Vec<_>>()}),
    );
    let options = CompileOptions {
        external_data: handler,
        coverage: false,
        enable_cel: true,
        index_inventory: true,
    };
    let mut c = CompiledTemplate::compile(&t, &empty_inventory(), &options)
        .expect("ok")
        .expect("rego");
    assert!(c.uses_external_data);
    let v = c
        .evaluate(
            &review(serde_json::json!({})),
            &to_rego(&serde_json::json!({})),
            "c",
        )
        .expect("ok");
    let msgs: Vec<&str> = v.iter().map(|v| v.msg.as_str()).collect();
    assert_eq!(msgs, vec!["a: p says no", "b: p says no"]);
    // Unconfigured: a system error, never an allow.
    let mut c = CompiledTemplate::compile(&t, &empty_inventory(), &CompileOptions::default())
        .expect("ok")
        .expect("rego");
    let v = c
        .evaluate(
            &review(serde_json::json!({})),
            &to_rego(&serde_json::json!({})),
            "c",
        )
        .expect("ok");
    assert!(v.iter().any(|v| v.msg.contains("not configured")));
}

/// Messages of a template's violations for an object and parameters (no error expected).
fn messages(rego: &str, object: serde_json::Value, params: serde_json::Value) -> Vec<String> {
    compiled(rego)
        .evaluate(&review(object), &to_rego(&params), "c")
        .expect("evaluates without error")
        .into_iter()
        .map(|v| v.msg)
        .collect()
}

#[test]
fn sprintf_with_fewer_arguments_than_verbs_still_reports() {
    // As in the library's HPA template: six verbs, five arguments.
    let rego = "package k8stest\nviolation[{\"msg\": msg}] {\n  hpa := input.review.object\n  hpa.spec.minReplicas < input.parameters.min\n  msg := sprintf(\"The %v <%v> minReplicas %v or maxReplicas %v is not allowed: %v. Allowed ranges: %v\", [hpa.kind, hpa.metadata.name, hpa.spec.minReplicas, hpa.spec.maxReplicas, input.parameters.ranges])\n}";
    let object = serde_json::json!({"kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}, "spec": {"minReplicas": 1, "maxReplicas": 5}});
    let params = serde_json::json!({"min": 2, "ranges": [{"min_replicas": 2, "max_replicas": 6}]});
    assert_eq!(
        messages(rego, object, params),
        vec![
            r#"The HorizontalPodAutoscaler <h> minReplicas 1 or maxReplicas 5 is not allowed: [{"max_replicas": 6, "min_replicas": 2}]. Allowed ranges: %!v(MISSING)"#
        ]
    );
}

#[test]
fn iterating_null_or_a_scalar_is_undefined_not_an_error() {
    let rego = "package k8stest\nviolation[{\"msg\": msg}] {\n  c := input.review.object.spec.containers[_]\n  msg := sprintf(\"container %v\", [c.name])\n}\nviolation[{\"msg\": msg}] {\n  some k\n  v := input.review.object.metadata.labels[k]\n  msg := sprintf(\"label %v=%v\", [k, v])\n}\nviolation[{\"msg\": \"no names\"}] {\n  names := [n | n := input.review.object.spec.containers[_].name]\n  count(names) == 0\n}";
    for value in [
        serde_json::Value::Null,
        serde_json::json!("text"),
        serde_json::json!(5),
        serde_json::json!(true),
    ] {
        let object =
            serde_json::json!({"metadata": {"labels": value}, "spec": {"containers": value}});
        let got = messages(rego, object, serde_json::json!({}));
        // OPA: iterating a string, number, bool or null gives nothing (an empty
        // comprehension, no error).
        assert_eq!(got, vec!["no names".to_string()], "over {value}");
    }
    let object = serde_json::json!({"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "x"}]}});
    assert_eq!(
        messages(rego, object, serde_json::json!({})),
        vec!["container x", "label a=b"]
    );
}

#[test]
fn sprintf_of_sets_objects_and_numbers_matches_opa() {
    let rego = "package k8stest\nviolation[{\"msg\": msg}] {\n  s := {x | x := input.review.object.tags[_]}\n  empty := {x | x := input.review.object.none[_]}\n  msg := sprintf(\"set=%v empty=%v obj=%v arr=%v ratio=%v half=%v big=%v neg=%d\", [s, empty, input.review.object.obj, input.review.object.tags, 10 / 4, 4 / 2, input.review.object.big, -3])\n}";
    let object = serde_json::json!({"tags": ["b", "a", "b"], "obj": {"z": 1, "a": {"k": "v"}}, "big": 12345678.5});
    assert_eq!(
        messages(rego, object, serde_json::json!({})),
        vec![
            r#"set={"a", "b"} empty=set() obj={"a": {"k": "v"}, "z": 1} arr=["b", "a", "b"] ratio=2.5 half=2 big=1.23456785e+07 neg=-3"#
        ]
    );
}

#[test]
fn a_function_with_two_outputs_for_one_input_is_an_error_as_in_opa() {
    // OPA stops such an evaluation with eval_conflict_error; a container with two different
    // probes makes the library's host-probes template do this, where its CEL has no such case.
    let mut c = compiled("package k8stest\nget_probe(c) = p {\n  p := c.livenessProbe\n}\nget_probe(c) = p {\n  p := c.readinessProbe\n}\nviolation[{\"msg\": \"host set\"}] {\n  c := input.review.object.spec.containers[_]\n  probe := get_probe(c)\n  probe.httpGet.host != \"\"\n}");
    let params = to_rego(&serde_json::json!({}));
    let one = serde_json::json!({"spec": {"containers": [{"name": "a", "livenessProbe": {"httpGet": {"host": "h"}}}]}});
    assert_eq!(
        c.evaluate(&review(one), &params, "c")
            .expect("evaluates")
            .len(),
        1
    );
    let two = serde_json::json!({"spec": {"containers": [{"name": "a",
        "livenessProbe": {"httpGet": {"host": "h"}}, "readinessProbe": {"tcpSocket": {"port": 1}}}]}});
    let e = c
        .evaluate(&review(two), &params, "c")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("functions must not produce multiple outputs for same inputs"),
        "{e}"
    );
}

#[test]
fn evaluations_within_a_passed_deadline_are_stopped() {
    let past = Some(std::time::Instant::now());
    let params = to_rego(&serde_json::json!({}));
    // CEL stops before its next expression.
    let source = serde_json::json!({
        "validations": [{"expression": "object.spec.replicas < 3", "message": "too many"}]
    });
    let mut cel = CompiledTemplate::compile(
        &Template {
            cel: Some(source),
            rego: None,
            ..template("package k8stest\nviolation[{\"msg\": \"x\"}] { false }")
        },
        &empty_inventory(),
        &CompileOptions::default(),
    )
    .expect("compiles")
    .expect("has CEL");
    let object = review(serde_json::json!({"spec": {"replicas": 5}}));
    assert_eq!(
        cel.evaluate(&object, &params, "c")
            .expect("no deadline")
            .len(),
        1
    );
    let e = within_deadline(past, || cel.evaluate(&object, &params, "c"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("the deadline passed"), "{e}");
    // Rego stops at its engine's execution timer, set to what is left (nothing).
    let mut rego = compiled("package k8stest\nviolation[{\"msg\": msg}] {\n  n := count([x | x := numbers.range(1, 200000)[_]; x % 7 == 0])\n  msg := sprintf(\"%v\", [n])\n}");
    let started = std::time::Instant::now();
    let stopped = within_deadline(past, || rego.evaluate(&object, &params, "c"));
    assert!(stopped.is_err(), "{stopped:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Outside the deadline the same engine runs to the end.
    assert_eq!(rego.evaluate(&object, &params, "c").expect("runs").len(), 1);
    assert_eq!(deadline(), None);
}

#[test]
fn regex_match_in_a_template_matches_and_a_bad_pattern_is_undefined() {
    let rego = "package k8stest\nviolation[{\"msg\": msg}] {\n  g := input.review.object.group\n  regex.match(input.parameters.pattern, g)\n  msg := sprintf(\"group %v matches\", [g])\n}";
    let object = serde_json::json!({"group": "networking.k8s.io"});
    let pattern = |p: &str| serde_json::json!({ "pattern": p });
    assert_eq!(
        messages(
            rego,
            object.clone(),
            pattern("^(extensions|networking.k8s.io)$")
        ),
        vec!["group networking.k8s.io matches"]
    );
    assert!(messages(rego, object.clone(), pattern("^apps$")).is_empty());
    // As OPA with non-strict builtin errors: undefined, so no violation and no error.
    assert!(messages(rego, object, pattern("(")).is_empty());
}
