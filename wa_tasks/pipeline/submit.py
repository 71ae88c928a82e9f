"""Turning a send request (:class:`~wa_tasks.pipeline.request.SendRequest`) into a persisted
``queued`` message and its ``dispatch`` task.

Shared by every send entry point: the thin client (which raises on bad input), the public
``wa.send`` and ``wa.notify`` tasks (which record a refused request as a ``failed`` message), and
through the client the HTTP API and the command line. Order matters: validate and render first,
commit the row, then publish; a crash between commit and publish leaves a ``queued`` row that the
sweeper publishes again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Message, MessageStatus, Template, WhatsAppSession, new_message_id, utcnow
from models.db import session_scope
from wa_tasks.core import triggers, webhook_rules
from wa_tasks.core.phone import normalize
from wa_tasks.errors import UnknownSession, UnknownTemplate, WaTasksError
from wa_tasks.infra.logs import MessageLog
from wa_tasks.pipeline import bulk, compose, contacts, fallback, lifecycle, optout, schedule, webhooks
from wa_tasks.pipeline.media import Media
from wa_tasks.pipeline.outcomes import publish_dispatch
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to be stored: the request and what :func:`prepare` made of it."""

    request: SendRequest
    #: The recipient's E.164 digits.
    to_number: str
    #: The text sent: the request's text, or its template rendered (a button or list message's
    #: plain-text fallback).
    content: str
    template_id: int | None
    #: The template data as it is stored (:func:`~wa_tasks.pipeline.compose.jsonable`).
    data: dict[str, Any] | None
    max_attempts: int
    #: text, media, button or list (button and list are sent as their plain-text fallback).
    message_type: str = "text"
    media: Media | None = None
    #: The customer's email address, for the email fallback (``wa_tasks.pipeline.fallback``).
    email: str | None = None
    #: Set when the request is valid but cannot go by WhatsApp (the number is known not to be on
    #: it): the message is stored ``failed`` with this reason, not dispatched, and offered to the
    #: email fallback. The caller still gets its message id.
    fail_reason: str | None = None
    #: The template's category (its send window; what ``cancel_pending`` matches).
    category: str | None = None
    #: When it goes, until when, and what it is about (``wa_tasks.pipeline.schedule``).
    timing: schedule.Timing = schedule.Timing()
    #: Where its status events go besides the installation's (``wa_tasks.pipeline.webhooks``).
    callback_url: str | None = None

    @property
    def priority(self) -> int:
        return self.request.step


def prepare(db: Session, settings: Settings, request: SendRequest) -> Prepared:
    """Check what of ``request`` needs the settings or the database (the number in the default
    region, the template and its rendering, opt-out, the session) and render it; raise an
    :class:`~wa_tasks.errors.InvalidRequest` subclass.

    A number the contact cache knows, freshly, not to be on WhatsApp is not an error: the result
    carries ``fail_reason`` (see :class:`Prepared`)."""
    recipient = normalize(request.to, settings.default_region)
    template_id = None
    category = None
    if request.text is not None:
        content = request.text
        composed = compose.Composed("media" if request.media else "text", content, request.media)
    else:
        row = db.scalar(select(Template).where(Template.name == request.template))
        if row is None or not row.is_active:
            state = "inactive" if row is not None else "unknown"
            raise UnknownTemplate(f"{state} template {request.template!r}; list them with `wa-tasks templates list`")
        optout.refuse_if_opted_out(db, recipient.number, row.category, row.name)
        composed = compose.compose(
            name=row.name, type=row.type, content=row.content, data=request.data, media=request.media
        )
        content = composed.content
        template_id = row.id
        category = row.category
    timing = schedule.check(
        send_at=request.send_at,
        expires_at=request.expires_at,
        notice_key=request.notice_key,
        ref=request.ref,
        tz=request.tz,
        grace_seconds=settings.schedule_grace_seconds,
    )
    session = request.session
    if session is not None and (
        not isinstance(session, str)
        or db.scalar(select(WhatsAppSession.id).where(WhatsAppSession.session_id == session)) is None
    ):
        raise UnknownSession(f"unknown session {session!r}; list them with `wa-tasks sessions list`")
    callback_url = webhook_rules.check_callback_url(request.callback_url, settings.webhook_allow_private)
    absent = contacts.known_absent(db, settings, recipient.number)
    return Prepared(
        request=request,
        to_number=recipient.number,
        content=content,
        template_id=template_id,
        data=compose.jsonable(request.data),
        max_attempts=settings.max_attempts,
        message_type=composed.message_type,
        media=composed.media,
        email=request.fallback_email(),
        category=category,
        timing=timing,
        callback_url=callback_url,
        fail_reason=(
            f"{contacts.NOT_ON_WHATSAPP}: the number is not on WhatsApp (contact sync, "
            f"checked {absent.checked_at:%Y-%m-%d %H:%M} UTC); not sent"
            if absent is not None
            else None
        ),
    )


def persist(
    settings: Settings, prepared: Prepared, *, cancel: tuple[str, Collection[str] | None] | None = None
) -> tuple[str, bool]:
    """Store the message as ``queued`` (``scheduled`` when it has a later ``send_at``). Returns
    ``(message_id, created)``; a known idempotency key or notice key returns the first message's
    id and ``created=False``, whatever became of that message. ``cancel``: ``(ref, categories)``
    whose waiting notices are cancelled in the same transaction (``lifecycle.cancel_pending``)."""
    message_id = new_message_id()
    timing = prepared.timing
    status = MessageStatus.SCHEDULED if timing.scheduled else MessageStatus.QUEUED
    try:
        with session_scope(settings.database) as db:
            if cancel is not None:
                cancelled = lifecycle.cancel_pending(db, cancel[0], cancel[1])
                if cancelled:
                    log.info("%d waiting notice(s) of %s cancelled", cancelled, cancel[0])
            db.add(
                Message(
                    id=message_id,
                    to_number=prepared.to_number,
                    content=prepared.content,
                    priority=prepared.priority,
                    template_id=prepared.template_id,
                    data=prepared.data,
                    idempotency_key=prepared.request.idempotency_key,
                    requested_session=prepared.request.session,
                    max_attempts=prepared.max_attempts,
                    status=MessageStatus.FAILED if prepared.fail_reason else status,
                    error_message=prepared.fail_reason,
                    failed_at=utcnow() if prepared.fail_reason else None,
                    dispatched_at=None if prepared.fail_reason or timing.scheduled else utcnow(),
                    message_type=prepared.message_type,
                    email=prepared.email,
                    category=prepared.category,
                    send_at=timing.send_at,
                    expires_at=timing.expires_at,
                    notice_key=timing.notice_key,
                    ref=timing.ref,
                    tz=timing.tz,
                    callback_url=prepared.callback_url,
                    **(prepared.media.columns() if prepared.media else {}),
                )
            )
            if prepared.fail_reason:
                db.flush()
                webhooks.record(db, [message_id], MessageStatus.FAILED)
        if prepared.fail_reason:
            from wa_tasks.infra.celery_app import app_for  # the Celery app is built on first use only

            MessageLog(log, message_id, prepared.to_number).warning("not sent: %s", prepared.fail_reason)
            fallback.maybe_queue(app_for(settings), settings, message_id)
        return message_id, True
    except IntegrityError:
        existing = None
        key = prepared.request.idempotency_key
        if key is not None:
            existing = find_by_idempotency_key(settings, key)
        if existing is None and timing.notice_key is not None:
            existing = find_by_notice_key(settings, timing.notice_key)
        if existing is None:
            raise
        return existing, False


def find_by_idempotency_key(settings: Settings, key: str) -> str | None:
    with session_scope(settings.database) as db:
        return db.scalar(select(Message.id).where(Message.idempotency_key == key))


def find_by_notice_key(settings: Settings, key: str) -> str | None:
    with session_scope(settings.database) as db:
        return db.scalar(select(Message.id).where(Message.notice_key == key))


def dispatch_now(prepared: Prepared, created: bool) -> bool:
    """Whether a stored message is dispatched now: new, not refused, not scheduled for later."""
    return created and not prepared.fail_reason and not prepared.timing.scheduled


def record_refusal(
    settings: Settings, *, to: object, error: WaTasksError, idempotency_key: str | None, priority: int
) -> str:
    """Store a request that was refused as a ``failed`` message carrying the reason.

    The stored error quotes what the caller sent (their status read shows it, as it shows the
    recipient as given); the log line has the masked form (``error.loggable``)."""
    message_id = new_message_id()
    # PostgreSQL text cannot hold NUL: one in the refused input is stored as U+FFFD.
    raw_to = (to if isinstance(to, str) else repr(to)).replace("\x00", "\ufffd")
    reason = f"{error.code}: {error}".replace("\x00", "\ufffd")
    try:
        with session_scope(settings.database) as db:
            db.add(
                Message(
                    id=message_id,
                    to_number=raw_to[:64],
                    content=None,
                    priority=priority,
                    idempotency_key=idempotency_key,
                    status=MessageStatus.FAILED,
                    error_message=reason[:2000],
                    failed_at=utcnow(),
                )
            )
            # The caller (another codebase's task) got no answer: the installation's status targets hear it.
            db.flush()
            webhooks.record(db, [message_id], MessageStatus.FAILED)
    except IntegrityError:
        existing = find_by_idempotency_key(settings, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
    MessageLog(log, message_id, raw_to).warning("request refused: %s: %s", error.code, error.loggable)
    return message_id


def queue(
    settings: Settings, app: Celery, request: SendRequest, *, cancel: tuple[str, Collection[str] | None] | None = None
) -> str:
    """Validate, store and dispatch one message (:func:`prepare`, :func:`persist`,
    :func:`~wa_tasks.pipeline.outcomes.publish_dispatch`); returns its id. A message with a later
    ``send_at`` is stored ``scheduled`` and dispatched by the releaser (``wa_tasks.pipeline.schedule``).
    ``cancel``: see :func:`persist`."""
    with session_scope(settings.database) as db:
        prepared = prepare(db, settings, request)
    message_id, created = persist(settings, prepared, cancel=cancel)
    if dispatch_now(prepared, created):
        publish_dispatch(app, message_id, prepared.priority)
    return message_id


def carry_out(settings: Settings, app: Celery, planned: triggers.Plan) -> str:
    """Queue what a trigger plans (``Client.notify``, the ``wa.notify`` task): one message, or for
    ``bulk.send`` a bulk job; returns the message or job id."""
    if isinstance(planned, triggers.Bulk):
        return bulk.create(
            settings,
            app,
            planned.recipients,
            template=planned.template,
            template_data=planned.template_data,
            priority=planned.priority,
            idempotency_key=planned.idempotency_key,
            send_at=planned.send_at,
            expires_at=planned.expires_at,
        )
    request = SendRequest(
        planned.to,
        template=planned.template,
        data=planned.data,
        priority=planned.priority,
        idempotency_key=planned.idempotency_key,
        session=planned.session,
        send_at=planned.send_at,
        expires_at=planned.expires_at,
        ref=planned.ref,
    )
    # payment.completed: the invoice's waiting notices are cancelled in the transaction that
    # stores the confirmation (every category: reminders, overdue and isolir notices).
    cancel = (planned.cancels_ref, None) if planned.cancels_ref else None
    return queue(settings, app, request, cancel=cancel)
