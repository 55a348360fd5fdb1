#!/usr/bin/env python3
"""MQTT throughput of natrix-server and the reference nats-server, side by side.

    bench/mqtt.py [--rounds 3] [--count 50000] [--conns 3000]

One MQTT publisher and one subscriber on loopback (`mqtt-bench` from bench/tools, built
here in release), QoS 0, 1 and 2, 128-byte messages, at most 256 QoS 1/2 messages in
flight. Both servers run with JetStream (where MQTT keeps QoS 1/2 messages) and are
measured alternately in the same run; nats-server at its defaults (fsync every 2 min) and
with `sync_interval: always` (an fsync per write, natrix's durability). Prints a markdown
table of medians (messages per second received by the subscriber) and ratios, then new
MQTT connections per second (`mqtt-bench --connections`: 4 at once, each a clean-session
CONNECT answered by CONNACK, then closed), replaces the
"MQTT" section of bench/RESULTS.md and writes bench/results/<date>-mqtt.md.
"""
import argparse, datetime, json, os, socket, statistics, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("NATRIX_CACHE", Path.home() / ".cache/natrix"))
REF = os.environ.get("NATS_SERVER_BIN", str(CACHE / "bin/nats-server"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
NATRIX = os.environ.get("NATRIX_SERVER_BIN", str(TARGET / "release/natrix-server"))
TOOL = os.environ.get("MQTT_BENCH_BIN", str(TARGET / "release/mqtt-bench"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, extra_js=""):
        self.dir = tempfile.TemporaryDirectory()
        self.mqtt = free_port()
        conf = Path(self.dir.name) / "s.conf"
        conf.write_text(
            f"server_name: bench\nport: {free_port()}\n"
            f"jetstream {{\n  store_dir: {json.dumps(self.dir.name + '/js')}\n  {extra_js}\n}}\n"
            f"mqtt {{ host: 127.0.0.1, port: {self.mqtt} }}\n")
        self.p = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.mqtt), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(f"{binary} did not listen for MQTT")
        time.sleep(0.5)  # JetStream up

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.dir.cleanup()


def measure(binary, extra_js, qos, count):
    s = Server(binary, extra_js)
    try:
        out = subprocess.run([TOOL, "--port", str(s.mqtt), "--count", str(count), "--qos",
                              str(qos), "--size", "128", "--window", "256",
                              "--time-limit", "180"],
                             capture_output=True, text=True, timeout=200)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)["msgs_per_sec"]
    finally:
        s.stop()


def measure_conns(binary, extra_js, count):
    """(connections/s, p99 µs of CONNECT to CONNACK), or None."""
    s = Server(binary, extra_js)
    try:
        out = subprocess.run([TOOL, "--port", str(s.mqtt), "--connections", str(count),
                              "--concurrency", "4", "--time-limit", "120"],
                             capture_output=True, text=True, timeout=150)
        if out.returncode != 0:
            return None
        r = json.loads(out.stdout)
        return r["conns_per_sec"], r["p99_us"]
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--conns", type=int, default=3000)
    args = ap.parse_args()
    if "NATRIX_SERVER_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "natrix-broker",
                        "--bin", "natrix-server"], cwd=ROOT, check=True)
    if "MQTT_BENCH_BIN" not in os.environ:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "natrix-bench-tools",
                        "--bin", "mqtt-bench"], cwd=ROOT, check=True)
    variants = [("natrix", NATRIX, ""), ("nats-server", REF, ""),
                ("nats-server always", REF, "sync_interval: always")]
    rows = []
    for qos in (0, 1, 2):
        got = {name: [] for name, _, _ in variants}
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else list(reversed(variants))
            for name, binary, extra in order:
                v = measure(binary, extra, qos, args.count)
                if v is not None:
                    got[name].append(v)
        med = {k: statistics.median(v) if v else None for k, v in got.items()}
        rows.append((qos, med))
        print(f"QoS {qos}: {med}", flush=True)

    conns = {name: [] for name, _, _ in variants}
    for r in range(args.rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for name, binary, extra in order:
            v = measure_conns(binary, extra, args.conns)
            if v is not None:
                conns[name].append(v)
    cmed = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
            if v else (None, None) for k, v in conns.items()}
    print(f"connections: {cmed}", flush=True)

    def fmt(v):
        return f"{v:,.0f}" if v else "failed"

    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "-"

    lines = [
        "## MQTT",
        "",
        f"`bench/mqtt.py` ({args.rounds} rounds, medians; {datetime.date.today()}): one MQTT "
        f"3.1.1 publisher and one subscriber on loopback, {args.count:,} messages of 128 B, "
        "at most 256 QoS 1/2 messages in flight (`mqtt-bench`, bench/tools). Messages per "
        "second received by the subscriber. natrix acknowledges a QoS 1/2 message after "
        "its store's fsync; nats-server at its defaults fsyncs every 2 min, with "
        "`sync_interval: always` on every write.",
        "",
        "| row | natrix | nats-server | nats-server always | natrix / nats-server | natrix / always |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for qos, m in rows:
        n, d, a = m["natrix"], m["nats-server"], m["nats-server always"]
        lines.append(f"| MQTT QoS {qos} pub/sub 1:1 | {fmt(n)} | {fmt(d)} | {fmt(a)} | "
                     f"{ratio(n, d)} | {ratio(n, a)} |")
    n, d, a = (cmed[k][0] for k in ("natrix", "nats-server", "nats-server always"))
    lines.append(f"| MQTT connections/s (clean session, 4 at once, {args.conns:,}) | {fmt(n)} | "
                 f"{fmt(d)} | {fmt(a)} | {ratio(n, d)} | {ratio(n, a)} |")
    n, d, a = (cmed[k][1] for k in ("natrix", "nats-server", "nats-server always"))
    lines.append(f"| CONNECT to CONNACK p99, µs | {fmt(n)} | {fmt(d)} | {fmt(a)} | "
                 f"{ratio(n, d)} | {ratio(n, a)} |")
    table = "\n".join(lines) + "\n"
    print(table)
    (ROOT / "bench/results").mkdir(exist_ok=True)
    (ROOT / f"bench/results/{datetime.date.today()}-mqtt.md").write_text(table)
    res = ROOT / "bench/RESULTS.md"
    text = res.read_text() if res.exists() else "# Benchmark results\n"
    start = text.find("\n## MQTT\n")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start + 1] + table + (text[end:] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + table
    res.write_text(text)


if __name__ == "__main__":
    main()
