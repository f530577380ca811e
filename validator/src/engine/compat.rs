//! Source rewrites for OPA v0 syntax that regorus reads differently from OPA.

/// Rewrites v0 Rego so regorus reads it as OPA does. Currently the identity; see the tests.
pub fn normalize_v0(source: &str) -> String {
    source.to_string()
}
