"""Pub/Sub load for bench.py: PUBLISH throughput and publish-to-receive
latency with N subscribers. Standard library only.

Throughput: redis-benchmark's `PUBLISH bench:ps <payload>` (the bench's
clients and pipeline) while N subscribers of `bench:ps` read everything
(one thread, raw sockets; a subscriber that stops reading would be closed at
the pubsub output limit, so they read as fast as the messages come). The
row is redis-benchmark's: PUBLISH replies per second and their p50/p99.
Every subscriber must then have received every message (checked).

Latency: one publisher sends `PUBLISH bench:ps <send time>`, one at a time
(each waits for its reply), and each subscriber notes when each message
arrives; the row is the p50/p99 over all (message, subscriber) arrivals of
arrival minus send time, one clock (this process). On dkv the publisher is
the leader's port and the subscribers are spread over every node, a
follower first (a single subscriber is on a follower: delivery crosses
nodes).
"""

import re
import selectors
import socket
import statistics
import subprocess
import threading
import time

CHANNEL = b"bench:ps"
TIMESTAMP = re.compile(rb"\$\d+\r\nts:(\d+)\r\n")
WORD = b"$7\r\nmessage\r\n"
# Longer than a timestamp payload's whole bulk string.
TAIL_BYTES = 64


def _command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Subscribers:
    """N subscriber connections read by one thread; counts message frames
    (by their `message` word) and, for `ts:` payloads, arrival times."""

    def __init__(self, ports, n, timeout_s=30):
        self.socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", ports[i % len(ports)]), timeout=timeout_s)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(_command("SUBSCRIBE", CHANNEL))
            self.socks.append(s)
        # Each confirmation: wait for it before anything is published.
        for s in self.socks:
            got = b""
            while b":1\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("a subscriber was closed while subscribing")
                got += chunk
            s.setblocking(False)
        self.messages = [0] * n
        self.arrivals = []  # (send ns, arrival ns)
        self.stop = False
        self.error = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        sel = selectors.DefaultSelector()
        tails = {}
        for i, s in enumerate(self.socks):
            sel.register(s, selectors.EVENT_READ, i)
            tails[i] = b""
        try:
            while not self.stop:
                for key, _ in sel.select(timeout=0.05):
                    i = key.data
                    chunk = key.fileobj.recv(1 << 20)
                    if not chunk:
                        raise RuntimeError(f"subscriber {i} was closed")
                    now = time.monotonic_ns()
                    # Frames cut between two reads: the last bytes are kept
                    # and searched again with the next read; what lies
                    # wholly in them was counted already.
                    tail = tails[i]
                    data = tail + chunk
                    self.messages[i] += data.count(WORD) - tail.count(WORD)
                    for m in TIMESTAMP.finditer(data):
                        if m.end() > len(tail):
                            self.arrivals.append((int(m.group(1)), now))
                    tails[i] = data[-TAIL_BYTES:]
        except Exception as e:  # reported by wait()
            self.error = e

    def wait_for(self, count, timeout_s):
        """Until every subscriber has `count` messages (bounded)."""
        deadline = time.monotonic() + timeout_s
        while min(self.messages) < count:
            if self.error:
                raise RuntimeError(f"subscriber reader: {self.error}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"subscribers got {min(self.messages)}..{max(self.messages)} "
                                   f"of {count} messages within {timeout_s}s")
            time.sleep(0.01)

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        for s in self.socks:
            s.close()


def throughput(publish_port, sub_ports, subscribers, clients, pipeline, requests, payload_size):
    """redis-benchmark's PUBLISH row with `subscribers` reading."""
    subs = Subscribers(sub_ports, subscribers)
    try:
        out = subprocess.run(
            ["redis-benchmark", "-p", str(publish_port), "-n", str(requests), "-c", str(clients),
             "-P", str(pipeline), "--csv", "PUBLISH", CHANNEL.decode(), "x" * payload_size],
            capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"redis-benchmark PUBLISH failed: {out.stderr.strip()}")
        lines = out.stdout.strip().splitlines()
        header = [h.strip('"') for h in lines[0].split(",")]
        row = dict(zip(header, (v.strip('"') for v in lines[-1].split(","))))
        subs.wait_for(requests, timeout_s=120)
        return {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                "p99": float(row["p99_latency_ms"])}
    finally:
        subs.close()


def latency(publish_port, sub_ports, subscribers, messages):
    """Publish-to-receive p50/p99 (ms) over every arrival, one PUBLISH at a
    time; `rps` is the arrivals per second over the run."""
    subs = Subscribers(sub_ports, subscribers)
    pub = socket.create_connection(("127.0.0.1", publish_port), timeout=30)
    pub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        started = time.monotonic()
        for _ in range(messages):
            pub.sendall(_command("PUBLISH", CHANNEL, b"ts:%d" % time.monotonic_ns()))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = pub.recv(64)
                if not chunk:
                    raise RuntimeError("the publisher was closed")
                reply += chunk
            if not reply.startswith(b":"):
                raise RuntimeError(f"PUBLISH answered {reply!r}")
        subs.wait_for(messages, timeout_s=60)
        took = time.monotonic() - started
        lat = sorted((arrival - sent) / 1e6 for sent, arrival in subs.arrivals)
        if len(lat) != messages * subscribers:
            raise RuntimeError(f"{len(lat)} timed arrivals, want {messages * subscribers}")
        q = statistics.quantiles(lat, n=100)
        return {"rps": len(lat) / took, "p50": statistics.median(lat), "p99": q[98]}
    finally:
        pub.close()
        subs.close()
