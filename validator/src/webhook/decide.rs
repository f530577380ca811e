//! Admission decisions: an AdmissionReview in, the AdmissionReview response out (pure, no I/O).

use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

use serde_json::{json, Value};

use super::state::PolicyState;
use crate::check::evaluate_review;
use crate::policy::{Constraint, EnforcementAction};
use crate::review::{self, RequestInfo, Review};

/// One violation with the action it was found under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub kind: String,
    pub constraint: String,
    pub action: EnforcementAction,
    pub message: String,
    /// Set when a waiver covers this violation: why, by whom, until when.
    pub waived: Option<String>,
}

/// The outcome of evaluating one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub hits: Vec<Hit>,
    pub errors: Vec<String>,
    /// The namespace is exempt; nothing was evaluated.
    pub exempt: bool,
}

impl Decision {
    pub fn denied(&self) -> bool {
        self.hits
            .iter()
            .any(|h| h.action == EnforcementAction::Deny)
    }
}

/// What the webhook needs from a request, read and checked.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_version: String,
    pub uid: String,
    pub request: Value,
}

/// Reads an AdmissionReview body; the error says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Request, String> {
    let mut review: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !matches!(
        api_version,
        "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
    ) {
        return Err(format!(
            "apiVersion `{api_version}` is not admission.k8s.io/v1 or v1beta1"
        ));
    }
    if review.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err("kind must be AdmissionReview".into());
    }
    let api_version = api_version.to_string();
    let request = review
        .as_object_mut()
        .and_then(|r| r.remove("request"))
        .unwrap_or(Value::Null);
    if !request.is_object() {
        return Err("request is missing".into());
    }
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if uid.is_empty() {
        return Err("request.uid is missing".into());
    }
    let kind = request
        .get("kind")
        .and_then(|k| k.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() {
        return Err("request.kind is missing (group, version and kind of the object)".into());
    }
    Ok(Request {
        api_version,
        uid,
        request,
    })
}

fn request_info(request: &Value) -> RequestInfo {
    RequestInfo {
        operation: request
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("CREATE")
            .to_string(),
        user_info: request.get("userInfo").cloned().unwrap_or(json!({})),
        old_object: request.get("oldObject").cloned().unwrap_or(Value::Null),
        dry_run: request
            .get("dryRun")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        uid: request
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

/// The evaluation passed its deadline and was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineExceeded;

/// When an evaluation must end, and whether its engines go back to the pool afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Checked before each (review, constraint) evaluation; one that runs over it is stopped by
    /// the Rego engine's execution timer (see [`super::bound_rego_evaluations`]).
    pub deadline: Option<Instant>,
    /// Give the engines back for later requests. Engines keep the last input they evaluated, so
    /// those of an oversized request are dropped rather than kept alive in the pool.
    pub reuse_engines: bool,
}

impl Budget {
    /// No deadline, engines reused.
    pub const UNBOUNDED: Budget = Budget {
        deadline: None,
        reuse_engines: true,
    };

    fn check(&self) -> Result<(), DeadlineExceeded> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(DeadlineExceeded),
            _ => Ok(()),
        }
    }
}

/// Evaluates a request against the policy set, as Gatekeeper's webhook does.
pub fn evaluate(state: &PolicyState, request: &Value) -> Decision {
    evaluate_within(state, request, Budget::UNBOUNDED).unwrap_or_default()
}

/// [`evaluate`], stopped when its budget's deadline passes.
pub fn evaluate_within(
    state: &PolicyState,
    request: &Value,
    budget: Budget,
) -> Result<Decision, DeadlineExceeded> {
    let main = Review::from_admission_request(0, request);
    let namespace = main.namespace.clone().unwrap_or_default();
    let subject_ns = if main.group.is_empty() && main.kind == "Namespace" {
        main.name.clone()
    } else {
        namespace
    };
    if state.is_exempt(&subject_ns) {
        return Ok(Decision {
            exempt: true,
            ..Decision::default()
        });
    }
    let mut reviews = vec![main];
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("");
    if operation != "DELETE" {
        if let Some(object) = request.get("object").filter(|o| o.is_object()) {
            reviews.extend(review::expand(
                0,
                object,
                &state.set.expansions,
                &request_info(request),
            ));
        }
    }
    let constraints: Vec<(&Constraint, regorus::Value)> = state
        .constraints
        .iter()
        .map(|(c, p)| (c, p.clone()))
        .collect();
    // Engines come from the policy set's pool: cloned once per concurrent evaluation, then reused.
    budget.check()?;
    let mut engines = state.take_engines();
    let decision = evaluate_reviews(
        state,
        &reviews,
        &constraints,
        &mut engines.templates,
        &budget,
    );
    if decision.is_ok() && budget.reuse_engines {
        state.return_engines(engines);
    }
    let mut decision = decision?;
    if let Some(main) = reviews.first().filter(|_| !state.vap.is_empty()) {
        budget.check()?;
        evaluate_bindings(state, main, &mut decision);
    }
    Ok(decision)
}

/// Adds the violations of the ValidatingAdmissionPolicy bindings matching the request: `Deny`
/// denies, `Warn` warns, `Audit` alone is recorded as a dry-run hit.
fn evaluate_bindings(state: &PolicyState, review: &Review, decision: &mut Decision) {
    let outcome =
        crate::vap::evaluate_review(&state.vap, review, &state.namespace_labels, &state.objects);
    for v in outcome.violations {
        let action = match v.action() {
            crate::vap::Action::Deny => EnforcementAction::Deny,
            crate::vap::Action::Warn => EnforcementAction::Warn,
            crate::vap::Action::Audit => EnforcementAction::Dryrun,
        };
        let constraint = format!("{}/{}", v.policy, v.binding);
        decision.hits.push(Hit {
            waived: waiver(state, "ValidatingAdmissionPolicy", &constraint, review),
            kind: "ValidatingAdmissionPolicy".into(),
            constraint,
            action,
            message: v.message,
        });
    }
    decision.errors.extend(outcome.errors);
    decision
        .hits
        .sort_by(|a, b| (&a.constraint, &a.message).cmp(&(&b.constraint, &b.message)));
}

fn evaluate_reviews(
    state: &PolicyState,
    reviews: &[Review],
    constraints: &[(&Constraint, regorus::Value)],
    engines: &mut HashMap<String, crate::engine::CompiledTemplate>,
    budget: &Budget,
) -> Result<Decision, DeadlineExceeded> {
    let mut decision = Decision::default();
    // One constraint at a time, so that the deadline is checked between evaluations.
    for (r, constraint) in reviews
        .iter()
        .flat_map(|r| constraints.iter().map(move |c| (r, c)))
    {
        budget.check()?;
        crate::engine::within_deadline(budget.deadline, || {
            evaluate_review(
                r,
                std::slice::from_ref(constraint),
                &state.templates,
                &state.namespace_labels,
                engines,
                |c, result| match result {
                    Ok(violations) => {
                        let action = r.action_override.unwrap_or(c.action);
                        let waived = waiver(state, &c.kind, &c.name, r);
                        for v in violations {
                            decision.hits.push(Hit {
                                waived: waived.clone(),
                                kind: c.kind.clone(),
                                constraint: c.name.clone(),
                                action,
                                message: match &r.expansion {
                                    Some(x) => format!("[Implied by {x}] {}", v.msg),
                                    None => v.msg,
                                },
                            });
                        }
                    }
                    Err(e) => decision.errors.push(e.to_string()),
                },
            )
        });
    }
    // An evaluation stopped at the deadline gives no verdict.
    budget.check()?;
    decision
        .hits
        .sort_by(|a, b| (&a.constraint, &a.message).cmp(&(&b.constraint, &b.message)));
    Ok(decision)
}

/// The waiver covering a violation of `kind`/`name` by the review's object, as a note.
fn waiver(state: &PolicyState, kind: &str, name: &str, r: &Review) -> Option<String> {
    let today = crate::waiver::today();
    let object = crate::report::ObjectRef {
        api_version: if r.group.is_empty() {
            r.version.clone()
        } else {
            format!("{}/{}", r.group, r.version)
        },
        kind: r.kind.clone(),
        namespace: r.namespace.clone().unwrap_or_default(),
        name: r.name.clone(),
    };
    state
        .waivers
        .iter()
        .find(|w| w.expires >= today && w.covers(kind, name, &object))
        .map(|w| format!("waived until {} by {}: {}", w.expires, w.owner, w.reason))
}

/// The AdmissionReview response for a decision; errors follow the failure policy.
pub fn respond(request: &Request, decision: &Decision, fail_closed: bool) -> Value {
    let deny_lines: Vec<String> = decision
        .hits
        .iter()
        .filter(|h| h.action == EnforcementAction::Deny && h.waived.is_none())
        .map(|h| format!("[{}] {}", h.constraint, h.message))
        .collect();
    let warnings: Vec<String> = decision
        .hits
        .iter()
        .filter_map(|h| match (&h.waived, h.action) {
            (Some(w), EnforcementAction::Deny | EnforcementAction::Warn) => {
                Some(format!("[{}] {} [{w}]", h.constraint, h.message))
            }
            (None, EnforcementAction::Warn) => Some(format!("[{}] {}", h.constraint, h.message)),
            _ => None,
        })
        .collect();
    let mut response = json!({"uid": request.uid, "allowed": true});
    if !deny_lines.is_empty() {
        let mut message = String::new();
        let _ = write!(message, "{}", deny_lines.join("\n"));
        response["allowed"] = json!(false);
        response["status"] = json!({"code": 403, "reason": "Forbidden", "message": message});
    } else if !decision.errors.is_empty() && fail_closed {
        response["allowed"] = json!(false);
        response["status"] = json!({
            "code": 500,
            "reason": "InternalError",
            "message": format!("policy evaluation failed (failure policy: fail): {}", decision.errors.join("; ")),
        });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    envelope(&request.api_version, response)
}

/// The response when evaluation could not finish (deadline passed or an internal error).
pub fn respond_failure(request: &Request, reason: &str, fail_closed: bool) -> Value {
    let response = if fail_closed {
        json!({"uid": request.uid, "allowed": false, "status": {
            "code": 500, "reason": "InternalError",
            "message": format!("{reason}; denied by failure policy `fail`"),
        }})
    } else {
        json!({"uid": request.uid, "allowed": true, "warnings": [format!("{reason}; allowed by failure policy `ignore`")]})
    };
    envelope(&request.api_version, response)
}

fn envelope(api_version: &str, response: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}
