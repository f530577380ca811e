//! The release lock: a coordination.k8s.io Lease per release, renewed while an executor works
//! on the release, taken over when its holder has not renewed it within its duration.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta};
use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What to do about a lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Free, ours already, or its holder is gone: take it.
    Take { stale_holder: Option<String> },
    /// Someone else holds it.
    Held {
        holder: String,
        renewed_ago: Duration,
        duration: Duration,
    },
}

/// Decides from a lease (None: it does not exist) whether `me` may take it at `now`.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Take { stale_holder: None };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() || holder == me {
        return Decision::Take { stale_holder: None };
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let renewed_ago = renewed
        .and_then(|t| now.since(t).ok())
        .and_then(|s| s.total(jiff::Unit::Second).ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
        .unwrap_or(Duration::MAX);
    if renewed_ago > duration {
        Decision::Take {
            stale_holder: Some(holder),
        }
    } else {
        Decision::Held {
            holder,
            renewed_ago,
            duration,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("release {release} is locked by {holder} (renewed {}s ago, lease {}s); another operation is in progress", renewed_ago.as_secs(), duration.as_secs())]
    Held {
        release: String,
        holder: String,
        renewed_ago: Duration,
        duration: Duration,
    },
    #[error(
        "cannot take the lock of release {release}: {}",
        crate::cluster::describe(source)
    )]
    Api {
        release: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot take the lock of release {release}: it changed under us too often")]
    Contended { release: String },
    #[error("lost the lock of release {release}: another executor took it over (were renewals failing?)")]
    Lost { release: String },
}

/// A held lock; renewed in the background until released.
pub struct Lock {
    api: Api<Lease>,
    name: String,
    me: String,
    stop: watch::Sender<bool>,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
    /// The holder whose stale lease was taken over, if any.
    pub took_over: Option<String>,
}

/// Who we are in the lease: `host/pid`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    format!("{host}/{}", std::process::id())
}

/// The Lease name for a release.
pub fn lease_name(release: &str) -> String {
    format!("executor.{release}")
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Takes the lock of `release` in `namespace`, or says who holds it.
pub async fn acquire(
    client: Client,
    namespace: &str,
    release: &str,
    me: &str,
    duration: Duration,
) -> Result<Lock, LockError> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let name = lease_name(release);
    let api_err = |source| LockError::Api {
        release: release.to_string(),
        source,
    };
    let seconds = duration.as_secs().clamp(1, i32::MAX as u64) as i32;
    for _ in 0..5 {
        let existing = api.get_opt(&name).await.map_err(api_err)?;
        let now = Timestamp::now();
        match decide(existing.as_ref().and_then(|l| l.spec.as_ref()), me, now) {
            Decision::Held {
                holder,
                renewed_ago,
                duration,
            } => {
                return Err(LockError::Held {
                    release: release.to_string(),
                    holder,
                    renewed_ago,
                    duration,
                })
            }
            Decision::Take { stale_holder } => {
                let result = match existing {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(name.clone()),
                                namespace: Some(namespace.to_string()),
                                labels: Some(
                                    [("owner".to_string(), "executor".to_string())].into(),
                                ),
                                ..Default::default()
                            },
                            spec: Some(LeaseSpec {
                                holder_identity: Some(me.to_string()),
                                lease_duration_seconds: Some(seconds),
                                acquire_time: Some(micro(now)),
                                renew_time: Some(micro(now)),
                                lease_transitions: Some(0),
                                ..Default::default()
                            }),
                        };
                        api.create(&crate::apply::post_params(), &lease).await
                    }
                    Some(mut lease) => {
                        let spec = lease.spec.get_or_insert_with(Default::default);
                        if spec.holder_identity.as_deref() != Some(me) {
                            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                            spec.acquire_time = Some(micro(now));
                        }
                        spec.holder_identity = Some(me.to_string());
                        spec.lease_duration_seconds = Some(seconds);
                        spec.renew_time = Some(micro(now));
                        api.replace(&name, &crate::apply::post_params(), &lease)
                            .await
                    }
                };
                match result {
                    Ok(_) => {
                        let (stop, stopped) = watch::channel(false);
                        let (lost_tx, lost) = watch::channel(false);
                        let renewer = tokio::spawn(renew(
                            api.clone(),
                            name.clone(),
                            me.to_string(),
                            duration,
                            stopped,
                            lost_tx,
                        ));
                        return Ok(Lock {
                            api,
                            name,
                            me: me.to_string(),
                            stop,
                            lost,
                            renewer,
                            took_over: stale_holder,
                        });
                    }
                    Err(e) if is_conflict(&e) => continue,
                    Err(e) => return Err(api_err(e)),
                }
            }
        }
    }
    Err(LockError::Contended {
        release: release.to_string(),
    })
}

async fn renew(
    api: Api<Lease>,
    name: String,
    me: String,
    duration: Duration,
    mut stopped: watch::Receiver<bool>,
    lost: watch::Sender<bool>,
) {
    let period = (duration / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stopped.changed() => return,
        }
        // A failed renewal is retried next period; the lease outlives two of them.
        let Ok(Some(mut lease)) = api.get_opt(&name).await else {
            continue;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(me.as_str()) {
            let _ = lost.send(true);
            return;
        }
        spec.renew_time = Some(micro(Timestamp::now()));
        let _ = api
            .replace(&name, &crate::apply::post_params(), &lease)
            .await;
    }
}

impl Lock {
    /// True once someone else took the lease (we failed to renew it in time).
    pub fn lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Stops renewing and frees the lease.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        let _ = self.renewer.await;
        for _ in 0..3 {
            let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
                return;
            };
            let Some(spec) = lease.spec.as_mut() else {
                return;
            };
            if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
                return;
            }
            spec.holder_identity = None;
            spec.renew_time = Some(micro(Timestamp::now()));
            match self
                .api
                .replace(&self.name, &crate::apply::post_params(), &lease)
                .await
            {
                Err(e) if is_conflict(&e) => continue,
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn lease(holder: Option<&str>, renewed: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }
    }

    #[test]
    fn free_missing_or_own_leases_are_taken() {
        let now = at("2030-01-01T00:00:10Z");
        assert_eq!(
            decide(None, "me", now),
            Decision::Take { stale_holder: None }
        );
        let free = lease(None, "2030-01-01T00:00:09Z", 15);
        assert_eq!(
            decide(Some(&free), "me", now),
            Decision::Take { stale_holder: None }
        );
        let mine = lease(Some("me"), "2030-01-01T00:00:09Z", 15);
        assert_eq!(
            decide(Some(&mine), "me", now),
            Decision::Take { stale_holder: None }
        );
    }

    #[test]
    fn a_fresh_lease_of_someone_else_is_held() {
        let now = at("2030-01-01T00:00:10Z");
        let other = lease(Some("ci-7/42"), "2030-01-01T00:00:05Z", 15);
        match decide(Some(&other), "me", now) {
            Decision::Held {
                holder,
                renewed_ago,
                duration,
            } => {
                assert_eq!(holder, "ci-7/42");
                assert_eq!(renewed_ago, Duration::from_secs(5));
                assert_eq!(duration, Duration::from_secs(15));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn a_stale_lease_is_taken_over() {
        let now = at("2030-01-01T00:01:00Z");
        let gone = lease(Some("ci-7/42"), "2030-01-01T00:00:05Z", 15);
        assert_eq!(
            decide(Some(&gone), "me", now),
            Decision::Take {
                stale_holder: Some("ci-7/42".into())
            }
        );
    }
}
