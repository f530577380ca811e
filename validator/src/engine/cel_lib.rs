//! The Kubernetes CEL libraries that the standard and extension libraries of the `cel` crate lack:
//! quantities (`quantity`, `isQuantity` and the `Quantity` methods), URLs (`url`, `isURL` and the
//! `URL` getters) and regex `find`/`findAll`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use cel::common::types::{Type, INT_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::objects::Opaque;
use cel::{Env, ExecutionError, Value};

const QUANTITY: &str = "kubernetes.Quantity";
const URL: &str = "kubernetes.URL";
const NANO: i128 = 1_000_000_000;

/// Registers every function of this module on `env`.
pub fn register(env: &mut Env) -> Result<(), String> {
    let quantity = || Type::new_opaque_type(QUANTITY);
    let url = || Type::new_opaque_type(URL);
    let fail = |e| format!("cannot set up the Kubernetes CEL library: {e:?}");
    env.add_type(quantity()).map_err(fail)?;
    env.add_type(url()).map_err(fail)?;
    let globals: [(&str, &str, cel::common::functions::Function); 4] = [
        ("quantity", "quantity_string", quantity_of),
        ("isQuantity", "is_quantity_string", is_quantity),
        ("url", "url_string", url_of),
        ("isURL", "is_url_string", is_url),
    ];
    for (name, id, f) in globals {
        env.add_overload(name, id, vec![STRING_TYPE], f)
            .map_err(fail)?;
    }
    let quantity_methods: [(&str, &str, Vec<Type>, cel::common::functions::Function); 11] = [
        ("isInteger", "quantity_is_integer", vec![], q_is_integer),
        ("asInteger", "quantity_as_integer", vec![], q_as_integer),
        (
            "asApproximateFloat",
            "quantity_as_float",
            vec![],
            q_as_float,
        ),
        ("sign", "quantity_sign", vec![], q_sign),
        ("add", "quantity_add_quantity", vec![quantity()], q_add),
        ("add", "quantity_add_int", vec![INT_TYPE], q_add),
        ("sub", "quantity_sub_quantity", vec![quantity()], q_sub),
        ("sub", "quantity_sub_int", vec![INT_TYPE], q_sub),
        (
            "isGreaterThan",
            "quantity_greater",
            vec![quantity()],
            q_greater,
        ),
        ("isLessThan", "quantity_less", vec![quantity()], q_less),
        ("compareTo", "quantity_compare", vec![quantity()], q_compare),
    ];
    for (name, id, args, f) in quantity_methods {
        env.add_member_overload(name, id, quantity(), args, f)
            .map_err(fail)?;
    }
    let url_methods: [(&str, &str, cel::common::functions::Function); 6] = [
        ("getScheme", "url_scheme", u_scheme),
        ("getHost", "url_host", u_host),
        ("getHostname", "url_hostname", u_hostname),
        ("getPort", "url_port", u_port),
        ("getEscapedPath", "url_escaped_path", u_path),
        ("getQuery", "url_query", u_query),
    ];
    for (name, id, f) in url_methods {
        env.add_member_overload(name, id, url(), vec![], f)
            .map_err(fail)?;
    }
    env.add_member_overload("find", "string_find", STRING_TYPE, vec![STRING_TYPE], find)
        .map_err(fail)?;
    env.add_member_overload(
        "findAll",
        "string_find_all",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )
    .map_err(fail)?;
    env.add_member_overload(
        "findAll",
        "string_find_all_n",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )
    .map_err(fail)?;
    Ok(())
}

type CelResult<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

fn values(args: &[CowVal<'_, '_>]) -> Result<Vec<Value>, ExecutionError> {
    args.iter().map(|a| Value::try_from(a.as_ref())).collect()
}

fn out<'b, 'v>(value: Value) -> CelResult<'b, 'v> {
    let boxed: Box<dyn cel::common::value::Val> = value.try_into()?;
    Ok(CowVal::Owned(boxed))
}

fn string_arg<'a>(function: &str, v: &'a Value) -> Result<&'a str, ExecutionError> {
    match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(ExecutionError::function_error(
            function,
            format!("expected a string, got {:?}", other.type_of()),
        )),
    }
}

// ---- Quantities ----

/// A Kubernetes resource quantity, held exactly in units of 10^-9 (Kubernetes rounds smaller
/// fractions up to the next nano unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
}

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        QUANTITY
    }
}

/// Parses the Kubernetes quantity syntax: a signed decimal number followed by a binary SI
/// suffix (`Ki`..`Ei`), a decimal SI suffix (`n`, `u`, `m`, `k`, `M`..`E`) or an exponent.
pub fn parse_quantity(text: &str) -> Result<Quantity, String> {
    let invalid = || format!("invalid quantity {text:?}");
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(invalid());
    }
    // value = digits × 10^(exp10 - fraction digits) × 2^exp2
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let e: i32 = s[1..].parse().map_err(|_| invalid())?;
            if !(-40..=40).contains(&e) {
                return Err(format!("quantity {text:?} is out of range"));
            }
            (e, 0)
        }
        _ => return Err(invalid()),
    };
    let too_large = || format!("quantity {text:?} is too large");
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(too_large());
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| invalid())?
    };
    let scale = exp10 + 9 - fraction.len() as i32;
    let mut nanos = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_large)?;
    if scale >= 0 {
        nanos = nanos
            .checked_mul(10i128.checked_pow(scale as u32).ok_or_else(too_large)?)
            .ok_or_else(too_large)?;
    } else {
        let divisor = 10i128
            .checked_pow(scale.unsigned_abs())
            .unwrap_or(i128::MAX);
        // Rounded up to the next nano unit, as Kubernetes does.
        nanos = nanos / divisor + i128::from(nanos % divisor != 0);
    }
    if nanos > i128::from(i64::MAX) * NANO {
        return Err(too_large());
    }
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

fn quantity_arg(function: &str, v: &Value) -> Result<Quantity, ExecutionError> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<Quantity>().copied(),
        _ => None,
    }
    .ok_or_else(|| ExecutionError::function_error(function, "expected a Quantity"))
}

fn quantity_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let text = string_arg("quantity", &args[0])?;
    let q = parse_quantity(text).map_err(|e| ExecutionError::function_error("quantity", e))?;
    out(Value::Opaque(Arc::new(q)))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let text = string_arg("isQuantity", &args[0])?;
    out(Value::Bool(parse_quantity(text).is_ok()))
}

fn receiver(function: &str, args: &[Value]) -> Result<Quantity, ExecutionError> {
    quantity_arg(function, &args[0])
}

fn q_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let q = receiver("isInteger", &values(&args)?)?;
    out(Value::Bool(
        q.nanos % NANO == 0 && i64::try_from(q.nanos / NANO).is_ok(),
    ))
}

fn q_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let q = receiver("asInteger", &values(&args)?)?;
    if q.nanos % NANO != 0 {
        return Err(ExecutionError::function_error(
            "asInteger",
            "the quantity is not an integer",
        ));
    }
    let i = i64::try_from(q.nanos / NANO).map_err(|_| {
        ExecutionError::function_error("asInteger", "the quantity does not fit in an int")
    })?;
    out(Value::Int(i))
}

fn q_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let q = receiver("asApproximateFloat", &values(&args)?)?;
    out(Value::Float(q.nanos as f64 / NANO as f64))
}

fn q_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let q = receiver("sign", &values(&args)?)?;
    out(Value::Int(q.nanos.signum() as i64))
}

fn operand(function: &str, v: &Value) -> Result<i128, ExecutionError> {
    match v {
        Value::Int(i) => Ok(i128::from(*i) * NANO),
        other => quantity_arg(function, other).map(|q| q.nanos),
    }
}

fn arithmetic<'b, 'v>(function: &str, args: &[CowVal<'b, 'v>], sign: i128) -> CelResult<'b, 'v> {
    let args = values(args)?;
    let a = receiver(function, &args)?;
    let b = operand(function, &args[1])?;
    let nanos = a
        .nanos
        .checked_add(sign * b)
        .filter(|n| n.abs() <= i128::from(i64::MAX) * NANO)
        .ok_or_else(|| ExecutionError::function_error(function, "quantity overflow"))?;
    out(Value::Opaque(Arc::new(Quantity { nanos })))
}

fn q_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    arithmetic("add", &args, 1)
}

fn q_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    arithmetic("sub", &args, -1)
}

fn compare(function: &str, args: &[CowVal<'_, '_>]) -> Result<Ordering, ExecutionError> {
    let args = values(args)?;
    let a = receiver(function, &args)?;
    let b = quantity_arg(function, &args[1])?;
    Ok(a.nanos.cmp(&b.nanos))
}

fn q_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    out(Value::Bool(
        compare("isGreaterThan", &args)? == Ordering::Greater,
    ))
}

fn q_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    out(Value::Bool(compare("isLessThan", &args)? == Ordering::Less))
}

fn q_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    out(Value::Int(compare("compareTo", &args)? as i64))
}

// ---- URLs ----

/// An absolute URL or an absolute path, split as Go's `url.ParseRequestURI` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: String,
    host: String,
    hostname: String,
    port: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        URL
    }
}

/// Parses an absolute URL (`scheme:...`) or an absolute path (`/...`); a fragment is not allowed.
pub fn parse_url(text: &str) -> Result<Url, String> {
    let invalid = |why: &str| format!("invalid URL {text:?}: {why}");
    if text.chars().any(|c| c.is_control()) {
        return Err(invalid("control characters"));
    }
    if text.contains('#') {
        return Err(invalid("a fragment is not allowed"));
    }
    let (rest, query) = text.split_once('?').unwrap_or((text, ""));
    let mut url = Url {
        scheme: String::new(),
        host: String::new(),
        hostname: String::new(),
        port: String::new(),
        path: String::new(),
        query: query.to_string(),
    };
    if rest.starts_with('/') {
        url.path = rest.to_string();
        return Ok(url);
    }
    let Some((scheme, after)) = rest.split_once(':') else {
        return Err(invalid("neither an absolute URL nor an absolute path"));
    };
    let mut chars = scheme.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(invalid("bad scheme"));
    }
    url.scheme = scheme.to_string();
    let Some(after) = after.strip_prefix("//") else {
        url.path = after.to_string();
        return Ok(url);
    };
    let (authority, path) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    url.path = path.to_string();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (hostname, port) = if let Some(v6) = host.strip_prefix('[') {
        let (addr, tail) = v6
            .split_once(']')
            .ok_or_else(|| invalid("unclosed [ in the host"))?;
        match tail {
            "" => (addr, ""),
            t => (
                addr,
                t.strip_prefix(':')
                    .ok_or_else(|| invalid("bad text after the IPv6 host"))?,
            ),
        }
    } else {
        host.rsplit_once(':').unwrap_or((host, ""))
    };
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid("the port is not a number"));
    }
    if hostname.chars().any(|c| {
        c.is_whitespace() || matches!(c, '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`')
    }) {
        return Err(invalid("bad character in the host"));
    }
    url.host = host.to_string();
    url.hostname = hostname.to_string();
    url.port = port.to_string();
    Ok(url)
}

/// The path with every byte outside the characters allowed in a path percent-encoded.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'/'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'%'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn url_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let text = string_arg("url", &args[0])?;
    let u = parse_url(text).map_err(|e| ExecutionError::function_error("url", e))?;
    out(Value::Opaque(Arc::new(u)))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let text = string_arg("isURL", &args[0])?;
    out(Value::Bool(parse_url(text).is_ok()))
}

fn url_part<'b, 'v>(
    function: &str,
    args: &[CowVal<'b, 'v>],
    part: impl Fn(&Url) -> Value,
) -> CelResult<'b, 'v> {
    let args = values(args)?;
    let u = match &args[0] {
        Value::Opaque(o) => o.downcast_ref::<Url>().map(&part),
        _ => None,
    }
    .ok_or_else(|| ExecutionError::function_error(function, "expected a URL"))?;
    out(u)
}

fn text(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

fn u_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getScheme", &args, |u| text(&u.scheme))
}

fn u_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getHost", &args, |u| text(&u.host))
}

fn u_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getHostname", &args, |u| text(&u.hostname))
}

fn u_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getPort", &args, |u| text(&u.port))
}

fn u_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getEscapedPath", &args, |u| text(&escape_path(&u.path)))
}

fn u_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    url_part("getQuery", &args, |u| {
        let mut map: HashMap<String, Vec<Value>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(u.query.as_bytes()) {
            map.entry(k.into_owned()).or_default().push(text(&v));
        }
        Value::from(map)
    })
}

// ---- Regex ----

fn regex_arg(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| {
        ExecutionError::function_error(function, format!("invalid regex {pattern:?}: {e}"))
    })
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let haystack = string_arg("find", &args[0])?;
    let re = regex_arg("find", string_arg("find", &args[1])?)?;
    out(text(re.find(haystack).map_or("", |m| m.as_str())))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> CelResult<'b, 'v> {
    let args = values(&args)?;
    let haystack = string_arg("findAll", &args[0])?;
    let re = regex_arg("findAll", string_arg("findAll", &args[1])?)?;
    let limit = match args.get(2) {
        Some(Value::Int(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let found: Vec<Value> = re
        .find_iter(haystack)
        .take(limit)
        .map(|m| text(m.as_str()))
        .collect();
    out(Value::List(Arc::new(found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Context;

    fn eval(expr: &str) -> Result<Value, ExecutionError> {
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .expect("strings");
        register(&mut env).expect("registers");
        let program = env.compile(expr).expect("compiles");
        let context = Context::with_env(Arc::new(env));
        program.execute(&context)
    }

    fn holds(expr: &str) {
        assert_eq!(eval(expr), Ok(Value::Bool(true)), "{expr}");
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        let nanos = |s: &str| parse_quantity(s).map(|q| q.nanos);
        assert_eq!(nanos("1"), Ok(NANO));
        assert_eq!(nanos("1.5Gi"), Ok(1_610_612_736 * NANO));
        assert_eq!(nanos("500m"), Ok(NANO / 2));
        assert_eq!(nanos("-2k"), Ok(-2000 * NANO));
        assert_eq!(nanos("1e3"), Ok(1000 * NANO));
        assert_eq!(nanos("1E-3"), Ok(NANO / 1000));
        assert_eq!(nanos(".5"), Ok(NANO / 2));
        assert_eq!(nanos("5."), Ok(5 * NANO));
        assert_eq!(nanos("100n"), Ok(100));
        assert_eq!(nanos("1u"), Ok(1000));
        // Below a nano unit: rounded up.
        assert_eq!(nanos("0.1n"), Ok(1));
        for bad in [
            "", "abc", "1.2.3", "1Qi", "1 Gi", "-", "1e", "1ee2", "1e999",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_quantity("99999999999999999999999999999999").is_err());
        assert!(parse_quantity("100Ei").is_err());
    }

    #[test]
    fn quantity_functions() {
        holds("isQuantity('1.5Gi') && !isQuantity('1.5 Gi') && !isQuantity('')");
        holds("quantity('1Gi') == quantity('1024Mi')");
        holds("quantity('1Gi').isGreaterThan(quantity('1G'))");
        holds("quantity('100m').isLessThan(quantity('1'))");
        holds("quantity('2').compareTo(quantity('2000m')) == 0 && quantity('1').compareTo(quantity('2')) == -1 && quantity('3').compareTo(quantity('2')) == 1");
        holds("quantity('1k').isInteger() && !quantity('1500m').isInteger()");
        holds("quantity('1k').asInteger() == 1000");
        holds("quantity('1500m').asApproximateFloat() == 1.5");
        holds("quantity('-3').sign() == -1 && quantity('0').sign() == 0 && quantity('1m').sign() == 1");
        holds("quantity('1').add(quantity('500m')) == quantity('1500m')");
        holds("quantity('1').add(2) == quantity('3')");
        holds("quantity('1').sub(quantity('250m')) == quantity('750m')");
        holds("quantity('1').sub(3).sign() == -1");
        assert!(eval("quantity('1500m').asInteger()").is_err());
        assert!(eval("quantity('nope')").is_err());
        assert!(eval("quantity('9E').add(quantity('9E'))").is_err());
    }

    #[test]
    fn urls_split_like_go() {
        let u = parse_url("https://user@example.com:8443/a b/c?x=1&x=2&y").expect("parses");
        assert_eq!(
            (u.scheme.as_str(), u.host.as_str(), u.hostname.as_str()),
            ("https", "example.com:8443", "example.com")
        );
        assert_eq!(u.port, "8443");
        assert_eq!(escape_path(&u.path), "/a%20b/c");
        let v6 = parse_url("http://[::1]:80/").expect("parses");
        assert_eq!((v6.hostname.as_str(), v6.port.as_str()), ("::1", "80"));
        assert_eq!(
            parse_url("/just/a/path").expect("path").path,
            "/just/a/path"
        );
        for bad in [
            "relative/path",
            "",
            "1http://x",
            "http://x:port/",
            "http://a b/",
            "http://x/#frag",
            "http://[::1/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn url_functions() {
        holds("isURL('https://example.com/') && isURL('/p') && !isURL('../p')");
        holds("url('https://example.com:80/').getHost() == 'example.com:80'");
        holds("url('https://example.com:80/').getHostname() == 'example.com'");
        holds("url('https://example.com:80/').getPort() == '80'");
        holds("url('https://example.com/').getPort() == ''");
        holds("url('https://example.com/').getScheme() == 'https'");
        holds("url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'");
        holds("url('https://example.com/?k=a&k=b&j=').getQuery() == {'k': ['a', 'b'], 'j': ['']}");
        assert!(eval("url('not a url')").is_err());
    }

    #[test]
    fn regex_find_functions() {
        holds("'abc 123 def 456'.find('[0-9]+') == '123'");
        holds("'abc'.find('[0-9]+') == ''");
        holds("'1 2 3'.findAll('[0-9]') == ['1', '2', '3']");
        holds("'1 2 3'.findAll('[0-9]', 2) == ['1', '2']");
        holds("'1 2 3'.findAll('[0-9]', -1) == ['1', '2', '3']");
        assert!(eval("'x'.find('(')").is_err());
    }

    #[test]
    fn string_format_from_the_strings_extension() {
        holds("'%s has %d replicas'.format(['api', 3]) == 'api has 3 replicas'");
    }
}
