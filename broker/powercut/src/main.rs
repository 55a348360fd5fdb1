//! `natrix-powercut <backing-dir> <mountpoint> [--control <fifo>]`: mounts the power-cut
//! filesystem in the foreground (see the crate documentation). Prints `ready` once mounted;
//! `SIGUSR1` (or the line `cut` written to the control FIFO) cuts the power and prints
//! `cut: dropped N bytes in M files`; `SIGTERM`/`SIGINT` unmount and exit.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use natrix_powercut::Mount;
use nix::sys::signal::{SigSet, Signal};

fn usage() -> ExitCode {
    eprintln!("usage: natrix-powercut <backing-dir> <mountpoint> [--control <fifo>]");
    ExitCode::from(2)
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn cut(mount: &Mount) {
    let r = mount.cut();
    say(&format!(
        "cut: dropped {} bytes in {} files",
        r.bytes, r.files
    ));
}

/// Serves the control FIFO: one command per line (`cut`, `sync`, `pending`). Reopened after each
/// writer goes away; ends with the process.
fn control(path: PathBuf, mount: Arc<Mount>) {
    loop {
        let Ok(f) = std::fs::File::open(&path) else {
            eprintln!(
                "natrix-powercut: cannot open control FIFO {}",
                path.display()
            );
            return;
        };
        for line in BufReader::new(f).lines() {
            let Ok(line) = line else { break };
            match line.trim() {
                "cut" => cut(&mount),
                "sync" => {
                    let r = mount.sync_all();
                    say(&format!(
                        "sync: wrote {} bytes in {} files",
                        r.bytes, r.files
                    ));
                }
                "pending" => {
                    let r = mount.pending();
                    say(&format!("pending: {} bytes in {} files", r.bytes, r.files));
                }
                "" => {}
                other => eprintln!("natrix-powercut: unknown control command {other:?}"),
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (backing, mountpoint, fifo) = match args.as_slice() {
        [b, m] => (b, m, None),
        [b, m, flag, f] if flag == "--control" => (b, m, Some(PathBuf::from(f))),
        _ => return usage(),
    };
    // Block the signals in every thread (threads inherit the mask), then take them
    // synchronously in this one.
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGUSR1,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("natrix-powercut: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(fifo) = &fifo
        && !fifo.exists()
        && let Err(e) = nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
    {
        eprintln!("natrix-powercut: mkfifo {}: {e}", fifo.display());
        return ExitCode::FAILURE;
    }
    let mount = match Mount::new(Path::new(backing), Path::new(mountpoint)) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("natrix-powercut: mount {mountpoint}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(fifo) = fifo {
        let m = mount.clone();
        std::thread::spawn(move || control(fifo, m));
    }
    say("ready");
    loop {
        match signals.wait() {
            Ok(Signal::SIGUSR1) => cut(&mount),
            Ok(_) => break,
            Err(e) => {
                eprintln!("natrix-powercut: waiting for signals: {e}");
                break;
            }
        }
    }
    if let Err(e) = mount.unmount() {
        eprintln!("natrix-powercut: unmount (detached lazily): {e}");
    }
    ExitCode::SUCCESS
}
