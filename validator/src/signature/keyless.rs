//! Keyless cosign signatures, checked offline against a Sigstore trusted root.
//!
//! A keyless signature layer carries, besides the signature, the signer's short-lived
//! certificate (`dev.sigstore.cosign/certificate`) and the transparency log entry of the
//! signing (`dev.sigstore.cosign/bundle`); a Sigstore bundle carries the same, and RFC 3161
//! timestamps. It verifies when:
//! - a log entry verifies with a transparency log key of the trusted root (Rekor v1: its signed
//!   entry timestamp, and its inclusion proof when present; Rekor v2: its inclusion proof up to
//!   a checkpoint the log signed) and records this signature, this certificate and this
//!   payload's hash;
//! - every RFC 3161 timestamp verifies with a timestamp authority of the root (Rekor v2 entries
//!   have no time of their own, so they need one);
//! - the certificate chains to a certificate authority of the trusted root, is for code
//!   signing, and it and its issuers were valid when the entry was logged and timestamped;
//! - one of the certificate's embedded signed certificate timestamps verifies with a CT log of
//!   the root (a root without CT logs accepts no certificate unless told to skip the check);
//! - the payload's signature verifies with the certificate's key;
//! - the certificate's OIDC issuer and subject (an email or URI alternative name) match one of
//!   the trust policy's identities.
//!
//! The chain annotation is not used: the trusted root is where issuers come from.

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use super::{timestamp, transparency};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};
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
const OID_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
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
    #[error("timestamp authority: {0}")]
    SignedTime(String),
    #[error("bad signature: the payload's signature does not verify with the key of its certificate (for {0})")]
    Signature(String),
    #[error("wrong identity: the certificate is for {found}; the trust policy wants {wanted}")]
    Identity { found: String, wanted: String },
}

/// A public key of a certificate, log or authority: ECDSA, or Ed25519 (Rekor v2 logs).
#[derive(Debug, Clone)]
enum Key {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(Vec<u8>),
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, Clone, Copy)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(message).to_vec(),
            Hash::Sha384 => Sha384::digest(message).to_vec(),
            Hash::Sha512 => Sha512::digest(message).to_vec(),
        }
    }
}

impl Key {
    /// Reads a DER SubjectPublicKeyInfo.
    fn from_spki(der: &[u8]) -> Result<Key, String> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Key::P256(key));
        }
        if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Key::P384(key));
        }
        if let Some(raw) = der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            if raw.len() == 32 {
                return Ok(Key::Ed25519(raw.to_vec()));
            }
        }
        Err("not an ECDSA P-256, P-384 or Ed25519 public key".into())
    }

    /// Whether `signature` signs `message`: an ASN.1 DER ECDSA signature of `message` hashed
    /// with `hash`, or an Ed25519 signature of `message` itself.
    fn verifies(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        if let Key::Ed25519(raw) = self {
            return ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, raw)
                .verify(message, signature)
                .is_ok();
        }
        let prehash = hash.digest(message);
        match self {
            Key::Ed25519(_) => false,
            Key::P256(key) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| key.verify_prehash(&prehash, &s).is_ok()),
            Key::P384(key) => p384::ecdsa::Signature::from_der(signature)
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

    /// The subject name, or for a certificate without one (Fulcio's leaves), its email or URI
    /// subjects and issuer.
    fn subject(&self) -> String {
        let name = self.cert.tbs_certificate.subject.to_string();
        if !name.is_empty() {
            return name;
        }
        let signer = Signer::of(self);
        if signer.subjects.is_empty() && signer.issuer.is_empty() {
            format!(
                "the certificate with serial number {}",
                hex(self.cert.tbs_certificate.serial_number.as_bytes())
            )
        } else {
            signer.to_string()
        }
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

    fn key(&self) -> Result<Key, String> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())?;
        Key::from_spki(&spki)
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
    let (outer_header, _) = timestamp::header(der)?;
    let inner = der.get(outer_header..)?;
    let (header, len) = timestamp::header(inner)?;
    inner.get(..header + len)
}

/// A Fulcio-like certificate authority: its chain, issuing certificate first.
#[derive(Debug, Clone)]
struct Authority {
    uri: String,
    chain: Vec<Cert>,
    window: Window,
}

/// A transparency or certificate transparency log. Logs whose key is neither ECDSA nor Ed25519
/// (older CT logs have RSA keys) are kept without a key: nothing they signed verifies.
#[derive(Debug, Clone)]
struct Log {
    url: String,
    id: Vec<u8>,
    key: Option<Key>,
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
    timestamp_authorities: Vec<Authority>,
    /// Certificates are accepted without a signed certificate timestamp (cosign's
    /// `--insecure-ignore-sct`); otherwise a root without CT logs accepts no certificate.
    ignore_sct: bool,
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
    #[serde(default)]
    timestamp_authorities: Vec<AuthorityFile>,
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
                    let key = match Key::from_spki(&der) {
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
        let authorities =
            |entries: &[AuthorityFile], field: &str| -> Result<Vec<Authority>, String> {
                let mut authorities = Vec::new();
                for (i, ca) in entries.iter().enumerate() {
                    let at = format!("{name}: {field}[{i}]");
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
                            child.signed_by(parent).map_err(|e| {
                                format!("{at}: the chain does not hold together: {e}")
                            })?;
                        }
                    }
                    authorities.push(Authority {
                        uri: ca.uri.clone(),
                        chain,
                        window: window(ca.valid_for.as_ref()).map_err(|e| format!("{at}: {e}"))?,
                    });
                }
                Ok(authorities)
            };
        let timestamp_authorities =
            authorities(&file.timestamp_authorities, "timestampAuthorities")?;
        let authorities = authorities(&file.certificate_authorities, "certificateAuthorities")?;
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
            timestamp_authorities,
            ignore_sct: false,
        })
    }

    /// Accepts certificates without checking their signed certificate timestamps (cosign's
    /// `--insecure-ignore-sct`): what a root without CT logs needs.
    pub fn insecure_ignore_sct(mut self, ignore: bool) -> TrustedRoot {
        self.set_ignore_sct(ignore);
        self
    }

    /// As [`TrustedRoot::insecure_ignore_sct`], in place.
    pub fn set_ignore_sct(&mut self, ignore: bool) {
        self.ignore_sct = ignore;
    }

    /// Whether the root lists CT logs to check certificates' timestamps against.
    pub fn has_ct_logs(&self) -> bool {
        !self.ct_logs.is_empty()
    }

    /// Whether certificates are accepted without their signed certificate timestamps checked.
    pub fn ignores_sct(&self) -> bool {
        self.ignore_sct
    }

    /// Checks one keyless signature; returns who signed it.
    pub fn verify(&self, identities: &[Identity], signed: &Signed) -> Result<Signer, Rejection> {
        let leaf = match signed.certificate {
            Certificate::Pem(pem) => parse_certificate_pem(pem),
            Certificate::Der(der) => Cert::from_der(der.to_vec()),
        }
        .map_err(Rejection::Certificate)?;
        let stamped = self.check_signed_times(signed)?;
        let logged = self.first_verified_entry(signed, &leaf, &stamped)?;
        // Every time the signature is known to have existed at: the certificate and its
        // issuers must have been valid then.
        let mut authority = None;
        for &t in logged.time.iter().chain(&stamped) {
            authority = Some(self.issuer_of(&leaf, t)?);
            check_leaf(&leaf, t)?;
        }
        let authority = authority.ok_or_else(|| {
            Rejection::Log(
                "the signature has no verified time (no integrated time, no RFC 3161 timestamp)"
                    .into(),
            )
        })?;
        if !self.ignore_sct {
            if self.ct_logs.is_empty() {
                return Err(Rejection::Timestamp(format!(
                    "the trusted root {} lists no CT logs, so the certificate's signed certificate timestamp cannot be checked (to accept certificates without that check, pass --insecure-ignore-sct or set insecureIgnoreSct: true in the trust policy)",
                    self.name
                )));
            }
            self.check_timestamps(&leaf, authority)?;
        }
        let key = leaf
            .key()
            .map_err(|e| Rejection::Certificate(format!("its key: {e}")))?;
        if !key.verifies(logged.hash, signed.message, signed.signature) {
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

    /// The times the RFC 3161 timestamps of the signature vouch for; every timestamp must
    /// verify with a timestamp authority of the root.
    fn check_signed_times(&self, signed: &Signed) -> Result<Vec<i64>, Rejection> {
        let count = signed.timestamps.len();
        signed
            .timestamps
            .iter()
            .enumerate()
            .map(|(i, der)| {
                self.check_signed_time(der, signed.signature).map_err(|e| {
                    Rejection::SignedTime(if count > 1 {
                        format!("RFC 3161 timestamp {}: {e}", i + 1)
                    } else {
                        format!("the RFC 3161 timestamp: {e}")
                    })
                })
            })
            .collect()
    }

    /// The time one RFC 3161 timestamp of `signature` vouches for.
    fn check_signed_time(&self, der: &[u8], signature: &[u8]) -> Result<i64, String> {
        if self.timestamp_authorities.is_empty() {
            return Err(format!(
                "the trusted root {} lists no timestampAuthorities",
                self.name
            ));
        }
        let token = timestamp::parse(der)?;
        if token.imprint.1 != token.imprint.0.hash(signature) {
            return Err("it is a timestamp of another signature".into());
        }
        let hash = match token.signature_digest {
            timestamp::Digest::Sha256 => Hash::Sha256,
            timestamp::Digest::Sha384 => Hash::Sha384,
            timestamp::Digest::Sha512 => Hash::Sha512,
        };
        let trim = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|b| *b == 0).collect() };
        let mut why = String::from("no timestamp authority of the trusted root signed it");
        for tsa in &self.timestamp_authorities {
            let Some(signer) = tsa.chain.first() else {
                continue;
            };
            if let Some(serial) = &token.signer_serial {
                if trim(serial) != trim(signer.cert.tbs_certificate.serial_number.as_bytes()) {
                    continue;
                }
            }
            let verifies = signer
                .key()
                .is_ok_and(|k| k.verifies(hash, &token.signed_attributes, &token.signature));
            if !verifies {
                why = format!(
                    "its signature does not verify with the key of {} ({})",
                    signer.subject(),
                    tsa.uri
                );
                continue;
            }
            if !tsa.window.contains(token.time) {
                why = format!(
                    "it was made at {}, when the timestamp authority {} was not trusted",
                    rfc3339(token.time),
                    tsa.uri
                );
                continue;
            }
            if let Some(c) = tsa
                .chain
                .iter()
                .find(|c| !c.validity().contains(token.time))
            {
                why = format!(
                    "it was made at {}, outside the validity of `{}`",
                    rfc3339(token.time),
                    c.subject()
                );
                continue;
            }
            let time_stamping = signer
                .extension(OID_EXTENDED_KEY_USAGE)
                .and_then(|v| ExtendedKeyUsage::from_der(v).ok())
                .is_some_and(|eku| eku.0.contains(&OID_TIME_STAMPING));
            if !time_stamping {
                why = format!(
                    "`{}` is not for time stamping (no timeStamping extended key usage)",
                    signer.subject()
                );
                continue;
            }
            return Ok(token.time);
        }
        Err(why)
    }

    /// The first log entry of the signature that verifies.
    fn first_verified_entry(
        &self,
        signed: &Signed,
        leaf: &Cert,
        stamped: &[i64],
    ) -> Result<Logged, Rejection> {
        let mut first_error = None;
        for entry in &signed.entries {
            match self.check_log_entry(entry, signed, leaf, stamped) {
                Ok(logged) => return Ok(logged),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(Rejection::Log(match first_error {
            None => format!(
                "the signature has no log entry ({BUNDLE_ANNOTATION}, or tlogEntries of a Sigstore bundle); keyless signatures must be logged"
            ),
            Some(e) if signed.entries.len() == 1 => e,
            Some(e) => format!(
                "none of the {} log entries verifies; the first: {e}",
                signed.entries.len()
            ),
        }))
    }

    /// Verifies one log entry: the log's promise (Rekor v1's signed entry timestamp) or its
    /// inclusion proof up to a checkpoint signed by the log (Rekor v2, and v1 when present),
    /// and that it records this signature. `stamped`: the verified RFC 3161 times.
    fn check_log_entry(
        &self,
        entry: &LogEntry,
        signed: &Signed,
        leaf: &Cert,
        stamped: &[i64],
    ) -> Result<Logged, String> {
        let v2 = entry.signed_entry_timestamp.is_none();
        let context = |m: String| {
            if v2 {
                format!("Rekor v2 entry {}: {m}", entry.log_index)
            } else {
                m
            }
        };
        let id = hex_decode(&entry.log_id)
            .ok_or_else(|| context(format!("logID `{}` is not hex", entry.log_id)))?;
        let log = self.logs.iter().find(|l| l.id == id).ok_or_else(|| {
            context(format!(
                "the entry is in log {}, which is not a log of the trusted root {}",
                entry.log_id, self.name
            ))
        })?;
        let mut time = None;
        if let Some(set) = &entry.signed_entry_timestamp {
            let integrated = entry
                .integrated_time
                .ok_or("a signed entry timestamp without the entry's integratedTime")?;
            let set = base64_decode(set).map_err(|e| format!("SignedEntryTimestamp: {e}"))?;
            if !log.verifies(Hash::Sha256, entry.canonical().as_bytes(), &set) {
                return Err(format!(
                    "the signed entry timestamp does not verify with the key of {}",
                    log.url
                ));
            }
            if !log.window.contains(integrated) {
                return Err(format!(
                    "the entry was logged at {}, outside the validity of the key of {}",
                    rfc3339(integrated),
                    log.url
                ));
            }
            time = Some(integrated);
        }
        match &entry.inclusion_proof {
            Some(proof) => check_inclusion(entry, proof, log).map_err(context)?,
            None if v2 => {
                return Err(context(
                    "it has neither a signed entry timestamp (Rekor v1) nor an inclusion proof"
                        .into(),
                ))
            }
            None => {}
        }
        if v2 {
            if stamped.is_empty() {
                return Err(context(format!(
                    "Rekor v2 entries carry no time of their own; the bundle needs an RFC 3161 timestamp (timestampVerificationData) by a timestamp authority of the trusted root {}, and has none",
                    self.name
                )));
            }
            if let Some(t) = stamped.iter().find(|t| !log.window.contains(**t)) {
                return Err(context(format!(
                    "the signature was timestamped at {}, outside the validity of the key of {}",
                    rfc3339(*t),
                    log.url
                )));
            }
        }
        let hash = entry.check_body(signed, leaf).map_err(context)?;
        Ok(Logged { time, hash })
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

/// What a verified log entry establishes.
struct Logged {
    /// When the log integrated it (Rekor v1); Rekor v2 entries have no time.
    time: Option<i64>,
    /// The hash the signature was made over, as the entry records it.
    hash: Hash,
}

/// The entry's inclusion proof leads to the root hash of a checkpoint that `log` signed.
fn check_inclusion(entry: &LogEntry, proof: &InclusionProof, log: &Log) -> Result<(), String> {
    let body = base64_decode(&entry.body).map_err(|e| format!("entry body: {e}"))?;
    let root = transparency::root_from_proof(
        proof.log_index,
        proof.tree_size,
        transparency::leaf_hash(&body),
        &proof.hashes,
    )
    .ok_or_else(|| {
        format!(
            "the inclusion proof ({} hashes) does not fit entry {} of a tree of {}",
            proof.hashes.len(),
            proof.log_index,
            proof.tree_size
        )
    })?;
    if root.as_slice() != proof.root_hash.as_slice() {
        return Err(format!(
            "the inclusion proof does not lead to its root hash (it leads to {})",
            hex(&root)
        ));
    }
    let checkpoint = transparency::Checkpoint::parse(&proof.checkpoint)?;
    if checkpoint.size != proof.tree_size || checkpoint.root_hash != root.as_slice() {
        return Err(format!(
            "the checkpoint is for another tree (size {}, not the proof's {}, or another root hash)",
            checkpoint.size, proof.tree_size
        ));
    }
    let hint = log.id.get(..4);
    let verified = checkpoint
        .signatures
        .iter()
        .any(|(_, key_hint, signature)| {
            Some(&key_hint[..]) == hint
                && log.verifies(Hash::Sha256, checkpoint.text.as_bytes(), signature)
        });
    if !verified {
        return Err(format!(
            "the checkpoint of {} has no signature that verifies with the key of {}",
            checkpoint.origin, log.url
        ));
    }
    Ok(())
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

/// A transparency log entry with the log's promise of inclusion (Rekor v1's signed entry
/// timestamp) or a proof of it (Rekor v2: an inclusion proof up to a signed checkpoint), or
/// both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The canonicalized entry body, base64.
    pub body: String,
    /// When the log integrated the entry (Rekor v1; Rekor v2 records no time).
    pub integrated_time: Option<i64>,
    pub log_index: i64,
    /// The log's ID, hex.
    pub log_id: String,
    /// The signed entry timestamp, base64 (Rekor v1).
    pub signed_entry_timestamp: Option<String>,
    pub inclusion_proof: Option<InclusionProof>,
}

/// An RFC 6962 audit path from an entry to a tree's root, and the checkpoint naming that root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's index in the tree the proof is for.
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    /// The signed note (checkpoint) of the tree.
    pub checkpoint: String,
}

/// A number of a Sigstore bundle (a string there, or a JSON number); `None` when absent.
fn json_number(v: &Value, field: &str) -> Result<Option<i64>, String> {
    match v.get(field) {
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| format!("{field}: {e}")),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{field}: not an integer")),
        _ => Ok(None),
    }
}

impl InclusionProof {
    fn from_bundle(proof: &Value) -> Result<InclusionProof, String> {
        let count = |field: &str| -> Result<u64, String> {
            json_number(proof, field)?
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| format!("inclusionProof without a {field}"))
        };
        let hashes = proof
            .get("hashes")
            .and_then(Value::as_array)
            .map(|hashes| {
                hashes
                    .iter()
                    .map(|h| {
                        h.as_str()
                            .ok_or_else(|| "inclusionProof.hashes holds a non-string".to_string())
                            .and_then(|h| {
                                base64_decode(h).map_err(|e| format!("inclusionProof.hashes: {e}"))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(InclusionProof {
            log_index: count("logIndex")?,
            tree_size: count("treeSize")?,
            root_hash: base64_decode(
                proof
                    .get("rootHash")
                    .and_then(Value::as_str)
                    .ok_or("inclusionProof without a rootHash")?,
            )
            .map_err(|e| format!("inclusionProof.rootHash: {e}"))?,
            hashes,
            checkpoint: proof
                .get("checkpoint")
                .and_then(|c| c.get("envelope"))
                .and_then(Value::as_str)
                .ok_or("inclusionProof without a checkpoint")?
                .to_string(),
        })
    }
}

impl LogEntry {
    /// From cosign's `dev.sigstore.cosign/bundle` annotation.
    pub fn from_cosign_bundle(text: &str) -> Result<LogEntry, Rejection> {
        let bundle: CosignBundle = serde_json::from_str(text)
            .map_err(|e| Rejection::Log(format!("{BUNDLE_ANNOTATION} is not a bundle: {e}")))?;
        Ok(LogEntry {
            body: bundle.payload.body,
            integrated_time: Some(bundle.payload.integrated_time),
            log_index: bundle.payload.log_index,
            log_id: bundle.payload.log_id,
            signed_entry_timestamp: Some(bundle.signed_entry_timestamp),
            inclusion_proof: None,
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
        let log_id = text(&["logId", "keyId"]).ok_or("tlog entry without logId.keyId")?;
        let signed_entry_timestamp =
            text(&["inclusionPromise", "signedEntryTimestamp"]).map(str::to_string);
        let inclusion_proof = match entry.get("inclusionProof") {
            Some(proof) => Some(InclusionProof::from_bundle(proof)?),
            None => None,
        };
        if signed_entry_timestamp.is_none() && inclusion_proof.is_none() {
            return Err("tlog entry with neither an inclusionPromise (Rekor v1) nor an inclusionProof (Rekor v2)".into());
        }
        // Rekor v2 leaves integratedTime out (or 0): it records no time.
        let integrated_time = json_number(entry, "integratedTime")?.filter(|t| *t != 0);
        if signed_entry_timestamp.is_some() && integrated_time.is_none() {
            return Err("tlog entry with an inclusionPromise but without integratedTime".into());
        }
        Ok(LogEntry {
            body: text(&["canonicalizedBody"])
                .ok_or("tlog entry without canonicalizedBody")?
                .to_string(),
            integrated_time,
            log_index: json_number(entry, "logIndex")?.ok_or("tlog entry without logIndex")?,
            log_id: hex(&base64_decode(log_id).map_err(|e| format!("logId.keyId: {e}"))?),
            signed_entry_timestamp,
            inclusion_proof,
        })
    }

    /// The bytes the log signed: the entry as canonical JSON (RFC 8785: sorted keys, no spaces).
    fn canonical(&self) -> String {
        let text = |s: &str| Value::String(s.to_string()).to_string();
        format!(
            r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
            text(&self.body),
            self.integrated_time.unwrap_or_default(),
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
        // Rekor v2 (0.0.2) bodies: hashes and keys as base64, algorithms by name.
        let v2_hash = |digest: &Value| -> Result<(Hash, Vec<u8>), String> {
            let hash = match digest
                .get("algorithm")
                .and_then(Value::as_str)
                .unwrap_or("")
            {
                "SHA2_256" => Hash::Sha256,
                "SHA2_384" => Hash::Sha384,
                "SHA2_512" => Hash::Sha512,
                other => {
                    return Err(format!(
                        "the entry's hash algorithm `{other}` is not supported"
                    ))
                }
            };
            let value = digest
                .get("digest")
                .and_then(Value::as_str)
                .map(base64_decode)
                .transpose()?
                .unwrap_or_default();
            Ok((hash, value))
        };
        let v2_signer = |s: &Value| -> (bool, bool) {
            let text = |path: &[&str]| {
                path.iter()
                    .try_fold(s, |v, k| v.get(*k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            (
                same_signature(text(&["content"])),
                same_certificate(text(&["verifier", "x509Certificate", "rawBytes"])),
            )
        };
        let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
        let version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        match (kind, version) {
            ("hashedrekord", "0.0.2") => {
                let spec = &body["spec"]["hashedRekordV002"];
                let (hash, value) = v2_hash(&spec["data"])?;
                // The digest of what was signed: the payload, or a DSSE envelope's PAE.
                if value != hash.digest(signed.message) {
                    return Err("the entry records the hash of another payload".into());
                }
                match v2_signer(&spec["signature"]) {
                    (false, _) => Err("the entry records another signature".into()),
                    (true, false) => Err("the entry records another certificate".into()),
                    (true, true) => Ok(hash),
                }
            }
            ("dsse", "0.0.2") => {
                let spec = &body["spec"]["dsseV002"];
                let (hash, value) = v2_hash(&spec["payloadHash"])?;
                if value != hash.digest(signed.payload) {
                    return Err("the entry records the hash of another payload".into());
                }
                let signers: Vec<(bool, bool)> = spec["signatures"]
                    .as_array()
                    .map(|s| s.iter().map(v2_signer).collect())
                    .unwrap_or_default();
                if !signers.iter().any(|(signature, _)| *signature) {
                    return Err("the entry records another signature".into());
                }
                if !signers.iter().any(|(_, certificate)| *certificate) {
                    return Err("the entry records another certificate".into());
                }
                Ok(match leaf.key() {
                    Ok(Key::P384(_)) => Hash::Sha384,
                    _ => Hash::Sha256,
                })
            }
            (_, "0.0.2") => Err(format!(
                "the entry is of kind `{kind}` {version}; only hashedrekord and dsse entries are supported"
            )),
            // Older keyless signatures: the payload's hash, its signature and the certificate.
            ("rekord", _) => {
                if field(&["signature", "format"]) != "x509" {
                    return Err(format!(
                        "the rekord entry's signature format is `{}`, not x509",
                        field(&["signature", "format"])
                    ));
                }
                let hash = hash_of(field(&["data", "hash", "algorithm"]))?;
                let recorded_hash = field(&["data", "hash", "value"]);
                let recorded_content = field(&["data", "content"]);
                let same_payload = if recorded_hash.is_empty() {
                    base64_decode(recorded_content).ok().as_deref() == Some(signed.payload)
                } else {
                    recorded_hash == hex(&hash.digest(signed.payload))
                };
                if !same_payload {
                    return Err("the entry records the hash of another payload".into());
                }
                if !same_signature(field(&["signature", "content"])) {
                    return Err("the entry records another signature".into());
                }
                if !same_certificate(field(&["signature", "publicKey", "content"])) {
                    return Err("the entry records another certificate".into());
                }
                Ok(match leaf.key() {
                    Ok(Key::P384(_)) => Hash::Sha384,
                    _ => Hash::Sha256,
                })
            }
            ("hashedrekord", _) => {
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
            ("dsse", _) => {
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
                    Ok(Key::P384(_)) => Hash::Sha384,
                    _ => Hash::Sha256,
                })
            }
            _ => Err(format!(
                "the entry is of kind `{kind}`; only hashedrekord, dsse and rekord entries are supported (re-sign the image with a current cosign)"
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
    /// The transparency log entries the signature carries; the first that verifies counts.
    pub entries: Vec<LogEntry>,
    /// RFC 3161 timestamps of the signature (DER `TimeStampResp`s), from a Sigstore bundle's
    /// `timestampVerificationData`.
    pub timestamps: Vec<Vec<u8>>,
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
        assert_eq!(timestamp::header(&[0x30, 0x05]), Some((2, 5)));
        assert_eq!(timestamp::header(&[0x30, 0x82, 0x01, 0x00]), Some((4, 256)));
        assert_eq!(timestamp::header(&[0x30, 0x80]), None);
        assert_eq!(timestamp::header(&[0x30]), None);
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
            integrated_time: Some(1700000000),
            log_index: 7,
            log_id: "ab".into(),
            signed_entry_timestamp: Some(String::new()),
            inclusion_proof: None,
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
