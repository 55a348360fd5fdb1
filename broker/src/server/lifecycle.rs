//! Process-level lifecycle: the PID and ports files, Unix signals, and sending signals to
//! a running server (`--signal`), with nats-server's meanings:
//! HUP reloads, USR1 reopens the log, USR2 enters lame-duck mode, INT stops, TERM stops
//! (unless already in lame-duck mode, which then finishes on its own), QUIT stops.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use super::Server;

pub use natrix_config::SignalCommand;

/// The signal number for a `--signal` command (names and meanings are nats-server's).
fn signal_number(cmd: SignalCommand) -> libc::c_int {
    match cmd {
        SignalCommand::Stop => libc::SIGKILL,
        SignalCommand::Quit => libc::SIGINT,
        SignalCommand::Term => libc::SIGTERM,
        SignalCommand::Reopen => libc::SIGUSR1,
        SignalCommand::Reload => libc::SIGHUP,
        SignalCommand::Ldm => libc::SIGUSR2,
    }
}

/// Errors of `--signal`.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("unable to read pid file {path}: {source}")]
    PidFile {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid pid: {0}")]
    BadPid(String),
    #[error("no {0} processes running")]
    NotRunning(String),
    #[error("multiple {0} processes running:\n{1}")]
    Ambiguous(String, String),
    #[error("failed to signal pid {pid}: {source}")]
    Kill { pid: i32, source: std::io::Error },
}

/// Resolves `--signal`'s target (a pid, a pid file, or nothing: the one running
/// natrix-server) and sends the signal.
pub fn send_signal(cmd: SignalCommand, target: Option<&str>) -> Result<i32, SignalError> {
    let pid = match target {
        Some(t) if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() => t
            .parse::<i32>()
            .map_err(|_| SignalError::BadPid(t.to_owned()))?,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| SignalError::PidFile {
                path: path.to_owned(),
                source,
            })?;
            let text = text.trim();
            text.parse::<i32>()
                .map_err(|_| SignalError::BadPid(text.to_owned()))?
        }
        None => find_running()?,
    };
    let rc = kill(pid, signal_number(cmd));
    if rc != 0 {
        return Err(SignalError::Kill {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(pid)
}

#[allow(unsafe_code)]
fn kill(pid: i32, sig: libc::c_int) -> libc::c_int {
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) }
}

/// The pid of the single running natrix-server other than this process.
fn find_running() -> Result<i32, SignalError> {
    let me = std::process::id();
    let exe_name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "natrix-server".to_owned());
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm"))
                && comm.trim() == exe_name.chars().take(15).collect::<String>()
            {
                found.push(pid);
            }
        }
    }
    match found.as_slice() {
        [] => Err(SignalError::NotRunning(exe_name)),
        [pid] => i32::try_from(*pid).map_err(|_| SignalError::BadPid(pid.to_string())),
        many => Err(SignalError::Ambiguous(
            exe_name,
            many.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// Writes the PID file; removed again by [`cleanup_files`].
pub fn write_pid_file(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, std::process::id().to_string())
}

/// Writes `<dir>/<exe>_<pid>.ports` with the listen URLs, as nats-server does, so test
/// harnesses can start servers on random ports without races.
pub fn write_ports_file(dir: &Path, server: &Server) -> std::io::Result<PathBuf> {
    let exe = std::env::args()
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map_or_else(|| a.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "natrix-server".to_owned());
    let path = dir.join(format!("{exe}_{}.ports", std::process::id()));
    let nats = server
        .addr()
        .map_or_else(|| "127.0.0.1:0".to_owned(), super::reachable);
    let mut json = serde_json::json!({ "nats": [format!("nats://{nats}")] });
    if let Some(m) = server.http_addr() {
        let scheme = if server.http_is_tls() {
            "https"
        } else {
            "http"
        };
        json["monitoring"] = serde_json::json!([format!("{scheme}://{}", super::reachable(m))]);
    }
    if let Some(c) = server.cluster() {
        json["cluster"] = serde_json::json!([format!("nats://{}", super::reachable(c.addr))]);
    }
    if let Some(w) = server.websocket_addr() {
        json["websocket"] = serde_json::json!([format!("ws://{}", super::reachable(w))]);
    }
    // Write then rename so a reader never sees a half-written file.
    let tmp = path.with_extension("ports.tmp");
    std::fs::write(&tmp, json.to_string())?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

pub fn cleanup_files(files: &[PathBuf]) {
    for f in files {
        let _ = std::fs::remove_file(f);
    }
}

/// What the process should do after a signal.
pub enum SignalEvent {
    Reload,
    Reopen,
}

/// Handles signals until the server stops; `on_event` runs reloads and log reopens.
pub async fn handle_signals(
    server: Arc<Server>,
    mut on_event: impl FnMut(SignalEvent) + Send + 'static,
) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut quit = signal(SignalKind::quit())?;
    loop {
        tokio::select! {
            // In this order when several are pending: the lame-duck signal before a
            // SIGTERM that came with it (see `Server::begin_lame_duck`).
            biased;
            _ = hup.recv() => on_event(SignalEvent::Reload),
            _ = usr1.recv() => on_event(SignalEvent::Reopen),
            _ = usr2.recv() => {
                if server.begin_lame_duck() {
                    let s = server.clone();
                    tokio::spawn(async move { s.lame_duck_begun().await });
                }
            }
            _ = int.recv() => {
                tracing::info!("Trapped \"interrupt\" signal");
                let s = server.clone();
                tokio::spawn(async move { s.shutdown_gracefully().await });
            }
            _ = quit.recv() => {
                tracing::info!("Trapped \"quit\" signal");
                server.shutdown();
            }
            _ = term.recv() => {
                tracing::info!("Trapped \"terminated\" signal");
                if !server.is_lame_duck() {
                    let s = server.clone();
                    tokio::spawn(async move { s.shutdown_gracefully().await });
                }
            }
            () = server.wait_shutdown() => return Ok(()),
        }
    }
}

/// Keeps the allocator from handing freed memory back to the kernel at once.
///
/// glibc's malloc returns the top of an arena to the kernel as soon as more than
/// 128 KiB of it is free (and serves anything over its mmap threshold, which starts at
/// 128 KiB, with a fresh mapping). A broker frees and reallocates read and write buffers
/// of 64 KiB to a few MiB all the time, so each would come back as fresh pages: profiles
/// of 16 KiB pub/sub showed a tenth of the server's time in page faults and page
/// clearing. Up to 16 MiB of free memory per arena is kept instead, and allocations up to
/// 4 MiB (a 1 MiB message with its buffer) come from the arenas. Other allocators are
/// left alone.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
        mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt(param: libc::c_int, value: libc::c_int) {
    // SAFETY: mallopt(3) takes two integers and only changes malloc's tunables (under
    // the arenas' own locks); main calls it first, before any other thread exists.
    if unsafe { libc::mallopt(param, value) } != 1 {
        tracing::debug!(param, value, "mallopt refused");
    }
}
