//! Parsing and checking of argument values: durations, times, DNS labels, release names.

use std::time::Duration;

use crate::Error;

/// `300`, `300s`, `5m`, `1h`, `1m30s`, `500ms`: the validator's duration parser, shared by
/// both binaries (bounded; huge values are refused, never wrapped).
pub use validator::duration::parse as parse_duration;

/// Whether `name` is a DNS label of at most `max` characters: lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn is_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A release name as Kubernetes labels and Secret names allow it.
pub fn check_release_name(name: &str) -> Result<(), Error> {
    if is_dns_label(name, 53) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid release name `{name}`: use lowercase letters, digits and `-` (at most 53 characters, starting and ending with a letter or digit)"
        )))
    }
}

/// A namespace name as Kubernetes allows it (a DNS label).
pub fn check_namespace_name(name: &str) -> Result<(), Error> {
    if crate::parse::is_dns_label(name, 63) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid namespace `{name}`: use lowercase letters, digits and `-` (at most 63 characters, starting and ending with a letter or digit)"
        )))
    }
}

/// A `--since` that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SinceError {
    /// Neither an RFC 3339 time, nor a number of days, nor a duration.
    #[error("--since {when}: {reason}; give e.g. 30d, 12h or 2026-01-01T00:00:00Z")]
    Unreadable { when: String, reason: String },
    /// A time before what timestamps hold.
    #[error("--since {when}: {source}")]
    OutOfRange {
        when: String,
        #[source]
        source: jiff::Error,
    },
}

/// `30d`, `12h`, `90m` before `now`, or an RFC 3339 time.
pub fn parse_since(when: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, SinceError> {
    if let Ok(t) = when.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let ago = match when.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("--since {when}: not a number of days")),
        None => parse_duration(when),
    }
    .map_err(|reason| SinceError::Unreadable {
        when: when.to_string(),
        reason,
    })?;
    let out_of_range = |source| SinceError::OutOfRange {
        when: when.to_string(),
        source,
    };
    let ago = jiff::SignedDuration::try_from(ago).map_err(out_of_range)?;
    now.checked_sub(ago).map_err(out_of_range)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("100000000000000000000").is_err());
        assert!(parse_since("213503982334601d", jiff::Timestamp::UNIX_EPOCH).is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn release_names() {
        assert!(check_release_name("shop-api").is_ok());
        assert!(check_release_name("Shop").is_err());
        assert!(check_release_name("-a").is_err());
        assert!(check_release_name(&"a".repeat(54)).is_err());
    }
}
