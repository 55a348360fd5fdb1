//! `mqtt-bench`: MQTT publish/subscribe throughput at QoS 0, 1 or 2, for `bench/mqtt.py`.
//!
//! One subscriber connection subscribes to a topic at the given QoS and acknowledges what
//! it receives (PUBACK; PUBREC then PUBCOMP on PUBREL); one publisher connection then sends
//! `--count` messages of `--size` bytes, keeping at most `--window` QoS 1/2 messages
//! unacknowledged (MQTT clients bound their in-flight messages the same way). The rate is
//! messages received by the subscriber per second, from the first publish to the last
//! delivery; the publisher's own completion rate is printed beside it. Packets are encoded
//! and decoded with `natrix_mqtt`'s codec. Bounded: the run gives up after `--time-limit`.
//! The result is one JSON line on stdout.
//!
//! With `--connections N` it measures connection set-up instead: `--concurrency` workers
//! each connect, send a clean-session CONNECT with a client ID of its own, wait for the
//! CONNACK and close (a reset, no `TIME_WAIT`), until N connections were made or the time
//! limit passed: connections per second, and the CONNECT-to-CONNACK latency.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use natrix_mqtt::{
    Connect, Decoder, MqttString, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS,
    Subscribe, SubscribeFilter, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Parser)]
#[command(
    name = "mqtt-bench",
    about = "MQTT pub/sub throughput at QoS 0, 1 or 2"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    #[arg(long, default_value_t = 128)]
    size: usize,
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// The subscription's QoS (default: `--qos`).
    #[arg(long)]
    sub_qos: Option<u8>,
    /// Unacknowledged QoS 1/2 messages the publisher keeps in flight.
    #[arg(long, default_value_t = 256)]
    window: u16,
    /// Seconds after which the run stops and reports an error.
    #[arg(long, default_value_t = 120)]
    time_limit: u64,
    /// Measure connections per second: make this many, then report.
    #[arg(long)]
    connections: Option<u64>,
    /// Connections made at once in `--connections` mode.
    #[arg(long, default_value_t = 4)]
    concurrency: u64,
}

const V3: ProtocolVersion = ProtocolVersion::V311;

fn mstr(s: &str) -> Result<MqttString> {
    MqttString::try_from_bytes(Bytes::copy_from_slice(s.as_bytes()))
        .map_err(|e| anyhow::anyhow!("{e:?}"))
}

struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    dec: Decoder,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    async fn connect(host: &str, port: u16, id: &str) -> Result<Self> {
        let s = TcpStream::connect((host, port)).await.context("connect")?;
        s.set_nodelay(true)?;
        let (rd, wr) = s.into_split();
        let mut c = Conn {
            rd,
            wr,
            dec: Decoder::with_version(V3),
            buf: BytesMut::with_capacity(64 << 10),
            out: BytesMut::new(),
        };
        c.queue(&Packet::Connect(Box::new(Connect {
            protocol_version: V3,
            clean_start: true,
            keep_alive: 60,
            client_id: mstr(id)?,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })))?;
        c.flush().await?;
        match c.next().await? {
            Packet::ConnAck(a) if a.reason == natrix_mqtt::ReasonCode::Success => Ok(c),
            other => bail!("CONNACK expected, got {other:?}"),
        }
    }

    fn queue(&mut self, p: &Packet) -> Result<()> {
        p.encode(V3, &mut self.out)
            .map_err(|e| anyhow::anyhow!("encode: {e:?}"))
    }

    async fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            let out = self.out.split();
            self.wr.write_all(&out).await?;
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Packet> {
        loop {
            if let Some(p) = self
                .dec
                .decode(&mut self.buf)
                .map_err(|e| anyhow::anyhow!("decode: {e}"))?
            {
                return Ok(p);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                bail!("connection closed");
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let limit = Duration::from_secs(args.time_limit);
    if let Some(n) = args.connections {
        return rt.block_on(connections(
            args.host,
            args.port,
            n,
            args.concurrency,
            limit,
        ));
    }
    rt.block_on(async {
        tokio::time::timeout(limit, run(args))
            .await
            .map_err(|_| anyhow::anyhow!("time limit reached"))?
    })
}

/// `--connections`: how fast new MQTT sessions are set up.
async fn connections(host: String, port: u16, n: u64, workers: u64, limit: Duration) -> Result<()> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + limit;
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (next, host) = (next.clone(), host.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n || Instant::now() > deadline {
                    break;
                }
                let t0 = Instant::now();
                let c = tokio::time::timeout(
                    Duration::from_secs(10),
                    Conn::connect(
                        &host,
                        port,
                        &format!("bench-conn-{}-{i}", std::process::id()),
                    ),
                )
                .await
                .map_err(|_| anyhow::anyhow!("connection {i}: no CONNACK within 10 s"))??;
                latencies.push(t0.elapsed());
                let sock = c.rd.reunite(c.wr).context("reunite")?;
                sock.set_zero_linger()?;
                drop(sock);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    if all.is_empty() {
        bail!("no connection made");
    }
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{}",
        serde_json::json!({
            "connections": all.len(), "seconds": secs,
            "conns_per_sec": (all.len() as f64 / secs).round(),
            "p50_us": pct(0.5).round(), "p99_us": pct(0.99).round(),
        })
    );
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let qos = QoS::from_u8(args.qos).context("qos must be 0, 1 or 2")?;
    let topic = format!("bench/{}", std::process::id());
    let mut sub = Conn::connect(
        &args.host,
        args.port,
        &format!("bench-sub-{}", std::process::id()),
    )
    .await?;
    sub.queue(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![SubscribeFilter {
            filter: mstr(&topic)?,
            options: SubscriptionOptions {
                qos: QoS::from_u8(args.sub_qos.unwrap_or(args.qos)).context("sub-qos")?,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    }))?;
    sub.flush().await?;
    match sub.next().await? {
        Packet::SubAck(a) if !a.reasons.iter().any(|r| r.is_error()) => {}
        other => bail!("SUBACK expected, got {other:?}"),
    }
    let count = args.count;
    let receiver = tokio::spawn(async move {
        let mut got = 0u64;
        let mut last = Instant::now();
        while got < count {
            match sub.next().await? {
                Packet::Publish(p) => {
                    got += 1;
                    last = Instant::now();
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => {
                            sub.queue(&Packet::PubAck(PubResponse::new(p.packet_id)))?
                        }
                        QoS::ExactlyOnce => {
                            sub.queue(&Packet::PubRec(PubResponse::new(p.packet_id)))?
                        }
                    }
                }
                Packet::PubRel(r) => sub.queue(&Packet::PubComp(PubResponse::new(r.packet_id)))?,
                _ => {}
            }
            if sub.buf.is_empty() {
                sub.flush().await?;
            }
        }
        sub.flush().await?;
        anyhow::Ok(last)
    });

    let mut publ = Conn::connect(
        &args.host,
        args.port,
        &format!("bench-pub-{}", std::process::id()),
    )
    .await?;
    let payload = Bytes::from(vec![b'x'; args.size]);
    let window = u64::from(args.window.max(1));
    let start = Instant::now();
    let (mut sent, mut done, mut pid) = (0u64, 0u64, 0u16);
    while done < count {
        while sent < count && (qos == QoS::AtMostOnce || sent - done < window) {
            pid = pid % args.window.max(1) + 1;
            publ.queue(&Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic: mstr(&topic)?,
                packet_id: if qos == QoS::AtMostOnce { 0 } else { pid },
                properties: Properties::default(),
                payload: payload.clone(),
            }))?;
            sent += 1;
            if qos == QoS::AtMostOnce {
                done += 1;
            }
            if publ.out.len() > 64 << 10 {
                publ.flush().await?;
            }
        }
        publ.flush().await?;
        if done >= count {
            break;
        }
        match publ.next().await? {
            Packet::PubAck(_) | Packet::PubComp(_) => done += 1,
            Packet::PubRec(r) => {
                publ.queue(&Packet::PubRel(PubResponse::new(r.packet_id)))?;
            }
            _ => {}
        }
    }
    let published = start.elapsed();
    let last = receiver.await??;
    let elapsed = last.duration_since(start).max(published);
    let rate = count as f64 / elapsed.as_secs_f64();
    let pub_rate = count as f64 / published.as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "qos": args.qos, "count": count, "size": args.size, "window": args.window,
            "msgs_per_sec": rate.round(), "publisher_msgs_per_sec": pub_rate.round(),
            "seconds": elapsed.as_secs_f64(),
        })
    );
    Ok(())
}
