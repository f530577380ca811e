//! The policy library compiled into the binary: templates, expansions and the named bundles.

use crate::manifest::{load_bytes, Loaded};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The bundle used when none is named.
pub const DEFAULT_BUNDLE: &str = "production";

/// Names of the embedded bundles.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = embedded::FILES
        .iter()
        .filter_map(|(path, _)| path.strip_prefix("bundles/"))
        .filter_map(|rest| rest.split('/').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Every template and expansion of the library plus the constraints of one bundle.
/// `None` when no bundle has that name.
pub fn load(bundle: &str) -> Option<Loaded> {
    if !names().contains(&bundle) {
        return None;
    }
    let prefix = format!("bundles/{bundle}/");
    let mut loaded = Loaded::default();
    for (path, text) in embedded::FILES {
        let wanted = !path.starts_with("bundles/") || path.starts_with(&prefix);
        if wanted {
            loaded.extend(load_bytes(
                &format!("<embedded>/policies/{path}"),
                text.as_bytes(),
                false,
            ));
        }
    }
    Some(loaded)
}
