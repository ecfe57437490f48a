"""redis-py's `Lock` (redis >= 5, from the venv integration/compat/venv) as
applications use it, against two addresses of one data set: a dkv leader and
a follower, or one real redis-server given twice.

Usage: python3 lock_clients.py basic LEADER FOLLOWER
       python3 lock_clients.py failover LEADER FOLLOWER TRIGGER_FILE
(addresses are host:port).

`basic`: acquire, extend (added to and replacing the TTL), reacquire,
release; LockNotOwnedError for extend, reacquire and release by an owner
whose lock expired and was taken by another client; blocking acquire with
blocking_timeout under contention; several threads (half on each address)
taking one lock around a GET + SET read-modify-write of a counter: the
counter ends exact and no two threads were ever inside at once.

`failover`: takes one lock through each address (its scripts loaded before:
an extend runs EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA), prints `HELD`,
then waits (bounded) for TRIGGER_FILE to hold the new leader's address
and a newline: the test harness writes it after killing the leader and seeing a new one
elected. Then: both locks are still held with their own tokens (read on the
new leader), the scripts are still in the new leader's cache, the owner
through the follower extends and releases there, the owner of the lock
taken on the old leader points its client at the new leader (what a
failover-aware client does) and extends and releases there; afterwards a
new client takes both locks at once.

Lua runs only through redis-py's own Lock scripts (EVALSHA, and SCRIPT LOAD
on NOSCRIPT). Prints one line per check; exits non-zero on the first failed
check. Every wait is bounded."""
import os
import sys
import threading
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock

DEADLINE = time.monotonic() + 60


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


def client(addr):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=15)


def wait_for(what, cond, limit_s=10.0):
    """Polls cond() every 20 ms for at most limit_s seconds."""
    stop = min(time.monotonic() + limit_s, DEADLINE)
    while not cond():
        if time.monotonic() > stop:
            check(what, False, "(timed out)")
        time.sleep(0.02)


def ttl_between(r, name, lo_ms, hi_ms):
    pttl = r.pttl(name)
    return lo_ms < pttl <= hi_ms, pttl


def basic(leader, follower):
    rl, rf = client(leader), client(follower)
    name, counter, contended = "lock:basic", "lock:counter", "lock:contended"
    rl.delete(name, counter, contended)

    # Acquire through the follower; the leader sees the token.
    a = rf.lock(name, timeout=20)
    check("acquire (non-blocking, free lock)", a.acquire(blocking=False) is True)
    token = a.local.token
    check("the token is stored under the lock's name", rl.get(name) == token, rl.get(name))
    check("owned and locked", a.owned() and a.locked())
    b = rl.lock(name, timeout=20)
    check("a second client cannot take a held lock", b.acquire(blocking=False) is False)
    check("blocking acquire gives up after blocking_timeout",
          b.acquire(blocking_timeout=0.3, sleep=0.05) is False)
    check("not owned by the second client", not b.owned() and b.locked())
    try:
        with rl.lock(name, timeout=20, blocking_timeout=0.2, sleep=0.05):
            check("the context manager must not enter a held lock", False)
    except LockError as e:
        check("the context manager raises LockError when it cannot acquire",
              not isinstance(e, LockNotOwnedError), repr(e))

    # extend adds to the remaining TTL; replace_ttl sets it; reacquire resets
    # it to the lock's timeout.
    check("extend", a.extend(30) is True)
    ok, pttl = ttl_between(rl, name, 30_000, 50_000)
    check("extend added 30 s to the remaining TTL", ok, pttl)
    check("extend with replace_ttl", a.extend(5, replace_ttl=True) is True)
    ok, pttl = ttl_between(rl, name, 0, 5_000)
    check("extend with replace_ttl set the TTL to 5 s", ok, pttl)
    check("reacquire", a.reacquire() is True)
    ok, pttl = ttl_between(rl, name, 5_000, 20_000)
    check("reacquire reset the TTL to the 20 s timeout", ok, pttl)
    check("the token is unchanged", rl.get(name) == token)
    a.release()
    check("release deleted the key", rl.exists(name) == 0)
    try:
        a.release()
        check("releasing twice must fail", False)
    except LockError:
        check("releasing an unlocked lock raises LockError", True)

    # An owner whose lock expired and was taken by another client owns
    # nothing: extend, reacquire and release raise LockNotOwnedError and leave
    # the new holder's lock alone.
    old = rl.lock(name, timeout=0.3)
    check("acquire a short lock", old.acquire(blocking=False))
    wait_for("the short lock expires", lambda: rl.exists(name) == 0)
    new = rf.lock(name, timeout=20)
    check("another client takes the expired lock", new.acquire(blocking=False))
    for what, op in (("extend", lambda: old.extend(5)),
                     ("reacquire", lambda: old.reacquire()),
                     ("release", lambda: old.release())):
        try:
            op()
            check(f"{what} by a non-owner must fail", False)
        except LockNotOwnedError as e:
            check(f"{what} by a non-owner raises LockNotOwnedError", e.lock_name == name, e)
    check("the new holder still holds it", new.owned() and rl.get(name) == new.local.token)
    # A lock taken with a caller-chosen token, as a process handing the lock
    # on does; a wrong token cannot release it.
    new.release()
    chosen = rl.lock(name, timeout=20, thread_local=False)
    check("acquire with a chosen token", chosen.acquire(blocking=False, token="owner-7"))
    check("the chosen token is stored", rf.get(name) == b"owner-7")
    impostor = rl.lock(name, timeout=20, thread_local=False)
    impostor.local.token = b"someone-else"
    try:
        impostor.release()
        check("release with a wrong token must fail", False)
    except LockNotOwnedError:
        check("release with a wrong token raises LockNotOwnedError", rl.get(name) == b"owner-7")
    chosen.release()
    check("the chosen-token lock released", rf.exists(name) == 0)

    # Contention: threads on both addresses take one lock around a GET + SET
    # increment, which loses updates unless the lock excludes.
    threads_n, rounds = 6, 15
    inside = {"now": 0, "max": 0, "errors": []}
    guard = threading.Lock()

    def worker(i):
        r = client(leader if i % 2 == 0 else follower)
        lock = r.lock(contended, timeout=10, sleep=0.005, blocking_timeout=30)
        try:
            for _ in range(rounds):
                with lock:
                    with guard:
                        inside["now"] += 1
                        inside["max"] = max(inside["max"], inside["now"])
                    value = int(r.get(counter) or 0)
                    time.sleep(0.002)
                    r.set(counter, value + 1)
                    with guard:
                        inside["now"] -= 1
        except Exception as e:  # reported below, in the main thread
            inside["errors"].append(repr(e))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(max(0.1, DEADLINE - time.monotonic()))
    check("every contending thread finished", not any(t.is_alive() for t in workers))
    check("no contending thread failed", not inside["errors"], inside["errors"][:3])
    check("never two threads inside the lock", inside["max"] == 1, inside["max"])
    total = int(rl.get(counter) or 0)
    check(f"the counter is exact ({threads_n} threads x {rounds} rounds)",
          total == threads_n * rounds, total)
    check("the contended lock is free at the end", rl.exists(contended) == 0)
    print("redis-py Lock basic: all checks passed", flush=True)


def failover(leader, follower, trigger):
    rl, rf = client(leader), client(follower)
    on_leader, on_follower = "lock:failover:leader", "lock:failover:follower"
    rl.delete(on_leader, on_follower)
    la = rl.lock(on_leader, timeout=60)
    lf = rf.lock(on_follower, timeout=60)
    check("acquire through the leader", la.acquire(blocking=False))
    check("acquire through the follower", lf.acquire(blocking=False))
    # Runs the extend script, so it is in the script cache before the kill.
    check("extend through the leader", la.extend(60, replace_ttl=True))
    check("extend through the follower", lf.extend(60, replace_ttl=True))
    tokens = {on_leader: la.local.token, on_follower: lf.local.token}
    print("HELD", flush=True)

    stop = DEADLINE
    while not (os.path.exists(trigger) and open(trigger).read().endswith("\n")):
        if time.monotonic() > stop:
            check("the harness wrote the trigger file", False, trigger)
        time.sleep(0.05)
    new_leader = open(trigger).read().strip()
    print(f"new leader {new_leader}", flush=True)
    rn = client(new_leader)
    for name, token in tokens.items():
        check(f"{name} still held with its owner's token after the failover",
              rn.get(name) == token, rn.get(name))
        ok, pttl = ttl_between(rn, name, 0, 60_000)
        check(f"{name} still has its TTL", ok, pttl)
    shas = [Lock.lua_extend.sha, Lock.lua_release.sha]
    check("the Lock scripts are in the new leader's script cache",
          rn.script_exists(shas[0])[0], shas)

    # The follower's owner goes on through the same client.
    check("the follower's owner still owns its lock", lf.owned())
    check("extend through the follower after the failover", lf.extend(30))
    lf.release()
    check("released through the follower", rn.exists(on_follower) == 0)
    # The old leader's owner moves to the new leader.
    la.redis = rn
    check("the leader's owner still owns its lock on the new leader", la.owned())
    check("extend on the new leader", la.extend(30))
    check("reacquire on the new leader", la.reacquire())
    la.release()
    check("released on the new leader", rn.exists(on_leader) == 0)
    check("the release script is cached on the new leader", rn.script_exists(shas[1])[0])
    fresh = [rn.lock(n, timeout=5) for n in tokens]
    check("a new client takes both freed locks",
          all(lock.acquire(blocking=False) for lock in fresh))
    for lock in fresh:
        lock.release()
    print("redis-py Lock failover: all checks passed", flush=True)


def main():
    major = int(redis.__version__.split(".")[0])
    check(f"redis-py {redis.__version__} >= 5", major >= 5)
    mode = sys.argv[1]
    if mode == "basic":
        basic(sys.argv[2], sys.argv[3])
    elif mode == "failover":
        failover(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        check(f"known mode {mode!r}", False)


main()
