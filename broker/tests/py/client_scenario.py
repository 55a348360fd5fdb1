"""nats-py against a running server: pub/sub with wildcards, queue groups, request/reply,
headers, no-responders, and server-side permission errors. Exits non-zero on any failure.

    python client_scenario.py nats://127.0.0.1:4222
"""
import asyncio
import sys

import nats
from nats.errors import NoRespondersError


async def main(url: str) -> None:
    errors = []

    async def on_error(e):
        errors.append(e)

    nc = await nats.connect(url, user="app", password="secret", error_cb=on_error,
                            max_reconnect_attempts=0)
    got = []

    async def collect(msg):
        got.append(msg)
    sub = await nc.subscribe("orders.*", cb=collect)
    q_counts = {"a": 0, "b": 0}

    async def member(name):
        async def handler(msg):
            q_counts[name] += 1
        await nc.subscribe("work", queue="workers", cb=handler)

    await member("a")
    await member("b")

    async def responder(msg):
        await msg.respond(b"pong:" + msg.data + b":" + msg.headers.get("X-Trace", "").encode())
    await nc.subscribe("svc.ping", cb=responder)
    await nc.flush()

    await nc.publish("orders.new", b"o1", headers={"X-Kind": "new"})
    for i in range(200):
        await nc.publish("work", str(i).encode())
    reply = await nc.request("svc.ping", b"hi", timeout=2, headers={"X-Trace": "t1"})
    assert reply.data == b"pong:hi:t1", reply.data
    try:
        await nc.request("nobody.home", b"?", timeout=2)
        raise AssertionError("expected no responders")
    except NoRespondersError:
        pass
    await nc.flush()
    await asyncio.sleep(0.3)
    assert len(got) == 1 and got[0].subject == "orders.new", got
    assert got[0].headers and got[0].headers.get("X-Kind") == "new", got[0].headers
    assert sum(q_counts.values()) == 200, q_counts
    assert min(q_counts.values()) > 50, q_counts

    # Publishing outside the user's permissions: nats-server's -ERR, connection kept.
    await nc.publish("secret.stuff", b"x")
    await nc.flush()
    await asyncio.sleep(0.3)
    assert any("permissions violation for publish" in str(e).lower() for e in errors), errors
    assert nc.is_connected
    await sub.unsubscribe()
    await nc.drain()
    print("python scenario ok")


asyncio.run(main(sys.argv[1]))
