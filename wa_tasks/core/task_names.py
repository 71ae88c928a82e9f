"""Every Celery task name wa-tasks registers or publishes, in one place (beside ``keys``).

The public names (``wa.send``, ``wa.status``, ``wa.notify``) are called by other codebases with
``send_task`` and never change; the others are internal to wa-tasks and its session host.
"""

from __future__ import annotations

#: Public: queue one message (``wa_tasks.tasks.send``).
SEND = "wa.send"
#: Public: the status of one message.
STATUS = "wa.status"
#: Public: a billing event turned into messages by its trigger.
NOTIFY = "wa.notify"

#: Route one queued message to a session and publish its ``DELIVER``.
DISPATCH = "wa.dispatch"
#: Route one batch of a bulk send.
DISPATCH_BATCH = "wa.dispatch_batch"
#: Send one message through a session: consumed by the session host from ``wa.session.<id>``.
DELIVER = "wa.deliver"
#: Send the e-mail fallback of one message that could not go out on WhatsApp.
EMAIL_FALLBACK = "wa.email_fallback"

# Periodic jobs (``celeryconfig.beat_schedule``).
HEALTH_CHECK = "wa.health_check"
SWEEP = "wa.sweep"
SAMPLE_DEPTH = "wa.sample_depth"
RETENTION = "wa.retention"
METRICS_ROLLUP = "wa.metrics_rollup"
CONTACTS_REFRESH = "wa.contacts_refresh"
#: Queue the scheduled messages that are due, expire the ones past their ``expires_at``.
RELEASE = "wa.release"
#: Deliver the due status events of the outbox (``wa_tasks.pipeline.webhook_delivery``), on its own queue.
DELIVER_WEBHOOKS = "wa.deliver_webhooks"
