//! A small OCI distribution API client: manifests and blobs, token and basic auth from a docker
//! config file, HTTPS except for registries listed as insecure, and a count of requests sent.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::Value;
use thiserror::Error;

use super::reference::{sha256_digest, Reference};

/// Manifest media types asked for: OCI and Docker, single images and indexes.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// Largest manifest or signature payload read.
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Largest token response read.
const MAX_TOKEN_BODY: usize = 256 * 1024;

/// Why a registry could not answer; each says which registry and what happened.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum RegistryError {
    #[error("registry unreachable: {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("registry timeout: {registry} did not answer within {seconds}s")]
    Timeout { registry: String, seconds: f64 },
    #[error("registry denied access: {registry} answered {status} for {repository} (check the credentials in the docker config file)")]
    Denied {
        registry: String,
        repository: String,
        status: u16,
    },
    #[error("registry error: {registry}: {message}")]
    Protocol { registry: String, message: String },
}

/// Registry credentials by registry host, read from a docker config file (`auths`).
#[derive(Clone, Default)]
pub struct Credentials {
    by_registry: HashMap<String, (String, String)>,
}

/// Names the registries and users, never the passwords.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut registries: Vec<(&String, &String)> = self
            .by_registry
            .iter()
            .map(|(registry, (user, _))| (registry, user))
            .collect();
        registries.sort();
        f.debug_struct("Credentials")
            .field("users_by_registry", &registries)
            .finish()
    }
}

/// Reads at most `limit` bytes of `reader`; `None` when there are more.
fn read_limited(reader: impl std::io::Read, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let mut body = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut body)?;
    Ok((body.len() <= limit).then_some(body))
}

impl Credentials {
    /// Reads `auths` of a docker config file (`{"auths": {"host": {"auth": base64(user:pass)}}}`,
    /// or `username`/`password`). Credential helpers are not run.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{name}: cannot read docker config: {e}"))?;
        let config: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{name}: docker config is not JSON: {e}"))?;
        let mut by_registry = HashMap::new();
        if let Some(auths) = config.get("auths").and_then(Value::as_object) {
            for (host, entry) in auths {
                let user_pass = if let Some(auth) = entry.get("auth").and_then(Value::as_str) {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| format!("{name}: auths.{host}.auth is not base64: {e}"))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| format!("{name}: auths.{host}.auth is not UTF-8"))?;
                    decoded
                        .split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                        .ok_or_else(|| format!("{name}: auths.{host}.auth is not user:password"))?
                } else {
                    let field = |f: &str| entry.get(f).and_then(Value::as_str).map(str::to_string);
                    match (field("username"), field("password")) {
                        (Some(u), Some(p)) => (u, p),
                        _ => continue,
                    }
                };
                by_registry.insert(normalize_host(host), user_pass);
            }
        }
        Ok(Credentials { by_registry })
    }

    /// The docker config of the environment: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`, when it exists.
    pub fn default_path() -> Option<PathBuf> {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))?;
        let path = dir.join("config.json");
        path.is_file().then_some(path)
    }

    fn get(&self, registry: &str) -> Option<&(String, String)> {
        self.by_registry.get(&normalize_host(registry))
    }
}

/// `https://index.docker.io/v1/` and friends to the registry name used in references.
fn normalize_host(host: &str) -> String {
    let host = host
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        other => other.to_string(),
    }
}

/// How the client reaches registries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Registries (`host` or `host:port`) reached over plain HTTP.
    pub insecure: Vec<String>,
    pub credentials: Credentials,
    /// Deadline of each request.
    pub timeout: Duration,
}

/// A registry client shared by every verification (thread-safe).
pub struct Registry {
    http: Client,
    insecure: HashSet<String>,
    credentials: Credentials,
    timeout: Duration,
    /// Bearer tokens by (registry, repository).
    tokens: Mutex<HashMap<(String, String), String>>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A manifest as fetched: its bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
}

impl Registry {
    pub fn new(settings: Settings) -> Result<Registry, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let http = Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("validator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the registry client: {e}"))?;
        Ok(Registry {
            http,
            insecure: settings.insecure.into_iter().collect(),
            credentials: settings.credentials,
            timeout: settings.timeout,
            tokens: Mutex::new(HashMap::new()),
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// HTTP requests sent so far (manifests, blobs, tokens).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn base(&self, image: &Reference) -> String {
        let host = image.api_host();
        let scheme = if self.insecure.contains(host) || self.insecure.contains(&image.registry) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}/v2/{}", image.repository)
    }

    fn transport_error(&self, image: &Reference, e: &reqwest::Error) -> RegistryError {
        let registry = image.registry.clone();
        if e.is_timeout() {
            return RegistryError::Timeout {
                registry,
                seconds: self.timeout.as_secs_f64(),
            };
        }
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        if !self.insecure.contains(&image.registry) {
            message.push_str(
                " (reached over HTTPS; list a plain-HTTP registry with --insecure-registry)",
            );
        }
        RegistryError::Unreachable { registry, message }
    }

    /// Sends a request, answering one auth challenge (Bearer token or Basic) if the registry asks.
    fn send(
        &self,
        image: &Reference,
        build: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let key = (image.registry.clone(), image.repository.clone());
        let token = self.tokens.lock().ok().and_then(|t| t.get(&key).cloned());
        let mut request = build(&self.http);
        if let Some(token) = &token {
            request = request.header(AUTHORIZATION, token);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .map_err(|e| self.transport_error(image, &e))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let authorization = self.authorize(image, &challenge)?;
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(key, authorization.clone());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        build(&self.http)
            .header(AUTHORIZATION, authorization)
            .send()
            .map_err(|e| self.transport_error(image, &e))
    }

    /// The Authorization header value that answers a `WWW-Authenticate` challenge.
    fn authorize(&self, image: &Reference, challenge: &str) -> Result<String, RegistryError> {
        let denied = || RegistryError::Denied {
            registry: image.registry.clone(),
            repository: image.repository.clone(),
            status: 401,
        };
        let credentials = self.credentials.get(&image.registry);
        let basic = |(user, pass): &(String, String)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            )
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return credentials.map(basic).ok_or_else(denied);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(denied());
        }
        let params = challenge_params(params);
        let Some(realm) = params.get("realm") else {
            return Err(RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("Bearer challenge without a realm: {challenge}"),
            });
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: image.registry.clone(),
            message: format!("token realm `{realm}` is not a URL: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let scope = params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", image.repository));
            query.append_pair("scope", &scope);
        }
        let mut request = self.http.get(url);
        if let Some(c) = credentials {
            request = request.header(AUTHORIZATION, basic(c));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .map_err(|e| self.transport_error(image, &e))?;
        if !response.status().is_success() {
            return Err(RegistryError::Denied {
                registry: image.registry.clone(),
                repository: image.repository.clone(),
                status: response.status().as_u16(),
            });
        }
        let protocol = |message: String| RegistryError::Protocol {
            registry: image.registry.clone(),
            message,
        };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_TOKEN_BODY as u64)
        {
            return Err(protocol(format!(
                "token response larger than {MAX_TOKEN_BODY} bytes"
            )));
        }
        let body = read_limited(response, MAX_TOKEN_BODY)
            .map_err(|e| protocol(format!("token response: {e}")))?
            .ok_or_else(|| {
                protocol(format!("token response larger than {MAX_TOKEN_BODY} bytes"))
            })?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| protocol(format!("token response is not JSON: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(Value::as_str)
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| RegistryError::Protocol {
                registry: image.registry.clone(),
                message: "token response has no token".into(),
            })
    }

    fn status_error(&self, image: &Reference, what: &str, status: StatusCode) -> RegistryError {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RegistryError::Denied {
                registry: image.registry.clone(),
                repository: image.repository.clone(),
                status: status.as_u16(),
            }
        } else {
            RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("{what}: HTTP {status}"),
            }
        }
    }

    fn body(&self, image: &Reference, response: Response) -> Result<Vec<u8>, RegistryError> {
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY as u64)
        {
            return Err(RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("response larger than {MAX_BODY} bytes"),
            });
        }
        // Without a Content-Length (chunked), the size is known only while reading.
        read_limited(response, MAX_BODY)
            .map_err(|e| RegistryError::Unreachable {
                registry: image.registry.clone(),
                message: format!("reading the response: {e}"),
            })?
            .ok_or_else(|| RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("response larger than {MAX_BODY} bytes"),
            })
    }

    /// The digest `image` names: its pinned digest (no request), else its tag's current digest.
    pub fn resolve(&self, image: &Reference) -> Result<Option<String>, RegistryError> {
        if let Some(d) = &image.digest {
            return Ok(Some(d.clone()));
        }
        let tag = image.manifest_reference().to_string();
        let url = format!("{}/manifests/{tag}", self.base(image));
        let response = self.send(image, |c| c.head(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => {
                return Err(self.status_error(image, &format!("manifest {tag}"), s))
            }
            _ => {}
        }
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(d) = header.filter(|d| super::reference::check_digest(d).is_ok()) {
            return Ok(Some(d));
        }
        Ok(self.manifest(image, &tag)?.map(|m| m.digest))
    }

    /// Fetches a manifest by tag or digest; `None` when the registry does not have it.
    pub fn manifest(
        &self,
        image: &Reference,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        let url = format!("{}/manifests/{reference}", self.base(image));
        let response = self.send(image, |c| c.get(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if !s.is_success() => {
                return Err(self.status_error(image, &format!("manifest {reference}"), s))
            }
            _ => {}
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = self.body(image, response)?;
        let digest = sha256_digest(&body);
        if reference.starts_with("sha256:") && digest != reference {
            return Err(RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("manifest {reference} has digest {digest}"),
            });
        }
        Ok(Some(Manifest {
            digest,
            media_type,
            body,
        }))
    }

    /// The descriptors of the artifacts that refer to `digest` (OCI 1.1): from the referrers
    /// API, else (a registry without it answers 404) from the fallback tag `sha256-<hex>`.
    pub fn referrers(&self, image: &Reference, digest: &str) -> Result<Vec<Value>, RegistryError> {
        let url = format!("{}/referrers/{digest}", self.base(image));
        let response = self.send(image, |c| {
            c.get(&url)
                .header(ACCEPT, "application/vnd.oci.image.index.v1+json")
        })?;
        let status = response.status();
        let index: Value = if status.is_success() {
            let body = self.body(image, response)?;
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("referrers of {digest} are not JSON: {e}"),
            })?
        } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            let tag = digest.replacen(':', "-", 1);
            match self.manifest(image, &tag)? {
                Some(m) => {
                    serde_json::from_slice(&m.body).map_err(|e| RegistryError::Protocol {
                        registry: image.registry.clone(),
                        message: format!("referrers tag {tag} is not JSON: {e}"),
                    })?
                }
                None => return Ok(Vec::new()),
            }
        } else {
            return Err(self.status_error(image, &format!("referrers of {digest}"), status));
        };
        Ok(index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Fetches a blob and checks its digest.
    pub fn blob(&self, image: &Reference, digest: &str) -> Result<Vec<u8>, RegistryError> {
        super::reference::check_digest(digest).map_err(|message| RegistryError::Protocol {
            registry: image.registry.clone(),
            message,
        })?;
        let url = format!("{}/blobs/{digest}", self.base(image));
        let response = self.send(image, |c| c.get(&url))?;
        if !response.status().is_success() {
            return Err(self.status_error(image, &format!("blob {digest}"), response.status()));
        }
        let body = self.body(image, response)?;
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(RegistryError::Protocol {
                registry: image.registry.clone(),
                message: format!("blob {digest} has digest {actual}"),
            });
        }
        Ok(body)
    }
}

/// `realm="...",service="...",scope="..."` to a map.
fn challenge_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_limit() {
        assert_eq!(
            read_limited(&b"12345"[..], 5).unwrap(),
            Some(b"12345".to_vec())
        );
        assert_eq!(read_limited(&b"123456"[..], 5).unwrap(), None);
        // An endless body is not read whole.
        assert_eq!(read_limited(std::io::repeat(7), 1024).unwrap(), None);
    }

    #[test]
    fn challenges_are_read() {
        let p = challenge_params(
            r#"realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.example.com/token");
        assert_eq!(p["service"], "registry.example.com");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let p = challenge_params("realm=r, service=s");
        assert_eq!((p["realm"].as_str(), p["service"].as_str()), ("r", "s"));
    }

    #[test]
    fn docker_config_credentials_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "registry.example.com:5000": {{"username": "bob", "password": "pw"}}, "helper.example.com": {{}}}}, "credsStore": "desktop"}}"#),
        )
        .unwrap();
        let c = Credentials::load(&path).unwrap();
        assert_eq!(c.get("docker.io"), Some(&("alice".into(), "s3cret".into())));
        assert_eq!(
            c.get("registry.example.com:5000"),
            Some(&("bob".into(), "pw".into()))
        );
        assert_eq!(c.get("helper.example.com"), None);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("\"pw\""),
            "{debug}"
        );
        assert!(
            debug.contains("alice") && debug.contains("docker.io"),
            "{debug}"
        );
        std::fs::write(&path, r#"{"auths": {"r": {"auth": "!!"}}}"#).unwrap();
        assert!(Credentials::load(&path).unwrap_err().contains("not base64"));
        std::fs::write(&path, "{").unwrap();
        assert!(Credentials::load(&path).unwrap_err().contains("not JSON"));
    }
}
