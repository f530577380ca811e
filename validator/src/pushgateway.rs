//! Pushing metrics to a Prometheus Pushgateway: one PUT of the text exposition to the group
//! `<url>/metrics/job/<job>[/<label>/<value>...]`, which replaces what the group held.

use base64::Engine;

/// The group's path: `job/<job>/<label>/<value>...`, each value base64-encoded
/// (`<label>@base64/...`) when it cannot stand as a path segment.
pub fn group_path(job: &str, labels: &[(&str, &str)]) -> String {
    let segment = |name: &str, value: &str| {
        if value.is_empty() || value.contains('/') || value.contains('%') {
            let encoded = base64::engine::general_purpose::URL_SAFE.encode(value);
            // The Pushgateway reads an empty value as `=`.
            let encoded = if encoded.is_empty() {
                "=".to_string()
            } else {
                encoded
            };
            format!("{name}@base64/{encoded}")
        } else {
            format!("{name}/{value}")
        }
    };
    std::iter::once(segment("job", job))
        .chain(labels.iter().map(|(n, v)| segment(n, v)))
        .collect::<Vec<_>>()
        .join("/")
}

/// PUTs `body` (the text exposition format) to the group `job` with `labels` at the
/// Pushgateway `url`; an error says what the gateway answered, with any credentials of the URL
/// left out.
pub fn push(url: &str, job: &str, labels: &[(&str, &str)], body: String) -> Result<(), String> {
    put(url, job, labels, body).map_err(|e| crate::redact::credentials(&e))
}

fn put(url: &str, job: &str, labels: &[(&str, &str)], body: String) -> Result<(), String> {
    let target = format!(
        "{}/metrics/{}",
        url.trim_end_matches('/'),
        group_path(job, labels)
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let response = client
            .put(&target)
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            Err(format!("{status}: {}", text.trim()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_cannot_be_path_segments_are_base64_encoded() {
        assert_eq!(
            group_path("executor", &[("release", "api"), ("namespace", "shop")]),
            "job/executor/release/api/namespace/shop"
        );
        assert_eq!(
            group_path("validator-audit", &[("cluster", "a/b"), ("empty", "")]),
            "job/validator-audit/cluster@base64/YS9i/empty@base64/="
        );
    }

    #[test]
    fn an_unreachable_gateway_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let e = push(&format!("http://127.0.0.1:{port}"), "j", &[], String::new());
        assert!(e.is_err_and(|e| !e.is_empty()));
    }
}
