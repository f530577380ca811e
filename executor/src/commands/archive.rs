//! What `backup`, `restore` and `dr-drill` share: the live objects of the cluster and the
//! health thresholds of the restored workloads.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::health::Thresholds;
use crate::object::ObjectId;
use crate::Error;

/// The live object of `id`, or None when the cluster no longer has it.
pub async fn live(cluster: &Cluster, id: &ObjectId) -> Result<Option<Value>, Error> {
    let Some(resolved) = cluster.resolve(&id.api_version, &id.kind).await? else {
        return Ok(None);
    };
    let api = cluster.api(&resolved, &id.namespace);
    match api.get_opt(&id.name).await {
        Ok(Some(o)) => {
            let mut v = serde_json::to_value(o).map_err(|e| Error::Api(e.to_string()))?;
            v["apiVersion"] = json!(id.api_version);
            v["kind"] = json!(id.kind);
            Ok(Some(v))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(Error::Api(format!(
            "cannot read {id}: {}",
            crate::cluster::describe(&e)
        ))),
    }
}

pub fn thresholds(max_restarts: i32, stuck_after: Duration) -> Thresholds {
    Thresholds {
        max_restarts,
        stuck_after,
    }
}
