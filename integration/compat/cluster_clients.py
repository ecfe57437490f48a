"""redis-py's RedisCluster against dkv: bootstrap through one node (CLUSTER
SLOTS), the compatibility checks of redis_py_compat.py that a cluster client
can run (multi-key commands only on keys of one slot), replica reads
(read_from_replicas: READONLY connections), then, once the test has killed
the leader, keep writing until the client follows the new topology.

Usage: python3 cluster_clients.py HOST PORT LEADER_ADDR
Phase 1 ends with the line `phase1 done`; the script then reads one line
`go KILLED_ADDR` from stdin (the leader the test killed). Prints one line per
check; exits non-zero on the first failure. Every wait is bounded.
"""
import sys
import time

import redis
from redis.cluster import RedisCluster

host, port, leader = sys.argv[1], int(sys.argv[2]), sys.argv[3]
DEADLINE_S = 60


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


def retry(what, f):
    """Runs f until it succeeds, for at most DEADLINE_S (across a failover)."""
    deadline = time.monotonic() + DEADLINE_S
    attempts = 0
    while True:
        attempts += 1
        try:
            return f(), attempts
        except (redis.RedisError, OSError) as e:
            if time.monotonic() > deadline:
                check(what, False, f"still failing after {attempts} attempts: {e!r}")
            time.sleep(0.2)


rc = RedisCluster(host=host, port=port, socket_timeout=10)
primaries = [n.name for n in rc.get_primaries()]
check("bootstrap: one primary, the raft leader", primaries == [leader], primaries)
check("bootstrap: 3 nodes", len(rc.get_nodes()) == 3, [n.name for n in rc.get_nodes()])
check("keyslot", rc.keyslot("foo") == 12182 and rc.cluster_keyslot("foo") == 12182)
check("cluster info", rc.cluster_info()["cluster_state"] == "ok", rc.cluster_info())
shards = rc.cluster_shards()
check("cluster shards", len(shards) == 1 and len(shards[0]["nodes"]) == 3, shards)
check("cluster nodes", len(rc.cluster_nodes()) == 3, rc.cluster_nodes())

# The checks of redis_py_compat.py, in a cluster client's idiom.
rc.flushdb()
check("ping", rc.ping() is True)
check("set/get", rc.set("a", "1") and rc.get("a") == b"1")
p = rc.pipeline()
for i in range(100):
    p.set(f"k{i}", i)
p.incr("k0")
out = p.execute()
check("pipeline", out[:100] == [True] * 100 and out[100] == 1, out[95:])
p = rc.pipeline(transaction=True)
p.set("{t}1", "x").set("{t}2", "y").get("{t}1").hset("{t}h", mapping={"f": "1", "g": "2"})
out = p.execute()
# redis-py's cluster transactions return SET's raw `OK`.
check("transaction (one slot)", out[0] in (True, b"OK") and out[2:] == [b"x", 2], out)
with rc.pipeline(transaction=True) as p:
    p.watch("{c}counter")
    current = int(p.get("{c}counter") or 0)
    p.multi()
    p.set("{c}counter", current + 1)
    check("watch/exec (one slot)", p.execute()[0] in (True, b"OK"))
check("setex", rc.set("e", "v", ex=100))
ttl = rc.ttl("e")
check("ttl", 99 <= ttl <= 100, ttl)
rc.set("short", "v", px=200)
time.sleep(0.4)
check("expired", rc.get("short") is None and rc.exists("short") == 0)
check("persist", rc.persist("e") and rc.ttl("e") == -1)
keys = set(rc.scan_iter(match="k*", count=7))
check("scan_iter", keys == {f"k{i}".encode() for i in range(100)}, len(keys))
rc.hset("h", mapping={"f": "1", "g": "2"})
check("hgetall", rc.hgetall("h") == {b"f": b"1", b"g": b"2"})
check("hscan_iter", dict(rc.hscan_iter("h")) == {b"f": b"1", b"g": b"2"})
check("incrbyfloat", rc.incrbyfloat("fl", 10.5) == 10.5)
try:
    rc.hget("a", "f")
    check("wrongtype", False)
except redis.ResponseError as e:
    check("wrongtype", str(e).startswith("WRONGTYPE"), e)
check("mget (one slot)", rc.mget("{t}1", "{t}2") == [b"x", b"y"])
check("mget_nonatomic (many slots)", rc.mget_nonatomic("k1", "k2", "a") == [b"1", b"2", b"1"])
check("info", "redis_version" in rc.info(target_nodes=RedisCluster.PRIMARIES))

# Replica reads: READONLY connections to the followers, possibly stale, so
# read until the write shows (bounded).
replica_reads = RedisCluster(host=host, port=port, socket_timeout=10, read_from_replicas=True)
replica_reads.set("r", "1")
deadline = time.monotonic() + 10
while replica_reads.get("r") != b"1":
    check("replica read catches up", time.monotonic() < deadline)
    time.sleep(0.05)
for _ in range(20):
    replica_reads.get("r")
readonly_clients = 0
for node in rc.get_replicas():
    listing = redis.Redis(host=node.host, port=node.port).client_list()
    readonly_clients += sum(1 for c in listing if "r" in c.get("flags", ""))
check("reads served by READONLY replica connections", readonly_clients > 0, readonly_clients)
replica_reads.close()

print("phase1 done", flush=True)
line = sys.stdin.readline().split()
check("got the go line", len(line) == 2 and line[0] == "go", line)
killed = line[1]

# The leader is gone: writes go on once the client has followed the new one.
first, attempts = retry("first write after the leader kill", lambda: rc.set("after0", "0"))
print(f"first write after the kill took {attempts} attempts", flush=True)
for i in range(1, 50):
    retry(f"write after{i}", lambda: rc.set(f"after{i}", i))
values, _ = retry("read back", lambda: rc.mget_nonatomic([f"after{i}" for i in range(50)]))
check("writes after the kill", values == [str(i).encode() for i in range(50)], values)
old, _ = retry("read before-kill writes", lambda: rc.mget_nonatomic([f"k{i}" for i in range(1, 100)]))
check("acknowledged writes survived", old == [str(i).encode() for i in range(1, 100)], old)
primaries = [n.name for n in rc.get_primaries()]
check("the client follows the new leader", len(primaries) == 1 and primaries[0] != killed, primaries)
role = rc.get_primaries()[0].redis_connection.info("replication")["role"]
check("its primary is the raft leader", role == "master", role)
rc.close()
print("redis-py cluster: all checks passed", flush=True)
