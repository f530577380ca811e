//! The smoke gate: an HTTP GET that must answer the expected status, retried a few times.

use super::{GateOutcome, GateResult, Smoke};
use crate::progress::Progress;

pub async fn evaluate(client: &reqwest::Client, smoke: &Smoke, progress: &Progress) -> GateResult {
    let name = "smoke";
    let attempts = smoke.retries.saturating_add(1);
    let mut last = String::new();
    let mut last_status: Option<u16> = None;
    let shown = crate::redact::credentials(&smoke.url);
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(smoke.interval).await;
        }
        match client.get(&smoke.url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                last_status = Some(status);
                if status == smoke.status {
                    return GateResult::new(
                        name,
                        GateOutcome::Passed,
                        format!("GET {shown} answered {status} (attempt {attempt} of {attempts})"),
                    )
                    .with_value(f64::from(status));
                }
                last = format!("answered {status}, expected {}", smoke.status);
            }
            Err(e) => last = crate::redact::credentials(&format!("no answer: {e}")),
        }
        progress.note(format!(
            "smoke: GET {shown} {last} (attempt {attempt} of {attempts})"
        ));
    }
    let result = GateResult::new(
        name,
        GateOutcome::Failed,
        format!("GET {shown} {last} after {attempts} attempt(s)"),
    );
    match last_status {
        Some(s) => result.with_value(f64::from(s)),
        None => result,
    }
}
