//! The trust policy: which keys or keyless identities must have signed which images, from a
//! file and from flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::cosign::{load_keys, PublicKey};
use super::keyless::{Identity, TrustedRoot};
use crate::glob::glob_match;

/// The provider name the embedded signed-image constraint uses.
pub const DEFAULT_PROVIDER: &str = "cosign-verifier";

/// One rule: images matching any pattern need a signature by one of the keys, or a keyless
/// signature by one of the identities, with these annotations in its payload.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where the rule was written (file and rule index, or the flags).
    pub origin: String,
    pub images: Vec<String>,
    pub keys: Vec<PublicKey>,
    pub identities: Vec<Identity>,
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    /// The trusted signers, for messages: "the trusted key(s) a.pub or identities ...".
    pub fn signers(&self) -> String {
        let mut parts = Vec::new();
        if !self.keys.is_empty() {
            let keys: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
            parts.push(format!("the trusted key(s) {}", keys.join(", ")));
        }
        if !self.identities.is_empty() {
            parts.push(format!(
                "the trusted identities {}",
                super::keyless::describe(&self.identities)
            ));
        }
        parts.join(" or ")
    }
}

/// Rules in order; the first whose pattern matches an image applies to it.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// The external data provider name these rules answer for.
    pub provider: String,
    pub rules: Vec<Rule>,
    /// Where keyless certificates and log entries are checked against.
    pub trusted_root: Option<Arc<TrustedRoot>>,
    /// Keyless certificates are accepted without their signed certificate timestamps checked.
    pub insecure_ignore_sct: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    api_version: String,
    kind: String,
    #[serde(default)]
    provider: Option<String>,
    /// Sigstore trusted root (`trusted_root.json`) for keyless rules; relative to the file.
    #[serde(default)]
    trusted_root: Option<PathBuf>,
    /// Accept keyless certificates without checking their signed certificate timestamps (as
    /// cosign's `--insecure-ignore-sct`); needed for a trusted root without CT logs.
    #[serde(default)]
    insecure_ignore_sct: bool,
    rules: Vec<FileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    images: Vec<String>,
    #[serde(default)]
    keys: Vec<PathBuf>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    identities: Vec<FileIdentity>,
}

/// A keyless signer: its OIDC issuer and certificate subject, each exact or as a pattern.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileIdentity {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    issuer_reg_exp: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    subject_reg_exp: Option<String>,
}

pub const API_VERSION: &str = "validator.policy/v1";
pub const KIND: &str = "ImageTrustPolicy";

impl TrustPolicy {
    /// Reads a trust policy file; key paths are relative to it.
    pub fn load(path: &Path) -> Result<TrustPolicy, String> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{name}: cannot read trust policy: {e}"))?;
        let file: File = serde_yaml::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(format!(
                "{name}: expected apiVersion {API_VERSION} and kind {KIND}, found {} {}",
                file.api_version, file.kind
            ));
        }
        if file.rules.is_empty() {
            return Err(format!("{name}: `rules` is empty; add at least one rule"));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let trusted_root = match &file.trusted_root {
            Some(root) => Some(Arc::new(
                TrustedRoot::load(&base.join(root))
                    .map_err(|e| format!("{name}: trustedRoot: {e}"))?,
            )),
            None => None,
        };
        let mut rules = Vec::new();
        for (i, rule) in file.rules.into_iter().enumerate() {
            let origin = format!("{name}: rules[{i}]");
            if rule.images.is_empty() {
                return Err(format!("{origin}: `images` is empty"));
            }
            if rule.keys.is_empty() && rule.identities.is_empty() {
                return Err(format!(
                    "{origin}: `keys` and `identities` are empty; list cosign public key files or keyless identities"
                ));
            }
            if !rule.identities.is_empty() && trusted_root.is_none() {
                return Err(format!(
                    "{origin}: `identities` need `trustedRoot`, the Sigstore trusted_root.json their certificates and log entries are checked against"
                ));
            }
            let identities = rule
                .identities
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    Identity::new(
                        id.issuer.as_deref(),
                        id.issuer_reg_exp.as_deref(),
                        id.subject.as_deref(),
                        id.subject_reg_exp.as_deref(),
                    )
                    .map_err(|e| format!("{origin}.identities[{j}]: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut keys = Vec::new();
            for k in &rule.keys {
                let loaded = load_keys(&base.join(k)).map_err(|e| format!("{origin}: {e}"))?;
                if loaded.is_empty() {
                    return Err(format!("{origin}: {} holds no public key", k.display()));
                }
                keys.extend(loaded);
            }
            rules.push(Rule {
                origin,
                images: rule.images,
                keys,
                identities,
                annotations: rule.annotations,
            });
        }
        Ok(TrustPolicy {
            provider: file
                .provider
                .unwrap_or_else(|| DEFAULT_PROVIDER.to_string()),
            rules,
            trusted_root,
            insecure_ignore_sct: file.insecure_ignore_sct,
        })
    }

    /// The rule for an image: the first one with a pattern matching the image as written or as
    /// normalized (`docker.io/library/nginx:1.27`).
    pub fn rule_for(&self, written: &str, normalized: &str) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| {
            r.images
                .iter()
                .any(|p| glob_match(p, written) || glob_match(p, normalized))
        })
    }
}

/// Parses `key=value` annotation flags.
pub fn parse_annotations(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    flags
        .iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("--signature-annotation `{a}`: expected key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePublicKey;

    fn write_key(dir: &Path, name: &str, seed: u8) {
        let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let pem = k
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        std::fs::write(dir.join(name), pem).unwrap();
    }

    #[test]
    fn first_matching_rule_applies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        write_key(&dir.path().join("keys"), "release.pub", 1);
        write_key(&dir.path().join("keys"), "ops.pub", 2);
        let path = dir.path().join("trust.yaml");
        std::fs::write(
            &path,
            "apiVersion: validator.policy/v1\nkind: ImageTrustPolicy\nrules:\n  - images: [registry.example.com/shop/*]\n    keys: [keys/release.pub]\n    annotations: {env: prod}\n  - images: ['*']\n    keys: [keys/release.pub, keys/ops.pub]\n",
        )
        .unwrap();
        let p = TrustPolicy::load(&path).unwrap();
        assert_eq!(p.provider, DEFAULT_PROVIDER);
        let (i, r) = p
            .rule_for(
                "registry.example.com/shop/api:1",
                "registry.example.com/shop/api:1",
            )
            .unwrap();
        assert_eq!(
            (i, r.keys.len(), r.annotations["env"].as_str()),
            (0, 1, "prod")
        );
        let (i, r) = p.rule_for("nginx", "docker.io/library/nginx").unwrap();
        assert_eq!((i, r.keys.len()), (1, 2));
    }

    #[test]
    fn bad_trust_policies_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trust.yaml");
        let check = |text: &str, wanted: &str| {
            std::fs::write(&path, text).unwrap();
            let e = TrustPolicy::load(&path).unwrap_err();
            assert!(e.contains(wanted), "{e}");
        };
        let head = "apiVersion: validator.policy/v1\nkind: ImageTrustPolicy\n";
        check(
            "apiVersion: v1\nkind: ImageTrustPolicy\nrules: []\n",
            "expected apiVersion",
        );
        check(&format!("{head}rules: []\n"), "`rules` is empty");
        check(
            &format!("{head}rules:\n  - images: ['*']\n"),
            "`keys` and `identities` are empty",
        );
        check(
            &format!("{head}rules:\n  - images: ['*']\n    keys: [missing.pub]\n"),
            "cannot read",
        );
        check(
            &format!(
                "{head}rules:\n  - images: ['*']\n    identities: [{{issuer: x, subject: y}}]\n"
            ),
            "`identities` need `trustedRoot`",
        );
        check(
            &format!("{head}trustedRoot: missing.json\nrules:\n  - images: ['*']\n    identities: [{{issuer: x}}]\n"),
            "trustedRoot: ",
        );
        check(
            &format!("{head}rules:\n  - images: ['*']\n    identities: [{{issuer: x, subjectRegexp: y}}]\n"),
            "unknown field",
        );
        check(
            &format!("{head}rules:\n  - images: ['*']\n    key: [a]\n"),
            "unknown field",
        );
        assert!(parse_annotations(&["a=b".into(), "c=".into()]).is_ok());
        assert!(parse_annotations(&["novalue".into()]).is_err());
    }
}
