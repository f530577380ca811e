//! Prometheus metrics of the webhook, served in the OpenMetrics text format.

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViolationLabels {
    constraint: String,
    enforcement_action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<DecisionLabels, Counter>,
    violations: Family<ViolationLabels, Counter>,
    latency: Histogram,
    evaluation_errors: Counter,
    shed: Counter,
    reloads: Family<ReloadLabels, Counter>,
    waiting: Gauge,
    threads: Gauge,
    generation: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            violations: Family::default(),
            latency: Histogram::new(BUCKETS),
            evaluation_errors: Counter::default(),
            shed: Counter::default(),
            reloads: Family::default(),
            waiting: Gauge::default(),
            threads: Gauge::default(),
            generation: Gauge::default(),
        };
        for result in ["success", "failure"] {
            let _ = m.reloads.get_or_create(&ReloadLabels { result });
        }
        {
            let r = &mut m.registry;
            r.register(
                "validator_requests",
                "Admission requests by decision",
                m.requests.clone(),
            );
            r.register(
                "validator_violations",
                "Violations by constraint and enforcement action",
                m.violations.clone(),
            );
            r.register(
                "validator_request_duration_seconds",
                "Time to answer an admission request",
                m.latency.clone(),
            );
            r.register(
                "validator_evaluation_errors",
                "Evaluations that failed or timed out",
                m.evaluation_errors.clone(),
            );
            r.register(
                "validator_requests_shed",
                "Requests answered by the failure policy at once because the queue was full",
                m.shed.clone(),
            );
            r.register(
                "validator_requests_waiting",
                "Requests waiting for an evaluation slot",
                m.waiting.clone(),
            );
            r.register(
                "validator_evaluation_threads",
                "Threads that run evaluations, busy or idle",
                m.threads.clone(),
            );
            r.register(
                "validator_policy_reloads",
                "Policy reloads by result",
                m.reloads.clone(),
            );
            r.register(
                "validator_policy_generation",
                "Generation of the policy set being served",
                m.generation.clone(),
            );
        }
        m
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn request(&self, decision: &str, seconds: f64) {
        self.requests
            .get_or_create(&DecisionLabels {
                decision: decision.to_string(),
            })
            .inc();
        self.latency.observe(seconds);
    }
    pub fn violation(&self, constraint: &str, action: &str) {
        self.violations
            .get_or_create(&ViolationLabels {
                constraint: constraint.to_string(),
                enforcement_action: action.to_string(),
            })
            .inc();
    }
    pub fn evaluation_error(&self) {
        self.evaluation_errors.inc();
    }
    /// A request answered by the failure policy at once because the queue was full.
    pub fn shed(&self) {
        self.shed.inc();
    }
    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The metrics text; `waiting` is the number of requests waiting for an evaluation slot now,
    /// `threads` the number of threads that run evaluations.
    pub fn render(&self, generation: u64, waiting: usize, threads: usize) -> String {
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.waiting.set(i64::try_from(waiting).unwrap_or(i64::MAX));
        self.threads.set(i64::try_from(threads).unwrap_or(i64::MAX));
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            out = format!("# the metrics cannot be written: {e}\n");
        }
        out
    }
}
