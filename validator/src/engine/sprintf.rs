//! OPA's `sprintf`: Go's `fmt.Sprintf` over the arguments as OPA hands them to it (integers as
//! `int`, other numbers as `float64`, strings as `string`, every other value as its Rego text).
//! Missing arguments format as `%!v(MISSING)`, extra ones as `%!(EXTRA ...)`, a verb that does
//! not fit its argument as `%!d(string=x)`; none of these is an error, as in OPA.

use regorus::Value;

/// An argument as Go's `fmt` sees it.
#[derive(Debug, Clone)]
enum Arg {
    Int(i128),
    /// An integer too large for `i128`, as its decimal digits.
    Big(String),
    Float(f64),
    Str(String),
}

impl Arg {
    fn of(value: &Value) -> Arg {
        match value {
            Value::String(s) => Arg::Str(s.to_string()),
            Value::Number(n) if n.is_integer() => match n.as_i128() {
                Some(i) => Arg::Int(i),
                None => Arg::Big(n.format_decimal()),
            },
            Value::Number(n) => match n.as_f64() {
                Some(f) => Arg::Float(f),
                None => Arg::Str(n.format_decimal()),
            },
            other => Arg::Str(rego_text(other)),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(_) => "int",
            Arg::Big(_) => "*big.Int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }

    /// `%v` with no flags, as used inside `%!verb(type=value)`.
    fn plain(&self) -> String {
        match self {
            Arg::Int(i) => i.to_string(),
            Arg::Big(s) | Arg::Str(s) => s.clone(),
            Arg::Float(f) => go_float(*f, 'g', None),
        }
    }
}

/// How a value prints in Rego (OPA's `Term.String()`): strings quoted, object keys and set
/// members sorted, the empty set as `set()`.
pub fn rego_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.format_decimal(),
        Value::String(s) => go_quote(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(rego_text).collect::<Vec<_>>().join(", ")
        ),
        Value::Set(items) if items.is_empty() => "set()".into(),
        Value::Set(items) => format!(
            "{{{}}}",
            items
                .iter_sorted()
                .map(rego_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter_sorted()
                .map(|(k, v)| format!("{}: {}", rego_text(k), rego_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Undefined => String::new(),
    }
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A parsed `%` directive.
#[derive(Debug, Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    /// Pads to the width: left-justified with `-`, with zeros after the sign for numbers with `0`.
    fn pad(&self, text: String, numeric: bool) -> String {
        let Some(width) = self.width else {
            return text;
        };
        let len = text.chars().count();
        if len >= width {
            return text;
        }
        let fill = width - len;
        if self.minus {
            format!("{text}{}", " ".repeat(fill))
        } else if self.zero && numeric {
            let sign_len = usize::from(text.starts_with(['-', '+', ' ']));
            format!(
                "{}{}{}",
                &text[..sign_len],
                "0".repeat(fill),
                &text[sign_len..]
            )
        } else {
            format!("{}{text}", " ".repeat(fill))
        }
    }

    fn sign(&self, negative: bool) -> &'static str {
        if negative {
            "-"
        } else if self.plus {
            "+"
        } else if self.space {
            " "
        } else {
            ""
        }
    }
}

/// Formats `value` like Go's `strconv.FormatFloat` with a verb (`e`, `E`, `f`, `g`, `G`) and
/// an optional precision (`None`: the shortest text that reads back the same).
fn go_float(value: f64, verb: char, precision: Option<usize>) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let negative = value.is_sign_negative() && value != 0.0;
    let abs = value.abs();
    let body = match verb {
        'f' | 'F' => format!("{abs:.*}", precision.unwrap_or(6)),
        'e' | 'E' => {
            let p = precision.unwrap_or(6);
            go_exponent(&format!("{abs:.p$e}"), verb == 'E')
        }
        _ => {
            // %g: digits and exponent of the shortest (or precision-limited) form.
            let text = match precision {
                Some(p) => format!("{abs:.*e}", p.max(1) - 1),
                None => format!("{abs:e}"),
            };
            let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
            let exponent: i32 = exponent.parse().unwrap_or(0);
            let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            let digits = match digits.trim_end_matches('0') {
                "" => "0",
                d => d,
            };
            let mut eprec = precision.map_or(6, |p| p.max(1) as i32);
            let nd = digits.len() as i32;
            if precision.is_none() && eprec > nd && nd > exponent {
                eprec = nd;
            }
            if exponent < -4 || exponent >= eprec {
                let mantissa = if digits.len() > 1 {
                    format!("{}.{}", &digits[..1], &digits[1..])
                } else {
                    digits.to_string()
                };
                go_exponent(&format!("{mantissa}e{exponent}"), verb == 'G')
            } else if exponent < 0 {
                format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
            } else {
                let point = (exponent + 1) as usize;
                if digits.len() > point {
                    format!("{}.{}", &digits[..point], &digits[point..])
                } else {
                    format!("{digits}{}", "0".repeat(point - digits.len()))
                }
            }
        }
    };
    if negative {
        format!("-{body}")
    } else {
        body
    }
}

/// Rust's `1.5e3` as Go writes it: `1.5e+03`.
fn go_exponent(text: &str, upper: bool) -> String {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exponent.abs())
}

fn radix(mut n: u128, base: u32, upper: bool) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut digits = Vec::new();
    while n > 0 {
        let d = (n % u128::from(base)) as u32;
        digits.push(char::from_digit(d, base).unwrap_or('0'));
        n /= u128::from(base);
    }
    let s: String = digits.into_iter().rev().collect();
    if upper {
        s.to_uppercase()
    } else {
        s
    }
}

fn format_int(spec: &Spec, verb: char, i: i128) -> Option<String> {
    let negative = i < 0;
    let abs = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => abs.to_string(),
        'x' => radix(abs, 16, false),
        'X' => radix(abs, 16, true),
        'o' | 'O' => radix(abs, 8, false),
        'b' => radix(abs, 2, false),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return Some(spec.pad(c.to_string(), false));
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let quoted = go_quote(&c.to_string());
            let inner = &quoted[1..quoted.len() - 1];
            let inner = if c == '"' {
                "\""
            } else if c == '\'' {
                "\\'"
            } else {
                inner
            };
            return Some(spec.pad(format!("'{inner}'"), false));
        }
        'U' => return Some(spec.pad(format!("U+{:04X}", abs), false)),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => return None,
        _ => return None,
    };
    if let Some(p) = spec.precision {
        if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    let prefix = match (spec.sharp, verb) {
        (true, 'x') => "0x",
        (true, 'X') => "0X",
        (true, 'o') => "0",
        (_, 'O') => "0o",
        (true, 'b') => "0b",
        _ => "",
    };
    let text = format!("{}{prefix}{digits}", spec.sign(negative));
    // Go ignores the 0 flag when a precision is given.
    let spec = Spec {
        zero: spec.zero && spec.precision.is_none(),
        ..*spec
    };
    Some(spec.pad(text, true))
}

fn format_float(spec: &Spec, verb: char, f: f64) -> Option<String> {
    let verb = match verb {
        'v' => 'g',
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => verb,
        _ => return None,
    };
    let text = go_float(f, verb, spec.precision);
    let text = if text.starts_with('-') {
        text
    } else {
        format!("{}{text}", spec.sign(false))
    };
    Some(spec.pad(text, true))
}

fn format_str(spec: &Spec, verb: char, s: &str) -> Option<String> {
    let truncated: String = match spec.precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    };
    let text = match verb {
        's' | 'v' => truncated,
        'q' => go_quote(&truncated),
        'x' => truncated.bytes().map(|b| format!("{b:02x}")).collect(),
        'X' => truncated.bytes().map(|b| format!("{b:02X}")).collect(),
        _ => return None,
    };
    Some(spec.pad(text, false))
}

fn format_arg(spec: &Spec, verb: char, arg: &Arg) -> String {
    let formatted = match arg {
        Arg::Int(i) => format_int(spec, verb, *i),
        Arg::Big(s) => matches!(verb, 'd' | 'v').then(|| spec.pad(s.clone(), true)),
        Arg::Float(f) => format_float(spec, verb, *f),
        Arg::Str(s) => format_str(spec, verb, s),
    };
    formatted.unwrap_or_else(|| format!("%!{verb}({}={})", arg.type_name(), arg.plain()))
}

/// Go's `fmt.Sprintf(format, args...)`.
fn go_sprintf(format: &str, args: &[Arg]) -> String {
    let mut out = String::with_capacity(format.len() + 16);
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = !spec.minus,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next) {
            Some(arg) => out.push_str(&format_arg(&spec, verb, arg)),
            None => out.push_str(&format!("%!{verb}(MISSING)")),
        }
        next += 1;
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.plain()))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

/// `sprintf(format, values)` as OPA computes it; undefined when the operands have the wrong
/// types (OPA's non-strict builtin error).
pub fn sprintf(args: Vec<Value>) -> anyhow::Result<Value> {
    let (Some(Value::String(format)), Some(Value::Array(values))) = (args.first(), args.get(1))
    else {
        return Ok(Value::Undefined);
    };
    let values: Vec<Arg> = values.iter().map(Arg::of).collect();
    Ok(Value::String(go_sprintf(format, &values).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(format: &str, args: &str) -> String {
        let args = Value::from_json_str(args).expect("json");
        match sprintf(vec![Value::from(format), args]).expect("ok") {
            Value::String(s) => s.to_string(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn missing_and_extra_arguments_are_formatted_not_errors() {
        assert_eq!(
            fmt(
                "%v <%v> min %v max %v: %v. Allowed: %v",
                r#"["HPA", "h", 1, 5, [1]]"#
            ),
            "HPA <h> min 1 max 5: [1]. Allowed: %!v(MISSING)"
        );
        assert_eq!(fmt("%s", "[]"), "%!s(MISSING)");
        assert_eq!(fmt("x", "[1, \"a\"]"), "x%!(EXTRA int=1, string=a)");
        assert_eq!(fmt("100%", "[]"), "100%!(NOVERB)");
        assert_eq!(fmt("100%%", "[]"), "100%");
    }

    #[test]
    fn composite_values_print_as_rego_text() {
        assert_eq!(
            fmt("%v", r#"[{"b": [1, "x"], "a": null}]"#),
            r#"{"a": null, "b": [1, "x"]}"#
        );
        assert_eq!(fmt("%v", r#"[["a", "b"]]"#), r#"["a", "b"]"#);
        assert_eq!(fmt("%v", "[true]"), "true");
        assert_eq!(fmt("%s", "[null]"), "null");
        let set = Value::from(std::collections::BTreeSet::from([
            Value::from("b"),
            Value::from("a"),
        ]));
        assert_eq!(rego_text(&set), r#"{"a", "b"}"#);
        assert_eq!(rego_text(&Value::new_set()), "set()");
    }

    #[test]
    fn numbers_format_as_go_does() {
        assert_eq!(fmt("%v %d %s", "[3, -4, 5]"), "3 -4 %!s(int=5)");
        assert_eq!(fmt("%v", "[1.5]"), "1.5");
        assert_eq!(fmt("%v", "[0.1]"), "0.1");
        assert_eq!(fmt("%v", "[1234567.5]"), "1.2345675e+06");
        assert_eq!(fmt("%v", "[0.00001]"), "1e-05");
        assert_eq!(fmt("%v", "[0.25]"), "0.25");
        assert_eq!(fmt("%.2f %f", "[3.14159, 2.5]"), "3.14 2.500000");
        assert_eq!(fmt("%e", "[1500.5]"), "1.500500e+03");
        assert_eq!(fmt("%d", "[1.5]"), "%!d(float64=1.5)");
        assert_eq!(
            fmt("%05d|%-4d|%4d|%+d", "[42, 7, 7, 3]"),
            "00042|7   |   7|+3"
        );
        assert_eq!(fmt("%x %X %o %b", "[255, 255, 8, 5]"), "ff FF 10 101");
        assert_eq!(
            fmt("%q %5s|%.2s", r#"["a\"b", "ab", "xyz"]"#),
            r#""a\"b"    ab|xy"#
        );
        assert_eq!(fmt("%d", r#"["7"]"#), "%!d(string=7)");
    }

    #[test]
    fn wrong_operand_types_are_undefined() {
        assert_eq!(
            sprintf(vec![Value::from(1), Value::new_array()]).expect("ok"),
            Value::Undefined
        );
        assert_eq!(
            sprintf(vec![Value::from("%v"), Value::from("x")]).expect("ok"),
            Value::Undefined
        );
    }
}
