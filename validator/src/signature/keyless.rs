//! Keyless cosign signatures, checked offline against a Sigstore trusted root.
//!
//! A keyless signature layer carries, besides the signature, the signer's short-lived
//! certificate (`dev.sigstore.cosign/certificate`) and the transparency log entry of the
//! signing (`dev.sigstore.cosign/bundle`). It verifies when:
//! - the log entry's signed entry timestamp verifies with a transparency log key of the trusted
//!   root, and the entry records this signature, this certificate and this payload's hash;
//! - the certificate chains to a certificate authority of the trusted root, is for code
//!   signing, and it and its issuers were valid when the entry was logged;
//! - when the trusted root lists certificate transparency logs, one of the certificate's embedded
//!   timestamps verifies with one of them;
//! - the payload's signature verifies with the certificate's key;
//! - the certificate's OIDC issuer and subject (an email or URI alternative name) match one of
//!   the trust policy's identities.
//!
//! The chain annotation is not used: the trusted root is where issuers come from.

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384};
use thiserror::Error;
use x509_cert::der::asn1::{OctetString, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};
use x509_cert::Certificate as X509;

/// Layer annotation holding the signer's PEM certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the transparency log bundle (JSON).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why a keyless signature was rejected. Each message starts with what happened.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum Rejection {
    #[error("untrusted certificate: {0}")]
    Certificate(String),
    #[error("transparency log: {0}")]
    Log(String),
    #[error("certificate transparency: {0}")]
    Timestamp(String),
    #[error("bad signature: the payload's signature does not verify with the key of its certificate ({0})")]
    Signature(String),
    #[error("wrong identity: the certificate is for {found}; the trust policy wants {wanted}")]
    Identity { found: String, wanted: String },
}

/// An ECDSA public key of a certificate, log or authority.
#[derive(Debug, Clone)]
enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
        }
    }
}

impl EcKey {
    /// Reads a DER SubjectPublicKeyInfo.
    fn from_spki(der: &[u8]) -> Result<EcKey, String> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(EcKey::P256(key));
        }
        if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(EcKey::P384(key));
        }
        Err("not an ECDSA P-256 or P-384 public key".into())
    }

    /// Whether the ASN.1 DER signature `signature` signs `message` hashed with `hash`.
    fn verifies(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let prehash = hash.digest(message);
        match self {
            EcKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&prehash, &s).is_ok()),
            EcKey::P384(key) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&prehash, &s).is_ok()),
        }
    }
}

/// A period in Unix seconds; open ends are `i64::MIN`/`i64::MAX`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    end: i64,
}

impl Window {
    const ALWAYS: Window = Window {
        start: i64::MIN,
        end: i64::MAX,
    };

    fn contains(&self, t: i64) -> bool {
        self.start <= t && t <= self.end
    }
}

/// A parsed certificate and its DER bytes.
#[derive(Debug, Clone)]
struct Cert {
    der: Vec<u8>,
    cert: X509,
}

impl Cert {
    fn from_der(der: Vec<u8>) -> Result<Cert, String> {
        let cert = X509::from_der(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        Ok(Cert { der, cert })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn validity(&self) -> Window {
        let v = &self.cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        Window {
            start: secs(v.not_before),
            end: secs(v.not_after),
        }
    }

    fn key(&self) -> Result<EcKey, String> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())?;
        EcKey::from_spki(&spki)
    }

    fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    fn is_ca(&self) -> bool {
        self.extension(OID_BASIC_CONSTRAINTS)
            .and_then(|v| BasicConstraints::from_der(v).ok())
            .is_some_and(|b| b.ca)
    }

    /// The DER bytes this certificate's signature covers (its TBSCertificate, as encoded).
    fn signed_bytes(&self) -> Result<&[u8], String> {
        tbs_slice(&self.der).ok_or_else(|| "truncated certificate".to_string())
    }

    /// Whether `issuer`'s key made this certificate's signature.
    fn signed_by(&self, issuer: &Cert) -> Result<(), String> {
        let hash = match self.cert.signature_algorithm.oid {
            OID_ECDSA_SHA256 => Hash::Sha256,
            OID_ECDSA_SHA384 => Hash::Sha384,
            other => return Err(format!("unsupported signature algorithm {other}")),
        };
        let key = issuer
            .key()
            .map_err(|e| format!("{}: {e}", issuer.subject()))?;
        let signature = self
            .cert
            .signature
            .as_bytes()
            .ok_or("the signature is not a whole number of bytes")?;
        if key.verifies(hash, self.signed_bytes()?, signature) {
            Ok(())
        } else {
            Err(format!(
                "the signature of {} does not verify with the key of {}",
                self.subject(),
                issuer.subject()
            ))
        }
    }
}

/// The TBSCertificate element of a DER certificate: the first element of its outer SEQUENCE.
fn tbs_slice(der: &[u8]) -> Option<&[u8]> {
    let (outer_header, _) = der_header(der)?;
    let inner = der.get(outer_header..)?;
    let (header, len) = der_header(inner)?;
    inner.get(..header + len)
}

/// (header length, content length) of a DER element.
fn der_header(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in bytes.get(2..2 + n)? {
        len = (len << 8) | usize::from(*b);
    }
    Some((2 + n, len))
}

/// A Fulcio-like certificate authority: its chain, issuing certificate first.
#[derive(Debug, Clone)]
struct Authority {
    uri: String,
    chain: Vec<Cert>,
    window: Window,
}

/// A transparency or certificate transparency log. Logs whose key is not ECDSA (older CT logs
/// have RSA keys) are kept without a key: nothing they signed verifies.
#[derive(Debug, Clone)]
struct Log {
    url: String,
    id: Vec<u8>,
    key: Option<EcKey>,
    window: Window,
}

impl Log {
    fn verifies(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        self.key
            .as_ref()
            .is_some_and(|k| k.verifies(hash, message, signature))
    }
}

/// The trusted material: certificate authorities, transparency logs and CT logs, from a
/// Sigstore `trusted_root.json` (`application/vnd.dev.sigstore.trustedroot+json`).
#[derive(Debug, Clone)]
pub struct TrustedRoot {
    pub name: String,
    authorities: Vec<Authority>,
    logs: Vec<Log>,
    ct_logs: Vec<Log>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootFile {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    tlogs: Vec<LogFile>,
    #[serde(default)]
    certificate_authorities: Vec<AuthorityFile>,
    #[serde(default)]
    ctlogs: Vec<LogFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogFile {
    #[serde(default)]
    base_url: String,
    public_key: KeyFile,
    #[serde(default)]
    log_id: Option<LogId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    #[serde(default)]
    valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
struct ValidFor {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityFile {
    #[serde(default)]
    uri: String,
    cert_chain: ChainFile,
    #[serde(default)]
    valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
struct ChainFile {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("not base64: {e}"))
}

fn window(valid: Option<&ValidFor>) -> Result<Window, String> {
    let Some(valid) = valid else {
        return Ok(Window::ALWAYS);
    };
    let parse = |t: &Option<String>, open: i64| match t {
        None => Ok(open),
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| format!("validFor time `{t}`: {e}")),
    };
    Ok(Window {
        start: parse(&valid.start, i64::MIN)?,
        end: parse(&valid.end, i64::MAX)?,
    })
}

impl TrustedRoot {
    /// Reads a trusted root file; the error names the file and the entry that is wrong.
    pub fn load(path: &Path) -> Result<TrustedRoot, String> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{name}: cannot read trusted root: {e}"))?;
        TrustedRoot::parse(&name, &text)
    }

    /// Parses the JSON of a trusted root named `name`.
    pub fn parse(name: &str, text: &str) -> Result<TrustedRoot, String> {
        let file: RootFile = serde_json::from_str(text)
            .map_err(|e| format!("{name}: not a Sigstore trusted root: {e}"))?;
        if !file.media_type.is_empty()
            && !file
                .media_type
                .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(format!(
                "{name}: mediaType `{}` is not a Sigstore trusted root",
                file.media_type
            ));
        }
        let logs = |entries: &[LogFile], field: &str| -> Result<Vec<Log>, String> {
            entries
                .iter()
                .enumerate()
                .map(|(i, log)| {
                    let at = format!("{name}: {field}[{i}]");
                    let der = base64_decode(&log.public_key.raw_bytes)
                        .map_err(|e| format!("{at}.publicKey.rawBytes: {e}"))?;
                    let details = log.public_key.key_details.as_str();
                    let key = match EcKey::from_spki(&der) {
                        Ok(key) => Some(key),
                        Err(_) if details.contains("RSA") || details.contains("ED25519") => None,
                        Err(e) => return Err(format!("{at}.publicKey: {e}")),
                    };
                    let id = match &log.log_id {
                        Some(id) => base64_decode(&id.key_id)
                            .map_err(|e| format!("{at}.logId.keyId: {e}"))?,
                        None => Sha256::digest(&der).to_vec(),
                    };
                    Ok(Log {
                        url: log.base_url.clone(),
                        id,
                        key,
                        window: window(log.public_key.valid_for.as_ref())
                            .map_err(|e| format!("{at}: {e}"))?,
                    })
                })
                .collect()
        };
        let mut authorities = Vec::new();
        for (i, ca) in file.certificate_authorities.iter().enumerate() {
            let at = format!("{name}: certificateAuthorities[{i}]");
            let mut chain = Vec::new();
            for (j, c) in ca.cert_chain.certificates.iter().enumerate() {
                let der = base64_decode(&c.raw_bytes)
                    .map_err(|e| format!("{at}.certChain.certificates[{j}]: {e}"))?;
                let cert = Cert::from_der(der)
                    .map_err(|e| format!("{at}.certChain.certificates[{j}]: {e}"))?;
                cert.key()
                    .map_err(|e| format!("{at}.certChain.certificates[{j}]: {e}"))?;
                chain.push(cert);
            }
            if chain.is_empty() {
                return Err(format!("{at}: certChain has no certificate"));
            }
            for pair in chain.windows(2) {
                if let [child, parent] = pair {
                    child
                        .signed_by(parent)
                        .map_err(|e| format!("{at}: the chain does not hold together: {e}"))?;
                }
            }
            authorities.push(Authority {
                uri: ca.uri.clone(),
                chain,
                window: window(ca.valid_for.as_ref()).map_err(|e| format!("{at}: {e}"))?,
            });
        }
        if authorities.is_empty() {
            return Err(format!(
                "{name}: no certificateAuthorities; keyless verification needs the certificate authority that issues signing certificates"
            ));
        }
        let logs_list = logs(&file.tlogs, "tlogs")?;
        if logs_list.is_empty() {
            return Err(format!(
                "{name}: no tlogs; keyless verification needs the transparency log's public key"
            ));
        }
        Ok(TrustedRoot {
            name: name.to_string(),
            authorities,
            logs: logs_list,
            ct_logs: logs(&file.ctlogs, "ctlogs")?,
        })
    }

    /// Checks one keyless signature; returns who signed it.
    pub fn verify(&self, identities: &[Identity], signed: &Signed) -> Result<Signer, Rejection> {
        let leaf = match signed.certificate {
            Certificate::Pem(pem) => parse_certificate_pem(pem),
            Certificate::Der(der) => Cert::from_der(der.to_vec()),
        }
        .map_err(Rejection::Certificate)?;
        let (logged_at, hash) = self.check_log_entry(signed, &leaf)?;
        let authority = self.issuer_of(&leaf, logged_at)?;
        check_leaf(&leaf, logged_at)?;
        if !self.ct_logs.is_empty() {
            self.check_timestamps(&leaf, authority)?;
        }
        let key = leaf
            .key()
            .map_err(|e| Rejection::Certificate(format!("its key: {e}")))?;
        if !key.verifies(hash, signed.message, signed.signature) {
            return Err(Rejection::Signature(leaf.subject()));
        }
        let signer = Signer::of(&leaf);
        if identities.iter().any(|i| {
            i.issuer.matches(&signer.issuer) && signer.subjects.iter().any(|s| i.subject.matches(s))
        }) {
            Ok(signer)
        } else {
            Err(Rejection::Identity {
                found: signer.to_string(),
                wanted: describe(identities),
            })
        }
    }

    /// Verifies the log entry of the bundle; returns its integrated time and the hash the
    /// payload was signed over (the one the entry records, as the log checked).
    fn check_log_entry(&self, signed: &Signed, leaf: &Cert) -> Result<(i64, Hash), Rejection> {
        let entry = signed.entry.as_ref().ok_or_else(|| {
            Rejection::Log(format!(
                "the signature has no log entry ({BUNDLE_ANNOTATION}, or tlogEntries of a Sigstore bundle); keyless signatures must be logged"
            ))
        })?;
        let id = hex_decode(&entry.log_id)
            .ok_or_else(|| Rejection::Log(format!("logID `{}` is not hex", entry.log_id)))?;
        let log = self.logs.iter().find(|l| l.id == id).ok_or_else(|| {
            Rejection::Log(format!(
                "the entry is in log {}, which is not a log of the trusted root {}",
                entry.log_id, self.name
            ))
        })?;
        let set = base64_decode(&entry.signed_entry_timestamp)
            .map_err(|e| Rejection::Log(format!("SignedEntryTimestamp: {e}")))?;
        if !log.verifies(Hash::Sha256, entry.canonical().as_bytes(), &set) {
            return Err(Rejection::Log(format!(
                "the signed entry timestamp does not verify with the key of {}",
                log.url
            )));
        }
        if !log.window.contains(entry.integrated_time) {
            return Err(Rejection::Log(format!(
                "the entry was logged at {}, outside the validity of the key of {}",
                rfc3339(entry.integrated_time),
                log.url
            )));
        }
        let hash = entry.check_body(signed, leaf).map_err(Rejection::Log)?;
        Ok((entry.integrated_time, hash))
    }

    /// The authority whose chain issued `leaf`, every certificate valid at `t`.
    fn issuer_of(&self, leaf: &Cert, t: i64) -> Result<&Authority, Rejection> {
        let mut why = String::new();
        for authority in &self.authorities {
            if !authority.window.contains(t) {
                why = format!(
                    "the certificate authority {} was not trusted at {}",
                    authority.uri,
                    rfc3339(t)
                );
                continue;
            }
            let Some(issuer) = authority.chain.first() else {
                continue;
            };
            if leaf.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
                why = format!(
                    "issued by `{}`, not by a certificate authority of the trusted root {}",
                    leaf.cert.tbs_certificate.issuer, self.name
                );
                continue;
            }
            if let Err(e) = leaf.signed_by(issuer) {
                why = e;
                continue;
            }
            if let Some(ca) = authority.chain.iter().find(|c| !c.validity().contains(t)) {
                why = format!(
                    "the issuing certificate `{}` was not valid at {}",
                    ca.subject(),
                    rfc3339(t)
                );
                continue;
            }
            if let Some(ca) = authority.chain.iter().find(|c| !c.is_ca()) {
                why = format!("`{}` is not a certificate authority", ca.subject());
                continue;
            }
            return Ok(authority);
        }
        Err(Rejection::Certificate(why))
    }

    /// One embedded signed certificate timestamp must verify with a CT log of the root.
    fn check_timestamps(&self, leaf: &Cert, authority: &Authority) -> Result<(), Rejection> {
        let missing = || {
            Rejection::Timestamp(
                "the certificate has no embedded signed certificate timestamp".into(),
            )
        };
        let value = leaf.extension(OID_SCT_LIST).ok_or_else(missing)?;
        let list = OctetString::from_der(value)
            .map_err(|e| Rejection::Timestamp(format!("the timestamp list is not DER: {e}")))?;
        let timestamps = parse_sct_list(list.as_bytes())
            .ok_or_else(|| Rejection::Timestamp("the timestamp list is malformed".into()))?;
        let issuer = authority.chain.first().ok_or_else(missing)?;
        let issuer_key_hash = issuer
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map(|spki| Sha256::digest(spki).to_vec())
            .map_err(|e| Rejection::Timestamp(e.to_string()))?;
        let mut tbs = leaf.cert.tbs_certificate.clone();
        if let Some(extensions) = tbs.extensions.as_mut() {
            extensions.retain(|e| e.extn_id != OID_SCT_LIST);
        }
        let precert = tbs
            .to_der()
            .map_err(|e| Rejection::Timestamp(e.to_string()))?;
        for sct in &timestamps {
            let Some(log) = self.ct_logs.iter().find(|l| l.id == sct.log_id) else {
                continue;
            };
            let hash = match sct.hash {
                4 => Hash::Sha256,
                5 => Hash::Sha384,
                _ => continue,
            };
            let signed = sct.signed_data(&issuer_key_hash, &precert);
            if log.verifies(hash, &signed, &sct.signature)
                && log.window.contains(sct.timestamp_ms / 1000)
            {
                return Ok(());
            }
        }
        Err(Rejection::Timestamp(format!(
            "none of the {} embedded timestamp(s) verifies with a CT log of the trusted root {}",
            timestamps.len(),
            self.name
        )))
    }
}

/// The leaf must be for code signing and valid when logged.
fn check_leaf(leaf: &Cert, t: i64) -> Result<(), Rejection> {
    let validity = leaf.validity();
    if !validity.contains(t) {
        return Err(Rejection::Certificate(format!(
            "the signature was logged at {}, outside the certificate's validity ({} to {})",
            rfc3339(t),
            rfc3339(validity.start),
            rfc3339(validity.end)
        )));
    }
    let code_signing = leaf
        .extension(OID_EXTENDED_KEY_USAGE)
        .and_then(|v| ExtendedKeyUsage::from_der(v).ok())
        .is_some_and(|eku| eku.0.contains(&OID_CODE_SIGNING));
    if !code_signing {
        return Err(Rejection::Certificate(
            "the certificate is not for code signing (no codeSigning extended key usage)".into(),
        ));
    }
    Ok(())
}

fn parse_certificate_pem(pem: &str) -> Result<Cert, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem
        .find(BEGIN)
        .ok_or("the certificate annotation holds no PEM CERTIFICATE")?;
    let body = &pem[start + BEGIN.len()..];
    let end = body
        .find(END)
        .ok_or("the PEM CERTIFICATE has no END line")?;
    let text: String = body[..end].split_whitespace().collect();
    let der = base64_decode(&text).map_err(|e| format!("the PEM CERTIFICATE is {e}"))?;
    Cert::from_der(der)
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// cosign's transparency log bundle (`dev.sigstore.cosign/bundle`).
#[derive(Deserialize)]
struct CosignBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: CosignEntry,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CosignEntry {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// A transparency log entry with the log's promise of inclusion (signed entry timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The canonicalized entry body, base64.
    pub body: String,
    pub integrated_time: i64,
    pub log_index: i64,
    /// The log's ID (SHA-256 of its key), hex.
    pub log_id: String,
    /// The signed entry timestamp, base64.
    pub signed_entry_timestamp: String,
}

impl LogEntry {
    /// From cosign's `dev.sigstore.cosign/bundle` annotation.
    pub fn from_cosign_bundle(text: &str) -> Result<LogEntry, Rejection> {
        let bundle: CosignBundle = serde_json::from_str(text)
            .map_err(|e| Rejection::Log(format!("{BUNDLE_ANNOTATION} is not a bundle: {e}")))?;
        Ok(LogEntry {
            body: bundle.payload.body,
            integrated_time: bundle.payload.integrated_time,
            log_index: bundle.payload.log_index,
            log_id: bundle.payload.log_id,
            signed_entry_timestamp: bundle.signed_entry_timestamp,
        })
    }

    /// From an entry of a Sigstore bundle's `verificationMaterial.tlogEntries` (numbers are
    /// strings there, and the log ID is base64).
    pub fn from_bundle_entry(entry: &Value) -> Result<LogEntry, String> {
        let text = |path: &[&str]| -> Option<&str> {
            path.iter()
                .try_fold(entry, |v, k| v.get(*k))
                .and_then(Value::as_str)
        };
        let number = |field: &str| -> Result<i64, String> {
            match entry.get(field) {
                Some(Value::String(s)) => s.parse().map_err(|e| format!("{field}: {e}")),
                Some(Value::Number(n)) => {
                    n.as_i64().ok_or_else(|| format!("{field}: not an integer"))
                }
                _ => Err(format!("tlog entry without {field}")),
            }
        };
        let log_id = text(&["logId", "keyId"]).ok_or("tlog entry without logId.keyId")?;
        Ok(LogEntry {
            body: text(&["canonicalizedBody"])
                .ok_or("tlog entry without canonicalizedBody")?
                .to_string(),
            integrated_time: number("integratedTime")?,
            log_index: number("logIndex")?,
            log_id: hex(&base64_decode(log_id).map_err(|e| format!("logId.keyId: {e}"))?),
            signed_entry_timestamp: text(&["inclusionPromise", "signedEntryTimestamp"])
                .ok_or("tlog entry without inclusionPromise (a signed entry timestamp)")?
                .to_string(),
        })
    }

    /// The bytes the log signed: the entry as canonical JSON (RFC 8785: sorted keys, no spaces).
    fn canonical(&self) -> String {
        let text = |s: &str| Value::String(s.to_string()).to_string();
        format!(
            r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
            text(&self.body),
            self.integrated_time,
            text(&self.log_id),
            self.log_index
        )
    }

    /// The entry must record this signature, this certificate and the payload's hash; returns
    /// the hash the signature was made over.
    fn check_body(&self, signed: &Signed, leaf: &Cert) -> Result<Hash, String> {
        let body = base64_decode(&self.body).map_err(|e| format!("entry body: {e}"))?;
        let body: Value =
            serde_json::from_slice(&body).map_err(|e| format!("entry body is not JSON: {e}"))?;
        let field = |path: &[&str]| -> &str {
            path.iter()
                .try_fold(&body["spec"], |v, k| v.get(*k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let hash_of = |algorithm: &str| match algorithm {
            "sha256" => Ok(Hash::Sha256),
            "sha384" => Ok(Hash::Sha384),
            other => Err(format!(
                "the entry's hash algorithm `{other}` is not supported"
            )),
        };
        // The log records the certificate as base64 of its PEM (or, for some clients, its DER).
        let same_certificate = |b64: &str| {
            base64_decode(b64).ok().is_some_and(|bytes| {
                bytes == leaf.der
                    || parse_certificate_pem(&String::from_utf8_lossy(&bytes))
                        .is_ok_and(|c| c.der == leaf.der)
            })
        };
        let same_signature =
            |b64: &str| base64_decode(b64).ok().as_deref() == Some(signed.signature);
        match body.get("kind").and_then(Value::as_str).unwrap_or("") {
            "hashedrekord" => {
                let hash = hash_of(field(&["data", "hash", "algorithm"]))?;
                if field(&["data", "hash", "value"]) != hex(&hash.digest(signed.payload)) {
                    return Err("the entry records the hash of another payload".into());
                }
                if !same_signature(field(&["signature", "content"])) {
                    return Err("the entry records another signature".into());
                }
                if !same_certificate(field(&["signature", "publicKey", "content"])) {
                    return Err("the entry records another certificate".into());
                }
                Ok(hash)
            }
            "dsse" => {
                let hash = hash_of(field(&["payloadHash", "algorithm"]))?;
                if field(&["payloadHash", "value"]) != hex(&hash.digest(signed.payload)) {
                    return Err("the entry records the hash of another payload".into());
                }
                let signatures = body["spec"]["signatures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let text =
                    |s: &Value, k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                if !signatures
                    .iter()
                    .any(|s| same_signature(&text(s, "signature")))
                {
                    return Err("the entry records another signature".into());
                }
                if !signatures
                    .iter()
                    .any(|s| same_certificate(&text(s, "verifier")))
                {
                    return Err("the entry records another certificate".into());
                }
                // The envelope's signature is over its PAE, hashed as the key's curve wants.
                Ok(match leaf.key() {
                    Ok(EcKey::P384(_)) => Hash::Sha384,
                    _ => Hash::Sha256,
                })
            }
            kind => Err(format!(
                "the entry is of kind `{kind}`; only hashedrekord and dsse entries are supported"
            )),
        }
    }
}

/// A signed certificate timestamp (RFC 6962, version 1).
struct Sct {
    log_id: Vec<u8>,
    timestamp_ms: i64,
    extensions: Vec<u8>,
    hash: u8,
    signature: Vec<u8>,
}

impl Sct {
    /// The digitally-signed data of a precertificate entry.
    fn signed_data(&self, issuer_key_hash: &[u8], tbs: &[u8]) -> Vec<u8> {
        let mut data = vec![0u8, 0u8];
        data.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(issuer_key_hash);
        let len = u32::try_from(tbs.len()).unwrap_or(u32::MAX).to_be_bytes();
        data.extend_from_slice(&len[1..]);
        data.extend_from_slice(tbs);
        let ext_len = u16::try_from(self.extensions.len()).unwrap_or(u16::MAX);
        data.extend_from_slice(&ext_len.to_be_bytes());
        data.extend_from_slice(&self.extensions);
        data
    }
}

/// A TLS-encoded SignedCertificateTimestampList.
fn parse_sct_list(bytes: &[u8]) -> Option<Vec<Sct>> {
    let mut reader = Reader(bytes);
    let mut list = Reader(reader.vector(2)?);
    let mut scts = Vec::new();
    while !list.0.is_empty() {
        let mut sct = Reader(list.vector(2)?);
        if sct.take(1)? != [0] {
            continue; // a version this verifier does not know
        }
        let log_id = sct.take(32)?.to_vec();
        let timestamp_ms = i64::from_be_bytes(sct.take(8)?.try_into().ok()?);
        let extensions = sct.vector(2)?.to_vec();
        let hash = *sct.take(1)?.first()?;
        let _signature_algorithm = sct.take(1)?;
        let signature = sct.vector(2)?.to_vec();
        scts.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash,
            signature,
        });
    }
    Some(scts)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    /// A vector with a big-endian length prefix of `width` bytes.
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = self
            .take(width)?
            .iter()
            .fold(0usize, |n, b| (n << 8) | usize::from(*b));
        self.take(len)
    }
}

/// The signer's certificate, as a layer annotation (PEM) or a Sigstore bundle (DER) holds it.
#[derive(Debug, Clone, Copy)]
pub enum Certificate<'a> {
    Pem(&'a str),
    Der(&'a [u8]),
}

/// One keyless signature.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    /// The bytes the signature covers: the payload, or a DSSE envelope's PAE.
    pub message: &'a [u8],
    /// The payload whose hash the log entry records.
    pub payload: &'a [u8],
    /// The decoded DER signature.
    pub signature: &'a [u8],
    pub certificate: Certificate<'a>,
    /// The transparency log entry, when the signature carries one.
    pub entry: Option<LogEntry>,
}

/// Who signed: the certificate's OIDC issuer and subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub issuer: String,
    pub subjects: Vec<String>,
}

impl Signer {
    fn of(leaf: &Cert) -> Signer {
        let issuer = leaf
            .extension(OID_ISSUER_V2)
            .and_then(|v| {
                Utf8StringRef::from_der(v)
                    .ok()
                    .map(|s| s.as_str().to_string())
            })
            .or_else(|| {
                leaf.extension(OID_ISSUER_V1)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
            .unwrap_or_default();
        let mut subjects = Vec::new();
        if let Some(san) = leaf
            .extension(OID_SUBJECT_ALT_NAME)
            .and_then(|v| SubjectAltName::from_der(v).ok())
        {
            for name in san.0 {
                match name {
                    GeneralName::Rfc822Name(s) => subjects.push(s.to_string()),
                    GeneralName::UniformResourceIdentifier(s) => subjects.push(s.to_string()),
                    GeneralName::OtherName(other) => {
                        if let Ok(s) = other.value.decode_as::<String>() {
                            subjects.push(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        Signer { issuer, subjects }
    }
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subjects = if self.subjects.is_empty() {
            "no email or URI subject".to_string()
        } else {
            self.subjects.join(", ")
        };
        let issuer = if self.issuer.is_empty() {
            "no OIDC issuer"
        } else {
            &self.issuer
        };
        write!(f, "{subjects} (issuer {issuer})")
    }
}

/// An exact value or a regular expression (unanchored, as cosign's `-regexp` flags).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Pattern(regex::Regex),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Pattern(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s}"),
            Matcher::Pattern(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// A signer the trust policy accepts: its OIDC issuer and certificate subject.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: Matcher,
    pub subject: Matcher,
}

impl Identity {
    /// From an exact value or a pattern for each of issuer and subject (exactly one of each).
    pub fn new(
        issuer: Option<&str>,
        issuer_regexp: Option<&str>,
        subject: Option<&str>,
        subject_regexp: Option<&str>,
    ) -> Result<Identity, String> {
        let matcher = |exact: Option<&str>, pattern: Option<&str>, what: &str| {
            match (
            exact, pattern,
        ) {
            (Some(e), None) => Ok(Matcher::Exact(e.to_string())),
            (None, Some(p)) => regex::Regex::new(p)
                .map(Matcher::Pattern)
                .map_err(|e| format!("{what} pattern `{p}`: {e}")),
            (Some(_), Some(_)) => Err(format!(
                "give the {what} exactly or as a pattern, not both"
            )),
            (None, None) => Err(format!(
                "the {what} is missing; keyless identities name both the OIDC issuer and the certificate subject"
            )),
        }
        };
        Ok(Identity {
            issuer: matcher(issuer, issuer_regexp, "issuer")?,
            subject: matcher(subject, subject_regexp, "subject")?,
        })
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (issuer {})", self.subject, self.issuer)
    }
}

/// "a (issuer b) or c (issuer d)".
pub fn describe(identities: &[Identity]) -> String {
    identities
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_headers_and_hex() {
        assert_eq!(der_header(&[0x30, 0x05]), Some((2, 5)));
        assert_eq!(der_header(&[0x30, 0x82, 0x01, 0x00]), Some((4, 256)));
        assert_eq!(der_header(&[0x30, 0x80]), None);
        assert_eq!(der_header(&[0x30]), None);
        assert_eq!(
            tbs_slice(&[0x30, 0x04, 0x30, 0x02, 0xaa, 0xbb]),
            Some(&[0x30, 0x02, 0xaa, 0xbb][..])
        );
        assert_eq!(tbs_slice(&[0x30, 0x04, 0x30, 0x09]), None);
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex(&[1, 171]), "01ab");
    }

    #[test]
    fn canonical_entry_sorts_keys() {
        let entry = LogEntry {
            body: "Ym9keQ==".into(),
            integrated_time: 1700000000,
            log_index: 7,
            log_id: "ab".into(),
            signed_entry_timestamp: String::new(),
        };
        assert_eq!(
            entry.canonical(),
            r#"{"body":"Ym9keQ==","integratedTime":1700000000,"logID":"ab","logIndex":7}"#
        );
    }

    #[test]
    fn sct_lists_parse_and_reject_truncation() {
        let mut sct = vec![0u8];
        sct.extend_from_slice(&[7u8; 32]);
        sct.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
        sct.extend_from_slice(&[0, 0, 4, 3, 0, 2, 0xde, 0xad]);
        let mut list = (u16::try_from(sct.len()).unwrap()).to_be_bytes().to_vec();
        list.extend_from_slice(&sct);
        let mut bytes = (u16::try_from(list.len()).unwrap()).to_be_bytes().to_vec();
        bytes.extend_from_slice(&list);
        let parsed = parse_sct_list(&bytes).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].log_id, vec![7u8; 32]);
        assert_eq!(parsed[0].timestamp_ms, 1_700_000_000_000);
        assert_eq!(
            (parsed[0].hash, parsed[0].signature.clone()),
            (4, vec![0xde, 0xad])
        );
        assert!(parse_sct_list(&bytes[..bytes.len() - 1]).is_none());
        let data = parsed[0].signed_data(&[1u8; 32], &[9, 9]);
        assert_eq!(data.len(), 2 + 8 + 2 + 32 + 3 + 2 + 2);
    }

    #[test]
    fn identities_need_issuer_and_subject() {
        let i = Identity::new(
            Some("https://issuer"),
            None,
            None,
            Some("^https://github.com/acme/"),
        )
        .unwrap();
        assert!(i.issuer.matches("https://issuer"));
        assert!(!i.issuer.matches("https://issuer/"));
        assert!(i
            .subject
            .matches("https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"));
        assert!(!i.subject.matches("https://github.com/evil/acme/"));
        assert_eq!(
            i.to_string(),
            "/^https://github.com/acme// (issuer https://issuer)"
        );
        assert!(Identity::new(None, None, Some("a"), None)
            .unwrap_err()
            .contains("issuer is missing"));
        assert!(Identity::new(Some("a"), Some("b"), Some("a"), None)
            .unwrap_err()
            .contains("not both"));
        assert!(Identity::new(Some("a"), None, None, Some("("))
            .unwrap_err()
            .contains("subject pattern"));
    }

    #[test]
    fn bad_trusted_roots_are_explained() {
        let check = |text: &str, wanted: &str| {
            let e = TrustedRoot::parse("root.json", text).unwrap_err();
            assert!(e.contains(wanted), "{e}");
            assert!(e.starts_with("root.json: "), "{e}");
        };
        check("42", "not a Sigstore trusted root");
        check(r#"{"mediaType": "text/plain"}"#, "mediaType");
        check("{}", "no certificateAuthorities");
        check(
            r#"{"certificateAuthorities": [{"certChain": {"certificates": []}}]}"#,
            "certChain has no certificate",
        );
        check(
            r#"{"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "!"}]}}]}"#,
            "certificateAuthorities[0].certChain.certificates[0]: not base64",
        );
        check(
            r#"{"certificateAuthorities": [{"certChain": {"certificates": [{"rawBytes": "MAA="}]}}]}"#,
            "not an X.509 certificate",
        );
    }
}
