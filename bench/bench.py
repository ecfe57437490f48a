#!/usr/bin/env python3
"""`make bench`: dkv beside Redis on this machine, in one interleaved run.

Starts, on free loopback ports:
  * a dkv cluster of --nodes nodes (release build, data under --data-dir)
    with the default ReadIndex reads ("dkv"), and one with leader-lease
    reads, raft.lease_reads ("dkv-lease"); --reads picks one or both,
  * redis-server with appendonly yes / appendfsync always  ("redis-always"),
  * redis-server with no persistence                        ("redis-none"),
then runs redis-benchmark with the same arguments against each target,
interleaved (A B C, B C A, ...) for --rounds rounds, and reports medians:
req/s, p50 and p99 per target, and dkv's ratios to the Redis anchors. Absolute
figures on a shared 2-core machine swing 2-3x between runs; only ratios
measured in the same run mean anything (see shared/reference/baseline.md).

The "dkv" cluster also serves RESP over TLS (tls_resp_addr, certificates made
with dkv-cli certs, auth_clients: no); "dkv-tls" is that cluster's TLS port,
benchmarked with `redis-benchmark --tls --cacert` in the same rotation, and
reported beside "dkv" with the TLS/plain ratio (--no-tls skips it).

Tests: redis-benchmark's SET GET LPUSH LPOP SADD ZADD, and the custom commands
ZRANGE (by rank, 10 of 100 members), BLPOP (on a list filled beforehand),
EVALSHA of a write script (INCR + EXPIRE), EVALSHA_RO of a read script (a
GET), GEOADD (one point, a random member), SETBIT (one bit of a random
bitmap: redis-benchmark's zero-padded __rand_int__ is no valid offset), PFADD (random elements, one HyperLogLog) and XADD (`XADD bench:xadd * f
<random>`, one stream growing by one entry a request). Writes are compared with
redis-always, reads (GET, ZRANGE, EVALSHA_RO) with redis-none; every row shows
both Redis targets.

Stream consumer group (bench/stream_load.py): "XREADGROUP+XACK", 50
consumers of one group each reading one entry of a pre-filled stream and
acknowledging it (the next read waits for the ack), pairs per second and the
pair's p50/p99; a Python driver, since redis-benchmark cannot ack the id it
read. Compared with redis-always; --stream-pairs 0 skips it.

Pub/Sub (bench/pubsub_load.py): PUBLISH throughput (redis-benchmark, c50-P1)
and publish-to-receive latency (p50/p99, one PUBLISH at a time) with 1 and
with 50 subscribers of the channel, which read every message; on dkv the
publisher uses the leader and the subscribers are spread over the nodes, a
follower first. Compared with redis-none (Redis does not persist messages;
dkv logs each PUBLISH). --pubsub-subscribers '' skips it; --pubsub-only runs
only it (a quick check: --pubsub-only --rounds 1 --scale 0.05).

With --memory-keys N (default 1,000,000) it also loads N keys (16-byte keys,
64-byte values, `redis-cli --pipe`) into a fresh dkv cluster, redis-always
and redis-none, compares the load's time with redis-always's and INFO
memory's used_memory and RSS with redis-none's; with --memory-collections N
(default 100,000), N lists of 10 elements and then one sorted set of 10*N
members.

Everything it starts is stopped at the end, also on errors and Ctrl-C.
Standard library only.
"""

import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import pubsub_load
import stream_load

SCENARIOS = [
    # (label, clients, pipeline, requests per run)
    ("c50-P1", 50, 1, 50_000),
    ("c50-P16", 50, 16, 200_000),
    ("c1-P1", 1, 1, 5_000),
]
# Lua scripts, loaded (SCRIPT LOAD) on every target before their tests: a
# write (INCR + EXPIRE, a rate limiter's counter) and a read (a GET).
INCR_EXPIRE = ("local n = redis.call('INCR', KEYS[1]) "
               "redis.call('EXPIRE', KEYS[1], ARGV[1]) return n")
GET_SCRIPT = "return redis.call('GET', KEYS[1])"
SCRIPTS = (INCR_EXPIRE, GET_SCRIPT)


def sha1_hex(text):
    return hashlib.sha1(text.encode()).hexdigest()


# redis-benchmark's own tests, then custom commands (label -> argv): ZRANGE
# by rank (10 elements of a 100-member sorted set), BLPOP on a list filled
# beforehand with one element per request, so every BLPOP is served, EVALSHA
# of the INCR + EXPIRE script on random counters, EVALSHA_RO of the GET
# script on the SET test's keys, GEOADD of one point (a random member) to one
# geo set, SETBIT of one bit of random bitmaps and PFADD of random elements
# to one HyperLogLog, XADD of one entry (a random value) to one stream.
BUILTIN = ("SET", "GET", "LPUSH", "LPOP", "SADD", "ZADD")
CUSTOM = {
    "ZRANGE": ["ZRANGE", "bench:z", "0", "9"],
    "BLPOP": ["BLPOP", "bench:bl", "1"],
    "EVALSHA": ["EVALSHA", sha1_hex(INCR_EXPIRE), "1", "bench:rl:__rand_int__", "60"],
    "EVALSHA_RO": ["EVALSHA_RO", sha1_hex(GET_SCRIPT), "1", "key:__rand_int__"],
    "GEOADD": ["GEOADD", "bench:geo", "13.361389", "38.115556", "m:__rand_int__"],
    # redis-benchmark pads __rand_int__ to 12 digits, which no bit offset
    # parser takes (leading zeros), so the random part is the key.
    "SETBIT": ["SETBIT", "bench:bits:__rand_int__", "100", "1"],
    "PFADD": ["PFADD", "bench:hll", "e:__rand_int__"],
    "XADD": ["XADD", "bench:xadd", "*", "f", "__rand_int__"],
}
TESTS = BUILTIN + tuple(CUSTOM)
# Writes are compared with Redis appendfsync always, reads with no persistence.
READS = ("GET", "ZRANGE", "EVALSHA_RO")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout_s):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last})")


def redis_cli(port, *args, stdin=None):
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args],
        input=stdin, capture_output=True, check=True, timeout=600,
    ).stdout


class Target:
    name = ""
    port = 0

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class RedisTarget(Target):
    def __init__(self, name, workdir, persistence):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if persistence:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            wait_until(f"{name} to answer PING", lambda: redis_cli(self.port, "PING").strip() == b"PONG", 15)
        except BaseException:
            self.stop()
            raise


def make_certs(cli_bin, certs_dir):
    """A cluster CA in certs_dir (dkv-cli certs ca)."""
    subprocess.run([cli_bin, "certs", "ca", "--dir", certs_dir], check=True,
                   capture_output=True)


def make_node_cert(cli_bin, certs_dir, node_id):
    """Node node_id's certificate, also valid for 127.0.0.1 and localhost."""
    subprocess.run([cli_bin, "certs", "node", "--dir", certs_dir, "--id", str(node_id),
                    "--names", "127.0.0.1,localhost"], check=True, capture_output=True)


class TlsView(Target):
    """The TLS port of a running dkv target (its processes belong to that target)."""

    def __init__(self, plain, ca_path):
        self.name = plain.name + "-tls"
        self.plain = plain
        self.port = plain.nodes[plain.leader_index]["tls"]
        self.tls_ca = ca_path
        self.procs = []


class DkvTarget(Target):
    def __init__(self, workdir, nodes, server_bin, data_dir, raft_keys="", log_level="warn",
                 name="dkv", certs_dir=None, cli_bin=None):
        self.name = name
        self.workdir = workdir
        self.server_bin = server_bin
        self.log_level = log_level
        self.nodes = []
        for i in range(1, nodes + 1):
            self.nodes.append({"id": i, "resp": free_port(), "http": free_port(),
                               "tls": free_port()})
        self.procs = []
        self.logs = []
        for node in self.nodes:
            peers = [n for n in self.nodes if n["id"] != node["id"]]
            node_dir = os.path.join(data_dir, name, f"node{node['id']}")
            shutil.rmtree(node_dir, ignore_errors=True)
            lines = [
                f"id: {node['id']}",
                "cluster_id: bench",
                f"resp_addr: 127.0.0.1:{node['resp']}",
                f"http_addr: 127.0.0.1:{node['http']}",
                f"data_dir: {node_dir}",
                "peers:" + ("" if peers else " []"),
            ]
            for p in peers:
                lines.append(f"  - {{ id: {p['id']}, resp_addr: 127.0.0.1:{p['resp']}, "
                             f"http_addr: 127.0.0.1:{p['http']} }}")
            if peers:
                # Benchmarks measure the data path; peer mTLS is not under test.
                lines.append("insecure_peer_rpc: true")
            if raft_keys:
                lines.append(f"raft: {{ {raft_keys} }}")
            if certs_dir:
                make_node_cert(cli_bin, certs_dir, node["id"])
                lines.append(f"tls_resp_addr: 127.0.0.1:{node['tls']}")
                lines.append(f"client_tls: {{ cert_path: {certs_dir}/node{node['id']}.pem, "
                             f"key_path: {certs_dir}/node{node['id']}-key.pem, auth_clients: no }}")
            path = os.path.join(workdir, f"{name}-node{node['id']}.yaml")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            node["config"] = path
            node["dir"] = node_dir
            node["log"] = os.path.join(workdir, f"{name}-node{node['id']}.log")
            self.procs.append(self.spawn(node))
        try:
            wait_until("a dkv leader", self._leader_known, 30)
        except BaseException:
            self.stop()
            raise
        self.port = self.nodes[self.leader_index]["resp"]

    def spawn(self, node):
        """Starts one node's process (appending to its log)."""
        log = open(node["log"], "a")
        self.logs.append(log)
        env = dict(os.environ, RUST_LOG=self.log_level, NO_COLOR="1")
        return subprocess.Popen([self.server_bin, "--config", node["config"]], stdout=log,
                                stderr=subprocess.STDOUT, env=env)

    def status(self, node):
        with urllib.request.urlopen(f"http://127.0.0.1:{node['http']}/status", timeout=2) as r:
            return json.load(r)

    def _leader_known(self):
        statuses = [self.status(n) for n in self.nodes]
        leaders = {s["leader"] for s in statuses}
        if len(leaders) != 1 or None in leaders:
            return False
        leader_id = leaders.pop()
        self.leader_index = next(i for i, n in enumerate(self.nodes) if n["id"] == leader_id)
        return all(not s["loading"] for s in statuses)


def run_benchmark(port, clients, pipeline, requests, value_size, tls, extra):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
         "-P", str(pipeline), "-d", str(value_size), "-r", "100000", "--csv"] + tls + extra,
        capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed on port {port}: {out.stderr.strip()}")
    return list(csv.DictReader(out.stdout.splitlines()))


def pipe(port, commands, tls):
    """Send RESP `commands` (lists of str) with redis-cli --pipe (`tls`: the
    redis-cli options for a TLS port, empty for a plain one)."""
    data = "".join(
        f"*{len(c)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in c) for c in commands)
    redis_cli(port, *tls, "--pipe", stdin=data.encode())


def benchmark(port, clients, pipeline, requests, value_size, tls_ca=None):
    tls = ["--tls", "--cacert", tls_ca] if tls_ca else []
    result = {}

    def keep(test, row):
        result[test] = {
            "rps": float(row["rps"]),
            "p50": float(row["p50_latency_ms"]),
            "p99": float(row["p99_latency_ms"]),
        }

    for row in run_benchmark(port, clients, pipeline, requests, value_size, tls,
                             ["-t", ",".join(t.lower() for t in BUILTIN)]):
        if row["test"] in BUILTIN:
            keep(row["test"], row)
    # Fixtures for the custom commands, sent to the port under test (the
    # leader's, for dkv): a 100-member sorted set, and one list element per
    # BLPOP (and some to spare, so none waits for its timeout).
    pipe(port, [["DEL", "bench:z", "bench:bl"],
                ["ZADD", "bench:z"] + [x for i in range(100) for x in (str(i), f"m{i}")]], tls)
    chunk = 1000
    pipe(port, [["RPUSH", "bench:bl"] + ["x"] * chunk
                for _ in range(requests // chunk + 2)], tls)
    pipe(port, [["SCRIPT", "LOAD", script] for script in SCRIPTS], tls)
    for test, argv in CUSTOM.items():
        rows = run_benchmark(port, clients, pipeline, requests, value_size, tls, argv)
        if rows:
            keep(test, rows[0])
    missing = [t for t in TESTS if t not in result]
    if missing:
        raise RuntimeError(f"redis-benchmark printed no {missing} on port {port}")
    return result


def load_collections(port, kind, count):
    """The memory fixtures: one sorted set of `count` members (ZADD, 100 a
    command), or `count` lists of 10 elements."""
    if kind == "zset":
        pipe(port, [["ZADD", "bench:bigz"] + [x for i in range(start, min(start + 100, count))
                                               for x in (str(i), f"member:{i:010d}")]
                    for start in range(0, count, 100)], [])
    else:
        pipe(port, [["RPUSH", f"list:{i:08d}"] + [f"element:{j}" for j in range(10)]
                    for i in range(count)], [])


def load_keys(port, count, path):
    if not os.path.exists(path):
        value = "v" * 64
        with open(path, "w") as f:
            for i in range(count):
                key = f"key:{i:012d}"  # 16 bytes
                f.write(f"*3\r\n$3\r\nSET\r\n$16\r\n{key}\r\n$64\r\n{value}\r\n")
    with open(path, "rb") as f:
        data = f.read()
    redis_cli(port, "--pipe", stdin=data)


def info_memory(port, field):
    for line in redis_cli(port, "INFO", "memory").decode().splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":", 1)[1])
    raise RuntimeError(f"no {field} in INFO memory on port {port}")


def used_memory(port):
    return info_memory(port, "used_memory")


def used_memory_once_compacted(port, timeout_s=15):
    """(used_memory, compacted): used_memory once the node's snapshot covers
    everything it applied (INFO raft: raft_snapshot_index reaches
    raft_last_applied), i.e. the log of what was loaded is compacted; the
    figure at the timeout, and False, if no snapshot was due."""
    deadline = time.monotonic() + timeout_s
    compacted = False
    while time.monotonic() < deadline and not compacted:
        fields = dict(line.split(":", 1) for line in
                      redis_cli(port, "INFO", "raft").decode().splitlines() if ":" in line)
        compacted = (int(fields.get("raft_snapshot_index", 0))
                     >= int(fields.get("raft_last_applied", 1)))
        if not compacted:
            time.sleep(0.2)
    # Freeing the compacted entries happens off the Raft loop, just after.
    time.sleep(0.5)
    return used_memory(port), compacted


# The Pub/Sub rows: "PUBLISH" (redis-benchmark's replies per second and
# latency, c50-P1, while the subscribers read) and "pub->recv" (arrivals per
# second and publish-to-receive latency, one PUBLISH at a time).
PUBSUB_TESTS = ("PUBLISH", "pub->recv")


# The consumer-group row (bench/stream_load.py): XREADGROUP + XACK pairs, 50
# consumers, one pair outstanding each.
STREAM_TEST = "XREADGROUP+XACK"
STREAM_CLIENTS = 50


def pubsub_run(target, subscribers, args):
    """One target's Pub/Sub rows with `subscribers` subscribers."""
    if isinstance(target, DkvTarget):
        leader = target.leader_index
        others = [n["resp"] for i, n in enumerate(target.nodes) if i != leader]
        sub_ports = others + [target.port]
    else:
        sub_ports = [target.port]
    value_size = min(args.value_size, 1024)
    return {
        "PUBLISH": pubsub_load.throughput(
            target.port, sub_ports, subscribers, 50, 1,
            max(1000, int(args.pubsub_messages * args.scale)), value_size),
        "pub->recv": pubsub_load.latency(
            target.port, sub_ports, subscribers,
            max(100, int(args.pubsub_latency_messages * args.scale))),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--value-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's request count")
    ap.add_argument("--memory-keys", type=int, default=1_000_000, help="0 skips the memory comparison")
    ap.add_argument("--memory-collections", type=int, default=100_000,
                    help="N lists of 10 elements and one sorted set of 10*N members, "
                         "dkv's used_memory beside Redis's; 0 skips")
    ap.add_argument("--server-bin", default="target/release/dkv-server")
    ap.add_argument("--data-dir", default="target/bench/data", help="dkv data (on the disk under test)")
    ap.add_argument("--csv", default="target/bench/results.csv")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the nodes' logs and configs after a run that completed too")
    ap.add_argument("--reads", choices=("index", "lease", "both"), default="both",
                    help="dkv clusters to run: ReadIndex reads (the default config, target "
                         "'dkv'), leader-lease reads (raft.lease_reads, target 'dkv-lease'), or both")
    ap.add_argument("--no-tls", action="store_true",
                    help="skip the dkv-tls target (RESP over TLS on the dkv cluster)")
    ap.add_argument("--cli-bin", default=None,
                    help="dkv-cli, for the TLS certificates (default: beside --server-bin)")
    ap.add_argument("--pubsub-subscribers", default="1,50",
                    help="subscriber counts for the Pub/Sub rows ('' skips them)")
    ap.add_argument("--pubsub-messages", type=int, default=100_000,
                    help="PUBLISHes per throughput run (times --scale)")
    ap.add_argument("--pubsub-latency-messages", type=int, default=2_000,
                    help="PUBLISHes per latency run (times --scale)")
    ap.add_argument("--stream-pairs", type=int, default=20_000,
                    help="XREADGROUP+XACK pairs per consumer-group run (times --scale; 0 skips)")
    ap.add_argument("--pubsub-only", action="store_true",
                    help="only the Pub/Sub rows (no redis-benchmark tests, no memory)")
    args = ap.parse_args()
    if args.pubsub_only:
        args.memory_keys = args.memory_collections = args.stream_pairs = 0

    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} not found (apt-get install redis-server redis-tools)")
    if not os.access(args.server_bin, os.X_OK):
        sys.exit(f"bench: {args.server_bin} not found; run `cargo build --release` first")

    workdir = tempfile.mkdtemp(prefix="dkv-bench-")
    os.makedirs(args.data_dir, exist_ok=True)
    os.makedirs(os.path.dirname(args.csv) or ".", exist_ok=True)
    targets = []
    tls_views = []
    completed = False
    try:
        certs_dir = cli_bin = None
        if not args.no_tls and args.reads in ("index", "both"):
            cli_bin = os.path.abspath(args.cli_bin or os.path.join(
                os.path.dirname(args.server_bin), "dkv-cli"))
            if not os.access(cli_bin, os.X_OK):
                sys.exit(f"bench: {cli_bin} not found (needed for TLS certificates; --no-tls skips)")
            certs_dir = os.path.join(workdir, "certs")
            make_certs(cli_bin, certs_dir)
        if args.reads in ("index", "both"):
            targets.append(DkvTarget(workdir, args.nodes, os.path.abspath(args.server_bin),
                                     os.path.abspath(args.data_dir), certs_dir=certs_dir,
                                     cli_bin=cli_bin))
            if certs_dir:
                tls_views.append(TlsView(targets[-1], os.path.join(certs_dir, "ca.pem")))
        if args.reads in ("lease", "both"):
            targets.append(DkvTarget(workdir, args.nodes, os.path.abspath(args.server_bin),
                                     os.path.abspath(args.data_dir), raft_keys="lease_reads: true",
                                     name="dkv-lease"))
        dkv_targets = list(targets)
        targets += tls_views
        targets.append(RedisTarget("redis-always", workdir, persistence=True))
        targets.append(RedisTarget("redis-none", workdir, persistence=False))
        print("bench: " + ", ".join(f"{t.name} :{t.port}" for t in targets)
              + f" ({args.nodes} dkv nodes each, leader ports shown); "
              f"{args.rounds} rounds, -d {args.value_size}", flush=True)

        samples = {}  # (target, scenario, test) -> list of result dicts
        for rnd in range(0 if args.pubsub_only else args.rounds):
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for label, clients, pipeline, requests in SCENARIOS:
                n = max(1000, int(requests * args.scale))
                for target in order:
                    res = benchmark(target.port, clients, pipeline, n, args.value_size,
                                    getattr(target, "tls_ca", None))
                    for test in TESTS:
                        samples.setdefault((target.name, label, test), []).append(res[test])
                    print(f"  round {rnd + 1} {label:8} {target.name:13} "
                          + " ".join(f"{t} {res[t]['rps']:,.0f}/s" for t in TESTS), flush=True)

        stream_label = f"stream-c{STREAM_CLIENTS}"
        stream_targets = [t for t in targets if t not in tls_views]
        for rnd in range(args.rounds if args.stream_pairs > 0 else 0):
            order = stream_targets[rnd % len(stream_targets):] + stream_targets[:rnd % len(stream_targets)]
            for target in order:
                r = stream_load.run(target.port, STREAM_CLIENTS,
                                    max(500, int(args.stream_pairs * args.scale)))
                samples.setdefault((target.name, stream_label, STREAM_TEST), []).append(r)
                print(f"  round {rnd + 1} {stream_label:10} {target.name:13} "
                      f"{STREAM_TEST} {r['rps']:,.0f}/s p50 {r['p50']:.3f} ms", flush=True)

        def med(name, label, test, field):
            return statistics.median(s[field] for s in samples[(name, label, test)])

        pubsub_subscribers = [int(n) for n in args.pubsub_subscribers.split(",") if n.strip()]
        pubsub_targets = [t for t in targets if t not in tls_views]
        for rnd in range(args.rounds if pubsub_subscribers else 0):
            order = pubsub_targets[rnd % len(pubsub_targets):] + pubsub_targets[:rnd % len(pubsub_targets)]
            for subscribers in pubsub_subscribers:
                label = f"pubsub-s{subscribers}"
                for target in order:
                    res = pubsub_run(target, subscribers, args)
                    for test, r in res.items():
                        samples.setdefault((target.name, label, test), []).append(r)
                    print(f"  round {rnd + 1} {label:10} {target.name:13} "
                          + " ".join(f"{t} {r['rps']:,.0f}/s p50 {r['p50']:.3f} ms"
                                     for t, r in res.items()), flush=True)

        rows = []
        print()
        print(f"{'scenario':9} {'test':10} {'target':13} {'req/s':>10} {'p50 ms':>7} {'p99 ms':>7}  ratio")
        # The driver rows: Pub/Sub beside redis-none, the consumer group beside
        # redis-always.
        driver_rows = [(f"pubsub-s{n}", t, "redis-none", pubsub_targets)
                       for n in pubsub_subscribers for t in PUBSUB_TESTS]
        if args.stream_pairs > 0:
            driver_rows.append((stream_label, STREAM_TEST, "redis-always", stream_targets))
        for label, test, anchor, row_targets in driver_rows:
            anchor_rps = med(anchor, label, test, "rps")
            for target in row_targets:
                rps = med(target.name, label, test, "rps")
                p50 = med(target.name, label, test, "p50")
                p99 = med(target.name, label, test, "p99")
                ratio = rps / anchor_rps if target in dkv_targets and anchor_rps else None
                rows.append({"scenario": label, "test": test, "target": target.name,
                             "rps": round(rps), "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                             "ratio_vs_" + anchor: round(ratio, 3) if ratio else ""})
                note = f"  {ratio:.2f}x {anchor}" if ratio else ""
                print(f"{label:9} {test:10} {target.name:13} {rps:>10,.0f} {p50:>7.3f} {p99:>7.3f}{note}")
        for label, _, _, _ in SCENARIOS if not args.pubsub_only else []:
            for test in TESTS:
                anchor = "redis-none" if test in READS else "redis-always"
                anchor_rps = med(anchor, label, test, "rps")
                for target in targets:
                    rps = med(target.name, label, test, "rps")
                    p50 = med(target.name, label, test, "p50")
                    p99 = med(target.name, label, test, "p99")
                    ratio = rps / anchor_rps if target in dkv_targets and anchor_rps else None
                    rows.append({"scenario": label, "test": test, "target": target.name,
                                 "rps": round(rps), "p50_ms": p50, "p99_ms": p99,
                                 "ratio_vs_" + anchor: round(ratio, 3) if ratio else ""})
                    note = f"  {ratio:.2f}x {anchor}" if ratio else ""
                    print(f"{label:9} {test:10} {target.name:13} {rps:>10,.0f} {p50:>7.3f} {p99:>7.3f}{note}")

        if tls_views:
            print()
            print(f"{'scenario':9} {'test':10} {'plain req/s':>12} {'tls req/s':>12} "
                  f"{'plain p50':>9} {'tls p50':>8}  tls/plain")
            for label, _, _, _ in SCENARIOS if not args.pubsub_only else []:
                for test in TESTS:
                    for view in tls_views:
                        plain_rps = med(view.plain.name, label, test, "rps")
                        tls_rps = med(view.name, label, test, "rps")
                        ratio = tls_rps / plain_rps if plain_rps else 0.0
                        print(f"{label:9} {test:10} {plain_rps:>12,.0f} {tls_rps:>12,.0f} "
                              f"{med(view.plain.name, label, test, 'p50'):>9.3f} "
                              f"{med(view.name, label, test, 'p50'):>8.3f}  {ratio:.2f}x")
                        rows.append({"scenario": label, "test": test, "target": view.name + "/plain",
                                     "rps": round(tls_rps), "p50_ms": "", "p99_ms": "",
                                     "ratio_vs_" + view.plain.name: round(ratio, 3)})

        if args.memory_keys > 0:
            pipe_file = os.path.join(workdir, "keys.resp")
            mem, rss, took = {}, {}, {}
            redis_none = next(t for t in targets if t.name == "redis-none")
            redis_always = next(t for t in targets if t.name == "redis-always")
            dkv_name = dkv_targets[0].name
            # A fresh cluster, as a user's first bulk load meets it: the
            # benchmark cluster's log and snapshots hold the runs above.
            fresh = DkvTarget(workdir, args.nodes, os.path.abspath(args.server_bin),
                              os.path.abspath(args.data_dir), name=f"{dkv_name}-keys")
            targets.append(fresh)
            # The load's time is issue 17's bulk-load figure (against Redis
            # `always`); memory is compared with Redis without persistence.
            for target, label in ((fresh, dkv_name), (redis_always, redis_always.name),
                                  (redis_none, redis_none.name)):
                redis_cli(target.port, "FLUSHALL")
                started = time.monotonic()
                load_keys(target.port, args.memory_keys, pipe_file)
                took[label] = time.monotonic() - started
                mem[label] = used_memory(target.port)
                # dkv answers with its own resident set (/proc/self/statm).
                rss[label] = info_memory(target.port, "used_memory_rss")
                print(f"memory: {label:12} {args.memory_keys:,} keys loaded in {took[label]:.1f}s, "
                      f"used_memory {mem[label] / 2**20:,.1f} MiB, "
                      f"RSS {rss[label] / 2**20:,.1f} MiB")
            fresh.stop()
            redis_cli(redis_always.port, "FLUSHALL")
            ratio = mem[dkv_name] / mem["redis-none"]
            rss_ratio = rss[dkv_name] / rss["redis-none"]
            load_ratio = took[dkv_name] / took["redis-always"]
            # used_memory is the live heap on both (dkv counts it in its
            # allocator wrapper, Redis in zmalloc); RSS compares whole
            # processes, allocator retention included.
            print(f"memory: {dkv_name}/redis used_memory ratio {ratio:.2f}, "
                  f"RSS ratio {rss_ratio:.2f} (leader process vs redis used_memory_rss)")
            print(f"bulk load: {dkv_name} took {load_ratio:.2f}x redis-always's time "
                  f"({took[dkv_name]:.1f}s vs {took['redis-always']:.1f}s)")
            rows.append({"scenario": f"memory-{args.memory_keys}-keys", "test": "used_memory",
                         "target": dkv_name, "rps": mem[dkv_name], "p50_ms": "", "p99_ms": "",
                         "ratio_vs_redis-none": round(ratio, 3)})
            rows.append({"scenario": f"memory-{args.memory_keys}-keys", "test": "rss",
                         "target": dkv_name, "rps": rss[dkv_name], "p50_ms": "", "p99_ms": "",
                         "ratio_vs_redis-none": round(rss_ratio, 3)})
            rows.append({"scenario": f"bulk-load-{args.memory_keys}-keys", "test": "seconds",
                         "target": dkv_name, "rps": round(took[dkv_name], 2), "p50_ms": "",
                         "p99_ms": "", "ratio_vs_redis-always": round(load_ratio, 3)})

        if args.memory_collections > 0:
            redis_none = next(t for t in targets if t.name == "redis-none")
            dkv_name = dkv_targets[0].name
            for kind, count in (("zset", args.memory_collections * 10),
                                ("lists", args.memory_collections)):
                mem = {}
                # A fresh cluster per fixture: a flushed dkv frees its map in
                # the background and its Raft log and snapshots hold the old
                # keys' bytes until compaction, so an allocation delta taken
                # after FLUSHALL would fall during the load.
                fresh = DkvTarget(workdir, args.nodes, os.path.abspath(args.server_bin),
                                  os.path.abspath(args.data_dir), name=f"{dkv_name}-{kind}")
                targets.append(fresh)
                for target, label in ((fresh, dkv_name), (redis_none, redis_none.name)):
                    redis_cli(target.port, "FLUSHALL")
                    before = used_memory(target.port)
                    if target is fresh:
                        before_dkv = before
                    started = time.monotonic()
                    load_collections(target.port, kind, count)
                    mem[label] = used_memory(target.port) - before
                    print(f"memory: {label:10} {kind} ({count:,}"
                          f"{' members' if kind == 'zset' else ' lists of 10'}) loaded in "
                          f"{time.monotonic() - started:.1f}s, used_memory +{mem[label] / 2**20:,.1f} MiB")
                # The same once the load's Raft log is compacted: the load
                # ends near a snapshot's trigger, and until that snapshot is
                # written the log holds every command of the load.
                settled, compacted = used_memory_once_compacted(fresh.port)
                settled -= before_dkv
                fresh.stop()
                ratio = mem[dkv_name] / mem["redis-none"]
                settled_ratio = settled / mem["redis-none"]
                later = ("once its log is compacted" if compacted
                         else "15 s later (no snapshot was due: the log still holds the load)")
                print(f"memory: {kind}: {dkv_name}/redis used_memory ratio {ratio:.2f} at the "
                      f"load's end, {settled_ratio:.2f} {later} (+{settled / 2**20:,.1f} MiB)")
                rows.append({"scenario": f"memory-{kind}-{count}", "test": "used_memory",
                             "target": dkv_name, "rps": mem[dkv_name], "p50_ms": "", "p99_ms": "",
                             "ratio_vs_redis-none": round(ratio, 3)})
                rows.append({"scenario": f"memory-{kind}-{count}", "test": "used_memory_compacted",
                             "target": dkv_name, "rps": settled, "p50_ms": "", "p99_ms": "",
                             "ratio_vs_redis-none": round(settled_ratio, 3)})

        fields = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                        if k in rows[0] else 99)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        print(f"\nbench: wrote {args.csv}")
        completed = True
    finally:
        for t in targets:
            t.stop()
        for t in targets:
            for log in getattr(t, "logs", []):
                log.close()
        if completed and not args.keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        elif completed:
            print(f"bench: node logs and configs kept in {workdir}", file=sys.stderr)
        else:
            # The nodes' logs say why a run failed (a leader change, a node
            # that stopped): keep them.
            print(f"bench: failed; node logs and configs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
