//! The arguments of the commands, shared by the command line and the commands.

use std::path::PathBuf;
use std::time::Duration;

use crate::analysis::{GateErrors, Gates, Metric, Smoke};
use crate::deploy_metrics::RecordArgs;
use crate::gate::PolicyArgs;
use crate::parse::parse_duration;
use crate::strategy::Strategy;
use crate::Error;

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
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The manifests to apply: paths and a chart (rendered as the release, in its namespace).
pub use validator::args::InputFlags as InputArgs;

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
