//! Requests the server refuses on purpose: kinds the client's RBAC does not allow (403), and
//! list pages that fail part-way through a paged list.

use crate::resources::ResourceType;
use crate::store::ApiError;

/// What the server refuses, by apiVersion and kind.
#[derive(Debug, Default)]
pub struct Refusals {
    forbidden: Vec<(String, String)>,
    /// (apiVersion, kind, failures left, expired) for list requests that carry a `continue`
    /// token: a server error, or 410 Expired when `expired`.
    continued_lists: Vec<(String, String, usize, bool)>,
}

impl Refusals {
    pub fn forbid(&mut self, api_version: &str, kind: &str) {
        self.forbidden.push((api_version.into(), kind.into()));
    }

    pub fn fail_continued_lists(&mut self, api_version: &str, kind: &str, times: usize) {
        self.refuse_continued_lists(api_version, kind, times, false);
    }

    /// The next `times` list requests of the kind with a `continue` token are answered as
    /// the API server answers a token older than its compaction: 410 Expired.
    pub fn expire_continued_lists(&mut self, api_version: &str, kind: &str, times: usize) {
        self.refuse_continued_lists(api_version, kind, times, true);
    }

    fn refuse_continued_lists(
        &mut self,
        api_version: &str,
        kind: &str,
        times: usize,
        expired: bool,
    ) {
        self.continued_lists
            .retain(|(v, k, _, _)| !(v == api_version && k == kind));
        self.continued_lists
            .push((api_version.into(), kind.into(), times, expired));
    }

    /// The refusal of a request for `rt` (`verb` as RBAC names it; `continued` when the list
    /// request carries a `continue` token), if any.
    pub fn check(
        &mut self,
        rt: &ResourceType,
        verb: &str,
        namespace: Option<&str>,
        continued: bool,
    ) -> Result<(), ApiError> {
        let api_version = rt.api_version();
        let same = |v: &str, k: &str| v == api_version && k == rt.kind;
        if self.forbidden.iter().any(|(v, k)| same(v, k)) {
            let resource = if rt.group.is_empty() {
                rt.plural.clone()
            } else {
                format!("{}.{}", rt.plural, rt.group)
            };
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".into(),
            };
            let mut e = ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{resource} is forbidden: User \"simulator\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
                    rt.plural, rt.group
                ),
            );
            e.details = Some(Box::new(
                serde_json::json!({"group": rt.group, "kind": rt.plural}),
            ));
            return Err(e);
        }
        if continued && verb == "list" {
            if let Some(left) = self
                .continued_lists
                .iter_mut()
                .find(|(v, k, left, _)| same(v, k) && *left > 0)
            {
                left.2 -= 1;
                if left.3 {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    "an error on the server (\"list interrupted\") has prevented the request from succeeding",
                ));
            }
        }
        Ok(())
    }
}
