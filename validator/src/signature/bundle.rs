//! Sigstore bundles, as cosign 3 stores image signatures: an OCI artifact that refers to the
//! image (artifact type `application/vnd.dev.sigstore.bundle.v0.3+json`, found through the
//! referrers API or its fallback tag) whose layer is the bundle. The bundle holds a DSSE envelope
//! over an in-toto statement whose predicate type is `https://sigstore.dev/cosign/sign/v1` and
//! whose subject is the image digest, the signer's certificate (keyless) or a key hint, and the
//! transparency log entry.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use super::keyless::{Certificate, Identity, LogEntry, Rejection, Signed, Signer, TrustedRoot};

/// Media types of Sigstore bundles start with this.
pub const MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The predicate type of a cosign image signature statement.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Referrer annotation naming the statement's predicate type.
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// A parsed bundle with a DSSE envelope.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The signer's certificate (DER), for keyless signatures.
    pub certificate: Option<Vec<u8>>,
    /// The transparency log entries; `Err` says why one cannot be read.
    pub entries: Vec<Result<LogEntry, String>>,
    /// RFC 3161 timestamps (DER) of the signature.
    pub timestamps: Vec<Vec<u8>>,
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// The envelope's (first) signature, DER.
    pub signature: Vec<u8>,
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("{what} is not base64: {e}"))
}

impl Bundle {
    pub fn parse(bytes: &[u8]) -> Result<Bundle, String> {
        let bundle: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("the bundle is not JSON: {e}"))?;
        let media_type = bundle
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !media_type.starts_with(MEDIA_TYPE_PREFIX) {
            return Err(format!("mediaType `{media_type}` is not a Sigstore bundle"));
        }
        let material = &bundle["verificationMaterial"];
        let raw = material["certificate"]["rawBytes"]
            .as_str()
            .or_else(|| material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str());
        let certificate = raw
            .map(|r| decode(r, "verificationMaterial certificate"))
            .transpose()?;
        let entries = material["tlogEntries"]
            .as_array()
            .map(|entries| entries.iter().map(LogEntry::from_bundle_entry).collect())
            .unwrap_or_default();
        let timestamps = material["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(|stamps| {
                stamps
                    .iter()
                    .map(|t| {
                        decode(
                            t["signedTimestamp"].as_str().unwrap_or(""),
                            "an RFC 3161 signedTimestamp",
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let envelope = bundle.get("dsseEnvelope").ok_or(
            "the bundle has no dsseEnvelope (a messageSignature bundle signs a blob, not an image)",
        )?;
        let text = |v: &Value, field: &str| -> Result<String, String> {
            v.get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("dsseEnvelope without {field}"))
        };
        let signature = envelope["signatures"]
            .as_array()
            .and_then(|s| s.first())
            .ok_or("dsseEnvelope without signatures")?;
        Ok(Bundle {
            certificate,
            entries,
            timestamps,
            payload_type: text(envelope, "payloadType")?,
            payload: decode(&text(envelope, "payload")?, "dsseEnvelope payload")?,
            signature: decode(&text(signature, "sig")?, "dsseEnvelope signature")?,
        })
    }

    /// Verifies the bundle as a keyless signature against `root`, for one of `identities`
    /// (the first readable log entry that verifies counts); returns who signed.
    pub fn verify_keyless(
        &self,
        root: &TrustedRoot,
        identities: &[Identity],
    ) -> Result<Signer, Rejection> {
        let certificate = self.certificate.as_deref().ok_or_else(|| {
            Rejection::Certificate("the bundle has no certificate (a key-based signature)".into())
        })?;
        let entries: Vec<LogEntry> = self
            .entries
            .iter()
            .filter_map(|e| e.as_ref().ok())
            .cloned()
            .collect();
        if entries.is_empty() {
            if let Some(Err(e)) = self.entries.first() {
                return Err(Rejection::Log(e.clone()));
            }
        }
        let pae = self.pae();
        root.verify(
            identities,
            &Signed {
                message: &pae,
                payload: &self.payload,
                signature: &self.signature,
                certificate: Certificate::Der(certificate),
                entries,
                timestamps: self.timestamps.clone(),
            },
        )
    }

    /// The bytes a DSSE signature covers: `DSSEv1 <len> <type> <len> <payload>`.
    pub fn pae(&self) -> Vec<u8> {
        let mut out = format!(
            "DSSEv1 {} {} {} ",
            self.payload_type.len(),
            self.payload_type,
            self.payload.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.payload);
        out
    }
}

/// What an in-toto statement says about the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub predicate_type: String,
    /// Subject digests as `sha256:<hex>`.
    pub digests: Vec<String>,
    /// String annotations of the subjects and the predicate, for `-a key=value` checks.
    pub annotations: BTreeMap<String, String>,
}

impl Statement {
    pub fn parse(payload: &[u8]) -> Result<Statement, String> {
        let statement: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("the signed statement is not JSON: {e}"))?;
        let kind = statement.get("_type").and_then(Value::as_str).unwrap_or("");
        if !kind.starts_with("https://in-toto.io/Statement/") {
            return Err(format!("`_type` `{kind}` is not an in-toto statement"));
        }
        let mut digests = Vec::new();
        let mut annotations = BTreeMap::new();
        let mut strings = |map: Option<&Value>| {
            for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    annotations.insert(k.clone(), v.to_string());
                }
            }
        };
        for subject in statement["subject"].as_array().into_iter().flatten() {
            for (algorithm, hex) in subject["digest"].as_object().into_iter().flatten() {
                if let Some(hex) = hex.as_str() {
                    digests.push(format!("{algorithm}:{hex}"));
                }
            }
            strings(subject.get("annotations"));
        }
        strings(statement.get("predicate"));
        Ok(Statement {
            predicate_type: statement
                .get("predicateType")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            digests,
            annotations,
        })
    }

    /// The wanted annotations this statement lacks, as `key=value`.
    pub fn missing_annotations(&self, wanted: &BTreeMap<String, String>) -> Vec<String> {
        wanted
            .iter()
            .filter(|(k, v)| self.annotations.get(*k) != Some(*v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn bundles_parse_and_pae_is_dsse_v1() {
        let statement = json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": "ab"}, "annotations": {"env": "prod"}}],
            "predicateType": SIGN_PREDICATE, "predicate": {"team": "web", "n": 1}});
        let payload = serde_json::to_vec(&statement).unwrap();
        let bundle = json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": b64(b"der")},
                "tlogEntries": [{"logIndex": "7", "logId": {"keyId": b64(&[1, 2])},
                    "integratedTime": "1700000000", "inclusionPromise": {"signedEntryTimestamp": "c2V0"},
                    "canonicalizedBody": "Ym9keQ=="}]},
            "dsseEnvelope": {"payload": b64(&payload), "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": b64(b"sig")}]}});
        let parsed = Bundle::parse(&serde_json::to_vec(&bundle).unwrap()).unwrap();
        assert_eq!(parsed.certificate.as_deref(), Some(&b"der"[..]));
        let entry = parsed.entries[0].clone().unwrap();
        assert_eq!(
            (
                entry.log_index,
                entry.integrated_time,
                entry.log_id.as_str()
            ),
            (7, Some(1_700_000_000), "0102")
        );
        assert!(parsed.timestamps.is_empty());
        assert_eq!(parsed.signature, b"sig");
        let pae = parsed.pae();
        assert!(pae.starts_with(
            format!(
                "DSSEv1 28 application/vnd.in-toto+json {} {{",
                payload.len()
            )
            .as_bytes()
        ));
        let s = Statement::parse(&parsed.payload).unwrap();
        assert_eq!(s.predicate_type, SIGN_PREDICATE);
        assert_eq!(s.digests, ["sha256:ab"]);
        let wanted: BTreeMap<String, String> = [
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "ops".to_string()),
        ]
        .into();
        assert_eq!(s.missing_annotations(&wanted), ["team=ops"]);
    }

    #[test]
    fn bad_bundles_are_explained() {
        let e = |v: Value| Bundle::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e(json!({"mediaType": "x"})).contains("not a Sigstore bundle"));
        assert!(e(
            json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "messageSignature": {}})
        )
        .contains("no dsseEnvelope"));
        assert!(e(
            json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": {"payload": "!", "payloadType": "t", "signatures": [{"sig": ""}]}})
        )
        .contains("not base64"));
        assert!(Bundle::parse(b"{").unwrap_err().contains("not JSON"));
        assert!(Statement::parse(b"{\"_type\": \"x\"}")
            .unwrap_err()
            .contains("not an in-toto statement"));
    }
}
