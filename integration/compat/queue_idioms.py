"""Queue idioms with redis-py against a dkv cluster, each checked for lost,
duplicated and misordered jobs. Run by integration/tests/queue_idioms.rs:

    python3 queue_idioms.py LEADER_HOST:PORT FOLLOWER_HOST:PORT

Every idiom spreads its producers and consumers over both nodes (the
follower forwards writes and serves blocking pops). Each consumer thread has
its own connection (a blocked BRPOP holds it). Every wait is bounded; the
script exits non-zero on the first failed check.

1. LPUSH + BRPOP: one worker pops in push order; then four workers and two
   concurrent producers: every job done exactly once.
2. Reliable queue: BLMOVE queue -> per-worker processing list, work, LREM;
   a worker that "crashes" after the move leaves its job in its processing
   list, and a reaper LMOVEs it back: still every job done exactly once.
3. Delayed jobs: ZADD with the due time as score; movers take due jobs with
   ZRANGEBYSCORE -inf now and move one only if their ZREM answered 1, or
   inside WATCH/MULTI/EXEC; a job never moves before it is due, and every job
   reaches the ready list exactly once, in due order with one mover.
4. Leaderboard: ZINCRBY from threads on both nodes; ZREVRANGE WITHSCORES,
   ZRANK, ZREVRANK, ZSCORE match the totals computed here, ties in Redis's
   order (equal scores by member, reversed for ZREV*).
"""

import sys
import threading
import time

import redis

DEADLINE = time.monotonic() + 60


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def check(name, cond, detail=""):
    if not cond:
        fail(f"{name} {detail}")
    print(f"ok {name}", flush=True)


def conn(addr):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), decode_responses=True, socket_timeout=10)


def run_threads(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.1, DEADLINE - time.monotonic()))
        if t.is_alive():
            fail(f"thread {t.name} still running at the deadline")


class Worker(threading.Thread):
    """A thread that records exceptions instead of dying silently."""

    errors = []

    def __init__(self, name, body):
        super().__init__(name=name, daemon=True)
        self.body = body

    def run(self):
        try:
            self.body()
        except Exception as e:  # reported by the main thread
            Worker.errors.append(f"{self.name}: {e!r}")


def no_worker_errors(what):
    check(f"{what}: no worker raised", not Worker.errors, Worker.errors)


def brpop_queue(leader, follower):
    r = conn(leader)
    r.delete("q", "q:done")
    # One worker, jobs pushed before it starts: BRPOP takes the oldest first.
    r.lpush("q", *[f"o{i}" for i in range(50)])
    w = conn(follower)
    order = []
    while True:
        item = w.brpop("q", timeout=1)
        if item is None:
            break
        order.append(item[1])
    check("brpop: one worker pops in push order (FIFO)", order == [f"o{i}" for i in range(50)], order[:5])

    jobs = [f"j{i}" for i in range(400)]
    produced = threading.Event()
    seen = [[] for _ in range(4)]

    def producer(addr, part):
        c = conn(addr)
        for i in range(0, len(part), 20):
            c.lpush("q", *part[i:i + 20])

    def worker(n):
        c = conn(leader if n % 2 == 0 else follower)
        while time.monotonic() < DEADLINE:
            item = c.brpop("q", timeout=1)
            if item is None:
                if produced.is_set():
                    return
                continue
            seen[n].append(item[1])
            c.sadd("q:done", item[1])

    workers = [Worker(f"brpop-worker-{n}", lambda n=n: worker(n)) for n in range(4)]
    for t in workers:
        t.start()
    producers = [Worker("producer-leader", lambda: producer(leader, jobs[0::2])),
                 Worker("producer-follower", lambda: producer(follower, jobs[1::2]))]
    run_threads(producers)
    produced.set()
    for t in workers:
        t.join(max(0.1, DEADLINE - time.monotonic()))
    no_worker_errors("brpop")
    got = [j for s in seen for j in s]
    check("brpop: 4 workers, 400 jobs, none lost", set(got) == set(jobs), len(set(got)))
    check("brpop: no job handed out twice", len(got) == len(jobs), len(got))
    check("brpop: SCARD q:done 400", r.scard("q:done") == 400)
    # Each producer pushed its own jobs in order; a worker sees one producer's
    # jobs in push order (one FIFO list, each worker pops oldest first).
    for n, s in enumerate(seen):
        for part in (jobs[0::2], jobs[1::2]):
            mine = [j for j in s if j in set(part)]
            idx = [part.index(j) for j in mine]
            if idx != sorted(idx):
                fail(f"brpop: worker {n} saw a producer's jobs out of order {mine[:10]}")
    print(f"ok brpop: per-worker counts {[len(s) for s in seen]}", flush=True)


def reliable_queue(leader, follower):
    r = conn(leader)
    r.delete("rq", "rq:done", *[f"rq:processing:{n}" for n in range(3)])
    jobs = [f"r{i}" for i in range(200)]
    r.lpush("rq", *jobs)
    # Worker 2 "crashes": it moves one job to its processing list and stops.
    crashed = conn(follower).blmove("rq", "rq:processing:2", 1, "RIGHT", "LEFT")
    check("blmove: the oldest job moves to the processing list", crashed == "r0", crashed)
    check("blmove: it is in the processing list, no longer in the queue",
          r.lrange("rq:processing:2", 0, -1) == ["r0"] and r.llen("rq") == 199)
    done = [[] for _ in range(2)]

    def worker(n):
        c = conn(leader if n == 0 else follower)
        mine = f"rq:processing:{n}"
        while time.monotonic() < DEADLINE:
            job = c.blmove("rq", mine, 1, "RIGHT", "LEFT")
            if job is None:
                return
            c.sadd("rq:done", job)
            done[n].append(job)
            removed = c.lrem(mine, 1, job)
            if removed != 1:
                raise AssertionError(f"LREM {mine} {job} answered {removed}")

    run_threads([Worker(f"rq-worker-{n}", lambda n=n: worker(n)) for n in range(2)])
    no_worker_errors("reliable queue")
    # The reaper: the crashed worker's jobs go back to the queue (LMOVE), and
    # a worker picks them up.
    reaper = conn(follower)
    back = reaper.lmove("rq:processing:2", "rq", "RIGHT", "RIGHT")
    check("lmove: the reaper puts the crashed worker's job back", back == "r0", back)
    check("lmove: the processing list is gone once empty", reaper.exists("rq:processing:2") == 0)
    run_threads([Worker("rq-worker-after-reap", lambda: worker(0))])
    no_worker_errors("reliable queue after the reap")
    got = done[0] + done[1]
    check("reliable queue: 200 jobs, none lost", set(got) == set(jobs), len(set(got)))
    check("reliable queue: none done twice", len(got) == 200, len(got))
    check("reliable queue: processing lists empty",
          all(r.llen(f"rq:processing:{n}") == 0 for n in range(3)))
    print(f"ok reliable queue: per-worker counts {[len(d) for d in done]}", flush=True)


def now_ms():
    return int(time.time() * 1000)


def delayed_jobs(leader, follower):
    r = conn(leader)
    r.delete("delayed", "ready")
    # One mover, ZREM-checked: jobs reach the ready list in due order.
    base = now_ms()
    due = {f"d{i}": base + 40 * ((i * 7) % 25) for i in range(50)}
    r.zadd("delayed", due)
    moved = []
    c = conn(follower)
    while len(moved) < 50 and time.monotonic() < DEADLINE:
        t = now_ms()
        for job in c.zrangebyscore("delayed", "-inf", t, start=0, num=10):
            if due[job] > t:
                fail(f"delayed: {job} due at {due[job]} returned at {t}")
            if c.zrem("delayed", job) == 1:
                c.rpush("ready", job)
                moved.append(job)
        time.sleep(0.01)
    check("delayed: one mover moved all 50", len(moved) == 50 and r.zcard("delayed") == 0, len(moved))
    check("delayed: ready list in due order (ties by member)",
          r.lrange("ready", 0, -1) == sorted(due, key=lambda j: (due[j], j)))

    # Two movers per style, on both nodes, racing over 300 jobs.
    r.delete("delayed", "ready")
    base = now_ms()
    due = {f"e{i}": base + 5 * (i % 60) for i in range(300)}
    r.zadd("delayed", due)
    early = []
    counts = {}

    def count(what):
        counts[what] = counts.get(what, 0) + 1

    def mover_zrem(addr):
        c = conn(addr)
        while time.monotonic() < DEADLINE:
            t = now_ms()
            jobs = c.zrangebyscore("delayed", "-inf", t, start=0, num=20)
            if not jobs:
                if c.zcard("delayed") == 0:
                    return
                time.sleep(0.005)
            for job in jobs:
                if due[job] > t:
                    early.append(job)
                if c.zrem("delayed", job) == 1:
                    c.rpush("ready", job)
                    count(f"ZREM 1 on the {'leader' if addr == leader else 'follower'}")
                else:
                    count("zrem lost the race")

    def mover_multi(addr):
        c = conn(addr)
        while time.monotonic() < DEADLINE:
            with c.pipeline() as p:
                try:
                    p.watch("delayed")
                    t = now_ms()
                    jobs = p.zrangebyscore("delayed", "-inf", t, start=0, num=20)
                    if not jobs:
                        if p.zcard("delayed") == 0:
                            return
                        p.unwatch()
                        time.sleep(0.005)
                        continue
                    early.extend(j for j in jobs if due[j] > t)
                    p.multi()
                    p.zrem("delayed", *jobs)
                    p.rpush("ready", *jobs)
                    p.execute()
                    for _ in jobs:
                        count(f"EXEC on the {'leader' if addr == leader else 'follower'}")
                except redis.WatchError:
                    count("EXEC aborted (WATCH)")
                    continue

    run_threads([Worker("mover-zrem-leader", lambda: mover_zrem(leader)),
                 Worker("mover-zrem-follower", lambda: mover_zrem(follower)),
                 Worker("mover-multi-leader", lambda: mover_multi(leader)),
                 Worker("mover-multi-follower", lambda: mover_multi(follower))])
    no_worker_errors("delayed movers")
    check("delayed: no job moved before it was due", not early, early[:5])
    ready = r.lrange("ready", 0, -1)
    check("delayed: 4 racing movers (ZREM reply / WATCH+MULTI), 300 jobs, none lost",
          set(ready) == set(due), len(set(ready)))
    check("delayed: none moved twice", len(ready) == 300, len(ready))
    print(f"ok delayed: moves per mover {sorted(counts.items())}", flush=True)


def leaderboard(leader, follower):
    r = conn(leader)
    r.delete("board")
    players = [f"p{i:02d}" for i in range(30)]
    # Thread n adds (n + 1) * k to player k % 30 for k in 0..299 with
    # float increments; totals computed here.
    expected = {p: 0.0 for p in players}
    plans = []
    for n in range(4):
        plan = [(players[k % 30], float((n + 1) * (k % 7)) / 2) for k in range(300)]
        for p, inc in plan:
            expected[p] += inc
        plans.append(plan)

    def player(n):
        c = conn(leader if n % 2 == 0 else follower)
        pipe = c.pipeline(transaction=False)
        for i, (p, inc) in enumerate(plans[n]):
            pipe.zincrby("board", inc, p)
            if i % 50 == 49:
                pipe.execute()
        pipe.execute()

    run_threads([Worker(f"scorer-{n}", lambda n=n: player(n)) for n in range(4)])
    no_worker_errors("leaderboard")
    f = conn(follower)
    ranked = sorted(players, key=lambda p: (expected[p], p))
    got = f.zrevrange("board", 0, -1, withscores=True)
    want = [(p, expected[p]) for p in reversed(ranked)]
    check("leaderboard: ZREVRANGE WITHSCORES (on the follower) = the totals, ties by member reversed",
          got == want, (got[:4], want[:4]))
    top = f.zrevrange("board", 0, 2, withscores=True)
    check("leaderboard: top 3", top == want[:3], top)
    for p in players:
        if f.zrank("board", p) != ranked.index(p) or r.zrevrank("board", p) != 29 - ranked.index(p):
            fail(f"leaderboard: rank of {p}")
        if f.zscore("board", p) != expected[p]:
            fail(f"leaderboard: score of {p}: {f.zscore('board', p)} != {expected[p]}")
    check("leaderboard: ZRANK, ZREVRANK, ZSCORE of all 30 players", True)
    check("leaderboard: ZINCRBY on a new member returns the increment", r.zincrby("board", 2.5, "new") == 2.5)
    check("leaderboard: ZRANK of a missing member is nil", f.zrank("board", "nobody") is None)
    check("leaderboard: ZCARD 31", f.zcard("board") == 31)


def main():
    if len(sys.argv) != 3:
        fail("usage: queue_idioms.py LEADER_HOST:PORT FOLLOWER_HOST:PORT")
    leader, follower = sys.argv[1], sys.argv[2]
    print(f"redis-py {redis.__version__}", flush=True)
    start = time.monotonic()
    for idiom in (brpop_queue, reliable_queue, delayed_jobs, leaderboard):
        t = time.monotonic()
        idiom(leader, follower)
        print(f"-- {idiom.__name__}: {time.monotonic() - t:.2f} s", flush=True)
    print(f"queue idioms (redis-py): all checks passed in {time.monotonic() - start:.2f} s", flush=True)


if __name__ == "__main__":
    main()
