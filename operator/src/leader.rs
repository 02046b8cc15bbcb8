//! Leader election on a `coordination.k8s.io` Lease: one replica reconciles, the others wait
//! and take over when the holder stops renewing. Optimistic concurrency (the Lease's
//! resourceVersion) settles races; a holder that cannot renew within the lease's duration stops
//! working before anyone else may start.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};

/// One replica's claim on a Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for LeaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLock").field("name", &self.name).field("identity", &self.identity).finish()
    }
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        LeaseLock { api, name: name.into(), identity: identity.into(), duration }
    }

    fn expired(&self, spec: &LeaseSpec, now: Timestamp) -> bool {
        let seconds = spec.lease_duration_seconds.map_or(self.duration.as_secs() as i64, i64::from);
        match &spec.renew_time {
            Some(MicroTime(renewed)) => {
                renewed.saturating_add(SignedDuration::from_secs(seconds)).is_ok_and(|end| end < now)
            }
            None => true,
        }
    }

    /// Takes or renews the Lease if it is ours, free or expired; true if we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !ours && spec.holder_identity.is_some() && !self.expired(&spec, now) {
            return Ok(false);
        }
        if !ours {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        lease.spec = Some(spec);
        // `replace` carries the resourceVersion we read: if someone else wrote since, we lose.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Why leading ended.
#[derive(Debug, thiserror::Error)]
pub enum LeadError {
    #[error("lost the lease to another replica, or could not renew it in time")]
    LostLease,
}

/// Waits until this replica holds the lease, then runs `work` while renewing every
/// `duration / 3`; stops `work` and returns an error as soon as the lease is lost. `leader`
/// reflects the state for probes and metrics.
pub async fn lead<F: Future<Output = ()>>(lock: LeaseLock, leader: Arc<AtomicBool>, work: F) -> Result<(), LeadError> {
    let renew_every = lock.duration / 3;
    loop {
        match lock.try_acquire().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reach the lease"),
        }
        tokio::time::sleep(renew_every).await;
    }
    tracing::info!(identity = %lock.identity, "became the leader");
    leader.store(true, Ordering::SeqCst);
    let renew = async {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(renew_every).await;
            match lock.try_acquire().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the lease");
                    // Stop before the lease can expire and another replica may start.
                    if last_renewed.elapsed() + renew_every >= lock.duration {
                        return;
                    }
                }
            }
        }
    };
    let result = tokio::select! {
        _ = work => Ok(()),
        _ = renew => Err(LeadError::LostLease),
    };
    leader.store(false, Ordering::SeqCst);
    result
}
