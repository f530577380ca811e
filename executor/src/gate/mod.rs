//! The validation gate: the validator library, in process, on the exact objects to apply
//! (bundle and flags as `validator check`), or a verified attestation from an earlier check.

mod attestation;

use std::path::PathBuf;

use validator::check;
use validator::manifest::{Document, Loaded};
use validator::report::{Finding, Summary};

pub use attestation::{verify, AttestationError};

use crate::exit::ExitStatus;

/// The policy, schema and signature flags of `validator check`, and the gate's own.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub flags: validator::args::PolicyFlags,
    /// Go ahead although a constraint needs image signature verification and no trust policy
    /// is given (the constraint is then not evaluated; by default the gate refuses).
    #[arg(long)]
    pub no_signature_verification: bool,
    /// A JSON report of `validator check --format json` on the same manifests and policies:
    /// trusted instead of checking again once every digest matches.
    #[arg(long, value_name = "FILE")]
    pub attestation: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// An unknown bundle, a bad `--jobs`, an unusable trust policy or key.
    #[error(transparent)]
    Flags(#[from] validator::args::FlagsError),
    /// The check of the flags did not finish.
    #[error("the validation gate stopped: {0}")]
    Stopped(tokio::task::JoinError),
}

/// What the gate decided.
#[derive(Debug)]
pub struct Decision {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// `Success` to go ahead; `Refused` or `Error` to stop.
    pub exit: ExitStatus,
    /// Why an attestation was refused.
    pub refusal: Vec<String>,
}

impl Decision {
    pub fn passed(&self) -> bool {
        self.exit == ExitStatus::Success
    }
}

/// The policy documents: the embedded bundle (unless turned off) and `--policies`.
/// Fails first on flags that cannot be used (a bad `--jobs`, trust policy or key), checked on a
/// blocking thread as the signature verifier's registry client is a blocking one.
pub async fn policies(args: &PolicyArgs) -> Result<Loaded, GateError> {
    let flags = args.flags.clone();
    tokio::task::spawn_blocking(move || flags.options(false).map(|_| ()))
        .await
        .map_err(GateError::Stopped)??;
    Ok(args.flags.load_policies()?)
}

/// [`check`] on a blocking thread: signature verification waits on registries.
pub async fn check_blocking(
    objects: Vec<Document>,
    policies: &Loaded,
    args: &PolicyArgs,
) -> Decision {
    let (policies, args) = (policies.clone(), args.clone());
    match tokio::task::spawn_blocking(move || check(objects, &policies, &args, false)).await {
        Ok(decision) => decision,
        Err(e) => Decision {
            findings: Vec::new(),
            summary: Summary::default(),
            exit: ExitStatus::Error,
            refusal: vec![format!("the validation gate stopped: {e}")],
        },
    }
}

/// Checks the objects to apply (namespaces filled in) against the policies.
pub fn check(
    objects: Vec<Document>,
    policies: &Loaded,
    args: &PolicyArgs,
    progress: bool,
) -> Decision {
    let input = Loaded {
        documents: objects,
        errors: policies.errors.clone(),
        ..Loaded::default()
    };
    let (mut options, waiver_findings) = match args.flags.options(progress) {
        Ok(o) => o,
        Err(e) => {
            return Decision {
                findings: Vec::new(),
                summary: Summary::default(),
                exit: ExitStatus::Error,
                refusal: vec![e.to_string()],
            }
        }
    };
    options.require_external_data = !args.no_signature_verification;
    let mut outcome = check::run(input, &policies.documents, &options);
    if !waiver_findings.is_empty() {
        outcome.findings.extend(waiver_findings);
        outcome.findings.sort();
    }
    let summary = Summary::of(&outcome.findings, outcome.objects);
    let exit = ExitStatus::of_check(validator::args::exit_code(
        &summary,
        args.flags.run.fail_on_warn,
    ));
    Decision {
        findings: outcome.findings,
        summary,
        exit,
        refusal: Vec::new(),
    }
}
