//! The policy set a webhook serves: loaded, compiled and swapped atomically on reload.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};

use crate::check::compile_set;
use crate::engine::{CompileOptions, CompiledTemplate};
use crate::glob::glob_match;
use crate::manifest::{self, Loaded};
use crate::policy::{Constraint, Set};
use crate::review;

/// Where policies come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Embedded bundle name, or `None` for no embedded policies.
    pub bundle: Option<String>,
    pub paths: Vec<PathBuf>,
    pub enable_cel: bool,
    /// Namespaces (globs) never evaluated.
    pub exempt_namespaces: Vec<String>,
    /// Waiver files of policy exceptions.
    pub waivers: Vec<PathBuf>,
    /// Answers `external_data` (image signatures); `None` when no trust policy is configured,
    /// and then a constraint whose template calls `external_data` rejects the set.
    pub verifier: Option<Arc<crate::signature::Verifier>>,
    /// Cluster objects synced for `data.inventory`; `None` when nothing is synced (the
    /// inventory is then empty).
    pub inventory: Option<Arc<super::sync::Inventory>>,
}

/// A compiled, ready-to-serve policy set.
pub struct PolicyState {
    pub generation: u64,
    pub templates: BTreeMap<String, CompiledTemplate>,
    pub constraints: Vec<(Constraint, regorus::Value)>,
    pub set: Set,
    /// ValidatingAdmissionPolicies and their bindings, evaluated beside the constraints.
    pub vap: crate::vap::Set,
    /// The objects loaded beside the policies: Namespaces, and the params of bound policies.
    pub objects: Vec<crate::manifest::Document>,
    /// Labels of Namespace objects found beside the policies (for namespaceSelector and exemptions).
    pub namespace_labels: BTreeMap<String, Map<String, Value>>,
    pub exempt_namespaces: Vec<String>,
    pub waivers: Vec<crate::waiver::Waiver>,
    pub inventory: Option<Arc<super::sync::Inventory>>,
    /// Templates whose `requires-sync-data` no synced kind meets: (kind, wanted kinds).
    pub unmet_sync: Vec<(String, String)>,
    /// Engines not in use, one set per evaluation that ran at the same time as others.
    idle_engines: Mutex<Vec<Engines>>,
    /// Per template kind, the inventory indexes built for the latest inventory generation
    /// (or why they could not be): built by the first engine that needs them, loaded by the
    /// others.
    built_indexes: Mutex<HashMap<String, (u64, Indexes)>>,
}

/// A template's inventory indexes, or why they could not be built.
type Indexes = Result<regorus::Value, String>;

/// Evaluation engines by constraint kind, cloned from the compiled templates, and the
/// generation of the inventory they hold.
#[derive(Default)]
pub struct Engines {
    pub templates: HashMap<String, CompiledTemplate>,
    inventory: u64,
}

impl std::fmt::Debug for PolicyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyState")
            .field("generation", &self.generation)
            .field("constraints", &self.constraints.len())
            .finish()
    }
}

/// Namespaces carrying this label (with any value) are not evaluated, as in Gatekeeper.
pub const IGNORE_LABEL: &str = "admission.gatekeeper.sh/ignore";

impl PolicyState {
    /// Loads and compiles a policy set; any error rejects the whole set, and the error names
    /// every problem found (one per line), not only the first.
    pub fn load(sources: &Sources, generation: u64) -> Result<PolicyState, String> {
        let (policy_docs, other) = documents(sources)?;
        let mut problems: Vec<String> = Vec::new();
        let (set, errors) = Set::from_documents(&policy_docs);
        problems.extend(errors.iter().map(ToString::to_string));
        let (vap, errors) = crate::vap::Set::from_documents(&policy_docs);
        problems.extend(errors.iter().map(ToString::to_string));
        let mut options = CompileOptions {
            enable_cel: sources.enable_cel,
            ..CompileOptions::default()
        };
        if let Some(verifier) = &sources.verifier {
            options.external_data = verifier.handler();
        }
        let compiled = compile_set(&set, &review::inventory(std::iter::empty()), &options);
        problems.extend(
            compiled
                .findings
                .iter()
                .filter(|f| f.severity == crate::report::Severity::Error)
                .map(|f| format!("{}: {}", f.location(), f.message)),
        );
        let mut constraints = Vec::new();
        for c in &set.constraints {
            let Some(t) = compiled.templates.get(&c.kind) else {
                continue;
            };
            if t.uses_external_data && sources.verifier.is_none() {
                problems.push(format!(
                    "constraint {}/{} calls external_data (image signature verification) and signature verification is not configured; give a trust policy (--trust-policy FILE or --signature-key FILE), or leave the constraint out (e.g. --bundle restricted)",
                    c.kind, c.name
                ));
                continue;
            }
            constraints.push((c.clone(), crate::engine::to_rego(&c.parameters)));
        }
        let mut waivers = Vec::new();
        for path in &sources.waivers {
            let (w, errors) = crate::waiver::load(path);
            problems.extend(errors.iter().map(ToString::to_string));
            waivers.extend(w);
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let synced = sources
            .inventory
            .as_ref()
            .map(|i| i.kinds.clone())
            .unwrap_or_default();
        let unmet_sync = super::sync::unmet(
            set.templates
                .values()
                .filter(|t| set.constraints.iter().any(|c| c.kind == t.kind)),
            &synced,
        );
        let namespace_labels = review::namespace_labels(&other);
        let mut exempt_namespaces = sources.exempt_namespaces.clone();
        for (name, labels) in &namespace_labels {
            if labels.contains_key(IGNORE_LABEL) {
                exempt_namespaces.push(name.clone());
            }
        }
        Ok(PolicyState {
            generation,
            templates: compiled.templates,
            constraints,
            set,
            vap,
            objects: other,
            namespace_labels,
            exempt_namespaces,
            waivers,
            inventory: sources.inventory.clone(),
            unmet_sync,
            idle_engines: Mutex::new(Vec::new()),
            built_indexes: Mutex::new(HashMap::new()),
        })
    }

    /// A set of engines for one evaluation: an idle one, or a new (empty, filled on use) one.
    /// With a synced inventory, every engine holds its current generation.
    pub fn take_engines(&self) -> Engines {
        let mut engines: Engines = self
            .idle_engines
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default();
        if let Some(inventory) = &self.inventory {
            let current = inventory.current();
            if engines.inventory != current.0 || engines.templates.len() < self.templates.len() {
                for (kind, template) in &self.templates {
                    let engine = engines
                        .templates
                        .entry(kind.clone())
                        .or_insert_with(|| template.clone());
                    // A template whose indexes cannot be built from this inventory fails each
                    // evaluation with the reason (set_inventory keeps it).
                    let mut shared = self.indexes_built(kind, current.0);
                    let fresh = shared.is_none();
                    let _ = engine.set_inventory_sharing(&current.1, &mut shared);
                    if let (true, Some(built)) = (fresh, shared) {
                        self.keep_indexes(kind, current.0, built);
                    }
                }
                engines.inventory = current.0;
            }
        }
        engines
    }

    /// The indexes another engine built for this template from this inventory generation.
    fn indexes_built(&self, kind: &str, generation: u64) -> Option<Indexes> {
        let built = self.built_indexes.lock().ok()?;
        built
            .get(kind)
            .filter(|(g, _)| *g == generation)
            .map(|(_, indexes)| indexes.clone())
    }

    /// Keeps the indexes built from an inventory generation for the other engines, unless
    /// those of a later one are kept already.
    fn keep_indexes(&self, kind: &str, generation: u64, indexes: Indexes) {
        if let Ok(mut built) = self.built_indexes.lock() {
            if built.get(kind).is_none_or(|(g, _)| *g < generation) {
                built.insert(kind.to_string(), (generation, indexes));
            }
        }
    }

    /// Gives engines back for the next evaluation.
    pub fn return_engines(&self, engines: Engines) {
        if let Ok(mut idle) = self.idle_engines.lock() {
            idle.push(engines);
        }
    }

    pub fn is_exempt(&self, namespace: &str) -> bool {
        !namespace.is_empty()
            && self
                .exempt_namespaces
                .iter()
                .any(|p| glob_match(p, namespace))
    }
}

/// The documents of the sources: (policy documents, other objects); any load error fails.
fn documents(
    sources: &Sources,
) -> Result<(Vec<manifest::Document>, Vec<manifest::Document>), String> {
    let mut loaded = Loaded::default();
    if let Some(name) = &sources.bundle {
        loaded.extend(crate::bundle::load(name).ok_or_else(|| format!("unknown bundle `{name}`"))?);
    }
    loaded.extend(manifest::load_paths(&sources.paths));
    if let Some(e) = loaded.errors.first() {
        return Err(e.to_string());
    }
    Ok(loaded
        .documents
        .into_iter()
        .partition(crate::policy::is_policy_document))
}

/// The templates of the sources that some constraint uses (for `--sync auto`).
pub fn used_templates(sources: &Sources) -> Result<Vec<crate::policy::Template>, String> {
    let (policy_docs, _) = documents(sources)?;
    let (set, errors) = Set::from_documents(&policy_docs);
    if let Some(e) = errors.first() {
        return Err(e.to_string());
    }
    Ok(set
        .templates
        .into_values()
        .filter(|t| set.constraints.iter().any(|c| c.kind == t.kind))
        .collect())
}

/// The current policy set, replaced as a whole: a request sees one generation from start to end.
#[derive(Debug, Default)]
pub struct Current {
    state: RwLock<Option<Arc<PolicyState>>>,
}

impl Current {
    pub fn get(&self) -> Option<Arc<PolicyState>> {
        self.state.read().ok().and_then(|s| s.clone())
    }
    pub fn set(&self, state: PolicyState) {
        if let Ok(mut s) = self.state.write() {
            *s = Some(Arc::new(state));
        }
    }
    pub fn generation(&self) -> u64 {
        self.get().map_or(0, |s| s.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::sync::{Inventory, Kind};
    use serde_json::json;

    /// A ConfigMap's `team` label may be on no other ConfigMap: a scan of `data.inventory`
    /// that the engine turns into an index.
    const UNIQUE_TEAM: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8suniqueteam
spec:
  crd:
    spec:
      names:
        kind: K8sUniqueTeam
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8suniqueteam
        violation[{"msg": msg}] {
          mine := input.review.object.metadata.labels.team
          other := data.inventory.namespace[ns][_]["ConfigMap"][name]
          name != input.review.object.metadata.name
          other.metadata.labels.team == mine
          msg := sprintf("team %v already owns ConfigMap %v/%v", [mine, ns, name])
        }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sUniqueTeam
metadata:
  name: one-configmap-per-team
spec:
  match:
    kinds:
      - apiGroups: [""]
        kinds: ["ConfigMap"]
"#;

    fn configmap(name: &str, team: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "a", "labels": {"team": team}}})
    }

    #[test]
    fn engines_load_the_indexes_one_of_them_built_per_inventory_generation() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("policies.yaml"), UNIQUE_TEAM).expect("write");
        let kind = Kind::parse("v1/ConfigMap").expect("kind");
        let inventory = Arc::new(Inventory::new(vec![kind.clone()]));
        inventory.apply(&kind, configmap("owned", "red"));
        assert!(inventory.rebuild());
        let sources = Sources {
            bundle: None,
            paths: vec![dir.path().to_path_buf()],
            enable_cel: true,
            exempt_namespaces: Vec::new(),
            waivers: Vec::new(),
            verifier: None,
            inventory: Some(inventory.clone()),
        };
        let state = PolicyState::load(&sources, 1).expect("loads");
        let kept = |state: &PolicyState| {
            let built = state.built_indexes.lock().expect("lock");
            built.get("K8sUniqueTeam").map(|(generation, indexes)| {
                let built = indexes.as_ref().is_ok_and(|i| *i != regorus::Value::Null);
                (*generation, built)
            })
        };
        let request = json!({"uid": "u", "operation": "CREATE", "object": configmap("new", "red")});
        let denials = |engines: &mut Engines| {
            let review = crate::review::Review::from_admission_request(0, &request);
            let (constraint, params) = &state.constraints[0];
            let engine = engines.templates.get_mut("K8sUniqueTeam").expect("engine");
            engine
                .evaluate(&review.input, params, &constraint.name)
                .expect("evaluates")
                .len()
        };
        // Two evaluations at once: two engine sets, the second loading what the first built.
        let (mut first, mut second) = (state.take_engines(), state.take_engines());
        assert_eq!(kept(&state), Some((inventory.generation(), true)));
        assert_eq!((denials(&mut first), denials(&mut second)), (1, 1));
        state.return_engines(first);
        state.return_engines(second);
        // A new generation is built once again, and every engine set moves to it.
        inventory.apply(&kind, configmap("owned", "blue"));
        assert!(inventory.rebuild());
        let (mut first, mut second) = (state.take_engines(), state.take_engines());
        assert_eq!(kept(&state), Some((inventory.generation(), true)));
        assert_eq!((denials(&mut first), denials(&mut second)), (0, 0));
    }
}
