//! TLS for the webhook: a certificate resolver that reloads the key pair when its files change.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Loads a certificate chain and key from PEM files.
pub fn load_key_pair(cert: &PathBuf, key: &PathBuf) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: cannot read certificate: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: invalid certificate PEM: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: cannot read private key: {e}", key.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    Ok(CertifiedKey::new(certs, signing))
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serves the current key pair; on each handshake, reloads it if either file changed on disk.
/// A broken new pair is ignored (the old one keeps serving) until the files change again.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<(Arc<CertifiedKey>, Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingCert {
    pub fn new(cert: PathBuf, key: PathBuf) -> Result<Self, String> {
        let pair = load_key_pair(&cert, &key)?;
        let stamps = (modified(&cert), modified(&key));
        Ok(ReloadingCert {
            current: Mutex::new((Arc::new(pair), stamps.0, stamps.1)),
            cert,
            key,
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().ok()?;
        let stamps = (modified(&self.cert), modified(&self.key));
        if stamps.0 != current.1 || stamps.1 != current.2 {
            if let Ok(pair) = load_key_pair(&self.cert, &self.key) {
                current.0 = Arc::new(pair);
            }
            current.1 = stamps.0;
            current.2 = stamps.1;
        }
        Some(current.0.clone())
    }
}

/// A server configuration using the reloading resolver.
pub fn server_config(cert: PathBuf, key: PathBuf) -> Result<rustls::ServerConfig, String> {
    let resolver = ReloadingCert::new(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup: {e}"))?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
