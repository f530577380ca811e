//! The connection to the cluster: a client from the kubeconfig, and kinds resolved to API
//! resources through discovery (cached, refreshed once CRDs are established).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use kube::api::{Api, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiResource, Scope};
use kube::{Client, Config};

/// The field manager of everything the executor applies.
pub const FIELD_MANAGER: &str = "executor";

/// Create and replace (the Lease, Events) with the executor's field manager, so that no
/// field of its writes is owned by a manager `unknown`.
pub fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..Default::default()
    }
}

/// A server answer in one line: the API's own message when there is one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.reason)
            };
            format!("{}{reason}{}", s.message, hint(&s.message))
        }
        other => other.to_string(),
    }
}

/// What to change when the server's message is a known trap.
fn hint(message: &str) -> String {
    // Kubernetes before 1.21 refuses, in server-side apply only, a port without `protocol`:
    // `.spec.ports: element 0: associative list with keys has an element that omits key
    // field "protocol"`.
    let Some(at) = message.find("omits key field \"protocol\"") else {
        return String::new();
    };
    let before = &message[..at];
    let list = before
        .rfind(": element ")
        .map(|end| {
            let start = before[..end]
                .rfind(|c: char| c.is_whitespace())
                .map(|i| i + 1)
                .unwrap_or(0);
            before[start..end].to_string()
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "ports".into());
    let element = before
        .rfind(": element ")
        .and_then(|i| before[i + ": element ".len()..].split(':').next())
        .map(|n| format!(" (entry {})", n.trim()))
        .unwrap_or_default();
    format!(
        "; add `protocol: TCP` (or UDP, SCTP) to every entry of {list}{element}: Kubernetes before 1.21 requires it for server-side apply"
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot find a cluster configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot connect to the cluster: {}", describe(.0))]
    Client(#[source] kube::Error),
    #[error("cannot discover {api_version} {kind}: {}", describe(source))]
    Discovery {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
}

/// A kind the cluster serves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

pub struct Cluster {
    pub client: Client,
    /// The namespace of the kubeconfig context.
    pub default_namespace: String,
    kinds: Mutex<HashMap<(String, String), Option<Resolved>>>,
}

impl Cluster {
    /// Connects with `--kubeconfig`/`--context`, else as kubectl would (KUBECONFIG, then
    /// ~/.kube/config, then in-cluster).
    pub async fn from_kubeconfig(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ClusterError> {
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let config = match (kubeconfig, context) {
            (Some(path), _) => {
                let kc = Kubeconfig::read_from(path).map_err(ClusterError::Kubeconfig)?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(ClusterError::Kubeconfig)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(ClusterError::Kubeconfig)?,
            (None, None) => Config::infer().await.map_err(ClusterError::Infer)?,
        };
        Self::from_config(config)
    }

    pub fn from_config(config: Config) -> Result<Self, ClusterError> {
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(ClusterError::Client)?;
        Ok(Cluster {
            client,
            default_namespace,
            kinds: Mutex::new(HashMap::new()),
        })
    }

    /// The API resource of a kind, or None when the cluster does not serve it.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<Resolved>, ClusterError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(hit) = self.kinds.lock().ok().and_then(|k| k.get(&key).cloned()) {
            return Ok(hit);
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resolved = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok((resource, caps)) => Some(Resolved {
                resource,
                namespaced: caps.scope == Scope::Namespaced,
            }),
            Err(kube::Error::Discovery(_)) => None,
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(source) => {
                return Err(ClusterError::Discovery {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    source,
                })
            }
        };
        if let Ok(mut k) = self.kinds.lock() {
            k.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// Forgets what discovery said (new CRDs were established).
    pub fn forget(&self) {
        if let Ok(mut k) = self.kinds.lock() {
            k.clear();
        }
    }

    /// The API for objects of a resolved kind in `namespace` (ignored for cluster-scoped kinds).
    pub fn api(&self, resolved: &Resolved, namespace: &str) -> Api<DynamicObject> {
        if resolved.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &resolved.resource)
        } else {
            Api::all_with(self.client.clone(), &resolved.resource)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_without_protocol_names_the_field_to_add() {
        let m = "failed to create typed patch object: .spec.template.spec.containers[name=\"api\"].ports: element 0: associative list with keys has an element that omits key field \"protocol\" (and doesn't have default value)";
        assert_eq!(
            hint(m),
            "; add `protocol: TCP` (or UDP, SCTP) to every entry of .spec.template.spec.containers[name=\"api\"].ports (entry 0): Kubernetes before 1.21 requires it for server-side apply"
        );
        assert!(hint("omits key field \"protocol\"").contains("every entry of ports"));
        assert_eq!(hint("Deployment.apps \"api\" is invalid"), "");
    }
}
