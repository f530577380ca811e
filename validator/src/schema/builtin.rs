//! The built-in schemas: every resource type of the `k8s-openapi` crate for the pinned
//! Kubernetes version, generated through its `schemars` support.

use k8s_openapi::Resource;
use serde_json::Value;

/// The Kubernetes version the built-in schemas describe (the `k8s-openapi` feature enabled).
pub const KUBERNETES_VERSION: &str = "1.37";

/// One built-in resource: its apiVersion, kind, and how to generate its schema.
pub struct Builtin {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Objects of the kind live in a namespace.
    pub namespaced: bool,
    pub generate: fn() -> Value,
}

/// Whether a resource scope is a namespace.
trait Namespaced {
    const NAMESPACED: bool;
}
impl Namespaced for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}
impl Namespaced for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}
impl Namespaced for k8s_openapi::SubResourceScope {
    const NAMESPACED: bool = true;
}

fn generate<T: schemars::JsonSchema>() -> Value {
    schemars::SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The schema of ObjectMeta with its definitions, for custom resources' `metadata`.
pub fn object_meta() -> Value {
    generate::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>()
}

macro_rules! builtins {
    ($($($seg:ident)::+,)*) => {
        &[$({
            type T = k8s_openapi::$($seg)::+;
            Builtin {
                api_version: <T as Resource>::API_VERSION,
                kind: <T as Resource>::KIND,
                namespaced: <<T as Resource>::Scope as Namespaced>::NAMESPACED,
                generate: generate::<T>,
            }
        },)*]
    };
}

/// Every resource type the crate defines for the pinned version.
pub static BUILTINS: &[Builtin] = builtins![
    api::admissionregistration::v1::MutatingAdmissionPolicy,
    api::admissionregistration::v1::MutatingAdmissionPolicyBinding,
    api::admissionregistration::v1::MutatingWebhookConfiguration,
    api::admissionregistration::v1::ValidatingAdmissionPolicy,
    api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    api::admissionregistration::v1::ValidatingWebhookConfiguration,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
    api::admissionregistration::v1beta1::MutatingAdmissionPolicy,
    api::admissionregistration::v1beta1::MutatingAdmissionPolicyBinding,
    api::apiserverinternal::v1alpha1::StorageVersion,
    api::apps::v1::ControllerRevision,
    api::apps::v1::DaemonSet,
    api::apps::v1::Deployment,
    api::apps::v1::ReplicaSet,
    api::apps::v1::StatefulSet,
    api::authentication::v1::SelfSubjectReview,
    api::authentication::v1::TokenRequest,
    api::authentication::v1::TokenReview,
    api::authorization::v1::LocalSubjectAccessReview,
    api::authorization::v1::SelfSubjectAccessReview,
    api::authorization::v1::SelfSubjectRulesReview,
    api::authorization::v1::SubjectAccessReview,
    api::autoscaling::v1::HorizontalPodAutoscaler,
    api::autoscaling::v1::Scale,
    api::autoscaling::v2::HorizontalPodAutoscaler,
    api::batch::v1::CronJob,
    api::batch::v1::Job,
    api::certificates::v1::CertificateSigningRequest,
    api::certificates::v1::ClusterTrustBundle,
    api::certificates::v1::PodCertificateRequest,
    api::certificates::v1beta1::ClusterTrustBundle,
    api::certificates::v1beta1::PodCertificateRequest,
    api::coordination::v1::Lease,
    api::coordination::v1alpha2::LeaseCandidate,
    api::coordination::v1beta1::LeaseCandidate,
    api::core::v1::Binding,
    api::core::v1::ComponentStatus,
    api::core::v1::ConfigMap,
    api::core::v1::Endpoints,
    api::core::v1::Event,
    api::core::v1::LimitRange,
    api::core::v1::Namespace,
    api::core::v1::Node,
    api::core::v1::PersistentVolume,
    api::core::v1::PersistentVolumeClaim,
    api::core::v1::Pod,
    api::core::v1::PodTemplate,
    api::core::v1::ReplicationController,
    api::core::v1::ResourceQuota,
    api::core::v1::Secret,
    api::core::v1::Service,
    api::core::v1::ServiceAccount,
    api::discovery::v1::EndpointSlice,
    api::events::v1::Event,
    api::flowcontrol::v1::FlowSchema,
    api::flowcontrol::v1::PriorityLevelConfiguration,
    api::lifecycle::v1alpha1::Eviction,
    api::lifecycle::v1alpha1::EvictionRequest,
    api::networking::v1::Ingress,
    api::networking::v1::IngressClass,
    api::networking::v1::IPAddress,
    api::networking::v1::NetworkPolicy,
    api::networking::v1::ServiceCIDR,
    api::node::v1::RuntimeClass,
    api::policy::v1::Eviction,
    api::policy::v1::PodDisruptionBudget,
    api::rbac::v1::ClusterRole,
    api::rbac::v1::ClusterRoleBinding,
    api::rbac::v1::Role,
    api::rbac::v1::RoleBinding,
    api::resource::v1::DeviceClass,
    api::resource::v1::DeviceTaintRule,
    api::resource::v1::ResourceClaim,
    api::resource::v1::ResourceClaimTemplate,
    api::resource::v1::ResourceSlice,
    api::resource::v1alpha3::DeviceTaintRule,
    api::resource::v1alpha3::ResourcePoolStatusRequest,
    api::resource::v1beta1::DeviceClass,
    api::resource::v1beta1::ResourceClaim,
    api::resource::v1beta1::ResourceClaimTemplate,
    api::resource::v1beta1::ResourceSlice,
    api::resource::v1beta2::DeviceClass,
    api::resource::v1beta2::DeviceTaintRule,
    api::resource::v1beta2::ResourceClaim,
    api::resource::v1beta2::ResourceClaimTemplate,
    api::resource::v1beta2::ResourceSlice,
    api::scheduling::v1::PriorityClass,
    api::scheduling::v1alpha3::CompositePodGroup,
    api::scheduling::v1alpha3::PodGroup,
    api::scheduling::v1alpha3::Workload,
    api::scheduling::v1beta1::PodGroup,
    api::scheduling::v1beta1::Workload,
    api::storage::v1::CSIDriver,
    api::storage::v1::CSINode,
    api::storage::v1::CSIStorageCapacity,
    api::storage::v1::StorageClass,
    api::storage::v1::VolumeAttachment,
    api::storage::v1::VolumeAttributesClass,
    api::storagemigration::v1::StorageVersionMigration,
    api::storagemigration::v1beta1::StorageVersionMigration,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    kube_aggregator::pkg::apis::apiregistration::v1::APIService,
];

/// The built-in resource with this apiVersion and kind.
pub fn find(api_version: &str, kind: &str) -> Option<&'static Builtin> {
    BUILTINS
        .iter()
        .find(|b| b.api_version == api_version && b.kind == kind)
}

/// Whether a built-in kind is namespaced: by apiVersion and kind, else by the kind in the
/// same group at another version. `None` for kinds that are not built in.
pub fn namespaced(api_version: &str, kind: &str) -> Option<bool> {
    if let Some(b) = find(api_version, kind) {
        return Some(b.namespaced);
    }
    let group = |v: &str| v.rsplit_once('/').map_or("", |(g, _)| g).to_string();
    let wanted = group(api_version);
    BUILTINS
        .iter()
        .find(|b| b.kind == kind && group(b.api_version) == wanted)
        .map(|b| b.namespaced)
}
