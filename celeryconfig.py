"""All Celery settings of wa-tasks: broker, queues, priorities, acknowledgements, events, beat.

Loaded by ``wa_tasks.infra.celery_app`` (and by Flower through it). Values that differ per
installation come from ``wa_tasks.settings`` (``WA_*`` environment variables).
The comment above each setting says why it is set.
"""

from __future__ import annotations

from celery.schedules import crontab
from kombu import Exchange, Queue

from wa_tasks.core import task_names
from wa_tasks.core.redis_keys import DEFAULT_QUEUE, URGENT_QUEUE, WEBHOOK_QUEUE
from wa_tasks.settings import get_settings

_settings = get_settings()

#: Marks this module as wa-tasks' own (guards against another project's ``celeryconfig``).
WA_TASKS_CONFIG = True

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
# Ten real priority steps (0 = highest on Redis) with readable key names ("wa.session.s1:3");
# Flower reads the same options to count queue lengths.
broker_transport_options = {
    "priority_steps": list(range(10)),
    "sep": ":",
    "queue_order_strategy": "priority",
    "visibility_timeout": _settings.visibility_timeout,
}
# A task published without a priority must not jump ahead of explicit high priorities.
task_default_priority = 5
task_queue_max_priority = 9

# No result backend: a message's outcome lives in the database.
task_ignore_result = True
result_backend = None

task_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True

# Acknowledge after the work is recorded; fetch one message at a time so priorities hold.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# A worker that dies holding tasks: they go back on their queue within seconds, not after the
# visibility timeout (reject_on_worker_lost only covers a prefork child dying under its parent).
imports = ("wa_tasks.infra.worker_lost",)

task_default_queue = DEFAULT_QUEUE
task_queues = [
    Queue(DEFAULT_QUEUE, Exchange(DEFAULT_QUEUE, "direct"), routing_key=DEFAULT_QUEUE),
    # Urgent single dispatches (wa_tasks.pipeline.submit.dispatch_queue): never behind a bulk's batches.
    Queue(URGENT_QUEUE, Exchange(URGENT_QUEUE, "direct"), routing_key=URGENT_QUEUE),
]
task_create_missing_queues = True
task_routes = {
    # Status events go out from a worker of their own (Procfile `webhooks`): a slow receiver never
    # holds a thread that routes messages.
    task_names.DELIVER_WEBHOOKS: {"queue": WEBHOOK_QUEUE},
    "wa.*": {"queue": DEFAULT_QUEUE},
}

# Events for Flower: the worker's tasks and the session host's sends.
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False

# Each due job is claimed in Redis before it is sent, so several beats send it once (wa_tasks/ops/beat.py).
beat_scheduler = "wa_tasks.ops.beat:Scheduler"
beat_schedule = {
    # The session health check, every 30 s by default (WA_HEALTH_CHECK_SECONDS); probes message nobody.
    "health-check": {
        "task": task_names.HEALTH_CHECK,
        "schedule": _settings.health_check_seconds,
        # A check that waited longer than most of its period is superseded by the next one.
        "options": {"priority": 1, "expires": _settings.health_check_seconds * 5 / 6},
    },
    # The releaser of scheduled messages (wa_tasks/pipeline/schedule.py): a message is sent
    # within about this period of its send_at. A run that waited longer than a few periods is
    # superseded by the next one, which releases the same rows.
    "release-scheduled": {
        "task": task_names.RELEASE,
        "schedule": _settings.release_interval_seconds,
        "options": {"priority": 1, "expires": max(5.0, _settings.release_interval_seconds * 5)},
    },
    # The status events' deliverer (wa_tasks/pipeline/webhook_delivery.py): each run delivers for
    # about 20 s, one run at a time; a run not started within a few periods is superseded.
    "deliver-webhooks": {
        "task": task_names.DELIVER_WEBHOOKS,
        "schedule": _settings.webhook_interval_seconds,
        "options": {
            "queue": WEBHOOK_QUEUE,
            "priority": 1,
            "expires": max(10.0, _settings.webhook_interval_seconds * 3),
        },
    },
    "sweep-queued": {
        "task": task_names.SWEEP,
        "schedule": 60.0,
        "options": {"priority": 3},
    },
    # The dashboard's queue-depth chart: a sample of every session's depth (kept 24 h in Redis).
    "sample-depth": {
        "task": task_names.SAMPLE_DEPTH,
        "schedule": 30.0,
        # A stale sample is worthless: the next one supersedes it.
        "options": {"priority": 4, "expires": 25.0},
    },
    # Retention (wa_tasks/ops/retention.py), daily at 02:00 WIB (19:00 UTC), a quiet hour for billing.
    "retention": {
        "task": task_names.RETENTION,
        "schedule": crontab(hour=19, minute=0),
        "options": {"priority": 8},
    },
    # Yesterday's figures (wa_tasks/ops/metrics.py), shortly after midnight WIB (17:00 UTC).
    "metrics-rollup": {
        "task": task_names.METRICS_ROLLUP,
        "schedule": crontab(hour=17, minute=15),
        "options": {"priority": 8},
    },
    # Contact sync: re-check numbers whose answer is older than WA_CONTACT_MAX_AGE_DAYS,
    # at 03:30 WIB (20:30 UTC), away from billing's morning runs.
    "contacts-refresh": {
        "task": task_names.CONTACTS_REFRESH,
        "schedule": crontab(hour=20, minute=30),
        "options": {"priority": 8},
    },
}
