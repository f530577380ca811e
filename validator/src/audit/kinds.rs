//! Which resources an audit lists: those the constraints (and ValidatingAdmissionPolicies) can
//! match, those the referential templates read, and the Namespaces (for namespace selectors and
//! the ignore label), chosen among what discovery says the cluster serves.

use serde_json::Value;

use crate::manifest::Document;
use crate::policy::matching::KindMatch;
use crate::policy::Set;
use crate::webhook::sync::Kind;

/// A resource the cluster serves at its preferred version, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Served {
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Lower-case plural, as in URLs.
    pub plural: String,
    pub namespaced: bool,
}

impl Served {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }
}

impl std::fmt::Display for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind)
    }
}

/// What a policy set can look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wanted {
    /// `spec.match.kinds` of every constraint; a constraint without kinds matches every kind.
    pub kinds: Vec<KindMatch>,
    /// Kinds the referential templates read as `data.inventory` (`requires-sync-data`).
    pub inventory: Vec<Kind>,
    /// `resourceRules` of ValidatingAdmissionPolicies: (apiGroups, resources).
    pub resource_rules: Vec<(Vec<String>, Vec<String>)>,
    /// `paramKind`s of ValidatingAdmissionPolicies: (group, kind).
    pub params: Vec<(String, String)>,
    /// Templates that read `data.inventory` without saying which kinds
    /// (`requires-sync-data`): their inventory is every listed object.
    pub unannotated: Vec<String>,
}

impl Wanted {
    /// What the constraints, templates and ValidatingAdmissionPolicies among `policies` can
    /// look at.
    pub fn of(policies: &[Document]) -> Wanted {
        let (set, _) = Set::from_documents(policies.iter());
        let mut wanted = Wanted::default();
        for constraint in &set.constraints {
            if constraint.matcher.kinds.is_empty() {
                wanted.kinds.push(KindMatch::default());
            }
            wanted
                .kinds
                .extend(constraint.matcher.kinds.iter().cloned());
        }
        let used = set
            .templates
            .values()
            .filter(|t| set.constraints.iter().any(|c| c.kind == t.kind));
        let used: Vec<_> = used.collect();
        wanted.inventory = crate::webhook::sync::required_kinds(used.iter().copied());
        wanted.unannotated = used
            .iter()
            .filter(|t| t.sync_requirements.is_empty() && reads_inventory(t))
            .map(|t| t.name.clone())
            .collect();
        for doc in policies.iter().filter(|d| {
            d.kind() == "ValidatingAdmissionPolicy"
                && d.api_version().starts_with("admissionregistration.k8s.io/")
        }) {
            let rules = doc
                .object
                .pointer("/spec/matchConstraints/resourceRules")
                .and_then(Value::as_array);
            for rule in rules.into_iter().flatten() {
                let list = |field: &str| -> Vec<String> {
                    rule.get(field)
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default()
                };
                wanted
                    .resource_rules
                    .push((list("apiGroups"), list("resources")));
            }
            if let Some(kind) = doc
                .object
                .pointer("/spec/paramKind/kind")
                .and_then(Value::as_str)
            {
                let api_version = doc
                    .object
                    .pointer("/spec/paramKind/apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("v1");
                let (group, _) = crate::review::group_version(api_version);
                wanted.params.push((group.to_string(), kind.to_string()));
            }
        }
        wanted
    }

    /// Whether the objects of `served` must all be at hand before the others are evaluated:
    /// Namespaces (namespace selectors, the ignore label), the kinds the referential templates
    /// read, and ValidatingAdmissionPolicy params. Every other kind is evaluated page by page.
    pub fn holds(&self, served: &Served) -> bool {
        served.is_namespace()
            || !self.unannotated.is_empty()
            || self
                .inventory
                .iter()
                .any(|k| k.group == served.group && k.kind == served.kind)
            || self
                .params
                .iter()
                .any(|(g, k)| *g == served.group && *k == served.kind)
    }

    /// Whether the objects of `served` go into `data.inventory`.
    pub fn in_inventory(&self, served: &Served) -> bool {
        !self.unannotated.is_empty()
            || self
                .inventory
                .iter()
                .any(|k| k.group == served.group && k.kind == served.kind)
    }

    /// Adds what another policy set can look at.
    pub fn extend(&mut self, other: Wanted) {
        self.kinds.extend(other.kinds);
        for kind in other.inventory {
            if !self.inventory.contains(&kind) {
                self.inventory.push(kind);
            }
        }
        self.resource_rules.extend(other.resource_rules);
        self.params.extend(other.params);
        self.unannotated.extend(other.unannotated);
    }

    /// Whether a constraint or policy can match objects of `served`, or a template reads them.
    pub fn wants(&self, served: &Served) -> bool {
        let hit =
            |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == "*" || x == v);
        let matched = self
            .kinds
            .iter()
            .any(|k| hit(&k.api_groups, &served.group) && hit(&k.kinds, &served.kind));
        let read = self
            .inventory
            .iter()
            .any(|k| k.group == served.group && k.kind == served.kind);
        let ruled = self.resource_rules.iter().any(|(groups, resources)| {
            groups.iter().any(|g| g == "*" || g == &served.group)
                && resources
                    .iter()
                    .any(|r| r == "*" || r == "*/*" || r == &served.plural)
        });
        let params = self
            .params
            .iter()
            .any(|(g, k)| *g == served.group && *k == served.kind);
        matched || read || ruled || params
    }

    /// Kinds named explicitly (no `*`) that no served resource has: (apiGroups, kind).
    pub fn unserved(&self, served: &[Served]) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.kinds {
            for kind in k.kinds.iter().filter(|k| k.as_str() != "*") {
                let groups: Vec<&String> =
                    k.api_groups.iter().filter(|g| g.as_str() != "*").collect();
                if groups.len() < k.api_groups.len() || k.api_groups.is_empty() {
                    if !served.iter().any(|s| &s.kind == kind) {
                        push_unique(&mut out, kind.clone());
                    }
                    continue;
                }
                for group in groups {
                    if !served.iter().any(|s| &s.kind == kind && &s.group == group) {
                        let name = if group.is_empty() {
                            kind.clone()
                        } else {
                            format!("{kind}.{group}")
                        };
                        push_unique(&mut out, name);
                    }
                }
            }
        }
        for k in &self.inventory {
            if !served
                .iter()
                .any(|s| s.kind == k.kind && s.group == k.group)
            {
                push_unique(&mut out, k.to_string());
            }
        }
        out.sort();
        out
    }
}

/// Whether a template's Rego reads `data.inventory`.
fn reads_inventory(template: &crate::policy::Template) -> bool {
    template.rego.as_ref().is_some_and(|r| {
        std::iter::once(&r.rego)
            .chain(&r.libs)
            .any(|code| code.contains("data.inventory"))
    })
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The resources to list, in a stable order: the Namespaces first (always, for namespace
/// selectors and the ignore label), then every other wanted resource.
pub fn select(wanted: &Wanted, served: &[Served]) -> Vec<Served> {
    let mut out: Vec<Served> = served
        .iter()
        .filter(|s| s.is_namespace())
        .cloned()
        .collect();
    let mut rest: Vec<Served> = served
        .iter()
        .filter(|s| !s.is_namespace() && wanted.wants(s))
        .cloned()
        .collect();
    rest.sort();
    rest.dedup();
    out.truncate(1);
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Served {
        Served {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
        }
    }

    fn cluster() -> Vec<Served> {
        vec![
            served("", "v1", "Namespace", "namespaces", false),
            served("", "v1", "Pod", "pods", true),
            served("", "v1", "Service", "services", true),
            served("apps", "v1", "Deployment", "deployments", true),
            served(
                "networking.k8s.io",
                "v1",
                "NetworkPolicy",
                "networkpolicies",
                true,
            ),
            served(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "clusterroles",
                false,
            ),
        ]
    }

    fn docs(yaml: &str) -> Vec<Document> {
        let loaded = crate::manifest::load_bytes("policies.yaml", yaml.as_bytes(), false);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let (_, errors) = Set::from_documents(loaded.documents.iter());
        assert!(errors.is_empty(), "{errors:?}");
        loaded.documents
    }

    const TEMPLATE: &str = r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8sneedsnetpol
  annotations:
    metadata.gatekeeper.sh/requires-sync-data: |
      "[[{"groups": ["networking.k8s.io"], "versions": ["v1"], "kinds": ["NetworkPolicy"]}]]"
spec:
  crd:
    spec:
      names:
        kind: K8sNeedsNetpol
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package k8sneedsnetpol
        violation[{"msg": "x"}] { false }
"#;

    fn names(list: &[Served]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn constraints_kinds_and_inventory_choose_what_is_listed() {
        let policies = docs(&format!(
            "{TEMPLATE}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNeedsNetpol\nmetadata:\n  name: pods\nspec:\n  match:\n    kinds:\n    - apiGroups: [\"\"]\n      kinds: [Pod]\n    - apiGroups: [\"*\"]\n      kinds: [Deployment, CronJob]\n"
        ));
        let wanted = Wanted::of(&policies);
        assert_eq!(
            names(&select(&wanted, &cluster())),
            [
                "v1/Namespace",
                "v1/Pod",
                "apps/v1/Deployment",
                "networking.k8s.io/v1/NetworkPolicy"
            ]
        );
        assert_eq!(wanted.unserved(&cluster()), ["CronJob"]);
    }

    #[test]
    fn a_constraint_without_kinds_or_with_a_wildcard_lists_everything() {
        for kinds in [
            "",
            "\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"*\"]",
        ] {
            let policies = docs(&format!(
                "{TEMPLATE}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNeedsNetpol\nmetadata:\n  name: all\nspec:\n  match:{}\n",
                if kinds.is_empty() { " {}" } else { kinds }
            ));
            let listed = select(&Wanted::of(&policies), &cluster());
            assert_eq!(listed.len(), cluster().len(), "{kinds}: {listed:?}");
            assert!(listed[0].is_namespace());
        }
    }

    #[test]
    fn templates_without_constraints_and_no_policies_list_only_namespaces() {
        let wanted = Wanted::of(&docs(TEMPLATE));
        assert_eq!(names(&select(&wanted, &cluster())), ["v1/Namespace"]);
        assert!(wanted.unserved(&cluster()).is_empty());
    }

    #[test]
    fn namespaces_inventory_kinds_and_params_are_held_the_rest_streamed() {
        let policies = docs(&format!(
            "{TEMPLATE}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNeedsNetpol\nmetadata:\n  name: all\nspec:\n  match: {{}}\n---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: roles\nspec:\n  paramKind: {{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole}}\n  validations:\n  - expression: 'true'\n"
        ));
        let wanted = Wanted::of(&policies);
        let held: Vec<String> = cluster()
            .into_iter()
            .filter(|s| wanted.holds(s))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            held,
            [
                "v1/Namespace",
                "networking.k8s.io/v1/NetworkPolicy",
                "rbac.authorization.k8s.io/v1/ClusterRole"
            ]
        );
        let inventory: Vec<String> = cluster()
            .into_iter()
            .filter(|s| wanted.in_inventory(s))
            .map(|s| s.to_string())
            .collect();
        assert_eq!(inventory, ["networking.k8s.io/v1/NetworkPolicy"]);

        // A template that reads data.inventory without saying which kinds holds everything.
        let unannotated = TEMPLATE
            .replace("metadata.gatekeeper.sh/requires-sync-data", "unrelated")
            .replace("{ false }", "{ data.inventory.cluster[_] }");
        let wanted = Wanted::of(&docs(&format!(
            "{unannotated}---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sNeedsNetpol\nmetadata:\n  name: all\nspec:\n  match: {{}}\n"
        )));
        assert_eq!(wanted.unannotated, ["k8sneedsnetpol"]);
        assert!(cluster()
            .iter()
            .all(|s| wanted.holds(s) && wanted.in_inventory(s)));
    }

    #[test]
    fn validating_admission_policies_list_their_resource_rules() {
        let policies = docs(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata:\n  name: replicas\nspec:\n  matchConstraints:\n    resourceRules:\n    - apiGroups: [apps]\n      apiVersions: [v1]\n      operations: [CREATE, UPDATE]\n      resources: [deployments, deployments/scale]\n  validations:\n  - expression: object.spec.replicas < 5\n",
        );
        assert_eq!(
            names(&select(&Wanted::of(&policies), &cluster())),
            ["v1/Namespace", "apps/v1/Deployment"]
        );
    }
}
