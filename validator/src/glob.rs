//! Gatekeeper's name globs (namespaces, names, waivers, file exclusions).

/// Matches a name against a pattern that may start or end with `*` (Gatekeeper's namespace and name globs).
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        _ if pattern == "*" => true,
        (Some(suffix), _) if !suffix.ends_with('*') => value.ends_with(suffix),
        (_, Some(prefix)) if !prefix.starts_with('*') => value.starts_with(prefix),
        (Some(inner), Some(_)) => value.contains(inner.trim_end_matches('*')),
        _ => pattern == value,
    }
}
