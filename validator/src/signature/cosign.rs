//! cosign's signature format: public keys, simple-signing payloads, and their ECDSA P-256 check.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;
use serde_json::Value;

/// Media type of a cosign signature layer (its blob is the signed payload).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 ECDSA signature of the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of a cosign image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";

/// The tag cosign stores the signatures of `digest` under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// A trusted public key and the name it is reported by (its file, or `file:entry` of a Secret).
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub name: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Whether `signature` (base64 of an ASN.1 DER ECDSA signature) signs `payload` with this key.
    pub fn verifies(&self, payload: &[u8], signature: &Signature) -> bool {
        self.key.verify(payload, signature).is_ok()
    }
}

/// Decodes the base64 DER signature of a signature layer.
pub fn decode_signature(annotation: &str) -> Result<Signature, String> {
    let der = base64::engine::general_purpose::STANDARD
        .decode(annotation.trim())
        .map_err(|e| format!("signature annotation is not base64: {e}"))?;
    Signature::from_der(&der)
        .map_err(|_| "signature is not an ASN.1 DER ECDSA P-256 signature".into())
}

const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// Reads the ECDSA P-256 public keys (PEM `PUBLIC KEY` blocks) in a text.
fn keys_in(text: &str, name: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(PEM_BEGIN) {
        let Some(len) = rest[start..].find(PEM_END) else {
            return Err(format!("{name}: a PUBLIC KEY block has no END line"));
        };
        let block = &rest[start..start + len + PEM_END.len()];
        let key = VerifyingKey::from_public_key_pem(block).map_err(|e| {
            format!("{name}: not an ECDSA P-256 public key ({e}); cosign keys are P-256")
        })?;
        let key_name = if keys.is_empty() {
            name.to_string()
        } else {
            format!("{name}#{}", keys.len() + 1)
        };
        keys.push(PublicKey {
            name: key_name,
            key,
        });
        rest = &rest[start + len + PEM_END.len()..];
    }
    Ok(keys)
}

/// Loads the public keys of a file: PEM (`cosign.pub`), or a Kubernetes Secret manifest whose
/// `data`/`stringData` entries hold PEM public keys (as `cosign generate-key-pair k8s://` makes).
pub fn load_keys(path: &Path) -> Result<Vec<PublicKey>, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{name}: cannot read public key file: {e}"))?;
    let secret = serde_yaml::from_str::<Value>(&text)
        .ok()
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some("Secret"));
    let Some(secret) = secret else {
        if text.contains(PEM_BEGIN) {
            return keys_in(&text, &name);
        }
        return Err(format!(
            "{name}: no `-----BEGIN PUBLIC KEY-----` block and not a Kubernetes Secret"
        ));
    };
    let mut keys = Vec::new();
    let entries = |field: &str| -> BTreeMap<String, String> {
        secret
            .get(field)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (entry, encoded) in entries("data") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("{name}: data.{entry} is not base64: {e}"))?;
        let text = String::from_utf8_lossy(&bytes);
        keys.extend(keys_in(&text, &format!("{name}:{entry}"))?);
    }
    for (entry, text) in entries("stringData") {
        keys.extend(keys_in(&text, &format!("{name}:{entry}"))?);
    }
    Ok(keys)
}

/// The signed payload of a cosign signature (simple signing).
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    pub critical: Critical,
    #[serde(default)]
    pub optional: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference", default)]
    pub docker_reference: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl Payload {
    pub fn parse(bytes: &[u8]) -> Result<Payload, String> {
        let payload: Payload = serde_json::from_slice(bytes)
            .map_err(|e| format!("signed payload is not a cosign simple-signing document: {e}"))?;
        if payload.critical.kind != PAYLOAD_TYPE {
            return Err(format!(
                "signed payload has type `{}`, not `{PAYLOAD_TYPE}`",
                payload.critical.kind
            ));
        }
        Ok(payload)
    }

    /// The annotations (`optional`) that differ from the wanted ones, as `key=value` (wanted).
    pub fn missing_annotations(&self, wanted: &BTreeMap<String, String>) -> Vec<String> {
        wanted
            .iter()
            .filter(|(k, v)| {
                let found = self.optional.as_ref().and_then(|o| o.get(*k));
                match found {
                    Some(Value::String(s)) => s != *v,
                    Some(other) => other.to_string().as_str() != v.as_str(),
                    None => true,
                }
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    fn pem(k: &SigningKey) -> String {
        k.verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn signatures_verify_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cosign.pub");
        std::fs::write(&path, pem(&key(1))).unwrap();
        let keys = load_keys(&path).unwrap();
        assert_eq!(keys.len(), 1);
        let payload = br#"{"critical":{}}"#;
        let sig: Signature = key(1).sign(payload);
        let encoded = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        let decoded = decode_signature(&encoded).unwrap();
        assert!(keys[0].verifies(payload, &decoded));
        assert!(!keys[0].verifies(b"other payload", &decoded));
        let other: Signature = key(2).sign(payload);
        assert!(!keys[0].verifies(payload, &other));
        assert!(decode_signature("not base64!").is_err());
        assert!(decode_signature("AAAA").is_err());
    }

    #[test]
    fn secrets_and_pem_bundles_give_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let both = format!("{}{}", pem(&key(1)), pem(&key(2)));
        let bundle = dir.path().join("keys.pem");
        std::fs::write(&bundle, &both).unwrap();
        assert_eq!(load_keys(&bundle).unwrap().len(), 2);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pem(&key(3)));
        let secret = dir.path().join("secret.yaml");
        std::fs::write(
            &secret,
            format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: cosign}}\ndata:\n  cosign.pub: {encoded}\n  cosign.password: cGFzcw==\nstringData:\n  extra.pub: |\n{}",
                pem(&key(4)).lines().map(|l| format!("    {l}\n")).collect::<String>()),
        )
        .unwrap();
        let keys = load_keys(&secret).unwrap();
        let names: Vec<_> = keys
            .iter()
            .map(|k| k.name.rsplit(':').next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["cosign.pub", "extra.pub"]);
        let cm = dir.path().join("cm.yaml");
        std::fs::write(&cm, "kind: ConfigMap\n").unwrap();
        assert!(load_keys(&cm)
            .unwrap_err()
            .contains("not a Kubernetes Secret"));
        let missing = dir.path().join("missing.pub");
        assert!(load_keys(&missing).unwrap_err().contains("cannot read"));
        let rsa = dir.path().join("bad.pub");
        std::fs::write(
            &rsa,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        assert!(load_keys(&rsa).unwrap_err().contains("P-256"));
    }

    #[test]
    fn payloads_are_checked_for_type_and_annotations() {
        let p = Payload::parse(br#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":{"env":"prod","n":1}}"#).unwrap();
        let wanted: BTreeMap<String, String> = [
            ("env".to_string(), "prod".to_string()),
            ("n".into(), "1".into()),
        ]
        .into();
        assert!(p.missing_annotations(&wanted).is_empty());
        let wanted: BTreeMap<String, String> = [
            ("env".to_string(), "dev".to_string()),
            ("team".into(), "a".into()),
        ]
        .into();
        assert_eq!(p.missing_annotations(&wanted), ["env=dev", "team=a"]);
        assert!(Payload::parse(br#"{"critical":{"identity":{},"image":{"docker-manifest-digest":"x"},"type":"other"}}"#).unwrap_err().contains("type"));
        assert!(Payload::parse(b"[]").is_err());
        assert_eq!(signature_tag("sha256:abc"), "sha256-abc.sig");
    }
}
