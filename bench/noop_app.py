"""A Celery app with one no-op task, on wa-tasks' own Celery configuration (``celeryconfig``), for
measuring Celery's own round trip on this machine: ``celery -A bench.noop_app:app worker -Q bench.noop``.

The task counts itself in Redis (one INCR) so that the benchmark sees when all N have run: there is
no result backend."""

from __future__ import annotations

from wa_tasks.infra.celery_app import make_app
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import get_settings

QUEUE = "bench.noop"
DONE = "bench:noop:done"

app = make_app(get_settings())


@app.task(name="bench.noop")
def noop() -> None:
    client_for(get_settings().redis).incr(DONE)
