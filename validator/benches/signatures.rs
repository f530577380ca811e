//! Signature verification of 200 distinct signed images in a real registry (Debian's
//! `docker-registry` on 127.0.0.1): cold (new verifier, empty cache) and warm (cached by digest),
//! by tag (each tag still resolved with one request) and by digest; signed with a key, and
//! keyless (certificate, log entry and CT timestamp checked against a trusted root).
//!
//! `cargo bench -p validator --bench signatures` (needs /usr/bin/docker-registry).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/support/registry.rs"]
#[allow(dead_code)] // shared with the tests, which use all of it
mod support;

#[path = "../tests/support/sigstore.rs"]
#[allow(dead_code)]
mod sigstore;

use std::time::{Duration, Instant};

use support::{signing_key, write_public_key, TestRegistry};
use validator::signature::Args;

const IMAGES: usize = 200;
const ROUNDS: usize = 5;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let registry = TestRegistry::start();
    let keys = tempfile::tempdir().unwrap();
    let public = write_public_key(keys.path(), "cosign.pub", &signing_key(1));
    std::fs::write(keys.path().join("docker-config.json"), "{}").unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let store = sigstore::Sigstore::new(now);
    std::fs::write(
        keys.path().join("trusted_root.json"),
        store.trusted_root(true),
    )
    .unwrap();
    let identity = "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1";
    let issuer = "https://token.actions.githubusercontent.com";
    let mut by_tag = Vec::new();
    let mut by_digest = Vec::new();
    let mut keyless_by_tag = Vec::new();
    let mut keyless_by_digest = Vec::new();
    let push = Instant::now();
    for i in 0..IMAGES {
        let repository = format!("bench/app{i}");
        let digest = registry.push_image(&repository, "1.0", &repository);
        registry.sign(&repository, &digest, &[&signing_key(1)], &[]);
        by_tag.push(format!("{}/{repository}:1.0", registry.host));
        by_digest.push(format!("{}/{repository}@{digest}", registry.host));
        let repository = format!("bench/keyless{i}");
        let digest = registry.push_image(&repository, "1.0", &repository);
        let payload = support::payload(&registry.host, &repository, &digest, &[]);
        let signed = store.sign(&payload, &sigstore::Options::new(identity, issuer, now));
        registry.push_signature_layers(&repository, &digest, &[(payload, signed.annotations())]);
        keyless_by_tag.push(format!("{}/{repository}:1.0", registry.host));
        keyless_by_digest.push(format!("{}/{repository}@{digest}", registry.host));
    }
    eprintln!(
        "pushed and signed {IMAGES} images in {:.2?}",
        push.elapsed()
    );
    let args = Args {
        signature_keys: vec![public],
        insecure_registries: vec![registry.host.clone()],
        registry_config: Some(keys.path().join("docker-config.json")),
        registry_timeout: "10s".into(),
        signature_cache_ttl: "60m".into(),
        ..Args::default()
    };
    let keyless = Args {
        signature_keys: Vec::new(),
        trusted_root: Some(keys.path().join("trusted_root.json")),
        certificate_identity: Some(identity.into()),
        certificate_oidc_issuer: Some(issuer.into()),
        ..args.clone()
    };
    for (label, args, images) in [
        ("key, by tag", &args, &by_tag),
        ("key, by digest", &args, &by_digest),
        ("keyless, by tag", &keyless, &keyless_by_tag),
        ("keyless, by digest", &keyless, &keyless_by_digest),
    ] {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut requests = (0, 0);
        for _ in 0..ROUNDS {
            let verifier = args.verifier().unwrap().unwrap();
            let start = Instant::now();
            let results = verifier.verify_many(images);
            cold.push(start.elapsed());
            assert!(results.iter().all(|(_, r)| r.is_ok()), "cold: a failure");
            let cold_requests = verifier.registry_requests();
            let start = Instant::now();
            let results = verifier.verify_many(images);
            warm.push(start.elapsed());
            assert!(results.iter().all(|(_, r)| r.is_ok()), "warm: a failure");
            requests = (cold_requests, verifier.registry_requests() - cold_requests);
        }
        let (cold, warm) = (median(cold), median(warm));
        println!(
            "{IMAGES} images {label:<18}  cold {:>9.2?} ({:>7.0} images/s, {} requests)   warm {:>9.2?} ({:>9.0} images/s, {} requests)",
            cold,
            IMAGES as f64 / cold.as_secs_f64(),
            requests.0,
            warm,
            IMAGES as f64 / warm.as_secs_f64(),
            requests.1,
        );
    }
}
