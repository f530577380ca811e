//! Reading the cluster: discovery of the served resources, and paged lists (`limit` and
//! `continue`) of each selected resource, several at once. Only `get` and `list` requests are
//! made; nothing is written.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use serde_json::{json, Value};

use super::kinds::Served;

/// Attempts of one page before the list is given up.
const ATTEMPTS: u32 = 4;

/// The cluster could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Connect(String),
    #[error("cannot read the API server's discovery documents ({server}): {source}")]
    Discovery {
        server: String,
        #[source]
        source: kube::Error,
    },
}

/// Why a resource was not (completely) listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The API server refused the list (RBAC).
    Forbidden(String),
    /// The list failed after some pages: `listed` objects were read, `remaining` more were
    /// announced by the server (when it said).
    Interrupted {
        listed: usize,
        remaining: Option<i64>,
        error: String,
    },
    /// The first page failed.
    Failed(String),
    /// The resource went away between discovery and the list.
    Gone,
}

/// One resource as it was read: its objects when they were kept (see [`Sink`]), how many
/// were read, and what went wrong reading them.
#[derive(Debug)]
pub struct Listed {
    pub served: Served,
    /// The objects, when the list kept them; empty when they were sent on page by page.
    pub objects: Vec<Value>,
    /// Objects read.
    pub count: usize,
    pub problem: Option<Problem>,
}

/// A page of objects of one resource.
pub type Page = (Served, Vec<Value>);

/// Where listed objects go: kept in [`Listed::objects`], or sent on page by page (the receiver
/// holds at most the channel's capacity of pages, which bounds the memory of a streamed list).
#[derive(Clone, Copy)]
pub enum Sink<'a> {
    Keep,
    Send(&'a tokio::sync::mpsc::Sender<Page>),
}

/// How the lists run.
#[derive(Debug, Clone)]
pub struct ListOptions {
    /// Objects per request; 0 reads each resource in one request.
    pub chunk_size: u32,
    /// Resources listed at once.
    pub parallel: usize,
    /// Only these namespaces (exact names); empty for the whole cluster.
    pub namespaces: Vec<String>,
    /// Pause before retrying a failed page (doubled at each attempt).
    pub retry_pause: Duration,
}

/// The resources the cluster serves at their preferred versions that can be listed.
pub async fn discover(client: &kube::Client, server: &str) -> Result<Vec<Served>, ListError> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(|source| ListError::Discovery {
            server: server.to_string(),
            source,
        })?;
    let mut served = Vec::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            if !capabilities.supports_operation(verbs::LIST) || resource.plural.contains('/') {
                continue;
            }
            served.push(Served {
                group: resource.group.clone(),
                version: resource.version.clone(),
                kind: resource.kind.clone(),
                plural: resource.plural.clone(),
                namespaced: capabilities.scope == Scope::Namespaced,
            });
        }
    }
    served.sort();
    served.dedup();
    Ok(served)
}

/// Lists every resource of `selected`, `options.parallel` at a time; `progress` is told of
/// every page. The result is in the order of `selected`.
pub async fn list_all(
    client: &kube::Client,
    selected: &[Served],
    options: &ListOptions,
    sink: Sink<'_>,
    progress: &(dyn Fn(&Served, usize) + Sync),
) -> Vec<Listed> {
    let mut listed: Vec<(usize, Listed)> = futures::stream::iter(selected.iter().enumerate())
        .map(|(i, served)| async move {
            (
                i,
                list_resource(client, served, options, sink, progress).await,
            )
        })
        .buffer_unordered(options.parallel.max(1))
        .collect()
        .await;
    listed.sort_by_key(|(i, _)| *i);
    listed.into_iter().map(|(_, l)| l).collect()
}

async fn list_resource(
    client: &kube::Client,
    served: &Served,
    options: &ListOptions,
    sink: Sink<'_>,
    progress: &(dyn Fn(&Served, usize) + Sync),
) -> Listed {
    let resource = ApiResource {
        group: served.group.clone(),
        version: served.version.clone(),
        api_version: served.api_version(),
        kind: served.kind.clone(),
        plural: served.plural.clone(),
    };
    let mut listed = Listed {
        served: served.clone(),
        objects: Vec::new(),
        count: 0,
        problem: None,
    };
    if options.namespaces.is_empty() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        listed.problem = list_pages(&api, options, &mut listed, sink, progress).await;
    } else if served.is_namespace() {
        // Read by name: a namespace-scoped audit needs no right to list every namespace.
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for name in &options.namespaces {
            match api.get_opt(name).await {
                Ok(Some(object)) => {
                    let value = to_value(object, served);
                    deliver(&mut listed, sink, vec![value]).await;
                }
                Ok(None) => {}
                Err(e) => {
                    listed.problem = Some(problem(&e, listed.count, None));
                    break;
                }
            }
        }
    } else if served.namespaced {
        for namespace in &options.namespaces {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            listed.problem = list_pages(&api, options, &mut listed, sink, progress).await;
            if listed.problem.is_some() {
                break;
            }
        }
    }
    listed
}

/// Hands a page of `listed`'s resource to the sink and counts it.
async fn deliver(listed: &mut Listed, sink: Sink<'_>, objects: Vec<Value>) {
    listed.count += objects.len();
    match sink {
        Sink::Keep => listed.objects.extend(objects),
        Sink::Send(tx) => {
            // A closed channel means the receiver has stopped; the rest is not needed.
            let _ = tx.send((listed.served.clone(), objects)).await;
        }
    }
}

/// Reads every page of one list into the sink; a page that fails is retried, and a list whose
/// continue token expired (410) starts over once, from a fresh snapshot, without handing on
/// again the objects (by uid) it already handed on.
async fn list_pages(
    api: &Api<DynamicObject>,
    options: &ListOptions,
    listed: &mut Listed,
    sink: Sink<'_>,
    progress: &(dyn Fn(&Served, usize) + Sync),
) -> Option<Problem> {
    let start = listed.count;
    let mut token: Option<String> = None;
    let mut remaining: Option<i64> = None;
    let mut attempt = 0;
    let mut restarted = false;
    let mut seen: std::collections::HashSet<String> = Default::default();
    loop {
        let mut params = ListParams::default();
        if options.chunk_size > 0 {
            params = params.limit(options.chunk_size);
        }
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        match api.list(&params).await {
            Ok(page) => {
                attempt = 0;
                remaining = page.metadata.remaining_item_count;
                let next = page.metadata.continue_.filter(|t| !t.is_empty());
                let mut objects = Vec::with_capacity(page.items.len());
                for item in page.items {
                    let uid = item.metadata.uid.clone();
                    let fresh = match uid {
                        Some(uid) if restarted => seen.insert(uid),
                        Some(uid) => {
                            seen.insert(uid);
                            true
                        }
                        None => true,
                    };
                    if fresh {
                        objects.push(to_value(item, &listed.served));
                    }
                }
                progress(&listed.served, objects.len());
                deliver(listed, sink, objects).await;
                match next {
                    Some(t) => token = Some(t),
                    None => return None,
                }
            }
            Err(kube::Error::Api(status))
                if status.code == 410 && token.is_some() && !restarted =>
            {
                // The continue token expired: the list starts again from a fresh snapshot.
                restarted = true;
                token = None;
            }
            Err(e) if retryable(&e) && attempt + 1 < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(options.retry_pause * 2u32.pow(attempt - 1)).await;
            }
            Err(e) => {
                let read = listed.count - start;
                return Some(if token.is_some() {
                    Problem::Interrupted {
                        listed: read,
                        remaining,
                        error: describe(&e),
                    }
                } else {
                    problem(&e, read, remaining)
                });
            }
        }
    }
}

/// An error as one line: the API server's message for API errors.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => status.code >= 500 || status.code == 429,
        _ => true,
    }
}

fn problem(e: &kube::Error, listed: usize, remaining: Option<i64>) -> Problem {
    match e {
        kube::Error::Api(status) if status.code == 403 => {
            Problem::Forbidden(status.message.clone())
        }
        kube::Error::Api(status) if status.code == 404 => Problem::Gone,
        _ if listed > 0 => Problem::Interrupted {
            listed,
            remaining,
            error: describe(e),
        },
        _ => Problem::Failed(describe(e)),
    }
}

/// A listed object as JSON, with the apiVersion and kind that list items leave out.
fn to_value(object: DynamicObject, served: &Served) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), json!(served.api_version()));
        map.insert("kind".into(), json!(served.kind));
    }
    value
}
