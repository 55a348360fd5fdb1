//! The NatsCluster status as a pure function of what the controller observed.
//!
//! Three conditions, each with a reason a human can act on:
//! - `Degraded`: the operator cannot do what the spec asks (`InvalidConfig` with the
//!   parser's `nats.conf:line:col` message, `InvalidSpec`, `GatewayProblem`,
//!   `ApplyFailed`); the running cluster is left as it was.
//! - `Progressing`: the cluster is moving towards the spec (`RollingRestart`,
//!   `PodsStarting`, `ConfigReloading`, `JetStreamCatchingUp`).
//! - `Ready`: every pod is ready and runs the current config, and with JetStream every
//!   pod's `/healthz` says its replicas are current.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{JetStreamStatus, NatsClusterStatus, PodConfig};

use super::probe::JetStreamHealth;

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
    /// The JetStream answers of the pods that gave one; `None` without JetStream.
    pub jetstream: Option<Vec<JetStreamHealth>>,
    /// A JetStream scale-down waiting for the leaving servers' streams to move.
    pub scaling_down: Option<String>,
    /// The size a scale-down was released to while the StatefulSet shrinks.
    pub scale_down_released: Option<i32>,
}

/// The cluster's JetStream from the pods' answers: the leader most pods name (the first
/// in name order on a tie, so the status does not flap), and the pods that are current.
pub fn jetstream_status(
    answers: &[JetStreamHealth],
    pods: &[PodConfig],
    desired: i32,
) -> JetStreamStatus {
    let mut votes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for l in answers.iter().filter_map(|a| a.meta_leader.as_deref()) {
        *votes.entry(l).or_default() += 1;
    }
    let meta_leader = votes
        .iter()
        .fold(None::<(&str, usize)>, |best, (l, n)| match best {
            Some((_, m)) if m >= *n => best,
            _ => Some((l, *n)),
        })
        .map(|(l, _)| l.to_string());
    let current = pods
        .iter()
        .filter(|p| p.jetstream.as_deref() == Some("Current"))
        .count();
    let current_pods = i32::try_from(current).unwrap_or(i32::MAX);
    JetStreamStatus {
        // A pod's `/healthz` is current only once it knows a meta leader (clustered), so
        // the pods alone decide.
        ready: current_pods >= desired,
        meta_leader,
        meta_cluster_size: answers
            .iter()
            .filter_map(|a| a.meta_cluster_size)
            .max()
            .and_then(|n| i64::try_from(n).ok()),
        current_pods,
    }
}

/// Pods whose JetStream is still catching up, with what their `/healthz` says.
fn catching_up(pods: &[PodConfig]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| match p.jetstream.as_deref() {
            Some("Current") | None => None,
            Some(why) => Some(format!("{} ({why})", p.pod)),
        })
        .collect()
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

    let js = if obs.invalid.is_some() {
        previous.and_then(|p| p.jetstream.clone())
    } else {
        obs.jetstream
            .as_ref()
            .map(|answers| jetstream_status(answers, &obs.pods, obs.desired_replicas))
    };
    let (progressing, p_reason, p_msg) = if obs.invalid.is_some() {
        (
            false,
            "SpecInvalid".to_string(),
            "Waiting for a valid spec".to_string(),
        )
    } else if let Some(why) = &obs.scaling_down {
        (true, "ScalingDown".to_string(), why.clone())
    } else if obs.revision_pending {
        let waiting = catching_up(&obs.pods);
        (
            true,
            "RollingRestart".to_string(),
            if waiting.is_empty() {
                format!(
                    "{} of {} pods run the current pod template; pods restart one at a time",
                    obs.updated_replicas, obs.desired_replicas
                )
            } else {
                format!(
                    "{} of {} pods run the current pod template; pods restart one at a time, the next once JetStream has caught up on {}",
                    obs.updated_replicas,
                    obs.desired_replicas,
                    waiting.join(", ")
                )
            },
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
    } else if let Some(js) = js.as_ref().filter(|j| !j.ready) {
        let waiting = catching_up(&obs.pods);
        (
            true,
            "JetStreamCatchingUp".to_string(),
            if waiting.is_empty() {
                format!(
                    "{} of {} pods have JetStream current{}",
                    js.current_pods,
                    obs.desired_replicas,
                    if js.meta_leader.is_none() {
                        "; no meta leader yet"
                    } else {
                        ""
                    }
                )
            } else {
                format!("JetStream not yet current on {}", waiting.join(", "))
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
        && obs.scaling_down.is_none()
        && obs.ready_replicas >= obs.desired_replicas
        && !obs.revision_pending
        && all_applied
        && js.as_ref().is_none_or(|j| j.ready);
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
        jetstream: js,
        scale_down_released: obs.scale_down_released,
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
                    jetstream: None,
                    streams: None,
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

    fn with_jetstream(states: [&str; 3], leaders: [Option<&str>; 3]) -> Observed {
        let mut o = healthy();
        for (p, st) in o.pods.iter_mut().zip(states) {
            p.jetstream = Some(st.to_string());
        }
        o.jetstream = Some(
            states
                .iter()
                .zip(leaders)
                .map(|(st, l)| JetStreamHealth {
                    healthy: *st == "Current",
                    error: (*st != "Current").then(|| st.to_string()),
                    meta_leader: l.map(str::to_string),
                    meta_cluster_size: Some(3),
                    streams: Some(1),
                })
                .collect(),
        );
        o
    }

    #[test]
    fn jetstream_current_everywhere_is_ready_with_the_meta_leader() {
        let o = with_jetstream(["Current"; 3], [Some("nc-1"), Some("nc-1"), Some("nc-1")]);
        let s = compute(&o, None, &t(100));
        assert_eq!(cond(&s, "Ready").status, "True");
        let js = s.jetstream.unwrap();
        assert!(js.ready);
        assert_eq!(js.meta_leader.as_deref(), Some("nc-1"));
        assert_eq!(js.meta_cluster_size, Some(3));
        assert_eq!(js.current_pods, 3);
    }

    #[test]
    fn a_pod_catching_up_keeps_the_cluster_progressing_and_names_it() {
        let why = "JetStream stream 'A > orders' is not current";
        let o = with_jetstream(
            ["Current", "Current", why],
            [Some("nc-0"), Some("nc-0"), None],
        );
        let s = compute(&o, None, &t(100));
        assert_eq!(cond(&s, "Ready").status, "False");
        let p = cond(&s, "Progressing");
        assert_eq!(p.reason, "JetStreamCatchingUp");
        assert!(
            p.message.contains("nc-2") && p.message.contains(why),
            "{}",
            p.message
        );
        let js = s.jetstream.unwrap();
        assert_eq!((js.ready, js.current_pods), (false, 2));
        assert_eq!(js.meta_leader.as_deref(), Some("nc-0"));
    }

    #[test]
    fn a_roll_says_which_pod_it_waits_for() {
        let mut o = with_jetstream(
            [
                "Current",
                "Current",
                "JetStream stream 'A > S' is not current",
            ],
            [Some("nc-0"); 3],
        );
        o.revision_pending = true;
        o.updated_replicas = 1;
        let s = compute(&o, None, &t(100));
        let p = cond(&s, "Progressing");
        assert_eq!(p.reason, "RollingRestart");
        assert!(
            p.message.contains("1 of 3") && p.message.contains("caught up on nc-2"),
            "{}",
            p.message
        );
    }

    #[test]
    fn the_meta_leader_most_pods_name_wins_and_ties_are_stable() {
        let pods = healthy().pods;
        let h = |l: &str| JetStreamHealth {
            healthy: true,
            meta_leader: Some(l.into()),
            ..JetStreamHealth::default()
        };
        let js = jetstream_status(&[h("nc-2"), h("nc-1"), h("nc-2")], &pods, 3);
        assert_eq!(js.meta_leader.as_deref(), Some("nc-2"));
        let js = jetstream_status(&[h("nc-2"), h("nc-1")], &pods, 3);
        assert_eq!(js.meta_leader.as_deref(), Some("nc-1"));
        assert!(jetstream_status(&[], &pods, 3).meta_leader.is_none());
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
