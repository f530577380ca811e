//! Command-line interface: argument definitions and `run`, which the binary maps to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::bundle;
use crate::check;
use crate::manifest::{self, Loaded};
use crate::report::{self, Format, Summary};
use crate::verify;

/// Exit codes shared by every command.
pub mod exit {
    /// No deny violations, all suites passed.
    pub const OK: u8 = 0;
    /// Deny violations (or warn with --fail-on-warn), or a failed suite case.
    pub const VIOLATIONS: u8 = 1;
    /// Usage, input, policy or evaluation errors.
    pub const ERROR: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "validator",
    version,
    about = "Check Kubernetes manifests against Gatekeeper policies",
    long_about = "Check Kubernetes manifests against Gatekeeper-compatible policies (ConstraintTemplates and Constraints).\n\nExit codes: 0 no deny violations; 1 deny violations (or warn with --fail-on-warn) or failed suite cases; 2 usage, input, policy or evaluation errors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests (files, directories, `-` for stdin) against policies.
    Check(Box<CheckArgs>),
    /// Run Gatekeeper suite files (gator verify format).
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files, directories (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(required_unless_present = "chart", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Render this Helm chart with `helm template` and check the output.
    #[arg(long, value_name = "DIR")]
    pub chart: Option<PathBuf>,
    /// Values file for --chart (repeatable).
    #[arg(long = "values", short = 'f', value_name = "FILE", requires = "chart")]
    pub values: Vec<PathBuf>,
    /// Value for --chart, `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "chart")]
    pub set: Vec<String>,
    /// Release name for --chart.
    #[arg(long, default_value = "release", requires = "chart")]
    pub release: String,
    /// Namespace for --chart.
    #[arg(long, short = 'n', value_name = "NS", requires = "chart")]
    pub namespace: Option<String>,
    /// The helm binary for --chart (default: `helm` on PATH).
    #[arg(long, value_name = "PATH", requires = "chart")]
    pub helm: Option<PathBuf>,
    /// More ConstraintTemplates, Constraints and ExpansionTemplates (file or directory; repeatable).
    #[arg(long = "policies", value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    /// Do not use the embedded policy bundle.
    #[arg(long)]
    pub no_default_policies: bool,
    /// Embedded bundle to use: baseline, restricted or production.
    #[arg(long, value_name = "NAME", default_value = bundle::DEFAULT_BUNDLE)]
    pub bundle: String,
    /// Output format: human, json, sarif, junit, github.
    #[arg(long, short = 'o', default_value = "human", value_name = "FORMAT")]
    pub format: String,
    /// Worker threads (default: all cores). Output is the same at any count.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Exit 1 on warn violations too.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Never check objects in these namespaces (globs like `kube-*`; repeatable).
    #[arg(long = "exclude-namespace", value_name = "NS")]
    pub exclude_namespaces: Vec<String>,
    /// Evaluate templates that carry CEL (K8sNativeValidation) with CEL, as Gatekeeper does;
    /// `--enable-cel=false` uses their Rego.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_cel: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Suite files or directories searched recursively for them.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only run tests or cases whose name (or `test/case`) matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Output format: human or junit.
    #[arg(long, short = 'o', default_value = "human", value_name = "FORMAT")]
    pub format: String,
    /// Report Rego line coverage per template and in total.
    #[arg(long)]
    pub coverage: bool,
    /// Evaluate templates that carry CEL with CEL (gator's default); `--enable-cel=false` uses their Rego.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_cel: bool,
}

/// An error that stops a command before it produces a report (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Check(args) => run_check(*args),
        Command::Verify(args) => run_verify(args),
    }
}

fn load_policies(args: &CheckArgs) -> Result<Loaded, CliError> {
    let mut policies = Loaded::default();
    if !args.no_default_policies {
        match bundle::load(&args.bundle) {
            Some(b) => policies.extend(b),
            None => {
                return Err(CliError::Usage(format!(
                    "unknown bundle `{}`; available: {}",
                    args.bundle,
                    bundle::names().join(", ")
                )))
            }
        }
    }
    policies.extend(manifest::load_paths(&args.policies));
    Ok(policies)
}

pub fn run_check(args: CheckArgs) -> Result<u8, CliError> {
    let format: Format = args.format.parse().map_err(CliError::Usage)?;
    if args.jobs == Some(0) {
        return Err(CliError::Usage("--jobs must be at least 1".into()));
    }
    let policies = load_policies(&args)?;
    let mut input = manifest::load_paths(&args.paths);
    if let Some(chart) = &args.chart {
        let render = crate::chart::Render {
            chart: chart.clone(),
            values: args.values.clone(),
            set: args.set.clone(),
            release: args.release.clone(),
            namespace: args.namespace.clone(),
            helm: args.helm.clone(),
        };
        match render.run() {
            Ok(rendered) => input.extend(rendered),
            Err(e) => input.errors.push(manifest::LoadError {
                source: std::sync::Arc::from(chart.display().to_string()),
                line: 1,
                column: 1,
                message: e.to_string(),
            }),
        }
    }
    // Unreadable policy files are input errors too.
    input.errors.extend(policies.errors);
    let options = check::Options {
        jobs: args.jobs,
        exclude_namespaces: args.exclude_namespaces.clone(),
        progress: true,
        external_data: None,
        enable_cel: args.enable_cel,
    };
    let attestation = (format == Format::Json)
        .then(|| crate::digest::Attestation::of(&input.documents, &policies.documents));
    let outcome = check::run(input, &policies.documents, &options);
    let summary = Summary::of(&outcome.findings, outcome.objects);
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let text = match &attestation {
        Some(a) => report::json_attested(&outcome.findings, &summary, a),
        None => report::render(format, &outcome.findings, &summary, colour),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(exit_code(&summary, args.fail_on_warn))
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

pub fn run_verify(args: VerifyArgs) -> Result<u8, CliError> {
    let run = match &args.run {
        Some(r) => Some(
            regex::Regex::new(r)
                .map_err(|e| CliError::Usage(format!("--run: invalid regular expression: {e}")))?,
        ),
        None => None,
    };
    let junit = match args.format.as_str() {
        "human" => false,
        "junit" => true,
        other => {
            return Err(CliError::Usage(format!(
                "unknown format `{other}` for verify; use human or junit"
            )))
        }
    };
    let options = verify::Options {
        run,
        coverage: args.coverage,
        enable_cel: args.enable_cel,
    };
    let report = verify::run(&args.paths, &options);
    let text = if junit {
        verify::render_junit(&report)
    } else {
        verify::render_human(&report, args.coverage)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(report.exit_code())
}
