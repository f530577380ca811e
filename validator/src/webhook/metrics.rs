//! Prometheus metrics of the webhook, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histogram.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<String, u64>>,
    violations: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    evaluation_errors: AtomicU64,
    shed: AtomicU64,
    reload_ok: AtomicU64,
    reload_failed: AtomicU64,
}

impl Metrics {
    pub fn request(&self, decision: &str, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(decision.to_string()).or_default() += 1;
        }
        if let Ok(mut h) = self.latency.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.0[i] += 1;
                }
            }
            h.1 += 1;
            h.2 += seconds;
        }
    }
    pub fn violation(&self, constraint: &str, action: &str) {
        if let Ok(mut m) = self.violations.lock() {
            *m.entry((constraint.to_string(), action.to_string()))
                .or_default() += 1;
        }
    }
    pub fn evaluation_error(&self) {
        self.evaluation_errors.fetch_add(1, Ordering::Relaxed);
    }
    /// A request answered by the failure policy at once because the queue was full.
    pub fn shed(&self) {
        self.shed.fetch_add(1, Ordering::Relaxed);
    }
    pub fn reload(&self, ok: bool) {
        let c = if ok {
            &self.reload_ok
        } else {
            &self.reload_failed
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics text; `waiting` is the number of requests waiting for an evaluation slot now.
    pub fn render(&self, generation: u64, waiting: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP validator_requests_total Admission requests by decision.\n# TYPE validator_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for (d, n) in m.iter() {
                let _ = writeln!(out, "validator_requests_total{{decision=\"{d}\"}} {n}");
            }
        }
        out.push_str("# HELP validator_violations_total Violations by constraint and enforcement action.\n# TYPE validator_violations_total counter\n");
        if let Ok(m) = self.violations.lock() {
            for ((c, a), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "validator_violations_total{{constraint=\"{}\",enforcement_action=\"{a}\"}} {n}",
                    c.replace('\\', "\\\\").replace('"', "\\\"")
                );
            }
        }
        out.push_str("# HELP validator_request_duration_seconds Time to answer an admission request.\n# TYPE validator_request_duration_seconds histogram\n");
        if let Ok(h) = self.latency.lock() {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "validator_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                    h.0[i]
                );
            }
            let _ = writeln!(
                out,
                "validator_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nvalidator_request_duration_seconds_sum {}\nvalidator_request_duration_seconds_count {}",
                h.1, h.2, h.1
            );
        }
        let _ = writeln!(
            out,
            "# HELP validator_evaluation_errors_total Evaluations that failed or timed out.\n# TYPE validator_evaluation_errors_total counter\nvalidator_evaluation_errors_total {}",
            self.evaluation_errors.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP validator_requests_shed_total Requests answered by the failure policy at once because the queue was full.\n# TYPE validator_requests_shed_total counter\nvalidator_requests_shed_total {}",
            self.shed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP validator_requests_waiting Requests waiting for an evaluation slot.\n# TYPE validator_requests_waiting gauge\nvalidator_requests_waiting {waiting}"
        );
        let _ = writeln!(
            out,
            "# HELP validator_policy_reloads_total Policy reloads by result.\n# TYPE validator_policy_reloads_total counter\nvalidator_policy_reloads_total{{result=\"success\"}} {}\nvalidator_policy_reloads_total{{result=\"failure\"}} {}",
            self.reload_ok.load(Ordering::Relaxed),
            self.reload_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP validator_policy_generation Generation of the policy set being served.\n# TYPE validator_policy_generation gauge\nvalidator_policy_generation {generation}"
        );
        out
    }
}
