use super::*;
use crate::engine::tests::{empty_inventory, template};
use crate::engine::{to_rego, CompileOptions, CompiledTemplate, Violation};
use regorus::Value as RegoValue;
use serde_json::json;

/// A team may own one ConfigMap: the review's `team` label must not be on another ConfigMap.
const UNIQUE_TEAM: &str = r#"package k8suniqueteam

team_of(obj) = t {
  t := obj.metadata.labels.team
}

same(obj, review) {
  obj.metadata.name == review.object.metadata.name
  obj.metadata.namespace == review.object.metadata.namespace
}

violation[{"msg": msg, "details": {"other": name}}] {
  input.review.kind.kind == "ConfigMap"
  mine := team_of(input.review.object)
  other := data.inventory.namespace[ns][_]["ConfigMap"][name]
  not same(other, input.review)
  theirs := team_of(other)
  mine == theirs
  msg := sprintf("team %v already owns ConfigMap %v/%v", [mine, ns, name])
}
"#;

/// Rego v1, an inventory side with a wildcard, and the review's side bound after the scan.
const UNIQUE_PORT: &str = r#"package k8suniqueport

import rego.v1

violation contains {"msg": msg} if {
  other := data.inventory.cluster[_].Node[name]
  port := input.review.object.spec.ports[_]
  other.status.ports[_] == port
  name != input.review.object.metadata.name
  msg := sprintf("port %v is taken by node %v", [port, name])
}
"#;

/// No equality to join on: the inventory side only filters.
const EMPTY_SECRETS: &str = r#"package k8semptysecrets

violation[{"msg": msg}] {
  other := data.inventory.namespace[ns]["v1"].Secret[name]
  count(object.get(other, "data", {})) == 0
  ns != input.review.object.metadata.namespace
  msg := sprintf("empty Secret %v/%v elsewhere", [ns, name])
}
"#;

fn compile(rego: &str, inventory: &RegoValue, index: bool) -> CompiledTemplate {
    let options = CompileOptions {
        index_inventory: index,
        ..CompileOptions::default()
    };
    CompiledTemplate::compile(&template(rego), inventory, &options)
        .expect("compiles")
        .expect("has rego")
}

fn configmap(ns: &str, name: &str, team: Option<&str>) -> serde_json::Value {
    let labels = team.map_or(json!({}), |t| json!({"team": t}));
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns, "labels": labels}})
}

fn inventory(objects: &[serde_json::Value]) -> RegoValue {
    crate::review::inventory(objects.iter())
}

fn admission(obj: &serde_json::Value) -> regorus::Value {
    let kind = obj["kind"].as_str().unwrap_or_default();
    to_rego(&json!({"object": obj, "operation": "CREATE",
                    "kind": {"group": "", "version": "v1", "kind": kind}}))
}

fn run(c: &mut CompiledTemplate, obj: &serde_json::Value) -> Vec<Violation> {
    c.evaluate(&admission(obj), &to_rego(&json!({})), "c")
        .expect("evaluates")
}

/// Every review gets the same violations from the indexed and the written template, and the
/// reviews chosen produce some.
fn assert_same(rego: &str, objects: &[serde_json::Value], reviews: &[serde_json::Value]) {
    let inv = inventory(objects);
    let mut indexed = compile(rego, &inv, true);
    let mut written = compile(rego, &inv, false);
    assert!(!indexed.indexes.is_empty(), "the scan is indexed");
    assert!(written.indexes.is_empty());
    let mut total = 0;
    for r in reviews {
        let (a, b) = (run(&mut indexed, r), run(&mut written, r));
        assert_eq!(a, b, "review {r}");
        total += a.len();
    }
    assert!(total > 0, "the reviews produce violations");
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn a_selector_like_scan_becomes_a_lookup_and_keeps_every_line() {
    let joined = rewrite(UNIQUE_TEAM, false).expect("rewritten");
    assert_eq!(joined.indexes, 1);
    let (before, after) = (lines(UNIQUE_TEAM), lines(&joined.text));
    assert!(after.len() > before.len());
    for (i, line) in before.iter().enumerate() {
        let moved = ["data.inventory", "theirs", "msg :="]
            .iter()
            .any(|m| line.contains(m));
        if !moved {
            assert_eq!(after[i], *line, "line {} is kept", i + 1);
        }
    }
    let scan = before
        .iter()
        .position(|l| l.contains("data.inventory"))
        .expect("scan");
    assert!(
        after[scan].contains("data.__inventory_join.i0[mine][_]"),
        "{}",
        after[scan]
    );
    let index = &joined.text[joined
        .text
        .find("__inventory_join_0[[")
        .expect("index rule")..];
    assert!(index.contains("__ij_key := theirs"), "{index}");
    assert!(index.contains("theirs := team_of(other)"), "{index}");
    assert!(!index.contains("input"), "{index}");
}

#[test]
fn a_selector_like_scan_reports_what_the_written_template_reports() {
    let objects = [
        configmap("a", "one", Some("red")),
        configmap("b", "two", Some("red")),
        configmap("b", "three", Some("blue")),
        configmap("c", "four", None),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a", "labels": {"team": "red"}}}),
    ];
    let reviews = [
        configmap("a", "one", Some("red")),
        configmap("z", "new", Some("red")),
        configmap("z", "new", Some("blue")),
        configmap("b", "three", Some("blue")),
        configmap("z", "new", Some("green")),
        configmap("z", "new", None),
    ];
    assert_same(UNIQUE_TEAM, &objects, &reviews);
    let mut c = compile(UNIQUE_TEAM, &inventory(&objects), true);
    let found = run(&mut c, &configmap("z", "new", Some("red")));
    assert_eq!(
        found.iter().map(|v| v.msg.as_str()).collect::<Vec<_>>(),
        [
            "team red already owns ConfigMap a/one",
            "team red already owns ConfigMap b/two"
        ]
    );
    assert_eq!(found[0].details, json!({"other": "one"}));
}

#[test]
fn a_v1_scan_joined_on_a_wildcard_reports_what_the_written_template_reports() {
    let node = |name: &str, ports: &[u32]| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"ports": ports}});
    let joined = rewrite(UNIQUE_PORT, true).expect("rewritten");
    assert!(joined
        .text
        .contains("__inventory_join_0 contains [__ij_key, __ij_entry] if {"));
    assert_eq!(
        lines(UNIQUE_PORT).len() + 6,
        lines(&joined.text).len(),
        "{}",
        joined.text
    );
    let objects = [node("n1", &[80, 443]), node("n2", &[443]), node("n3", &[])];
    let pod = |name: &str, ports: &[u32]| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"ports": ports}});
    let reviews = [
        pod("x", &[443]),
        pod("n1", &[80, 443]),
        pod("y", &[22]),
        pod("z", &[]),
    ];
    assert_same(UNIQUE_PORT, &objects, &reviews);
}

#[test]
fn a_filter_without_an_equality_is_indexed_under_one_key() {
    let joined = rewrite(EMPTY_SECRETS, false).expect("rewritten");
    assert!(joined.text.contains("data.__inventory_join.i0[true][_]"));
    assert!(joined.text.contains("__ij_key := true"));
    let secret = |ns: &str, name: &str, data: serde_json::Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": data});
    let objects = [
        secret("a", "empty", json!({})),
        secret("b", "full", json!({"k": "dg=="})),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bare", "namespace": "c"}}),
    ];
    let reviews = [
        configmap("a", "x", None),
        configmap("c", "y", None),
        configmap("q", "z", None),
    ];
    assert_same(EMPTY_SECRETS, &objects, &reviews);
}

#[test]
fn bodies_that_cannot_be_split_are_left_as_written() {
    let body = |literals: &str| {
        format!("package k8sx\n\nviolation[{{\"msg\": \"m\"}}] {{\n{literals}\n}}\n")
    };
    let cases = [
        // Reads no inventory.
        body("  input.review.object.x == 1"),
        // The scan is keyed by the review: it is a lookup already.
        body("  obj := input.review.object\n  pdb := data.inventory.namespace[obj.metadata.namespace][\"v1\"].Thing[_]\n  pdb.x == obj.x"),
        // Two reads of the inventory.
        body("  a := data.inventory.cluster[_].A[n]\n  b := data.inventory.cluster[_].B[n]\n  a.x == input.review.object.x"),
        // A `not` of the inventory is no scan.
        body("  not data.inventory.cluster[\"v1\"].Namespace[input.review.object.metadata.namespace]"),
        // `with` changes what the body reads.
        body("  o := data.inventory.cluster[_].A[n]\n  o.x == input.review.object.x with input as {}"),
        // An answer that changes between calls.
        body("  o := data.inventory.cluster[_].A[n]\n  o.t < time.now_ns()\n  o.x == input.review.object.x"),
        // `some … in` and `every`.
        body("  o := data.inventory.cluster[_].A[n]\n  some p in o.ports\n  p == input.review.object.x"),
        // Nothing to index: the scan alone, compared with the review without `==`.
        body("  o := data.inventory.cluster[_].A[n]\n  o.x != input.review.object.x"),
    ];
    for rego in &cases {
        assert_eq!(rewrite(rego, false), None, "{rego}");
    }
    let imported = format!(
        "package k8sx\nimport data.lib.helpers\n{}",
        &UNIQUE_TEAM["package k8suniqueteam\n".len()..]
    );
    assert_eq!(rewrite(&imported, false), None);
    let with_else = "package k8sx\nviolation[{\"msg\": m}] {\n  o := data.inventory.cluster[_].A[n]\n  o.x == input.review.object.x\n  m := \"a\"\n} else = {\"msg\": \"b\"} {\n  true\n}\n";
    assert_eq!(rewrite(with_else, false), None);
}

#[test]
fn a_helper_that_reads_the_review_stays_in_the_body() {
    // `team_of` reads the parameters, so `theirs` depends on the review and is not indexed;
    // with nothing else on the inventory side there is no index.
    let rego = UNIQUE_TEAM.replace(
        "t := obj.metadata.labels.team",
        "t := obj.metadata.labels[input.parameters.label]",
    );
    assert_eq!(rewrite(&rego, false), None);
}

#[test]
fn a_new_inventory_rebuilds_the_index() {
    let objects = [
        configmap("a", "one", Some("red")),
        configmap("b", "two", Some("blue")),
    ];
    let mut c = compile(UNIQUE_TEAM, &inventory(&[]), true);
    let probe = configmap("z", "new", Some("red"));
    assert!(run(&mut c, &probe).is_empty());
    c.set_inventory(&inventory(&objects)).expect("indexed");
    assert_eq!(run(&mut c, &probe).len(), 1);
    c.set_inventory(&empty_inventory()).expect("indexed");
    assert!(run(&mut c, &probe).is_empty());
}

#[test]
fn an_inventory_the_index_cannot_be_built_from_fails_each_evaluation() {
    // Two definitions of `team_of` that disagree on an object with both labels: OPA's
    // "functions must not produce multiple outputs" error, met while building the index.
    let rego = UNIQUE_TEAM.replace(
        "same(obj, review) {",
        "team_of(obj) = t {\n  t := obj.metadata.labels.owner\n}\n\nsame(obj, review) {",
    );
    let mut c = compile(&rego, &inventory(&[]), true);
    assert!(!c.indexes.is_empty());
    let both = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "a", "labels": {"team": "red", "owner": "blue"}}});
    let err = c.set_inventory(&inventory(&[both])).unwrap_err();
    assert!(
        err.to_string().contains("cannot index data.inventory"),
        "{err}"
    );
    let again = c.evaluate(
        &admission(&configmap("z", "n", Some("red"))),
        &to_rego(&json!({})),
        "c",
    );
    assert!(again.is_err());
    // A good inventory clears the error.
    c.set_inventory(&inventory(&[configmap("a", "y", Some("red"))]))
        .expect("indexed");
    assert_eq!(run(&mut c, &configmap("z", "n", Some("red"))).len(), 1);
}

#[test]
fn coverage_sees_the_template_as_written() {
    let options = CompileOptions {
        coverage: true,
        ..CompileOptions::default()
    };
    let c = CompiledTemplate::compile(&template(UNIQUE_TEAM), &empty_inventory(), &options)
        .expect("compiles")
        .expect("rego");
    assert!(c.indexes.is_empty());
    assert!(!c.sources[0].1.contains(INDEX_DATA));
}

#[test]
fn copies_load_the_indexes_one_copy_built() {
    let objects = [
        configmap("a", "one", Some("red")),
        configmap("b", "two", Some("blue")),
    ];
    let probe = configmap("z", "new", Some("red"));
    let mut first = compile(UNIQUE_TEAM, &inventory(&[]), true);
    let mut second = first.clone();
    let mut shared = None;
    first
        .set_inventory_sharing(&inventory(&objects), &mut shared)
        .expect("indexed");
    assert!(matches!(shared, Some(Ok(_))), "the first copy built them");
    second
        .set_inventory_sharing(&inventory(&objects), &mut shared)
        .expect("indexed");
    assert_eq!(run(&mut first, &probe).len(), 1);
    assert_eq!(run(&mut second, &probe), run(&mut first, &probe));
    // A copy given indexes loads them as they are: built from an empty inventory, they find
    // nothing even beside a full one.
    let mut from_empty = None;
    let mut third = first.clone();
    third
        .set_inventory_sharing(&empty_inventory(), &mut from_empty)
        .expect("indexed");
    third
        .set_inventory_sharing(&inventory(&objects), &mut from_empty)
        .expect("indexed");
    assert!(run(&mut third, &probe).is_empty());
    // Why they could not be built is shared too: each evaluation fails with it.
    let mut failed = Some(Err("cannot index data.inventory: broken".to_string()));
    let err = third
        .set_inventory_sharing(&inventory(&objects), &mut failed)
        .unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
    let again = third.evaluate(&admission(&probe), &to_rego(&json!({})), "c");
    assert!(again.is_err());
}
