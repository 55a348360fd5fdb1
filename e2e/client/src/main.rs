//! The e2e tests' JetStream client (packed as the image `natrix-e2e-client`).
//!
//! - `js-pub`: publishes 1, 2, 3, ... to a stream, one at a time, each with `Nats-Msg-Id`
//!   equal to its number, and waits for each acknowledgement. A publish that fails or
//!   times out is sent again with the same id (the stream drops the second copy if the
//!   first was stored) until it is acknowledged, so every number below the last one
//!   printed as acknowledged is in the stream exactly once, unless the server lost it.
//! - `js-check`: reads the stream back by sequence and checks that 1..=N are each there
//!   once, in order.
//!
//! - `trace`: one message with a sampled `traceparent` through the broker, its trace
//!   continued by the receiver, both client spans exported over OTLP (`trace.rs`).
//!
//! All are bounded in time and print one summary line that the test scripts parse.

mod trace;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use async_nats::jetstream::{self, message::PublishMessage, stream::RawMessageErrorKind};
use clap::{Parser, Subcommand};
use futures::StreamExt as _;

#[derive(Parser)]
#[command(
    name = "natrix-e2e-client",
    about = "JetStream publisher and checker for the e2e tests"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish numbered messages with acknowledgements, retrying each until it is acked.
    JsPub(PubArgs),
    /// Check that a stream holds 1..=N exactly once each, in order.
    JsCheck(CheckArgs),
    /// Publish one traced message and continue its trace from the delivery.
    Trace(trace::TraceArgs),
}

#[derive(clap::Args)]
struct PubArgs {
    /// Server URL, e.g. nats://nats.ns.svc.cluster.local:4222.
    #[arg(long)]
    server: String,
    /// The stream the subject belongs to (each ack must come from it).
    #[arg(long)]
    stream: String,
    #[arg(long)]
    subject: String,
    /// Messages to publish (1..=count).
    #[arg(long)]
    count: u64,
    /// Pause between two messages, in milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Seconds after which the run ends, acknowledged or not.
    #[arg(long)]
    out_deadline: u64,
    /// How long one publish waits for its ack before it is sent again, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    ack_timeout_ms: u64,
    /// A core subject: a message on it ends the run after the message in flight is
    /// acked (as does SIGTERM).
    #[arg(long)]
    stop_subject: Option<String>,
}

#[derive(clap::Args)]
struct CheckArgs {
    #[arg(long)]
    server: String,
    #[arg(long)]
    stream: String,
    /// The publisher's acked count: 1..=expect must each be in the stream once, in order.
    #[arg(long)]
    expect: u64,
    /// Seconds the whole check may take.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let run = match cli.cmd {
        Cmd::JsPub(a) => js_pub(a).await,
        Cmd::JsCheck(a) => js_check(a).await,
        Cmd::Trace(a) => trace::trace(a).await,
    };
    match run {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn connect(server: &str, name: &str) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(|e| async move { println!("event at={:.3}: {e}", wall()) })
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// Wall-clock seconds since the epoch, for lining a line up with the test's own clock.
fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One publish of number `n`, waiting for its ack; `Ok(duplicate)`.
async fn publish_once(js: &jetstream::Context, a: &PubArgs, n: u64) -> Result<bool> {
    let id = n.to_string();
    let ack = js
        .send_publish(
            a.subject.clone(),
            PublishMessage::build()
                .payload(id.clone().into())
                .message_id(&id),
        )
        .await?
        .await?;
    if ack.stream != a.stream {
        bail!("acked by stream {:?}, not {:?}", ack.stream, a.stream);
    }
    Ok(ack.duplicate)
}

/// Returns whether the run ended cleanly (every message it started was acked).
async fn js_pub(a: PubArgs) -> Result<bool> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.out_deadline);
    let client = tokio::time::timeout(
        Duration::from_secs(a.out_deadline),
        connect(&a.server, "e2e-js-pub"),
    )
    .await
    .context("no connection before the deadline")??;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_millis(a.ack_timeout_ms));

    let stop = Arc::new(AtomicBool::new(false));
    if let Some(s) = &a.stop_subject {
        let mut sub = client.subscribe(s.clone()).await?;
        client.flush().await?;
        let stop = stop.clone();
        tokio::spawn(async move {
            if sub.next().await.is_some() {
                println!("stop requested");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    {
        let stop = stop.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::spawn(async move {
            if term.recv().await.is_some() {
                println!("SIGTERM");
                stop.store(true, Ordering::SeqCst);
            }
        });
    }

    let mut ticker = tokio::time::interval(Duration::from_millis(a.interval_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut acked, mut errors, mut duplicates) = (0u64, 0u64, 0u64);
    let mut longest = Duration::ZERO;
    let mut clean = true;
    let mut why = "count";
    'numbers: for n in 1..=a.count {
        ticker.tick().await;
        if stop.load(Ordering::SeqCst) {
            why = "stopped";
            break;
        }
        if Instant::now() >= deadline {
            why = "deadline";
            break;
        }
        let first = Instant::now();
        let first_wall = wall();
        let mut failures = 0u64;
        let mut last_error = String::new();
        loop {
            match publish_once(&js, &a, n).await {
                Ok(dup) => {
                    duplicates += u64::from(dup);
                    break;
                }
                Err(e) => {
                    errors += 1;
                    failures += 1;
                    last_error = format!("{e:#}");
                    if Instant::now() >= deadline {
                        println!(
                            "unacked n={n} at the deadline after {}ms at={first_wall:.3} ({failures} attempts; last error: {last_error})",
                            millis(first.elapsed())
                        );
                        why = "deadline";
                        clean = false;
                        break 'numbers;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let waited = first.elapsed();
        if failures > 0 {
            println!(
                "ack n={n} after {}ms at={first_wall:.3} ({failures} failed attempts; last error: {last_error})",
                millis(waited)
            );
        }
        longest = longest.max(waited);
        acked = n;
    }
    println!(
        "acked={acked} longest_unacked_ms={} errors={errors} duplicate_acks={duplicates} ended={why} seconds={:.1}",
        millis(longest),
        started.elapsed().as_secs_f64()
    );
    Ok(clean)
}

/// `a-b` ranges of the sorted numbers, at most `limit` of them.
fn ranges(nums: &[u64], limit: usize) -> String {
    if nums.is_empty() {
        return "none".into();
    }
    let mut out = String::new();
    let mut shown = 0;
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end + 1 {
            i += 1;
            end = nums[i];
        }
        i += 1;
        if shown == limit {
            out.push_str(",...");
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        shown += 1;
    }
    out
}

/// What the stream holds, by stream sequence: `Some(number)`, or `None` for a body that
/// is not a number.
type Read = Vec<(u64, Option<u64>)>;

async fn read_stream(js: &jetstream::Context, name: &str) -> Result<(Read, u64)> {
    let mut stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("stream {name}"))?;
    let state = stream.info().await?.state.clone();
    println!(
        "stream={name} messages={} first_seq={} last_seq={}",
        state.messages, state.first_sequence, state.last_sequence
    );
    let first = state.first_sequence.max(1);
    let last = state.last_sequence;
    let stream = &stream;
    let mut deleted = 0u64;
    let mut read = Read::new();
    let mut gets = futures::stream::iter(first..=last)
        .map(|seq| async move {
            let mut tries = 0;
            loop {
                match stream.get_raw_message(seq).await {
                    Ok(m) => {
                        let n = std::str::from_utf8(&m.payload)
                            .ok()
                            .and_then(|s| s.trim().parse::<u64>().ok());
                        return Ok(Some(n));
                    }
                    Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
                    Err(e) if tries < 5 => {
                        tries += 1;
                        eprintln!("get seq {seq}: {e}; again");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("get seq {seq}"))),
                }
            }
        })
        .buffered(32)
        .enumerate();
    while let Some((i, got)) = gets.next().await {
        match got? {
            Some(n) => read.push((first + i as u64, n)),
            None => deleted += 1,
        }
    }
    Ok((read, deleted))
}

/// Returns whether the stream holds exactly 1..=expect once each, in order (numbers above
/// `expect`, published but never acked, are allowed after them).
async fn js_check(a: CheckArgs) -> Result<bool> {
    let work = async {
        let client = connect(&a.server, "e2e-js-check").await?;
        let mut js = jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        read_stream(&js, &a.stream).await
    };
    let (read, deleted) = tokio::time::timeout(Duration::from_secs(a.deadline), work)
        .await
        .context("the check did not finish before its deadline")??;

    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let (mut garbage, mut out_of_order, mut extra) = (0u64, 0u64, 0u64);
    let mut prev = 0u64;
    for (seq, n) in &read {
        let Some(n) = *n else {
            garbage += 1;
            println!("seq {seq}: body is not a number");
            continue;
        };
        if n > a.expect {
            extra += 1;
        }
        if n <= prev && seen.get(&n).is_none_or(|c| *c == 0) {
            out_of_order += 1;
            println!("seq {seq}: number {n} after {prev}");
        }
        *seen.entry(n).or_default() += 1;
        prev = prev.max(n);
    }
    let missing: Vec<u64> = (1..=a.expect).filter(|n| !seen.contains_key(n)).collect();
    let dups: Vec<u64> = seen
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(n, _)| *n)
        .collect();
    let present = (1..=a.expect).filter(|n| seen.contains_key(n)).count();
    println!(
        "present={present} expected={} missing={} missing_count={} duplicates={} duplicate_count={} out_of_order={out_of_order} unacked_extra={extra} not_numbers={garbage} deleted_seqs={deleted}",
        a.expect,
        ranges(&missing, 20),
        missing.len(),
        ranges(&dups, 20),
        dups.len(),
    );
    Ok(missing.is_empty() && dups.is_empty() && out_of_order == 0 && garbage == 0)
}

#[cfg(test)]
mod tests {
    use super::ranges;

    #[test]
    fn ranges_merge_runs_and_stop_at_the_limit() {
        assert_eq!(ranges(&[], 5), "none");
        assert_eq!(ranges(&[3], 5), "3");
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10], 5), "1-3,7,9-10");
        assert_eq!(ranges(&[1, 3, 5], 2), "1,3,...");
    }
}
