//! The `natrix-operator` binary: `run` (the controller) and `crdgen` / `crdref` (print the
//! CRD YAML and its markdown reference).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

use natrix_operator::controller::jetstream::JsContext;
use natrix_operator::controller::{self, Context, probe::HttpProbe};
use natrix_operator::crd::{crd_files, crds};
use natrix_operator::leader::LeaderElector;
use natrix_operator::metrics::{self, Metrics};
use natrix_operator::reference;
use natrix_operator::render::names::FIELD_MANAGER;
use natrix_operator::telemetry;

#[derive(Parser)]
#[command(
    name = "natrix-operator",
    version,
    about = "Runs natrix-server clusters on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print every CRD as YAML (one document each), or write one file per CRD.
    Crdgen {
        /// Write `<plural>.natrix.io.yaml` files into this directory instead.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Print the markdown field reference of the CRD (the docs section).
    Crdref,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Do not apply the CRDs at start-up (when they are installed separately).
    #[arg(long)]
    no_install_crds: bool,
    /// Run without leader election (a single replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, default_value = "natrix-operator")]
    lease_name: String,
    /// Namespace of the leader Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (default: the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Timeout of each pod's /varz probe, in seconds.
    #[arg(long, default_value_t = 2)]
    probe_timeout: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

/// Server-side applies every CRD and waits until the API server serves them.
async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.clone().context("CRD has no name")?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("applying CRD {name}"))?;
        tokio::time::timeout(
            Duration::from_secs(60),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .with_context(|| format!("CRD {name} not established after 60s"))?
        .with_context(|| format!("waiting for CRD {name}"))?;
        tracing::info!(crd = %name, "CRD applied and established");
    }
    Ok(())
}

/// `crdgen`: all CRDs to stdout, or one file each into `dir`.
fn crdgen(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let files = crd_files()?;
    match dir {
        Some(dir) => {
            for (name, yaml) in files {
                let path = dir.join(name);
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            let docs: Vec<String> = files.into_iter().map(|(_, y)| y).collect();
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    // Kept alive for the whole run: dropping it flushes and stops trace export.
    let _telemetry = match telemetry::ExportSettings::from_env() {
        Some(settings) => Some(telemetry::init(&settings)?),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let listener = metrics::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    if !args.no_install_crds {
        install_crds(&client).await?;
    }
    metrics.set_ready(true);

    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(HttpProbe::new(Duration::from_secs(args.probe_timeout))),
        metrics.clone(),
    ));
    let js = Arc::new(JsContext::new(client.clone(), metrics.clone()));
    if args.no_leader_election {
        metrics.set_leader(true);
        run_controllers(ctx, js).await;
        return Ok(());
    }
    let identity = match args.identity.clone() {
        Some(i) => i,
        None => std::env::var("HOSTNAME").context("no --identity, POD_NAME or HOSTNAME")?,
    };
    let api: Api<Lease> = Api::namespaced(client, &args.lease_namespace);
    let elector = LeaderElector::new(
        api,
        &args.lease_name,
        &identity,
        Duration::from_secs(args.lease_duration),
    );
    // Lead, and on losing the Lease (another replica took it, or the API server was
    // unreachable past the renew deadline) stop reconciling and stand again. SIGTERM and
    // SIGINT end the process in every state, standing by included (once a signal
    // handler is installed, nothing else would).
    tokio::select! {
        () = lead_forever(&elector, &ctx, &js, &metrics, &args.lease_name, &identity) => Ok(()),
        signal = shutdown_signal() => {
            tracing::info!(signal, "shutting down");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            // Without handlers the default disposition still ends the process.
            std::future::pending::<&'static str>().await
        }
    }
}

/// The NatsCluster controller and the JetStream asset controllers, until shutdown.
async fn run_controllers(ctx: Arc<Context>, js: Arc<JsContext>) {
    futures::join!(controller::run(ctx), controller::jetstream::run(js));
}

/// The leader loop; returns only when the controller stops (on a shutdown signal).
async fn lead_forever(
    elector: &LeaderElector,
    ctx: &Arc<Context>,
    js: &Arc<JsContext>,
    metrics: &Metrics,
    lease: &str,
    identity: &str,
) {
    loop {
        tracing::info!(lease, identity, "waiting for leadership");
        elector.acquire(Duration::from_secs(2)).await;
        tracing::info!(lease, "leading");
        metrics.set_leader(true);
        tokio::select! {
            () = run_controllers(ctx.clone(), js.clone()) => {
                // The controller stops only on a shutdown signal.
                return;
            }
            () = elector.hold() => {
                metrics.set_leader(false);
                tracing::warn!(lease, "lost leadership; reconciling stopped");
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Crdgen { dir } => crdgen(dir.as_deref()),
        Command::Crdref => {
            print!("{}", reference::markdown());
            Ok(())
        }
    }
}
