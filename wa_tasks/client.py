"""The thin client billing code imports.

    from wa_tasks import client
    message_id = client.send("0812-3456-7890", text="Tagihan Anda sudah terbit.")
    print(client.status(message_id)["status"])

Module-level functions are the :class:`Client` methods of the same name on a default client
configured from ``WA_*`` environment variables; ``Client(...)`` takes explicit configuration. Bad input raises an
:class:`~wa_tasks.errors.InvalidRequest` subclass and queues nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from celery import Celery

from models import Message
from models.db import session_scope
from wa_tasks.admin import template_store
from wa_tasks.core import triggers
from wa_tasks.core.phone import normalize
from wa_tasks.errors import MessageNotFound
from wa_tasks.pipeline import bulk, lifecycle, notices, optout, outcomes, schedule, submit, webhooks
from wa_tasks.pipeline import media as media_files
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings, get_settings

_P = ParamSpec("_P")
_R = TypeVar("_R")


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
        from wa_tasks.infra.celery_app import app_for

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
        email: str | None = None,
        send_at: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
        notice_key: str | None = None,
        ref: str | None = None,
        tz: str | None = None,
        callback_url: str | None = None,
    ) -> str:
        """Queue a WhatsApp message to ``to`` and return its message id.

        Exactly one of ``text`` or ``template`` (rendered with ``data``). ``priority``: "urgent",
        "high", "normal", "low" or a Redis step 0..9. A repeated ``idempotency_key`` returns the
        first message's id and sends nothing new. ``session`` pins the message to one session.
        ``email`` (default ``data["customer_email"]``): where the email fallback sends the message
        if it fails on WhatsApp. A number that contact sync found not to be on WhatsApp is not an
        error: the id is returned as usual, the message is already ``failed`` with
        ``not_on_whatsapp: ...`` and goes to the email fallback (check ``status(id)``).

        ``send_at`` (an aware datetime): stored ``scheduled`` now (errors raised now), sent when
        due. ``expires_at``: not sent by then, ``expired``. ``notice_key``: at most one message
        per key (a repeated one returns the first message's id). ``ref`` (e.g. the invoice
        number): what :meth:`cancel_pending` cancels by. ``tz``: the customer's zone for the send
        window (default ``WA_TIMEZONE``). ``callback_url``: an http(s) URL that receives a signed
        status event at every status change of this message (docs/webhooks.md).
        """
        return self.send_request(
            SendRequest(
                to,
                text=text,
                template=template,
                data=data,
                priority=priority,
                idempotency_key=idempotency_key,
                session=session,
                email=email,
                send_at=send_at,
                expires_at=expires_at,
                notice_key=notice_key,
                ref=ref,
                tz=tz,
                callback_url=callback_url,
            )
        )

    def send_request(self, request: SendRequest) -> str:
        """Queue the message ``request`` describes and return its id: what :meth:`send`,
        :meth:`send_media` and :meth:`notify` do once they have built it."""
        return submit.queue(self.settings, self.app, request)

    def status(self, message_id: str) -> dict[str, Any]:
        """id, status, sentAt, deliveredAt, readAt, sessionId, error, attempts: the fields of
        ``GET /api/whatsapp/message/{id}/status``."""
        with session_scope(self.settings.database) as db:
            message = db.get(Message, message_id)
            if message is None:
                raise MessageNotFound(f"no message with id {message_id!r}")
            return lifecycle.status_view(message, self.settings.ambiguous_receipt_window_seconds)

    def send_bulk(
        self,
        recipients: Sequence[Mapping[str, Any]],
        *,
        template: str | None = None,
        text: str | None = None,
        template_data: Mapping[str, Any] | None = None,
        priority: str | int = "high",
        idempotency_key: str | None = None,
        send_at: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
    ) -> str:
        """Queue one message per recipient (``{"whatsapp": number, "data": {...}}``; ``data`` is merged
        over ``template_data``) as one bulk job; returns the job id. Any invalid recipient raises
        an error listing the first ones and queues nothing. Default priority: high, so urgent single
        messages still go first. ``send_at``/``expires_at`` (aware datetimes): as for :meth:`send`."""
        return bulk.create(
            self.settings,
            self.app,
            recipients,
            template=template,
            text=text,
            template_data=template_data,
            priority=priority,
            idempotency_key=idempotency_key,
            send_at=send_at,
            expires_at=expires_at,
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

    def cancel_pending(self, ref: str, categories: Iterable[str] | None = None) -> int:
        """Cancel the messages about ``ref`` (e.g. an invoice number) that still wait (``scheduled``,
        ``queued`` or ``routed``; never one already being sent), only those of template
        ``categories`` when given; returns how many were cancelled."""
        return schedule.cancel_pending(self.settings, ref, categories)

    def schedule_reminders(
        self,
        invoice_number: str,
        to: str,
        due_date: dt.date | dt.datetime | str,
        *,
        ladder: Iterable[str] | str = ("H-3", "H-1", "H0", "H+1"),
        at: str | dt.time = "09:00",
        data: Mapping[str, Any] | None = None,
        templates: Mapping[str, str] | None = None,
        tz: str | None = None,
        priority: str | int = "normal",
    ) -> dict[str, str]:
        """Schedule an invoice's reminder ladder: one message per step (``H-3`` is three days before
        ``due_date``, ``H+1`` the day after) at ``at`` in ``tz`` (default ``WA_TIMEZONE``), with the
        notice key ``invoice:<number>:reminder:<step>`` and ``ref`` the invoice number; returns
        ``{step: message id}``. Idempotent: calling it again changes nothing, a changed due date
        moves the steps not yet sent, steps already past are skipped. ``templates`` overrides the
        template of a kind (``reminder``, ``due``, ``overdue``) or a step; ``data`` is their data
        (``invoice_number`` and ``due_date`` are added)."""
        return notices.schedule_reminders(
            self.settings,
            invoice_number,
            to,
            due_date,
            ladder_steps=ladder,
            at=at,
            data=data,
            templates=templates,
            tz=tz,
            priority=priority,
        )

    def retry(self, message_id: str) -> bool:
        """Send a ``failed`` message again (its attempts start over); False if it is not failed."""
        with session_scope(self.settings.database) as db:
            message = db.get(Message, message_id)
            if message is None:
                raise MessageNotFound(f"no message with id {message_id!r}")
            if not lifecycle.retry_failed(db, message_id):
                return False
            priority = message.priority
        outcomes.publish_dispatch(self.app, message_id, priority)
        return True

    # Media ----------------------------------------------------------------------------------------

    def send_media(
        self,
        to: str,
        media: str | bytes,
        *,
        caption: str | None = None,
        template: str | None = None,
        data: dict[str, Any] | None = None,
        mimetype: str | None = None,
        filename: str | None = None,
        priority: str | int = "normal",
        idempotency_key: str | None = None,
        session: str | None = None,
    ) -> str:
        """Queue an image (or a document) and return the message id.

        ``media``: an http(s) URL, downloaded by the session host when it sends (with a timeout and
        a size cap), or the bytes (at most 16 MB). The caption is ``caption`` or a ``template``
        rendered with ``data``. ``mimetype`` is sniffed from the bytes or taken from the download
        when not given.
        """
        return self.send_request(
            SendRequest(
                to,
                text=caption,
                template=template,
                data=data,
                priority=priority,
                idempotency_key=idempotency_key,
                session=session,
                media=media_files.given(media, mimetype, filename),
            )
        )

    # Notification triggers ----------------------------------------------------------------------

    def notify(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        template: str | None = None,
        priority: str | int | None = None,
        session: str | None = None,
        send_at: dt.datetime | None = None,
        expires_at: dt.datetime | None = None,
    ) -> str:
        """Send what ``event`` maps to (see :mod:`wa_tasks.core.triggers`) to ``data["customer_whatsapp"]``
        (or ``data["to"]``), rendered with ``data``; returns the message id (a job id for
        ``bulk.send``). An unknown event or a missing number raises an InvalidRequest subclass.
        ``send_at``/``expires_at``: as for :meth:`send`. ``payment.completed`` cancels the waiting
        notices of ``data["invoice_number"]`` in the transaction that queues the confirmation."""
        planned = triggers.plan(
            event,
            data,
            idempotency_key=idempotency_key,
            template=template,
            priority=priority,
            session=session,
            send_at=send_at,
            expires_at=expires_at,
        )
        return submit.carry_out(self.settings, self.app, planned)

    # Templates --------------------------------------------------------------------------------------

    def list_templates(self, *, include_inactive: bool = True) -> list[dict[str, Any]]:
        """Every template (``include_inactive=False``: only the usable ones), by name."""
        return template_store.listing(self.settings, include_inactive=include_inactive)

    def get_template(self, name: str) -> dict[str, Any]:
        """One template: name, category, type, content, variables, language, isActive, timestamps."""
        return template_store.get(self.settings, name)

    def create_template(
        self,
        name: str,
        content: str,
        *,
        category: str = "notification",
        type: str = "text",
        language: str = "id",
        is_active: bool = True,
        send_window: str | None = None,
    ) -> dict[str, Any]:
        """Save a new template. ``category``: notification, reminder or promotion (promotions are
        not sent to customers who opted out); ``type``: text, media, button or list;
        ``send_window``: its own hours (``"08:00-20:00"``, ``"always"``) instead of its category's."""
        return template_store.create(
            self.settings,
            name,
            content,
            category=category,
            type=type,
            language=language,
            is_active=is_active,
            send_window=send_window,
        )

    def update_template(
        self,
        name: str,
        *,
        content: str | None = None,
        category: str | None = None,
        type: str | None = None,
        language: str | None = None,
        is_active: bool | None = None,
        send_window: str | None | Any = template_store.KEEP,
    ) -> dict[str, Any]:
        """Change the given fields of a template; its variables are extracted again.
        ``send_window``: its own hours; None or ``"category"``: back to its category's window."""
        return template_store.update(
            self.settings,
            name,
            content=content,
            category=category,
            type=type,
            language=language,
            is_active=is_active,
            send_window=send_window,
        )

    def deactivate_template(self, name: str) -> dict[str, Any]:
        """Stop a template from being used for new messages."""
        return template_store.deactivate(self.settings, name)

    def preview_template(
        self,
        name: str | None = None,
        data: Mapping[str, Any] | None = None,
        *,
        content: str | None = None,
        type: str = "text",
    ) -> dict[str, Any]:
        """What a template sends with sample ``data``: ``text``, ``variables``, ``missing`` and
        ``warnings`` (long runs of one character, links). Never queues anything."""
        return template_store.preview(self.settings, name, data, content=content, type=type)

    def install_default_templates(self) -> dict[str, list[str]]:
        """Add the shipped templates that are missing (never overwrites): ``{"installed", "kept"}``."""
        return template_store.install_defaults(self.settings)

    # Opt-out -----------------------------------------------------------------------------------

    def is_opted_out(self, number: str) -> bool:
        """Whether the customer replied an opt-out word (promotions are not sent to them)."""
        recipient = normalize(number, self.settings.default_region)
        with session_scope(self.settings.database) as db:
            return optout.find(db, recipient.number) is not None

    def opt_in(self, number: str) -> bool:
        """Send promotions to a customer again (they asked for it); False if they had not opted out."""
        return optout.opt_in(self.settings, number)

    def stats(self, day: str | dt.date | None = None, session: str | None = None) -> dict[str, Any]:
        """The figures of one local day (WIB; default today): ``sent``, ``delivered``,
        ``read``, ``failed``, ``avg_delivery_seconds``, ``active_sessions`` and per session under
        ``sessions``; only ``session``'s when given. ``day``: a date or ``YYYY-MM-DD``."""
        from wa_tasks.ops import metrics

        return metrics.stats(self.settings, metrics.parse_day(day), session)

    # Contact sync ----------------------------------------------------------------------------------

    def sync_contacts(self, numbers: Iterable[str], *, refresh: bool = False) -> dict[str, bool]:
        """Whether each customer number is on WhatsApp, keyed by E.164 digits (``6281234567890``).

        Answers younger than ``WA_CONTACT_MAX_AGE_DAYS`` come from the cache (``refresh=True`` asks
        again); the rest are asked of WhatsApp through a connected session, 50 per query, and
        cached. Sends to a number found not on WhatsApp then fail fast (and go to the email
        fallback). An invalid number raises InvalidPhoneNumber; no connected session raises
        ``CommandFailed``. A number WhatsApp gave no answer for is left out."""
        from wa_tasks.pipeline import contacts

        return contacts.sync(self.settings, numbers, refresh=refresh)

    # Status callbacks ------------------------------------------------------------------------------

    def webhook_events(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The latest status events (newest first): id, messageId, status, target (its query string
        hidden), state (``pending``, ``delivered`` or ``dead``), attempts, lastError, times. ``state``:
        only those; ``"dead"`` lists the ones given up on (docs/webhooks.md)."""
        if state is not None and state not in ("pending", "delivered", "dead"):
            raise ValueError(f"state must be pending, delivered or dead, got {state!r}")
        return webhooks.list_events(self.settings, state, limit)

    def retry_webhook(self, event_id: str) -> dict[str, Any]:
        """Send a dead status event again (due now, with a new retry window); returns it. Raises
        ``UnknownWebhookEvent`` for an unknown id."""
        return webhooks.retry(self.settings, event_id)


_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def _on_default_client(method: Callable[Concatenate[Client, _P], _R]) -> Callable[_P, _R]:
    """``method`` of :class:`Client` as a module function on :func:`default_client`, with the
    method's own parameters and docstring (so each signature is written once, on the method)."""

    @functools.wraps(method)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(default_client(), *args, **kwargs)

    parameters = list(inspect.signature(method).parameters.values())[1:]  # without self
    call.__signature__ = inspect.signature(method).replace(parameters=parameters)  # type: ignore[attr-defined]
    return call


send = _on_default_client(Client.send)
send_request = _on_default_client(Client.send_request)
status = _on_default_client(Client.status)
send_bulk = _on_default_client(Client.send_bulk)
bulk_status = _on_default_client(Client.bulk_status)
cancel_bulk = _on_default_client(Client.cancel_bulk)
cancel = _on_default_client(Client.cancel)
cancel_pending = _on_default_client(Client.cancel_pending)
schedule_reminders = _on_default_client(Client.schedule_reminders)
retry = _on_default_client(Client.retry)
send_media = _on_default_client(Client.send_media)
notify = _on_default_client(Client.notify)
list_templates = _on_default_client(Client.list_templates)
get_template = _on_default_client(Client.get_template)
create_template = _on_default_client(Client.create_template)
update_template = _on_default_client(Client.update_template)
deactivate_template = _on_default_client(Client.deactivate_template)
preview_template = _on_default_client(Client.preview_template)
install_default_templates = _on_default_client(Client.install_default_templates)
is_opted_out = _on_default_client(Client.is_opted_out)
opt_in = _on_default_client(Client.opt_in)
stats = _on_default_client(Client.stats)
sync_contacts = _on_default_client(Client.sync_contacts)
webhook_events = _on_default_client(Client.webhook_events)
retry_webhook = _on_default_client(Client.retry_webhook)


def register_trigger(event: str, template: str, *, priority: str | int = "normal") -> None:
    """Map a billing event to a template for :func:`notify` in this process (see :mod:`wa_tasks.core.triggers`)."""
    triggers.register(event, template, priority=priority)
