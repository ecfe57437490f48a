"""Consumer-group load for bench.py: XREADGROUP + XACK pairs. Standard
library only.

redis-benchmark sends one fixed command (with random numbers), so it cannot
acknowledge the id a read returned. This driver can: each of C connections
(one consumer each, `c0` ... `c<C-1>`, of one group) loops on
  XREADGROUP GROUP bench cI COUNT 1 STREAMS bench:xg >
  XACK bench:xg bench <the id it got>
one command outstanding per connection, as redis-benchmark's -P 1. The
stream is filled beforehand (XADD, pipelined) with more entries than are
read, so every read delivers one. The row: completed pairs per second and
the p50/p99 of a pair (read sent to ack answered). At the end the group's
pending list must be empty and every entry read once (checked with XPENDING
and XINFO GROUPS).

One Python thread drives every connection (non-blocking sockets, one
selector), so the driver has its own ceiling: the redis-none row shows it
(run alone on this machine: about 20-40k pairs/s); dkv's rows well below it
are not limited by the driver.
"""

import selectors
import socket
import statistics
import time


def command(*args):
    """One command as a RESP2 array of bulk strings."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


KEY = b"bench:xg"
GROUP = b"bench"


def parse(buf, at=0):
    """One RESP2 reply from `buf` at `at`: (value, next offset), or None
    when incomplete. Errors come back as ("error", text)."""
    end = buf.find(b"\r\n", at)
    if end < 0:
        return None
    kind, line = buf[at:at + 1], buf[at + 1:end]
    at = end + 2
    if kind in (b"+", b":"):
        return (int(line) if kind == b":" else line), at
    if kind == b"-":
        return ("error", line.decode(errors="replace")), at
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, at
        if len(buf) < at + n + 2:
            return None
        return buf[at:at + n], at + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, at
        items = []
        for _ in range(n):
            got = parse(buf, at)
            if got is None:
                return None
            item, at = got
            items.append(item)
        return items, at
    raise RuntimeError(f"bad reply byte {kind!r}")


def roundtrip(port, commands, timeout_s=120):
    """Sends `commands` pipelined on one connection and reads every reply;
    returns the replies."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    try:
        s.sendall(b"".join(commands))
        buf, at, replies = b"", 0, []
        while len(replies) < len(commands):
            got = parse(buf, at)
            if got is None:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("connection closed while filling the stream")
                buf += chunk
                continue
            reply, at = got
            replies.append(reply)
        return replies
    finally:
        s.close()


def fill(port, entries):
    """A fresh stream of `entries` entries and the group reading it from the
    start."""
    roundtrip(port, [command("DEL", KEY), command("XGROUP", "CREATE", KEY, GROUP, "0", "MKSTREAM")])
    chunk = 2000
    for start in range(0, entries, chunk):
        replies = roundtrip(port, [command("XADD", KEY, "*", "job", str(i))
                                   for i in range(start, min(entries, start + chunk))])
        bad = [r for r in replies if isinstance(r, tuple)]
        if bad:
            raise RuntimeError(f"filling the stream: {bad[0]}")


def run(port, clients, pairs, timeout_s=300):
    """`pairs` XREADGROUP + XACK pairs over `clients` connections (the stream
    is filled first); {"rps", "p50", "p99"} with latencies in ms."""
    fill(port, pairs + clients)
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(clients):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        conn = {"sock": s, "buf": b"", "read": command("XREADGROUP", "GROUP", GROUP, f"c{i}",
                                                         "COUNT", "1", "STREAMS", KEY, ">"),
                "state": None, "start": 0}
        conns.append(conn)
        sel.register(s, selectors.EVENT_READ, conn)
    started = 0
    done = 0
    latencies = []

    def start_pair(conn):
        nonlocal started
        if started >= pairs:
            conn["state"] = None
            return
        started += 1
        conn["state"] = "read"
        conn["start"] = time.perf_counter_ns()
        conn["sock"].sendall(conn["read"])

    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    for conn in conns:
        start_pair(conn)
    try:
        while done < pairs:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"stream load: {done} of {pairs} pairs in {timeout_s} s")
            for key, _ in sel.select(timeout=0.5):
                conn = key.data
                chunk = conn["sock"].recv(1 << 16)
                if not chunk:
                    raise RuntimeError("a stream consumer's connection was closed")
                conn["buf"] += chunk
                got = parse(conn["buf"])
                if got is None:
                    continue
                reply, at = got
                conn["buf"] = conn["buf"][at:]
                if isinstance(reply, tuple):
                    raise RuntimeError(f"stream load: {reply[1]}")
                if conn["state"] == "read":
                    # [[key, [[id, [field, value]]]]]
                    try:
                        entry_id = reply[0][1][0][0]
                    except (TypeError, IndexError) as e:
                        raise RuntimeError(f"XREADGROUP delivered nothing: {reply!r}") from e
                    conn["state"] = "ack"
                    conn["sock"].sendall(command("XACK", KEY, GROUP, entry_id))
                elif conn["state"] == "ack":
                    if reply != 1:
                        raise RuntimeError(f"XACK answered {reply!r}")
                    latencies.append(time.perf_counter_ns() - conn["start"])
                    done += 1
                    start_pair(conn)
    finally:
        elapsed = time.perf_counter() - t0
        for conn in conns:
            sel.unregister(conn["sock"])
            conn["sock"].close()
        sel.close()
    pending, groups = roundtrip(port, [command("XPENDING", KEY, GROUP),
                                       command("XINFO", "GROUPS", KEY)])
    if pending[0] != 0:
        raise RuntimeError(f"{pending[0]} entries still pending after the stream load")
    info = dict(zip(groups[0][0::2], groups[0][1::2]))
    if info.get(b"entries-read") != pairs:
        raise RuntimeError(f"group read {info.get(b'entries-read')} entries, not {pairs}")
    roundtrip(port, [command("DEL", KEY)])
    q = statistics.quantiles(latencies, n=100)
    return {"rps": done / elapsed, "p50": q[49] / 1e6, "p99": q[98] / 1e6}
