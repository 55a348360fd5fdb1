//! `natrix-server`: the command line of nats-server, then the server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use natrix_broker::server::Server;
use natrix_broker::server::lifecycle::{self, SignalEvent};
use natrix_broker::server::options::RuntimeOptions;
use natrix_broker::server::reload;
use natrix_broker::telemetry::{self, LogConfig, otlp};
use natrix_config::{Configured, Flags, Options};

mod jetstream_bus;

fn main() -> ExitCode {
    natrix_broker::server::lifecycle::keep_freed_memory();
    let configured = match natrix_config::flags::configure_from_env() {
        Ok(c) => c,
        Err(e) => {
            // nats-server prints flag and config errors plainly and exits 1.
            eprintln!("natrix-server: {e}");
            if e.wants_usage() {
                eprintln!("{}", natrix_config::flags::usage());
            }
            return ExitCode::FAILURE;
        }
    };
    match configured {
        Configured::Version => {
            println!("{}", natrix_config::flags::version_text());
            ExitCode::SUCCESS
        }
        Configured::Help(text) | Configured::HelpTls(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Configured::CheckConfig {
            config_file,
            digest,
        } => {
            println!(
                "{}",
                natrix_config::flags::check_message(&config_file, &digest)
            );
            ExitCode::SUCCESS
        }
        Configured::Signal { command, target } => {
            match lifecycle::send_signal(command, target.as_deref()) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("natrix-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Configured::Run {
            options,
            warnings,
            config_file,
            flags,
        } => match run(*options, &warnings, config_file, *flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("natrix-server: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn log_config(o: &Options) -> LogConfig {
    LogConfig {
        debug: o.debug,
        trace: o.trace,
        logtime: o.logtime,
        utc: o.logtime_utc,
        file: (!o.log_file.is_empty()).then(|| PathBuf::from(&o.log_file)),
        json: o.telemetry.log_format == natrix_config::options::LogFormat::Json,
    }
}

fn run(
    options: Options,
    warnings: &[natrix_config::Warning],
    config_file: Option<PathBuf>,
    flags: Flags,
) -> anyhow::Result<()> {
    // nats-server's NewServer: these fail start-up (but not -t) with the bare message.
    natrix_config::validate::validate(&options)?;
    let log_file = telemetry::init_logging(&log_config(&options)).context("opening log file")?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("natrix")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        tracing::info!("Starting natrix-server");
        tracing::info!("  Version:  {}", natrix_broker::server::VERSION);
        tracing::info!(
            "  Protocol: nats-server {}",
            natrix_broker::server::NATS_COMPAT_VERSION
        );
        if let Some(f) = &config_file {
            tracing::info!("  Using configuration file: {}", f.display());
        }
        // Held to the end: flushes whatever export runs then (reloads may change it).
        let _traces = otlp::init(otlp::ExportSettings::resolve(&options.telemetry).as_ref())
            .context("starting OpenTelemetry export")?;
        let trust = natrix_broker::trust::Trust::from_config(&options)?;
        let mut options = options;
        if let Some(t) = &trust
            && options.system_account.is_empty()
        {
            options.system_account.clone_from(&t.system_account);
        }
        let runtime_opts = RuntimeOptions::from_config(&options)?;
        let server = Server::new(runtime_opts.clone());
        if let Some(t) = trust {
            tracing::info!("Trusted Operators");
            for op in t.operators() {
                tracing::info!("  Operator: {:?} ({})", op.data.name, op.data.subject);
            }
            server.set_trust(t);
        }
        tracing::info!("  Name:     {}", server.name());
        tracing::info!("  ID:       {}", server.id());
        let listener = server
            .bind()
            .await
            .with_context(|| format!("listening on {}:{}", options.host, options.port))?;
        let mut files = Vec::new();
        if let Some(p) = &runtime_opts.pid_file {
            let path = PathBuf::from(p);
            lifecycle::write_pid_file(&path).with_context(|| format!("writing pid file {p}"))?;
            files.push(path);
        }
        let monitor = natrix_broker::monitor::bind(&server)
            .await
            .with_context(|| format!("listening for monitoring on port {}", options.http_port))?
            .map(|l| {
                tokio::spawn(
                    natrix_broker::monitor::Monitor::new(server.clone()).serve(l.listener, l.tls),
                )
            });
        server
            .start_cluster()
            .await
            .with_context(|| format!("listening for routes on port {}", options.cluster.port))?;
        server.start_leafnodes().await.with_context(|| {
            format!(
                "listening for leafnode connections on port {}",
                options.leafnode.port
            )
        })?;
        if let Some(addr) = natrix_broker::websocket::start(&server, &options)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "listening for websocket clients on port {}",
                    options.websocket.port
                )
            })?
        {
            server.set_websocket_addr(addr);
        }
        if let Some(addr) = natrix_broker::mqtt::start(&server, &options)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("listening for MQTT clients on port {}", options.mqtt.port))?
        {
            server.set_mqtt_addr(addr);
        }
        if let Some(dir) = &runtime_opts.ports_file_dir {
            let path = lifecycle::write_ports_file(std::path::Path::new(dir), &server)
                .with_context(|| format!("writing ports file in {dir}"))?;
            files.push(path);
        }
        let jetstream = if options.jetstream.enabled {
            let js = natrix_jetstream::JetStream::start(
                jetstream_bus::config(&options, server.name()),
                std::sync::Arc::new(jetstream_bus::CoreBus(server.clone())),
            )
            .await
            .context("starting JetStream")?;
            server.set_jetstream(Some(std::sync::Arc::new(jetstream_bus::Monitor(
                js.clone(),
            ))));
            jetstream_bus::follow_account_claims(&server, &js);
            let handing = js.clone();
            server.on_before_shutdown(std::sync::Arc::new(move || {
                let js = handing.clone();
                Box::pin(async move { js.hand_over().await })
            }));
            Some(js)
        } else {
            None
        };
        let accept = {
            let server = server.clone();
            tokio::spawn(async move { server.accept_loop(listener).await })
        };
        tracing::info!("Server is ready");
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let (sys_reload_tx, sys_reload_rx) = tokio::sync::mpsc::channel(4);
        natrix_broker::server::system::start(
            &server,
            config_file.is_some().then_some(sys_reload_tx),
        );
        let reloads = tokio::spawn(reload::run(
            reload::Reloader::new(server.clone(), options, config_file, flags),
            reload_rx,
            sys_reload_rx,
        ));
        let signals = {
            tokio::spawn(lifecycle::handle_signals(
                server.clone(),
                move |event| match event {
                    SignalEvent::Reload => {
                        let _ = reload_tx.try_send(reload::Trigger::Signal);
                    }
                    SignalEvent::Reopen => {
                        if let Some(f) = &log_file {
                            match f.reopen() {
                                Ok(()) => tracing::info!("File log re-opened"),
                                Err(e) => tracing::error!("Unable to re-open log file: {e}"),
                            }
                        }
                    }
                },
            ))
        };
        server.wait_shutdown().await;
        tracing::info!("Initiating Shutdown...");
        let _ = accept.await;
        if let Some(js) = &jetstream {
            js.shutdown().await;
        }
        signals.abort();
        reloads.abort();
        if let Some(m) = monitor {
            m.abort();
        }
        // Give writers a moment to flush what the shutdown queued (-ERR, pending messages).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while server.num_clients() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lifecycle::cleanup_files(&files);
        tracing::info!("Server Exiting..");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
