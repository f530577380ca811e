//! Command-line interface: argument definitions and `run`, which the binary maps to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use crate::args::{exit, exit_code, CliError, FlagsError, InputFlags, PolicyFlags};
use crate::bundle;
use crate::check;
use crate::report::{self, Format, Summary};
use crate::verify;

#[derive(Debug, Parser)]
#[command(
    name = "validator",
    version,
    about = "Check Kubernetes manifests against Gatekeeper policies and Kubernetes schemas",
    long_about = "Check Kubernetes manifests against Gatekeeper-compatible policies (ConstraintTemplates and Constraints) and against Kubernetes schemas (built in for Kubernetes 1.37, from CRDs, or from --schema-location directories).\n\nExit codes: 0 no deny violations; 1 deny violations (or warn with --fail-on-warn) or failed suite cases; 2 usage, input, policy or evaluation errors."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests (files, directories, `-` for stdin) against policies and schemas
    /// (built-in schemas: Kubernetes 1.37).
    Check(Box<CheckArgs>),
    /// Run Gatekeeper suite files (gator verify format).
    Verify(VerifyArgs),
    /// Serve the policies as a Kubernetes validating admission webhook over HTTPS.
    Serve(Box<ServeArgs>),
    /// Audit what a live cluster holds against the policies, as Gatekeeper's audit does
    /// (reads only: list and get).
    Audit(Box<crate::audit::command::AuditArgs>),
}

#[derive(Debug, clap::Args)]
#[command(mut_arg("policies", |a| a.help(
    "More policies (file or directory; repeatable); reloaded when they change or on SIGHUP"
)))]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// TLS private key (PEM); reloaded when the file changes.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    #[command(flatten)]
    pub source: crate::args::PolicySource,
    /// Evaluate templates that carry CEL with CEL; `--enable-cel=false` uses their Rego.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_cel: bool,
    /// Deadline of one admission request: the wait for an evaluation slot, the evaluation and
    /// the answer (keep it under the API server's webhook timeout; at most 30s). Evaluations
    /// are stopped at it.
    #[arg(long, default_value = "2s", value_name = "DURATION",
        value_parser = crate::duration::between(Duration::from_millis(1), Duration::from_secs(30)))]
    pub timeout: Duration,
    /// On a deadline, a full queue or an internal error: `fail` denies, `ignore` allows.
    #[arg(long, default_value = "fail", value_name = "POLICY")]
    pub failure_policy: String,
    /// Namespaces (globs) allowed without evaluation (repeatable). Namespace objects given with
    /// --policies that carry the label admission.gatekeeper.sh/ignore are exempt too.
    #[arg(long = "exempt-namespace", value_name = "NS")]
    pub exempt_namespaces: Vec<String>,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, default_value_t = 3 * 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,
    /// Evaluations running at once; further requests wait in the queue.
    #[arg(long, default_value_t = 16, value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_concurrency: u32,
    /// Requests waiting for an evaluation slot; beyond them a request is answered at once by
    /// the failure policy (counted in validator_requests_shed_total).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub max_queue: usize,
    /// Connections open at once; further clients wait to be accepted.
    #[arg(long, default_value_t = 1024, value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Time a client has for its TLS handshake, for each request's headers and for its body;
    /// slower clients are disconnected.
    #[arg(long, default_value = "5s", value_name = "DURATION",
        value_parser = crate::duration::between(Duration::from_millis(10), Duration::from_secs(300)))]
    pub read_timeout: Duration,
    /// How often policy files are checked for changes.
    #[arg(long, default_value = "2s", value_name = "DURATION",
        value_parser = crate::duration::between(Duration::from_millis(100), crate::duration::MAX))]
    pub reload_interval: Duration,
    /// Waiver file of policy exceptions (repeatable); reloaded with the policies.
    #[arg(long = "waivers", value_name = "FILE")]
    pub waivers: Vec<PathBuf>,
    /// Also serve the signature verifier as a Gatekeeper external data provider
    /// (`POST /provider`, ProviderRequest in, ProviderResponse out); needs a trust policy.
    #[arg(long)]
    pub provider: bool,
    /// Keep these cluster objects in `data.inventory` for referential policies, listed and
    /// watched (repeatable): group/version/Kind, version/Kind for the core group, or `auto` for
    /// the kinds the loaded templates require (their requires-sync-data annotation).
    #[arg(long = "sync", value_name = "KIND")]
    pub sync: Vec<String>,
    /// Kubeconfig for --sync (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context for --sync.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    #[command(flatten)]
    pub signatures: crate::signature::Args,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inputs: InputFlags,
    /// Release name for --chart.
    #[arg(long, default_value = "release", requires = "chart")]
    pub release: String,
    /// Namespace of objects that name none (as `kubectl apply -n`; default `default`), and
    /// the release namespace for --chart.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Finding no Kubernetes object in the inputs is an error (exit 2), not a warning: for
    /// `helm template ... | validator check -`, where empty input means the render failed.
    #[arg(long)]
    pub require_objects: bool,
    /// Output format: human, json, sarif, junit, github.
    #[arg(long, short = 'o', default_value = "human", value_name = "FORMAT")]
    pub format: String,
    /// Also write a Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub policy: PolicyFlags,
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

/// Runs a parsed command line with its report on stdout; returns the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    run_to(cli, &mut std::io::stdout(), colour())
}

/// Runs a parsed command line as [`run`] does, with the report (what `run` prints on stdout)
/// written to `out`, in colour when `colour`.
pub fn run_to(cli: Cli, out: &mut dyn Write, colour: bool) -> Result<u8, CliError> {
    match cli.command {
        Command::Check(args) => run_check_to(*args, out, colour),
        Command::Verify(args) => run_verify_to(args, out),
        Command::Serve(args) => run_serve(*args),
        Command::Audit(args) => crate::audit::command::run_audit_to(*args, out, colour),
    }
}

/// Whether reports on stdout are in colour: on a terminal, unless NO_COLOR is set.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `validator check` with its report written to `out`, in colour when `colour`.
pub fn run_check_to(args: CheckArgs, out: &mut dyn Write, colour: bool) -> Result<u8, CliError> {
    let format: Format = args.format.parse().map_err(CliError::Usage)?;
    let policies = args.policy.load_policies()?;
    let (options, waiver_findings) = args.policy.options(true)?;
    let load = || args.inputs.load(&args.release, args.namespace.as_deref());
    // Reading uses no more threads than `--jobs` either.
    let mut input = match options
        .jobs
        .map(|n| rayon::ThreadPoolBuilder::new().num_threads(n).build())
    {
        Some(Ok(pool)) => pool.install(load),
        _ => load(),
    };
    // The attestation names the objects as written, which is what a deploy step reads.
    let attestation = (format == Format::Json)
        .then(|| crate::digest::Attestation::of(&input.documents, &policies.documents));
    let namespace = args.namespace.as_deref().unwrap_or("default");
    let cluster_scoped = crate::schema::ClusterScoped::of(&input.documents);
    input.default_namespace(namespace, |v, k| cluster_scoped.contains(v, k));
    // Unreadable policy files are input errors too.
    input.errors.extend(policies.errors);
    let mut outcome = check::run(input, &policies.documents, &options);
    if !waiver_findings.is_empty() {
        outcome.findings.extend(waiver_findings);
        outcome.findings.sort();
    }
    // No objects and no error that explains it (a failed render or unreadable input is
    // reported already).
    let explained = outcome
        .findings
        .iter()
        .any(|f| f.severity == report::Severity::Error);
    if outcome.objects == 0 && !explained {
        outcome
            .findings
            .push(check::no_objects_finding(args.require_objects));
        outcome.findings.sort();
    }
    let summary = Summary::of(&outcome.findings, outcome.objects);
    let text = match &attestation {
        Some(a) => report::json_attested(&outcome.findings, &summary, a),
        None => report::render(format, &outcome.findings, &summary, colour),
    };
    if let Some(path) = &args.summary {
        let markdown = report::markdown_summary(&outcome.findings, &summary);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(markdown.as_bytes())?;
    }
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(exit_code(&summary, args.policy.run.fail_on_warn))
}

/// `validator verify` with its report written to `out`.
pub fn run_verify_to(args: VerifyArgs, out: &mut dyn Write) -> Result<u8, CliError> {
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
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(report.exit_code())
}

/// The webhook configuration from `serve` arguments.
pub fn serve_config(args: &ServeArgs) -> Result<crate::webhook::Config, CliError> {
    let fail_closed = match args.failure_policy.as_str() {
        "fail" => true,
        "ignore" => false,
        other => {
            return Err(CliError::Usage(format!(
                "--failure-policy: `{other}` is not fail or ignore"
            )))
        }
    };
    if !args.source.no_default_policies && !bundle::names().contains(&args.source.bundle.as_str()) {
        return Err(FlagsError::unknown_bundle(&args.source.bundle).into());
    }
    // A registry request must not outlive the admission request that waits for it.
    let mut signatures = args.signatures.clone();
    if crate::duration::parse(&signatures.registry_timeout)
        .map_err(|e| CliError::Usage(format!("--registry-timeout: {e}")))?
        > args.timeout
    {
        signatures.registry_timeout = crate::duration::display(args.timeout);
    }
    let verifier = signatures.verifier().map_err(CliError::Usage)?;
    if args.provider && verifier.is_none() {
        return Err(CliError::Usage(
            "--provider serves signature verification and needs a trust policy: give --trust-policy FILE or --signature-key FILE".into(),
        ));
    }
    let mut sources = crate::webhook::state::Sources {
        bundle: (!args.source.no_default_policies).then(|| args.source.bundle.clone()),
        paths: args.source.policies.clone(),
        enable_cel: args.enable_cel,
        exempt_namespaces: args.exempt_namespaces.clone(),
        waivers: args.waivers.clone(),
        verifier,
        inventory: None,
    };
    sources.inventory = crate::webhook::sync::kinds(&args.sync, &sources)
        .map_err(|e| CliError::Usage(e.to_string()))?
        .map(|kinds| std::sync::Arc::new(crate::webhook::sync::Inventory::new(kinds)));
    Ok(crate::webhook::Config {
        provider: args.provider,
        listen: args.listen,
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        cluster: crate::webhook::sync::ClusterConfig {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
        sources,
        timeout: args.timeout,
        fail_closed,
        max_body_bytes: args.max_body_bytes,
        max_concurrency: args.max_concurrency as usize,
        reload_interval: args.reload_interval,
        limits: crate::webhook::Limits {
            max_queue: args.max_queue,
            max_connections: args.max_connections as usize,
            read_timeout: args.read_timeout,
        },
    })
}

pub fn run_serve(args: ServeArgs) -> Result<u8, CliError> {
    let config = serve_config(&args)?;
    crate::webhook::log::init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match crate::webhook::start(config).await {
            Ok(running) => {
                running.wait().await;
                Ok(exit::OK)
            }
            Err(e) => Err(CliError::Usage(e.to_string())),
        }
    })
}
