"""Publishes to a JetStream stream with acknowledgements in a loop and times a failover.

    python bench/js_failover.py URL STREAM SUBJECT

Used by bench/run (run with nats-py's interpreter, NATRIX_PYTHON) for the clustered
JetStream failover rows. Publishes 16 B messages to SUBJECT one at a time as plain
requests, each waiting for its acknowledgement (a reply with `seq` and no `error`) for at
most 250 ms; an error, a no-responders status or a timeout is retried after 5 ms. Prints
`ready` after the first acknowledgement.

bench/run then kills the stream's leader and writes one line, `T NAME`: T the
time.monotonic() just before the kill (CLOCK_MONOTONIC is one clock for every process on
the machine) and NAME the killed leader's server name. From then on `$JS.API.STREAM.INFO`
is asked every 10 ms (250 ms timeout) until an answer names a leader other than NAME.
Prints one JSON line: `ack`, seconds from T to the first acknowledgement of a publish sent
at or after T; `leader`, seconds from T to the STREAM.INFO answer naming another leader;
`new_leader`, that name; `failed`, the publishes after T that got an error or no answer.
Gives up (exit status 1) when either has not happened 60 s after T.
"""
import asyncio
import collections
import json
import sys
import time

import nats

TIMEOUT = 0.25
RETRY = 0.005
POLL = 0.01


async def main(url, stream, subject):
    nc = await nats.connect(url, max_reconnect_attempts=0)
    acks = collections.deque(maxlen=100_000)  # (sent, acknowledged), monotonic seconds
    state = {"t0": None, "first": None, "failed": 0}
    ready = asyncio.Event()
    done = asyncio.Event()
    payload = b"x" * 16

    async def publish():
        while not done.is_set():
            sent = time.monotonic()
            try:
                msg = await nc.request(subject, payload, timeout=TIMEOUT)
                reply = json.loads(msg.data)
                ok = "error" not in reply and "seq" in reply
            except asyncio.CancelledError:
                raise
            except Exception:  # timeout, no responders, a reply that is not JSON
                ok = False
            if ok:
                acked = time.monotonic()
                acks.append((sent, acked))
                ready.set()
                t0 = state["t0"]
                if t0 is not None and sent >= t0 and state["first"] is None:
                    state["first"] = acked
            else:
                if state["t0"] is not None:
                    state["failed"] += 1
                await asyncio.sleep(RETRY)

    task = asyncio.create_task(publish())
    try:
        await asyncio.wait_for(ready.wait(), 30)
    except asyncio.TimeoutError:
        sys.exit("no acknowledged publish in 30 s")
    print("ready", flush=True)

    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0_text, old = line.split()
    t0 = float(t0_text)
    state["t0"] = t0
    # Acknowledgements that came before the line did.
    early = [acked for sent, acked in list(acks) if sent >= t0]
    if early and (state["first"] is None or early[0] < state["first"]):
        state["first"] = early[0]

    deadline = t0 + 60
    leader_at = new = None
    while leader_at is None and time.monotonic() < deadline:
        try:
            msg = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=TIMEOUT)
            info = json.loads(msg.data)
            name = (info.get("cluster") or {}).get("leader")
            if "error" not in info and name and name != old:
                leader_at, new = time.monotonic(), name
                break
        except Exception:
            pass
        await asyncio.sleep(POLL)
    while state["first"] is None and time.monotonic() < deadline:
        await asyncio.sleep(POLL)
    done.set()
    await task
    await nc.close()
    if leader_at is None or state["first"] is None:
        sys.exit(f"after 60 s: new leader {new}, acknowledged publish "
                 f"{state['first'] is not None}, {state['failed']} failed")
    print(json.dumps({"ack": state["first"] - t0, "leader": leader_at - t0,
                      "new_leader": new, "failed": state["failed"]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
