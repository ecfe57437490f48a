"""redis-py against dkv: connect (RESP2, and RESP3 when this redis-py has it),
pipeline, transaction=True, expiry, scan_iter. Usage: python3 redis_py_compat.py HOST PORT.
Prints one line per check; exits non-zero on the first failure."""
import sys
import time

import redis

host, port = sys.argv[1], int(sys.argv[2])


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}")
        sys.exit(1)
    print(f"ok {name}")


def exercise(r, tag):
    r.flushdb()
    check(f"{tag} ping", r.ping() is True)
    check(f"{tag} set/get", r.set("a", "1") and r.get("a") == b"1")
    # Pipeline without transaction.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"k{i}", i)
    p.incr("k0")
    out = p.execute()
    check(f"{tag} pipeline", out[:100] == [True] * 100 and out[100] == 1, out[95:])
    # Django's set_many idiom: MULTI ... EXEC.
    p = r.pipeline(transaction=True)
    p.set("t1", "x").set("t2", "y").get("t1").hset("h", mapping={"f": "1", "g": "2"})
    out = p.execute()
    check(f"{tag} transaction", out == [True, True, b"x", 2], out)
    # WATCH-based optimistic locking.
    with r.pipeline() as p:
        p.watch("counter")
        current = int(p.get("counter") or 0)
        p.multi()
        p.set("counter", current + 1)
        check(f"{tag} watch/exec", p.execute() == [True])
    # Expiry.
    check(f"{tag} setex", r.set("e", "v", ex=100))
    ttl = r.ttl("e")
    check(f"{tag} ttl", 99 <= ttl <= 100, ttl)
    r.set("short", "v", px=200)
    time.sleep(0.4)
    check(f"{tag} expired", r.get("short") is None and r.exists("short") == 0)
    check(f"{tag} persist", r.persist("e") and r.ttl("e") == -1)
    # SCAN iteration.
    keys = set(r.scan_iter(match="k*", count=7))
    check(f"{tag} scan_iter", keys == {f"k{i}".encode() for i in range(100)}, len(keys))
    check(f"{tag} hgetall", r.hgetall("h") == {b"f": b"1", b"g": b"2"})
    check(f"{tag} hscan_iter", dict(r.hscan_iter("h")) == {b"f": b"1", b"g": b"2"})
    check(f"{tag} incrbyfloat", r.incrbyfloat("fl", 10.5) == 10.5)
    try:
        r.hget("a", "f")
        check(f"{tag} wrongtype", False)
    except redis.ResponseError as e:
        check(f"{tag} wrongtype", str(e).startswith("WRONGTYPE"), e)
    check(f"{tag} info", "redis_version" in r.info())
    check(f"{tag} client setname", r.client_setname("py") and r.client_getname() in ("py", b"py"))


exercise(redis.Redis(host=host, port=port, db=0), "resp2")
exercise(redis.Redis(host=host, port=port, db=3), "resp2-db3")
major = int(redis.__version__.split(".")[0])
if major >= 5:
    exercise(redis.Redis(host=host, port=port, protocol=3), "resp3")
else:
    print(f"skip resp3: redis-py {redis.__version__} has no protocol=3 (added in 5.0)")
print("redis-py compat: all checks passed")
