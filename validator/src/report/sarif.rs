//! SARIF 2.1.0 for GitHub code scanning: one rule per constraint (or finding code), results with physical locations.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{rule_id, Finding, Severity};

pub fn render(findings: &[Finding]) -> String {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    for f in findings {
        let id = rule_id(f);
        rules.entry(id.clone()).or_insert_with(|| {
            let description = match &f.policy {
                Some(p) => format!("Gatekeeper constraint {} of kind {}", p.constraint, p.kind),
                None => f.code.description().to_string(),
            };
            json!({
                "id": id,
                "name": id.replace('/', "-"),
                "shortDescription": {"text": description},
                "properties": {"tags": ["kubernetes", f.code.as_str()]},
            })
        });
    }
    let rule_index: BTreeMap<String, usize> = rules
        .keys()
        .enumerate()
        .map(|(i, k)| (k.clone(), i))
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let level = match f.severity {
                Severity::Error | Severity::Deny => "error",
                Severity::Warn => "warning",
                Severity::Info => "note",
            };
            let id = rule_id(f);
            let object = f
                .object
                .as_ref()
                .map(|o| format!("{o}: "))
                .unwrap_or_default();
            let mut region = json!({"startLine": f.line.max(1)});
            if f.column > 0 {
                region["startColumn"] = json!(f.column);
            }
            let mut result = json!({
                "ruleId": id,
                "ruleIndex": rule_index.get(&id).copied().unwrap_or(0),
                "level": level,
                "message": {"text": format!("{object}{}", f.message)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&f.file)},
                        "region": region,
                    }
                }],
            });
            if let Some(a) = &f.action {
                result["properties"] = json!({"enforcementAction": a});
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "validator",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/open-policy-agent/gatekeeper",
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_string());
    s.push('\n');
    s
}

/// A relative URI for a file path (forward slashes, no leading `./`).
fn uri(path: &str) -> String {
    let p = path.replace('\\', "/");
    let p = p.strip_prefix("./").unwrap_or(&p);
    if p.is_empty() || p == "-" {
        return "stdin".to_string();
    }
    // Percent-encode what a URI reference may not contain (e.g. `<embedded>`), as code scanning requires.
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=%".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
