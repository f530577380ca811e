//! Rollout gates beyond the workloads' own readiness: an HTTP smoke check and Prometheus
//! queries, evaluated after a rollout (and, for blue-green, before and after the switch), and
//! the record of every gate's result.

pub mod prometheus;
pub mod smoke;

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a gate ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateOutcome {
    Passed,
    Failed,
    /// The gate could not be evaluated (Prometheus unreachable, a query error): it counts as
    /// failed.
    Error,
    /// The gate could not be evaluated and `--gate-errors ignore` let the release go on.
    Ignored,
}

impl GateOutcome {
    /// Whether the release may go on.
    pub fn passed(self) -> bool {
        matches!(self, GateOutcome::Passed | GateOutcome::Ignored)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GateOutcome::Passed => "passed",
            GateOutcome::Failed => "failed",
            GateOutcome::Error => "error",
            GateOutcome::Ignored => "ignored",
        }
    }
}

/// One gate's result, as kept in the release record and printed in `--output json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// `readiness`, `smoke`, `metric <query>`, `hook pre-deploy Job ns/name`.
    pub name: String,
    pub outcome: GateOutcome,
    /// The measured value: the last query result, or the HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub message: String,
    /// When the result was decided (RFC 3339).
    pub time: String,
}

impl GateResult {
    pub fn new(name: impl Into<String>, outcome: GateOutcome, message: impl Into<String>) -> Self {
        GateResult {
            name: name.into(),
            outcome,
            value: None,
            message: message.into(),
            time: crate::clock::now_rfc3339(),
        }
    }

    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }
}

impl std::fmt::Display for GateResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gate {}: {} ({})",
            self.name,
            self.outcome.as_str(),
            self.message
        )
    }
}

/// What a gate that cannot be evaluated counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GateErrors {
    /// As a failure.
    #[default]
    Fail,
    /// As a pass (the error is still recorded).
    Ignore,
}

/// An HTTP check: `url` must answer `status` within `retries` further attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Smoke {
    pub url: String,
    pub status: u16,
    pub retries: u32,
    #[serde(with = "seconds")]
    pub interval: Duration,
}

/// A Prometheus query whose result must stay at or below `max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    pub query: String,
    pub max: f64,
}

/// Every gate of a release, kept in its record so that `promote` evaluates what `apply` was
/// given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoke: Option<Smoke>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// Time between two measurements of a query.
    #[serde(with = "seconds")]
    pub metric_interval: Duration,
    /// Measurements above `max` tolerated; one more fails the gate.
    pub metric_failure_limit: u32,
    pub gate_errors: GateErrors,
    /// How long metrics and readiness are watched after a rollout (after the switch, for
    /// blue-green).
    #[serde(with = "seconds")]
    pub observe: Duration,
}

/// Durations as seconds (fractions allowed) in records.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
    }
}

/// Watches the release for the observation window: every metric gate, and the readiness of
/// `deployments` (all their replicas must stay available). Returns every gate's result.
pub async fn observe(
    cluster: &crate::cluster::Cluster,
    client: &reqwest::Client,
    gates: &Gates,
    deployments: &[crate::object::ObjectId],
    progress: &crate::progress::Progress,
) -> Vec<GateResult> {
    use futures::future::join_all;
    use std::sync::atomic::{AtomicBool, Ordering};
    // Once a metric gate has failed there is nothing left to observe.
    let failed = AtomicBool::new(false);
    let metrics = join_all(gates.metrics.iter().map(|m| async {
        let result = prometheus::evaluate(client, gates, m, progress).await;
        if !result.outcome.passed() {
            failed.store(true, Ordering::SeqCst);
        }
        result
    }));
    let readiness = readiness_during(cluster, deployments, gates.observe, &failed);
    let (mut results, readiness) = tokio::join!(metrics, readiness);
    results.push(readiness);
    results
}

/// Polls the Deployments until the window ends; fails as soon as one has fewer available
/// replicas than it wants.
async fn readiness_during(
    cluster: &crate::cluster::Cluster,
    deployments: &[crate::object::ObjectId],
    window: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> GateResult {
    use k8s_openapi::api::apps::v1::Deployment;
    let start = tokio::time::Instant::now();
    loop {
        for id in deployments {
            let api: kube::Api<Deployment> =
                kube::Api::namespaced(cluster.client.clone(), &id.namespace);
            match api.get_opt(&id.name).await {
                Ok(Some(d)) => {
                    let wanted = d.spec.replicas.unwrap_or(1);
                    let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
                    if available < wanted {
                        return GateResult::new(
                            "readiness",
                            GateOutcome::Failed,
                            format!("{id}: {available}/{wanted} available while observed"),
                        )
                        .with_value(f64::from(available));
                    }
                }
                Ok(None) => {
                    return GateResult::new(
                        "readiness",
                        GateOutcome::Failed,
                        format!("{id} was deleted while observed"),
                    )
                }
                Err(e) => {
                    return GateResult::new(
                        "readiness",
                        GateOutcome::Error,
                        format!("cannot read {id}: {}", crate::cluster::describe(&e)),
                    )
                }
            }
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return GateResult::new(
                "readiness",
                GateOutcome::Passed,
                format!(
                    "{} Deployment(s) fully available for {:.1}s, until a metric gate failed",
                    deployments.len(),
                    start.elapsed().as_secs_f64()
                ),
            );
        }
        if start.elapsed() >= window {
            return GateResult::new(
                "readiness",
                GateOutcome::Passed,
                format!(
                    "{} Deployment(s) fully available for {}s",
                    deployments.len(),
                    window.as_secs_f64()
                ),
            );
        }
        tokio::time::sleep(READINESS_POLL.min(window)).await;
    }
}

/// How often readiness is looked at while observing.
const READINESS_POLL: Duration = Duration::from_millis(500);

/// An HTTP client for gates: no proxy from the environment, a timeout per request.
pub fn http_client() -> Result<reqwest::Client, String> {
    // reqwest is built without its own crypto provider; use ring, as the rest of the binary does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client for the gates: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates_round_trip_through_the_record_format() {
        let gates = Gates {
            smoke: Some(Smoke {
                url: "http://api.shop/healthz".into(),
                status: 200,
                retries: 3,
                interval: Duration::from_millis(1500),
            }),
            metrics: vec![Metric {
                query: "sum(rate(errors[1m]))".into(),
                max: 0.005,
            }],
            prometheus: Some("http://prometheus:9090".into()),
            metric_interval: Duration::from_secs(10),
            metric_failure_limit: 1,
            gate_errors: GateErrors::Ignore,
            observe: Duration::from_secs(60),
        };
        let json = serde_json::to_value(&gates).unwrap();
        assert_eq!(json["metricInterval"], 10.0);
        assert_eq!(json["smoke"]["interval"], 1.5);
        assert_eq!(json["gateErrors"], "ignore");
        let back: Gates = serde_json::from_value(json).unwrap();
        assert_eq!(back, gates);
    }

    #[test]
    fn only_passed_and_ignored_let_a_release_go_on() {
        assert!(GateOutcome::Passed.passed());
        assert!(GateOutcome::Ignored.passed());
        assert!(!GateOutcome::Failed.passed());
        assert!(!GateOutcome::Error.passed());
    }
}
