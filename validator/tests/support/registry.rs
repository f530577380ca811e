//! A real OCI registry (Debian's `docker-registry`) on 127.0.0.1 for tests and benchmarks, and
//! helpers that push small images and cosign-format signatures to it over the distribution API.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use serde_json::{json, Value};
use sha2::Digest;

pub const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";

/// A signature layer to push: its payload and its annotations.
pub type SignatureLayer<'a> = (Vec<u8>, Vec<(&'a str, String)>);

/// A registry process with its own configuration and storage, stopped on drop.
pub struct TestRegistry {
    child: Option<Child>,
    /// `127.0.0.1:<port>`
    pub host: String,
    /// Configuration and storage, removed on drop.
    _dir: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl TestRegistry {
    /// Starts `docker-registry serve` on a free port of 127.0.0.1, storage in a temporary folder.
    pub fn start() -> TestRegistry {
        assert!(
            std::path::Path::new(REGISTRY_BINARY).exists(),
            "{REGISTRY_BINARY} is missing: these tests need a real OCI registry; install Debian's \
             docker-registry package (scripts/test.sh does: apt-get install -y docker-registry)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write registry config");
        let child = Command::new(REGISTRY_BINARY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        // The workspace's reqwest brings no crypto provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let registry = TestRegistry {
            child: Some(child),
            host,
            _dir: dir,
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = registry
                .http
                .get(format!("http://{}/v2/", registry.host))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {} within 15s",
                registry.host
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    /// The registry's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the registry (it stops answering; its port is closed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the registry: frozen, it accepts connections
    /// (the kernel does) but never answers.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn upload_blob(&self, repository: &str, bytes: &[u8]) -> (String, usize) {
        let digest = digest_of(bytes);
        let start = self
            .http
            .post(format!(
                "http://{}/v2/{repository}/blobs/uploads/",
                self.host
            ))
            .send()
            .expect("start upload");
        assert_eq!(start.status().as_u16(), 202, "start upload: {start:?}");
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload location")
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.host)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .http
            .put(format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("finish upload");
        assert_eq!(put.status().as_u16(), 201, "finish upload: {put:?}");
        (digest, bytes.len())
    }

    fn put_manifest(&self, repository: &str, reference: &str, manifest: &Value) -> String {
        let body = serde_json::to_vec(manifest).expect("manifest json");
        let response = self
            .http
            .put(format!(
                "http://{}/v2/{repository}/manifests/{reference}",
                self.host
            ))
            .header(
                "content-type",
                manifest["mediaType"]
                    .as_str()
                    .unwrap_or("application/vnd.oci.image.manifest.v1+json"),
            )
            .body(body.clone())
            .send()
            .expect("put manifest");
        assert_eq!(
            response.status().as_u16(),
            201,
            "put manifest: {}",
            response.text().unwrap_or_default()
        );
        digest_of(&body)
    }

    /// Pushes a one-layer image under `repository:tag`; `content` makes it distinct. Returns its digest.
    pub fn push_image(&self, repository: &str, tag: &str, content: &str) -> String {
        let config = json!({"architecture": "amd64", "os": "linux", "config": {"Labels": {"content": content}}, "rootfs": {"type": "layers", "diff_ids": []}});
        let (config_digest, config_size) =
            self.upload_blob(repository, &serde_json::to_vec(&config).expect("config"));
        let (layer_digest, layer_size) =
            self.upload_blob(repository, format!("layer of {content}").as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
        });
        self.put_manifest(repository, tag, &manifest)
    }

    /// Stores cosign signatures of `digest` (one layer per key, as `cosign sign` appends them)
    /// at `sha256-<hex>.sig`, each over a simple-signing payload with these annotations.
    pub fn sign(
        &self,
        repository: &str,
        digest: &str,
        keys: &[&SigningKey],
        annotations: &[(&str, &str)],
    ) {
        self.sign_payloads(
            repository,
            digest,
            &keys
                .iter()
                .map(|k| (*k, payload(&self.host, repository, digest, annotations)))
                .collect::<Vec<_>>(),
        );
    }

    /// Stores signatures of arbitrary payloads under the signature tag of `digest`.
    pub fn sign_payloads(&self, repository: &str, digest: &str, signed: &[(&SigningKey, Vec<u8>)]) {
        let layers: Vec<SignatureLayer> = signed
            .iter()
            .map(|(key, payload)| {
                let signature: Signature = key.sign(payload);
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
                (
                    payload.clone(),
                    vec![("dev.cosignproject.cosign/signature", encoded)],
                )
            })
            .collect();
        self.push_signature_layers(repository, digest, &layers);
    }

    /// Stores a signature manifest for `digest`: one simple-signing layer per payload, with
    /// these annotations (signature, and for keyless ones certificate and bundle).
    pub fn push_signature_layers(&self, repository: &str, digest: &str, signed: &[SignatureLayer]) {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (payload, annotations) in signed {
            let (blob, size) = self.upload_blob(repository, payload);
            let annotations: serde_json::Map<String, Value> = annotations
                .iter()
                .map(|(k, v)| ((*k).to_string(), Value::String(v.clone())))
                .collect();
            diff_ids.push(blob.clone());
            layers.push(json!({
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": blob, "size": size,
                "annotations": annotations,
            }));
        }
        let config = json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let (config_digest, config_size) =
            self.upload_blob(repository, &serde_json::to_vec(&config).expect("config"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        self.put_manifest(repository, &tag, &manifest);
    }
}

impl TestRegistry {
    /// Stores a Sigstore bundle as an OCI artifact referring to `digest`, as cosign 3 does on a
    /// registry without the referrers API: the referrer manifest, and the referrers index under
    /// the fallback tag `sha256-<hex>` (extended, not replaced). `predicate` goes in the
    /// manifest's annotations.
    pub fn push_referrer(&self, repository: &str, digest: &str, bundle: &str, predicate: &str) {
        const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let (layer, layer_size) = self.upload_blob(repository, bundle.as_bytes());
        let (config, config_size) = self.upload_blob(repository, b"{}");
        let subject_size = self
            .http
            .get(format!(
                "http://{}/v2/{repository}/manifests/{digest}",
                self.host
            ))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .and_then(|r| r.bytes())
            .map(|b| b.len())
            .expect("subject");
        let annotations = json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate,
        });
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": BUNDLE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": config_size},
            "layers": [{"mediaType": BUNDLE, "digest": layer, "size": layer_size}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": subject_size},
            "annotations": annotations,
        });
        let body = serde_json::to_vec(&manifest).expect("manifest");
        let referrer = self.put_manifest(repository, &digest_of(&body), &manifest);
        let tag = digest.replacen(':', "-", 1);
        let existing: Vec<Value> = self
            .http
            .get(format!(
                "http://{}/v2/{repository}/manifests/{tag}",
                self.host
            ))
            .header("accept", "application/vnd.oci.image.index.v1+json")
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.json::<Value>().ok())
            .and_then(|index| index["manifests"].as_array().cloned())
            .unwrap_or_default();
        let mut manifests = existing;
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": referrer, "size": body.len(),
            "artifactType": BUNDLE, "annotations": annotations,
        }));
        self.put_manifest(
            repository,
            &tag,
            &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}),
        );
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// cosign's simple-signing payload for an image digest.
pub fn payload(
    host: &str,
    repository: &str,
    digest: &str,
    annotations: &[(&str, &str)],
) -> Vec<u8> {
    let optional: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    let mut doc = json!({
        "critical": {
            "identity": {"docker-reference": format!("{host}/{repository}")},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    });
    if !optional.is_empty() {
        doc["optional"] = Value::Object(optional);
    }
    serde_json::to_vec(&doc).expect("payload")
}

/// `sha256:<hex>` of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A deterministic signing key per seed.
pub fn signing_key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 1;
    SigningKey::from_slice(&bytes).expect("signing key")
}

/// Writes the PEM public key of `key` (as `cosign.pub`) and returns its path.
pub fn write_public_key(dir: &std::path::Path, name: &str, key: &SigningKey) -> PathBuf {
    let pem = key
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .expect("pem");
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write public key");
    path
}
