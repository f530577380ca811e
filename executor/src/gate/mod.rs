//! The validation gate: the validator library, in process, on the exact objects to apply
//! (bundle and flags as `validator check`), or a verified attestation from an earlier check.

mod attestation;

use std::path::PathBuf;

use validator::check;
use validator::cli::exit;
use validator::manifest::{Document, Loaded};
use validator::report::{Finding, Summary};

pub use attestation::{verify, AttestationError};

/// Policy flags, as `validator check` takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyArgs {
    /// More ConstraintTemplates, Constraints and ExpansionTemplates (file or directory; repeatable).
    #[arg(long = "policies", value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    /// Do not use the embedded policy bundle.
    #[arg(long)]
    pub no_default_policies: bool,
    /// Embedded bundle to use: baseline, restricted or production.
    #[arg(long, value_name = "NAME", default_value = validator::bundle::DEFAULT_BUNDLE)]
    pub bundle: String,
    /// Refuse on warn violations too.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Never check objects in these namespaces (globs like `kube-*`; repeatable).
    #[arg(long = "exclude-namespace", value_name = "NS")]
    pub exclude_namespaces: Vec<String>,
    /// Evaluate templates that carry CEL with CEL (`--enable-cel=false` uses their Rego).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_cel: bool,
    /// Waiver file of policy exceptions (repeatable), as `validator check --waivers`.
    #[arg(long = "waivers", value_name = "FILE")]
    pub waivers: Vec<PathBuf>,
    /// Do not check objects against Kubernetes schemas.
    #[arg(long)]
    pub no_schemas: bool,
    /// Allow fields the schemas do not define (by default unknown fields are schema violations).
    #[arg(long)]
    pub no_strict: bool,
    /// CustomResourceDefinitions (file or directory; repeatable) whose schemas check custom
    /// resources (besides the CRDs of the release).
    #[arg(long = "crd", value_name = "DIR")]
    pub crds: Vec<PathBuf>,
    /// Directory of JSON schemas in kubeconform's layout (repeatable), tried before the
    /// built-in schemas.
    #[arg(long = "schema-location", value_name = "DIR")]
    pub schema_locations: Vec<PathBuf>,
    /// An object whose kind has no schema is an error (by default a warning).
    #[arg(long)]
    pub require_schemas: bool,
    /// Kinds never schema-checked: `Kind` or `apiVersion/Kind`, comma-separated (repeatable).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub skip_kinds: Vec<String>,
    /// Worker threads for the check (default: all cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// A JSON report of `validator check --format json` on the same manifests and policies:
    /// trusted instead of checking again once every digest matches.
    #[arg(long, value_name = "FILE")]
    pub attestation: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("unknown bundle `{bundle}`; available: {available}")]
    UnknownBundle { bundle: String, available: String },
}

/// What the gate decided.
#[derive(Debug)]
pub struct Decision {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// `exit::OK` to go ahead; `VIOLATIONS` or `ERROR` to stop.
    pub exit: u8,
    /// Why an attestation was refused.
    pub refusal: Vec<String>,
}

impl Decision {
    pub fn passed(&self) -> bool {
        self.exit == exit::OK
    }
}

/// The policy documents: the embedded bundle (unless turned off) and `--policies`.
pub fn policies(args: &PolicyArgs) -> Result<Loaded, GateError> {
    let mut policies = Loaded::default();
    if !args.no_default_policies {
        match validator::bundle::load(&args.bundle) {
            Some(b) => policies.extend(b),
            None => {
                return Err(GateError::UnknownBundle {
                    bundle: args.bundle.clone(),
                    available: validator::bundle::names().join(", "),
                })
            }
        }
    }
    policies.extend(validator::manifest::load_paths(&args.policies));
    Ok(policies)
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
    };
    let mut waivers = Vec::new();
    let mut waiver_errors = Vec::new();
    for path in &args.waivers {
        let (w, e) = validator::waiver::load(path);
        waivers.extend(w);
        waiver_errors.extend(e);
    }
    let options = check::Options {
        jobs: args.jobs,
        exclude_namespaces: args.exclude_namespaces.clone(),
        progress,
        external_data: None,
        schemas: (!args.no_schemas).then(|| validator::schema::Options {
            strict: !args.no_strict,
            crd_paths: args.crds.clone(),
            locations: args.schema_locations.clone(),
            require: args.require_schemas,
            skip_kinds: args
                .skip_kinds
                .iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
        }),
        enable_cel: args.enable_cel,
        waivers,
    };
    let mut outcome = check::run(input, &policies.documents, &options);
    if !waiver_errors.is_empty() {
        outcome
            .findings
            .extend(validator::waiver::error_findings(&waiver_errors));
        outcome.findings.sort();
    }
    let summary = Summary::of(&outcome.findings, outcome.objects);
    let exit = validator::cli::exit_code(&summary, args.fail_on_warn);
    Decision {
        findings: outcome.findings,
        summary,
        exit,
        refusal: Vec::new(),
    }
}
