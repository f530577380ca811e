//! Source rewrites for OPA v0 syntax that regorus reads differently from OPA:
//! rules with several bodies (`p { a } { b }`), which OPA reads as one rule per body, and a
//! body line that starts with `(`, which OPA reads as a new expression, not a call; and
//! `not f(x.y)` with a user-defined function, where OPA evaluates the reference arguments before
//! the negation (an undefined argument makes the expression undefined, not true).

use std::collections::BTreeSet;

/// Brackets open at a point of the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Paren,
    Square,
    /// A rule body or a comprehension/`else`/`every` body: newlines separate expressions.
    Body,
    /// An object or set literal.
    Literal,
}

/// Whether a byte ends a value, so that a following `(` on a new line would be read as a call.
fn ends_value(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b')' | b']' | b'}' | b'"' | b'`')
}

/// Whether a `{` after this byte opens a literal rather than a body.
fn opens_literal(prev: Option<u8>) -> bool {
    matches!(
        prev,
        Some(b'=' | b',' | b'(' | b'[' | b':' | b'|' | b'{') | None
    )
}

/// Only whitespace and comments.
fn is_blank(text: &str) -> bool {
    text.lines()
        .all(|l| l.split('#').next().unwrap_or("").trim().is_empty())
}

/// Rewrites v0 Rego so regorus reads it as OPA does; text it does not need to change is kept byte for byte.
pub fn normalize_v0(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len() + 64);
    let mut stack: Vec<Open> = Vec::new();
    let mut prev: Option<u8> = None; // last significant byte outside strings and comments
    let mut at_line_start = true;
    let mut stmt_start = 0usize; // where the current top-level statement began
    let mut head: Option<String> = None; // head of the current rule
    let mut last_body_end: Option<usize> = None;
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'`' => {
                let quote = c;
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    if quote == b'"' && bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                prev = Some(quote);
                at_line_start = false;
                continue;
            }
            b'\n' => {
                at_line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let line_start = std::mem::replace(&mut at_line_start, false);
        if stack.is_empty() && line_start && c != b'{' {
            stmt_start = i;
        }
        match c {
            b'(' => {
                if line_start && stack.last() == Some(&Open::Body) && prev.is_some_and(ends_value) {
                    out.push_str(&source[copied..i]);
                    out.push_str("; ");
                    copied = i;
                }
                stack.push(Open::Paren);
            }
            b'[' => stack.push(Open::Square),
            b'{' => {
                if stack.is_empty() {
                    let extra = last_body_end.is_some_and(|end| is_blank(&source[end..i]));
                    if extra {
                        if let Some(h) = &head {
                            out.push_str(&source[copied..i]);
                            out.push('\n');
                            out.push_str(h);
                            out.push(' ');
                            copied = i;
                        }
                        stack.push(Open::Body);
                    } else if opens_literal(prev) {
                        stack.push(Open::Literal);
                    } else {
                        if last_body_end.is_none_or(|end| stmt_start >= end) {
                            head = Some(source[stmt_start..i].trim_end().to_string());
                        }
                        stack.push(Open::Body);
                    }
                } else if opens_literal(prev) {
                    // `x := {`, `[{`, `f({`: a literal.
                    stack.push(Open::Literal);
                } else {
                    // `else {`, `every x in xs {`, `some ... {`: a body.
                    stack.push(Open::Body);
                }
            }
            b')' | b']' => {
                stack.pop();
            }
            b'}' => {
                let was = stack.pop();
                if stack.is_empty() {
                    last_body_end = (was == Some(Open::Body)).then_some(i + 1);
                }
            }
            _ => {}
        }
        prev = Some(c);
        i += 1;
    }
    out.push_str(&source[copied..]);
    out
}

/// Names of the functions the sources define (rule heads `name(` at the start of a line).
pub fn user_functions<'a>(sources: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in sources {
        for line in source.lines() {
            let ident: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let first_is_letter = ident
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if first_is_letter && line[ident.len()..].starts_with('(') {
                names.insert(ident);
            }
        }
    }
    names
}

/// Splits call arguments at top-level commas; `None` when brackets or quotes do not balance.
fn split_arguments(args: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut quote) = (0i32, 0usize, None::<char>);
    let mut escaped = false;
    for (i, c) in args.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    (depth == 0 && quote.is_none()).then(|| {
        parts.push(&args[start..]);
        parts
    })
}

/// A plain reference such as `input.review.object` or `params.ranges[0]`.
fn is_reference(arg: &str) -> bool {
    let arg = arg.trim();
    let starts_ident = arg
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    starts_ident
        && (arg.contains('.') || arg.contains('['))
        && !arg.contains('(')
        && !arg.contains(' ')
}

/// Rewrites `not f(a, x.y)` (f defined in the template) into `__arg := x.y` followed by
/// `not f(a, __arg)`, as OPA evaluates it.
pub fn hoist_negated_call_arguments(source: &str, functions: &BTreeSet<String>) -> String {
    let mut out = String::with_capacity(source.len());
    let mut counter = 0usize;
    for line in source.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent_len = body.len() - body.trim_start().len();
        let (indent, rest) = body.split_at(indent_len);
        let rewritten = rest.strip_prefix("not ").and_then(|call| {
            let call = call.trim();
            let open = call.find('(')?;
            let name = &call[..open];
            let simple = name.rsplit('.').next().unwrap_or(name);
            if !functions.contains(simple) || !call.ends_with(')') {
                return None;
            }
            let args = split_arguments(&call[open + 1..call.len() - 1])?;
            if !args.iter().any(|a| is_reference(a)) {
                return None;
            }
            let mut hoisted = String::new();
            let mut new_args = Vec::new();
            for a in args {
                if is_reference(a) {
                    counter += 1;
                    let var = format!("__negated_arg{counter}");
                    hoisted.push_str(&format!("{indent}{var} := {}\n", a.trim()));
                    new_args.push(var);
                } else {
                    new_args.push(a.trim().to_string());
                }
            }
            Some(format!(
                "{hoisted}{indent}not {name}({}){ending}",
                new_args.join(", ")
            ))
        });
        match rewritten {
            Some(r) => out.push_str(&r),
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize_v0;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics_and_keeps_text_without_bodies(text in "[a-z{}()\\[\\]\"#\n =:,|é]{0,80}") {
            let out = normalize_v0(&text);
            prop_assert!(out.len() >= text.len());
        }
    }

    fn eval(source: &str, rule: &str, input: &str) -> String {
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        engine
            .add_policy("t.rego".into(), normalize_v0(source))
            .expect("parses after normalizing");
        engine.set_input(regorus::Value::from_json_str(input).expect("input"));
        let v = engine.eval_rule(rule.into()).expect("evaluates");
        let json: serde_json::Value =
            serde_json::from_str(&v.to_json_str().expect("json")).expect("parse");
        json.to_string()
    }

    #[test]
    fn negated_user_function_with_undefined_argument_is_undefined() {
        let src = "package t\n\naccept(\"any\", _)\n\nv[msg] {\n  p := input.params\n  not accept(p.rule, p.ranges)\n  msg := \"denied\"\n}\n";
        let functions = super::user_functions([src.to_string()].iter());
        assert!(functions.contains("accept"));
        let hoisted = super::hoist_negated_call_arguments(src, &functions);
        assert!(hoisted.contains("__negated_arg1 := p.rule\n  __negated_arg2 := p.ranges\n  not accept(__negated_arg1, __negated_arg2)\n"), "{hoisted}");
        let mut engine = regorus::Engine::new();
        engine.set_rego_v0(true);
        engine.add_policy("t.rego".into(), hoisted).expect("parses");
        let eval = |engine: &mut regorus::Engine, input: &str| {
            engine.set_input(regorus::Value::from_json_str(input).expect("input"));
            let v = engine.eval_rule("data.t.v".into()).expect("evaluates");
            v.to_json_str().expect("json").replace([' ', '\n'], "")
        };
        // ranges undefined: the negation is undefined, so no violation (OPA's result).
        assert_eq!(eval(&mut engine, r#"{"params": {"rule": "other"}}"#), "[]");
        assert_eq!(
            eval(
                &mut engine,
                r#"{"params": {"rule": "other", "ranges": []}}"#
            ),
            r#"["denied"]"#
        );
        assert_eq!(
            eval(&mut engine, r#"{"params": {"rule": "any", "ranges": []}}"#),
            "[]"
        );
        // Builtins and calls without reference arguments are left alone.
        let other = "  not startswith(input.a, \"x\")\n  not accept(x, \"y\")\n";
        assert_eq!(
            super::hoist_negated_call_arguments(other, &functions),
            other
        );
    }

    #[test]
    fn set_rule_with_two_bodies_becomes_two_rules() {
        let src = "package t\n\nv[msg] {\n  input.a == 1\n  msg := \"a\"\n} {\n  input.b == 1\n  msg := \"b\"\n}\n";
        assert_eq!(eval(src, "data.t.v", r#"{"a": 1, "b": 1}"#), r#"["a","b"]"#);
        assert_eq!(eval(src, "data.t.v", r#"{"a": 0, "b": 1}"#), r#"["b"]"#);
    }

    #[test]
    fn function_with_two_bodies_tries_each() {
        let src = "package t\n\nname(x) = y {\n  x == 1\n  y := \"one\"\n}\n# between\n{\n  x == 2\n  y := \"two\"\n}\n\nr := [name(1), name(2)]\n";
        assert_eq!(eval(src, "data.t.r", "{}"), r#"["one","two"]"#);
    }

    #[test]
    fn line_starting_with_paren_is_a_new_expression() {
        let src = "package t\n\nallow {\n  x := input.a\n  (x + 1) > 2\n}\n";
        assert_eq!(eval(src, "data.t.allow", r#"{"a": 5}"#), "true");
        let normalized = normalize_v0(src);
        assert!(normalized.contains("; (x + 1) > 2"));
    }

    #[test]
    fn literals_else_and_calls_are_left_alone() {
        let src = "package t\n\nobj := {\"a\": [1, 2]}\n\nf(x) = \"big\" {\n  x > 10\n} else = \"small\" {\n  true\n}\n\ng := count(\n  [1, 2]\n)\n\ns := {x | x := [1, 2][_]}\n\nr := [f(20), f(1), g]\n";
        assert_eq!(normalize_v0(src), src);
        assert_eq!(eval(src, "data.t.r", "{}"), r#"["big","small",2]"#);
    }
}
