"""redis-py's PubSub against dkv, the subscriber and the publisher on
different nodes: subscribe/psubscribe with get_message, run_in_thread with
handlers, unsubscribe, PUBSUB NUMSUB/NUMPAT through the publisher's node.
Usage: pubsub_clients.py SUB_HOST:PORT PUB_HOST:PORT 2|3 (the protocol).
Exits non-zero on the first failed check; bounded by its own deadline."""

import os
import signal
import sys
import time

import redis

DEADLINE_S = 60
WAIT_S = 10


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}", flush=True)


def client(addr, protocol):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), protocol=protocol, socket_timeout=WAIT_S)


def next_message(p, what):
    """The next non-None get_message, bounded."""
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        m = p.get_message(timeout=0.5)
        if m is not None:
            return m
    fail(f"no message for {what} within {WAIT_S} s")


def main(sub_addr, pub_addr, protocol):
    sub, pub = client(sub_addr, protocol), client(pub_addr, protocol)

    # subscribe / psubscribe, confirmations through get_message.
    p = sub.pubsub()
    p.subscribe("news", "sport")
    p.psubscribe("ev.*")
    got = [next_message(p, "confirmation") for _ in range(3)]
    kinds = [(m["type"], m["channel"], m["data"]) for m in got]
    check(
        kinds == [("subscribe", b"news", 1), ("subscribe", b"sport", 2), ("psubscribe", b"ev.*", 3)],
        f"confirmations in order with counts ({kinds})",
    )
    numsub = pub.pubsub_numsub("news", "nobody")
    check(numsub == [(b"news", 1), (b"nobody", 0)], f"NUMSUB on the publisher's node ({numsub})")
    check(pub.pubsub_numpat() == 1, "NUMPAT on the publisher's node")
    check(pub.publish("news", "hello") == 1, "PUBLISH counts the subscriber on the other node")
    check(pub.publish("ev.login", "u1") == 1, "PUBLISH counts the pattern subscriber")
    m = next_message(p, "message")
    check((m["type"], m["channel"], m["data"]) == ("message", b"news", b"hello"), f"message ({m})")
    m = next_message(p, "pmessage")
    check(
        (m["type"], m["pattern"], m["channel"], m["data"]) == ("pmessage", b"ev.*", b"ev.login", b"u1"),
        f"pmessage ({m})",
    )

    # Many messages on two channels: each once, in publication order.
    for i in range(200):
        pub.publish("news" if i % 2 == 0 else "sport", str(i))
    seen = [int(next_message(p, f"message {i}")["data"]) for i in range(200)]
    check(seen == list(range(200)), "200 messages once each, in publication order")

    p.unsubscribe("news")
    m = next_message(p, "unsubscribe")
    check((m["type"], m["channel"], m["data"]) == ("unsubscribe", b"news", 2), f"unsubscribe ({m})")
    check(pub.publish("news", "gone") == 0, "nobody counted after UNSUBSCRIBE")
    p.punsubscribe()
    p.unsubscribe()
    left = sorted((m["type"], m["data"]) for m in (next_message(p, "unsubscribe-all") for _ in range(2)))
    check(left == [("punsubscribe", 1), ("unsubscribe", 0)], f"unsubscribe-all confirmations ({left})")
    p.close()

    # Handlers and run_in_thread.
    received = []
    q = sub.pubsub(ignore_subscribe_messages=True)
    q.subscribe(**{"jobs": lambda m: received.append(m["data"])})
    q.psubscribe(**{"jobs.*": lambda m: received.append(b"p:" + m["data"])})
    worker = q.run_in_thread(sleep_time=0.01, daemon=True)
    end = time.monotonic() + WAIT_S
    while pub.pubsub_numsub("jobs")[0][1] != 1 or pub.pubsub_numpat() != 1:
        if time.monotonic() > end:
            fail("the thread's subscriptions were never counted")
        time.sleep(0.05)
    for i in range(100):
        pub.publish("jobs", f"j{i}")
    pub.publish("jobs.x", "last")
    end = time.monotonic() + WAIT_S
    while len(received) < 101 and time.monotonic() < end:
        time.sleep(0.02)
    worker.stop()
    worker.join(timeout=WAIT_S)
    want = [f"j{i}".encode() for i in range(100)] + [b"p:last"]
    check(received == want, f"run_in_thread handlers got 101 messages in order ({len(received)})")
    q.close()
    sub.close()
    pub.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    if len(sys.argv) != 4 or sys.argv[3] not in ("2", "3"):
        fail(f"usage: {sys.argv[0]} SUB_HOST:PORT PUB_HOST:PORT 2|3")
    signal.signal(signal.SIGALRM, lambda *_: fail(f"still running after {DEADLINE_S} s"))
    signal.alarm(DEADLINE_S)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
