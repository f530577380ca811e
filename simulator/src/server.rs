//! The HTTP side: routes Kubernetes REST paths (discovery, get, list, watch, create, update,
//! patch, server-side apply, delete, the status subresource) to the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::SinkExt;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use crate::behaviour::Behaviours;
use crate::clock::Clock;
use crate::resources::{ResourceId, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ApiError, Event, EventType, Propagation, State, Write};

/// One request the server answered.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl RequestRecord {
    /// A write that was kept (not a read, not a dry run).
    pub fn is_write(&self) -> bool {
        self.method != "GET" && !self.query.contains("dryRun=All")
    }
}

/// Everything the server and the controllers share.
pub struct Shared {
    pub state: Mutex<State>,
    pub clock: Clock,
    pub behaviours: Mutex<Behaviours>,
    pub changed: Arc<Notify>,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub server_address: Mutex<String>,
    pub bookmark_interval: Duration,
    pub apply_requires_port_protocol: bool,
    pub refusals: Mutex<crate::refusal::Refusals>,
    pub controllers_paused: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

fn json_response(code: u16, value: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

enum Reply {
    Json(u16, Value),
    Watch(Body),
}

type Query = HashMap<String, String>;

/// The axum handler for every path.
pub async fn handle(AxumState(shared): AxumState<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return error_response(&ApiError::bad_request(format!("cannot read body: {e}"))),
    };
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let query: Query = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let request = Incoming {
        method: parts.method.clone(),
        path: path.clone(),
        query,
        content_type,
        user_agent,
        body: bytes,
    };
    let (code, response) = match route(&shared, request) {
        Ok(Reply::Json(code, value)) => (code, json_response(code, &value)),
        Ok(Reply::Watch(body)) => (
            200,
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        ),
        Err(e) => (e.code, error_response(&e)),
    };
    if let Ok(mut log) = shared.requests.lock() {
        log.push(RequestRecord {
            method: parts.method.to_string(),
            path,
            query: raw_query,
            status: code,
        });
    }
    response
}

struct Incoming {
    method: Method,
    path: String,
    query: Query,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

impl Incoming {
    fn flag(&self, name: &str) -> bool {
        self.query
            .get(name)
            .is_some_and(|v| v == "true" || v == "1")
    }

    fn dry_run(&self) -> bool {
        self.query.get("dryRun").is_some_and(|v| v == "All")
    }

    fn manager(&self) -> String {
        match self.query.get("fieldManager") {
            Some(m) if !m.is_empty() => m.clone(),
            _ => self
                .user_agent
                .split('/')
                .next()
                .unwrap_or("unknown")
                .to_string(),
        }
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        serde_json::from_slice(&self.body)
            .or_else(|_| serde_yaml::from_slice(&self.body))
            .map_err(|e| ApiError::bad_request(format!("cannot decode the body: {e}")))
    }
}

fn route(shared: &Arc<Shared>, req: Incoming) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = req
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let state = shared.state();
    match segments.as_slice() {
        ["version"] => Ok(Reply::Json(
            200,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-simulator", "platform": "linux/amd64"}),
        )),
        ["healthz"] | ["readyz"] | ["livez"] => Ok(Reply::Json(200, json!("ok"))),
        ["api"] => {
            let server = shared
                .server_address
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            Ok(Reply::Json(200, state.registry.core_versions(&server)))
        }
        ["apis"] => Ok(Reply::Json(200, state.registry.group_list())),
        ["apis", group] => state
            .registry
            .group(group)
            .map(|g| Reply::Json(200, g))
            .ok_or_else(not_found),
        ["api", "v1"] => state
            .registry
            .resource_list("", "v1")
            .map(|l| Reply::Json(200, l))
            .ok_or_else(not_found),
        ["apis", group, version] => state
            .registry
            .resource_list(group, version)
            .map(|l| Reply::Json(200, l))
            .ok_or_else(not_found),
        ["api", "v1", rest @ ..] => {
            drop(state);
            resource(shared, &req, "", "v1", rest)
        }
        ["apis", group, version, rest @ ..] => {
            drop(state);
            resource(shared, &req, group, version, rest)
        }
        _ => Err(not_found()),
    }
}

/// The object as served at the requested version.
fn present(rt: &ResourceType, mut object: Value) -> Value {
    object["apiVersion"] = json!(rt.api_version());
    object
}

fn resource(
    shared: &Arc<Shared>,
    req: &Incoming,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Reply, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(tail.is_empty() && (*plural == "status" || *plural == "finalize")) =>
        {
            (
                Some(*ns),
                *plural,
                tail.first().copied(),
                tail.get(1).copied(),
            )
        }
        [plural, tail @ ..] => (None, *plural, tail.first().copied(), tail.get(1).copied()),
        [] => return Err(not_found()),
    };
    let mut state = shared.state();
    let rt = state
        .registry
        .by_plural(group, version, plural)
        .cloned()
        .ok_or_else(not_found)?;
    if namespace.is_some() && !rt.namespaced {
        return Err(not_found());
    }
    let verb = match (&req.method, name) {
        (&Method::GET, None) if req.flag("watch") => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        _ => "delete",
    };
    if let Ok(mut refusals) = shared.refusals.lock() {
        refusals.check(&rt, verb, namespace, req.query.contains_key("continue"))?;
    }
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(not_found());
    }
    let status_only = match sub {
        None => false,
        Some("status") if rt.status => true,
        Some(_) => return Err(not_found()),
    };
    let ns = namespace.unwrap_or_default();
    let manager = req.manager();
    let write = Write {
        manager: &manager,
        dry_run: req.dry_run(),
        admit: true,
    };
    let key = |name: &str| crate::store::Key {
        resource: rt.id(),
        namespace: ns.to_string(),
        name: name.to_string(),
    };
    match (&req.method, name) {
        (&Method::GET, Some(name)) => state
            .get(&key(name))
            .cloned()
            .map(|o| Reply::Json(200, present(&rt, o)))
            .ok_or_else(|| ApiError::not_found(&rt, name)),
        (&Method::GET, None) => {
            let labels = LabelSelector::parse(
                req.query
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(
                req.query
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(ApiError::bad_request)?;
            if req.flag("watch") {
                let body = watch(shared, &state, req, &rt, namespace, labels, fields)?;
                return Ok(Reply::Watch(body));
            }
            let id = rt.id();
            let matching = || {
                state
                    .list(&id, namespace)
                    .filter(|o| labels.matches_object(o) && fields.matches(o))
            };
            let mut metadata = json!({"resourceVersion": state.resource_version().to_string()});
            let offset: usize = req
                .query
                .get("continue")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let limit: usize = req
                .query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|l| *l > 0)
                .unwrap_or(usize::MAX);
            // Only the page is copied out of the store, so a paged list costs what it reads.
            let total = matching().count();
            let items: Vec<Value> = matching()
                .skip(offset)
                .take(limit)
                .cloned()
                .map(|o| present(&rt, o))
                .collect();
            if offset.saturating_add(limit) < total {
                metadata["continue"] = json!((offset + limit).to_string());
                metadata["remainingItemCount"] = json!(total - offset - limit);
            }
            Ok(Reply::Json(
                200,
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": metadata, "items": items}),
            ))
        }
        (&Method::POST, None) => {
            let body = req.body_json()?;
            let created = state.create(&rt, ns, body, write)?;
            Ok(Reply::Json(201, present(&rt, created)))
        }
        (&Method::PUT, Some(name)) => {
            let body = req.body_json()?;
            let replaced = state.replace(&rt, ns, name, body, status_only, write)?;
            Ok(Reply::Json(200, present(&rt, replaced)))
        }
        (&Method::PATCH, Some(name)) => {
            let body = req.body_json()?;
            let kind = req
                .content_type
                .split(';')
                .next()
                .unwrap_or_default()
                .trim();
            let result = match kind {
                "application/apply-patch+yaml" => {
                    if req.query.get("fieldManager").is_none_or(String::is_empty) {
                        return Err(ApiError::bad_request(
                            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                        ));
                    }
                    if shared.apply_requires_port_protocol {
                        crate::validate::apply_port_protocols(&body)?;
                    }
                    let existed = state.get(&key(name)).is_some();
                    let applied =
                        state.apply(&rt, ns, name, &body, req.flag("force"), status_only, write)?;
                    return Ok(Reply::Json(
                        if existed { 200 } else { 201 },
                        present(&rt, applied),
                    ));
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    state.merge_patch(&rt, ns, name, &body, status_only, write)?
                }
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the simulator does not support patches of type {other}"),
                    ))
                }
            };
            Ok(Reply::Json(200, present(&rt, result)))
        }
        (&Method::DELETE, Some(name)) => {
            let options = if req.body.is_empty() {
                Value::Null
            } else {
                req.body_json().unwrap_or(Value::Null)
            };
            let propagation = match options["propagationPolicy"]
                .as_str()
                .or(req.query.get("propagationPolicy").map(String::as_str))
            {
                Some("Orphan") => Propagation::Orphan,
                Some("Foreground") => Propagation::Foreground,
                _ => Propagation::Background,
            };
            let write = Write {
                dry_run: write.dry_run
                    || options["dryRun"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|x| x == "All")),
                ..write
            };
            let deleted =
                state.delete(&rt, ns, name, propagation, &options["preconditions"], write)?;
            Ok(Reply::Json(200, present(&rt, deleted)))
        }
        (&Method::DELETE, None) => {
            let labels = LabelSelector::parse(
                req.query
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(ApiError::bad_request)?;
            let id = rt.id();
            let names: Vec<String> = state
                .list(&id, namespace)
                .filter(|o| labels.matches_object(o))
                .map(|o| {
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            let mut items = Vec::new();
            for n in names {
                items.push(present(
                    &rt,
                    state.delete(&rt, ns, &n, Propagation::Background, &Value::Null, write)?,
                ));
            }
            Ok(Reply::Json(
                200,
                json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": state.resource_version().to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({})",
                req.method
            ),
        )),
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut object = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
    if initial_end {
        object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", &object)
}

fn watch(
    shared: &Arc<Shared>,
    state: &State,
    req: &Incoming,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
) -> Result<Body, ApiError> {
    let id: ResourceId = rt.id();
    let send_initial = req.flag("sendInitialEvents");
    let bookmarks = req.flag("allowWatchBookmarks");
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let matches = {
        let id = id.clone();
        let namespace = namespace.map(str::to_string);
        move |e: &Event| {
            e.resource == id
                && namespace.as_deref().is_none_or(|ns| e.namespace == ns)
                && labels.matches_object(&e.object)
                && fields.matches(&e.object)
        }
    };
    let requested: Option<u64> = match req.query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let mut first: Vec<Bytes> = Vec::new();
    let (receiver, start_rv) = match requested {
        Some(rv) if !send_initial => {
            if rv < state.oldest_resumable() {
                let gone = ApiError::new(
                    410,
                    "Expired",
                    format!(
                        "too old resource version: {rv} ({})",
                        state.oldest_resumable()
                    ),
                );
                first.push(event_line("ERROR", &gone.status()));
                (None, rv)
            } else {
                let (replay, rx) = state.subscribe_from(rv);
                for e in replay.iter().filter(|e| matches(e)) {
                    first.push(event_line(e.kind.as_str(), &present(rt, e.object.clone())));
                }
                (Some(rx), rv)
            }
        }
        _ => {
            let current = state.resource_version();
            let rx = state.subscribe();
            for o in state.list(&id, namespace) {
                let event = Event {
                    rv: current,
                    kind: EventType::Added,
                    resource: id.clone(),
                    namespace: o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    object: o.clone(),
                };
                if matches(&event) {
                    first.push(event_line("ADDED", &present(rt, o.clone())));
                }
            }
            if send_initial {
                first.push(bookmark(rt, current, true));
            }
            (Some(rx), current)
        }
    };
    let (mut tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let interval = shared.bookmark_interval;
    let rt = rt.clone();
    tokio::spawn(async move {
        for line in first {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(mut receiver) = receiver else {
            return;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = start_rv;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick() => {
                    if tx.is_closed() {
                        return;
                    }
                    if bookmarks && tx.send(Ok(bookmark(&rt, last_rv, false))).await.is_err() {
                        return;
                    }
                }
                event = receiver.recv() => match event {
                    Ok(e) => {
                        if e.rv <= last_rv {
                            continue;
                        }
                        last_rv = e.rv;
                        if matches(&e) && tx.send(Ok(event_line(e.kind.as_str(), &present(&rt, e.object.clone())))).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let gone = ApiError::new(410, "Expired", "the watch fell behind; start again from a list");
                        let _ = tx.send(Ok(event_line("ERROR", &gone.status()))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    Ok(Body::from_stream(rx))
}
