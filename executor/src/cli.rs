//! Command-line interface: the commands and `run`, which the binary maps to an exit code; their
//! arguments are in [`crate::args`].

use std::io::{IsTerminal, Write};

use clap::{Parser, Subcommand};

use crate::args::{
    ApplyArgs, BackupArgs, DrillArgs, Output, PlanArgs, PromotionArgs, ReleaseArgs, ReportArgs,
    RestoreArgs, RollbackArgs,
};
use crate::exit::ExitStatus;
use crate::outcome::{Outcome, Report};
use crate::parse::check_release_name;
use crate::progress::Progress;
use crate::{commands, Error};

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

/// Writes a command's result to `out`.
fn emit(out: &mut dyn Write, bytes: &[u8]) -> Result<(), Error> {
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(Error::Output)
}
/// `backup`, `restore` and `dr-drill`: they work on namespaces and archives, not one release.
fn archive_command(
    command: &Command,
    out: &mut dyn Write,
    colour: bool,
) -> Option<Result<ExitStatus, Error>> {
    use commands::backup;
    let (name, json) = match command {
        Command::Backup(a) => ("backup", a.cluster.output),
        Command::Restore(a) => ("restore", a.cluster.output),
        Command::DrDrill(a) => ("dr-drill", a.cluster.output),
        _ => return None,
    };
    let json = json == Output::Json;
    let run = |out: &mut dyn Write| -> Result<ExitStatus, Error> {
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
                (ExitStatus::Error, doc, String::new())
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

/// Runs a parsed command line with its result on stdout; returns how it ended.
pub fn run(cli: Cli) -> Result<ExitStatus, Error> {
    run_to(cli, &mut std::io::stdout(), colour())
}

/// Runs a parsed command line as [`run`] does, with the result (what `run` prints on stdout)
/// written to `out`, its findings in colour when `colour`. Progress and warnings go to stderr.
pub fn run_to(cli: Cli, out: &mut dyn Write, colour: bool) -> Result<ExitStatus, Error> {
    if let Command::Report(args) = &cli.command {
        let text = commands::report::run(args)?;
        emit(out, text.as_bytes())?;
        return Ok(ExitStatus::Success);
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
            return Ok(ExitStatus::Success)
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
                Ok((ExitStatus::Success, None, String::new()))
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
            (ExitStatus::Error, Some(report), String::new())
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
