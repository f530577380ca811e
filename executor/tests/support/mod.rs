//! Manifests for tests and benchmarks: an api Deployment and a db StatefulSet that pass the
//! production bundle, at a version (which picks the image), their blue-green variant, hook
//! Jobs, and a real Prometheus for metric gates.
#![allow(dead_code)]

pub mod env;
pub mod lane;
pub mod prometheus;

pub fn image(app: &str, version: u32) -> String {
    let hex = version.to_string().repeat(64);
    format!(
        "registry.example.com/shop/{app}:1.0.{version}@sha256:{}",
        &hex[..64]
    )
}

const POD_SECURITY: &str = r#"
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile:
          type: RuntimeDefault"#;

fn container(app: &str, version: u32) -> String {
    format!(
        r#"
      containers:
        - name: {app}
          image: {image}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 256Mi
          readinessProbe:
            httpGet:
              path: /ready
              port: 8080
          livenessProbe:
            httpGet:
              path: /healthz
              port: 8080"#,
        image = image(app, version)
    )
}

/// The api Deployment with its ServiceAccount, NetworkPolicy and PodDisruptionBudget
/// (compliant with the production bundle), at `version`.
pub fn api_manifests(version: u32, deployment_spec: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  namespace: shop
automountServiceAccountToken: false
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: shop
spec:
  podSelector: {{}}
  policyTypes: ["Ingress", "Egress"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: api
  namespace: shop
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: api
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  namespace: shop
spec:
  replicas: 2{deployment_spec}
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      serviceAccountName: api{POD_SECURITY}{containers}
"#,
        containers = container("api", version)
    )
}

pub fn statefulset_manifests(version: u32) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-default-deny
  namespace: shop
spec:
  podSelector: {{}}
  policyTypes: ["Ingress", "Egress"]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: db
  namespace: shop
automountServiceAccountToken: false
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: db
  namespace: shop
spec:
  minAvailable: 2
  selector:
    matchLabels:
      app: db
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: shop
spec:
  replicas: 3
  serviceName: db
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      serviceAccountName: db{POD_SECURITY}{containers}
"#,
        containers = container("db", version)
    )
}

pub fn daemonset_manifests(version: u32) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: agent-default-deny
  namespace: shop
spec:
  podSelector: {{}}
  policyTypes: ["Ingress", "Egress"]
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent
  namespace: shop
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: shop
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      serviceAccountName: agent{POD_SECURITY}{containers}
"#,
        containers = container("agent", version)
    )
}

/// A CRD and one of its custom resources, in one release.
pub const CRD_AND_INSTANCE: &str = r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: gear
  namespace: shop
spec:
  size: 3
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    kind: Widget
    plural: widgets
    singular: widget
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

/// The api as a blue-green pair: its ServiceAccount, NetworkPolicy and PodDisruptionBudget,
/// the Service `api` that selects `color`, and the Deployment `api-<color>` at `version`.
pub fn blue_green_manifests(version: u32, color: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: api
  namespace: shop
automountServiceAccountToken: false
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: shop
spec:
  podSelector: {{}}
  policyTypes: ["Ingress", "Egress"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: api
  namespace: shop
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: api
---
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
spec:
  type: ClusterIP
  selector:
    app: api
    color: {color}
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api-{color}
  namespace: shop
  labels:
    app: api
    color: {color}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
      color: {color}
  template:
    metadata:
      labels:
        app: api
        color: {color}
    spec:
      serviceAccountName: api{POD_SECURITY}{containers}
"#,
        containers = container("api", version)
    )
}

/// A hook Job (`executor.io/hook: <phase>`) running `image`.
pub fn hook_job(name: &str, phase: &str, image: &str) -> String {
    format!(
        r#"---
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  namespace: shop
  annotations:
    executor.io/hook: {phase}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      serviceAccountName: api{POD_SECURITY}
      containers:
        - name: {name}
          image: {image}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 256Mi
"#
    )
}

/// `args`, with `--no-signature-verification` added to the commands that go through the
/// validation gate (`apply`, `plan`, `restore`, `dr-drill`): the test images are
/// in no registry, and the production bundle's signed-image constraint needs a trust policy
/// (the gate refuses without one; `signatures_are_required_by_the_gate` tests that).
pub fn with_signature_opt_out<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut out = args.to_vec();
    let gated = ["apply", "plan", "restore", "dr-drill"];
    if args.first().is_some_and(|c| gated.contains(c)) && !args.contains(&"--help") {
        out.push("--no-signature-verification");
    }
    out
}
