//! The `validator audit` command line: its flags and the run that the CLI maps to an exit code.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::args::{
    exit, exit_code, CliError, EvaluationFlags, PolicyFlags, PolicySource, RunFlags, SchemaFlags,
};
use crate::manifest::{self, Loaded};
use crate::report::Format;

/// The flags of `validator audit`: the policy flags of `check` but the schema ones, with their
/// help saying what they mean for an audit.
#[derive(Debug, clap::Args)]
#[command(
    mut_arg("exclude_namespaces", |a| a.help(
        "Never audit objects in these namespaces (globs like `kube-*`; repeatable). Namespaces \
         labelled admission.gatekeeper.sh/ignore are never audited"
    )),
    mut_arg("jobs", |a| a.help("Worker threads for evaluation (default: all cores)")),
    mut_arg("enable_cel", |a| a.help(
        "Evaluate templates that carry CEL with CEL, as Gatekeeper does; `--enable-cel=false` \
         uses their Rego"
    )),
    mut_arg("waivers", |a| a.help("Waiver file of policy exceptions (repeatable)")),
)]
pub struct AuditArgs {
    /// Audit only this namespace (repeatable). Its namespaced objects are listed in it, and
    /// cluster-scoped kinds other than the Namespace itself are not read.
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Kinds never listed, so never audited: `Kind` or `apiVersion/Kind`, comma-separated
    /// (repeatable), e.g. `Secret` for an identity that may not read Secrets.
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    pub skip_kinds: Vec<String>,
    /// Kubeconfig (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Objects per list request (paged with limit/continue); 0 reads each kind at once.
    #[arg(long, default_value_t = 500, value_name = "N")]
    pub chunk_size: u32,
    /// Kinds listed at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub parallel_lists: usize,
    /// Violations shown per constraint; all are counted (totalViolations).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub constraint_violations_limit: usize,
    /// A second policy set (file or directory; repeatable), used in place of --policies with
    /// the same bundle: the report then says which objects newly fail and newly pass with
    /// --policies.
    #[arg(long = "compare-to", value_name = "DIR")]
    pub compare_to: Vec<PathBuf>,
    /// Also write the totals as Prometheus metrics to this file (textfile collector format).
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Also push the totals to a Prometheus Pushgateway at URL (group `job=validator-audit`).
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Output format: human, json, sarif, junit, github.
    #[arg(long, short = 'o', default_value = "human", value_name = "FORMAT")]
    pub format: String,
    /// Also write a Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    #[command(flatten)]
    pub source: PolicySource,
    #[command(flatten)]
    pub run: RunFlags,
    #[command(flatten)]
    pub evaluation: EvaluationFlags,
}

impl AuditArgs {
    /// The policy flags as `check` takes them, with `policies` for `--policies` and without
    /// schema checks (an audit checks the policies only, as Gatekeeper's does).
    fn policy_flags(&self, policies: Vec<PathBuf>) -> PolicyFlags {
        PolicyFlags {
            source: PolicySource {
                policies,
                ..self.source.clone()
            },
            run: self.run.clone(),
            schemas: SchemaFlags {
                no_schemas: true,
                ..SchemaFlags::default()
            },
            evaluation: self.evaluation.clone(),
        }
    }
}

/// `validator audit` with its report written to `out`, in colour when `colour`.
pub fn run_audit_to(args: AuditArgs, out: &mut dyn Write, colour: bool) -> Result<u8, CliError> {
    let format: Format = args.format.parse().map_err(CliError::Usage)?;
    if args
        .namespaces
        .iter()
        .any(|n| n.is_empty() || n.contains('*'))
    {
        return Err(CliError::Usage(
            "--namespace takes namespace names (globs are for --exclude-namespace)".into(),
        ));
    }
    let flags = args.policy_flags(args.source.policies.clone());
    let policies: Loaded = flags.load_policies()?;
    let baseline = if args.compare_to.is_empty() {
        None
    } else {
        let mut b = args.policy_flags(Vec::new()).load_policies()?;
        b.extend(manifest::load_paths(&args.compare_to));
        Some(b)
    };
    let (mut check_options, waiver_findings) = flags.options(true)?;
    check_options.schemas = None;
    let options = super::Options {
        cluster: crate::webhook::sync::ClusterConfig {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
        list: super::list::ListOptions {
            chunk_size: args.chunk_size,
            parallel: args.parallel_lists.max(1),
            namespaces: args.namespaces.clone(),
            retry_pause: Duration::from_millis(200),
        },
        violations_limit: args.constraint_violations_limit,
        progress: true,
        skip_kinds: args
            .skip_kinds
            .iter()
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect(),
        fail_on_warn: args.run.fail_on_warn,
    };
    let mut audit = super::run(&policies, baseline.as_ref(), &check_options, &options)
        .map_err(|e| CliError::Usage(format!("audit: {e}")))?;
    audit.tally.add(waiver_findings);
    let report = super::render::Report::of(&audit, options.violations_limit);
    let mut pushed = Ok(());
    if args.metrics_file.is_some() || args.pushgateway.is_some() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let text = super::metrics::text(&report, audit.duration.as_secs_f64(), now);
        if let Some(path) = &args.metrics_file {
            super::metrics::write(path, &text)
                .map_err(|e| CliError::Usage(format!("--metrics-file {}: {e}", path.display())))?;
        }
        if let Some(url) = &args.pushgateway {
            pushed = crate::pushgateway::push(url, "validator-audit", &[], text).map_err(|e| {
                format!(
                    "cannot push the metrics to {}: {e}",
                    crate::redact::credentials(url)
                )
            });
        }
    }
    if let Some(path) = &args.summary {
        let markdown = crate::report::markdown_summary(&report.findings, &report.summary);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(markdown.as_bytes())?;
    }
    out.write_all(report.render(format, colour).as_bytes())?;
    out.flush()?;
    if let Err(e) = pushed {
        // The report is out; the run still fails, so a CronJob shows the lost metrics.
        eprintln!("error: {e}");
        return Ok(exit::ERROR);
    }
    Ok(exit_code(&report.summary, args.run.fail_on_warn))
}
