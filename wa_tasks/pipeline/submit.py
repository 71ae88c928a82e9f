"""Turning a send request into a persisted ``queued`` message and its ``dispatch`` task.

Shared by the thin client (which raises on bad input) and the public ``wa.send`` task (which
records a refused request as a ``failed`` message). Order matters: validate and render first,
commit the row, then publish; a crash between commit and publish leaves a ``queued`` row that the
sweeper publishes again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Message, MessageStatus, Template, WhatsAppSession, new_message_id, utcnow
from models.db import session_scope
from wa_tasks.core import priorities, rendering
from wa_tasks.core.phone import normalize
from wa_tasks.errors import InvalidMessage, UnknownSession, UnknownTemplate, WaTasksError
from wa_tasks.infra.logs import MessageLog
from wa_tasks.pipeline import compose, contacts, fallback, lifecycle, optout, schedule
from wa_tasks.pipeline.media import Media
from wa_tasks.pipeline.outcomes import publish_dispatch
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A validated request, ready to be stored."""

    to_number: str
    content: str
    priority: int
    template_id: int | None
    data: dict[str, Any] | None
    idempotency_key: str | None
    session: str | None
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


def refuse_nul(value: object, what: str) -> None:
    """Raise :class:`InvalidMessage` if ``value`` holds a NUL character (U+0000): a string, or any
    string key or value inside nested mappings and lists (template data). PostgreSQL text cannot
    store one, the message is not meant to carry one, and refusing it here, where every request
    (client, tasks, API, command line, bulk) is validated, keeps the rule in one place. The error
    names where it is: ``data['items'][2]['name']``. Each container is looked at once, without
    recursion, so deep or self-referencing data costs its size and no more."""
    pending: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    seen: set[int] = set()
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                where = what + "".join(f"[{key!r}]" for key in path)
                raise InvalidMessage(f"{where} contains a NUL character (\\u0000); remove it")
            continue
        if isinstance(item, Mapping | list | tuple | set | frozenset):
            if id(item) in seen:
                continue
            seen.add(id(item))
            pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
            for key, inner in pairs:
                if isinstance(key, str) and "\x00" in key:
                    where = what + "".join(f"[{k!r}]" for k in path)
                    raise InvalidMessage(f"{where} has a key with a NUL character (\\u0000): {key!r}; remove it")
                pending.append((inner, (*path, key)))


def prepare(
    db: Session,
    settings: Settings,
    *,
    to: object,
    text: object = None,
    template: object = None,
    data: object = None,
    priority: object = None,
    idempotency_key: object = None,
    session: object = None,
    media: Media | None = None,
    email: object = None,
) -> Prepared:
    """Validate and render a request; raise an :class:`~wa_tasks.errors.InvalidRequest` subclass.

    ``media``: an image or document sent with the text or the template as its caption.
    ``email``: the customer's address for the email fallback (default: ``data["customer_email"]``).
    A number the contact cache knows, freshly, not to be on WhatsApp is not an error: the result
    carries ``fail_reason`` (see :class:`Prepared`)."""
    recipient = normalize(to, settings.default_region)
    for value, what in (
        (text, "text"),
        (template, "template"),
        (data, "data"),
        (idempotency_key, "idempotency_key"),
        (session, "session"),
        (email, "email"),
        (media and {"url": media.url, "mimetype": media.mimetype, "filename": media.filename}, "media"),
    ):
        refuse_nul(value, what)
    step = priorities.resolve(priority)  # type: ignore[arg-type]
    if data is not None and not isinstance(data, dict):
        raise InvalidMessage(f"data must be a mapping of template variables, got {type(data).__name__}")
    if (text is None) == (template is None):
        raise InvalidMessage("give exactly one of text= or template=")
    template_id = None
    category = None
    composed = compose.Composed("text", "")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidMessage(f"text must be a string, got {type(text).__name__}")
        if not text.strip():
            raise InvalidMessage("text is empty")
        if len(text) > rendering.MAX_LENGTH:
            raise InvalidMessage(f"text is {len(text)} characters; the limit is {rendering.MAX_LENGTH}")
        content = text
        if media is not None:
            composed = compose.Composed("media", text, media)
    else:
        if not isinstance(template, str) or not template.strip():
            raise InvalidMessage("template must be a template name")
        row = db.scalar(select(Template).where(Template.name == template))
        if row is None or not row.is_active:
            state = "inactive" if row is not None else "unknown"
            raise UnknownTemplate(f"{state} template {template!r}; list them with `wa-tasks templates list`")
        optout.refuse_if_opted_out(db, recipient.number, row.category, row.name)
        composed = compose.compose(name=row.name, type=row.type, content=row.content, data=data, media=media)
        content = composed.content
        template_id = row.id
        category = row.category
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not idempotency_key.strip() or len(idempotency_key) > 200
    ):
        raise InvalidMessage("idempotency_key must be a non-empty string of at most 200 characters")
    if session is not None and (
        not isinstance(session, str)
        or db.scalar(select(WhatsAppSession.id).where(WhatsAppSession.session_id == session)) is None
    ):
        raise UnknownSession(f"unknown session {session!r}; list them with `wa-tasks sessions list`")
    if email is None and isinstance(data, dict):
        email = data.get("customer_email")
    absent = contacts.known_absent(db, settings, recipient.number)
    return Prepared(
        to_number=recipient.number,
        content=content,
        priority=step,
        template_id=template_id,
        data=compose.jsonable(data),
        idempotency_key=idempotency_key,
        session=session,
        max_attempts=settings.max_attempts,
        message_type=composed.message_type,
        media=composed.media,
        email=fallback.check_address(email),
        category=category,
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
                    idempotency_key=prepared.idempotency_key,
                    requested_session=prepared.session,
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
                    **(prepared.media.columns() if prepared.media else {}),
                )
            )
        if prepared.fail_reason:
            from wa_tasks.infra.celery_app import app_for  # the Celery app is built on first use only

            MessageLog(log, message_id, prepared.to_number).warning("not sent: %s", prepared.fail_reason)
            fallback.maybe_queue(app_for(settings), settings, message_id)
        return message_id, True
    except IntegrityError:
        existing = None
        if prepared.idempotency_key is not None:
            existing = find_by_idempotency_key(settings, prepared.idempotency_key)
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
    except IntegrityError:
        existing = find_by_idempotency_key(settings, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing
    MessageLog(log, message_id, raw_to).warning("request refused: %s: %s", error.code, error.loggable)
    return message_id


def queue(
    settings: Settings,
    app: Celery,
    *,
    to: object,
    text: object = None,
    template: object = None,
    data: object = None,
    priority: object = "normal",
    idempotency_key: object = None,
    session: object = None,
    email: object = None,
) -> str:
    """Validate, store and dispatch one message (:func:`prepare`, :func:`persist`,
    :func:`~wa_tasks.pipeline.outcomes.publish_dispatch`); returns its id."""
    with session_scope(settings.database) as db:
        prepared = prepare(
            db,
            settings,
            to=to,
            text=text,
            template=template,
            data=data,
            priority=priority,
            idempotency_key=idempotency_key,
            session=session,
            email=email,
        )
    message_id, created = persist(settings, prepared)
    if dispatch_now(prepared, created):
        publish_dispatch(app, message_id, prepared.priority)
    return message_id
