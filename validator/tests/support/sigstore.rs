//! A private Sigstore for tests: a certificate authority (P-384 root and intermediate, as
//! Fulcio's), a Rekor v1 transparency log key (ECDSA), a Rekor v2 log key (Ed25519), a CT log
//! key, a timestamp authority, the `trusted_root.json` naming them, and keyless cosign
//! signatures made the way `cosign sign` makes them: an ephemeral P-256 key, a short-lived
//! certificate for an OIDC identity with an embedded signed certificate timestamp, and a log
//! entry — Rekor v1: with its signed entry timestamp; Rekor v2: with an RFC 6962 inclusion
//! proof up to a signed checkpoint, and an RFC 3161 timestamp of the signature.

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
    SerialNumber, SigningKey as _,
};
use serde_json::{json, Value};
use sha2::Digest;
use x509_cert::der::{Decode, Encode};

const ISSUER_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 57264, 1, 8];
const SCT_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).expect("time")
}

/// A DER element with a short or long length.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).expect("len"));
    } else {
        let bytes = u32::try_from(len).expect("len").to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | u8::try_from(4 - skip).expect("len"));
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn ca_params(name: &str, not_before: i64, not_after: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "sigstore.test");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(not_before);
    params.not_after = at(not_after);
    params
}

/// How a keyless signature is made; the defaults make a good one.
pub struct Options {
    /// Certificate subject: an email or a URI (`https://...`).
    pub subject: String,
    pub issuer: String,
    /// When the certificate starts (it lasts ten minutes, as Fulcio's).
    pub issued_at: i64,
    /// When the log entry says it was logged.
    pub logged_at: i64,
    /// Embed a signed certificate timestamp.
    pub sct: bool,
    /// Attach the transparency log bundle.
    pub bundle: bool,
    /// Sign the entry with a key that is not the log's.
    pub forge_entry_timestamp: bool,
    /// Record another payload hash in the log entry.
    pub entry_for_other_payload: bool,
    /// Sign the certificate timestamp with a key that is not the CT log's.
    pub forge_sct: bool,
    /// Leave the code signing extended key usage out.
    pub no_code_signing: bool,
    /// Log the signature as legacy `rekord` instead of `hashedrekord` (layer signatures).
    pub rekord: bool,
    /// Log the bundle signature in the Rekor v2 log (inclusion proof and checkpoint, no signed
    /// entry timestamp) and timestamp it with the timestamp authority.
    pub rekor_v2: bool,
    /// Attach an RFC 3161 timestamp of the signature (Rekor v2 bundles do by default).
    pub rfc3161: bool,
    /// Sign the RFC 3161 timestamp with a key that is not the timestamp authority's.
    pub forge_rfc3161: bool,
    /// Change a hash of the inclusion proof.
    pub tamper_proof: bool,
    /// Change the checkpoint's root hash after it was signed.
    pub tamper_checkpoint: bool,
    /// Sign the checkpoint with a key that is not the log's.
    pub forge_checkpoint: bool,
    /// Put an entry of a log the trusted root does not list before the real one.
    pub foreign_entry_first: bool,
    /// Log the Rekor v2 entry as `dsse 0.0.2` (the statement's hash) instead of `hashedrekord`.
    pub v2_dsse: bool,
}

impl Options {
    pub fn new(subject: &str, issuer: &str, now: i64) -> Options {
        Options {
            subject: subject.into(),
            issuer: issuer.into(),
            issued_at: now - 60,
            logged_at: now,
            sct: true,
            bundle: true,
            forge_entry_timestamp: false,
            entry_for_other_payload: false,
            forge_sct: false,
            no_code_signing: false,
            rekord: false,
            rekor_v2: false,
            rfc3161: false,
            forge_rfc3161: false,
            tamper_proof: false,
            tamper_checkpoint: false,
            forge_checkpoint: false,
            foreign_entry_first: false,
            v2_dsse: false,
        }
    }

    /// A Rekor v2 signature: inclusion proof, checkpoint and RFC 3161 timestamp.
    pub fn rekor_v2(subject: &str, issuer: &str, now: i64) -> Options {
        Options {
            rekor_v2: true,
            rfc3161: true,
            ..Options::new(subject, issuer, now)
        }
    }
}

/// The annotations of one keyless signature layer.
pub struct KeylessSignature {
    pub signature: String,
    pub certificate: String,
    pub bundle: Option<String>,
}

impl KeylessSignature {
    pub fn annotations(&self) -> Vec<(&'static str, String)> {
        let mut a = vec![
            ("dev.cosignproject.cosign/signature", self.signature.clone()),
            ("dev.sigstore.cosign/certificate", self.certificate.clone()),
        ];
        if let Some(bundle) = &self.bundle {
            a.push(("dev.sigstore.cosign/bundle", bundle.clone()));
        }
        a
    }
}

pub struct Sigstore {
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    intermediate: Issuer<'static, KeyPair>,
    log_key: KeyPair,
    /// The Rekor v2 log's Ed25519 key.
    v2_log_key: KeyPair,
    ct_key: KeyPair,
    tsa_key: KeyPair,
    tsa_der: Vec<u8>,
    tsa_root_der: Vec<u8>,
    /// Start of the authority's validity, Unix seconds.
    pub valid_from: i64,
    serial: std::sync::atomic::AtomicU64,
}

fn p256() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("p256 key")
}

impl Sigstore {
    /// A new authority valid for the year around `now`.
    pub fn new(now: i64) -> Sigstore {
        let (valid_from, valid_to) = (now - 180 * 86400, now + 180 * 86400);
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("root key");
        let root_params = ca_params("sigstore-test", valid_from, valid_to);
        let root_der = root_params
            .self_signed(&root_key)
            .expect("root")
            .der()
            .to_vec();
        let root = Issuer::new(root_params, root_key);
        let intermediate_key =
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("intermediate key");
        let intermediate_params = ca_params("sigstore-test-intermediate", valid_from, valid_to);
        let intermediate_der = intermediate_params
            .signed_by(&intermediate_key, &root)
            .expect("intermediate")
            .der()
            .to_vec();
        // The timestamp authority: a root and a leaf for time stamping.
        let tsa_root_key = p256();
        let tsa_root_params = ca_params("sigstore-test-tsa-root", valid_from, valid_to);
        let tsa_root_der = tsa_root_params
            .self_signed(&tsa_root_key)
            .expect("tsa root")
            .der()
            .to_vec();
        let tsa_root = Issuer::new(tsa_root_params, tsa_root_key);
        let tsa_key = p256();
        let mut tsa_params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "sigstore.test");
        dn.push(DnType::CommonName, "sigstore-test-tsa");
        tsa_params.distinguished_name = dn;
        tsa_params.serial_number = Some(SerialNumber::from(4242u64));
        tsa_params.not_before = at(valid_from);
        tsa_params.not_after = at(valid_to);
        tsa_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        tsa_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let tsa_der = tsa_params
            .signed_by(&tsa_key, &tsa_root)
            .expect("tsa")
            .der()
            .to_vec();
        Sigstore {
            root_der,
            intermediate_der,
            intermediate: Issuer::new(intermediate_params, intermediate_key),
            log_key: p256(),
            v2_log_key: KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key"),
            ct_key: p256(),
            tsa_key,
            tsa_der,
            tsa_root_der,
            valid_from,
            serial: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// The log ID of the transparency log (SHA-256 of its key).
    fn log_id(key: &KeyPair) -> Vec<u8> {
        sha2::Sha256::digest(key.subject_public_key_info()).to_vec()
    }

    /// The Rekor v2 log's ID: SHA-256 of its origin, a newline, the key type and the key.
    fn v2_log_id(&self) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update(V2_ORIGIN.as_bytes());
        h.update(b"\n\x01");
        h.update(self.v2_log_key.der_bytes());
        h.finalize().to_vec()
    }

    /// `trusted_root.json` for this authority and its logs; `with_ct` lists the CT log.
    pub fn trusted_root(&self, with_ct: bool) -> String {
        let log = |key: &KeyPair, url: &str| {
            json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(&key.subject_public_key_info()),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                },
                "logId": {"keyId": b64(&Self::log_id(key))},
            })
        };
        let start = jiff::Timestamp::from_second(self.valid_from).expect("time");
        let v2_log = json!({
            "baseUrl": format!("https://{V2_ORIGIN}"),
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": b64(&self.v2_log_key.subject_public_key_info()),
                "keyDetails": "PKIX_ED25519",
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            },
            "logId": {"keyId": b64(&self.v2_log_id())},
        });
        let mut root = json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(&self.log_key, "https://rekor.sigstore.test"), v2_log],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "sigstore-test"},
                "uri": "https://fulcio.sigstore.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(&self.intermediate_der)},
                    {"rawBytes": b64(&self.root_der)},
                ]},
                "validFor": {"start": start.to_string()},
            }],
            "ctlogs": [],
            "timestampAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "sigstore-test-tsa"},
                "uri": "https://tsa.sigstore.test",
                "certChain": {"certificates": [
                    {"rawBytes": b64(&self.tsa_der)},
                    {"rawBytes": b64(&self.tsa_root_der)},
                ]},
                "validFor": {"start": start.to_string()},
            }],
        });
        if with_ct {
            root["ctlogs"] = json!([log(&self.ct_key, "https://ctfe.sigstore.test")]);
        }
        serde_json::to_string_pretty(&root).expect("json")
    }

    fn leaf_params(&self, o: &Options, serial: u64) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = at(o.issued_at);
        params.not_after = at(o.issued_at + 600);
        let san = o.subject.clone().try_into().expect("ia5");
        params.subject_alt_names = vec![if o.subject.contains("://") {
            SanType::URI(san)
        } else {
            SanType::Rfc822Name(san)
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if !o.no_code_signing {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        }
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            ISSUER_OID,
            der(0x0c, o.issuer.as_bytes()),
        )];
        params
    }

    /// An embedded SCT list (the extension's content) for the precertificate `tbs`.
    fn sct_list(&self, tbs: &[u8], timestamp_ms: i64, forge: bool) -> Vec<u8> {
        let issuer_spki = x509_cert::Certificate::from_der(&self.intermediate_der)
            .expect("intermediate")
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .expect("spki");
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&sha2::Sha256::digest(&issuer_spki));
        signed.extend_from_slice(&u32::try_from(tbs.len()).expect("len").to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&[0, 0]);
        let key = if forge {
            p256()
        } else {
            self.ct_key.clone_key()
        };
        let signature = key.sign(&signed).expect("sign sct");
        let mut sct = vec![0u8];
        sct.extend_from_slice(&Self::log_id(&self.ct_key));
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&[0, 0, 4, 3]);
        sct.extend_from_slice(&u16::try_from(signature.len()).expect("len").to_be_bytes());
        sct.extend_from_slice(&signature);
        let mut list = u16::try_from(sct.len() + 2)
            .expect("len")
            .to_be_bytes()
            .to_vec();
        list.extend_from_slice(&u16::try_from(sct.len()).expect("len").to_be_bytes());
        list.extend_from_slice(&sct);
        der(0x04, &list)
    }

    /// A certificate for `o`'s identity and an ephemeral key; returns (PEM, key).
    pub fn certificate(&self, o: &Options) -> (String, KeyPair) {
        let key = p256();
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut params = self.leaf_params(o, serial);
        if o.sct {
            let precert = params
                .signed_by(&key, &self.intermediate)
                .expect("precertificate");
            let tbs = x509_cert::Certificate::from_der(precert.der())
                .expect("parse precertificate")
                .tbs_certificate
                .to_der()
                .expect("tbs");
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    SCT_OID,
                    self.sct_list(&tbs, o.issued_at * 1000, o.forge_sct),
                ));
        }
        let cert = params.signed_by(&key, &self.intermediate).expect("leaf");
        (cert.pem(), key)
    }

    /// The log's signed entry timestamp of an entry (`body` base64) at `index`, logged when `o`
    /// says; by another key when `o.forge_entry_timestamp`.
    fn entry_timestamp(&self, body: &str, index: i64, o: &Options) -> Vec<u8> {
        let canonical = format!(
            r#"{{"body":"{body}","integratedTime":{},"logID":"{}","logIndex":{index}}}"#,
            o.logged_at,
            hex(&Self::log_id(&self.log_key))
        );
        let key = if o.forge_entry_timestamp {
            p256()
        } else {
            self.log_key.clone_key()
        };
        key.sign(canonical.as_bytes()).expect("sign entry")
    }

    /// Signs `statement` keyless in a Sigstore bundle (DSSE, a `dsse` log entry), as cosign 3
    /// signs an image.
    pub fn sign_bundle(&self, statement: &[u8], o: &Options) -> String {
        let (certificate, key) = self.certificate(o);
        let signature = key.sign(&pae(IN_TOTO, statement)).expect("sign envelope");
        let certificate_der = pem_to_der(&certificate);
        if o.rekor_v2 {
            let mut entries = Vec::new();
            if o.foreign_entry_first {
                entries.push(self.v2_entry(statement, &signature, &certificate_der, o, &p256()));
            }
            entries.push(self.v2_entry(
                statement,
                &signature,
                &certificate_der,
                o,
                &self.v2_log_key,
            ));
            let mut material =
                json!({"certificate": {"rawBytes": b64(&certificate_der)}, "tlogEntries": entries});
            if o.rfc3161 {
                material["timestampVerificationData"] = json!({"rfc3161Timestamps": [
                    {"signedTimestamp": b64(&self.rfc3161(&signature, o.logged_at, o.forge_rfc3161))}
                ]});
            }
            return dsse_bundle(statement, &signature, material);
        }
        let hashed = if o.entry_for_other_payload {
            sha2::Sha256::digest(b"another statement")
        } else {
            sha2::Sha256::digest(statement)
        };
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": hex(&sha2::Sha256::digest(b"envelope"))},
                "payloadHash": {"algorithm": "sha256", "value": hex(&hashed)},
                "signatures": [{"signature": b64(&signature), "verifier": b64(certificate.as_bytes())}],
            },
        });
        let body = b64(&serde_json::to_vec(&body).expect("body"));
        let log_id = Self::log_id(&self.log_key);
        let set = self.entry_timestamp(&body, 7, o);
        let mut entries = if o.bundle {
            json!([{
                "logIndex": "7",
                "logId": {"keyId": b64(&log_id)},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": o.logged_at.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": b64(&set)},
                "canonicalizedBody": body,
            }])
        } else {
            json!([])
        };
        if o.foreign_entry_first {
            let foreign = self.v2_entry(statement, &signature, &certificate_der, o, &p256());
            entries.as_array_mut().expect("entries").insert(0, foreign);
        }
        let mut material =
            json!({"certificate": {"rawBytes": b64(&certificate_der)}, "tlogEntries": entries});
        if o.rfc3161 {
            material["timestampVerificationData"] = json!({"rfc3161Timestamps": [
                {"signedTimestamp": b64(&self.rfc3161(&signature, o.logged_at, o.forge_rfc3161))}
            ]});
        }
        dsse_bundle(statement, &signature, material)
    }

    /// A Rekor v2 `hashedrekord 0.0.2` entry of a DSSE signature (the digest of its PAE), at
    /// index 5 of a tree of 11, with its inclusion proof and the checkpoint of that tree signed
    /// by `log_key` (the v2 log's key, or another to make a foreign entry).
    fn v2_entry(
        &self,
        statement: &[u8],
        signature: &[u8],
        certificate_der: &[u8],
        o: &Options,
        log_key: &KeyPair,
    ) -> Value {
        let signed = if o.entry_for_other_payload {
            pae(IN_TOTO, b"another statement")
        } else {
            pae(IN_TOTO, statement)
        };
        let verifier = json!({
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
            "x509Certificate": {"rawBytes": b64(certificate_der)},
        });
        let body = if o.v2_dsse {
            let hashed = if o.entry_for_other_payload {
                sha2::Sha256::digest(b"another statement")
            } else {
                sha2::Sha256::digest(statement)
            };
            json!({
                "apiVersion": "0.0.2",
                "kind": "dsse",
                "spec": {"dsseV002": {
                    "payloadHash": {"algorithm": "SHA2_256", "digest": b64(&hashed)},
                    "signatures": [{"content": b64(signature), "verifier": verifier}],
                }},
            })
        } else {
            json!({
                "apiVersion": "0.0.2",
                "kind": "hashedrekord",
                "spec": {"hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": b64(&sha2::Sha256::digest(&signed))},
                    "signature": {"content": b64(signature), "verifier": verifier},
                }},
            })
        };
        let body = serde_json::to_vec(&body).expect("body");
        let (index, size) = (5usize, 11usize);
        let mut leaves: Vec<[u8; 32]> = (0..size)
            .map(|i| merkle_leaf(format!("another entry {i}").as_bytes()))
            .collect();
        leaves[index] = merkle_leaf(&body);
        let root = merkle_root(&leaves);
        let mut hashes = merkle_path(index, &leaves);
        if o.tamper_proof {
            hashes[1][0] ^= 1;
        }
        let foreign = !std::ptr::eq(log_key, &self.v2_log_key);
        let id = if foreign {
            sha2::Sha256::digest(log_key.subject_public_key_info()).to_vec()
        } else {
            self.v2_log_id()
        };
        let text = format!("{V2_ORIGIN}\n{size}\n{}\n", b64(&root));
        let signer = if o.forge_checkpoint {
            KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key")
        } else {
            log_key.clone_key()
        };
        let mut note_signature = id[..4].to_vec();
        note_signature.extend_from_slice(&signer.sign(text.as_bytes()).expect("sign checkpoint"));
        let text = if o.tamper_checkpoint {
            let mut other = root;
            other[0] ^= 1;
            format!("{V2_ORIGIN}\n{size}\n{}\n", b64(&other))
        } else {
            text
        };
        let checkpoint = format!("{text}\n\u{2014} {V2_ORIGIN} {}\n", b64(&note_signature));
        json!({
            "logIndex": "4242",
            "logId": {"keyId": b64(&id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": index.to_string(),
                "rootHash": b64(&root),
                "treeSize": size.to_string(),
                "hashes": hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(&body),
        })
    }

    /// An RFC 3161 TimeStampResp for `signature` at `time`, signed by the timestamp authority
    /// (or, `forge`, by another key).
    pub fn rfc3161(&self, signature: &[u8], time: i64, forge: bool) -> Vec<u8> {
        let oid = |dotted: &str| {
            x509_cert::der::asn1::ObjectIdentifier::new_unwrap(dotted)
                .to_der()
                .expect("oid")
        };
        let sha256 = oid("2.16.840.1.101.3.4.2.1");
        let seq = |parts: &[&[u8]]| der(0x30, &parts.concat());
        let set = |parts: &[&[u8]]| der(0x31, &parts.concat());
        let generalized = jiff::Timestamp::from_second(time)
            .expect("time")
            .strftime("%Y%m%d%H%M%SZ")
            .to_string();
        let tst_info = seq(&[
            &der(0x02, &[1]),
            &oid("1.3.6.1.4.1.57264.2"),
            &seq(&[
                &seq(&[&sha256, &[0x05, 0x00]]),
                &der(0x04, &sha2::Sha256::digest(signature)),
            ]),
            &der(0x02, &[0x11, 0x22]),
            &der(0x18, generalized.as_bytes()),
        ]);
        let tst_oid = oid("1.2.840.113549.1.9.16.1.4");
        let attributes = [
            seq(&[&oid("1.2.840.113549.1.9.3"), &set(&[&tst_oid])]),
            seq(&[
                &oid("1.2.840.113549.1.9.4"),
                &set(&[&der(0x04, &sha2::Sha256::digest(&tst_info))]),
            ]),
        ]
        .concat();
        let key = if forge {
            p256()
        } else {
            self.tsa_key.clone_key()
        };
        let attribute_signature = key.sign(&der(0x31, &attributes)).expect("sign timestamp");
        let tsa = x509_cert::Certificate::from_der(&self.tsa_der).expect("tsa certificate");
        let issuer = tsa.tbs_certificate.issuer.to_der().expect("issuer");
        let serial = tsa.tbs_certificate.serial_number.to_der().expect("serial");
        let signer_info = seq(&[
            &der(0x02, &[1]),
            &seq(&[&issuer, &serial]),
            &seq(&[&sha256]),
            &der(0xa0, &attributes),
            &seq(&[&oid("1.2.840.10045.4.3.2")]),
            &der(0x04, &attribute_signature),
        ]);
        let signed_data = seq(&[
            &der(0x02, &[3]),
            &set(&[&seq(&[&sha256])]),
            &seq(&[&tst_oid, &der(0xa0, &der(0x04, &tst_info))]),
            &set(&[&signer_info]),
        ]);
        let token = seq(&[&oid("1.2.840.113549.1.7.2"), &der(0xa0, &signed_data)]);
        seq(&[&seq(&[&der(0x02, &[0])]), &token])
    }

    /// Signs `payload` keyless, as `o` says.
    pub fn sign(&self, payload: &[u8], o: &Options) -> KeylessSignature {
        let (certificate, key) = self.certificate(o);
        let signature = key.sign(payload).expect("sign payload");
        let hashed = if o.entry_for_other_payload {
            sha2::Sha256::digest(b"another payload")
        } else {
            sha2::Sha256::digest(payload)
        };
        let body = if o.rekord {
            json!({
                "apiVersion": "0.0.1",
                "kind": "rekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex(&hashed)}},
                    "signature": {
                        "format": "x509",
                        "content": b64(&signature),
                        "publicKey": {"content": b64(certificate.as_bytes())},
                    },
                },
            })
        } else {
            json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex(&hashed)}},
                    "signature": {
                        "content": b64(&signature),
                        "publicKey": {"content": b64(certificate.as_bytes())},
                    },
                },
            })
        };
        let body = b64(&serde_json::to_vec(&body).expect("body"));
        let log_id = hex(&Self::log_id(&self.log_key));
        let set = self.entry_timestamp(&body, 42, o);
        let bundle: Value = json!({
            "SignedEntryTimestamp": b64(&set),
            "Payload": {"body": body, "integratedTime": o.logged_at, "logIndex": 42, "logID": log_id},
        });
        KeylessSignature {
            signature: b64(&signature),
            certificate,
            bundle: o.bundle.then(|| bundle.to_string()),
        }
    }
}

/// The bytes a DSSE signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// cosign 3's signed statement for an image digest (`sha256:<hex>`).
pub fn sign_statement(digest: &str, predicate_type: &str, annotations: &[(&str, &str)]) -> Vec<u8> {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let (algorithm, hex) = digest.split_once(':').expect("digest");
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "", "digest": {algorithm: hex}, "annotations": annotations}],
        "predicateType": predicate_type,
        "predicate": {},
    }))
    .expect("statement")
}

const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The Rekor v2 log's origin (checkpoint name) and host.
const V2_ORIGIN: &str = "rekor2.sigstore.test";

fn pem_to_der(pem: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("pem")
}

/// RFC 6962 leaf hash.
fn merkle_leaf(entry: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn merkle_node(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two below `n` (n > 1): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 Merkle tree hash of leaf hashes.
fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    merkle_node(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
}

/// RFC 6962 audit path of leaf `m`, deepest sibling first.
fn merkle_path(m: usize, leaves: &[[u8; 32]]) -> Vec<Vec<u8>> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut path, sibling) = if m < k {
        (merkle_path(m, &leaves[..k]), merkle_root(&leaves[k..]))
    } else {
        (merkle_path(m - k, &leaves[k..]), merkle_root(&leaves[..k]))
    };
    path.push(sibling.to_vec());
    path
}

fn dsse_bundle(statement: &[u8], signature: &[u8], material: Value) -> String {
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": b64(statement),
            "payloadType": IN_TOTO,
            "signatures": [{"sig": b64(signature), "keyid": ""}],
        },
    })
    .to_string()
}

/// A Sigstore bundle signing `statement` with a key (the key-based form: a key hint, no log
/// entry).
pub fn key_bundle(statement: &[u8], key: &p256::ecdsa::SigningKey) -> String {
    use p256::ecdsa::signature::Signer as _;
    let signature: p256::ecdsa::Signature = key.sign(&pae(IN_TOTO, statement));
    dsse_bundle(
        statement,
        signature.to_der().as_bytes(),
        json!({"publicKey": {"hint": "test-key"}, "tlogEntries": []}),
    )
}

trait CloneKey {
    fn clone_key(&self) -> KeyPair;
}

impl CloneKey for KeyPair {
    fn clone_key(&self) -> KeyPair {
        KeyPair::try_from(self.serialize_der().as_slice()).expect("key")
    }
}
