//! The NatsCluster status as a pure function of what the controller observed.
//!
//! Three conditions, each with a reason a human can act on:
//! - `Degraded`: the operator cannot do what the spec asks (`InvalidConfig` with the
//!   parser's `nats.conf:line:col` message, `InvalidSpec`, `GatewayProblem`,
//!   `ApplyFailed`); the running cluster is left as it was.
//! - `Progressing`: the cluster is moving towards the spec (`RollingRestart`,
//!   `PodsStarting`, `ConfigReloading`).
//! - `Ready`: every pod is ready and runs the current config.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{NatsClusterStatus, PodConfig};

/// What the controller saw, the input of [`compute`].
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub generation: Option<i64>,
    pub desired_replicas: i32,
    /// From the StatefulSet status.
    pub replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    /// `currentRevision != updateRevision` on the StatefulSet.
    pub revision_pending: bool,
    /// The digest of the config just applied; `None` when nothing could be rendered.
    pub config_digest: Option<String>,
    pub pods: Vec<PodConfig>,
    /// Set when the spec could not be rendered: (reason, message).
    pub invalid: Option<(String, String)>,
    /// Problems that do not stop the apply (gateway peers, ServiceMonitor CRD missing).
    pub warnings: Vec<(String, String)>,
    pub selector: String,
    pub client_url: String,
}

pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" }.to_string();
    // The transition time moves only when the status flips.
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: last,
    }
}

/// Builds the status. `previous` keeps transition times (and, when the spec is invalid,
/// the last known pod state: nothing was touched, so it is still true).
pub fn compute(
    obs: &Observed,
    previous: Option<&NatsClusterStatus>,
    now: &Time,
) -> NatsClusterStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let g = obs.generation;

    let (degraded, d_reason, d_msg) = match (&obs.invalid, obs.warnings.first()) {
        (Some((r, m)), _) => (
            true,
            r.clone(),
            format!("{m}. Nothing was changed in the running cluster; fix the spec."),
        ),
        (None, Some((r, _))) => (
            true,
            r.clone(),
            obs.warnings
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, None) => (
            false,
            "AsExpected".to_string(),
            "All resources applied".to_string(),
        ),
    };

    let pending_pods: Vec<&str> = obs
        .pods
        .iter()
        .filter(|p| !p.applied)
        .map(|p| p.pod.as_str())
        .collect();
    let all_applied = obs.config_digest.is_some()
        && pending_pods.is_empty()
        && obs.pods.len() == usize::try_from(obs.desired_replicas).unwrap_or(0);

    let (progressing, p_reason, p_msg) = if obs.invalid.is_some() {
        (
            false,
            "SpecInvalid".to_string(),
            "Waiting for a valid spec".to_string(),
        )
    } else if obs.revision_pending {
        (
            true,
            "RollingRestart".to_string(),
            format!(
                "{} of {} pods run the current pod template; pods restart one at a time",
                obs.updated_replicas, obs.desired_replicas
            ),
        )
    } else if obs.ready_replicas < obs.desired_replicas || obs.replicas != obs.desired_replicas {
        (
            true,
            "PodsStarting".to_string(),
            format!(
                "{} of {} pods ready",
                obs.ready_replicas, obs.desired_replicas
            ),
        )
    } else if !all_applied {
        (
            true,
            "ConfigReloading".to_string(),
            if pending_pods.is_empty() {
                "Waiting for every pod to report its config".to_string()
            } else {
                format!(
                    "Pods not yet running config {}: {}",
                    obs.config_digest.as_deref().unwrap_or("?"),
                    pending_pods.join(", ")
                )
            },
        )
    } else {
        (
            false,
            "Stable".to_string(),
            "Cluster matches the spec".to_string(),
        )
    };

    let ready = !degraded_blocks_ready(obs)
        && obs.ready_replicas >= obs.desired_replicas
        && !obs.revision_pending
        && all_applied;
    let (r_reason, r_msg) = if ready {
        (
            "Ready".to_string(),
            format!(
                "{} of {} pods ready on the current config",
                obs.ready_replicas, obs.desired_replicas
            ),
        )
    } else if let Some((r, m)) = &obs.invalid {
        (r.clone(), m.clone())
    } else {
        (p_reason.clone(), p_msg.clone())
    };

    let conditions = vec![
        condition("Ready", ready, &r_reason, r_msg, g, prev_conditions, now),
        condition(
            "Progressing",
            progressing,
            &p_reason,
            p_msg,
            g,
            prev_conditions,
            now,
        ),
        condition(
            "Degraded",
            degraded,
            &d_reason,
            d_msg,
            g,
            prev_conditions,
            now,
        ),
    ];

    NatsClusterStatus {
        conditions,
        observed_generation: g,
        replicas: obs.replicas,
        ready_replicas: obs.ready_replicas,
        selector: Some(obs.selector.clone()),
        client_url: Some(obs.client_url.clone()),
        config_digest: obs
            .config_digest
            .clone()
            .or_else(|| previous.and_then(|p| p.config_digest.clone())),
        pod_configs: if obs.invalid.is_some() && obs.pods.is_empty() {
            previous.map(|p| p.pod_configs.clone()).unwrap_or_default()
        } else {
            obs.pods.clone()
        },
    }
}

/// An invalid spec makes the cluster not Ready even if the old pods still serve: the
/// cluster does not match what was asked for.
fn degraded_blocks_ready(obs: &Observed) -> bool {
    obs.invalid.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn healthy() -> Observed {
        Observed {
            generation: Some(2),
            desired_replicas: 3,
            replicas: 3,
            ready_replicas: 3,
            updated_replicas: 3,
            config_digest: Some("fnv1a64:aa".into()),
            pods: (0..3)
                .map(|i| PodConfig {
                    pod: format!("nc-{i}"),
                    config_digest: Some("fnv1a64:aa".into()),
                    applied: true,
                })
                .collect(),
            selector: "a=b".into(),
            client_url: "nats://nc.ns.svc.cluster.local:4222".into(),
            ..Observed::default()
        }
    }

    fn cond<'a>(s: &'a NatsClusterStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn healthy_cluster_is_ready_and_stable() {
        let s = compute(&healthy(), None, &t(100));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Progressing").reason, "Stable");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn a_pod_on_an_old_config_is_reloading() {
        let mut o = healthy();
        o.pods[1].config_digest = Some("fnv1a64:old".into());
        o.pods[1].applied = false;
        let s = compute(&o, None, &t(100));
        assert_eq!(cond(&s, "Ready").status, "False");
        let p = cond(&s, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "ConfigReloading")
        );
        assert!(p.message.contains("nc-1"), "{}", p.message);
    }

    #[test]
    fn rollout_in_progress() {
        let mut o = healthy();
        o.revision_pending = true;
        o.updated_replicas = 1;
        let s = compute(&o, None, &t(100));
        assert_eq!(cond(&s, "Progressing").reason, "RollingRestart");
        assert_eq!(cond(&s, "Ready").reason, "RollingRestart");
    }

    #[test]
    fn invalid_spec_keeps_last_pod_state_and_says_what_to_fix() {
        let prev = compute(&healthy(), None, &t(100));
        let o = Observed {
            generation: Some(3),
            desired_replicas: 3,
            replicas: 3,
            ready_replicas: 3,
            updated_replicas: 3,
            invalid: Some((
                "InvalidConfig".into(),
                "nats.conf:9:3: unknown field \"bogus\"".into(),
            )),
            selector: "a=b".into(),
            client_url: "u".into(),
            ..Observed::default()
        };
        let s = compute(&o, Some(&prev), &t(200));
        let d = cond(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "InvalidConfig")
        );
        assert!(d.message.contains("nats.conf:9:3"));
        assert_eq!(s.pod_configs, prev.pod_configs);
        assert_eq!(s.config_digest.as_deref(), Some("fnv1a64:aa"));
        assert_eq!(cond(&s, "Ready").status, "False");
    }

    #[test]
    fn transition_time_moves_only_on_flips() {
        let first = compute(&healthy(), None, &t(100));
        let again = compute(&healthy(), Some(&first), &t(200));
        assert_eq!(cond(&again, "Ready").last_transition_time, t(100));
        let mut o = healthy();
        o.ready_replicas = 2;
        let flipped = compute(&o, Some(&again), &t(300));
        assert_eq!(cond(&flipped, "Ready").last_transition_time, t(300));
        assert_eq!(cond(&flipped, "Degraded").last_transition_time, t(100));
    }
}
