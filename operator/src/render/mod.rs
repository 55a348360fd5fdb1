//! Pure functions from a NatsCluster (plus what the controller looked up: gateway peers and
//! the config the pods were last restarted for) to the objects the operator applies.
//!
//! Nothing here talks to the API server, so every decision (config text, digest, reload vs.
//! restart, pod template, volumes) is unit-tested with golden files. The controller only
//! fetches inputs, calls [`render`] and applies the result.

pub mod config;
pub mod names;
pub mod objects;
pub mod operator_mode;
pub mod quantity;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::DynamicObject;

pub use config::{GatewayPeer, RenderedConfig};

use crate::crd::NatsCluster;

/// Why a NatsCluster could not be rendered. Both kinds are the user's to fix, so the
/// controller reports them on the NatsCluster (condition `Degraded`) and applies nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// natrix-server's parser or option layer refused the rendered config; the messages
    /// carry `nats.conf:line:col`.
    #[error("natrix-server would refuse this config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// A spec value the schema could not check (a quantity, a pod template override).
    #[error("{0}")]
    Spec(String),
    /// Account resources put the cluster in operator mode, but its spec sets users or
    /// accounts of its own.
    #[error("{0}")]
    OperatorModeConflict(String),
}

impl RenderError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::InvalidConfig(_) => "InvalidConfig",
            RenderError::Spec(_) => "InvalidSpec",
            RenderError::OperatorModeConflict(_) => "OperatorModeConflict",
        }
    }
}

/// Whether the pods must restart for the new config, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartDecision {
    /// Value of the pod-template annotation [`names::ANNOTATION_RESTART`]: the digest of
    /// the config the pods were (or are now to be) restarted for.
    pub digest: String,
    /// The config text stored as the new restart base in the ConfigMap.
    pub base_text: String,
    /// The broker's refusals that force the restart (empty: pods reload live, or this is
    /// the first rollout).
    pub reasons: Vec<String>,
    /// Changes the pods apply by reloading (nats-server's Go field names).
    pub reloadable: Vec<String>,
}

/// Decides between reload and restart with the broker's own reload rules.
///
/// `base` is the config the pods were last restarted for (kept in the ConfigMap next to
/// the live config). If natrix-server would refuse to reload from `base` to `new`, the
/// restart digest moves to the new config, which changes the pod template and rolls the
/// StatefulSet one pod at a time. Otherwise the digest stays, only the ConfigMap changes,
/// and each pod reloads the file on its own. Keeping the base (not just the previous
/// config) means a restart-needed change is never lost when an apply fails half-way.
pub fn decide_restart(base: Option<&str>, new: &RenderedConfig) -> RestartDecision {
    let restart_now = |reasons: Vec<String>| RestartDecision {
        digest: new.digest.clone(),
        base_text: new.text.clone(),
        reasons,
        reloadable: Vec::new(),
    };
    let Some(base_text) = base else {
        return restart_now(Vec::new());
    };
    let (base_digest, base_opts) = match config::load(base_text) {
        Ok(x) => x,
        Err(e) => {
            return restart_now(vec![format!(
                "the previous config no longer loads ({e}); restarting onto the new one"
            )]);
        }
    };
    let plan = natrix_config::reload::diff(&base_opts, &new.options);
    if plan.is_allowed() {
        RestartDecision {
            digest: base_digest,
            base_text: base_text.to_string(),
            reasons: Vec::new(),
            reloadable: plan
                .reloadable
                .iter()
                .map(|c| c.field.to_string())
                .collect(),
        }
    } else {
        restart_now(plan.refused)
    }
}

/// Everything the controller applies for one NatsCluster.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub config: RenderedConfig,
    pub restart: RestartDecision,
    pub config_map: ConfigMap,
    pub headless_service: Service,
    pub client_service: Service,
    pub statefulset: StatefulSet,
    /// `None`: the PDB is disabled (and deleted if it exists).
    pub pdb: Option<PodDisruptionBudget>,
    /// A Prometheus-operator ServiceMonitor when requested.
    pub service_monitor: Option<DynamicObject>,
}

/// What the controller looked up for [`render`].
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Gateways to render, resolved and sorted (see `controller::gateways`).
    pub gateways: Vec<GatewayPeer>,
    /// The restart base stored in the live ConfigMap, if there is one.
    pub restart_base: Option<String>,
    /// cert-manager Certificate name → the Secret it writes (`spec.secretName`), for TLS
    /// listeners that name a `certificate`.
    pub certificate_secrets: std::collections::BTreeMap<String, String>,
    /// Operator mode, when Account resources name the cluster.
    pub operator_mode: Option<operator_mode::OperatorMode>,
}

/// Renders every object of `nc`.
pub fn render(nc: &NatsCluster, inputs: &Inputs) -> Result<Rendered, RenderError> {
    let config = config::render_with(nc, &inputs.gateways, inputs.operator_mode.as_ref())?;
    let restart = decide_restart(inputs.restart_base.as_deref(), &config);
    let config_map = objects::config_map(nc, &config, &restart)?;
    let headless_service = objects::headless_service(nc)?;
    let client_service = objects::client_service(nc)?;
    let statefulset = objects::statefulset(nc, &restart, &inputs.certificate_secrets)?;
    let pdb = objects::pdb(nc)?;
    let service_monitor = objects::service_monitor(nc)?;
    Ok(Rendered {
        config,
        restart,
        config_map,
        headless_service,
        client_service,
        statefulset,
        pdb,
        service_monitor,
    })
}
