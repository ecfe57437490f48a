#!/usr/bin/env python3
"""`make bench-snapshot`: snapshot figures for a large dataset (issue 4, must-show 4).

Starts a dkv cluster (release build, data under --data-dir), loads --keys keys
(16-byte keys, 64-byte values, MSET batches of 1,000 pairs), lets every node
snapshot with the whole dataset in it, and reports:
  * snapshot time and size per node (from each node's "snapshot taken" log line),
  * the data directory's size per node after a clean stop,
  * restart-to-serving: from spawning every node again until each one answers a
    linearizable GET of the last key written (it loads its newest snapshot, then
    replays only the log after it),
  * how many log entries each node replayed after the snapshot.
Standard library only; everything it starts is stopped at the end.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import DkvTarget, redis_cli, wait_until  # noqa: E402

BATCH = 1000


def mset_stream(count):
    value = "v" * 64
    out = []
    for start in range(0, count, BATCH):
        n = min(BATCH, count - start)
        parts = [f"*{1 + 2 * n}\r\n$4\r\nMSET\r\n"]
        for i in range(start, start + n):
            parts.append(f"$16\r\nkey:{i:012d}\r\n$64\r\n{value}\r\n")
        out.append("".join(parts))
    return "".join(out).encode()


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def log_lines(path, pattern):
    with open(path, errors="replace") as f:
        return [line.strip() for line in f if pattern in line]


def field(line, name):
    m = re.search(rf"\b{name}=(\d+)", line)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-bin", default="target/release/dkv-server")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--data-dir", default=None, help="default: a temp dir")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="dkv-snapbench-")
    data_dir = args.data_dir or os.path.join(workdir, "data")
    batches = (args.keys + BATCH - 1) // BATCH
    # One snapshot per node once (nearly) the whole dataset is in.
    every = max(50, batches - 5)
    dkv = DkvTarget(workdir, args.nodes, args.server_bin, data_dir,
                    raft_keys=f"snapshot_every_entries: {every}, snapshot_log_growth_percent: 0", log_level="info")
    try:
        stream = mset_stream(args.keys)
        t0 = time.monotonic()
        redis_cli(dkv.port, "--pipe", stdin=stream)
        load_s = time.monotonic() - t0
        # A few more writes so the threshold passes with every key applied.
        for i in range(10):
            redis_cli(dkv.port, "SET", f"tail:{i}", "x")
        last_key = f"key:{args.keys - 1:012d}"
        commit = dkv.status(dkv.nodes[dkv.leader_index])["commit_index"]
        wait_until("a snapshot with the whole dataset on every node",
                   lambda: all(dkv.status(n)["snapshot_index"] >= commit - 20 for n in dkv.nodes),
                   300)
        print(f"loaded {args.keys:,} keys in {load_s:.1f} s ({args.keys / load_s:,.0f} keys/s), "
              f"commit index {commit}")
        for node in dkv.nodes:
            taken = log_lines(node["log"], "snapshot taken")[-1]
            print(f"node {node['id']}: snapshot at index {field(taken, 'index')}: "
                  f"{field(taken, 'payload_bytes') / 1e6:.1f} MB in {field(taken, 'elapsed_ms')} ms")
        dkv.stop()
        for node in dkv.nodes:
            print(f"node {node['id']}: data dir {dir_bytes(node['dir']) / 1e6:.1f} MB "
                  f"(snapshots {dir_bytes(os.path.join(node['dir'], 'snapshots')) / 1e6:.1f} MB)")

        t0 = time.monotonic()
        dkv.procs = [dkv.spawn(node) for node in dkv.nodes]
        served = {}
        deadline = time.monotonic() + 300
        while len(served) < len(dkv.nodes) and time.monotonic() < deadline:
            for node in dkv.nodes:
                if node["id"] in served:
                    continue
                try:
                    out = subprocess.run(["redis-cli", "-p", str(node["resp"]), "GET", last_key],
                                         capture_output=True, text=True, timeout=5).stdout.strip()
                except subprocess.TimeoutExpired:
                    continue
                if out == "v" * 64:
                    served[node["id"]] = time.monotonic() - t0
            time.sleep(0.05)
        for node in dkv.nodes:
            loaded = log_lines(node["log"], "snapshot loaded")
            opened = log_lines(node["log"], "opened write-ahead log")
            when = served.get(node["id"])
            print(f"node {node['id']}: restart to serving "
                  f"{'%.2f s' % when if when is not None else 'NOT SERVING'}; "
                  f"snapshot load {field(loaded[-1], 'elapsed_ms') if loaded else '?'} ms; "
                  f"log after the snapshot: {field(opened[-1], 'snapshot_index') if opened else '?'}"
                  f"..{field(opened[-1], 'last_index') if opened else '?'}")
        if len(served) < len(dkv.nodes):
            sys.exit("some node did not serve after the restart")
    finally:
        dkv.stop()
        print(f"(work dir {workdir})")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
