"""Celery tasks the worker processes of integration/tests/celery.rs run.

The broker and the result backend are dkv, named by the environment
(DKV_CELERY_BROKER, DKV_CELERY_BACKEND: redis:// URLs); a worker started
with `python3 -m celery -A celery_tasks worker` loads this module.
"""

import datetime
import os

from celery import Celery

app = Celery(
    "celery_tasks",
    broker=os.environ.get("DKV_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
    backend=os.environ.get("DKV_CELERY_BACKEND", "redis://127.0.0.1:6379/0"),
)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Results stay in dkv for the check step, then expire by themselves.
    result_expires=600,
    # A worker reconnects to its node on its own; the test never fails it.
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=4,
)


@app.task
def add(x, y):
    """The 50 plain tasks, and the members of groups and chords."""
    return x + y


@app.task(bind=True)
def eta_task(self, tag):
    """A task sent with a countdown: it reports the ETA it was given and
    whether the worker ran it no earlier (the worker's own clock, the one
    that holds the message back)."""
    eta = self.request.eta
    if eta is None:
        return {"tag": tag, "eta": None, "not_early": False}
    when = datetime.datetime.fromisoformat(eta)
    now = datetime.datetime.now(when.tzinfo)
    return {"tag": tag, "eta": eta, "not_early": now >= when}


@app.task(bind=True, max_retries=3)
def flaky(self, fail_times):
    """Fails its first `fail_times` runs, each failure a retry (a new message
    through the broker, 1 s countdown); answers how many retries it took."""
    if self.request.retries < fail_times:
        raise self.retry(countdown=1, exc=RuntimeError("not yet"))
    return self.request.retries


@app.task
def tsum(values):
    """A chord's callback."""
    return sum(values)
