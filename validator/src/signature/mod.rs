//! Image signature verification (cosign, with keys or keyless) exposed as a Gatekeeper external
//! data provider: the `external_data` builtin of `check`, `serve` and the executor, and
//! `serve --provider`.
//!
//! An image's tag resolves to a digest through its registry; the signature manifest
//! `sha256-<hex>.sig` holds simple-signing layers whose payload names that digest and whose
//! annotation carries an ECDSA signature of the payload, made with a trusted key or, keyless,
//! with the key of a certificate for a trusted identity (see [`keyless`]); cosign 3 stores
//! Sigstore bundles as referrers instead (see [`bundle`]). A verified result is cached by
//! repository and digest for a TTL, a bounded number of them; failures are never cached and
//! always deny.

pub mod bundle;
pub mod cosign;
pub mod keyless;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod timestamp;
pub mod transparency;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use thiserror::Error;

use base64::Engine as _;
use cosign::{signature_tag, Payload, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use keyless::{Rejection, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION};
use policy::{Rule, TrustPolicy};
use reference::Reference;
use registry::{Registry, RegistryError};

pub use policy::DEFAULT_PROVIDER;

/// Why an image did not verify. Each message starts with what happened.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Failure {
    #[error("invalid image reference: {0}")]
    InvalidReference(String),
    #[error("no trust policy rule matches this image (add a rule for it, or exempt it in the constraint)")]
    NoRule,
    #[error("image not found: {image} is not in the registry")]
    NotFound { image: String },
    #[error("unsigned: no cosign signature for {digest} (no {tag} and no Sigstore bundle referring to it in {repository})")]
    Unsigned {
        digest: String,
        tag: String,
        repository: String,
    },
    #[error("unsigned: no cosign signature for {digest}; what refers to it in {repository} are attestations ({predicates}), not signatures")]
    AttestationsOnly {
        digest: String,
        repository: String,
        predicates: String,
    },
    #[error("no valid signature: {signatures} signature(s) for {digest}, none verifies with {keys} (made with another key, or the signed payload was changed)")]
    NoValidSignature {
        digest: String,
        signatures: usize,
        keys: String,
    },
    #[error("{0}")]
    Keyless(#[from] Rejection),
    #[error(
        "signature for another image: the payload signed by {key} names {signed}, not {digest}"
    )]
    DigestMismatch {
        digest: String,
        signed: String,
        key: String,
    },
    #[error("annotations do not match: the signature by {key} lacks {missing}")]
    Annotations { key: String, missing: String },
    #[error("invalid signature: {0}")]
    Malformed(String),
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// A verified image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub digest: String,
    /// The key whose signature verified, or the keyless signer (subject and issuer).
    pub key: String,
}

/// How a verifier is set up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: TrustPolicy,
    pub registry: registry::Settings,
    /// How long a verified result is reused.
    pub cache_ttl: Duration,
    /// Images verified at once.
    pub concurrency: usize,
}

/// Referrers of an image looked at, at most (each costs a manifest and a blob request).
const MAX_REFERRERS: usize = 16;

/// A verified result's key: repository (`registry/path`), digest, trust policy rule index.
type CacheKey = (String, String, usize);

/// Verified results kept at most, by default.
const CACHE_CAPACITY: usize = 10_000;

/// Results by key, each reused for `ttl`, at most `capacity` of them: when it is full, expired
/// results go first, then the oldest.
struct Cache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Cache<K, V> {
        Cache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let (at, value) = entries.get(key)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| value.clone())
    }

    fn insert(&self, key: K, value: V, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (now, value));
    }

    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// Verifies images against a trust policy; shared by every thread (cache included).
pub struct Verifier {
    policy: TrustPolicy,
    registry: Registry,
    concurrency: usize,
    cache: Cache<CacheKey, Verified>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("provider", &self.policy.provider)
            .field("rules", &self.policy.rules.len())
            .field("registry", &self.registry)
            .finish()
    }
}

impl Verifier {
    pub fn new(settings: Settings) -> Result<Verifier, String> {
        Ok(Verifier {
            policy: settings.policy,
            registry: Registry::new(settings.registry)?,
            concurrency: settings.concurrency.max(1),
            cache: Cache::new(settings.cache_ttl, CACHE_CAPACITY),
        })
    }

    /// The external data provider name this verifier answers for.
    pub fn provider(&self) -> &str {
        &self.policy.provider
    }

    /// HTTP requests sent to registries so far.
    pub fn registry_requests(&self) -> u64 {
        self.registry.requests()
    }

    /// Verifies one image as its trust policy rule says.
    pub fn verify(&self, image: &str) -> Result<Verified, Failure> {
        let reference = Reference::parse(image).map_err(Failure::InvalidReference)?;
        let (rule_index, rule) = self
            .policy
            .rule_for(image, &reference.to_string())
            .ok_or(Failure::NoRule)?;
        let digest = self
            .registry
            .resolve(&reference)?
            .ok_or_else(|| Failure::NotFound {
                image: reference.to_string(),
            })?;
        let key = (reference.repository_name(), digest.clone(), rule_index);
        if let Some(hit) = self.cache.get(&key, Instant::now()) {
            return Ok(hit);
        }
        let verified = self.verify_digest(&reference, &digest, rule)?;
        self.cache.insert(key, verified.clone(), Instant::now());
        Ok(verified)
    }

    /// Verified results held in the cache.
    pub fn cached_results(&self) -> usize {
        self.cache.len()
    }

    fn verify_digest(
        &self,
        reference: &Reference,
        digest: &str,
        rule: &Rule,
    ) -> Result<Verified, Failure> {
        // The most telling failure among the signatures, if none passes.
        let mut failure: Option<Failure> = None;
        let mut signatures = 0;
        let mut attestations = BTreeSet::new();
        if let Some(verified) =
            self.verify_layers(reference, digest, rule, &mut failure, &mut signatures)?
        {
            return Ok(verified);
        }
        if let Some(verified) = self.verify_bundles(
            reference,
            digest,
            rule,
            &mut failure,
            &mut signatures,
            &mut attestations,
        )? {
            return Ok(verified);
        }
        if signatures == 0 && !attestations.is_empty() {
            return Err(Failure::AttestationsOnly {
                digest: digest.to_string(),
                repository: reference.repository_name(),
                predicates: attestations.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        if signatures == 0 {
            return Err(Failure::Unsigned {
                digest: digest.to_string(),
                tag: signature_tag(digest),
                repository: reference.repository_name(),
            });
        }
        Err(failure.unwrap_or_else(|| Failure::NoValidSignature {
            digest: digest.to_string(),
            signatures,
            keys: rule.signers(),
        }))
    }

    /// Who made `signature` over `message`: one of the rule's keys, or, when the signature has
    /// a certificate (`keyless`), its identity if the rule trusts it. `None`: neither
    /// (`failure` may say why).
    fn signer(
        &self,
        rule: &Rule,
        signed: keyless::Signed,
        keyless: bool,
        failure: &mut Option<Failure>,
    ) -> Option<String> {
        let by_key = p256::ecdsa::Signature::from_der(signed.signature)
            .ok()
            .and_then(|s| rule.keys.iter().find(|k| k.verifies(signed.message, &s)));
        if let Some(key) = by_key {
            return Some(key.name.clone());
        }
        let root = self.policy.trusted_root.as_ref()?;
        if !keyless || rule.identities.is_empty() {
            return None;
        }
        match root.verify(&rule.identities, &signed) {
            Ok(signer) => Some(signer.to_string()),
            Err(e) => {
                *failure = Some(e.into());
                None
            }
        }
    }

    /// The claims of a trusted signature: it names `digest` and carries the rule's annotations.
    fn claims(
        digest: &str,
        signer: String,
        signed_digests: &[String],
        missing: Vec<String>,
    ) -> Result<Verified, Failure> {
        if !signed_digests.iter().any(|d| d == digest) {
            return Err(Failure::DigestMismatch {
                digest: digest.to_string(),
                signed: signed_digests.join(", "),
                key: signer,
            });
        }
        if !missing.is_empty() {
            return Err(Failure::Annotations {
                key: signer,
                missing: missing.join(", "),
            });
        }
        Ok(Verified {
            digest: digest.to_string(),
            key: signer,
        })
    }

    /// cosign's signature tag `sha256-<hex>.sig`: simple-signing layers.
    fn verify_layers(
        &self,
        reference: &Reference,
        digest: &str,
        rule: &Rule,
        failure: &mut Option<Failure>,
        signatures: &mut usize,
    ) -> Result<Option<Verified>, Failure> {
        let tag = signature_tag(digest);
        let Some(manifest) = self.registry.manifest(reference, &tag)? else {
            return Ok(None);
        };
        let manifest: Value = serde_json::from_slice(&manifest.body).map_err(|e| {
            Failure::Malformed(format!("signature manifest {tag} is not JSON: {e}"))
        })?;
        let layers: Vec<Layer> = manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(|layers| layers.iter().filter_map(Layer::of).collect())
            .unwrap_or_default();
        *signatures += layers.len();
        for layer in &layers {
            let Ok(signature) =
                base64::engine::general_purpose::STANDARD.decode(layer.signature.trim())
            else {
                continue;
            };
            let payload = self.registry.blob(reference, layer.blob)?;
            let entries = match layer.bundle.map(keyless::LogEntry::from_cosign_bundle) {
                Some(Ok(entry)) => vec![entry],
                Some(Err(e)) => {
                    *failure = Some(e.into());
                    continue;
                }
                None => Vec::new(),
            };
            let signed = keyless::Signed {
                message: &payload,
                payload: &payload,
                signature: &signature,
                certificate: keyless::Certificate::Pem(layer.certificate.unwrap_or("")),
                entries,
                timestamps: Vec::new(),
            };
            let Some(signer) = self.signer(rule, signed, layer.certificate.is_some(), failure)
            else {
                continue;
            };
            let payload = match Payload::parse(&payload) {
                Ok(p) => p,
                Err(e) => {
                    *failure = Some(Failure::Malformed(format!("{e} (signed by {signer})")));
                    continue;
                }
            };
            let missing = payload.missing_annotations(&rule.annotations);
            let signed_digest = [payload.critical.image.docker_manifest_digest];
            match Self::claims(digest, signer, &signed_digest, missing) {
                Ok(verified) => return Ok(Some(verified)),
                Err(e) => *failure = Some(e),
            }
        }
        Ok(None)
    }

    /// Sigstore bundles referring to the image (cosign 3): DSSE envelopes over in-toto
    /// statements of predicate type `https://sigstore.dev/cosign/sign/v1`.
    fn verify_bundles(
        &self,
        reference: &Reference,
        digest: &str,
        rule: &Rule,
        failure: &mut Option<Failure>,
        signatures: &mut usize,
        attestations: &mut BTreeSet<String>,
    ) -> Result<Option<Verified>, Failure> {
        let descriptors = self.registry.referrers(reference, digest)?;
        let text = |v: &Value, path: &[&str]| -> String {
            path.iter()
                .try_fold(v, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        for descriptor in descriptors.iter().take(MAX_REFERRERS) {
            let artifact_type = text(descriptor, &["artifactType"]);
            let predicate = text(descriptor, &["annotations", bundle::PREDICATE_ANNOTATION]);
            let maybe_bundle = artifact_type.starts_with(bundle::MEDIA_TYPE_PREFIX)
                || artifact_type.is_empty()
                || artifact_type == "application/vnd.oci.empty.v1+json";
            if !maybe_bundle {
                continue;
            }
            if !predicate.is_empty() && predicate != bundle::SIGN_PREDICATE {
                attestations.insert(predicate);
                continue;
            }
            let manifest_digest = text(descriptor, &["digest"]);
            let Some(manifest) = self.registry.manifest(reference, &manifest_digest)? else {
                continue;
            };
            let manifest: Value = serde_json::from_slice(&manifest.body).map_err(|e| {
                Failure::Malformed(format!("referrer {manifest_digest} is not JSON: {e}"))
            })?;
            let layer = &manifest["layers"][0];
            if !text(layer, &["mediaType"]).starts_with(bundle::MEDIA_TYPE_PREFIX) {
                continue;
            }
            let predicate = text(&manifest, &["annotations", bundle::PREDICATE_ANNOTATION]);
            if !predicate.is_empty() && predicate != bundle::SIGN_PREDICATE {
                attestations.insert(predicate);
                continue;
            }
            let blob = self.registry.blob(reference, &text(layer, &["digest"]))?;
            let parsed = match bundle::Bundle::parse(&blob) {
                Ok(b) => b,
                Err(e) => {
                    *failure = Some(Failure::Malformed(format!(
                        "Sigstore bundle {manifest_digest}: {e}"
                    )));
                    continue;
                }
            };
            let statement = match bundle::Statement::parse(&parsed.payload) {
                Ok(s) if s.predicate_type == bundle::SIGN_PREDICATE => s,
                Ok(s) => {
                    // An attestation, not a signature.
                    attestations.insert(s.predicate_type);
                    continue;
                }
                Err(e) => {
                    *failure = Some(Failure::Malformed(format!(
                        "Sigstore bundle {manifest_digest}: {e}"
                    )));
                    continue;
                }
            };
            *signatures += 1;
            // Entries that cannot be read are left out; when none can, that is the failure.
            let unreadable = parsed
                .entries
                .iter()
                .find_map(|e| e.as_ref().err())
                .cloned();
            let entries: Vec<keyless::LogEntry> = parsed
                .entries
                .iter()
                .filter_map(|e| e.as_ref().ok())
                .cloned()
                .collect();
            if let (true, Some(e)) = (entries.is_empty(), unreadable) {
                *failure = Some(Rejection::Log(e).into());
                continue;
            }
            let pae = parsed.pae();
            let certificate = parsed.certificate.as_deref();
            let signed = keyless::Signed {
                message: &pae,
                payload: &parsed.payload,
                signature: &parsed.signature,
                certificate: keyless::Certificate::Der(certificate.unwrap_or(&[])),
                entries,
                timestamps: parsed.timestamps.clone(),
            };
            let Some(signer) = self.signer(rule, signed, certificate.is_some(), failure) else {
                continue;
            };
            let missing = statement.missing_annotations(&rule.annotations);
            match Self::claims(digest, signer, &statement.digests, missing) {
                Ok(verified) => return Ok(Some(verified)),
                Err(e) => *failure = Some(e),
            }
        }
        Ok(None)
    }

    /// Verifies many images at once (each distinct image once), in the order given.
    pub fn verify_many(&self, images: &[String]) -> Vec<(String, Result<Verified, Failure>)> {
        let mut distinct: Vec<&String> = Vec::new();
        for image in images {
            if !distinct.contains(&image) {
                distinct.push(image);
            }
        }
        let results: Mutex<BTreeMap<usize, Result<Verified, Failure>>> =
            Mutex::new(BTreeMap::new());
        let next = AtomicUsize::new(0);
        let workers = self.concurrency.min(distinct.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(image) = distinct.get(i) else {
                        break;
                    };
                    let result = self.verify(image);
                    if let Ok(mut r) = results.lock() {
                        r.insert(i, result);
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_default();
        distinct
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let result = results.remove(&i).unwrap_or_else(|| {
                    Err(Failure::Malformed("verification did not finish".into()))
                });
                ((*image).clone(), result)
            })
            .collect()
    }

    /// The answer to a Gatekeeper ProviderRequest for `keys`: a ProviderResponse.
    pub fn provider_response(&self, keys: &[String]) -> Value {
        let items: Vec<Value> = self
            .verify_many(keys)
            .into_iter()
            .map(|(key, result)| match result {
                Ok(v) => json!({"key": key, "value": verified_value(&v)}),
                Err(e) => json!({"key": key, "error": e.to_string()}),
            })
            .collect();
        provider_response(items, "")
    }

    /// What Gatekeeper's `external_data` builtin returns to Rego for a call naming `provider`.
    pub fn external_data(&self, provider: &str, keys: &[String]) -> Value {
        if provider != self.policy.provider {
            return json!({
                "responses": [], "errors": [], "status_code": 500,
                "system_error": format!("external data provider `{provider}` is not configured (the signature verifier answers for `{}`)", self.policy.provider),
            });
        }
        let mut responses = Vec::new();
        let mut errors = Vec::new();
        for (key, result) in self.verify_many(keys) {
            match result {
                Ok(v) => responses.push(json!([key, verified_value(&v)])),
                Err(e) => errors.push(json!([key, e.to_string()])),
            }
        }
        json!({"responses": responses, "errors": errors, "status_code": 200, "system_error": ""})
    }

    /// This verifier as the engine's `external_data` handler.
    pub fn handler(self: &Arc<Self>) -> Arc<crate::engine::ExternalDataFn> {
        let verifier = self.clone();
        Arc::new(move |provider: &str, keys: &[String]| verifier.external_data(provider, keys))
    }
}

/// A signature layer of a signature manifest: its payload blob and annotations.
struct Layer<'a> {
    blob: &'a str,
    signature: &'a str,
    certificate: Option<&'a str>,
    bundle: Option<&'a str>,
}

impl<'a> Layer<'a> {
    fn of(layer: &'a Value) -> Option<Layer<'a>> {
        if layer.get("mediaType").and_then(Value::as_str) != Some(SIMPLE_SIGNING_MEDIA_TYPE) {
            return None;
        }
        let annotation = |name: &str| layer.get("annotations")?.get(name)?.as_str();
        Some(Layer {
            blob: layer.get("digest").and_then(Value::as_str)?,
            signature: annotation(SIGNATURE_ANNOTATION)?,
            certificate: annotation(CERTIFICATE_ANNOTATION),
            bundle: annotation(BUNDLE_ANNOTATION),
        })
    }
}

fn verified_value(v: &Verified) -> Value {
    json!({"verified": true, "digest": v.digest, "key": v.key})
}

/// A Gatekeeper ProviderResponse (`externaldata.gatekeeper.sh/v1beta1`).
pub fn provider_response(items: Vec<Value>, system_error: &str) -> Value {
    json!({
        "apiVersion": "externaldata.gatekeeper.sh/v1beta1",
        "kind": "ProviderResponse",
        "response": {"idempotent": true, "items": items, "systemError": system_error},
    })
}

/// Reads a ProviderRequest body to its keys; the error says what is wrong with it.
pub fn parse_provider_request(body: &[u8]) -> Result<Vec<String>, String> {
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    if request.get("kind").and_then(Value::as_str) != Some("ProviderRequest") {
        return Err("kind must be ProviderRequest".into());
    }
    let keys = request
        .get("request")
        .and_then(|r| r.get("keys"))
        .and_then(Value::as_array)
        .ok_or("request.keys is missing")?;
    keys.iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("request.keys: {k} is not a string"))
        })
        .collect()
}

/// Signature verification flags, shared by `check`, `serve` and the executor.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Image trust policy file (kind ImageTrustPolicy): which keys or keyless identities must
    /// have signed which images.
    #[arg(long, value_name = "FILE")]
    pub trust_policy: Option<PathBuf>,
    /// cosign public key (PEM, or a Kubernetes Secret manifest holding PEM keys) that must have
    /// signed every image no trust policy rule names (repeatable; any one key suffices).
    #[arg(long = "signature-key", value_name = "FILE")]
    pub signature_keys: Vec<PathBuf>,
    /// Annotation the signature payload must carry with --signature-key or the keyless flags,
    /// as `cosign verify -a` (`key=value`, repeatable).
    #[arg(long = "signature-annotation", value_name = "KEY=VALUE")]
    pub signature_annotations: Vec<String>,
    /// Sigstore trusted root (`trusted_root.json`: certificate authorities, transparency and CT
    /// logs, timestamp authorities) that keyless signatures are checked against, offline.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: accept certificates without checking their signed certificate timestamps, as
    /// cosign's flag of that name; a trusted root that lists no CT logs is refused without it.
    #[arg(long)]
    pub insecure_ignore_sct: bool,
    /// Keyless: the certificate subject (email or URI) every image no trust policy rule names must
    /// be signed by, as `cosign verify --certificate-identity`.
    #[arg(long, value_name = "SUBJECT")]
    pub certificate_identity: Option<String>,
    /// Keyless: the certificate subject as a regular expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer of the signer's certificate.
    #[arg(long, value_name = "URL")]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: the OIDC issuer as a regular expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Registry (`host` or `host:port`) reached over plain HTTP instead of HTTPS (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Docker config file with registry credentials (default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json when present).
    #[arg(long, value_name = "FILE")]
    pub registry_config: Option<PathBuf>,
    /// Deadline of each registry request.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub registry_timeout: String,
    /// How long a verified image (by digest) is trusted without asking the registry again.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub signature_cache_ttl: String,
}

impl Default for Args {
    /// No trust policy, and the flags' defaults.
    fn default() -> Self {
        Args {
            trust_policy: None,
            signature_keys: Vec::new(),
            signature_annotations: Vec::new(),
            trusted_root: None,
            insecure_ignore_sct: false,
            certificate_identity: None,
            certificate_identity_regexp: None,
            certificate_oidc_issuer: None,
            certificate_oidc_issuer_regexp: None,
            insecure_registries: Vec::new(),
            registry_config: None,
            registry_timeout: "5s".into(),
            signature_cache_ttl: "5m".into(),
        }
    }
}

impl Args {
    /// Whether any trust policy is given.
    pub fn configured(&self) -> bool {
        self.trust_policy.is_some() || !self.signature_keys.is_empty() || self.identity_flags()
    }

    fn identity_flags(&self) -> bool {
        self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some()
    }

    /// The verifier these flags describe; `None` when no trust policy is given.
    pub fn verifier(&self) -> Result<Option<Arc<Verifier>>, String> {
        if !self.configured() {
            if !self.signature_annotations.is_empty() {
                return Err(
                    "--signature-annotation needs --signature-key or --certificate-identity".into(),
                );
            }
            return Ok(None);
        }
        let mut policy = match &self.trust_policy {
            Some(path) => TrustPolicy::load(path)?,
            None => TrustPolicy {
                provider: DEFAULT_PROVIDER.to_string(),
                rules: Vec::new(),
                trusted_root: None,
                insecure_ignore_sct: false,
            },
        };
        if let Some(path) = &self.trusted_root {
            policy.trusted_root = Some(Arc::new(keyless::TrustedRoot::load(path)?));
        }
        let ignore_sct = self.insecure_ignore_sct || policy.insecure_ignore_sct;
        if let Some(root) = policy.trusted_root.as_mut() {
            let root = Arc::make_mut(root);
            root.set_ignore_sct(ignore_sct);
            if !root.has_ct_logs() && !ignore_sct {
                return Err(format!(
                    "{}: the trusted root lists no CT logs (`ctlogs`), so keyless certificates' signed certificate timestamps cannot be checked; add the CT logs, or accept certificates without that check with --insecure-ignore-sct (insecureIgnoreSct: true in the trust policy)",
                    root.name
                ));
            }
        }
        let mut keys = Vec::new();
        for path in &self.signature_keys {
            let loaded = cosign::load_keys(path)?;
            if loaded.is_empty() {
                return Err(format!("{}: holds no public key", path.display()));
            }
            keys.extend(loaded);
        }
        let mut identities = Vec::new();
        if self.identity_flags() {
            if policy.trusted_root.is_none() {
                return Err("--certificate-identity and --certificate-oidc-issuer need --trusted-root (the Sigstore trusted_root.json, e.g. from `cosign trusted-root create` or the public-good TUF repository)".into());
            }
            identities.push(
                keyless::Identity::new(
                    self.certificate_oidc_issuer.as_deref(),
                    self.certificate_oidc_issuer_regexp.as_deref(),
                    self.certificate_identity.as_deref(),
                    self.certificate_identity_regexp.as_deref(),
                )
                .map_err(|e| format!("--certificate-identity/--certificate-oidc-issuer: {e}"))?,
            );
        }
        if !keys.is_empty() || !identities.is_empty() {
            let origin = if keys.is_empty() {
                "--certificate-identity"
            } else {
                "--signature-key"
            };
            policy.rules.push(Rule {
                origin: origin.into(),
                images: vec!["*".into()],
                keys,
                identities,
                annotations: policy::parse_annotations(&self.signature_annotations)?,
            });
        } else if !self.signature_annotations.is_empty() {
            return Err("--signature-annotation applies to --signature-key and --certificate-identity; put annotations of trust policy rules in the file".into());
        }
        let duration =
            |flag: &str, v: &str| crate::duration::parse(v).map_err(|e| format!("{flag}: {e}"));
        let credentials = match self
            .registry_config
            .clone()
            .or_else(registry::Credentials::default_path)
        {
            Some(path) => registry::Credentials::load(&path)?,
            None => registry::Credentials::default(),
        };
        let verifier = Verifier::new(Settings {
            policy,
            registry: registry::Settings {
                insecure: self.insecure_registries.clone(),
                credentials,
                timeout: duration("--registry-timeout", &self.registry_timeout)?,
            },
            cache_ttl: duration("--signature-cache-ttl", &self.signature_cache_ttl)?,
            concurrency: 16,
        })?;
        Ok(Some(Arc::new(verifier)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_drops_expired_then_oldest_results() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let cache: Cache<u32, &str> = Cache::new(Duration::from_secs(10), 3);
        cache.insert(1, "a", at(0));
        cache.insert(2, "b", at(1));
        cache.insert(3, "c", at(2));
        assert_eq!(cache.len(), 3);
        // Full: the oldest goes.
        cache.insert(4, "d", at(3));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get(&1, at(3)), None);
        assert_eq!(cache.get(&2, at(3)), Some("b"));
        // Replacing a key does not evict another.
        cache.insert(2, "b2", at(4));
        assert_eq!((cache.len(), cache.get(&3, at(4))), (3, Some("c")));
        // Full again with 3 expired at 12: the expired ones go first, the newer stay.
        cache.insert(5, "e", at(12));
        assert_eq!(cache.get(&3, at(12)), None);
        assert_eq!(cache.get(&4, at(12)), Some("d"));
        assert_eq!(cache.get(&5, at(12)), Some("e"));
        // Results expire.
        assert_eq!(cache.get(&5, at(22)), None);
        // A zero TTL or capacity caches nothing.
        let none: Cache<u32, &str> = Cache::new(Duration::ZERO, 3);
        none.insert(1, "a", at(0));
        assert_eq!(none.len(), 0);
        let none: Cache<u32, &str> = Cache::new(Duration::from_secs(1), 0);
        none.insert(1, "a", at(0));
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn failure_messages_say_what_happened() {
        let e = Failure::NoValidSignature {
            digest: "sha256:ab".into(),
            signatures: 1,
            keys: "the trusted key(s) cosign.pub".into(),
        };
        assert!(!e.to_string().starts_with("wrong key"), "{e}");
        assert!(e.to_string().contains("payload was changed"), "{e}");
        let e = Failure::AttestationsOnly {
            digest: "sha256:ab".into(),
            repository: "r/a".into(),
            predicates: "https://slsa.dev/provenance/v1".into(),
        };
        assert!(e.to_string().starts_with("unsigned: "), "{e}");
        assert!(!e.to_string().contains("no Sigstore bundle"), "{e}");
    }
}
