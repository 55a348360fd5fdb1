//! Configuration reload: on SIGHUP, `--signal reload`, and whenever the config file or a
//! file it includes changes on disk.
//!
//! One task owns the running [`Options`] and performs every reload, so reloads never
//! interleave. A reload re-reads the files with the command-line flags on top, diffs the
//! result against the running options, and either installs the new options whole or, if
//! any change cannot be applied to a running server, refuses them all with one log line
//! per option and keeps running on the old config. A config that fails to parse is
//! reported with file:line:col and ignored.
//!
//! File watching watches the *directories* holding the config files, not the files: a
//! Kubernetes ConfigMap volume replaces its files by atomically swapping a `..data`
//! symlink, which a watch on the old file never sees. Events only prompt a look; what
//! decides is a fingerprint of the files' bytes, so the burst of events one update makes
//! (and the periodic poll that covers lost or exhausted inotify watches) reloads once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use natrix_config::conf::SystemLoader;
use natrix_config::{Flags, Options, Strictness};
use notify::Watcher as _;
use tokio::sync::mpsc;

use super::Server;
use super::options::RuntimeOptions;
use crate::telemetry::otlp;

/// How long a burst of file events is collected before the files are read.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How often the files are re-read even without an event (lost or exhausted inotify).
const POLL: Duration = Duration::from_secs(5);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP or `--signal reload`: always reload.
    Signal,
    /// A file event or the poll: reload if the files' bytes changed.
    Files,
}

/// Why a reload did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The files did not parse or did not validate; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// Some changes cannot be applied while running; nothing changed.
    #[error("{summary}")]
    Refused {
        summary: String,
        /// One `config reload not supported for <Field>: old=…, new=…` per option.
        options: Vec<String>,
    },
}

/// Owns the running configuration and applies reloads to a server.
pub struct Reloader {
    server: Arc<Server>,
    current: Options,
    config_file: Option<PathBuf>,
    flags: Flags,
    /// Fingerprint of the config files' bytes at the last reload attempt.
    seen: u64,
    /// The trace export the last reload replaced, still running until the reload's own
    /// span has ended into it; then flushed off this task.
    retired: Option<otlp::Export>,
}

/// What a reload does to the process's trace export.
enum ExportChange {
    /// The resolved export settings are the same: leave the exporter alone.
    Keep,
    /// Install this export (built, not yet running), or turn export off with `None`.
    Install(Option<otlp::Export>),
}

impl Reloader {
    pub fn new(
        server: Arc<Server>,
        current: Options,
        config_file: Option<PathBuf>,
        flags: Flags,
    ) -> Self {
        let seen = fingerprint(&watched_files(&current, config_file.as_deref()));
        Self {
            server,
            current,
            config_file,
            flags,
            seen,
            retired: None,
        }
    }

    /// The files to watch: the config file, everything it includes, and the TLS
    /// certificate, key and CA files it names (a renewed certificate is a change too).
    pub fn files(&self) -> Vec<PathBuf> {
        watched_files(&self.current, self.config_file.as_deref())
    }

    /// Handles one trigger; returns whether new options were installed.
    pub fn on_trigger(&mut self, trigger: Trigger) -> bool {
        if self.config_file.is_none() {
            if trigger == Trigger::Signal {
                tracing::info!("Reloading server configuration");
                tracing::error!(
                    "Failed to reload server configuration: can only reload config when a file is provided using -c or --config"
                );
            }
            return false;
        }
        let files = self.files();
        let now = fingerprint(&files);
        if trigger == Trigger::Files {
            if now == self.seen {
                return false;
            }
            tracing::info!("Configuration file changed on disk");
        }
        self.seen = now;
        tracing::info!("Reloading server configuration");
        let span = otlp::start(
            "natrix.reload",
            opentelemetry::trace::SpanKind::Internal,
            None,
            vec![opentelemetry::KeyValue::new(
                "natrix.reload.trigger",
                format!("{trigger:?}"),
            )],
        );
        let result = self.apply();
        if let Some(span) = span {
            let outcome = match &result {
                Ok(()) => "applied".to_owned(),
                Err(e) => e.to_string(),
            };
            otlp::finish(
                span,
                vec![opentelemetry::KeyValue::new(
                    "natrix.reload.outcome",
                    outcome,
                )],
            );
        }
        otlp::retire(self.retired.take());
        match result {
            Ok(()) => {
                tracing::info!("Reloaded server configuration");
                true
            }
            Err(ReloadError::Refused { summary, options }) => {
                for o in &options {
                    tracing::error!("{o}");
                }
                tracing::error!("Failed to reload server configuration: {summary}");
                false
            }
            Err(e) => {
                tracing::error!("Failed to reload server configuration: {e}");
                false
            }
        }
    }

    /// Re-reads the files and applies them if every change can be applied.
    pub fn reload(&mut self) -> Result<(), ReloadError> {
        let result = self.apply();
        otlp::retire(self.retired.take());
        result
    }

    /// [`Reloader::reload`], leaving a replaced trace export in `self.retired`.
    fn apply(&mut self) -> Result<(), ReloadError> {
        let (next, warnings) = Options::load(
            self.config_file.as_deref(),
            &self.flags,
            Strictness::Strict,
            &SystemLoader,
        )
        .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        natrix_config::validate::validate(&next)
            .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let plan = natrix_config::diff(&self.current, &next);
        if let Some(summary) = plan.error() {
            return Err(ReloadError::Refused {
                summary: summary.to_owned(),
                options: plan.refused.clone(),
            });
        }
        let runtime =
            RuntimeOptions::from_config(&next).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        // Last of the steps that can fail: nothing has changed yet when it does.
        let export = self.export_change(&next)?;
        for c in &plan.reloadable {
            tracing::info!("Reloaded: {} = {}", c.field, c.new);
        }
        self.server.set_options(runtime);
        if let ExportChange::Install(export) = export {
            self.retired = otlp::install(export);
        }
        // The file set may have changed (an include added or removed).
        self.seen = fingerprint(&watched_files(&next, self.config_file.as_deref()));
        self.current = next;
        Ok(())
    }

    /// Compares the resolved export settings (config, then `OTEL_*` variables) of the
    /// running and the new options, and builds the new exporter when they differ. An
    /// endpoint the exporter cannot use refuses the reload, so the old export keeps running.
    fn export_change(&self, next: &Options) -> Result<ExportChange, ReloadError> {
        let want = otlp::ExportSettings::resolve(&next.telemetry);
        if want == otlp::ExportSettings::resolve(&self.current.telemetry) {
            return Ok(ExportChange::Keep);
        }
        let Some(settings) = want else {
            return Ok(ExportChange::Install(None));
        };
        match otlp::Export::build(&settings) {
            Ok(export) => Ok(ExportChange::Install(Some(export))),
            Err(e) => Err(ReloadError::Refused {
                summary: format!(
                    "telemetry.otlp.endpoint {:?} cannot be used ({e}); trace export is unchanged",
                    settings.endpoint
                ),
                options: Vec::new(),
            }),
        }
    }
}

fn watched_files(o: &Options, config_file: Option<&Path>) -> Vec<PathBuf> {
    let mut files = o.config_files.clone();
    if files.is_empty()
        && let Some(f) = config_file
    {
        files.push(f.to_path_buf());
    }
    // The TLS files of the listeners whose certificates a reload renews.
    for t in [&o.tls, &o.mqtt.tls].into_iter().flatten() {
        for f in [&t.cert_file, &t.key_file, &t.ca_file] {
            if !f.is_empty() {
                files.push(PathBuf::from(f));
            }
        }
    }
    files
}

/// A cheap fingerprint of the files' names and bytes (FNV-1a); missing files count as
/// empty, so deleting one is a change too.
pub fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for f in files {
        feed(f.as_os_str().as_encoded_bytes());
        feed(&[0]);
        feed(&std::fs::read(f).unwrap_or_default());
        feed(&[0xff]);
    }
    h
}

/// Runs reloads until the server shuts down: from `signals` (SIGHUP, `--signal
/// reload`), from `$SYS.REQ.SERVER.<id>.RELOAD` requests (answered with the outcome),
/// from file events on the config files' directories, and from a slow poll.
pub async fn run(
    mut reloader: Reloader,
    mut signals: mpsc::Receiver<Trigger>,
    mut requests: mpsc::Receiver<super::system::ReloadRequest>,
) {
    let server = reloader.server.clone();
    let (events_tx, mut events) = mpsc::channel::<()>(1);
    let mut watcher = start_watcher(&directories(&reloader.files()), events_tx.clone());
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    loop {
        let trigger = tokio::select! {
            () = &mut shutdown => return,
            t = signals.recv() => match t {
                Some(t) => t,
                None => return,
            },
            Some(()) = events.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while events.try_recv().is_ok() {}
                Trigger::Files
            }
            _ = poll.tick() => Trigger::Files,
            Some(done) = requests.recv() => {
                tracing::info!("Reloading server configuration (system request)");
                let outcome = reloader.reload().map_err(|e| e.to_string());
                match &outcome {
                    Ok(()) => tracing::info!("Reloaded server configuration"),
                    Err(e) => tracing::error!("Failed to reload server configuration: {e}"),
                }
                let _ = done.send(outcome);
                continue;
            }
        };
        if reloader.on_trigger(trigger) {
            let dirs = directories(&reloader.files());
            if dirs != watch_dirs_of(watcher.as_ref()) {
                watcher = start_watcher(&dirs, events_tx.clone());
            }
        }
    }
}

/// A file-system watcher with the directories it watches.
struct DirWatcher {
    _inner: notify::RecommendedWatcher,
    dirs: Vec<PathBuf>,
}

fn watch_dirs_of(w: Option<&DirWatcher>) -> Vec<PathBuf> {
    w.map(|w| w.dirs.clone()).unwrap_or_default()
}

/// The distinct parent directories of `files`.
fn directories(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Starts watching `dirs`; on failure (no inotify, watch limit reached) logs and leaves
/// the poll to notice changes.
fn start_watcher(dirs: &[PathBuf], tx: mpsc::Sender<()>) -> Option<DirWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            // A full channel already holds a wake-up; dropping this one loses nothing.
            let _ = tx.try_send(());
        }
    };
    let mut inner = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("config file watching unavailable ({e}); polling every {POLL:?}");
            return None;
        }
    };
    for d in dirs {
        if let Err(e) = inner.watch(Path::new(d), notify::RecursiveMode::NonRecursive) {
            tracing::warn!("cannot watch {} ({e}); polling every {POLL:?}", d.display());
        }
    }
    Some(DirWatcher {
        _inner: inner,
        dirs: dirs.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_distinct_parents() {
        let d = directories(&[
            PathBuf::from("/etc/natrix/nats.conf"),
            PathBuf::from("/etc/natrix/users.conf"),
            PathBuf::from("local.conf"),
        ]);
        assert_eq!(d.len(), 2);
        assert!(d.contains(&PathBuf::from(".")) && d.contains(&PathBuf::from("/etc/natrix")));
    }

    #[test]
    fn fingerprint_sees_content_and_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.conf");
        std::fs::write(&f, "port: 1").expect("write");
        let files = vec![f.clone()];
        let a = fingerprint(&files);
        assert_eq!(a, fingerprint(&files));
        std::fs::write(&f, "port: 2").expect("write");
        let b = fingerprint(&files);
        assert_ne!(a, b);
        std::fs::remove_file(&f).expect("remove");
        assert_ne!(b, fingerprint(&files));
    }
}
