use super::*;
use proptest::prelude::*;
use serde_json::json;

fn value(text: &str) -> Value {
    parse_document(text).expect("parses").value
}

fn error(text: &str) -> YamlError {
    parse_document(text).expect_err("refused")
}

#[test]
fn yaml11_booleans_in_every_spelling() {
    for t in [
        "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
    ] {
        assert_eq!(value(&format!("a: {t}")), json!({"a": true}), "{t}");
    }
    for f in [
        "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
    ] {
        assert_eq!(value(&format!("a: {f}")), json!({"a": false}), "{f}");
    }
    // Quoted, they stay strings; other spellings are strings.
    assert_eq!(
        value("a: 'yes'\nb: \"on\"\nc: yEs"),
        json!({"a": "yes", "b": "on", "c": "yEs"})
    );
}

#[test]
fn yaml11_integers() {
    let v = value("octal: 0644\nhex: 0x3E8\nbin: 0b101\nunder: 1_000\nplus: +12\nneg: -0x10\no: 0o17\nnine: 09\nbig: 18446744073709551615\nbigger: 99999999999999999999\nmin: -9223372036854775808\n");
    assert_eq!(v["octal"], json!(420));
    assert_eq!(v["hex"], json!(1000));
    assert_eq!(v["bin"], json!(5));
    assert_eq!(v["under"], json!(1000));
    assert_eq!(v["plus"], json!(12));
    assert_eq!(v["neg"], json!(-16));
    assert_eq!(v["o"], json!(15));
    // Not octal: go-yaml falls back to a float, which JSON writes as 9.
    assert_eq!(v["nine"], json!(9));
    assert_eq!(v["big"], json!(u64::MAX));
    assert_eq!(v["bigger"], json!(1e20));
    assert_eq!(v["min"], json!(i64::MIN));
}

#[test]
fn floats_and_strings_that_look_like_numbers() {
    let v = value("a: 1.5\nb: 1.0\nc: 1e3\nd: .5\ne: 1.2.3\nf: 12:30\ng: 2001-12-14\nh: 0x\ni: '0644'\nj: !!str 0644\nk: ~\n");
    assert_eq!(v["a"], json!(1.5));
    assert_eq!(v["b"], json!(1));
    assert_eq!(v["c"], json!(1000));
    assert_eq!(v["d"], json!(0.5));
    assert_eq!(v["e"], json!("1.2.3"));
    assert_eq!(v["f"], json!("12:30"));
    assert_eq!(v["g"], json!("2001-12-14"));
    assert_eq!(v["h"], json!("0x"));
    assert_eq!(v["i"], json!("0644"));
    assert_eq!(v["j"], json!("0644"));
    assert!(v.get("k").is_none());
}

#[test]
fn infinity_and_nan_are_errors_at_their_position() {
    for t in [".inf", "-.Inf", ".NaN"] {
        let e = error(&format!("a: 1\nb: {t}\n"));
        assert_eq!(e.position, Position { line: 2, column: 4 }, "{t}");
        assert!(e.message.contains("quote it"), "{}", e.message);
    }
    assert_eq!(value("a: '.inf'"), json!({"a": ".inf"}));
}

#[test]
fn null_entries_are_dropped_and_remembered() {
    let p = parse_document("spec:\n  env:\n  ports: ~\n  name: x\n  list: [null, 1]\n")
        .expect("parses");
    assert_eq!(p.value, json!({"spec": {"name": "x", "list": [null, 1]}}));
    let paths: Vec<(Vec<String>, Position)> = p
        .dropped_nulls
        .iter()
        .map(|d| (d.path.clone(), d.position))
        .collect();
    assert_eq!(
        paths,
        vec![
            (
                vec!["spec".into(), "env".into()],
                Position { line: 2, column: 3 }
            ),
            (
                vec!["spec".into(), "ports".into()],
                Position { line: 3, column: 3 }
            ),
        ]
    );
}

#[test]
fn duplicate_keys_are_errors_at_the_second_key() {
    let e = error("a: 1\nb:\n  c: 1\n  c: 2\n");
    assert_eq!(e.position, Position { line: 4, column: 3 });
    assert!(e.message.contains("duplicate key `c`"), "{}", e.message);
    // A null first value counts too.
    let e = error("a:\na: 1\n");
    assert_eq!(e.position.line, 2);
}

#[test]
fn merge_keys_merge_with_own_keys_first() {
    let v =
        value("base: &b\n  a: 1\n  b: 2\nother: &o\n  b: 3\n  c: 4\nm:\n  <<: [*b, *o]\n  a: 9\n");
    assert_eq!(v["m"], json!({"a": 9, "b": 2, "c": 4}));
    // `y` is a YAML 1.1 boolean, also as a key.
    assert_eq!(value("y: 1"), json!({"true": 1}));
    let v = value("base: &b {a: 1}\nm:\n  <<: *b\n  b: 2\n");
    assert_eq!(v["m"], json!({"b": 2, "a": 1}));
    let e = error("m:\n  <<: 3\n");
    assert!(e.message.contains("merge key"), "{}", e.message);
    // A quoted `<<` is an ordinary key.
    assert_eq!(value("'<<': 1"), json!({"<<": 1}));
}

#[test]
fn keys_are_written_as_sigs_yaml_writes_them() {
    assert_eq!(
        value("on: 1\n1: a\n0x10: b"),
        json!({"true": 1, "1": "a", "16": "b"})
    );
    assert!(error("? [a]\n: 1\n").message.contains("scalar"));
    assert!(error("~: 1\n").message.contains("null"));
}

#[test]
fn aliases_and_their_limits() {
    assert_eq!(
        value("a: &x [1, 2]\nb: *x\n"),
        json!({"a": [1, 2], "b": [1, 2]})
    );
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    let e = error(&text);
    assert!(e.message.contains("aliases expand"), "{}", e.message);
}

#[test]
fn deep_flow_nesting_is_refused_quickly() {
    let text = format!("a: {}{}\n", "[".repeat(1_000_000), "]".repeat(1_000_000));
    let start = std::time::Instant::now();
    let e = error(&text);
    assert!(e.message.contains("nested deeper"), "{}", e.message);
    assert_eq!(
        e.position,
        Position {
            line: 1,
            column: 4 + MAX_FLOW_DEPTH
        }
    );
    // Generous bound: the check is one pass over the text.
    assert!(start.elapsed().as_secs() < 5);
    // Up to the limit, it is read.
    let ok = format!(
        "a: {}1{}\n",
        "[".repeat(MAX_FLOW_DEPTH),
        "]".repeat(MAX_FLOW_DEPTH)
    );
    assert!(parse_document(&ok).is_ok());
}

#[test]
fn deep_block_nesting_is_refused() {
    let mut text = String::new();
    for i in 0..(MAX_DEPTH + 5) {
        text.push_str(&" ".repeat(i));
        text.push_str("a:\n");
    }
    text.push_str(&" ".repeat(MAX_DEPTH + 5));
    text.push_str("b: 1\n");
    let e = error(&text);
    assert!(e.message.contains("nested deeper"), "{}", e.message);
}

#[test]
fn list_item_starts_are_kept() {
    let p = parse_document("kind: List\nitems:\n- a: 1\n-   b: 2\n- c\n").expect("parses");
    assert_eq!(
        p.item_starts.iter().map(|p| p.line).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn locate_finds_keys_and_items() {
    let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n    readinessprobe:\n      httpGet: {path: /}\n";
    let at = |p: &[&str]| {
        let path: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        locate(text, &path).map(|p| (p.line, p.column))
    };
    assert_eq!(at(&["kind"]), Some((2, 1)));
    assert_eq!(at(&["spec", "containers"]), Some((4, 3)));
    assert_eq!(at(&["spec", "containers", "1"]), Some((7, 5)));
    assert_eq!(
        at(&["spec", "containers", "1", "readinessprobe"]),
        Some((8, 5))
    );
    assert_eq!(
        at(&[
            "spec",
            "containers",
            "1",
            "readinessprobe",
            "httpGet",
            "path"
        ]),
        Some((9, 17))
    );
    assert_eq!(at(&["spec", "containers", "0", "image"]), Some((6, 5)));
    assert_eq!(at(&["spec", "nothing"]), None);
    assert_eq!(at(&["spec", "containers", "5"]), None);
    assert_eq!(at(&[]), None);
}

#[test]
fn scan_errors_have_positions() {
    let e = error("a: [1, 2\nb: 3\n");
    assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
    assert!(e.position.line >= 1);
}

/// A value written in one of YAML 1.1's spellings for it, as people write manifests.
fn yaml11(v: &Value, indent: usize, choice: &mut impl Iterator<Item = usize>) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Bool(b) => {
            let forms: &[&str] = if *b {
                &["true", "yes", "Yes", "on", "ON", "y", "True"]
            } else {
                &["false", "no", "No", "off", "OFF", "n", "FALSE"]
            };
            forms[choice.next().unwrap_or(0) % forms.len()].to_string()
        }
        Value::Number(n) => {
            let i = n.as_i64().unwrap_or(0);
            match (choice.next().unwrap_or(0) % 4, i >= 0) {
                (1, true) => format!("0{i:o}"),
                (2, true) => format!("0x{i:X}"),
                (3, true) if i >= 1000 => {
                    let s = i.to_string();
                    format!("{}_{}", &s[..s.len() - 3], &s[s.len() - 3..])
                }
                _ => i.to_string(),
            }
        }
        Value::String(s) => match resolve_plain(s) {
            Ok(Value::String(ref same)) if same == s && !s.is_empty() => s.clone(),
            _ => Value::String(s.clone()).to_string(),
        },
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) => items
            .iter()
            .map(|i| format!("\n{pad}- {}", yaml11(i, indent + 2, choice).trim_start()))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let inner = yaml11(v, indent + 2, choice);
                let sep = if inner.starts_with('\n') { "" } else { " " };
                format!("\n{pad}{}:{sep}{inner}", Value::String(k.clone()))
            })
            .collect(),
        Value::Null => "~".into(),
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (0i64..100_000).prop_map(|i| json!(i)),
        "[a-z][a-z0-9.-]{0,8}|yes|no|on|off|y|n|0644|0x1F|1_000|~|null|\\.inf"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}|on|yes|1", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn yaml11_spellings_read_back_as_the_json_they_stand_for(
        v in prop::collection::btree_map("[a-z]{1,6}", arb_value(), 1..5),
        choices in prop::collection::vec(0usize..16, 64),
    ) {
        let object = Value::Object(v.into_iter().collect());
        let mut it = choices.into_iter().cycle();
        let text = yaml11(&object, 0, &mut it);
        let read = parse_document(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
        prop_assert_eq!(read.value, object, "{}", text);
    }

    #[test]
    fn any_text_is_read_or_refused_without_panic(text in "[-\\[\\]{}:,&*!|>'\"#?<a-z0-9 \n]{0,80}") {
        let _ = parse_document(&text);
    }
}

#[test]
fn quoted_scalars_continued_at_the_keys_indentation_are_read_as_go_yaml_reads_them() {
    // Seen in real ConstraintTemplates: the continuation line of a double-quoted description
    // starts at the indentation of its key. go-yaml (a libyaml port) accepts it.
    let v = value("properties:\n  flag:\n    type: boolean\n    description: \"When set, the\n    value is optional.\"\n");
    assert_eq!(
        v["properties"]["flag"]["description"],
        json!("When set, the value is optional.")
    );
}

#[test]
fn text_the_parser_gives_up_on_is_an_input_error_near_its_place() {
    let error = parse_document("items:\n  - [ \n!,").unwrap_err();
    assert!(error.message.starts_with("invalid YAML"), "{error:?}");
    assert!(error.position.line >= 2, "{error:?}");
    // The parser is still usable for the next document.
    assert_eq!(value("a: [1, 2]\n"), json!({"a": [1, 2]}));
}
