"""JetStream through nats-py against a running server: streams (publish, de-duplication,
expected-sequence headers, get/delete/purge, update), pull consumers (fetch, ack, nak,
term, in_progress, redelivery, max_deliver), push consumers (durable, ephemeral,
ordered), key-value buckets and object stores.

Prints one JSON document: a list of [section, step, outcome] without ids or times, so
the transcripts of two servers can be compared. Every client call has a timeout; a
section that crashes records the exception and the next section still runs.

    python js_scenarios.py nats://127.0.0.1:4222
"""
import asyncio
import base64
import hashlib
import json
import sys

import nats
from nats.js import api
from nats.js.errors import APIError, NoKeysError

T = 5  # seconds for every client call
transcript = []
section = ""


def rec(step, value):
    transcript.append([section, step, value])


def err(e):
    """An exception as the test compares it: its class and the server's error fields."""
    if isinstance(e, APIError):
        return {
            "error": type(e).__name__,
            "code": getattr(e, "code", None),
            "err_code": getattr(e, "err_code", None),
            "description": getattr(e, "description", None),
        }
    if isinstance(e, asyncio.TimeoutError) or isinstance(e, nats.errors.TimeoutError):
        return {"error": "timeout"}
    if isinstance(e, (AttributeError, KeyError, TypeError, AssertionError)):
        return {"error": type(e).__name__, "text": str(e)}  # a fault of this script
    # The class alone: some messages embed the message (reply subjects, times).
    return {"error": type(e).__name__}


async def w(coro, timeout=T):
    return await asyncio.wait_for(coro, timeout)


async def attempt(step, coro, shape=lambda r: r, timeout=T):
    """Records `shape(result)` of a call, or its error."""
    try:
        r = await w(coro, timeout)
        rec(step, shape(r))
        return r
    except Exception as e:  # noqa: BLE001 - every outcome is recorded
        rec(step, err(e))
        return None


def ack_shape(a):
    return {"stream": a.stream, "seq": a.seq, "duplicate": bool(a.duplicate)}


def stream_config(c):
    return {
        "name": c.name,
        "description": c.description,
        "subjects": c.subjects,
        "retention": str(c.retention),
        "storage": str(c.storage),
        "discard": str(c.discard),
        "max_consumers": c.max_consumers,
        "max_msgs": c.max_msgs,
        "max_bytes": c.max_bytes,
        "max_age": c.max_age,
        "max_msgs_per_subject": c.max_msgs_per_subject,
        "max_msg_size": c.max_msg_size,
        "num_replicas": c.num_replicas,
        "duplicate_window": c.duplicate_window,
        "allow_direct": c.allow_direct,
        "mirror_direct": c.mirror_direct,
        "allow_rollup_hdrs": c.allow_rollup_hdrs,
        "deny_delete": c.deny_delete,
        "deny_purge": c.deny_purge,
        "sealed": c.sealed,
        "no_ack": c.no_ack,
        "metadata": sorted((c.metadata or {}).keys()),
    }


def stream_state(s):
    return {
        "messages": s.messages,
        "bytes": s.bytes,
        "first_seq": s.first_seq,
        "last_seq": s.last_seq,
        "consumer_count": s.consumer_count,
        "num_deleted": s.num_deleted,
        "deleted": s.deleted,
    }


def consumer_config(c, ephemeral=False):
    return {
        "name": None if ephemeral else c.name,
        "durable_name": c.durable_name,
        "deliver_policy": str(c.deliver_policy),
        "ack_policy": str(c.ack_policy),
        "ack_wait": c.ack_wait,
        "max_deliver": c.max_deliver,
        "filter_subject": c.filter_subject,
        "filter_subjects": c.filter_subjects,
        "replay_policy": str(c.replay_policy),
        "max_waiting": c.max_waiting,
        "max_ack_pending": c.max_ack_pending,
        "flow_control": c.flow_control,
        "idle_heartbeat": c.idle_heartbeat,
        "headers_only": c.headers_only,
        "deliver_subject": c.deliver_subject is not None,
        "inactive_threshold": c.inactive_threshold,
        "num_replicas": c.num_replicas,
        "mem_storage": c.mem_storage,
        "opt_start_seq": c.opt_start_seq,
        "metadata": sorted((c.metadata or {}).keys()),
    }


def consumer_state(i):
    return {
        "stream_name": i.stream_name,
        "delivered": [i.delivered.consumer_seq, i.delivered.stream_seq],
        "ack_floor": [i.ack_floor.consumer_seq, i.ack_floor.stream_seq],
        "num_ack_pending": i.num_ack_pending,
        "num_redelivered": i.num_redelivered,
        "num_waiting": i.num_waiting,
        "num_pending": i.num_pending,
        "push_bound": i.push_bound,
    }


def msg_shape(m):
    md = m.metadata
    return {
        "subject": m.subject,
        "data": m.data.decode(errors="replace"),
        "stream_seq": md.sequence.stream,
        "consumer_seq": md.sequence.consumer,
        "delivered": md.num_delivered,
        "pending": md.num_pending,
    }


def headers_of(m):
    h = m.headers or {}
    return {k: "<time>" if k == "Nats-Time-Stamp" else v for k, v in sorted(h.items())}


async def streams(js, jsm):
    global section
    section = "streams"
    info = await attempt(
        "add ORDERS",
        jsm.add_stream(name="ORDERS", subjects=["orders.>"], max_msgs_per_subject=3, allow_direct=True),
        lambda i: {"config": stream_config(i.config), "state": stream_state(i.state)},
    )
    assert info is not None, "stream add failed"
    for i in range(5):
        await attempt(f"publish {i}", js.publish(f"orders.{i % 2}", f"o{i}".encode()), ack_shape)
    for n in range(2):
        await attempt(
            f"publish msg-id m-1 #{n}",
            js.publish("orders.x", b"dedupe", headers={"Nats-Msg-Id": "m-1", "X-Extra": "e"}),
            ack_shape,
        )
    for expected in ["6", "3"]:
        await attempt(
            f"expected last sequence {expected}",
            js.publish("orders.y", b"exp", headers={"Nats-Expected-Last-Sequence": expected}),
            ack_shape,
        )
    await attempt(
        "expected last subject sequence 1 on orders.0",
        js.publish("orders.0", b"subj", headers={"Nats-Expected-Last-Subject-Sequence": "1"}),
        ack_shape,
    )
    await attempt(
        "expected last subject sequence 5 on orders.0",
        js.publish("orders.0", b"subj", headers={"Nats-Expected-Last-Subject-Sequence": "5"}),
        ack_shape,
    )
    await attempt("expected stream OTHER", js.publish("orders.z", b"s", stream="OTHER"), ack_shape)
    await attempt("expected stream ORDERS", js.publish("orders.z", b"s", stream="ORDERS"), ack_shape)
    await attempt(
        "expected last msg id (wrong)",
        js.publish("orders.z", b"m", headers={"Nats-Expected-Last-Msg-Id": "nope"}),
        ack_shape,
    )
    await attempt("publish without a stream", js.publish("nostream.here", b"x", timeout=2), ack_shape)
    await attempt(
        "info", jsm.stream_info("ORDERS"), lambda i: {"config": stream_config(i.config), "state": stream_state(i.state)}
    )
    await attempt(
        "info subjects_filter",
        jsm.stream_info("ORDERS", subjects_filter="orders.*"),
        lambda i: dict(sorted((i.state.subjects or {}).items())),
    )

    def raw_shape(m):
        return {"subject": m.subject, "seq": m.seq, "data": (m.data or b"").decode(), "headers": headers_of(m)}

    await attempt("get_msg 6", jsm.get_msg("ORDERS", 6), raw_shape)
    await attempt("get_msg 6 direct", jsm.get_msg("ORDERS", 6, direct=True), raw_shape)
    await attempt("get_msg 1 (removed by per-subject limit)", jsm.get_msg("ORDERS", 1), raw_shape)
    await attempt("get_msg 1 direct", jsm.get_msg("ORDERS", 1, direct=True), raw_shape)
    await attempt("get_msg 999", jsm.get_msg("ORDERS", 999), raw_shape)
    await attempt("get_last_msg orders.1", jsm.get_last_msg("ORDERS", "orders.1"), raw_shape)
    await attempt("get_last_msg orders.1 direct", jsm.get_last_msg("ORDERS", "orders.1", direct=True), raw_shape)
    await attempt("get_last_msg orders.none", jsm.get_last_msg("ORDERS", "orders.none"), raw_shape)
    await attempt("get_last_msg orders.none direct", jsm.get_last_msg("ORDERS", "orders.none", direct=True), raw_shape)
    await attempt("get next for orders.1 from 3", jsm.get_msg("ORDERS", 3, subject="orders.1", next=True), raw_shape)
    await attempt("delete_msg 4", jsm.delete_msg("ORDERS", 4))
    await attempt("delete_msg 4 again", jsm.delete_msg("ORDERS", 4))
    await attempt("get_msg 4 deleted", jsm.get_msg("ORDERS", 4), raw_shape)
    await attempt("state after delete", jsm.stream_info("ORDERS"), lambda i: stream_state(i.state))
    await attempt("purge subject orders.0", jsm.purge_stream("ORDERS", subject="orders.0"))
    await attempt("state after subject purge", jsm.stream_info("ORDERS"), lambda i: stream_state(i.state))
    await attempt("purge keep 2", jsm.purge_stream("ORDERS", keep=2))
    await attempt("state after keep purge", jsm.stream_info("ORDERS"), lambda i: stream_state(i.state))
    await attempt(
        "update",
        jsm.update_stream(
            name="ORDERS", subjects=["orders.>", "more.*"], max_msgs=100, description="the orders", allow_direct=True
        ),
        lambda i: stream_config(i.config),
    )
    await attempt(
        "update storage (refused)",
        jsm.update_stream(name="ORDERS", subjects=["orders.>"], storage=api.StorageType.MEMORY),
        lambda i: stream_config(i.config),
    )
    await attempt(
        "add again, other config",
        jsm.add_stream(name="ORDERS", subjects=["other.>"]),
        lambda i: stream_config(i.config),
    )
    await attempt(
        "add overlapping",
        jsm.add_stream(name="OVERLAP", subjects=["orders.1"]),
        lambda i: stream_config(i.config),
    )
    await attempt("add bad name", jsm.add_stream(name="BAD.NAME", subjects=["bad"]), lambda i: i.config.name)
    await attempt(
        "add memory stream",
        jsm.add_stream(name="MEM", subjects=["mem.*"], storage=api.StorageType.MEMORY, max_msgs=2,
                       discard=api.DiscardPolicy.NEW),
        lambda i: stream_config(i.config),
    )
    for i in range(3):
        await attempt(f"publish mem {i} (discard new)", js.publish("mem.a", b"m"), ack_shape)
    await attempt("memory state", jsm.stream_info("MEM"), lambda i: stream_state(i.state))
    # max_age: a message older than the stream's max_age is removed (nobody polls meanwhile).
    await attempt("add AGED max_age 1s", jsm.add_stream(name="AGED", subjects=["aged"], max_age=1.0),
                  lambda i: i.config.max_age)
    await attempt("publish aged", js.publish("aged", b"old"), ack_shape)
    await asyncio.sleep(2.0)
    await attempt("aged after 2s", jsm.stream_info("AGED"), lambda i: stream_state(i.state))
    await attempt("publish aged again", js.publish("aged", b"new"), ack_shape)
    await asyncio.sleep(2.0)
    await attempt("aged again after 2s", jsm.stream_info("AGED"), lambda i: stream_state(i.state))
    await attempt("delete AGED", jsm.delete_stream("AGED"))
    await attempt("streams", jsm.streams_info(), lambda l: sorted(i.config.name for i in l))
    await attempt(
        "account info",
        jsm.account_info(),
        lambda a: {"streams": a.streams, "consumers": a.consumers, "memory": a.memory, "storage": a.storage,
                   "limits": {"max_memory": a.limits.max_memory, "max_storage": a.limits.max_storage,
                              "max_streams": a.limits.max_streams, "max_consumers": a.limits.max_consumers}},
    )
    await attempt("delete MEM", jsm.delete_stream("MEM"))
    await attempt("delete MEM again", jsm.delete_stream("MEM"))
    await attempt("info MEM deleted", jsm.stream_info("MEM"), lambda i: i.config.name)
    await attempt("streams after delete", jsm.streams_info(), lambda l: sorted(i.config.name for i in l))


async def pull(js, jsm):
    global section
    section = "pull"
    await attempt("add WORK", jsm.add_stream(name="WORK", subjects=["work.*"]), lambda i: i.config.name)
    for i in range(6):
        await w(js.publish(f"work.{i % 3}", f"w{i}".encode()))
    sub = await attempt(
        "pull_subscribe durable W",
        js.pull_subscribe("work.*", durable="W", stream="WORK",
                          config=api.ConsumerConfig(ack_wait=1.0, max_deliver=5)),
        lambda s: "ok",
    )
    await attempt("info fresh", sub.consumer_info(), lambda i: {"config": consumer_config(i.config), "state": consumer_state(i)})
    msgs = await attempt("fetch 3", sub.fetch(3, timeout=2), lambda ms: [msg_shape(m) for m in ms])
    if msgs and len(msgs) == 3:
        await attempt("ack_sync first", msgs[0].ack_sync(), lambda m: "acked")
        await attempt("nak second", msgs[1].nak(), lambda m: "nak")
        await attempt("term third", msgs[2].term(), lambda m: "term")
        await asyncio.sleep(0.2)
        await attempt("double ack (ignored)", msgs[0].ack(), lambda m: "ok")
    msgs = await attempt("fetch 2 (nak'd first)", sub.fetch(2, timeout=2), lambda ms: [msg_shape(m) for m in ms])
    if msgs and len(msgs) == 2:
        await attempt("in_progress", msgs[0].in_progress(), lambda m: "wip")
        await attempt("ack after in_progress", msgs[0].ack_sync(), lambda m: "acked")
    await attempt("info with one unacked", sub.consumer_info(), consumer_state)
    await asyncio.sleep(1.4)
    msgs = await attempt("fetch after ack wait", sub.fetch(1, timeout=2), lambda ms: [msg_shape(m) for m in ms])
    await attempt("info with a redelivery", sub.consumer_info(), consumer_state)
    if msgs:
        await attempt("ack redelivered", msgs[0].ack_sync(), lambda m: "acked")
    msgs = await attempt("fetch 10 (rest)", sub.fetch(10, timeout=1), lambda ms: [msg_shape(m) for m in ms])
    for m in msgs or []:
        await w(m.ack_sync())
    await attempt("fetch on empty", sub.fetch(1, timeout=0.5), lambda ms: [msg_shape(m) for m in ms])
    await asyncio.sleep(0.5)  # the expired pull request is gone by now
    await attempt("info drained", sub.consumer_info(), consumer_state)
    await w(sub.unsubscribe())

    # max_deliver: a message never acked is delivered twice and then no more.
    sub = await w(js.pull_subscribe("work.0", durable="MD", stream="WORK",
                                    config=api.ConsumerConfig(ack_wait=0.5, max_deliver=2)))
    for n in range(3):
        await attempt(f"max_deliver fetch {n}", sub.fetch(1, timeout=0.8), lambda ms: [msg_shape(m) for m in ms])
        await asyncio.sleep(0.6)
    await attempt("max_deliver info", sub.consumer_info(), consumer_state)
    await w(sub.unsubscribe())

    # An ephemeral pull consumer (name chosen by the server).
    sub = await w(js.pull_subscribe("work.2", stream="WORK"))
    await attempt("ephemeral fetch", sub.fetch(5, timeout=1), lambda ms: [msg_shape(m) for m in ms])
    await attempt("ephemeral info", sub.consumer_info(),
                  lambda i: {"config": consumer_config(i.config, ephemeral=True), "state": consumer_state(i)})
    await w(sub.unsubscribe())

    # Consumers through the manager: a filter outside the stream, a bad ack policy for pull.
    await attempt(
        "add consumer filter mismatch",
        jsm.add_consumer("WORK", durable_name="F", filter_subject="other.>", ack_policy=api.AckPolicy.EXPLICIT),
        lambda i: i.name,
    )
    await attempt(
        "add consumer max_ack_pending with ack none",
        jsm.add_consumer("WORK", durable_name="N", ack_policy=api.AckPolicy.NONE, max_ack_pending=5),
        lambda i: i.name,
    )
    await attempt(
        "add consumer by start sequence",
        jsm.add_consumer("WORK", durable_name="S", deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                         opt_start_seq=4, ack_policy=api.AckPolicy.EXPLICIT, filter_subjects=["work.0", "work.1"]),
        lambda i: {"config": consumer_config(i.config), "state": consumer_state(i)},
    )
    await attempt("consumers", jsm.consumers_info("WORK"), lambda l: sorted(i.name for i in l if i.config.durable_name))
    await attempt("delete consumer S", jsm.delete_consumer("WORK", "S"))
    await attempt("delete consumer S again", jsm.delete_consumer("WORK", "S"))
    await attempt("info of deleted consumer", jsm.consumer_info("WORK", "S"), lambda i: i.name)
    await attempt("consumer of missing stream", jsm.consumer_info("NOPE", "S"), lambda i: i.name)


async def push(js, jsm):
    global section
    section = "push"
    await attempt("add EV", jsm.add_stream(name="EV", subjects=["ev.>"]), lambda i: i.config.name)
    for i in range(5):
        await w(js.publish(f"ev.{'ab'[i % 2]}", f"e{i}".encode(), headers={"X-N": str(i)}))

    async def take(sub, n, timeout=1.0):
        got = []
        for _ in range(n):
            try:
                got.append(await sub.next_msg(timeout=timeout))
            except Exception:  # noqa: BLE001 - timeouts end the read
                break
        return got

    sub = await attempt("subscribe durable PD", js.subscribe("ev.>", durable="PD", manual_ack=True), lambda s: "ok")
    msgs = await take(sub, 5)
    rec("durable got", [msg_shape(m) | {"headers": headers_of(m)} for m in msgs])
    for m in msgs[:3]:
        await w(m.ack_sync())
    await attempt("durable info", sub.consumer_info(), lambda i: {"config": consumer_config(i.config), "state": consumer_state(i)})
    await w(sub.unsubscribe())
    await asyncio.sleep(0.2)
    await attempt("durable info after unsubscribe", jsm.consumer_info("EV", "PD"), lambda i: i.push_bound)
    # Rebinding the durable (its two unacked messages wait for their 30 s ack wait).
    sub = await attempt("rebind durable PD", js.subscribe("ev.>", durable="PD", manual_ack=True), lambda s: "ok")
    if sub:
        await asyncio.sleep(0.3)
        await attempt("rebound info", sub.consumer_info(), lambda i: i.push_bound)
        await w(sub.unsubscribe())

    sub = await w(js.subscribe("ev.a"))
    msgs = await take(sub, 10, timeout=0.7)
    rec("ephemeral got", [msg_shape(m) for m in msgs])
    await attempt("ephemeral info", sub.consumer_info(),
                  lambda i: {"config": consumer_config(i.config, ephemeral=True), "state": consumer_state(i)})
    await w(sub.unsubscribe())

    sub = await w(js.subscribe("ev.>", deliver_policy=api.DeliverPolicy.LAST))
    rec("deliver last", [m.data.decode() for m in await take(sub, 5, timeout=0.7)])
    await w(sub.unsubscribe())
    sub = await w(js.subscribe("ev.>", deliver_policy=api.DeliverPolicy.NEW))
    await w(js.publish("ev.new", b"fresh"))
    rec("deliver new", [m.data.decode() for m in await take(sub, 5, timeout=0.7)])
    await w(sub.unsubscribe())

    sub = await w(js.subscribe("ev.>", ordered_consumer=True))
    first = await take(sub, 6)
    for i in range(3):
        await w(js.publish("ev.b", f"late{i}".encode()))
    later = await take(sub, 3)
    rec("ordered got", [[m.data.decode(), m.metadata.sequence.stream, m.metadata.sequence.consumer] for m in first + later])
    await attempt("ordered info", sub.consumer_info(),
                  lambda i: {"config": consumer_config(i.config, ephemeral=True), "state": consumer_state(i)})
    await w(sub.unsubscribe())

    # A callback subscription with a queue group (deliver group).
    got = []

    async def cb(m):
        got.append(m.data.decode())
        await m.ack()

    sub = await attempt("queue subscribe", js.subscribe("ev.a", queue="workers", cb=cb), lambda s: "ok")
    await asyncio.sleep(1.0)
    rec("queue got", sorted(got))
    if sub:
        await attempt("queue consumer info", sub.consumer_info(),
                      lambda i: {"durable": i.config.durable_name, "deliver_group": i.config.deliver_group,
                                 "state": consumer_state(i)})
        await w(sub.unsubscribe())


async def history(kv, key):
    """kv.history, retried: nats-py's watcher can signal "no more" before the first entry
    when the server delivers everything before it answers the consumer info (a client
    race, seen on nats-server)."""
    for _ in range(3):
        try:
            return await w(kv.history(key))
        except NoKeysError:
            await asyncio.sleep(0.2)
    return await w(kv.history(key))


def entry_shape(e):
    return {"key": e.key, "value": None if e.value is None else e.value.decode(), "revision": e.revision,
            "delta": e.delta, "operation": e.operation}


async def key_value(js):
    global section
    section = "kv"
    kv = await attempt("create bucket CFG", js.create_key_value(bucket="CFG", history=5), lambda k: "ok")
    assert kv is not None, "bucket create failed"
    await attempt("status", kv.status(), lambda s: {"bucket": s.bucket, "values": s.values, "history": s.history,
                                                     "ttl": s.ttl, "config": stream_config(s.stream_info.config)})
    await attempt("put a=1", kv.put("a", b"1"))
    await attempt("put a=2", kv.put("a", b"2"))
    await attempt("get a", kv.get("a"), entry_shape)
    await attempt("get a revision 1", kv.get("a", revision=1), entry_shape)
    await attempt("get a revision 99", kv.get("a", revision=99), entry_shape)
    await attempt("update a at 1 (stale)", kv.update("a", b"3", last=1))
    await attempt("update a at 2", kv.update("a", b"3", last=2))
    await attempt("create a (exists)", kv.create("a", b"x"))
    await attempt("create b", kv.create("b", b"x"))
    await attempt("delete b", kv.delete("b"))
    await attempt("get b deleted", kv.get("b"), entry_shape)
    await attempt("create b after delete", kv.create("b", b"y"))
    await attempt("delete b at wrong revision", kv.delete("b", last=1))
    await attempt("get missing", kv.get("missing"), entry_shape)
    await attempt("history a", history(kv, "a"), lambda es: [entry_shape(e) for e in es], timeout=20)
    await attempt("history b", history(kv, "b"), lambda es: [entry_shape(e) for e in es], timeout=20)
    await attempt("keys", kv.keys(), sorted)
    await attempt("purge a", kv.purge("a"))
    await attempt("get a purged", kv.get("a"), entry_shape)
    await attempt("history a after purge", history(kv, "a"), lambda es: [entry_shape(e) for e in es], timeout=20)
    await attempt("keys after purge", kv.keys(), sorted)
    for i in range(7):
        await w(kv.put("h", str(i).encode()))
    await attempt("history kept 5", history(kv, "h"), lambda es: [e.value.decode() for e in es], timeout=20)

    watcher = await w(kv.watchall())
    initial = []
    try:
        while True:
            e = await w(watcher.updates(timeout=2), 3)
            if e is None:
                break
            initial.append(entry_shape(e))
    except Exception as e:  # noqa: BLE001
        initial.append(err(e))
    rec("watchall initial", initial)
    await w(kv.put("c", b"new"))
    await w(kv.delete("c"))
    updates = []
    for _ in range(2):
        try:
            e = await w(watcher.updates(timeout=2), 3)
            updates.append(None if e is None else entry_shape(e))
        except Exception as e:  # noqa: BLE001
            updates.append(err(e))
    rec("watchall updates", updates)
    await w(watcher.stop())

    watcher = await w(kv.watch("b", include_history=True))
    seen = []
    try:
        while True:
            e = await w(watcher.updates(timeout=2), 3)
            if e is None:
                break
            seen.append(entry_shape(e))
    except Exception as e:  # noqa: BLE001
        seen.append(err(e))
    rec("watch b with history", seen)
    await w(watcher.stop())

    await attempt("status after", kv.status(), lambda s: {"values": s.values, "bytes": s.stream_info.state.bytes})
    # A bucket with a TTL: values go away after it.
    ttl = await attempt("create bucket TTL ttl=1s", js.create_key_value(bucket="TTL", ttl=1), lambda k: "ok")
    if ttl:
        for k in ["x", "y.z", "w"]:
            await attempt(f"ttl put {k}", ttl.put(k, b"v"))
        await asyncio.sleep(2.0)
        await attempt("ttl get x after 2s", ttl.get("x"), entry_shape)
        await attempt("ttl status after 2s", ttl.status(), lambda s: {"values": s.values, "ttl": s.ttl})
        await attempt("delete bucket TTL", js.delete_key_value("TTL"))
    await attempt("open missing bucket", js.key_value("NOPE"), lambda k: "ok")
    await attempt("delete bucket", js.delete_key_value("CFG"))
    await attempt("open deleted bucket", js.key_value("CFG"), lambda k: "ok")


def object_shape(i):
    return {"name": i.name, "bucket": i.bucket, "size": i.size, "chunks": i.chunks, "digest": i.digest,
            "deleted": bool(i.deleted), "description": i.description}


async def object_store(js):
    global section
    section = "object"
    obs = await attempt("create store FILES", js.create_object_store("FILES"), lambda o: "ok")
    assert obs is not None, "object store create failed"
    await attempt("status", obs.status(), lambda s: {"bucket": s.bucket, "sealed": s.sealed, "size": s.size,
                                                      "config": stream_config(s.stream_info.config)})
    # 600 KiB of a fixed pattern: five chunks of nats-py's 128 KiB.
    big = bytes((i * 2654435761 >> 13) & 0xFF for i in range(600 * 1024))
    rec("big digest", "SHA-256=" + base64.urlsafe_b64encode(hashlib.sha256(big).digest()).decode())
    await attempt("put small", obs.put("small.txt", b"tiny"), object_shape)
    await attempt("put big", obs.put("big.bin", big), object_shape, timeout=20)
    await attempt("put empty", obs.put("empty", b""), object_shape)
    res = await attempt("get big", obs.get("big.bin"), lambda r: {"info": object_shape(r.info), "size": len(r.data)}, timeout=20)
    rec("get big equal", res is not None and res.data == big)
    await attempt("get empty", obs.get("empty"), lambda r: {"info": object_shape(r.info), "data": r.data.decode()})
    await attempt("get_info small", obs.get_info("small.txt"), object_shape)
    await attempt("list", obs.list(), lambda l: sorted([o.name, o.size, bool(o.deleted)] for o in l))
    await attempt("replace small", obs.put("small.txt", b"tinier"), object_shape)
    await attempt("get small", obs.get("small.txt"), lambda r: r.data.decode())
    await attempt("delete small", obs.delete("small.txt"), object_shape)
    await attempt("get deleted small", obs.get("small.txt"), lambda r: r.data.decode())
    await attempt("get_info deleted small", obs.get_info("small.txt", show_deleted=True), object_shape)
    await attempt("get missing", obs.get("missing"), lambda r: r.data.decode())
    await attempt("list ignore deletes", obs.list(ignore_deletes=True), lambda l: sorted(o.name for o in l))
    await attempt("status after", obs.status(), lambda s: {"sealed": s.sealed, "messages": s.stream_info.state.messages})
    await attempt("seal", obs.seal(), lambda r: "sealed")
    await attempt("put after seal", obs.put("late", b"x"), object_shape)
    await attempt("delete store", js.delete_object_store("FILES"))
    await attempt("open deleted store", js.object_store("FILES"), lambda o: "ok")


async def main(url):
    global section
    nc = await nats.connect(url, max_reconnect_attempts=0, connect_timeout=T)
    js = nc.jetstream(timeout=T)
    jsm = nc.jsm(timeout=T)
    for name, run in [("streams", lambda: streams(js, jsm)), ("pull", lambda: pull(js, jsm)),
                      ("push", lambda: push(js, jsm)), ("kv", lambda: key_value(js)),
                      ("object", lambda: object_store(js))]:
        section = name
        try:
            await asyncio.wait_for(run(), 90)
        except Exception as e:  # noqa: BLE001 - a crashed section is an outcome too
            rec("section crashed", err(e))
    await nc.close()
    json.dump(transcript, sys.stdout, indent=None, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
