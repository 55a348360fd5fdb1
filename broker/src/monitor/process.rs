//! Process figures for `/varz` (`mem`, `cpu`, `cores`), read from `/proc` as
//! nats-server's `pse` package does on Linux. Elsewhere they read as zero.

use std::time::Instant;

use parking_lot::Mutex;

/// Resident set size in bytes.
pub fn rss_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> i64 {
    // SAFETY: sysconf takes no pointers and has no preconditions.
    #[allow(unsafe_code)]
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n } else { 4096 }
}

fn clock_ticks() -> f64 {
    #[allow(unsafe_code)]
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

/// User plus system CPU time of this process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 overall, utime 14 and stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// CPU use in percent of one core since the previous sample (since the first sample
/// on the first call), like `ps -o pcpu` over the scrape interval.
#[derive(Default)]
pub struct CpuSampler {
    last: Mutex<Option<(Instant, f64)>>,
}

impl CpuSampler {
    pub fn sample(&self) -> f64 {
        let Some(now_cpu) = cpu_seconds() else {
            return 0.0;
        };
        let now = Instant::now();
        let mut last = self.last.lock();
        let pct = match *last {
            Some((t, c)) => {
                let wall = now.duration_since(t).as_secs_f64();
                if wall > 0.0 {
                    (now_cpu - c) / wall * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        *last = Some((now, now_cpu));
        (pct * 10.0).round() / 10.0
    }
}

/// Logical CPUs available to the process.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        assert!(rss_bytes() > 0);
        assert!(cpu_seconds().is_some());
        let s = CpuSampler::default();
        assert!(s.sample() >= 0.0);
        assert!(s.sample() >= 0.0);
    }
}
