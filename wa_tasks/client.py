"""The thin client billing code imports.

    from wa_tasks import client
    message_id = client.send("0812-3456-7890", text="Tagihan Anda sudah terbit.")
    print(client.status(message_id)["status"])

Module-level functions use a default client configured from ``WA_*`` environment variables;
``Client(...)`` takes explicit configuration. Bad input raises an
:class:`~wa_tasks.errors.InvalidRequest` subclass and queues nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from models import Message
from models.db import session_scope
from wa_tasks import bulk, lifecycle, submit
from wa_tasks.errors import MessageNotFound
from wa_tasks.settings import Settings, get_settings


class Client:
    """A configured connection to wa-tasks (database + broker)."""

    def __init__(
        self, settings: Settings | None = None, *, database_url: str | None = None, redis_url: str | None = None
    ) -> None:
        base = settings or get_settings()
        updates = {k: v for k, v in {"database_url": database_url, "redis_url": redis_url}.items() if v}
        self.settings = base.model_copy(update=updates) if updates else base

    @property
    def app(self) -> Celery:
        from wa_tasks.celery_app import app_for

        return app_for(self.settings)

    def send(
        self,
        to: str,
        *,
        text: str | None = None,
        template: str | None = None,
        data: dict[str, Any] | None = None,
        priority: str | int = "normal",
        idempotency_key: str | None = None,
        session: str | None = None,
    ) -> str:
        """Queue a WhatsApp message to ``to`` and return its message id.

        Exactly one of ``text`` or ``template`` (rendered with ``data``). ``priority``: "urgent",
        "high", "normal", "low" or a Redis step 0..9. A repeated ``idempotency_key`` returns the
        first message's id and sends nothing new. ``session`` pins the message to one session.
        """
        with session_scope(self.settings.database) as db:
            prepared = submit.prepare(
                db,
                self.settings,
                to=to,
                text=text,
                template=template,
                data=data,
                priority=priority,
                idempotency_key=idempotency_key,
                session=session,
            )
        message_id, created = submit.persist(self.settings, prepared)
        if created:
            submit.publish_dispatch(self.app, message_id, prepared.priority)
        return message_id

    def status(self, message_id: str) -> dict[str, Any]:
        """id, status, sentAt, deliveredAt, readAt, sessionId, error, attempts (seed §8.2)."""
        with session_scope(self.settings.database) as db:
            message = db.get(Message, message_id)
            if message is None:
                raise MessageNotFound(f"no message with id {message_id!r}")
            return lifecycle.status_view(message)

    def send_bulk(
        self,
        recipients: Sequence[Mapping[str, Any]],
        *,
        template: str | None = None,
        text: str | None = None,
        template_data: Mapping[str, Any] | None = None,
        priority: str | int = "high",
        idempotency_key: str | None = None,
    ) -> str:
        """Queue one message per recipient (``{"whatsapp": number, "data": {...}}``; ``data`` is merged
        over ``template_data``) as one bulk job; returns the job id. Any invalid recipient raises
        an error listing the first ones and queues nothing. Default priority: high (seed §4.2)."""
        return bulk.create(
            self.settings,
            self.app,
            recipients,
            template=template,
            text=text,
            template_data=template_data,
            priority=priority,
            idempotency_key=idempotency_key,
        )

    def bulk_status(self, job_id: str) -> dict[str, Any]:
        """A bulk job's progress: total, queued, sent, delivered, read, failed, cancelled."""
        return bulk.progress(self.settings, job_id)

    def cancel_bulk(self, job_id: str) -> int:
        """Cancel what of a bulk job was not sent yet; returns how many messages were cancelled."""
        return bulk.cancel(self.settings, job_id)

    def cancel(self, message_id: str) -> bool:
        """Cancel a message not yet being sent; False if it is already sending, sent or failed."""
        with session_scope(self.settings.database) as db:
            if db.get(Message, message_id) is None:
                raise MessageNotFound(f"no message with id {message_id!r}")
            return lifecycle.cancel(db, message_id)

    def retry(self, message_id: str) -> bool:
        """Send a ``failed`` message again (its attempts start over); False if it is not failed."""
        with session_scope(self.settings.database) as db:
            message = db.get(Message, message_id)
            if message is None:
                raise MessageNotFound(f"no message with id {message_id!r}")
            if not lifecycle.retry_failed(db, message_id):
                return False
            priority = message.priority
        submit.publish_dispatch(self.app, message_id, priority)
        return True


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def send(
    to: str,
    *,
    text: str | None = None,
    template: str | None = None,
    data: dict[str, Any] | None = None,
    priority: str | int = "normal",
    idempotency_key: str | None = None,
    session: str | None = None,
) -> str:
    """:meth:`Client.send` on the default client."""
    return default_client().send(
        to, text=text, template=template, data=data, priority=priority, idempotency_key=idempotency_key, session=session
    )


def status(message_id: str) -> dict[str, Any]:
    """:meth:`Client.status` on the default client."""
    return default_client().status(message_id)


def send_bulk(
    recipients: Sequence[Mapping[str, Any]],
    *,
    template: str | None = None,
    text: str | None = None,
    template_data: Mapping[str, Any] | None = None,
    priority: str | int = "high",
    idempotency_key: str | None = None,
) -> str:
    """:meth:`Client.send_bulk` on the default client."""
    return default_client().send_bulk(
        recipients,
        template=template,
        text=text,
        template_data=template_data,
        priority=priority,
        idempotency_key=idempotency_key,
    )


def bulk_status(job_id: str) -> dict[str, Any]:
    """:meth:`Client.bulk_status` on the default client."""
    return default_client().bulk_status(job_id)


def cancel_bulk(job_id: str) -> int:
    """:meth:`Client.cancel_bulk` on the default client."""
    return default_client().cancel_bulk(job_id)


def cancel(message_id: str) -> bool:
    """:meth:`Client.cancel` on the default client."""
    return default_client().cancel(message_id)


def retry(message_id: str) -> bool:
    """:meth:`Client.retry` on the default client."""
    return default_client().retry(message_id)
