//! Wall-clock moments as release records, reports and events write them.

use jiff::Timestamp;

/// The wall-clock time with microseconds, RFC 3339.
pub fn now_rfc3339() -> String {
    let now = Timestamp::now();
    match Timestamp::from_microsecond(now.as_microsecond()) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => now.to_string(),
    }
}
