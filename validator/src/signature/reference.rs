//! Image references as container runtimes read them: `[registry/]repository[:tag][@digest]`.

use std::fmt;

/// The registry of references that name none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Where the default registry's API is served.
const DEFAULT_REGISTRY_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Host and optional port, as written (`docker.io` when the reference names no registry).
    pub registry: String,
    /// Repository path (`library/nginx` for the default registry's official images).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses an image reference; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty image reference".into());
        }
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                check_digest(digest)?;
                (name, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a registry port).
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if tag.is_empty() || tag.len() > 128 || !tag.chars().all(tag_char) {
                    return Err(format!("`{text}`: invalid tag `{tag}`"));
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || repository
                .split('/')
                .any(|part| part.is_empty() || !part.chars().all(path_char))
        {
            return Err(format!(
                "`{text}`: invalid repository `{repository}` (lowercase letters, digits, `.`, `_`, `-`, separated by `/`)"
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host the registry API is reached at (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY || self.registry == "index.docker.io" {
            DEFAULT_REGISTRY_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, the name signatures are stored under.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag (`latest` by default).
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn path_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid digest `{digest}` (expected sha256: and 64 lowercase hex digits)"
        )),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_runtimes_read_them() {
        let r = Reference::parse("nginx").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/nginx")
        );
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = Reference::parse("127.0.0.1:5000/shop/api:1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "shop/api");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/api:v1@{d}")).unwrap();
        assert_eq!(r.registry, "localhost");
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.to_string(), format!("localhost/api:v1@{d}"));
        let r = Reference::parse("registry.example.com:8443/a/b/c").unwrap();
        assert_eq!(r.registry, "registry.example.com:8443");
        assert_eq!(r.repository, "a/b/c");
        assert_eq!(r.tag, None);
    }

    #[test]
    fn bad_references_are_explained() {
        assert!(Reference::parse("").unwrap_err().contains("empty"));
        assert!(Reference::parse("Shop/API")
            .unwrap_err()
            .contains("invalid repository"));
        assert!(Reference::parse("api@sha256:abc")
            .unwrap_err()
            .contains("invalid digest"));
        assert!(Reference::parse("api:")
            .unwrap_err()
            .contains("invalid tag"));
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(check_digest(&sha256_digest(b"x")).is_ok());
        assert!(check_digest("sha512:00").is_err());
    }
}
