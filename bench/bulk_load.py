#!/usr/bin/env python3
"""Bulk load: `redis-cli --pipe` of N SETs into a running server, timed.

    make cluster && python3 bench/bulk_load.py            # the local cluster's leader
    python3 bench/bulk_load.py --port 6400                # e.g. redis-server, appendfsync always

Keys are `key:%012d` (16 bytes), values --value-size bytes. Against the local
cluster (ports 7001-7003) the leader is found with INFO replication. Prints
the wall time and, for every dkv-server / redis-server process on the
machine, its CPU (utime + stime from /proc) over the load per key and its
resident set after it. Start each run on a fresh data directory (`make
clean-data`) or an empty Redis, or the keys overwrite old ones.
Standard library only.
"""

import argparse
import os
import subprocess
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def servers():
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            if comm not in ("dkv-server", "redis-server"):
                continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
        except OSError:
            continue
        out[pid] = (comm, (int(fields[11]) + int(fields[12])) / CLK_TCK, rss)
    return out


def leader(ports):
    for port in ports:
        info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "replication"],
                              capture_output=True, text=True).stdout
        if "role:master" in info:
            return port
    raise SystemExit(f"no leader among ports {ports}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, help="target port (default: the local cluster's leader)")
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--value-size", type=int, default=16)
    args = ap.parse_args()
    port = args.port or leader((7001, 7002, 7003))
    path = os.path.join(tempfile.gettempdir(), f"dkv-bulk-{args.keys}-{args.value_size}.resp")
    if not os.path.exists(path):
        value = b"v" * args.value_size
        with open(path + ".part", "wb") as f:
            for i in range(args.keys):
                key = b"key:%012d" % i
                f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                        % (len(key), key, len(value), value))
        os.replace(path + ".part", path)
    before = servers()
    started = time.monotonic()
    with open(path, "rb") as stream:
        done = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=stream,
                              capture_output=True, text=True)
    took = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"redis-cli --pipe failed: {done.stdout}{done.stderr}")
    after = servers()
    print(f"port {port}: {args.keys:,} SETs in {took:.2f} s ({done.stdout.strip().splitlines()[-1]})")
    total = 0.0
    for pid, (comm, cpu, rss) in sorted(after.items()):
        if pid in before:
            used = cpu - before[pid][1]
            total += used
            print(f"  {comm} {pid}: CPU {used:.2f} s = {used / args.keys * 1e6:.1f} us/key, "
                  f"RSS {rss / 2**20:,.0f} MiB")
    print(f"  all: {total / args.keys * 1e6:.1f} us of CPU per key")


if __name__ == "__main__":
    main()
