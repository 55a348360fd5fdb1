//! Leader election on a `coordination.k8s.io/v1` Lease, so that several operator replicas
//! can run and exactly one reconciles.
//!
//! The protocol is client-go's: the holder renews `renewTime` well within
//! `leaseDurationSeconds`; anyone may take a Lease whose renew time is older than its
//! duration; every write carries the `resourceVersion` read, so two candidates racing for
//! the same Lease cannot both win (the loser gets `409 Conflict`). A leader that cannot
//! renew before its renew deadline stops reconciling and becomes a candidate again (as
//! when the API server restarts), so two replicas never reconcile at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// Outcome of one election round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// We hold the Lease (acquired or renewed).
    Leading,
    /// Someone else holds a fresh Lease.
    Following,
}

/// One candidate for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, duration: Duration) -> Self {
        Self {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    fn seconds(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }

    /// Tries to acquire or renew the Lease at time `now`.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<Round, kube::Error> {
        let stamp = MicroTime(now);
        let Some(lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.seconds()),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leading),
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => {
                    Ok(Round::Following)
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        let held = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty());
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(r), Some(d)) => r.0 + SignedDuration::from_secs(i64::from(d)) < now,
            _ => true,
        };
        if !ours && held && !expired {
            return Ok(Round::Following);
        }
        let mut next = lease.clone();
        let mut ns = spec.clone();
        ns.renew_time = Some(stamp.clone());
        ns.lease_duration_seconds = Some(self.seconds());
        if !ours {
            ns.holder_identity = Some(self.identity.clone());
            ns.acquire_time = Some(stamp);
            ns.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.spec = Some(ns);
        // `replace` sends the resourceVersion we read: a concurrent writer makes it fail.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(Round::Leading),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Round::Following),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate leads, retrying every `retry`.
    pub async fn acquire(&self, retry: Duration) {
        loop {
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(Round::Leading) => return,
                Ok(Round::Following) => {}
                Err(e) => tracing::warn!(error = %e, lease = %self.name, "leader election failed"),
            }
            tokio::time::sleep(retry).await;
        }
    }

    /// Renews every `duration / 3` and returns when leadership is lost: someone else took
    /// the Lease, or renewals kept failing for two thirds of the lease duration (the
    /// renew deadline: the leader stops before anyone else may take over).
    pub async fn hold(&self) {
        let period = self.duration / 3;
        let deadline = self.duration * 2 / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(Round::Leading) => last_ok = tokio::time::Instant::now(),
                Ok(Round::Following) => {
                    tracing::error!(lease = %self.name, "leader Lease taken by another replica");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.name, "could not renew leader Lease");
                    if last_ok.elapsed() >= deadline {
                        return;
                    }
                }
            }
        }
    }
}
