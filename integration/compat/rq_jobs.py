"""RQ (Debian's python3-rq 1.13 on redis-py 4.3) against dkv: the client
half of integration/tests/rq.rs, and the job functions the worker imports.

    rq_jobs.py enqueue URL IDS_FILE
    rq_jobs.py check   URL IDS_FILE

`enqueue` puts 100 jobs on queue `dkv`: 94 `square(i)`, 5 `explode(i)`
(raises ValueError) and one `total` that depends on two squares (RQ keeps
it in the deferred registry until both finished). It writes the job ids to
IDS_FILE. Then `rq worker --burst` (started by the test, on another node)
runs them all and exits. `check`, through a third node, reads every job
back: each square finished with its value as `job.result`,
`job.return_value()` and `job.latest_result()` (RQ >= 1.12 keeps results
in a stream per job, `rq:results:<id>`: XADD MAXLEN, XREVRANGE), each
explode failed with its exception in its latest result and sits in the
failed job registry, the dependent job ran after its parents with their sum;
the queue is empty and the registries hold exactly these jobs.

Bounded: the whole run has DEADLINE_S; prints `all checks passed` at the end.
"""

import json
import signal
import sys

QUEUE = "dkv"
DEADLINE_S = 60
FAILING = {7, 27, 47, 67, 87}
PARENTS = (1, 2)


def square(n):
    return n * n


def explode(n):
    raise ValueError(f"explode {n}")


def total(a, b):
    return {"sum": a * a + b * b}


def fail(msg):
    print(f"FAILED: {msg}", flush=True)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"ok: {msg}", flush=True)


def enqueue(conn, ids_file):
    from rq import Queue

    q = Queue(QUEUE, connection=conn)
    ids = {}
    for i in range(99):
        fn = "rq_jobs.explode" if i in FAILING else "rq_jobs.square"
        job = q.enqueue(fn, i, job_id=f"job-{i}", result_ttl=600, failure_ttl=600)
        ids[i] = job.id
    parents = [ids[p] for p in PARENTS]
    dependent = q.enqueue(
        "rq_jobs.total", *PARENTS, job_id="job-total", depends_on=parents, result_ttl=600
    )
    ids["total"] = dependent.id
    check(dependent.get_status() == "deferred", "the dependent job waits for its parents")
    check(len(q) == 99, f"99 jobs queued ({len(q)}), the dependent one deferred")
    with open(ids_file, "w") as f:
        json.dump(ids, f)
    print("enqueued 100 jobs", flush=True)


def verify(conn, ids_file):
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, DeferredJobRegistry
    from rq.results import Result

    with open(ids_file) as f:
        ids = json.load(f)
    q = Queue(QUEUE, connection=conn)
    finished = set(FinishedJobRegistry(queue=q).get_job_ids())
    failed = set(FailedJobRegistry(queue=q).get_job_ids())
    check(len(q) == 0, f"the queue is empty ({len(q)})")
    check(
        DeferredJobRegistry(queue=q).get_job_ids() == [], "the deferred registry is empty"
    )
    bad = []
    for key, job_id in ids.items():
        job = Job.fetch(job_id, connection=conn)
        status = job.get_status()
        latest = job.latest_result()
        results = Result.all(job)
        if key == "total":
            want = {"sum": PARENTS[0] ** 2 + PARENTS[1] ** 2}
            if status != "finished" or job.result != want or job.return_value() != want:
                bad.append(f"{job_id}: {status} {job.result!r}")
            continue
        i = int(key)
        if i in FAILING:
            ok = (
                status == "failed"
                and job_id in failed
                and job_id not in finished
                and latest is not None
                and latest.type == Result.Type.FAILED
                and f"ValueError: explode {i}" in (latest.exc_string or "")
                and f"ValueError: explode {i}" in (job.exc_info or "")
                and len(results) == 1
            )
            if not ok:
                bad.append(f"{job_id}: {status} {latest!r} {job_id in failed}")
            continue
        ok = (
            status == "finished"
            and job_id in finished
            and job.result == i * i
            and job.return_value() == i * i
            and latest is not None
            and latest.type == Result.Type.SUCCESSFUL
            and latest.return_value == i * i
            and len(results) == 1
            and Result.count(job) == 1
        )
        if not ok:
            bad.append(f"{job_id}: {status} {job.result!r} {latest!r} {len(results)}")
    check(bad == [], f"every job's status and result is right (wrong: {bad[:5]})")
    check(
        failed == {f"job-{i}" for i in FAILING},
        f"the failed registry holds exactly the {len(FAILING)} exploding jobs",
    )
    check(
        len(finished) == 100 - len(FAILING),
        f"the finished registry holds the other {100 - len(FAILING)} ({len(finished)})",
    )
    # The result streams themselves, as RQ wrote them.
    key = Result.get_key(ids["3"])
    entries = conn.xrange(key)
    check(len(entries) == 1, f"{key} is a stream with one entry")
    check(conn.type(key) == b"stream", f"{key} is of type stream")
    check(0 < conn.ttl(key) <= 600, f"{key} expires with the job's result_ttl")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("enqueue", "check"):
        fail(f"usage: {sys.argv[0]} enqueue|check URL IDS_FILE")
    signal.alarm(DEADLINE_S)
    import redis

    conn = redis.Redis.from_url(sys.argv[2], socket_timeout=10)
    if sys.argv[1] == "enqueue":
        enqueue(conn, sys.argv[3])
    else:
        verify(conn, sys.argv[3])
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
