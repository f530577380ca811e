//! Gatekeeper-compatible policy and schema checks for Kubernetes manifests.
//!
//! The pipeline: [`manifest`] loads objects with their source positions, [`policy`] builds the
//! set of templates and constraints, [`review`] builds admission reviews (expanding workloads),
//! [`engine`] evaluates Rego, [`check`] runs it all in parallel, and [`report`] renders findings.

pub mod args;
pub mod audit;
pub mod bundle;
pub mod chart;
pub mod check;
pub mod cli;
pub mod digest;
pub mod duration;
pub mod engine;
pub mod files;
pub mod glob;
pub mod manifest;
pub mod policy;
pub mod pushgateway;
pub mod redact;
pub mod report;
pub mod review;
pub mod schema;
pub mod signature;
pub mod vap;
pub mod verify;
pub mod waiver;
pub mod webhook;

/// Keeps errors from capturing a backtrace each when `RUST_BACKTRACE` is set, unless
/// `RUST_LIB_BACKTRACE` says otherwise. The Rego engine builds errors (with `anyhow`) in its
/// normal course, for paths it then finds undefined; with `RUST_BACKTRACE=1`, as many CI and
/// development shells have it, each of those walked the stack, which cost the webhook about a
/// tenth of its CPU. Panics still print their backtrace, which `RUST_BACKTRACE` alone governs.
///
/// Call it first thing in `main`, before any thread starts.
pub fn quiet_error_backtraces() {
    if let Some(value) = lib_backtrace_setting(std::env::var_os("RUST_LIB_BACKTRACE").as_deref()) {
        std::env::set_var("RUST_LIB_BACKTRACE", value);
    }
}

/// What to set `RUST_LIB_BACKTRACE` to, given its current value: `0` when unset, else nothing.
fn lib_backtrace_setting(current: Option<&std::ffi::OsStr>) -> Option<&'static str> {
    match current {
        None => Some("0"),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::lib_backtrace_setting;
    use std::ffi::OsStr;

    #[test]
    fn error_backtraces_are_off_unless_asked_for() {
        assert_eq!(lib_backtrace_setting(None), Some("0"));
        assert_eq!(lib_backtrace_setting(Some(OsStr::new("1"))), None);
        assert_eq!(lib_backtrace_setting(Some(OsStr::new("0"))), None);
    }
}
