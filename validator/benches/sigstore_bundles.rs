//! Offline keyless verification of one Sigstore bundle, by kind of log entry: Rekor v1 (signed
//! entry timestamp), Rekor v1 with an RFC 3161 timestamp, Rekor v2 (inclusion proof, signed
//! checkpoint, RFC 3161 timestamp), from the test Sigstore; and the real public bundles of
//! `../shared/sigstore-real` when present (a public-good v1 bundle with an inclusion proof and a
//! timestamp, a staging Rekor v2 bundle).
//!
//! `cargo bench -p validator --bench sigstore_bundles`
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/support/sigstore.rs"]
#[allow(dead_code)]
mod sigstore;

use std::path::Path;
use std::time::{Duration, Instant};

use validator::signature::bundle::Bundle;
use validator::signature::keyless::{Identity, TrustedRoot};

const ROUNDS: usize = 5;
const VERIFICATIONS: u32 = 200;

/// Median time of one verification (parse included).
fn measure(bundle: &str, root: &TrustedRoot, identity: &Identity) -> Duration {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..VERIFICATIONS {
            Bundle::parse(bundle.as_bytes())
                .unwrap()
                .verify_keyless(root, std::slice::from_ref(identity))
                .unwrap();
        }
        rounds.push(start.elapsed() / VERIFICATIONS);
    }
    rounds.sort();
    rounds[ROUNDS / 2]
}

fn main() {
    const ISSUER: &str = "https://token.actions.githubusercontent.com";
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let subject = "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1";
    let store = sigstore::Sigstore::new(now);
    let root = TrustedRoot::parse("trusted_root.json", &store.trusted_root(true)).unwrap();
    let identity = Identity::new(Some(ISSUER), None, Some(subject), None).unwrap();
    let statement =
        sigstore::sign_statement("sha256:ab", "https://sigstore.dev/cosign/sign/v1", &[]);
    let v1 = sigstore::Options::new(subject, ISSUER, now);
    let mut v1_stamped = sigstore::Options::new(subject, ISSUER, now);
    v1_stamped.rfc3161 = true;
    let v2 = sigstore::Options::rekor_v2(subject, ISSUER, now);
    println!("| bundle | one verification |");
    println!("| --- | ---: |");
    for (name, o) in [
        ("test Sigstore, Rekor v1", &v1),
        ("test Sigstore, Rekor v1 + RFC 3161", &v1_stamped),
        ("test Sigstore, Rekor v2 (tree of 11)", &v2),
    ] {
        let bundle = store.sign_bundle(&statement, o);
        println!("| {name} | {:?} |", measure(&bundle, &root, &identity));
    }
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigstore-real");
    if !real.join("kubewarden.bundle.json").is_file() {
        println!("(real bundles skipped: {} is absent)", real.display());
        return;
    }
    let read = |name: &str| std::fs::read_to_string(real.join(name)).unwrap();
    for (name, bundle, root, subject) in [
        (
            "public-good v1 + inclusion proof + RFC 3161",
            "kubewarden.bundle.json",
            "trusted_root.prod.json",
            "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
        ),
        (
            "staging Rekor v2 (tree of 4,026,479)",
            "staging-rekor2-dsse.bundle.json",
            "trusted_root.staging.json",
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
        ),
    ] {
        let root = TrustedRoot::parse(root, &read(root)).unwrap();
        let identity = Identity::new(Some(ISSUER), None, Some(subject), None).unwrap();
        println!("| {name} | {:?} |", measure(&read(bundle), &root, &identity));
    }
}
