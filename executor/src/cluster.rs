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

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot find a cluster configuration (KUBECONFIG, ~/.kube/config or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot connect to the cluster: {}", crate::apply::describe(.0))]
    Client(#[source] kube::Error),
    #[error(
        "cannot discover {api_version} {kind}: {}",
        crate::apply::describe(source)
    )]
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
    pub async fn connect(
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
