//! Command-line interface: the commands and `run`, which the binary maps to an exit code; their
//! arguments are in [`crate::args`].

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};

use crate::args::{
    ApplyArgs, BackupArgs, DrillArgs, Output, PlanArgs, PromotionArgs, ReleaseArgs, ReportArgs,
    RestoreArgs, RollbackArgs,
};
use crate::commands::{self, Done};
use crate::deploy_metrics::RecordArgs;
use crate::exit::ExitStatus;
use crate::outcome::{Outcome, Report};
use crate::parse::check_release_name;
use crate::progress::Progress;
use crate::Error;

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

impl Command {
    /// The command's name, as given on the command line.
    pub fn name(&self) -> &'static str {
        match self {
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
        }
    }

    /// The release the command works on; None for the commands on the deploy log, archives
    /// and namespaces.
    pub fn release(&self) -> Option<&ReleaseArgs> {
        match self {
            Command::Apply(a) => Some(&a.release),
            Command::Plan(a) => Some(&a.release),
            Command::History(a) | Command::Status(a) => Some(a),
            Command::Rollback(a) => Some(&a.release),
            Command::Promote(a) | Command::Abort(a) => Some(&a.release),
            Command::Report(_) | Command::Backup(_) | Command::Restore(_) | Command::DrDrill(_) => {
                None
            }
        }
    }

    /// Where the run is recorded (`--deploy-log`, `--metrics-file`, `--pushgateway`): its
    /// report and, when it stops on an error, that error.
    pub fn record(&self) -> Option<&RecordArgs> {
        match self {
            Command::Apply(a) => Some(&a.record),
            Command::Rollback(a) => Some(&a.record),
            Command::Promote(a) | Command::Abort(a) => Some(&a.record),
            Command::DrDrill(a) => Some(&a.record),
            Command::Plan(_)
            | Command::History(_)
            | Command::Status(_)
            | Command::Report(_)
            | Command::Backup(_)
            | Command::Restore(_) => None,
        }
    }

    /// The format of the result on stdout.
    pub fn output(&self) -> Output {
        match self {
            Command::Report(a) => a.output,
            Command::Backup(a) => a.cluster.output,
            Command::Restore(a) => a.cluster.output,
            Command::DrDrill(a) => a.cluster.output,
            _ => self.release().map_or(Output::Human, |r| r.cluster.output),
        }
    }

    /// Whether an error that stops the command is its result with `--output json` (every
    /// command's but `report`'s, which only prints the deploy log's summary).
    fn prints_errors(&self) -> bool {
        self.output() == Output::Json && !matches!(self, Command::Report(_))
    }
}

/// Writes a command's result to `out`.
fn emit(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(Error::Output)
}

/// Whether results on stdout are in colour: on a terminal, unless NO_COLOR is set.
pub fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Runs a parsed command line with its result on stdout; returns how it ended.
pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    run_to(cli, &mut std::io::stdout(), colour())
}

/// Runs a parsed command line as [`run`] does, with the result (what `run` prints on stdout)
/// written to `out`, its findings in colour when `colour`. Progress and warnings go to stderr.
pub fn run_to(cli: Cli, out: &mut dyn Write, colour: bool) -> Result<ExitStatus, Error> {
    let command = &cli.command;
    if let Some(release) = command.release() {
        check_release_name(&release.release)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let progress = Progress::new(false);
    let result = runtime.block_on(async {
        match command {
            Command::Apply(args) => commands::apply::run(args, &progress, colour).await,
            Command::Plan(args) => commands::plan::run(args, &progress, colour).await,
            Command::History(args) => commands::history::history(args).await,
            Command::Status(args) => commands::history::status(args).await,
            Command::Rollback(args) => commands::rollback::run(args, &progress).await,
            Command::Promote(args) => commands::promote::promote(args, &progress).await,
            Command::Abort(args) => commands::promote::abort(args, &progress).await,
            Command::Report(args) => commands::report::run(args),
            Command::Backup(args) => commands::backup::run(args, &progress).await,
            Command::Restore(args) => commands::restore::run(args, &progress, colour).await,
            Command::DrDrill(args) => commands::dr_drill::run(args, &progress, colour).await,
        }
    });
    let done = match result {
        Ok(done) => {
            if let (Some(record), Some(report)) = (command.record(), &done.report) {
                warn(crate::deploy_metrics::record(record, report));
            }
            done
        }
        Err(e) => stopped(command, e)?,
    };
    let status = done.status;
    emit(
        out,
        done.output(command.output() == Output::Json).as_bytes(),
    )?;
    Ok(status)
}

/// A command stopped by an error: the error is recorded where the command records its runs;
/// with `--output json` it is the command's result (its report, for a release command), else
/// it is returned.
fn stopped(command: &Command, e: Error) -> Result<Done, Error> {
    let release = command.release();
    let mut report = Report::new(
        command.name(),
        release.map_or("", |r| r.release.as_str()),
        release.and_then(|r| r.namespace.as_deref()).unwrap_or(""),
    );
    report.outcome = Outcome::Error;
    report.message = e.to_string();
    let now = crate::clock::now_rfc3339();
    report.timeline.insert("started".into(), now.clone().into());
    report.timeline.insert("finished".into(), now.into());
    if let Some(record) = command.record() {
        warn(crate::deploy_metrics::record(record, &report));
    }
    if !command.prints_errors() {
        return Err(e);
    }
    Ok(match release {
        Some(_) => Done::report(ExitStatus::Error, report, String::new()),
        None => Done::doc(
            ExitStatus::Error,
            serde_json::json!({
                "version": 1,
                "command": command.name(),
                "outcome": "error",
                "message": e.to_string(),
            }),
            String::new(),
        ),
    })
}

/// Problems recording a run, as warnings on stderr.
fn warn(problems: Vec<String>) {
    for problem in problems {
        eprintln!("warning: {problem}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::analysis::GateErrors;
    use crate::strategy::Strategy;

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
                assert_eq!(a.release.cluster.output, Output::Json);
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
                assert_eq!(a.policy.flags.source.bundle, "baseline");
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
