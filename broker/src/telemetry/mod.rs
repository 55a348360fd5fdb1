//! Logging in nats-server's format (`[pid] 2006/01/02 15:04:05.000000 [INF] message`),
//! to stderr or to a log file that `SIGUSR1` / `--signal reopen` reopens (for logrotate),
//! with nats-server's levels: `-D` adds debug, `-V` adds protocol traces.

pub mod otlp;
pub mod traceparent;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, prelude::*};

/// Logging settings, from the config file and `-D/-V/-T/-l`.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub debug: bool,
    pub trace: bool,
    /// Timestamps on each line (`logtime`, on by default in nats-server).
    pub logtime: bool,
    pub utc: bool,
    pub file: Option<PathBuf>,
    /// JSON lines instead of the nats-server text format.
    pub json: bool,
}

/// The nats-server line format.
struct NatsFormat {
    logtime: bool,
    pid: u32,
}

fn level_tag(level: Level) -> &'static str {
    match level {
        Level::ERROR => "[ERR]",
        Level::WARN => "[WRN]",
        Level::INFO => "[INF]",
        Level::DEBUG => "[DBG]",
        Level::TRACE => "[TRC]",
    }
}

/// `2006/01/02 15:04:05.000000` in UTC, without a date crate.
fn timestamp(now: SystemTime) -> String {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = crate::monitor::format::civil_from_days(days);
    format!(
        "{year:04}/{month:02}/{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

impl<S, N> FormatEvent<S, N> for NatsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "[{}] ", self.pid)?;
        if self.logtime {
            write!(writer, "{} ", timestamp(SystemTime::now()))?;
        }
        write!(writer, "{} ", level_tag(*event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// A log file that can be reopened in place.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: PathBuf) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Reopens the file at the same path (after a rotation moved the old one away).
    pub fn reopen(&self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        *self.file.lock() = file;
        Ok(())
    }
}

/// Writer handed to the subscriber for each event.
pub struct LogFileWriter(Arc<Mutex<File>>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.file.clone())
    }
}

/// Installs the global subscriber. Returns the log file handle when logging to a file,
/// for reopening.
pub fn init_logging(cfg: &LogConfig) -> io::Result<Option<LogFile>> {
    let level = if cfg.trace {
        "trace"
    } else if cfg.debug {
        "debug"
    } else {
        "info"
    };
    // RUST_LOG overrides the flags, for debugging natrix itself.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "natrix_broker={level},natrix_config={level},natrix_server={level},natrix_jetstream={level},natrix_raft={level},warn"
        ))
    });
    let fmt_event = NatsFormat {
        logtime: cfg.logtime,
        pid: std::process::id(),
    };
    let file = cfg.file.clone().map(LogFile::open).transpose()?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match (&file, cfg.json) {
        (Some(f), true) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(f.clone()),
            )
            .try_init(),
        (Some(f), false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(fmt_event)
                    .with_writer(f.clone()),
            )
            .try_init(),
        (None, true) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(io::stderr),
            )
            .try_init(),
        (None, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(fmt_event)
                    .with_writer(io::stderr),
            )
            .try_init(),
    };
    // A second init (tests embedding several servers) keeps the first subscriber.
    let _ = result;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_format() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(timestamp(t), "2023/11/14 22:13:20.123456");
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00.000000");
    }
}
