//! The webhook's logs: `tracing` events (ours, and those of hyper, rustls and kube) written to
//! stderr as one JSON object per line: `ts` (Unix seconds), `level`, then the event's fields.
//!
//! Our events carry an `event` field naming what happened (`decision`, `policies_loaded`, ...);
//! events of other crates carry `target` and `message`. A field given as JSON text that is an
//! array or an object (`violations = %json!([...])`) is written as that JSON value.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The environment variable that filters the logs (`info` when unset), e.g.
/// `VALIDATOR_LOG=info,hyper=debug`.
pub const FILTER_VARIABLE: &str = "VALIDATOR_LOG";

/// Writes events as JSON lines to stderr.
#[derive(Debug, Default)]
pub struct JsonLines;

/// Seconds since the Unix epoch, as the `ts` field.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The JSON line of one event.
pub fn line(level: &Level, target: &str, fields: Map<String, Value>) -> String {
    let mut out = Map::new();
    out.insert("ts".into(), Value::from(now()));
    out.insert(
        "level".into(),
        Value::from(level.as_str().to_ascii_lowercase()),
    );
    if !fields.contains_key("event") {
        out.insert("target".into(), Value::from(target));
    }
    out.extend(fields);
    Value::Object(out).to_string()
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        let structured = (text.starts_with('[') || text.starts_with('{'))
            .then(|| serde_json::from_str::<Value>(&text).ok())
            .flatten();
        self.0
            .insert(field.name().into(), structured.unwrap_or(Value::from(text)));
    }
}

/// The JSON line of a `tracing` event.
fn event_line(event: &Event<'_>) -> String {
    let mut fields = Fields(Map::new());
    event.record(&mut fields);
    let meta = event.metadata();
    line(meta.level(), meta.target(), fields.0)
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = event_line(event);
        text.push('\n');
        // One write per line, so that lines of concurrent events never interleave.
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Installs the JSON subscriber for the process (once; later calls keep the first).
pub fn init() {
    let filter = std::env::var(FILTER_VARIABLE)
        .ok()
        .and_then(|f| f.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
    let subscriber = tracing_subscriber::registry().with(JsonLines.with_filter(filter));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    // A test fails loudly on what the library must handle.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects the lines instead of writing them, to read them back.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<Value>>>);

    impl<S: Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
            let text = event_line(event);
            self.0
                .lock()
                .unwrap()
                .push(serde_json::from_str(&text).unwrap());
        }
    }

    #[test]
    fn events_keep_their_fields_and_json_values() {
        let collect = Collect::default();
        let subscriber = tracing_subscriber::registry().with(collect.clone());
        tracing::subscriber::with_default(subscriber, || {
            let violations = serde_json::json!([{"constraint": "K/c", "action": "deny"}]);
            tracing::info!(
                event = "decision",
                uid = "u-1",
                violations = %violations,
                duration_ms = 1.5,
                policy_generation = 3u64,
            );
            tracing::warn!(target: "hyper::proto", "connection error: {}", "reset");
        });
        let lines = collect.0.lock().unwrap();
        let decision = &lines[0];
        assert!(decision["ts"].as_f64().unwrap() > 1.0e9);
        assert_eq!(decision["level"], "info");
        assert_eq!(decision["event"], "decision");
        assert_eq!(decision["uid"], "u-1");
        assert_eq!(decision["violations"][0]["constraint"], "K/c");
        assert_eq!(decision["duration_ms"], 1.5);
        assert_eq!(decision["policy_generation"], 3);
        assert!(decision.get("target").is_none());
        let foreign = &lines[1];
        assert_eq!(foreign["level"], "warn");
        assert_eq!(foreign["target"], "hyper::proto");
        assert_eq!(foreign["message"], "connection error: reset");
    }
}
