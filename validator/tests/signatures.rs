//! Image signature verification against a real OCI registry (Debian's `docker-registry`, started
//! per test on 127.0.0.1): cosign-format signatures pushed over the distribution API, verified by
//! the library, by `validator check`, by the admission webhook and by `serve --provider`.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/registry.rs"]
mod support;

#[path = "support/sigstore.rs"]
mod sigstore;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sigstore::{Options, Sigstore};
use support::{signing_key, write_public_key, TestRegistry};
use validator::signature::keyless::{
    Certificate, Identity, LogEntry, Rejection, Signed, TrustedRoot,
};
use validator::signature::{Args, Failure, Verifier};

struct Setup {
    registry: TestRegistry,
    keys: tempfile::TempDir,
    trusted: PathBuf,
}

fn setup() -> Setup {
    let registry = TestRegistry::start();
    let keys = tempfile::tempdir().unwrap();
    let trusted = write_public_key(keys.path(), "cosign.pub", &signing_key(1));
    std::fs::write(keys.path().join("docker-config.json"), "{}").unwrap();
    Setup {
        registry,
        keys,
        trusted,
    }
}

impl Setup {
    fn args(&self) -> Args {
        Args {
            signature_keys: vec![self.trusted.clone()],
            insecure_registries: vec![self.registry.host.clone()],
            registry_config: Some(self.keys.path().join("docker-config.json")),
            registry_timeout: "2s".into(),
            signature_cache_ttl: "5m".into(),
            ..Args::default()
        }
    }

    fn verifier(&self) -> Arc<Verifier> {
        self.args().verifier().unwrap().unwrap()
    }

    fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.registry.host)
    }

    /// Pushes an image and signs it with the trusted key; returns its digest.
    fn signed(&self, repository: &str, tag: &str) -> String {
        let digest = self
            .registry
            .push_image(repository, tag, &format!("{repository}:{tag}"));
        self.registry
            .sign(repository, &digest, &[&signing_key(1)], &[]);
        digest
    }
}

fn failure(v: &Verifier, image: &str) -> Failure {
    match v.verify(image) {
        Ok(ok) => panic!("{image} verified ({ok:?}), expected a failure"),
        Err(e) => e,
    }
}

#[test]
fn signed_image_verifies_by_tag_and_by_digest() {
    let s = setup();
    let digest = s.signed("shop/api", "1.0");
    let v = s.verifier();
    let by_tag = v.verify(&s.image("shop/api", "1.0")).unwrap();
    assert_eq!(by_tag.digest, digest);
    assert!(by_tag.key.ends_with("cosign.pub"), "{by_tag:?}");
    let pinned = format!("{}/shop/api@{digest}", s.registry.host);
    assert_eq!(v.verify(&pinned).unwrap().digest, digest);
}

#[test]
fn unsigned_image_is_denied_as_unsigned() {
    let s = setup();
    let digest = s.registry.push_image("shop/api", "1.0", "unsigned");
    let e = failure(&s.verifier(), &s.image("shop/api", "1.0"));
    assert!(matches!(e, Failure::Unsigned { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.starts_with("unsigned: no cosign signature for"),
        "{message}"
    );
    assert!(message.contains(&digest), "{message}");
}

#[test]
fn image_signed_with_another_key_is_denied_as_wrong_key() {
    let s = setup();
    let digest = s.registry.push_image("shop/api", "1.0", "other key");
    s.registry
        .sign("shop/api", &digest, &[&signing_key(2)], &[]);
    let e = failure(&s.verifier(), &s.image("shop/api", "1.0"));
    let message = e.to_string();
    assert!(
        message.starts_with("no valid signature: 1 signature(s)"),
        "{message}"
    );
    assert!(message.contains("cosign.pub"), "{message}");

    // Signed by both: the trusted signature is found among the others.
    s.registry.sign(
        "shop/api",
        &digest,
        &[&signing_key(2), &signing_key(1)],
        &[],
    );
    assert!(s.verifier().verify(&s.image("shop/api", "1.0")).is_ok());
}

#[test]
fn signature_of_another_digest_is_denied() {
    let s = setup();
    let digest = s.registry.push_image("shop/api", "1.0", "a");
    let other = s.registry.push_image("shop/api", "2.0", "b");
    // A valid signature by the trusted key, copied to the wrong image.
    let payload = support::payload(&s.registry.host, "shop/api", &other, &[]);
    s.registry
        .sign_payloads("shop/api", &digest, &[(&signing_key(1), payload)]);
    let e = failure(&s.verifier(), &s.image("shop/api", "1.0"));
    assert!(matches!(e, Failure::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&other), "{e}");
}

#[test]
fn moved_tag_to_an_unsigned_digest_is_denied() {
    let s = setup();
    let v = s.verifier();
    let image = s.image("shop/api", "stable");
    let first = s.signed("shop/api", "stable");
    assert_eq!(v.verify(&image).unwrap().digest, first);
    // The tag now points at an unsigned image; the cached result of the old digest must not apply.
    let moved = s.registry.push_image("shop/api", "stable", "moved");
    assert_ne!(moved, first);
    let e = failure(&v, &image);
    assert!(
        matches!(e, Failure::Unsigned { ref digest, .. } if *digest == moved),
        "{e}"
    );
}

#[test]
fn missing_image_is_denied_as_not_found() {
    let s = setup();
    let e = failure(&s.verifier(), &s.image("shop/none", "1.0"));
    assert!(e.to_string().starts_with("image not found"), "{e}");
}

#[test]
fn registry_down_is_denied_as_unreachable() {
    let mut s = setup();
    s.signed("shop/api", "1.0");
    let v = s.verifier();
    s.registry.stop();
    let e = failure(&v, &s.image("shop/api", "1.0"));
    assert!(
        e.to_string()
            .starts_with("registry unreachable: 127.0.0.1:"),
        "{e}"
    );
}

#[test]
fn registry_that_does_not_answer_is_denied_as_timeout() {
    let s = setup();
    s.signed("shop/api", "1.0");
    let mut args = s.args();
    args.registry_timeout = "300ms".into();
    let v = args.verifier().unwrap().unwrap();
    s.registry.freeze(true);
    let started = std::time::Instant::now();
    let result = v.verify(&s.image("shop/api", "1.0"));
    s.registry.freeze(false);
    let e = result.unwrap_err();
    assert!(
        e.to_string().starts_with("registry timeout: 127.0.0.1:"),
        "{e}"
    );
    assert!(e.to_string().contains("0.3s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn plain_http_registries_must_be_listed_as_insecure() {
    let s = setup();
    s.signed("shop/api", "1.0");
    let mut args = s.args();
    args.insecure_registries.clear();
    let e = failure(
        &args.verifier().unwrap().unwrap(),
        &s.image("shop/api", "1.0"),
    );
    let message = e.to_string();
    assert!(message.starts_with("registry unreachable"), "{message}");
    assert!(message.contains("--insecure-registry"), "{message}");
}

#[test]
fn cache_hit_sends_no_registry_request() {
    let s = setup();
    let digest = s.signed("shop/api", "1.0");
    let pinned = format!("{}/shop/api@{digest}", s.registry.host);
    let v = s.verifier();
    v.verify(&pinned).unwrap();
    let after_first = v.registry_requests();
    assert!(
        after_first >= 2,
        "a cold verification reads the signature manifest and payload"
    );
    v.verify(&pinned).unwrap();
    assert_eq!(
        v.registry_requests(),
        after_first,
        "cache hit went to the registry"
    );
    // A tag still resolves (one manifest HEAD), then the digest's result comes from the cache.
    v.verify(&s.image("shop/api", "1.0")).unwrap();
    assert_eq!(v.registry_requests(), after_first + 1);

    // With no TTL, every verification asks again.
    let mut args = s.args();
    args.signature_cache_ttl = "0s".into();
    let uncached = args.verifier().unwrap().unwrap();
    uncached.verify(&pinned).unwrap();
    let once = uncached.registry_requests();
    uncached.verify(&pinned).unwrap();
    assert_eq!(uncached.registry_requests(), 2 * once);
}

#[test]
fn annotations_must_match() {
    let s = setup();
    let digest = s.registry.push_image("shop/api", "1.0", "annotated");
    s.registry
        .sign("shop/api", &digest, &[&signing_key(1)], &[("env", "prod")]);
    let mut args = s.args();
    args.signature_annotations = vec!["env=prod".into()];
    assert!(args
        .verifier()
        .unwrap()
        .unwrap()
        .verify(&s.image("shop/api", "1.0"))
        .is_ok());
    args.signature_annotations = vec!["env=staging".into()];
    let e = failure(
        &args.verifier().unwrap().unwrap(),
        &s.image("shop/api", "1.0"),
    );
    assert!(e.to_string().starts_with("annotations do not match"), "{e}");
    assert!(e.to_string().contains("env=staging"), "{e}");
}

#[test]
fn trust_policy_rules_choose_keys_per_image() {
    let s = setup();
    let team = write_public_key(s.keys.path(), "team.pub", &signing_key(3));
    let shop = s.registry.push_image("shop/api", "1.0", "shop");
    s.registry.sign("shop/api", &shop, &[&signing_key(3)], &[]);
    let tools = s.signed("tools/debug", "1.0");
    let _ = tools;
    let policy = s.keys.path().join("trust.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: validator.policy/v1\nkind: ImageTrustPolicy\nrules:\n  - images: ['{host}/shop/*']\n    keys: [{team}]\n  - images: ['{host}/tools/*']\n    keys: [cosign.pub]\n",
            host = s.registry.host,
            team = team.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    let args = Args {
        trust_policy: Some(policy),
        signature_keys: Vec::new(),
        ..s.args()
    };
    let v = args.verifier().unwrap().unwrap();
    assert!(v.verify(&s.image("shop/api", "1.0")).is_ok());
    assert!(v.verify(&s.image("tools/debug", "1.0")).is_ok());
    let e = failure(&v, &s.image("other/app", "1.0"));
    assert!(matches!(e, Failure::NoRule), "{e}");
}

#[test]
fn many_images_verify_in_parallel() {
    let s = setup();
    let mut images = Vec::new();
    for i in 0..40 {
        let repository = format!("fleet/app{i}");
        let digest = s.registry.push_image(&repository, "1.0", &repository);
        if i % 2 == 0 {
            s.registry
                .sign(&repository, &digest, &[&signing_key(1)], &[]);
        }
        images.push(s.image(&repository, "1.0"));
    }
    // Duplicates are verified once and answered once.
    images.push(images[0].clone());
    let v = s.verifier();
    let results = v.verify_many(&images);
    assert_eq!(results.len(), 40);
    for (i, (image, result)) in results.iter().enumerate() {
        assert_eq!(image, &images[i]);
        match (i % 2 == 0, result) {
            (true, Ok(_)) => {}
            (false, Err(Failure::Unsigned { .. })) => {}
            other => panic!("{image}: {other:?}"),
        }
    }
}

#[test]
fn external_data_answers_as_gatekeeper_and_provider_requests_as_a_provider() {
    let s = setup();
    s.signed("shop/api", "1.0");
    s.registry.push_image("shop/api", "2.0", "unsigned");
    let v = s.verifier();
    let signed = s.image("shop/api", "1.0");
    let unsigned = s.image("shop/api", "2.0");
    let keys = vec![signed.clone(), unsigned.clone()];
    let builtin = v.external_data("cosign-verifier", &keys);
    assert_eq!(builtin["system_error"], "");
    assert_eq!(builtin["responses"][0][0], signed.as_str());
    assert_eq!(builtin["errors"][0][0], unsigned.as_str());
    assert!(builtin["errors"][0][1]
        .as_str()
        .unwrap()
        .starts_with("unsigned"));
    let other = v.external_data("another-provider", &keys);
    assert!(other["system_error"]
        .as_str()
        .unwrap()
        .contains("another-provider"));

    let response = v.provider_response(&keys);
    assert_eq!(response["apiVersion"], "externaldata.gatekeeper.sh/v1beta1");
    assert_eq!(response["kind"], "ProviderResponse");
    assert_eq!(response["response"]["idempotent"], true);
    assert_eq!(response["response"]["systemError"], "");
    let items = response["response"]["items"].as_array().unwrap();
    assert_eq!(items[0]["key"], signed.as_str());
    assert_eq!(items[0]["value"]["verified"], true);
    assert!(items[0].get("error").is_none());
    assert!(items[1]["error"].as_str().unwrap().starts_with("unsigned"));
}

fn pod(name: &str, images: &[&str]) -> String {
    let containers: String = images
        .iter()
        .enumerate()
        .map(|(i, image)| format!("    - name: c{i}\n      image: {image}\n"))
        .collect();
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  containers:\n{containers}")
}

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/image-signatures")
}

fn check(s: &Setup, manifests: &Path, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args([
            "check",
            "--no-default-policies",
            "--no-schemas",
            "--format",
            "json",
        ])
        .arg("--policies")
        .arg(policies_dir().join("template.yaml"))
        .arg("--policies")
        .arg(policies_dir().join("samples/default/constraint.yaml"))
        .arg("--insecure-registry")
        .arg(&s.registry.host)
        .arg("--registry-config")
        .arg(s.keys.path().join("docker-config.json"))
        .args(extra)
        .arg(manifests)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The messages of the `deny` findings of a JSON report.
fn denied(stdout: &str) -> Vec<String> {
    let report: Value = serde_json::from_str(stdout).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "deny")
        .map(|f| f["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn check_verifies_the_signed_image_template() {
    let s = setup();
    s.signed("shop/api", "1.0");
    s.registry.push_image("shop/api", "2.0", "unsigned");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, pod("good", &[&s.image("shop/api", "1.0")])).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        pod(
            "bad",
            &[&s.image("shop/api", "1.0"), &s.image("shop/api", "2.0")],
        ),
    )
    .unwrap();
    let key = s.trusted.to_string_lossy().into_owned();

    let (code, stdout, stderr) = check(&s, &good, &["--signature-key", &key]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["summary"]["deny"], 0, "{stdout}");

    let (code, stdout, stderr) = check(&s, &bad, &["--signature-key", &key]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let messages = denied(&stdout);
    assert_eq!(messages.len(), 1, "{stdout}");
    assert!(
        messages[0].starts_with(&format!(
            "image <{}> failed signature verification: unsigned:",
            s.image("shop/api", "2.0")
        )),
        "{}",
        messages[0]
    );

    // Without a trust policy the constraint is not evaluated, and the report says so once.
    let (code, stdout, _) = check(&s, &bad, &[]);
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let notes: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["message"]
                .as_str()
                .unwrap()
                .contains("signature verification is not configured")
        })
        .collect();
    assert_eq!(notes.len(), 1, "{stdout}");
    assert_eq!(notes[0]["severity"], "info");

    // A bad key file stops the run with a usage error naming it.
    let missing = dir.path().join("missing.pub");
    let (code, _, stderr) = check(&s, &good, &["--signature-key", &missing.to_string_lossy()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing.pub"), "{stderr}");
}

// ---- keyless: certificates for OIDC identities, transparency log entries, CT timestamps ----

const ISSUER: &str = "https://token.actions.githubusercontent.com";
const WORKFLOW: &str =
    "https://github.com/acme/shop/.github/workflows/release.yml@refs/tags/v1.0.0";

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The trusted root of `sigstore`; without CT logs it accepts certificates without their
/// signed certificate timestamps checked (as `--insecure-ignore-sct`).
fn root(sigstore: &Sigstore, with_ct: bool) -> TrustedRoot {
    TrustedRoot::parse("trusted_root.json", &sigstore.trusted_root(with_ct))
        .unwrap()
        .insecure_ignore_sct(!with_ct)
}

fn workflow_identity() -> Identity {
    Identity::new(
        Some(ISSUER),
        None,
        None,
        Some(r"^https://github\.com/acme/shop/\.github/workflows/release\.yml@refs/tags/"),
    )
    .unwrap()
}

/// The log entry of a `dev.sigstore.cosign/bundle` annotation.
fn entry(bundle: Option<&str>) -> Vec<LogEntry> {
    bundle
        .map(|b| LogEntry::from_cosign_bundle(b).unwrap())
        .into_iter()
        .collect()
}

/// Verifies `payload` signed as `o` says against `root`.
fn keyless(
    sigstore: &Sigstore,
    root: &TrustedRoot,
    o: &Options,
    identities: &[Identity],
) -> Result<String, Rejection> {
    let payload = b"{\"critical\":{}}";
    let signed = sigstore.sign(payload, o);
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &signed.signature,
    )
    .unwrap();
    root.verify(
        identities,
        &Signed {
            message: payload,
            payload,
            signature: &signature,
            certificate: Certificate::Pem(&signed.certificate),
            entries: entry(signed.bundle.as_deref()),
            timestamps: Vec::new(),
        },
    )
    .map(|signer| signer.to_string())
}

#[test]
fn keyless_signature_verifies_for_its_identity() {
    let sigstore = Sigstore::new(now());
    for with_ct in [true, false] {
        let root = root(&sigstore, with_ct);
        let signer = keyless(
            &sigstore,
            &root,
            &Options::new(WORKFLOW, ISSUER, now()),
            &[workflow_identity()],
        )
        .unwrap();
        assert_eq!(signer, format!("{WORKFLOW} (issuer {ISSUER})"));
    }
    // An email subject, matched exactly, among several identities.
    let root = root(&sigstore, true);
    let email = Identity::new(
        Some("https://accounts.google.com"),
        None,
        Some("release@acme.example"),
        None,
    )
    .unwrap();
    let o = Options::new("release@acme.example", "https://accounts.google.com", now());
    assert!(keyless(&sigstore, &root, &o, &[workflow_identity(), email]).is_ok());
}

#[test]
fn keyless_signature_by_another_identity_is_rejected() {
    let sigstore = Sigstore::new(now());
    let root = root(&sigstore, true);
    let fork = "https://github.com/evil/shop/.github/workflows/release.yml@refs/tags/v1.0.0";
    let e = keyless(
        &sigstore,
        &root,
        &Options::new(fork, ISSUER, now()),
        &[workflow_identity()],
    )
    .unwrap_err();
    assert!(matches!(e, Rejection::Identity { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.starts_with("wrong identity: the certificate is for https://github.com/evil/"),
        "{message}"
    );
    assert!(
        message.contains("the trust policy wants /^https://github"),
        "{message}"
    );
    // The right subject from another issuer.
    let e = keyless(
        &sigstore,
        &root,
        &Options::new(WORKFLOW, "https://gitlab.com", now()),
        &[workflow_identity()],
    )
    .unwrap_err();
    assert!(e.to_string().contains("(issuer https://gitlab.com)"), "{e}");
}

#[test]
fn keyless_certificate_of_another_authority_is_untrusted() {
    let now = now();
    let trusted = Sigstore::new(now);
    let other = Sigstore::new(now);
    let e = keyless(
        &other,
        &root(&trusted, false),
        &Options::new(WORKFLOW, ISSUER, now),
        &[workflow_identity()],
    )
    .unwrap_err();
    // The other authority's log key signed the entry: the log check fails first.
    assert!(
        e.to_string()
            .starts_with("transparency log: the entry is in log"),
        "{e}"
    );

    // A trusted root naming the other authority's log but not its certificate authority.
    let mut mixed: Value = serde_json::from_str(&trusted.trusted_root(false)).unwrap();
    let theirs: Value = serde_json::from_str(&other.trusted_root(false)).unwrap();
    mixed["tlogs"] = theirs["tlogs"].clone();
    let mixed = TrustedRoot::parse("mixed.json", &mixed.to_string()).unwrap();
    let e = keyless(
        &other,
        &mixed,
        &Options::new(WORKFLOW, ISSUER, now),
        &[workflow_identity()],
    )
    .unwrap_err();
    assert!(matches!(e, Rejection::Certificate(_)), "{e}");
    assert!(e.to_string().starts_with("untrusted certificate: "), "{e}");
    assert!(
        e.to_string().contains("does not verify with the key of"),
        "{e}"
    );
}

#[test]
fn keyless_certificate_must_be_valid_and_for_code_signing() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let root = root(&sigstore, true);
    let mut late = Options::new(WORKFLOW, ISSUER, now);
    late.issued_at = now - 3600; // expired ten minutes after, logged an hour later
    let e = keyless(&sigstore, &root, &late, &[workflow_identity()]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("untrusted certificate: the signature was logged at"),
        "{e}"
    );
    assert!(
        e.to_string().contains("outside the certificate's validity"),
        "{e}"
    );

    let mut usage = Options::new(WORKFLOW, ISSUER, now);
    usage.no_code_signing = true;
    let e = keyless(&sigstore, &root, &usage, &[workflow_identity()]).unwrap_err();
    assert!(e.to_string().contains("not for code signing"), "{e}");

    // Logged before the authority's validity starts.
    let mut early = Options::new(WORKFLOW, ISSUER, now);
    early.issued_at = sigstore.valid_from - 3600;
    early.logged_at = sigstore.valid_from - 3500;
    let e = keyless(&sigstore, &root, &early, &[workflow_identity()]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("untrusted certificate: the certificate authority"),
        "{e}"
    );
}

#[test]
fn keyless_log_entry_must_be_present_signed_and_for_this_signature() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let root = root(&sigstore, true);
    let ids = [workflow_identity()];
    type Change = fn(&mut Options);
    let cases: [(Change, &str); 3] = [
        (
            |o| o.bundle = false,
            "transparency log: the signature has no log entry",
        ),
        (
            |o| o.forge_entry_timestamp = true,
            "transparency log: the signed entry timestamp does not verify",
        ),
        (
            |o| o.entry_for_other_payload = true,
            "transparency log: the entry records the hash of another payload",
        ),
    ];
    for (change, wanted) in cases {
        let mut o = Options::new(WORKFLOW, ISSUER, now);
        change(&mut o);
        let e = keyless(&sigstore, &root, &o, &ids).unwrap_err();
        assert!(e.to_string().starts_with(wanted), "{e}");
    }

    // The bundle of another signing (its certificate and signature) next to this one.
    let payload = b"{}";
    let first = sigstore.sign(payload, &Options::new(WORKFLOW, ISSUER, now));
    let second = sigstore.sign(payload, &Options::new(WORKFLOW, ISSUER, now));
    let decode =
        |s: &str| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).unwrap();
    let signature = decode(&first.signature);
    let mixed = Signed {
        message: payload,
        payload,
        signature: &signature,
        certificate: Certificate::Pem(&first.certificate),
        entries: entry(second.bundle.as_deref()),
        timestamps: Vec::new(),
    };
    let e = root.verify(&ids, &mixed).unwrap_err();
    assert!(e.to_string().contains("records another signature"), "{e}");
    let other_signature = decode(&second.signature);
    let mixed = Signed {
        signature: &other_signature,
        ..mixed.clone()
    };
    let e = root.verify(&ids, &mixed).unwrap_err();
    assert!(e.to_string().contains("records another certificate"), "{e}");

    // A payload signature that is not the certificate key's, recorded as such in the log.
    let mut o = Options::new(WORKFLOW, ISSUER, now);
    o.entry_for_other_payload = true;
    let signed = sigstore.sign(b"signed payload", &o);
    let signature = decode(&signed.signature);
    let e = root
        .verify(
            &ids,
            &Signed {
                message: b"another payload",
                payload: b"another payload",
                signature: &signature,
                certificate: Certificate::Pem(&signed.certificate),
                entries: entry(signed.bundle.as_deref()),
                timestamps: Vec::new(),
            },
        )
        .unwrap_err();
    assert!(matches!(e, Rejection::Signature(_)), "{e}");
    assert!(e.to_string().starts_with("bad signature:"), "{e}");
    // Fulcio-like certificates have an empty subject name: the message names the identity.
    assert!(!e.to_string().contains("()"), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("(for {WORKFLOW} (issuer {ISSUER}))")),
        "{e}"
    );
}

#[test]
fn keyless_certificate_needs_a_ct_timestamp_when_the_root_lists_ct_logs() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let ids = [workflow_identity()];
    let mut o = Options::new(WORKFLOW, ISSUER, now);
    o.sct = false;
    let e = keyless(&sigstore, &root(&sigstore, true), &o, &ids).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("certificate transparency: the certificate has no embedded"),
        "{e}"
    );
    assert!(keyless(&sigstore, &root(&sigstore, false), &o, &ids).is_ok());

    let mut o = Options::new(WORKFLOW, ISSUER, now);
    o.forge_sct = true;
    let e = keyless(&sigstore, &root(&sigstore, true), &o, &ids).unwrap_err();
    assert!(
        e.to_string()
            .contains("none of the 1 embedded timestamp(s) verifies"),
        "{e}"
    );
}

#[test]
fn trusted_root_chains_must_hold_together() {
    let now = now();
    let a = Sigstore::new(now);
    let b = Sigstore::new(now);
    let mut root: Value = serde_json::from_str(&a.trusted_root(true)).unwrap();
    let theirs: Value = serde_json::from_str(&b.trusted_root(true)).unwrap();
    root["certificateAuthorities"][0]["certChain"]["certificates"][1] =
        theirs["certificateAuthorities"][0]["certChain"]["certificates"][1].clone();
    let e = TrustedRoot::parse("root.json", &root.to_string()).unwrap_err();
    assert!(
        e.contains("certificateAuthorities[0]: the chain does not hold together"),
        "{e}"
    );
    let mut root: Value = serde_json::from_str(&a.trusted_root(true)).unwrap();
    root["tlogs"] = json!([]);
    let e = TrustedRoot::parse("root.json", &root.to_string()).unwrap_err();
    assert!(e.contains("no tlogs"), "{e}");
    let mut root: Value = serde_json::from_str(&a.trusted_root(true)).unwrap();
    root["tlogs"][0]["publicKey"]["rawBytes"] = json!("AAAA");
    let e = TrustedRoot::parse("root.json", &root.to_string()).unwrap_err();
    assert!(e.contains("tlogs[0].publicKey: not an ECDSA"), "{e}");
}

impl Setup {
    /// Pushes an image and signs it keyless as `o` says; returns its digest.
    fn signed_keyless(
        &self,
        sigstore: &Sigstore,
        repository: &str,
        tag: &str,
        o: &Options,
    ) -> String {
        let digest = self
            .registry
            .push_image(repository, tag, &format!("{repository}:{tag}"));
        let payload = support::payload(
            &self.registry.host,
            repository,
            &digest,
            &[("ci", "release")],
        );
        let signed = sigstore.sign(&payload, o);
        self.registry.push_signature_layers(
            repository,
            &digest,
            &[(payload, signed.annotations())],
        );
        digest
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.keys.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[test]
fn keyless_signed_images_verify_through_the_registry() {
    let s = setup();
    let now = now();
    let sigstore = Sigstore::new(now);
    s.write("trusted_root.json", &sigstore.trusted_root(true));
    let good = s.signed_keyless(
        &sigstore,
        "shop/api",
        "1.0",
        &Options::new(WORKFLOW, ISSUER, now),
    );
    let fork = "https://github.com/evil/shop/.github/workflows/release.yml@refs/tags/v1.0.0";
    s.signed_keyless(
        &sigstore,
        "shop/api",
        "2.0",
        &Options::new(fork, ISSUER, now),
    );
    s.signed("shop/keyed", "1.0");
    let policy = s.write(
        "trust.yaml",
        &format!(
            "apiVersion: validator.policy/v1\nkind: ImageTrustPolicy\ntrustedRoot: trusted_root.json\nrules:\n  - images: ['{host}/shop/*']\n    identities:\n      - issuer: {ISSUER}\n        subjectRegExp: '^https://github\\.com/acme/shop/'\n    annotations: {{ci: release}}\n",
            host = s.registry.host
        ),
    );
    let args = Args {
        trust_policy: Some(policy),
        signature_keys: Vec::new(),
        ..s.args()
    };
    let v = args.verifier().unwrap().unwrap();
    let ok = v.verify(&s.image("shop/api", "1.0")).unwrap();
    assert_eq!(ok.digest, good);
    assert_eq!(ok.key, format!("{WORKFLOW} (issuer {ISSUER})"));
    let e = failure(&v, &s.image("shop/api", "2.0"));
    assert!(
        matches!(e, Failure::Keyless(Rejection::Identity { .. })),
        "{e}"
    );
    // Signed with a key, not by a trusted identity.
    let e = failure(&v, &s.image("shop/keyed", "1.0"));
    assert!(
        e.to_string()
            .starts_with("no valid signature: 1 signature(s)")
            && e.to_string()
                .contains("none verifies with the trusted identities /^https://github"),
        "{e}"
    );

    // The same through cosign-style flags; a key and an identity together accept either.
    let flags = Args {
        trusted_root: Some(s.keys.path().join("trusted_root.json")),
        certificate_identity: Some(WORKFLOW.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        ..s.args()
    };
    let v = flags.verifier().unwrap().unwrap();
    assert!(v.verify(&s.image("shop/api", "1.0")).is_ok());
    assert!(v.verify(&s.image("shop/keyed", "1.0")).is_ok());
    assert!(failure(&v, &s.image("shop/api", "2.0"))
        .to_string()
        .starts_with("wrong identity"));

    // Identity flags need a trusted root and both halves of the identity.
    let e = Args {
        trusted_root: None,
        ..flags.clone()
    }
    .verifier()
    .unwrap_err();
    assert!(e.contains("need --trusted-root"), "{e}");
    let e = Args {
        certificate_oidc_issuer: None,
        ..flags.clone()
    }
    .verifier()
    .unwrap_err();
    assert!(e.contains("issuer is missing"), "{e}");
}

#[test]
fn check_verifies_keyless_signatures_with_cosign_flags() {
    let s = setup();
    let now = now();
    let sigstore = Sigstore::new(now);
    let root = s.write("trusted_root.json", &sigstore.trusted_root(true));
    s.signed_keyless(
        &sigstore,
        "shop/api",
        "1.0",
        &Options::new(WORKFLOW, ISSUER, now),
    );
    let mut unlogged = Options::new(WORKFLOW, ISSUER, now);
    unlogged.bundle = false;
    s.signed_keyless(&sigstore, "shop/api", "2.0", &unlogged);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        pod(
            "web",
            &[&s.image("shop/api", "1.0"), &s.image("shop/api", "2.0")],
        ),
    )
    .unwrap();
    let root = root.to_string_lossy().into_owned();
    let flags = [
        "--trusted-root",
        &root,
        "--certificate-identity-regexp",
        "^https://github.com/acme/",
        "--certificate-oidc-issuer",
        ISSUER,
    ];
    let (code, stdout, stderr) = check(&s, &manifest, &flags);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let denied = denied(&stdout);
    assert_eq!(denied.len(), 1, "{stdout}");
    assert!(
        denied[0].contains(&s.image("shop/api", "2.0")),
        "{}",
        denied[0]
    );
    assert!(
        denied[0].contains("transparency log: the signature has no log entry"),
        "{}",
        denied[0]
    );

    // A trusted root that is not one stops the run with a usage error naming it.
    let bad = s.write("bad_root.json", "{}");
    let (code, _, stderr) = check(
        &s,
        &manifest,
        &[
            "--trusted-root",
            &bad.to_string_lossy(),
            "--certificate-identity",
            WORKFLOW,
            "--certificate-oidc-issuer",
            ISSUER,
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("bad_root.json: no certificateAuthorities"),
        "{stderr}"
    );
}

// ---- serve: the admission webhook and the provider endpoint over HTTPS ----

struct Pki {
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

fn https_client(ca_pem: &str) -> reqwest::Client {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

fn admission(name: &str, images: &[&str]) -> Value {
    let object: Value = serde_yaml::from_str(&pod(name, images)).unwrap();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("uid-{name}"), "operation": "CREATE", "namespace": "shop", "name": name,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "object": object, "userInfo": {"username": "alice"}
    }})
}

#[test]
fn serve_denies_unsigned_images_and_answers_provider_requests() {
    let s = setup();
    s.signed("shop/api", "1.0");
    s.registry.push_image("shop/api", "2.0", "unsigned");
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    for (from, to) in [
        ("template.yaml", "template.yaml"),
        ("samples/default/constraint.yaml", "constraint.yaml"),
    ] {
        std::fs::copy(policies_dir().join(from), policies.join(to)).unwrap();
    }
    let verifier = s.verifier();
    let config = |verifier: Option<Arc<Verifier>>, provider: bool| validator::webhook::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_cert: pki.cert.clone(),
        tls_key: pki.key.clone(),
        sources: validator::webhook::state::Sources {
            bundle: None,
            paths: vec![policies.clone()],
            enable_cel: true,
            exempt_namespaces: Vec::new(),
            waivers: Vec::new(),
            verifier,
            inventory: None,
        },
        timeout: Duration::from_secs(10),
        fail_closed: true,
        max_body_bytes: 1 << 20,
        max_concurrency: 4,
        reload_interval: Duration::from_secs(60),
        provider,
        cluster: Default::default(),
        limits: Default::default(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Unconfigured, the webhook refuses to start with the constraint enabled.
        let e = validator::webhook::start(config(None, false)).await.err().unwrap();
        assert!(e.to_string().contains("signature verification is not configured"), "{e}");

        let running = validator::webhook::start(config(Some(verifier.clone()), true))
            .await
            .unwrap();
        let base = format!("https://127.0.0.1:{}", running.addr.port());
        let client = https_client(&pki.ca_pem);
        let post = |path: &str, body: Value| {
            let request = client.post(format!("{base}{path}")).json(&body);
            async move {
                let response = request.send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.json::<Value>().await.unwrap()
            }
        };
        let allowed = post("/validate", admission("good", &[&s.image("shop/api", "1.0")])).await;
        assert_eq!(allowed["response"]["allowed"], true, "{allowed}");
        let denied = post("/validate", admission("bad", &[&s.image("shop/api", "2.0")])).await;
        assert_eq!(denied["response"]["allowed"], false, "{denied}");
        let message = denied["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains("failed signature verification: unsigned:"), "{message}");

        let answer = post(
            "/provider",
            json!({"apiVersion": "externaldata.gatekeeper.sh/v1beta1", "kind": "ProviderRequest",
                   "request": {"keys": [s.image("shop/api", "1.0"), s.image("shop/api", "2.0"), "Not A Ref"]}}),
        )
        .await;
        assert_eq!(answer["kind"], "ProviderResponse");
        let items = answer["response"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{answer}");
        assert_eq!(items[0]["value"]["verified"], true);
        assert!(items[1]["error"].as_str().unwrap().starts_with("unsigned"));
        assert!(items[2]["error"].as_str().unwrap().starts_with("invalid image reference"));
        let bad = client
            .post(format!("{base}/provider"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status().as_u16(), 400);
        running.stop();
    });
}

#[test]
fn provider_mode_needs_a_trust_policy() {
    let output = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args([
            "serve",
            "--tls-cert",
            "tls.crt",
            "--tls-key",
            "tls.key",
            "--provider",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--provider") && stderr.contains("--trust-policy"),
        "{stderr}"
    );
}

// ---- cosign 3: Sigstore bundles stored as OCI artifacts referring to the image ----

const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

impl Setup {
    /// Pushes an image and refers a Sigstore bundle to it; returns its digest.
    fn with_bundle(&self, repository: &str, bundle: impl Fn(&str) -> String) -> String {
        let digest = self.registry.push_image(repository, "1.0", repository);
        self.registry
            .push_referrer(repository, &digest, &bundle(&digest), SIGN_PREDICATE);
        digest
    }
}

#[test]
fn cosign3_bundles_verify_by_key_and_keyless() {
    let s = setup();
    let now = now();
    let sigstore = Sigstore::new(now);
    s.write("trusted_root.json", &sigstore.trusted_root(true));
    let statement = |digest: &str| sigstore::sign_statement(digest, SIGN_PREDICATE, &[]);
    let keyed = s.with_bundle("shop/keyed", |d| {
        sigstore::key_bundle(&statement(d), &signing_key(1))
    });
    let keyless = s.with_bundle("shop/keyless", |d| {
        sigstore.sign_bundle(&statement(d), &Options::new(WORKFLOW, ISSUER, now))
    });
    let args = Args {
        trusted_root: Some(s.keys.path().join("trusted_root.json")),
        certificate_identity: Some(WORKFLOW.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        ..s.args()
    };
    let v = args.verifier().unwrap().unwrap();
    let ok = v.verify(&s.image("shop/keyed", "1.0")).unwrap();
    assert_eq!(
        (ok.digest.as_str(), ok.key.ends_with("cosign.pub")),
        (keyed.as_str(), true),
        "{ok:?}"
    );
    let ok = v.verify(&s.image("shop/keyless", "1.0")).unwrap();
    assert_eq!(ok.digest, keyless);
    assert_eq!(ok.key, format!("{WORKFLOW} (issuer {ISSUER})"));
    // Both, next to a legacy signature of the same image: any trusted one suffices.
    s.registry
        .sign("shop/keyless", &keyless, &[&signing_key(1)], &[]);
    assert!(v.verify(&s.image("shop/keyless", "1.0")).is_ok());
}

#[test]
fn cosign3_bundles_fail_closed() {
    let s = setup();
    let now = now();
    let sigstore = Sigstore::new(now);
    s.write("trusted_root.json", &sigstore.trusted_root(true));
    let args = Args {
        trusted_root: Some(s.keys.path().join("trusted_root.json")),
        certificate_identity: Some(WORKFLOW.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        ..s.args()
    };
    let statement = |digest: &str| sigstore::sign_statement(digest, SIGN_PREDICATE, &[]);
    // Signed by another key.
    s.with_bundle("shop/other-key", |d| {
        sigstore::key_bundle(&statement(d), &signing_key(2))
    });
    // A statement about another image.
    let other = s.registry.push_image("shop/elsewhere", "1.0", "elsewhere");
    s.with_bundle("shop/moved", |_| {
        sigstore::key_bundle(&statement(&other), &signing_key(1))
    });
    // Another identity; a log entry for another statement.
    let fork = "https://github.com/evil/shop/.github/workflows/release.yml@refs/tags/v1.0.0";
    s.with_bundle("shop/fork", |d| {
        sigstore.sign_bundle(&statement(d), &Options::new(fork, ISSUER, now))
    });
    let mut other_entry = Options::new(WORKFLOW, ISSUER, now);
    other_entry.entry_for_other_payload = true;
    s.with_bundle("shop/entry", |d| {
        sigstore.sign_bundle(&statement(d), &other_entry)
    });
    // Only an attestation (SLSA provenance), no signature.
    let attested = s.registry.push_image("shop/attested", "1.0", "attested");
    let provenance = sigstore::sign_statement(&attested, "https://slsa.dev/provenance/v1", &[]);
    s.registry.push_referrer(
        "shop/attested",
        &attested,
        &sigstore.sign_bundle(&provenance, &Options::new(WORKFLOW, ISSUER, now)),
        "https://slsa.dev/provenance/v1",
    );
    let v = args.verifier().unwrap().unwrap();
    let message = |repository: &str| failure(&v, &s.image(repository, "1.0")).to_string();
    assert!(
        message("shop/other-key").starts_with("no valid signature: 1 signature(s)"),
        "{}",
        message("shop/other-key")
    );
    assert!(
        message("shop/moved").starts_with("signature for another image:"),
        "{}",
        message("shop/moved")
    );
    assert!(
        message("shop/fork").starts_with("wrong identity:"),
        "{}",
        message("shop/fork")
    );
    assert!(
        message("shop/entry")
            .starts_with("transparency log: the entry records the hash of another payload"),
        "{}",
        message("shop/entry")
    );
    let attested = message("shop/attested");
    assert!(attested.starts_with("unsigned:"), "{attested}");
    assert!(
        attested.contains("attestations (https://slsa.dev/provenance/v1), not signatures")
            && !attested.contains("no Sigstore bundle referring to it"),
        "{attested}"
    );
    // Annotations (`-a`) are read from the statement.
    let annotated = s.with_bundle("shop/annotated", |d| {
        sigstore::key_bundle(
            &sigstore::sign_statement(d, SIGN_PREDICATE, &[("env", "prod")]),
            &signing_key(1),
        )
    });
    let mut with_annotation = s.args();
    with_annotation.signature_annotations = vec!["env=prod".into()];
    let verified = with_annotation
        .verifier()
        .unwrap()
        .unwrap()
        .verify(&s.image("shop/annotated", "1.0"))
        .unwrap();
    assert_eq!(verified.digest, annotated);
    with_annotation.signature_annotations = vec!["env=staging".into()];
    let e = failure(
        &with_annotation.verifier().unwrap().unwrap(),
        &s.image("shop/annotated", "1.0"),
    );
    assert!(e.to_string().starts_with("annotations do not match"), "{e}");
}

#[test]
fn modified_payload_is_not_reported_as_a_wrong_key() {
    let s = setup();
    let digest = s.registry.push_image("shop/api", "1.0", "modified");
    let signed = support::payload(&s.registry.host, "shop/api", &digest, &[]);
    let signature: p256::ecdsa::Signature =
        p256::ecdsa::signature::Signer::sign(&signing_key(1), &signed);
    let mut modified = support::payload(&s.registry.host, "shop/api", &digest, &[("env", "prod")]);
    modified.push(b'\n');
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        signature.to_der().as_bytes(),
    );
    s.registry.push_signature_layers(
        "shop/api",
        &digest,
        &[(
            modified,
            vec![("dev.cosignproject.cosign/signature", encoded)],
        )],
    );
    let e = failure(&s.verifier(), &s.image("shop/api", "1.0")).to_string();
    assert!(!e.starts_with("wrong key"), "{e}");
    assert!(
        e.starts_with("no valid signature: 1 signature(s)")
            && e.contains("or the signed payload was changed"),
        "{e}"
    );
}

// ---- legacy rekord entries, trusted roots without CT logs ----

#[test]
fn legacy_rekord_entries_verify() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let root = root(&sigstore, true);
    let mut o = Options::new(WORKFLOW, ISSUER, now);
    o.rekord = true;
    let signer = keyless(&sigstore, &root, &o, &[workflow_identity()]).unwrap();
    assert_eq!(signer, format!("{WORKFLOW} (issuer {ISSUER})"));
    o.entry_for_other_payload = true;
    let e = keyless(&sigstore, &root, &o, &[workflow_identity()]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("transparency log: the entry records the hash of another payload"),
        "{e}"
    );
}

#[test]
fn trusted_root_without_ct_logs_needs_insecure_ignore_sct() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let o = Options::new(WORKFLOW, ISSUER, now);
    // The library refuses the certificate...
    let strict = TrustedRoot::parse("trusted_root.json", &sigstore.trusted_root(false)).unwrap();
    let e = keyless(&sigstore, &strict, &o, &[workflow_identity()]).unwrap_err();
    assert!(
        e.to_string().starts_with(
            "certificate transparency: the trusted root trusted_root.json lists no CT logs"
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--insecure-ignore-sct"), "{e}");
    let lenient = strict.clone().insecure_ignore_sct(true);
    assert!(keyless(&sigstore, &lenient, &o, &[workflow_identity()]).is_ok());

    // ... and the flags and trust policies refuse such a root unless told to skip the check.
    let s = setup();
    let digest = s.with_bundle("shop/keyless", |d| {
        sigstore.sign_bundle(
            &sigstore::sign_statement(d, SIGN_PREDICATE, &[]),
            &Options::new(WORKFLOW, ISSUER, now),
        )
    });
    let root_path = s.write("trusted_root.json", &sigstore.trusted_root(false));
    let mut args = Args {
        trusted_root: Some(root_path.clone()),
        certificate_identity: Some(WORKFLOW.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        ..s.args()
    };
    let e = args.verifier().unwrap_err();
    assert!(
        e.contains("trusted_root.json: the trusted root lists no CT logs")
            && e.contains("--insecure-ignore-sct"),
        "{e}"
    );
    args.insecure_ignore_sct = true;
    let ok = args
        .verifier()
        .unwrap()
        .unwrap()
        .verify(&s.image("shop/keyless", "1.0"))
        .unwrap();
    assert_eq!(ok.digest, digest);
    let policy = |ignore: &str| {
        s.write(
            "trust.yaml",
            &format!(
                "apiVersion: validator.policy/v1\nkind: ImageTrustPolicy\ntrustedRoot: trusted_root.json\n{ignore}rules:\n  - images: ['*']\n    identities: [{{issuer: '{ISSUER}', subject: '{WORKFLOW}'}}]\n"
            ),
        );
        Args {
            trust_policy: Some(s.keys.path().join("trust.yaml")),
            signature_keys: Vec::new(),
            ..s.args()
        }
        .verifier()
    };
    assert!(policy("").unwrap_err().contains("insecureIgnoreSct: true"));
    let v = policy("insecureIgnoreSct: true\n").unwrap().unwrap();
    assert!(v.verify(&s.image("shop/keyless", "1.0")).is_ok());

    // From the command line: exit 2 with the reason, before any check.
    let output = Command::new(env!("CARGO_BIN_EXE_validator"))
        .args(["check", "--trusted-root"])
        .arg(&root_path)
        .args([
            "--certificate-identity",
            WORKFLOW,
            "--certificate-oidc-issuer",
            ISSUER,
        ])
        .arg(s.write("pod.yaml", &pod("api", &["nginx:1.27"])))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--insecure-ignore-sct"), "{stderr}");
}

// ---- Rekor v2: inclusion proofs, checkpoints, RFC 3161 timestamps ----

/// Verifies a Sigstore bundle (JSON) keyless against `root`.
fn verify_bundle(
    bundle: &str,
    root: &TrustedRoot,
    identities: &[Identity],
) -> Result<String, Rejection> {
    validator::signature::bundle::Bundle::parse(bundle.as_bytes())
        .unwrap()
        .verify_keyless(root, identities)
        .map(|signer| signer.to_string())
}

#[test]
fn rekor_v2_bundles_verify_with_their_inclusion_proof_checkpoint_and_timestamp() {
    let now = now();
    let sigstore = Sigstore::new(now);
    let root = root(&sigstore, true);
    let ids = [workflow_identity()];
    let statement = sigstore::sign_statement("sha256:ab", SIGN_PREDICATE, &[]);
    let sign = |change: fn(&mut Options)| {
        let mut o = Options::rekor_v2(WORKFLOW, ISSUER, now);
        change(&mut o);
        verify_bundle(&sigstore.sign_bundle(&statement, &o), &root, &ids)
    };
    assert_eq!(
        sign(|_| {}).unwrap(),
        format!("{WORKFLOW} (issuer {ISSUER})")
    );
    // The first entry that verifies counts, not only the first entry.
    assert!(sign(|o| o.foreign_entry_first = true).is_ok());
    // A `dsse 0.0.2` entry records the statement's hash.
    assert!(sign(|o| o.v2_dsse = true).is_ok());
    let e = sign(|o| {
        o.v2_dsse = true;
        o.entry_for_other_payload = true;
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(
            "transparency log: Rekor v2 entry 4242: the entry records the hash of another payload"
        ),
        "{e}"
    );
    let mut v1 = Options::new(WORKFLOW, ISSUER, now);
    v1.foreign_entry_first = true;
    v1.rfc3161 = true;
    assert!(verify_bundle(&sigstore.sign_bundle(&statement, &v1), &root, &ids).is_ok());

    type Change = fn(&mut Options);
    let cases: [(Change, &str); 7] = [
        (
            |o| o.tamper_proof = true,
            "transparency log: Rekor v2 entry 4242: the inclusion proof does not lead to its root hash",
        ),
        (
            |o| o.tamper_checkpoint = true,
            "transparency log: Rekor v2 entry 4242: the checkpoint is for another tree",
        ),
        (
            |o| o.forge_checkpoint = true,
            "transparency log: Rekor v2 entry 4242: the checkpoint of rekor2.sigstore.test has no signature that verifies",
        ),
        (
            |o| o.rfc3161 = false,
            "transparency log: Rekor v2 entry 4242: Rekor v2 entries carry no time of their own",
        ),
        (
            |o| o.forge_rfc3161 = true,
            "timestamp authority: the RFC 3161 timestamp: its signature does not verify",
        ),
        (
            |o| o.entry_for_other_payload = true,
            "transparency log: Rekor v2 entry 4242: the entry records the hash of another payload",
        ),
        (
            |o| {
                o.tamper_proof = true;
                o.foreign_entry_first = true;
            },
            "transparency log: none of the 2 log entries verifies; the first: Rekor v2 entry 4242: the entry is in log",
        ),
    ];
    for (change, wanted) in cases {
        let e = sign(change).unwrap_err().to_string();
        assert!(e.starts_with(wanted), "wanted {wanted}\n got {e}");
    }
    // Timestamped outside the certificate's validity.
    let e = sign(|o| o.logged_at += 3600).unwrap_err().to_string();
    assert!(
        e.starts_with("untrusted certificate: the signature was logged at"),
        "{e}"
    );
}

#[test]
fn rekor_v2_signed_images_verify_through_the_registry() {
    let s = setup();
    let now = now();
    let sigstore = Sigstore::new(now);
    s.write("trusted_root.json", &sigstore.trusted_root(true));
    let statement = |digest: &str| sigstore::sign_statement(digest, SIGN_PREDICATE, &[]);
    let good = s.with_bundle("shop/v2", |d| {
        sigstore.sign_bundle(&statement(d), &Options::rekor_v2(WORKFLOW, ISSUER, now))
    });
    let mut tampered = Options::rekor_v2(WORKFLOW, ISSUER, now);
    tampered.tamper_proof = true;
    s.with_bundle("shop/v2-tampered", |d| {
        sigstore.sign_bundle(&statement(d), &tampered)
    });
    let v = Args {
        trusted_root: Some(s.keys.path().join("trusted_root.json")),
        certificate_identity: Some(WORKFLOW.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        ..s.args()
    }
    .verifier()
    .unwrap()
    .unwrap();
    assert_eq!(v.verify(&s.image("shop/v2", "1.0")).unwrap().digest, good);
    let e = failure(&v, &s.image("shop/v2-tampered", "1.0")).to_string();
    assert!(e.starts_with("transparency log: Rekor v2 entry"), "{e}");
}

// ---- real public Sigstore material (../shared/sigstore-real), read at run time ----

/// The real fixtures' folder, or `None` (the test says why it is skipped).
fn real_fixtures() -> Option<PathBuf> {
    let dir = std::env::var_os("SIGSTORE_REAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigstore-real")
        });
    if dir.join("kubewarden.bundle.json").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: the real Sigstore fixtures are not in {} (set SIGSTORE_REAL_DIR)",
            dir.display()
        );
        None
    }
}

const KUBEWARDEN_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const KUBEWARDEN_IDENTITY: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const BEACON_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";

#[test]
fn real_public_good_bundle_verifies_for_its_identity_and_image_only() {
    let Some(dir) = real_fixtures() else {
        return;
    };
    let s = setup();
    let bundle = std::fs::read_to_string(dir.join("kubewarden.bundle.json")).unwrap();
    let repository = "kubewarden/kubewarden-controller";
    s.registry
        .push_referrer(repository, KUBEWARDEN_DIGEST, &bundle, SIGN_PREDICATE);
    // The same bundle referring to another image.
    let other = s.registry.push_image(repository, "other", "other");
    s.registry
        .push_referrer(repository, &other, &bundle, SIGN_PREDICATE);
    let image = format!("{}/{repository}@{KUBEWARDEN_DIGEST}", s.registry.host);
    let verifier = |root: &str, identity: &str| {
        Args {
            trusted_root: Some(dir.join(root)),
            certificate_identity: Some(identity.into()),
            certificate_oidc_issuer: Some(ISSUER.into()),
            signature_keys: Vec::new(),
            ..s.args()
        }
        .verifier()
        .unwrap()
        .unwrap()
    };
    let v = verifier("trusted_root.prod.json", KUBEWARDEN_IDENTITY);
    let ok = v.verify(&image).unwrap();
    assert_eq!(ok.digest, KUBEWARDEN_DIGEST);
    assert_eq!(ok.key, format!("{KUBEWARDEN_IDENTITY} (issuer {ISSUER})"));

    let e = failure(&v, &format!("{}/{repository}@{other}", s.registry.host)).to_string();
    assert!(e.starts_with("signature for another image:"), "{e}");
    assert!(e.contains(KUBEWARDEN_DIGEST), "{e}");

    let another = KUBEWARDEN_IDENTITY.replace("v1.34.0", "v1.33.0");
    let e = failure(&verifier("trusted_root.prod.json", &another), &image).to_string();
    assert!(
        e.starts_with("wrong identity: the certificate is for "),
        "{e}"
    );
    assert!(e.contains(KUBEWARDEN_IDENTITY), "{e}");

    // The Rekor v1 entry's inclusion proof and the RFC 3161 timestamp are checked too.
    let original: Value = serde_json::from_str(&bundle).unwrap();
    let tampered = |repository: &str, change: &dyn Fn(&mut Value)| {
        let mut bundle = original.clone();
        change(&mut bundle["verificationMaterial"]);
        s.registry.push_referrer(
            repository,
            KUBEWARDEN_DIGEST,
            &bundle.to_string(),
            SIGN_PREDICATE,
        );
        failure(
            &v,
            &format!("{}/{repository}@{KUBEWARDEN_DIGEST}", s.registry.host),
        )
        .to_string()
    };
    let e = tampered("kubewarden/proof", &|m| {
        m["tlogEntries"][0]["inclusionProof"]["hashes"][2] =
            json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    });
    assert!(
        e.starts_with("transparency log: the inclusion proof does not lead to its root hash"),
        "{e}"
    );
    let e = tampered("kubewarden/timestamp", &|m| {
        let stamp = m["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"]
            .as_str()
            .unwrap()
            .to_string();
        let mut der =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, stamp).unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        m["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"] = json!(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
        );
    });
    assert!(
        e.starts_with("timestamp authority: the RFC 3161 timestamp: "),
        "{e}"
    );

    let e = failure(
        &verifier("trusted_root.staging.json", KUBEWARDEN_IDENTITY),
        &image,
    )
    .to_string();
    assert!(
        e.starts_with("timestamp authority:") || e.starts_with("transparency log:"),
        "{e}"
    );
}

#[test]
fn real_rekor_v2_bundle_verifies_and_tampering_is_refused() {
    let Some(dir) = real_fixtures() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("staging-rekor2-dsse.bundle.json")).unwrap();
    let staging = TrustedRoot::load(&dir.join("trusted_root.staging.json")).unwrap();
    let beacon = Identity::new(Some(ISSUER), None, Some(BEACON_IDENTITY), None).unwrap();
    let ids = std::slice::from_ref(&beacon);
    assert_eq!(
        verify_bundle(&text, &staging, ids).unwrap(),
        format!("{BEACON_IDENTITY} (issuer {ISSUER})")
    );
    let original: Value = serde_json::from_str(&text).unwrap();
    let tamper = |change: &dyn Fn(&mut Value)| {
        let mut bundle = original.clone();
        change(&mut bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]);
        verify_bundle(&bundle.to_string(), &staging, ids)
            .unwrap_err()
            .to_string()
    };
    // A hash of the audit path changed.
    let e = tamper(&|proof| {
        let hash = proof["hashes"][3].as_str().unwrap().to_string();
        let flipped = if hash.starts_with('A') { "B" } else { "A" };
        proof["hashes"][3] = json!(format!("{flipped}{}", &hash[1..]));
    });
    assert!(
        e.starts_with("transparency log: Rekor v2 entry 4026478: the inclusion proof does not lead to its root hash"),
        "{e}"
    );
    // The checkpoint's tree size changed (its signature no longer verifies either).
    let e = tamper(&|proof| {
        let note = proof["checkpoint"]["envelope"].as_str().unwrap();
        proof["checkpoint"]["envelope"] = json!(note.replacen("\n4026479\n", "\n4026480\n", 1));
    });
    assert!(
        e.starts_with(
            "transparency log: Rekor v2 entry 4026478: the checkpoint is for another tree"
        ),
        "{e}"
    );
    // The checkpoint's signature by the log removed: only the witnesses' remain.
    let e = tamper(&|proof| {
        let note = proof["checkpoint"]["envelope"].as_str().unwrap();
        let kept: Vec<&str> = note
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("\u{2014} log2025-alpha3"))
            .collect();
        proof["checkpoint"]["envelope"] = json!(kept.concat());
    });
    assert!(
        e.starts_with("transparency log: Rekor v2 entry 4026478: the checkpoint of log2025-alpha3.rekor.sigstage.dev has no signature that verifies"),
        "{e}"
    );
    // Another identity; the production root (which does not list this log).
    let e = verify_bundle(&text, &staging, &[workflow_identity()]).unwrap_err();
    assert!(e.to_string().starts_with("wrong identity:"), "{e}");
    let prod = TrustedRoot::load(&dir.join("trusted_root.prod.json")).unwrap();
    let e = verify_bundle(&text, &prod, ids).unwrap_err().to_string();
    assert!(
        e.starts_with("timestamp authority:")
            || e.contains("Rekor v2 entry 4026478: the entry is in log"),
        "{e}"
    );
    // Without its RFC 3161 timestamp the entry has no time.
    let mut untimed = original.clone();
    untimed["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("timestampVerificationData");
    let e = verify_bundle(&untimed.to_string(), &staging, ids)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Rekor v2 entries carry no time of their own"),
        "{e}"
    );
}

#[test]
fn real_trusted_root_without_ct_logs_is_refused_without_the_flag() {
    let Some(dir) = real_fixtures() else {
        return;
    };
    let mut root: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trusted_root.prod.json")).unwrap())
            .unwrap();
    root["ctlogs"] = json!([]);
    let s = setup();
    let path = s.write("no-ct.json", &root.to_string());
    let mut args = Args {
        trusted_root: Some(path),
        certificate_identity: Some(KUBEWARDEN_IDENTITY.into()),
        certificate_oidc_issuer: Some(ISSUER.into()),
        signature_keys: Vec::new(),
        ..s.args()
    };
    let e = args.verifier().unwrap_err();
    assert!(
        e.contains("lists no CT logs") && e.contains("--insecure-ignore-sct"),
        "{e}"
    );
    args.insecure_ignore_sct = true;
    let bundle = std::fs::read_to_string(dir.join("kubewarden.bundle.json")).unwrap();
    let repository = "kubewarden/kubewarden-controller";
    s.registry
        .push_referrer(repository, KUBEWARDEN_DIGEST, &bundle, SIGN_PREDICATE);
    let ok = args
        .verifier()
        .unwrap()
        .unwrap()
        .verify(&format!(
            "{}/{repository}@{KUBEWARDEN_DIGEST}",
            s.registry.host
        ))
        .unwrap();
    assert_eq!(ok.digest, KUBEWARDEN_DIGEST);
}

// ---- registries that send more than they should ----

/// A misbehaving registry on 127.0.0.1: every manifest request is answered by a challenge for
/// a token at `/token`, and the token (if `endless_token`) or else every response after it is
/// an endless chunked body without a Content-Length. Each connection answers once and closes,
/// and says so (`Connection: close`), so the client never reuses one the server is closing.
/// Returns its host and the bytes it sent.
fn endless_registry(endless_token: bool) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (counter, realm) = (sent.clone(), format!("http://{host}/token"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (counter, realm) = (counter.clone(), realm.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    authorized |= line.to_ascii_lowercase().starts_with("authorization:");
                }
                let token = request.contains("/token");
                if !token && !authorized {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    return;
                }
                if token && !endless_token {
                    let body = r#"{"token": "t"}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                );
                let chunk = vec![b' '; 64 * 1024];
                // At most 256 MiB: far more than any bound the client should keep.
                for _ in 0..4096 {
                    let ok = write!(stream, "{:x}\r\n", chunk.len()).is_ok()
                        && stream.write_all(&chunk).is_ok()
                        && stream.write_all(b"\r\n").is_ok();
                    if !ok {
                        return;
                    }
                    counter.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    (host, sent)
}

#[test]
fn bodies_without_content_length_are_bounded_while_reading() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let keys = tempfile::tempdir().unwrap();
    let key = write_public_key(keys.path(), "cosign.pub", &signing_key(1));
    let config = keys.path().join("docker-config.json");
    std::fs::write(&config, "{}").unwrap();
    for (endless_token, wanted) in [
        (false, "response larger than 4194304 bytes"),
        (true, "token response larger than 262144 bytes"),
    ] {
        let (host, sent) = endless_registry(endless_token);
        let v = Args {
            signature_keys: vec![key.clone()],
            insecure_registries: vec![host.clone()],
            registry_config: Some(config.clone()),
            registry_timeout: "20s".into(),
            ..Args::default()
        }
        .verifier()
        .unwrap()
        .unwrap();
        let image = format!("{host}/shop/api@{}", support::digest_of(b"image"));
        let e = failure(&v, &image).to_string();
        assert!(
            e.starts_with("registry error: ") && e.ends_with(wanted),
            "{e}"
        );
        // The client stopped reading soon after the bound (socket buffers hold some more).
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        assert!(sent < 64 * 1024 * 1024, "{sent} bytes sent");
    }
}
