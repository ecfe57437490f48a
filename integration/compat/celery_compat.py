"""Celery (Debian's python3-celery 5.2, kombu 5.2, redis-py 4.3) against dkv:
the client half of integration/tests/celery.rs. Two worker processes
(celery_tasks.py) run meanwhile, one on the leader and one on a follower.

    celery_compat.py work  LEADER_URL FOLLOWER_URL
    celery_compat.py after LEADER_URL FOLLOWER_URL

`work` sends, half through the leader and half through the follower (each
a Celery app with that node as broker and result backend): 50 tasks, a
task with a countdown, a task that retries twice then succeeds, one that
exhausts its retries, a group and a chord; and checks every result, read
from dkv as result backend (redis-py's pub/sub result consumer and GET).
`after` (workers stopped) checks with plain redis-py what kombu left: no
unacknowledged message, the queues empty.

Bounded: every wait has a timeout and the whole run has DEADLINE_S; prints
`all checks passed` at the end.
"""

import os
import signal
import sys
import time

import redis
from celery import Celery, chord, group

DEADLINE_S = 100
WAIT_S = 60


def fail(msg):
    print(f"FAILED: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}", flush=True)


def app_for(url):
    app = Celery("celery_tasks", broker=url, backend=url)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=600,
    )
    return app


def sig(app, name, *args):
    return app.signature(f"celery_tasks.{name}", args=args)


def wait_ready(result, what):
    """Polls `result.ready()` (GET of each result key), bounded."""
    for _ in range(WAIT_S * 10):
        if result.ready():
            return
        time.sleep(0.1)
    fail(f"{what} not ready within {WAIT_S} s")


def work(leader, follower):
    apps = [app_for(leader), app_for(follower)]

    # 50 tasks, alternately through the leader and the follower.
    results = [apps[i % 2].send_task("celery_tasks.add", args=(i, 1000)) for i in range(50)]
    got = [r.get(timeout=WAIT_S) for r in results]
    check(got == [i + 1000 for i in range(50)], "50 tasks ran once each, right results")
    states = {r.state for r in results}
    check(states == {"SUCCESS"}, f"their states are SUCCESS ({states})")

    # A countdown task through each node.
    eta = [
        apps[i].send_task("celery_tasks.eta_task", args=(f"eta-{i}",), countdown=2)
        for i in range(2)
    ]
    for i, r in enumerate(eta):
        v = r.get(timeout=WAIT_S)
        check(v["tag"] == f"eta-{i}" and v["eta"] is not None, f"countdown task {i} had an ETA")
        check(v["not_early"], f"countdown task {i} ran no earlier than its ETA")

    # Retries: each is a new message through the broker.
    retried = [apps[i].send_task("celery_tasks.flaky", args=(2,)) for i in range(2)]
    for i, r in enumerate(retried):
        check(r.get(timeout=WAIT_S) == 2, f"retried task {i} succeeded on its 3rd run")
    exhausted = apps[1].send_task("celery_tasks.flaky", args=(10,))
    try:
        exhausted.get(timeout=WAIT_S)
        fail("a task past max_retries succeeded")
    except RuntimeError as e:
        check("not yet" in str(e), f"a task past max_retries failed with its error ({e!r})")
    check(exhausted.state == "FAILURE", "its state is FAILURE")

    # A group and a chord through each node (result backend: dkv). Waited
    # for by polling their state (GET) before `get`: Celery's pub/sub result
    # consumer drops and retakes a group member's subscription (UNSUBSCRIBE
    # then SUBSCRIBE of one channel, sent back to back), and on dkv the
    # second is proposed only once the first has applied, so a result
    # published in between is missed (see README, Pub/Sub).
    for i, app in enumerate(apps):
        g = group(sig(app, "add", n, n) for n in range(10)).apply_async()
        wait_ready(g, f"group {i}")
        check(g.get(timeout=WAIT_S) == [2 * n for n in range(10)], f"group {i}: 10 results in order")
        c = chord(sig(app, "add", n, 1) for n in range(10))(sig(app, "tsum"))
        wait_ready(c, f"chord {i}")
        check(c.get(timeout=WAIT_S) == sum(n + 1 for n in range(10)), f"chord {i}: callback sum")

    for app in apps:
        app.close()
    print("all checks passed", flush=True)


def after(leader, follower):
    for url in (leader, follower):
        r = redis.Redis.from_url(url, socket_timeout=10)
        unacked = r.hlen("unacked")
        check(unacked == 0, f"{url}: no unacknowledged message ({unacked})")
        index = r.zcard("unacked_index")
        check(index == 0, f"{url}: unacked_index empty ({index})")
        queued = r.llen("celery")
        check(queued == 0, f"{url}: queue 'celery' empty ({queued})")
        r.close()
    print("all checks passed", flush=True)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("work", "after"):
        fail(f"usage: {sys.argv[0]} work|after LEADER_URL FOLLOWER_URL")
    signal.signal(signal.SIGALRM, lambda *_: fail(f"still running after {DEADLINE_S} s"))
    signal.alarm(DEADLINE_S)
    {"work": work, "after": after}[sys.argv[1]](sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
