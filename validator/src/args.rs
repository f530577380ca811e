//! What the command lines share: the input and policy flags that `check`, `audit` and the
//! executor take, the error that stops a command, and the exit codes.

use std::path::PathBuf;

use crate::bundle;
use crate::check;
use crate::manifest::{self, Loaded};
use crate::report::{self, Summary};

/// Exit codes shared by every command.
pub mod exit {
    /// No deny violations, all suites passed.
    pub const OK: u8 = 0;
    /// Deny violations (or warn with --fail-on-warn), or a failed suite case.
    pub const VIOLATIONS: u8 = 1;
    /// Usage, input, policy or evaluation errors.
    pub const ERROR: u8 = 2;
}

/// The manifests to read: paths and a Helm chart to render, as `validator check` and the
/// executor take them.
#[derive(Debug, Clone, clap::Args)]
pub struct InputFlags {
    /// Files, directories (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(required_unless_present = "chart", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Render this Helm chart with `helm template` (as the release, in its namespace) and read
    /// its output too.
    #[arg(long, value_name = "DIR")]
    pub chart: Option<PathBuf>,
    /// Values file for --chart (repeatable).
    #[arg(long = "values", short = 'f', value_name = "FILE", requires = "chart")]
    pub values: Vec<PathBuf>,
    /// Value for --chart, `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "chart")]
    pub set: Vec<String>,
    /// The helm binary for --chart (default: `helm` on PATH).
    #[arg(long, value_name = "PATH", requires = "chart")]
    pub helm: Option<PathBuf>,
    /// Leave out files of a directory scan that match this glob (on the path below the
    /// directory or on the file name, e.g. `values*.yaml`, `ci/*`; repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub exclude: Vec<String>,
}

impl InputFlags {
    /// The documents of the paths and of the rendered chart (as `release` in `namespace`); a
    /// chart that does not render is a load error naming it.
    pub fn load(&self, release: &str, namespace: Option<&str>) -> manifest::Loaded {
        let options = manifest::LoadOptions {
            exclude: self.exclude.clone(),
        };
        let mut loaded = manifest::load_paths_with(&self.paths, &options);
        if let Some(chart) = &self.chart {
            let render = crate::chart::Render {
                chart: chart.clone(),
                values: self.values.clone(),
                set: self.set.clone(),
                release: release.to_string(),
                namespace: namespace.map(str::to_string),
                helm: self.helm.clone(),
            };
            match render.run() {
                Ok(rendered) => loaded.extend(rendered),
                Err(e) => loaded.errors.push(manifest::LoadError {
                    source: std::sync::Arc::from(chart.display().to_string()),
                    line: 1,
                    column: 1,
                    message: e.to_string(),
                }),
            }
        }
        loaded
    }
}

/// The policy, schema and signature flags of `validator check`, which the executor's
/// validation gate takes too.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyFlags {
    #[command(flatten)]
    pub source: PolicySource,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub schemas: SchemaFlags,
    #[command(flatten)]
    pub evaluation: EvaluationFlags,
}

/// Which policies to check against: the embedded bundle and more policy files.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicySource {
    /// More ConstraintTemplates, Constraints and ExpansionTemplates (file or directory; repeatable).
    #[arg(long = "policies", value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    /// Do not use the embedded policy bundle.
    #[arg(long)]
    pub no_default_policies: bool,
    /// Embedded bundle to use: baseline, restricted or production.
    #[arg(long, value_name = "NAME", default_value = bundle::DEFAULT_BUNDLE)]
    pub bundle: String,
}

/// How a check runs: its threads, what fails it and the namespaces it leaves out.
#[derive(Debug, Clone, clap::Args)]
pub struct RunFlags {
    /// Worker threads (default: all cores). Output is the same at any count.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Fail on warn violations too (exit 1).
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Never check objects in these namespaces (globs like `kube-*`; repeatable).
    #[arg(long = "exclude-namespace", value_name = "NS")]
    pub exclude_namespaces: Vec<String>,
}

/// The Kubernetes schema checks.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SchemaFlags {
    /// Do not check objects against Kubernetes schemas.
    #[arg(long)]
    pub no_schemas: bool,
    /// Allow fields the schemas do not define (by default unknown fields are schema violations).
    #[arg(long)]
    pub no_strict: bool,
    /// CustomResourceDefinitions (file or directory; repeatable) whose schemas check custom resources.
    #[arg(long = "crd", value_name = "DIR")]
    pub crds: Vec<PathBuf>,
    /// Directory of JSON schemas in kubeconform's layout (`deployment-apps-v1.json`,
    /// `service-v1.json`; repeatable), tried before the built-in schemas.
    #[arg(long = "schema-location", value_name = "DIR")]
    pub schema_locations: Vec<PathBuf>,
    /// An object whose kind has no schema is an error (by default a warning).
    #[arg(long)]
    pub require_schemas: bool,
    /// Kinds never schema-checked: `Kind` or `apiVersion/Kind`, comma-separated (repeatable).
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub skip_kinds: Vec<String>,
}

/// How the policies are evaluated: CEL or Rego, waivers and image signature verification.
#[derive(Debug, Clone, clap::Args)]
pub struct EvaluationFlags {
    /// Evaluate templates that carry CEL (K8sNativeValidation) with CEL, as Gatekeeper does;
    /// `--enable-cel=false` uses their Rego.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_cel: bool,
    /// Waiver file of policy exceptions (repeatable); see the README.
    #[arg(long = "waivers", value_name = "FILE")]
    pub waivers: Vec<PathBuf>,
    #[command(flatten)]
    pub signatures: crate::signature::Args,
}

impl PolicySource {
    /// The policy documents: the embedded bundle (unless turned off) and `--policies`.
    pub fn load(&self) -> Result<Loaded, FlagsError> {
        let mut policies = Loaded::default();
        if !self.no_default_policies {
            match bundle::load(&self.bundle) {
                Some(b) => policies.extend(b),
                None => return Err(FlagsError::unknown_bundle(&self.bundle)),
            }
        }
        policies.extend(manifest::load_paths(&self.policies));
        Ok(policies)
    }
}

impl SchemaFlags {
    /// The schema check's options; none with `--no-schemas`.
    pub fn options(&self) -> Option<crate::schema::Options> {
        (!self.no_schemas).then(|| crate::schema::Options {
            strict: !self.no_strict,
            crd_paths: self.crds.clone(),
            locations: self.schema_locations.clone(),
            require: self.require_schemas,
            skip_kinds: self
                .skip_kinds
                .iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
        })
    }
}

impl PolicyFlags {
    /// The policy documents: the embedded bundle (unless turned off) and `--policies`.
    pub fn load_policies(&self) -> Result<Loaded, FlagsError> {
        self.source.load()
    }

    /// The check's options, and the findings of waiver files that cannot be used. Fails on a
    /// bad `--jobs` or signature configuration.
    pub fn options(
        &self,
        progress: bool,
    ) -> Result<(check::Options, Vec<report::Finding>), FlagsError> {
        if self.run.jobs == Some(0) {
            return Err(FlagsError::NoJobs);
        }
        let mut waivers = Vec::new();
        let mut waiver_errors = Vec::new();
        for path in &self.evaluation.waivers {
            let (w, e) = crate::waiver::load(path);
            waivers.extend(w);
            waiver_errors.extend(e);
        }
        let verifier = self
            .evaluation
            .signatures
            .verifier()
            .map_err(FlagsError::Signatures)?;
        let options = check::Options {
            jobs: self.run.jobs,
            exclude_namespaces: self.run.exclude_namespaces.clone(),
            progress,
            external_data: verifier.map(|v| v.handler()),
            schemas: self.schemas.options(),
            enable_cel: self.evaluation.enable_cel,
            waivers,
            require_external_data: false,
        };
        Ok((options, crate::waiver::error_findings(&waiver_errors)))
    }
}

/// Policy flags that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("unknown bundle `{name}`; available: {available}")]
    UnknownBundle { name: String, available: String },
    #[error("--jobs must be at least 1")]
    NoJobs,
    /// A trust policy, key or keyless flag that cannot be used.
    #[error("{0}")]
    Signatures(String),
}

impl FlagsError {
    /// The error for `--bundle name` when no embedded bundle has that name.
    pub fn unknown_bundle(name: &str) -> FlagsError {
        FlagsError::UnknownBundle {
            name: name.to_string(),
            available: bundle::names().join(", "),
        }
    }
}

/// An error that stops a command before it produces a report (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Flags(#[from] FlagsError),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The exit code for a check's summary.
pub fn exit_code(summary: &Summary, fail_on_warn: bool) -> u8 {
    if summary.errors > 0 {
        exit::ERROR
    } else if summary.deny > 0 || (fail_on_warn && summary.warn > 0) {
        exit::VIOLATIONS
    } else {
        exit::OK
    }
}
