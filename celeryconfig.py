"""All Celery settings of wa-tasks: broker, queues, priorities, acknowledgements, events, beat.

Loaded by ``wa_tasks.celery_app`` (and by Flower through it). Values that differ per
installation come from ``wa_tasks.settings`` (``WA_*`` environment variables).
See shared notes "Celery on Redis" for why each of these is set.
"""

from __future__ import annotations

from kombu import Exchange, Queue

from wa_tasks.keys import DEFAULT_QUEUE
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

task_default_queue = DEFAULT_QUEUE
task_queues = [Queue(DEFAULT_QUEUE, Exchange(DEFAULT_QUEUE, "direct"), routing_key=DEFAULT_QUEUE)]
task_create_missing_queues = True
task_routes = {
    "wa.*": {"queue": DEFAULT_QUEUE},
}

# Events for Flower: the worker's tasks and the session host's sends.
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False

beat_schedule = {
    # Seed §10.2: every 30 s; probes message nobody.
    "health-check": {
        "task": "wa.health_check",
        "schedule": 30.0,
        "options": {"priority": 1, "expires": 25},
    },
    "sweep-queued": {
        "task": "wa.sweep",
        "schedule": 60.0,
        "options": {"priority": 3},
    },
}
