"""Pub/Sub load for bench.py: PUBLISH throughput and publish-to-receive
latency with N subscribers, measured by the Rust driver
integration/src/bin/pubsub_load.rs (its docs say how; built here on first
use), so the subscribers' reading is not what is measured.

Throughput: redis-benchmark's `PUBLISH bench:ps <payload>` (the bench's
clients and pipeline) while N subscribers of `bench:ps` read everything;
the row is redis-benchmark's (PUBLISH replies per second, p50/p99), and
every subscriber must then have received every message (checked).

Latency: one publisher sends `PUBLISH bench:ps ts:<send time>`, one at a
time (each waits for its reply); the row is the p50/p99 over all (message,
subscriber) arrivals of arrival minus send time, one clock (the driver's).
On dkv the publisher is the leader's port and the subscribers are spread
over every node, a follower first (a single subscriber is on a follower:
delivery crosses nodes).
"""

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.environ.get("DKV_PUBSUB_LOAD") or os.path.join(ROOT, "target", "release", "pubsub_load")


def _driver():
    if not os.path.exists(DRIVER):
        subprocess.run(["cargo", "build", "--release", "-p", "dkv-integration", "--bin", "pubsub_load"],
                       cwd=ROOT, check=True, timeout=3600)
    return DRIVER


def _run(args, timeout_s):
    out = subprocess.run([_driver()] + [str(a) for a in args], capture_output=True, text=True,
                         timeout=timeout_s)
    if out.returncode != 0:
        raise RuntimeError(f"pubsub_load {args[0]} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ports(ports):
    return ",".join(str(p) for p in ports)


def throughput(publish_port, sub_ports, subscribers, clients, pipeline, requests, payload_size):
    """redis-benchmark's PUBLISH row with `subscribers` reading."""
    return _run(["throughput", publish_port, _ports(sub_ports), subscribers, clients, pipeline,
                 requests, payload_size], timeout_s=1200)


def latency(publish_port, sub_ports, subscribers, messages):
    """Publish-to-receive p50/p99 (ms) over every arrival, one PUBLISH at a
    time; `rps` is the arrivals per second over the run."""
    return _run(["latency", publish_port, _ports(sub_ports), subscribers, messages], timeout_s=600)
