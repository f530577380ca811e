//! Applies manifests that passed the validator to a cluster and carries out their rollout:
//! [`gate`] (validation), [`plan`] (order, dry run, diff), [`apply`] (server-side apply),
//! [`strategy`] (rolling, blue-green), [`health`] (verdicts), [`analysis`] (smoke and metric
//! gates), [`hook`] (hook Jobs), [`release`] (history and rollback), [`lock`] (one operation
//! per release at a time), [`outcome`] (durations and results), [`deploy_metrics`] (deploy
//! log, Prometheus metrics, delivery metrics), [`events`] (Kubernetes Events on the workloads)
//! [`backup`] (archives of releases for restores and recovery drills) and [`files`] (whole-file
//! writes, bounded decompression). [`cli`] holds the commands and `run`, [`args`] their
//! arguments, [`parse`] the checks of argument values and [`exit`] how a command ended.

pub mod analysis;
pub mod apply;
pub mod args;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
mod commands;
pub mod deploy_metrics;
pub mod events;
pub mod exit;
pub mod files;
pub mod gate;
pub mod health;
pub mod hook;
pub mod lock;
pub mod object;
pub mod outcome;
pub mod parse;
pub mod plan;
pub mod progress;
pub use validator::redact;
pub mod release;
pub mod strategy;

/// An error that stops a command (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Plan(#[from] Box<plan::PlanError>),
    #[error(transparent)]
    Gate(#[from] gate::GateError),
    #[error(transparent)]
    Attestation(#[from] gate::AttestationError),
    #[error(transparent)]
    History(#[from] release::HistoryError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Archive(#[from] backup::ArchiveError),
    #[error(transparent)]
    DeployLog(#[from] deploy_metrics::LogError),
    #[error(transparent)]
    Since(#[from] parse::SinceError),
    /// A request the cluster refused, described.
    #[error("{0}")]
    Api(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
}

impl From<plan::PlanError> for Error {
    fn from(e: plan::PlanError) -> Self {
        Error::Plan(Box::new(e))
    }
}
