//! Durations given on the command line (`2s`, `500ms`, `1m30s`, `1h`, `90`): one parser, with
//! bounds, for every flag of both binaries.

use std::time::Duration;

/// The longest duration any flag accepts (a year): beyond it a value is a typo, and every
/// deadline computed from it (`now + duration`) stays representable.
pub const MAX: Duration = Duration::from_secs(366 * 86_400);

const EXAMPLES: &str = "use e.g. 500ms, 2s, 1m30s or 1h";

/// Parses a duration: a number of seconds (`90`), or amounts with units as jiff's friendly
/// format reads them (`500ms`, `2s`, `1m30s`, `1h 5m`, `1.5s`, `2 seconds`); also ISO 8601
/// (`PT2S`). Negative and longer than [`MAX`] are refused.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {EXAMPLES}"));
    }
    let signed: jiff::SignedDuration = if text.bytes().all(|b| b.is_ascii_digit()) {
        match text.parse::<u64>() {
            Ok(secs) if secs <= MAX.as_secs() => {
                jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
            }
            _ => return Err(too_long(text)),
        }
    } else {
        text.parse().map_err(|e: jiff::Error| {
            let reason = e.to_string();
            if reason.contains("overflow") || reason.contains("too big") {
                too_long(text)
            } else {
                format!("`{text}` is not a duration; {EXAMPLES}")
            }
        })?
    };
    if signed.is_negative() {
        return Err(format!("`{text}` is negative"));
    }
    let duration = Duration::try_from(signed).map_err(|_| too_long(text))?;
    if duration > MAX {
        return Err(too_long(text));
    }
    Ok(duration)
}

fn too_long(text: &str) -> String {
    format!("`{text}` is longer than the longest accepted duration ({MAX_TEXT})")
}

const MAX_TEXT: &str = "366 days";

/// Formats a duration as the parser reads it back (`2s`, `250ms`, `1m 30s`).
pub fn display(duration: Duration) -> String {
    match jiff::SignedDuration::try_from(duration) {
        Ok(d) => format!("{d:#}"),
        Err(_) => format!("{}s", duration.as_secs()),
    }
}

/// A clap value parser for a duration between `min` and `max` (both included), e.g.
/// `#[arg(value_parser = duration::between(Duration::from_millis(1), Duration::from_secs(30)))]`.
pub fn between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let d = parse(text)?;
        if d < min {
            if d.is_zero() {
                return Err(format!("`{text}` must be more than zero"));
            }
            return Err(format!("`{text}` is shorter than {}", display(min)));
        }
        if d > max {
            return Err(format!("`{text}` is longer than {}", display(max)));
        }
        Ok(d)
    }
}

/// Any duration from zero to [`MAX`].
pub fn any() -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    between(Duration::ZERO, MAX)
}

/// Any duration above zero up to [`MAX`].
pub fn positive() -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    between(Duration::from_nanos(1), MAX)
}

#[cfg(test)]
mod tests {
    // A test fails loudly on what the library must handle.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_the_usual_forms() {
        let cases = [
            ("90", 90_000),
            ("90s", 90_000),
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("1h", 3_600_000),
            ("2 seconds", 2_000),
            ("PT2S", 2_000),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn refuses_nonsense_negative_and_huge() {
        for text in ["", "x", "m", "5 parsecs", "2s3", "-1s", "1e3s"] {
            assert!(parse(text).is_err(), "{text}");
        }
        let huge = parse("100000000000000000000").unwrap_err();
        assert!(huge.contains("longer than the longest"), "{huge}");
        let huge = parse("100000000000000000000s").unwrap_err();
        assert!(huge.contains("`100000000000000000000s`"), "{huge}");
        assert!(parse("367 days").is_err() || parse("367 days") == Ok(MAX));
        assert!(parse("9999999h").is_err());
    }

    #[test]
    fn bounds_name_the_limit() {
        let timeout = between(Duration::from_nanos(1), Duration::from_secs(30));
        assert_eq!(timeout("0").unwrap_err(), "`0` must be more than zero");
        assert_eq!(timeout("0s").unwrap_err(), "`0s` must be more than zero");
        assert_eq!(timeout("31s").unwrap_err(), "`31s` is longer than 30s");
        assert_eq!(timeout("30s"), Ok(Duration::from_secs(30)));
        let at_least = between(Duration::from_millis(100), MAX);
        assert_eq!(
            at_least("10ms").unwrap_err(),
            "`10ms` is shorter than 100ms"
        );
    }

    proptest! {
        /// Whatever the text, parsing answers without panicking, and what it accepts is within
        /// bounds.
        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            if let Ok(d) = parse(&text) {
                prop_assert!(d <= MAX);
            }
        }

        #[test]
        fn numbers_with_units_anywhere_in_range(n in 0u64..u64::MAX, unit in prop::sample::select(vec!["", "ms", "s", "m", "h", "us", "ns"])) {
            let text = format!("{n}{unit}");
            let expected = match unit {
                "" | "s" => Duration::from_secs(n).checked_mul(1),
                "ms" => Some(Duration::from_millis(n)),
                "us" => Some(Duration::from_micros(n)),
                "ns" => Some(Duration::from_nanos(n)),
                "m" => n.checked_mul(60).map(Duration::from_secs),
                _ => n.checked_mul(3600).map(Duration::from_secs),
            };
            match (parse(&text), expected) {
                (Ok(d), Some(e)) => prop_assert_eq!(d, e),
                (Err(_), Some(e)) => prop_assert!(e > MAX, "{} refused", text),
                (Ok(d), None) => prop_assert!(false, "{} read as {:?}", text, d),
                (Err(_), None) => {}
            }
        }

        /// What `display` writes, `parse` reads back.
        #[test]
        fn display_round_trips(ms in 0u64..MAX.as_millis() as u64) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse(&display(d)), Ok(d));
        }
    }
}
