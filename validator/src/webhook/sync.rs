//! Cluster objects that referential policies read as `data.inventory`, kept current by watches,
//! as Gatekeeper's sync does: `serve --sync KIND` lists and watches each kind, and every
//! evaluation sees the objects as of its start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::{json, Value};

/// `group/version/Kind`, or `version/Kind` for the core group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// A `--sync` value that names no kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    /// Not two or three parts separated by `/`.
    #[error("--sync `{0}`: expected group/version/Kind (e.g. networking.k8s.io/v1/NetworkPolicy) or version/Kind for the core group (v1/ServiceAccount)")]
    Shape(String),
    /// No version, or no capitalized Kind.
    #[error(
        "--sync `{0}`: the version and the Kind (capitalized, e.g. NetworkPolicy) are required"
    )]
    Incomplete(String),
}

/// Why the kinds of `--sync` cannot be told.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Kind(#[from] KindError),
    /// For `--sync auto`: the policies, which name the kinds, do not load.
    #[error("{0}")]
    Policies(String),
}

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, KindError> {
        let parts: Vec<&str> = text.split('/').collect();
        let (group, version, kind) = match parts.as_slice() {
            [version, kind] => ("", *version, *kind),
            [group, version, kind] => (*group, *version, *kind),
            _ => return Err(KindError::Shape(text.to_string())),
        };
        if version.is_empty() || kind.is_empty() || kind.starts_with(char::is_lowercase) {
            return Err(KindError::Incomplete(text.to_string()));
        }
        Ok(Kind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        })
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

/// Where the cluster is.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Key of a synced object: kind, namespace, name.
type ObjectKey = (String, String, String, String);

/// The synced objects and the inventory built from them.
pub struct Inventory {
    /// The kinds to keep, as given.
    pub kinds: Vec<Kind>,
    objects: Mutex<BTreeMap<ObjectKey, Value>>,
    built: RwLock<Arc<(u64, regorus::Value)>>,
    dirty: AtomicBool,
    generation: AtomicU64,
    /// Kinds whose first list is complete (or that the cluster does not serve).
    listed: AtomicUsize,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("kinds", &self.kinds)
            .field("generation", &self.generation())
            .finish()
    }
}

impl Inventory {
    pub fn new(kinds: Vec<Kind>) -> Inventory {
        let empty = crate::review::inventory(std::iter::empty());
        Inventory {
            kinds,
            objects: Mutex::new(BTreeMap::new()),
            built: RwLock::new(Arc::new((0, empty))),
            dirty: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            listed: AtomicUsize::new(0),
        }
    }

    /// The current inventory and its generation (0 until something is synced).
    pub fn current(&self) -> Arc<(u64, regorus::Value)> {
        self.built
            .read()
            .map(|b| b.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn generation(&self) -> u64 {
        self.current().0
    }

    /// Whether every kind has been listed once.
    pub fn synced(&self) -> bool {
        self.listed.load(Ordering::Acquire) >= self.kinds.len()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.objects.lock().map(|o| o.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(kind: &Kind, object: &Value) -> Option<ObjectKey> {
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?.to_string();
        let namespace = metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some((kind.api_version(), kind.kind.clone(), namespace, name))
    }

    /// Adds or replaces an object of `kind`.
    pub fn apply(&self, kind: &Kind, mut object: Value) {
        // Listed items carry no apiVersion/kind; the inventory is keyed by them.
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        if let (Some(key), Ok(mut objects)) = (Self::key(kind, &object), self.objects.lock()) {
            objects.insert(key, object);
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn delete(&self, kind: &Kind, object: &Value) {
        if let (Some(key), Ok(mut objects)) = (Self::key(kind, object), self.objects.lock()) {
            objects.remove(&key);
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Replaces every object of `kind` (after a full list).
    pub fn replace(&self, kind: &Kind, listed: Vec<Value>) {
        if let Ok(mut objects) = self.objects.lock() {
            let (api_version, name) = (kind.api_version(), &kind.kind);
            objects.retain(|(v, k, _, _), _| !(v == &api_version && k == name));
        }
        for object in listed {
            self.apply(kind, object);
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Rebuilds the inventory if objects changed since the last build; returns whether it did.
    pub fn rebuild(&self) -> bool {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return false;
        }
        let value = match self.objects.lock() {
            Ok(objects) => crate::review::inventory(objects.values()),
            Err(_) => return false,
        };
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if let Ok(mut built) = self.built.write() {
            *built = Arc::new((generation, value));
        }
        true
    }

    fn mark_listed(&self) {
        self.listed.fetch_add(1, Ordering::AcqRel);
    }
}

/// Connects to the cluster and starts one watch per kind, and the task that rebuilds the
/// inventory (at most every `every`). A kind the cluster does not serve is logged and skipped.
pub async fn start(
    cluster: &ClusterConfig,
    inventory: Arc<Inventory>,
    every: Duration,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let client = client(cluster).await?;
    let mut tasks = Vec::new();
    for kind in inventory.kinds.clone() {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        let resource = match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _)) => resource,
            Err(kube::Error::Discovery(_)) => {
                tracing::warn!(event = "sync_kind_not_served", kind = %kind);
                inventory.mark_listed();
                continue;
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(event = "sync_kind_not_served", kind = %kind);
                inventory.mark_listed();
                continue;
            }
            Err(e) => return Err(format!("--sync {kind}: cannot discover it: {e}")),
        };
        tasks.push(tokio::spawn(watch(
            client.clone(),
            resource,
            kind,
            inventory.clone(),
        )));
    }
    let rebuilding = inventory.clone();
    tasks.push(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            rebuilding.rebuild();
        }
    }));
    Ok(tasks)
}

/// A client for the cluster: the kubeconfig given, else KUBECONFIG, ~/.kube/config or the
/// in-cluster service account.
pub async fn client(cluster: &ClusterConfig) -> Result<kube::Client, String> {
    let options = kube::config::KubeConfigOptions {
        context: cluster.context.clone(),
        ..Default::default()
    };
    let config = match &cluster.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("--kubeconfig {}: {e}", path.display()))?
        }
        None if cluster.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("--context: {e}"))?,
        None => kube::Config::infer().await.map_err(|e| {
            format!("no cluster to connect to (--kubeconfig, KUBECONFIG, ~/.kube/config or in-cluster): {e}")
        })?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot create a cluster client: {e}"))
}

/// Lists and watches one kind for as long as the server runs; errors are logged and retried
/// with backoff, and a re-list replaces the kind's objects.
async fn watch(client: kube::Client, resource: ApiResource, kind: Kind, inventory: Arc<Inventory>) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer: Vec<Value> = Vec::new();
    let mut first_list = true;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => buffer.clear(),
            Ok(Event::InitApply(object)) => {
                if let Ok(value) = serde_json::to_value(&object) {
                    buffer.push(value);
                }
            }
            Ok(Event::InitDone) => {
                inventory.replace(&kind, std::mem::take(&mut buffer));
                if first_list {
                    first_list = false;
                    inventory.rebuild();
                    inventory.mark_listed();
                    tracing::info!(
                        event = "sync_listed",
                        kind = %kind,
                        objects = inventory.len() as u64,
                    );
                }
            }
            Ok(Event::Apply(object)) => {
                if let Ok(value) = serde_json::to_value(&object) {
                    inventory.apply(&kind, value);
                }
            }
            Ok(Event::Delete(object)) => {
                if let Ok(value) = serde_json::to_value(&object) {
                    inventory.delete(&kind, &value);
                }
            }
            Err(e) => tracing::warn!(event = "sync_watch_error", kind = %kind, error = %e),
        }
    }
}

/// The kinds the templates of a policy set require (`requires-sync-data`), for `--sync auto`:
/// every kind named, in order.
pub fn required_kinds<'a>(
    templates: impl IntoIterator<Item = &'a crate::policy::Template>,
) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = Vec::new();
    for template in templates {
        for requirement in &template.sync_requirements {
            for text in requirement {
                if let Ok(kind) = Kind::parse(text) {
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
            }
        }
    }
    kinds
}

/// The kinds `--sync` flags name (`auto`: those the used templates require); `None` without
/// any flag.
pub fn kinds(
    flags: &[String],
    sources: &super::state::Sources,
) -> Result<Option<Vec<Kind>>, SyncError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut kinds: Vec<Kind> = Vec::new();
    for flag in flags {
        let more = if flag == "auto" {
            required_kinds(&super::state::used_templates(sources).map_err(SyncError::Policies)?)
        } else {
            vec![Kind::parse(flag)?]
        };
        for kind in more {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(Some(kinds))
}

/// The templates' requirements no synced kind meets: (template kind, wanted kinds).
pub fn unmet<'a>(
    templates: impl IntoIterator<Item = &'a crate::policy::Template>,
    synced: &[Kind],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for template in templates {
        for requirement in &template.sync_requirements {
            let met = requirement
                .iter()
                .any(|k| Kind::parse(k).is_ok_and(|k| synced.contains(&k)));
            if !met {
                out.push((template.kind.clone(), requirement.join(" or ")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_with_and_without_group() {
        let k = Kind::parse("networking.k8s.io/v1/NetworkPolicy").unwrap();
        assert_eq!(
            (k.api_version(), k.kind.as_str(), k.to_string()),
            (
                "networking.k8s.io/v1".to_string(),
                "NetworkPolicy",
                "networking.k8s.io/v1/NetworkPolicy".to_string()
            )
        );
        assert_eq!(
            Kind::parse("v1/ServiceAccount").unwrap().api_version(),
            "v1"
        );
        assert_eq!(
            Kind::parse("NetworkPolicy"),
            Err(KindError::Shape("NetworkPolicy".into()))
        );
        assert_eq!(
            Kind::parse("v1/pods"),
            Err(KindError::Incomplete("v1/pods".into()))
        );
    }

    #[test]
    fn auto_syncs_what_the_production_bundle_requires() {
        let sources = crate::webhook::state::Sources {
            bundle: Some("production".into()),
            paths: Vec::new(),
            enable_cel: true,
            exempt_namespaces: Vec::new(),
            waivers: Vec::new(),
            verifier: None,
            inventory: None,
        };
        let mut auto: Vec<String> = kinds(&["auto".into(), "v1/ServiceAccount".into()], &sources)
            .unwrap()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        auto.sort();
        assert_eq!(
            auto,
            [
                "networking.k8s.io/v1/NetworkPolicy",
                "policy/v1/PodDisruptionBudget",
                "rbac.authorization.k8s.io/v1/ClusterRole",
                "rbac.authorization.k8s.io/v1/Role",
                "v1/ServiceAccount",
            ]
        );
        assert_eq!(kinds(&[], &sources).unwrap().map(|k| k.len()), None);
        assert!(kinds(&["pods".into()], &sources).is_err());
        // Without them synced, the bundle's referential templates are reported unmet.
        let templates = crate::webhook::state::used_templates(&sources).unwrap();
        let unmet = unmet(
            &templates,
            &[Kind::parse("networking.k8s.io/v1/NetworkPolicy").unwrap()],
        );
        let mut kinds_unmet: Vec<&str> = unmet.iter().map(|(k, _)| k.as_str()).collect();
        kinds_unmet.sort();
        kinds_unmet.dedup();
        assert!(
            !kinds_unmet.contains(&"K8sRequireNetworkPolicyCoverage"),
            "{unmet:?}"
        );
        assert!(
            kinds_unmet.contains(&"K8sRestrictSecretReaders"),
            "{unmet:?}"
        );
    }

    #[test]
    fn objects_are_kept_by_kind_namespace_and_name() {
        let inventory = Inventory::new(vec![
            Kind::parse("networking.k8s.io/v1/NetworkPolicy").unwrap()
        ]);
        let kind = inventory.kinds[0].clone();
        assert!(!inventory.synced());
        assert!(!inventory.rebuild());
        let policy =
            |ns: &str, name: &str| json!({"metadata": {"name": name, "namespace": ns}, "spec": {}});
        inventory.replace(&kind, vec![policy("shop", "a"), policy("shop", "b")]);
        inventory.apply(&kind, policy("web", "a"));
        assert!(inventory.rebuild());
        let (generation, value) = &*inventory.current();
        assert_eq!(*generation, 1);
        let json: Value = serde_json::from_str(&value.to_json_str().unwrap()).unwrap();
        let shop = &json["namespace"]["shop"]["networking.k8s.io/v1"]["NetworkPolicy"];
        assert_eq!(shop.as_object().unwrap().len(), 2);
        assert_eq!(shop["a"]["kind"], "NetworkPolicy");
        inventory.delete(&kind, &policy("shop", "a"));
        inventory.replace(&kind, vec![policy("web", "c")]);
        assert!(inventory.rebuild());
        let json: Value =
            serde_json::from_str(&inventory.current().1.to_json_str().unwrap()).unwrap();
        assert!(json["namespace"].get("shop").is_none(), "{json}");
        assert!(json["namespace"]["web"]["networking.k8s.io/v1"]["NetworkPolicy"]["c"].is_object());
        assert_eq!(inventory.len(), 1);
        inventory.mark_listed();
        assert!(inventory.synced());
    }
}
