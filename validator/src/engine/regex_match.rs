//! `regex.match` with each pattern compiled once per thread and its matcher kept.
//!
//! regorus's own `regex.match` keeps compiled patterns in a process-wide cache but hands out a
//! clone of the pattern for every call, and a cloned pattern starts with an empty matching cache:
//! every call rebuilt the lazy DFA it matched with. A template that matches each object of the
//! inventory against a fixed pattern (`uniqueingresshost` checks every other Ingress's
//! apiVersion) spent most of its time there. Here each worker thread keeps its own compiled
//! patterns, so a match reuses the DFA states built by earlier ones.
//!
//! The semantics are those of the builtin: the same regex syntax and size limit, a pattern that
//! does not compile or a non-string argument is undefined (OPA's non-strict builtin errors), a
//! pattern over the size limit is an error.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::{Regex, RegexBuilder};
use regorus::Value;

/// The compiled size limit regorus applies to a pattern (bytes).
const SIZE_LIMIT: usize = 100 * 1024;

/// How many patterns a thread keeps before it starts again with none.
const CAPACITY: usize = 512;

thread_local! {
    /// Pattern -> compiled regex, or `None` when the pattern does not compile.
    static PATTERNS: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// `regex.match(pattern, value)`.
pub fn regex_match(args: Vec<Value>) -> anyhow::Result<Value> {
    let (Some(Value::String(pattern)), Some(Value::String(value))) = (args.first(), args.get(1))
    else {
        return Ok(Value::Undefined);
    };
    PATTERNS.with(|patterns| {
        let mut patterns = patterns.borrow_mut();
        if !patterns.contains_key(pattern.as_ref()) {
            let compiled = match RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).build() {
                Ok(regex) => Some(regex),
                Err(regex::Error::CompiledTooBig(limit)) => anyhow::bail!(
                    "regex.match: the pattern compiles to more than {limit} bytes; simplify it"
                ),
                Err(_) => None,
            };
            if patterns.len() >= CAPACITY {
                patterns.clear();
            }
            patterns.insert(pattern.to_string(), compiled);
        }
        Ok(match &patterns[pattern.as_ref()] {
            Some(regex) => Value::Bool(regex.is_match(value)),
            None => Value::Undefined,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pattern: &str, value: &str) -> Value {
        regex_match(vec![Value::from(pattern), Value::from(value)]).unwrap()
    }

    #[test]
    fn matches_as_the_builtin_does() {
        assert_eq!(
            call("^(extensions|networking.k8s.io)$", "networking.k8s.io"),
            Value::Bool(true)
        );
        assert_eq!(
            call("^(extensions|networking.k8s.io)$", "apps"),
            Value::Bool(false)
        );
        // Unanchored: a match anywhere in the value.
        assert_eq!(call("k8s", "networking.k8s.io"), Value::Bool(true));
        // The same pattern again comes from the thread's cache with the same answer.
        assert_eq!(call("k8s", "apps"), Value::Bool(false));
    }

    #[test]
    fn a_bad_pattern_or_argument_is_undefined() {
        assert_eq!(call("a(", "a"), Value::Undefined);
        assert_eq!(call("a(", "a"), Value::Undefined);
        let number = regex_match(vec![Value::from("a"), Value::from(1)]).unwrap();
        assert_eq!(number, Value::Undefined);
        assert_eq!(regex_match(vec![]).unwrap(), Value::Undefined);
    }

    #[test]
    fn a_pattern_over_the_size_limit_is_an_error() {
        let huge = format!("^(?:{})$", "[a-z]{10}".repeat(2_000));
        let err = regex_match(vec![Value::from(huge.as_str()), Value::from("a")]).unwrap_err();
        assert!(err.to_string().contains("simplify it"), "{err}");
    }

    #[test]
    fn the_cache_starts_again_when_full() {
        for i in 0..CAPACITY + 3 {
            assert_eq!(
                call(&format!("^x{i}$"), &format!("x{i}")),
                Value::Bool(true)
            );
        }
        PATTERNS.with(|p| assert!(p.borrow().len() <= CAPACITY));
    }
}
