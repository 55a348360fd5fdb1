"""Creates many idle JetStream streams and durable consumers over the JetStream API.

    python bench/js_objects.py URL STREAMS CONSUMERS_PER_STREAM

Used by bench/run (run with nats-py's interpreter, NATRIX_PYTHON) to measure a server's
memory with 1,000 streams and 10,000 consumers that hold no messages. Plain requests on
`$JS.API.*` (no JetStream client layer), 32 in flight; every request has a timeout and
any error reply stops the run. Prints `created S streams, C consumers in T s`.
"""
import asyncio
import json
import sys
import time

import nats

IN_FLIGHT = 32


async def main(url, streams, per_stream):
    nc = await nats.connect(url, max_reconnect_attempts=0)
    sem = asyncio.Semaphore(IN_FLIGHT)

    async def call(subject, body):
        async with sem:
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=30)
        reply = json.loads(msg.data)
        if "error" in reply:
            raise RuntimeError(f"{subject}: {reply['error']}")

    start = time.monotonic()
    names = [f"idle{i}" for i in range(streams)]
    await asyncio.gather(*(
        call(f"$JS.API.STREAM.CREATE.{n}",
             {"name": n, "subjects": [f"idle.{i}.>"], "storage": "file",
              "num_replicas": 1})
        for i, n in enumerate(names)))
    await asyncio.gather(*(
        call(f"$JS.API.CONSUMER.CREATE.{n}.c{j}",
             {"stream_name": n,
              "config": {"durable_name": f"c{j}", "ack_policy": "explicit",
                         "deliver_policy": "all"}})
        for n in names for j in range(per_stream)))
    took = time.monotonic() - start
    await nc.close()
    print(f"created {streams} streams, {streams * per_stream} consumers in {took:.1f} s")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
