//! Gatekeeper-compatible policy and schema checks for Kubernetes manifests.
//!
//! The pipeline: [`manifest`] loads objects with their source positions, [`policy`] builds the
//! set of templates and constraints, [`review`] builds admission reviews (expanding workloads),
//! [`engine`] evaluates Rego, [`check`] runs it all in parallel, and [`report`] renders findings.

pub mod args;
pub mod audit;
pub mod bundle;
pub mod chart;
pub mod check;
pub mod cli;
pub mod digest;
pub mod duration;
pub mod engine;
pub mod files;
pub mod glob;
pub mod manifest;
pub mod policy;
pub mod pushgateway;
pub mod redact;
pub mod report;
pub mod review;
pub mod schema;
pub mod signature;
pub mod vap;
pub mod verify;
pub mod waiver;
pub mod webhook;
