"""Email fallback: a message that finally failed on WhatsApp goes to the customer by
email, when the fallback is on (``WA_EMAIL_FALLBACK``) and the message carries an address.

Flow: whoever marks a message ``failed`` (the session host, or ``submit`` for a number known not
to be on WhatsApp) calls :func:`maybe_queue`, which records ``skipped`` (disabled, no address) or
``queued`` and publishes ``wa.email_fallback``; the worker runs :func:`deliver`. The outcome is on
the message: ``fallback_status`` sent | failed | skipped, ``fallback_at``, ``fallback_error``.
A fallback whose task was lost (the broker was down when it was published, or restarted without it)
stays ``queued``; the sweeper publishes it again (:func:`republish_stale`).

Delivery semantics: the task may arrive more than once (at-least-once publishing). The email is
sent at most once: :func:`deliver` first moves ``fallback_status`` from NULL/queued to ``sending``
with a conditional UPDATE, and only the copy that made that move sends. An email interrupted
mid-send (the worker died while ``sending``) is not sent again, for the same reason WhatsApp
sends are not (a duplicate bill is worse than a missing one); an operator sees ``sending``.

Not sent by email: messages failed for the recipient hourly cap (a spam guard that email must not
bypass) and ambiguous sends (WhatsApp may have delivered them).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from celery import Celery
from sqlalchemy import false, or_, select, update
from sqlalchemy.orm import Session

from models import Message, MessageStatus, Template, utcnow
from models.db import session_scope
from wa_tasks.core import task_names
from wa_tasks.errors import InvalidMessage
from wa_tasks.infra.logs import MessageLog
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Name of the worker task that sends one fallback email.

#: Values of ``Message.fallback_status``.
QUEUED, SENDING, SENT, FAILED, SKIPPED = "queued", "sending", "sent", "failed", "skipped"
#: ``fallback_error`` of a skipped fallback.
DISABLED, NO_ADDRESS = "disabled", "no_address"

#: Subject prefix: tells the customer the email stands in for a WhatsApp message.
SUBJECT_PREFIX = "[WhatsApp Backup]"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def check_address(value: object) -> str | None:
    """A customer's email address, trimmed; None for None or ""; InvalidMessage if it is not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > 254 or not _EMAIL.match(value.strip()):
        raise InvalidMessage(f"email must be an email address such as budi@example.com, got {value!r}")
    return value.strip()


def _set(db: Session, message_id: str, allowed: list[str | None], **values: object) -> bool:
    """Move ``fallback_status`` only from one of ``allowed`` (NULL included when listed)."""
    known = [s for s in allowed if s is not None]
    condition = or_(
        Message.fallback_status.in_(known), Message.fallback_status.is_(None) if None in allowed else false()
    )
    result = db.execute(
        update(Message)
        .where(Message.id == message_id, Message.status == MessageStatus.FAILED, condition)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def maybe_queue(app: Celery, settings: Settings, message_id: str) -> str | None:
    """After ``message_id`` was marked ``failed``: record ``skipped`` or queue the email.

    Returns the fallback status it set (None if the message is not failed or was handled before).
    Never raises: the caller is recording a WhatsApp outcome and must not be disturbed by email.
    """
    try:
        with session_scope(settings.database) as db:
            row = db.execute(
                select(Message.email, Message.priority, Message.to_number).where(Message.id == message_id)
            ).first()
            if row is None:
                return None
            if not settings.email_fallback:
                status, reason = SKIPPED, DISABLED
            elif not row.email:
                status, reason = SKIPPED, NO_ADDRESS
            else:
                status, reason = QUEUED, None
            if not _set(db, message_id, [None], fallback_status=status, fallback_error=reason, fallback_at=utcnow()):
                return None
        mlog = MessageLog(log, message_id, row.to_number)
        if status == QUEUED:
            app.send_task(task_names.EMAIL_FALLBACK, kwargs={"message_id": message_id}, priority=row.priority)
            mlog.info("email fallback queued")
        else:
            mlog.info("email fallback skipped: %s", reason)
        return status
    except Exception:
        log.exception("email fallback for %s could not be queued", message_id)
        return None


def republish_stale(app: Celery, settings: Settings, cutoff: dt.datetime, limit: int = 1000) -> int:
    """Publish ``wa.email_fallback`` again for fallbacks ``queued`` since before ``cutoff`` (their
    task was never published, or the broker lost it); returns how many were published. A copy
    that was not lost is harmless: :func:`deliver` sends once."""
    with session_scope(settings.database) as db:
        stale = db.execute(
            select(Message.id, Message.priority)
            .where(
                Message.status == MessageStatus.FAILED, Message.fallback_status == QUEUED, Message.fallback_at < cutoff
            )
            .limit(limit)
        ).all()
        for row in stale:  # the next sweep looks at it again only after another full wait
            _set(db, row.id, [QUEUED], fallback_at=utcnow())
    published = 0
    for row in stale:
        try:
            app.send_task(task_names.EMAIL_FALLBACK, kwargs={"message_id": row.id}, priority=row.priority)
        except Exception as exc:  # the broker is still down: the next sweep tries again
            log.warning("email fallback for %s could not be queued again: %s", row.id, exc)
            break
        published += 1
    if stale:
        log.warning("sweeper queued %d stale email fallback(s) again", published)
    return published


def deliver(settings: Settings, message_id: str) -> str | None:
    """Send the fallback email of ``message_id`` once; returns the resulting fallback status."""
    with session_scope(settings.database) as db:
        message = db.get(Message, message_id)
        if message is None:
            return None
        if not settings.email_fallback or not message.email:
            reason = DISABLED if not settings.email_fallback else NO_ADDRESS
            _set(db, message_id, [None, QUEUED], fallback_status=SKIPPED, fallback_error=reason, fallback_at=utcnow())
            return db.scalar(select(Message.fallback_status).where(Message.id == message_id))
        if not _set(db, message_id, [None, QUEUED], fallback_status=SENDING, fallback_at=utcnow()):
            return message.fallback_status  # a redelivered task: the first copy sends (or sent) it
        db.commit()
        name = (
            db.scalar(select(Template.name).where(Template.id == message.template_id)) if message.template_id else None
        )
        email = compose(settings, to=message.email, content=message.content or "", template_name=name)
        mlog = MessageLog(log, message_id, message.to_number)
    try:
        send(settings, email)
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        with session_scope(settings.database) as db:
            _set(db, message_id, [SENDING], fallback_status=FAILED, fallback_error=error[:2000], fallback_at=utcnow())
        mlog.warning("email fallback failed: %s", error)
        return FAILED
    with session_scope(settings.database) as db:
        _set(db, message_id, [SENDING], fallback_status=SENT, fallback_error=None, fallback_at=utcnow())
    mlog.info("email fallback sent")
    return SENT


def subject_of(content: str, template_name: str | None) -> str:
    """The template's name made readable ("payment_reminder" → "Payment reminder"), else the
    content's first non-empty line, cut to fit a subject line."""
    if template_name:
        title = template_name.replace("_", " ").replace("-", " ").strip().capitalize()
    else:
        lines = [line.strip() for line in content.splitlines() if line.strip()]
        title = lines[0] if lines else "Notification"
    title = title.strip("*_~ ")  # WhatsApp's bold/italic markers mean nothing in a subject
    if len(title) > 78:
        title = title[:75].rstrip() + "..."
    return f"{SUBJECT_PREFIX} {title}"


def compose(settings: Settings, *, to: str, content: str, template_name: str | None) -> EmailMessage:
    """A text part (the message as WhatsApp would have shown it) and a plain HTML wrapper,
    with the content escaped (template data is customer text, never markup)."""
    email = EmailMessage()
    email["Subject"] = subject_of(content, template_name)
    email["From"] = settings.smtp_from
    email["To"] = to
    email["Message-ID"] = make_msgid(domain=settings.smtp_from.rpartition("@")[2] or None)
    note = "Pesan ini dikirim lewat email karena tidak dapat dikirim lewat WhatsApp."
    email.set_content(f"{content}\n\n--\n{note}\n")
    body = html.escape(content).replace("\n", "<br>\n")
    email.add_alternative(
        f"""<!DOCTYPE html>
<html><body>
<div style="font-family: Arial, sans-serif; max-width: 600px; margin: 0 auto;">
<div style="background: #f5f5f5; padding: 20px; border-radius: 8px; margin: 20px 0;">
{body}
</div>
<p style="color: #666; font-size: 14px;">{html.escape(note)}</p>
</div>
</body></html>
""",
        subtype="html",
    )
    return email


def send(settings: Settings, email: EmailMessage) -> None:
    """Hand ``email`` to the configured SMTP server (bounded by ``smtp_timeout_seconds``)."""
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_user, password)
        smtp.send_message(email)
