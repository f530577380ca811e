//! Metric gates: a PromQL query evaluated through Prometheus' HTTP API (`/api/v1/query`) every
//! `--metric-interval` over the observation window. As in Argo Rollouts' analysis, a
//! measurement above `--max` is a failure, and more failures than `--metric-failure-limit`
//! fail the gate. A measurement that cannot be taken (Prometheus unreachable, a query error,
//! no samples) is an error: it fails the gate unless `--gate-errors ignore`.

use std::time::Duration;

use serde_json::Value;

use super::{GateErrors, GateOutcome, GateResult, Gates, Metric};
use crate::progress::Progress;

/// The value of a query result: a scalar, or the largest sample of an instant vector.
pub fn parse(body: &str) -> Result<f64, String> {
    let doc: Value = serde_json::from_str(body)
        .map_err(|e| format!("the answer is not Prometheus API JSON ({e})"))?;
    if doc["status"] != "success" {
        return Err(format!(
            "query failed: {}: {}",
            doc["errorType"].as_str().unwrap_or("error"),
            doc["error"].as_str().unwrap_or("no message")
        ));
    }
    let data = &doc["data"];
    let sample = |pair: &Value| -> Result<f64, String> {
        let text = pair[1]
            .as_str()
            .ok_or_else(|| "a sample without a value".to_string())?;
        let value: f64 = match text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            t => t
                .parse()
                .map_err(|_| format!("the sample value `{t}` is not a number"))?,
        };
        if value.is_nan() {
            return Err("the query returned NaN".into());
        }
        Ok(value)
    };
    match data["resultType"].as_str() {
        Some("scalar") => sample(&data["result"]),
        Some("vector") => {
            let samples = data["result"].as_array().cloned().unwrap_or_default();
            if samples.is_empty() {
                return Err("the query returned no samples".into());
            }
            let mut max = f64::NEG_INFINITY;
            for s in &samples {
                max = max.max(sample(&s["value"])?);
            }
            Ok(max)
        }
        Some(other) => Err(format!(
            "the query returned a {other}; use a query that returns a scalar or an instant vector"
        )),
        None => Err("the answer has no resultType".into()),
    }
}

/// One measurement.
pub async fn query(client: &reqwest::Client, prometheus: &str, query: &str) -> Result<f64, String> {
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", query)
        .finish();
    let url = format!(
        "{}/api/v1/query?{encoded}",
        prometheus.trim_end_matches('/')
    );
    let response = client.get(&url).send().await.map_err(|e| {
        crate::redact::credentials(&format!("cannot reach Prometheus at {prometheus}: {e}"))
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| crate::redact::credentials(&format!("cannot read Prometheus' answer: {e}")))?;
    match parse(&body) {
        Ok(v) => Ok(v),
        Err(e) if status.is_success() => Err(e),
        Err(e) => Err(format!("HTTP {}: {e}", status.as_u16())),
    }
}

/// The number of measurements in a window: one now, then one per interval until it ends.
pub fn measurements(window: Duration, interval: Duration) -> u32 {
    if interval.is_zero() {
        return 1;
    }
    let n = (window.as_secs_f64() / interval.as_secs_f64()).floor();
    (n as u32).saturating_add(1)
}

/// Measures `metric` over the observation window; ends early once the gate has failed.
pub async fn evaluate(
    client: &reqwest::Client,
    gates: &Gates,
    metric: &Metric,
    progress: &Progress,
) -> GateResult {
    let name = format!("metric {}", metric.query);
    let Some(prometheus) = gates.prometheus.as_deref() else {
        return GateResult::new(
            name,
            GateOutcome::Error,
            "no Prometheus to ask: give --prometheus URL",
        );
    };
    let total = measurements(gates.observe, gates.metric_interval);
    let (mut failures, mut errors, mut taken) = (0u32, 0u32, 0u32);
    let mut last: Option<f64> = None;
    let mut last_error = String::new();
    for i in 0..total {
        if i > 0 {
            tokio::time::sleep(gates.metric_interval).await;
        }
        match query(client, prometheus, &metric.query).await {
            Ok(v) => {
                taken += 1;
                last = Some(v);
                if v > metric.max {
                    failures += 1;
                    progress.note(format!(
                        "{name}: {v} is above {} ({failures} failure(s), limit {})",
                        metric.max, gates.metric_failure_limit
                    ));
                }
                if failures > gates.metric_failure_limit {
                    let r = GateResult::new(
                        &name,
                        GateOutcome::Failed,
                        format!(
                            "{failures} of {taken} measurement(s) above {} (limit {}); last {v}",
                            metric.max, gates.metric_failure_limit
                        ),
                    );
                    return r.with_value(v);
                }
            }
            Err(e) => {
                errors += 1;
                progress.note(format!("{name}: cannot be evaluated: {e}"));
                if gates.gate_errors == GateErrors::Fail {
                    return GateResult::new(
                        &name,
                        GateOutcome::Error,
                        format!("cannot be evaluated: {e} (use --gate-errors ignore to go on regardless)"),
                    );
                }
                last_error = e;
            }
        }
    }
    let result = if taken == 0 {
        GateResult::new(
            &name,
            GateOutcome::Ignored,
            format!("none of {total} measurement(s) could be taken, ignored (--gate-errors ignore): {last_error}"),
        )
    } else {
        let mut message = format!(
            "{taken} measurement(s), {failures} above {} (limit {})",
            metric.max, gates.metric_failure_limit
        );
        if errors > 0 {
            message.push_str(&format!(
                "; {errors} could not be taken, ignored: {last_error}"
            ));
        }
        GateResult::new(&name, GateOutcome::Passed, message)
    };
    match last {
        Some(v) => result.with_value(v),
        None => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_give_their_largest_sample_and_scalars_their_value() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000.1,"0.002"]},
            {"metric":{"pod":"b"},"value":[1700000000.1,"0.02"]}]}}"#;
        assert_eq!(parse(vector), Ok(0.02));
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        assert_eq!(parse(scalar), Ok(3.0));
        let inf = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(parse(inf), Ok(f64::INFINITY));
    }

    #[test]
    fn what_cannot_be_judged_is_an_error() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse(empty).unwrap_err(), "the query returned no samples");
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#;
        assert!(parse(nan).unwrap_err().contains("NaN"));
        let bad = r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error"}"#;
        assert_eq!(
            parse(bad).unwrap_err(),
            "query failed: bad_data: 1:5: parse error"
        );
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(matrix).unwrap_err().contains("instant vector"));
        assert!(parse("<html>")
            .unwrap_err()
            .contains("not Prometheus API JSON"));
    }

    #[test]
    fn a_window_has_one_measurement_now_and_one_per_interval() {
        let s = Duration::from_secs;
        assert_eq!(measurements(s(0), s(10)), 1);
        assert_eq!(measurements(s(60), s(10)), 7);
        assert_eq!(measurements(s(5), s(10)), 1);
        assert_eq!(measurements(s(5), Duration::ZERO), 1);
    }
}
