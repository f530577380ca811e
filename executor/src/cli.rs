//! Command-line interface: argument definitions and `run`, which the binary maps to an exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::analysis::{GateErrors, Gates, Metric, Smoke};
use crate::deploy_metrics::RecordArgs;
use crate::gate::PolicyArgs;
use crate::outcome::{Outcome, Report};
use crate::progress::Progress;
use crate::strategy::Strategy;
use crate::{commands, Error};

/// Exit codes, shared with the validator.
pub mod exit {
    /// Success: deployed, restored, planned, or the release is healthy.
    pub const OK: u8 = validator::cli::exit::OK;
    /// Policy violations (nothing applied), or a failed rollout that was rolled back.
    pub const VIOLATIONS: u8 = validator::cli::exit::VIOLATIONS;
    /// Usage, input, policy or infrastructure errors; a held lock; a refused dry run; a
    /// rollout that failed and could not be rolled back.
    pub const ERROR: u8 = validator::cli::exit::ERROR;
}

#[derive(Debug, Parser)]
#[command(
    name = "executor",
    version,
    about = "Apply validated manifests to a cluster with rollouts, health checks and automatic rollback",
    long_about = "Apply validated manifests to a cluster with rollouts, health checks and automatic rollback.\n\nExit codes: 0 success; 1 policy violations (nothing applied) or a failed rollout that was rolled back; 2 usage, input, policy or infrastructure error (including a release locked by another executor and a rollout that could not be rolled back)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, apply and roll out a release; roll back automatically if the rollout fails.
    Apply(Box<ApplyArgs>),
    /// Validate and dry-run a release, and show what would change; changes nothing.
    Plan(Box<PlanArgs>),
    /// List the revisions of a release.
    History(ReleaseArgs),
    /// Show the current revision of a release and the health of its workloads.
    Status(ReleaseArgs),
    /// Restore an earlier revision (by default the one before the current).
    Rollback(Box<RollbackArgs>),
    /// Switch a blue-green release paused by --manual-promotion to its new color.
    Promote(Box<PromotionArgs>),
    /// Undo a blue-green release paused by --manual-promotion; traffic stays where it is.
    Abort(Box<PromotionArgs>),
    /// Delivery metrics from a deploy log: deployment frequency, change failure rate, mean
    /// time to restore, deploy duration percentiles.
    Report(ReportArgs),
    /// Export the releases of a namespace (history and live objects) into an archive.
    Backup(BackupArgs),
    /// Recreate the releases of an archive, through the validation gate, in the original
    /// namespace or another one.
    Restore(Box<RestoreArgs>),
    /// Restore an archive into a scratch namespace, measure the recovery time against a
    /// target, and delete the namespace again.
    DrDrill(Box<DrillArgs>),
}

/// Which cluster, and how results are printed.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Result on stdout: human or json.
    #[arg(long, short = 'o', value_enum, default_value = "human")]
    pub output: Output,
}

/// Arguments of `executor backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Namespace whose releases are backed up. Default: the kubeconfig context's namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this release (repeatable; default: every release with a history in the namespace).
    #[arg(long = "release", short = 'r', value_name = "NAME")]
    pub releases: Vec<String>,
    /// The archive to write (gzip'd JSON; it holds Secrets' data, and is created readable by
    /// its owner only).
    #[arg(long, value_name = "FILE")]
    pub output_file: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Arguments of `executor restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The archive written by `executor backup`.
    #[arg(long, value_name = "FILE")]
    pub input_file: PathBuf,
    /// Namespace to restore into (created when missing). Default: the archive's namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Replace releases that already exist in the target namespace (their history is
    /// replaced by the archive's).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Time the restored workloads may take to become complete.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// When failing pods fail a wait early, and the lock's lease.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// A new pod whose containers restarted this many times fails the wait.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_restarts: i32,
    /// A new pod still waiting for its image or configuration after this long fails the wait.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub stuck_after: Duration,
    /// Duration of the release locks' leases.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
}

/// Arguments of `executor dr-drill`.
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The archive written by `executor backup`.
    #[arg(long, value_name = "FILE")]
    pub input_file: PathBuf,
    /// The scratch namespace is `<prefix><archive namespace>-<hex time>`.
    #[arg(long, value_name = "PREFIX", default_value = "drill-")]
    pub namespace_prefix: String,
    /// Time the restored workloads may take to become complete before the drill fails.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The recovery time objective: a drill slower than this fails (exit 1).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub rto_target: Duration,
    /// Keep the scratch namespace for investigation instead of deleting it.
    #[arg(long)]
    pub keep_namespace: bool,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub health: HealthArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Arguments of `executor report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The deploy log that `apply --deploy-log` and `rollback --deploy-log` append to.
    #[arg(long, value_name = "FILE")]
    pub deploy_log: PathBuf,
    /// Only this release.
    #[arg(long, short = 'r', value_name = "NAME")]
    pub release: Option<String>,
    /// Only releases started in the last DURATION (`30d`, `12h`) or since an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    #[arg(long, short = 'o', value_enum, default_value = "human")]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// Which release, in which cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleaseArgs {
    /// Release name (lowercase letters, digits and `-`, at most 53 characters).
    #[arg(long, short = 'r', value_name = "NAME")]
    pub release: String,
    /// Namespace of the release (its history and lock); also the namespace of objects that
    /// name none. Default: the kubeconfig context's namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Result on stdout: human or json.
    #[arg(long, short = 'o', value_enum, default_value = "human")]
    pub output: Output,
}

/// The manifests to apply: paths and a chart (rendered as the release, in its namespace).
pub use validator::cli::InputFlags as InputArgs;

/// How rollouts are run and judged.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    /// Time the rollout may take before it counts as failed.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// A new pod whose containers restarted this many times fails the rollout.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_restarts: i32,
    /// A new pod still waiting for its image or configuration after this long fails the rollout.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub stuck_after: Duration,
    /// Revisions kept in the release history.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub history_max: usize,
    /// Duration of the release lock's lease; another executor takes a lease over once its
    /// holder has not renewed it for this long.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
}

impl RolloutArgs {
    /// The rollout settings these flags give.
    pub fn settings(&self) -> crate::strategy::Settings {
        crate::strategy::Settings {
            thresholds: crate::health::Thresholds {
                max_restarts: self.max_restarts,
                stuck_after: self.stuck_after,
            },
            timeout: self.timeout,
        }
    }
}

/// Gates checked once the workloads are rolled out (for blue-green: the smoke check before the
/// switch, metrics and readiness after it).
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// HTTP gate: GET this URL once the rollout is complete (before the switch, for blue-green).
    #[arg(long, value_name = "URL")]
    pub smoke_url: Option<String>,
    /// The HTTP status --smoke-url must answer.
    #[arg(
        long,
        value_name = "CODE",
        default_value_t = 200,
        requires = "smoke_url"
    )]
    pub smoke_status: u16,
    /// Further attempts of --smoke-url before it fails.
    #[arg(long, value_name = "N", default_value_t = 3, requires = "smoke_url")]
    pub smoke_retries: u32,
    /// Time between attempts of --smoke-url.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration, requires = "smoke_url")]
    pub smoke_interval: Duration,
    /// Metric gate: a PromQL query whose value must stay at or below the --max given with it
    /// (repeatable, paired in order).
    #[arg(long = "metric", value_name = "QUERY", requires = "prometheus")]
    pub metrics: Vec<String>,
    /// The largest value a --metric may take.
    #[arg(long = "max", value_name = "VALUE", allow_negative_numbers = true)]
    pub max: Vec<f64>,
    /// Prometheus' base URL (its HTTP API answers at URL/api/v1/query).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// Time between two measurements of a metric.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub metric_interval: Duration,
    /// Measurements above --max a metric gate tolerates; one more fails it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub metric_failure_limit: u32,
    /// What a gate that cannot be evaluated (Prometheus unreachable, a query error) counts as.
    #[arg(long, value_enum, default_value = "fail")]
    pub gate_errors: GateErrors,
    /// How long metrics and readiness are watched after the rollout (after the switch, for
    /// blue-green); 0 takes one measurement.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub observe: Duration,
}

impl GateArgs {
    /// The gates, with each --metric paired with its --max.
    pub fn gates(&self) -> Result<Gates, Error> {
        if self.metrics.len() != self.max.len() {
            return Err(Error::Usage(format!(
                "give one --max per --metric ({} --metric, {} --max)",
                self.metrics.len(),
                self.max.len()
            )));
        }
        if self.metric_interval.is_zero() {
            return Err(Error::Usage(
                "--metric-interval must be longer than 0".into(),
            ));
        }
        Ok(Gates {
            smoke: self.smoke_url.as_ref().map(|url| Smoke {
                url: url.clone(),
                status: self.smoke_status,
                retries: self.smoke_retries,
                interval: self.smoke_interval,
            }),
            metrics: self
                .metrics
                .iter()
                .zip(&self.max)
                .map(|(query, max)| Metric {
                    query: query.clone(),
                    max: *max,
                })
                .collect(),
            prometheus: self.prometheus.clone(),
            metric_interval: self.metric_interval,
            metric_failure_limit: self.metric_failure_limit,
            gate_errors: self.gate_errors,
            observe: self.observe,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub gates: GateArgs,
    /// Rollout strategy.
    #[arg(long, value_enum, default_value = "rolling")]
    pub strategy: Strategy,
    /// Blue-green: stop before the switch and wait for `executor promote` or `executor abort`.
    #[arg(long)]
    pub manual_promotion: bool,
    /// Blue-green: time between the end of the observation and scaling the old color down.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub scale_down_delay: Duration,
    /// Time a rollback may take (its own budget, not what is left of --timeout).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub rollback_timeout: Duration,
    /// Take over fields other field managers own instead of failing on conflicts.
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
    #[command(flatten)]
    pub inputs: InputArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Plan as `apply --force-conflicts` would apply.
    #[arg(long)]
    pub force_conflicts: bool,
    /// Plan as `apply --strategy` would apply: with blue-green, the idle color's objects
    /// (the Service stays on the serving color until the switch).
    #[arg(long, value_enum, default_value = "rolling")]
    pub strategy: Strategy,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// The revision to restore (default: the one before the current, or the current one if
    /// an operation after it was interrupted).
    #[arg(long, value_name = "REVISION")]
    pub to: Option<u32>,
}

#[derive(Debug, clap::Args)]
pub struct PromotionArgs {
    #[command(flatten)]
    pub release: ReleaseArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    #[command(flatten)]
    pub record: RecordArgs,
    /// Time a rollback may take.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub rollback_timeout: Duration,
}

/// `300`, `300s`, `5m`, `1h`, `1m30s`, `500ms`: the validator's duration parser, shared by
/// both binaries (bounded; huge values are refused, never wrapped).
pub use validator::duration::parse as parse_duration;

/// Whether `name` is a DNS label of at most `max` characters: lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn is_dns_label(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A release name as Kubernetes labels and Secret names allow it.
pub fn check_release_name(name: &str) -> Result<(), Error> {
    if is_dns_label(name, 53) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid release name `{name}`: use lowercase letters, digits and `-` (at most 53 characters, starting and ending with a letter or digit)"
        )))
    }
}

/// `executor report`: reads the log, writes the summary to `out`.
fn report(args: &ReportArgs, out: &mut dyn Write) -> Result<u8, Error> {
    let events = crate::deploy_metrics::read_log(&args.deploy_log).map_err(Error::Usage)?;
    let now = jiff::Timestamp::now();
    let since = match &args.since {
        None => None,
        Some(when) => Some(parse_since(when, now).map_err(Error::Usage)?),
    };
    let summary = crate::deploy_metrics::summarize(&events, args.release.as_deref(), since, now);
    let text = match args.output {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&summary).unwrap_or_default();
            s.push('\n');
            s
        }
        Output::Human => crate::deploy_metrics::human(&summary, args.release.as_deref()),
    };
    emit(out, text.as_bytes())?;
    Ok(exit::OK)
}

/// Writes a command's result to `out`.
fn emit(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(Error::Output)
}

/// `30d`, `12h`, `90m` before `now`, or an RFC 3339 time.
pub fn parse_since(when: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = when.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let ago = match when.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("--since {when}: not a number of days")),
        None => parse_duration(when),
    }
    .map_err(|e| format!("--since {when}: {e}; give e.g. 30d, 12h or 2026-01-01T00:00:00Z"))?;
    let ago = jiff::SignedDuration::try_from(ago).map_err(|e| format!("--since {when}: {e}"))?;
    now.checked_sub(ago)
        .map_err(|e| format!("--since {when}: {e}"))
}

/// `backup`, `restore` and `dr-drill`: they work on namespaces and archives, not one release.
fn archive_command(
    command: &Command,
    out: &mut dyn Write,
    colour: bool,
) -> Option<Result<u8, Error>> {
    use commands::backup;
    let (name, json) = match command {
        Command::Backup(a) => ("backup", a.cluster.output),
        Command::Restore(a) => ("restore", a.cluster.output),
        Command::DrDrill(a) => ("dr-drill", a.cluster.output),
        _ => return None,
    };
    let json = json == Output::Json;
    let run = |out: &mut dyn Write| -> Result<u8, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let progress = Progress::new(false);
        let result = runtime.block_on(async {
            match command {
                Command::Backup(a) => backup::backup(a, &progress).await,
                Command::Restore(a) => backup::restore(a, &progress, colour).await,
                Command::DrDrill(a) => backup::drill(a, &progress, colour).await,
                _ => Err(Error::Usage("not an archive command".into())),
            }
        });
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                if let Command::DrDrill(a) = command {
                    let mut report = Report::new(name, "", "");
                    report.message = e.to_string();
                    let now = crate::clock::now_rfc3339();
                    report.timeline.insert("started".into(), now.clone().into());
                    report.timeline.insert("finished".into(), now.into());
                    for problem in crate::deploy_metrics::record(&a.record, &report) {
                        eprintln!("warning: {problem}");
                    }
                }
                if !json {
                    return Err(e);
                }
                let doc = serde_json::json!({
                    "version": 1,
                    "command": name,
                    "outcome": "error",
                    "message": e.to_string(),
                });
                (exit::ERROR, doc, String::new())
            }
        };
        let (code, text) = backup::output(done, json);
        emit(out, text.as_bytes())?;
        Ok(code)
    };
    Some(run(out))
}

/// Whether results on stdout are in colour: on a terminal, unless NO_COLOR is set.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Runs a parsed command line with its result on stdout; returns the exit code.
pub fn run(cli: Cli) -> Result<u8, Error> {
    run_to(cli, &mut std::io::stdout(), colour())
}

/// Runs a parsed command line as [`run`] does, with the result (what `run` prints on stdout)
/// written to `out`, its findings in colour when `colour`. Progress and warnings go to stderr.
pub fn run_to(cli: Cli, out: &mut dyn Write, colour: bool) -> Result<u8, Error> {
    if let Command::Report(args) = &cli.command {
        return report(args, out);
    }
    if let Some(result) = archive_command(&cli.command, out, colour) {
        return result;
    }
    let record = match &cli.command {
        Command::Apply(a) => Some(a.record.clone()),
        Command::Rollback(a) => Some(a.record.clone()),
        Command::Promote(a) | Command::Abort(a) => Some(a.record.clone()),
        _ => None,
    };
    let release = match &cli.command {
        Command::Apply(a) => &a.release,
        Command::Plan(a) => &a.release,
        Command::History(a) | Command::Status(a) => a,
        Command::Rollback(a) => &a.release,
        Command::Promote(a) | Command::Abort(a) => &a.release,
        Command::Report(_) | Command::Backup(_) | Command::Restore(_) | Command::DrDrill(_) => {
            return Ok(exit::OK)
        }
    };
    check_release_name(&release.release)?;
    let output = release.output;
    let command = match &cli.command {
        Command::Apply(_) => "apply",
        Command::Plan(_) => "plan",
        Command::History(_) => "history",
        Command::Status(_) => "status",
        Command::Rollback(_) => "rollback",
        Command::Promote(_) => "promote",
        Command::Abort(_) => "abort",
        Command::Report(_) => "report",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::DrDrill(_) => "dr-drill",
    };
    let (name, namespace) = (release.release.clone(), release.namespace.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let progress = Progress::new(false);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Apply(args) => commands::apply::run(&args, &progress, colour).await,
            Command::Plan(args) => commands::plan::run(&args, &progress, colour).await,
            Command::History(args) => commands::history::history(&args).await,
            Command::Status(args) => commands::history::status(&args).await,
            Command::Rollback(args) => commands::rollback::run(&args, &progress).await,
            Command::Promote(args) => commands::promote::promote(&args, &progress).await,
            Command::Abort(args) => commands::promote::abort(&args, &progress).await,
            Command::Report(_) | Command::Backup(_) | Command::Restore(_) | Command::DrDrill(_) => {
                Ok((exit::OK, None, String::new()))
            }
        }
    });
    let mut recorded = false;
    let (code, report, text) = match result {
        Ok(done) => done,
        Err(e) => {
            let mut report = Report::new(command, &name, namespace.as_deref().unwrap_or(""));
            report.outcome = Outcome::Error;
            report.message = e.to_string();
            let now = crate::clock::now_rfc3339();
            report.timeline.insert("started".into(), now.clone().into());
            report.timeline.insert("finished".into(), now.into());
            if let Some(record) = &record {
                for problem in crate::deploy_metrics::record(record, &report) {
                    eprintln!("warning: {problem}");
                }
            }
            recorded = true;
            if output != Output::Json {
                return Err(e);
            }
            (exit::ERROR, Some(report), String::new())
        }
    };
    if let (false, Some(record), Some(report)) = (recorded, &record, &report) {
        for problem in crate::deploy_metrics::record(record, report) {
            eprintln!("warning: {problem}");
        }
    }
    match (output, report) {
        (Output::Json, Some(report)) => emit(out, report.to_json().as_bytes())?,
        _ => emit(out, text.as_bytes())?,
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("100000000000000000000").is_err());
        assert!(parse_since("213503982334601d", jiff::Timestamp::UNIX_EPOCH).is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn release_names() {
        assert!(check_release_name("shop-api").is_ok());
        assert!(check_release_name("Shop").is_err());
        assert!(check_release_name("-a").is_err());
        assert!(check_release_name(&"a".repeat(54)).is_err());
    }

    #[test]
    fn arguments_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "executor",
            "apply",
            "-r",
            "api",
            "-n",
            "shop",
            "deploy/",
            "--timeout",
            "2m",
            "-o",
            "json",
        ])
        .unwrap();
        match cli.command {
            Command::Apply(a) => {
                assert_eq!(a.rollout.timeout, Duration::from_secs(120));
                assert_eq!(a.release.output, Output::Json);
                assert_eq!(a.inputs.paths, [PathBuf::from("deploy/")]);
            }
            c => panic!("{c:?}"),
        }
        assert!(Cli::try_parse_from(["executor", "apply", "-r", "api"]).is_err());
    }

    #[test]
    fn archive_commands_parse() {
        let cli = Cli::try_parse_from([
            "executor",
            "dr-drill",
            "--input-file",
            "shop.json.gz",
            "--rto-target",
            "30m",
            "--bundle",
            "baseline",
            "-o",
            "json",
        ])
        .unwrap();
        match cli.command {
            Command::DrDrill(a) => {
                assert_eq!(a.rto_target, Duration::from_secs(1800));
                assert_eq!(a.timeout, Duration::from_secs(3600));
                assert_eq!(a.namespace_prefix, "drill-");
                assert_eq!(a.policy.flags.bundle, "baseline");
                assert_eq!(a.cluster.output, Output::Json);
            }
            c => panic!("{c:?}"),
        }
        let cli = Cli::try_parse_from([
            "executor",
            "backup",
            "-n",
            "shop",
            "-r",
            "api",
            "-r",
            "web",
            "--output-file",
            "b.gz",
        ])
        .unwrap();
        match cli.command {
            Command::Backup(a) => {
                assert_eq!(a.releases, ["api", "web"]);
                assert_eq!(a.output_file, PathBuf::from("b.gz"));
            }
            c => panic!("{c:?}"),
        }
        assert!(Cli::try_parse_from(["executor", "backup", "-n", "shop"]).is_err());
        assert!(Cli::try_parse_from(["executor", "restore", "-n", "x"]).is_err());
    }

    #[test]
    fn gate_flags_pair_metrics_with_their_max() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["executor", "apply", "-r", "api", "deploy/"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).map(|c| c.command) {
                Ok(Command::Apply(a)) => Ok(a),
                Ok(c) => panic!("{c:?}"),
                Err(e) => Err(e.to_string()),
            }
        };
        let a = parse(&[
            "--strategy",
            "blue-green",
            "--prometheus",
            "http://prom:9090",
            "--metric",
            "errors",
            "--max",
            "0.005",
            "--metric",
            "latency",
            "--max",
            "-1",
            "--observe",
            "60s",
            "--gate-errors",
            "ignore",
            "--smoke-url",
            "http://api/healthz",
        ])
        .unwrap();
        assert_eq!(a.strategy, Strategy::BlueGreen);
        let gates = a.gates.gates().unwrap();
        assert_eq!(gates.metrics.len(), 2);
        assert_eq!(gates.metrics[1].max, -1.0);
        assert_eq!(gates.observe, Duration::from_secs(60));
        assert_eq!(gates.gate_errors, GateErrors::Ignore);
        assert_eq!(gates.smoke.as_ref().unwrap().status, 200);
        let unpaired = parse(&["--prometheus", "http://p", "--metric", "errors"]).unwrap();
        assert!(unpaired
            .gates
            .gates()
            .unwrap_err()
            .to_string()
            .contains("one --max per --metric"));
        assert!(parse(&["--metric", "errors", "--max", "1"])
            .unwrap_err()
            .contains("--prometheus"));
        assert!(parse(&["--smoke-status", "204"])
            .unwrap_err()
            .contains("--smoke-url"));
    }
}
