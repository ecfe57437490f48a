#!/usr/bin/env python3
"""CPU per acknowledged write: dkv builds beside Redis `appendfsync always`.

For each round (--rounds, default 3), in a rotating order, each target is
started fresh on free loopback ports and loaded with redis-benchmark, one
run per write in --tests (default SET; any of SET LPUSH LPOP SADD ZADD, as
`redis-benchmark -t`, and bench.py's EVALSHA, INCR + EXPIRE on random
counters; LPOP pops what the LPUSH run before it pushed, so list LPUSH
first):

  * each dkv build given with --build NAME=PATH (a 3-node cluster, ReadIndex
    reads, no TLS, insecure peer RPC, as `make bench` runs it): each write
    at `-c 50 -P 1` and `-c 50 -P 16` against the leader, `-c 50 -P 1`
    against a follower;
  * redis-server with appendonly yes / appendfsync always: `-c 50 -P 1` and
    `-c 50 -P 16`.

The figure is CPU per request: the target's processes' utime + stime from
/proc/<pid>/stat over the run (all three nodes for dkv; redis-benchmark's own
CPU is not counted), divided by the requests. On a machine shared with other
work, CPU per request moves much less than req/s, which is reported beside
it. The 1-minute load average before each run is printed too. Medians over
the rounds are printed at the end; every sample goes to --csv.

Standard library only; reuses bench.py's targets.
"""

import argparse
import csv
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            # Field 2 (comm) may hold spaces: split after its closing paren.
            fields = f.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


WRITES = ("SET", "LPUSH", "LPOP", "SADD", "ZADD", "EVALSHA")


def benchmark_args(test):
    """redis-benchmark's arguments for one write of WRITES."""
    if test in bench.BUILTIN:
        return ["-t", test.lower()]
    return bench.CUSTOM[test]


def measure(port, pids, clients, pipeline, requests, value_size, test):
    load = loadavg()
    before = cpu_seconds(pids)
    try:
        rows = bench.run_benchmark(port, clients, pipeline, requests, value_size, [],
                                   benchmark_args(test))
    except RuntimeError as e:
        # redis-benchmark stops at the first error reply (on a loaded machine,
        # a forward that timed out): the run is reported and left out.
        print(f"  run failed: {e}", flush=True)
        return None
    cpu = cpu_seconds(pids) - before
    rps = float(rows[0]["rps"])
    return {"rps": rps, "cpu_us": cpu * 1e6 / requests, "load": load}


def run_all(runs, pids, tests, args):
    """Every test at every scenario of `runs`, in that order per scenario:
    (label, result or None) pairs, the label naming scenario and test."""
    port = runs[0][1]
    if "EVALSHA" in tests:
        bench.pipe(port, [["SCRIPT", "LOAD", bench.INCR_EXPIRE]], [])
    results = []
    for label, port, c, p in runs:
        for test in tests:
            res = measure(port, pids, c, p, args.requests, args.value_size, test)
            results.append((f"{label} {test}" if tests != ["SET"] else label, res))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", action="append", default=[],
                    help="NAME=PATH of a dkv-server binary (repeat for an A/B)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200_000, help="requests per run")
    ap.add_argument("--tests", default="SET",
                    help="comma-separated writes to run, of " + " ".join(WRITES))
    ap.add_argument("--value-size", type=int, default=64)
    ap.add_argument("--data-dir", default="target/bench/data")
    ap.add_argument("--csv", default="target/bench/cpu_per_write.csv")
    args = ap.parse_args()
    tests = [t.strip().upper() for t in args.tests.split(",") if t.strip()]
    unknown = [t for t in tests if t not in WRITES]
    if unknown:
        ap.error(f"unknown tests {unknown}: choose from {' '.join(WRITES)}")
    builds = [b.split("=", 1) for b in (args.build or ["dkv=target/release/dkv-server"])]
    workdir = tempfile.mkdtemp(prefix="dkv-cpu-")
    data_dir = os.path.abspath(args.data_dir)
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(os.path.dirname(args.csv) or ".", exist_ok=True)
    names = [name for name, _ in builds] + ["redis-always"]
    samples = {}
    failures = []
    for rnd in range(args.rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for name in order:
            runs = []
            if name == "redis-always":
                target = bench.RedisTarget(f"redis-always-{rnd}", workdir, persistence=True)
                try:
                    pids = [p.pid for p in target.procs]
                    runs.append(("leader c50-P1", target.port, 50, 1))
                    runs.append(("leader c50-P16", target.port, 50, 16))
                    results = run_all(runs, pids, tests, args)
                finally:
                    target.stop()
            else:
                path = dict(builds)[name]
                target = bench.DkvTarget(workdir, 3, os.path.abspath(path), data_dir,
                                         name=f"{name}-{rnd}")
                try:
                    pids = [p.pid for p in target.procs]
                    follower = target.nodes[(target.leader_index + 1) % 3]["resp"]
                    runs.append(("leader c50-P1", target.port, 50, 1))
                    runs.append(("leader c50-P16", target.port, 50, 16))
                    runs.append(("follower c50-P1", follower, 50, 1))
                    results = run_all(runs, pids, tests, args)
                finally:
                    target.stop()
            for label, res in results:
                if res is None:
                    failures.append((rnd + 1, name, label))
                    continue
                samples.setdefault((name, label), []).append(res)
                print(f"round {rnd + 1} {name:14} {label:24} {res['rps']:>9,.0f} req/s "
                      f"{res['cpu_us']:6.1f} us CPU/req  load {res['load']:.2f}", flush=True)
    with open(args.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", "scenario", "round", "rps", "cpu_us_per_request", "load1"])
        for (name, label), rows in samples.items():
            for i, r in enumerate(rows):
                w.writerow([name, label, i + 1, f"{r['rps']:.0f}", f"{r['cpu_us']:.2f}",
                            f"{r['load']:.2f}"])
    for rnd, name, label in failures:
        print(f"round {rnd} {name} {label}: failed, left out of the medians")
    print(f"\nmedians over {args.rounds} rounds ({args.requests:,} requests a run):")
    redis = {label: statistics.median(r["cpu_us"] for r in rows)
             for (name, label), rows in samples.items() if name == "redis-always"}
    for (name, label), rows in sorted(samples.items()):
        rps = statistics.median(r["rps"] for r in rows)
        cpu = statistics.median(r["cpu_us"] for r in rows)
        anchor = redis.get(label.replace("follower", "leader"))
        ratio = f"  {cpu / anchor:4.2f}x redis CPU" if anchor and name != "redis-always" else ""
        print(f"  {name:14} {label:24} {rps:>9,.0f} req/s {cpu:6.1f} us CPU/req{ratio}")


if __name__ == "__main__":
    main()
