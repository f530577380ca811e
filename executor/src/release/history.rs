//! Release records in the cluster: one Secret per revision, labelled for listing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::Client;

use super::{decode, encode, Record, RecordError, OWNER_LABEL, SECRET_TYPE};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "cannot read the history of release {release}: {}",
        crate::cluster::describe(source)
    )]
    List {
        release: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot write revision {revision} of release {release}: {}",
        crate::cluster::describe(source)
    )]
    Write {
        release: String,
        revision: u32,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot delete revision {revision} of release {release}: {}",
        crate::cluster::describe(source)
    )]
    Delete {
        release: String,
        revision: u32,
        #[source]
        source: kube::Error,
    },
    #[error("revision {revision} of release {release}: {source}")]
    Record {
        release: String,
        revision: u32,
        #[source]
        source: RecordError,
    },
}

/// The history of one release.
pub struct History {
    api: Api<Secret>,
    name: String,
}

impl History {
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        History {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
        }
    }

    /// Every revision, oldest first.
    pub async fn list(&self) -> Result<Vec<Record>, HistoryError> {
        let selector = format!("{}={},name={}", OWNER_LABEL.0, OWNER_LABEL.1, self.name);
        let secrets = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| HistoryError::List {
                release: self.name.clone(),
                source,
            })?;
        let mut records = Vec::new();
        for s in secrets.items {
            if s.type_.as_deref() != Some(SECRET_TYPE) {
                continue;
            }
            let revision = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("version"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let bytes = s
                .data
                .as_ref()
                .and_then(|d| d.get("release"))
                .map(|b| b.0.as_slice())
                .unwrap_or_default();
            let record = decode(bytes).map_err(|source| HistoryError::Record {
                release: self.name.clone(),
                revision,
                source,
            })?;
            records.push(record);
        }
        records.sort_by_key(|r| r.revision);
        Ok(records)
    }

    /// Writes (creates or replaces) a revision's record.
    pub async fn write(&self, record: &Record) -> Result<(), HistoryError> {
        let err = |source| HistoryError::Write {
            release: self.name.clone(),
            revision: record.revision,
            source,
        };
        let bytes = encode(record).map_err(|source| HistoryError::Record {
            release: self.name.clone(),
            revision: record.revision,
            source,
        })?;
        let secret_name = Record::secret_name(&self.name, record.revision);
        let labels = BTreeMap::from([
            (OWNER_LABEL.0.to_string(), OWNER_LABEL.1.to_string()),
            ("name".to_string(), self.name.clone()),
            ("version".to_string(), record.revision.to_string()),
            ("status".to_string(), record.status.to_string()),
        ]);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(record.namespace.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([("release".to_string(), ByteString(bytes))])),
            ..Default::default()
        };
        let mut value = serde_json::to_value(&secret).map_err(|e| HistoryError::Record {
            release: self.name.clone(),
            revision: record.revision,
            source: RecordError::Decode(e),
        })?;
        value["apiVersion"] = serde_json::json!("v1");
        value["kind"] = serde_json::json!("Secret");
        self.api
            .patch(
                &secret_name,
                &PatchParams::apply(crate::apply::FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    pub async fn delete(&self, revision: u32) -> Result<(), HistoryError> {
        match self
            .api
            .delete(
                &Record::secret_name(&self.name, revision),
                &DeleteParams::default(),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(HistoryError::Delete {
                release: self.name.clone(),
                revision,
                source,
            }),
        }
    }
}
