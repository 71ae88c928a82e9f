"""Delivering one message on one session: the checks before the send, the send, and what each
outcome writes. See ``wa_tasks.pipeline.lifecycle`` for the delivery semantics this enforces.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

from celery import Celery
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from models import SENT_OR_FINAL, Message, MessageStatus
from models.db import engine_for, write_through_disconnects
from sessions_host.safety import Decision
from sessions_host.transports.base import (
    AmbiguousSendError,
    BannedError,
    RecipientError,
    RestrictedError,
    SessionError,
    TransientSendError,
    Transport,
)
from wa_tasks.core.phone import USER_SERVER
from wa_tasks.infra.logs import MessageLog
from wa_tasks.pipeline import fallback, lifecycle, submit
from wa_tasks.pipeline.media import MediaError, of_message, payload_of
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"  #: transient error; dispatched again after a backoff
    REROUTED = "rerouted"  #: the session could not send; dispatched again to another session
    AMBIGUOUS = "ambiguous"  #: found mid-send after a crash; failed without resending
    SKIPPED = "skipped"  #: already sent, cancelled, or routed elsewhere: a duplicate task
    DEFERRED = "deferred"  #: the host is stopping: the message goes back to its queue unsent


class Gate(Protocol):
    """What must allow a send before it is claimed (the runner's pacing and the Redis guards)."""

    def recipient_wait(self, number: str, message_id: str) -> float:
        """0 if one more message to ``number`` is within its cap (and counts it), else seconds to wait."""
        ...

    def take_slot(self) -> bool:
        """Block until this session may send; False if the host is stopping."""
        ...

    def safety_check(self, number: str) -> tuple[Decision, bool]:
        """Ban safety's decision for one message to ``number``, and whether it is a new contact."""
        ...

    def safety_sent(self, number: str, is_new: bool) -> None:
        """Count a send for ban safety."""
        ...

    def restricted(self, reason: str, until: float | None) -> None:
        """WhatsApp restricted (463) or banned the number (until ``until``)."""
        ...


#: What delivering reads of a message, as one prepared statement: the columns it needs and no
#: more (not the encrypted ``data`` and ``email``, which would be decrypted for nothing), read as a
#: row rather than loaded as an ORM object (the object and its identity-map bookkeeping would
#: cost ≈15 % of the host's CPU a message at high rates).
READ_MESSAGE = select(
    Message.status,
    Message.session_id,
    Message.to_number,
    Message.content,
    Message.priority,
    Message.max_attempts,
    Message.message_type,
    Message.media_url,
    Message.media_data,
    Message.media_mimetype,
    Message.media_filename,
).where(Message.id == bindparam("message_id"))


def _without_synchronizing(state: ORMExecuteState) -> None:
    """The checks and the claim read the message as a row, so their session holds no ORM object
    for an UPDATE to bring up to date: skip the ORM's evaluation of each UPDATE's criteria in Python
    (``synchronize_session``), done for nothing on every claim."""
    if state.is_update:
        state.update_execution_options(synchronize_session=False)


def retry_delay(attempt: int, cap: float = 60.0) -> float:
    """Backoff before attempt ``attempt + 1``: 2, 4, 8 … s, capped, with ±25 % jitter."""
    return min(cap, 2.0 ** min(attempt, 32)) * random.uniform(0.75, 1.25)


class Deliverer:
    def __init__(
        self,
        app: Celery,
        settings: Settings,
        session_id: str,
        transport: Transport,
        gate: Gate,
    ) -> None:
        self.gate = gate
        self.app = app
        self.settings = settings
        self.session_id = session_id
        self.transport = transport
        #: The sessions of the checks and the claim, made by one factory for the runner's life
        #: (a ``sessionmaker`` per message built a Session class and its event dispatch each time).
        self._sessions = sessionmaker(bind=engine_for(settings.database), expire_on_commit=False)
        event.listen(self._sessions, "do_orm_execute", _without_synchronizing)

    def deliver(self, message_id: str) -> Outcome:
        with self._sessions.begin() as db:  # commits at the end, rolls back on an error
            message = db.connection().execute(READ_MESSAGE, {"message_id": message_id}).one_or_none()
            if message is None:
                log.warning("deliver: unknown message %s", message_id)
                return Outcome.SKIPPED
            mlog = MessageLog(log, message_id, message.to_number, self.session_id)
            if message.status in SENT_OR_FINAL:
                mlog.info("duplicate deliver ignored (message is %s)", message.status)
                return Outcome.SKIPPED
            if message.status == MessageStatus.SENDING and message.session_id == self.session_id:
                lifecycle.mark_failed(db, message_id, lifecycle.AMBIGUOUS_SEND)
                mlog.error("ambiguous send found after a restart: marked failed, not resent (a receipt may resolve it)")
                return Outcome.AMBIGUOUS
            mine = message.status == MessageStatus.ROUTED and message.session_id == self.session_id
            if not mine and message.status != MessageStatus.QUEUED:
                mlog.info("stale deliver ignored (message is %s on %s)", message.status, message.session_id)
                return Outcome.SKIPPED
            if not self.transport.connected:
                lifecycle.requeue(db, message_id)
                db.commit()
                submit.publish_dispatch(self.app, message_id, message.priority, exclude=[self.session_id])
                mlog.warning("session not connected: message moved to another session")
                return Outcome.REROUTED
            decision, is_new = self.gate.safety_check(message.to_number)
            if not decision.allowed:
                lifecycle.requeue(db, message_id)
                db.commit()
                submit.publish_dispatch(self.app, message_id, message.priority, exclude=[self.session_id])
                mlog.info("ban safety: %s; message moved to another session", decision.reason)
                return Outcome.REROUTED
            over_cap = self.gate.recipient_wait(message.to_number, message_id)
            if over_cap > 0:
                lifecycle.mark_failed(
                    db,
                    message_id,
                    f"recipient_cap: this number already got {self.settings.recipient_hourly_cap} messages "
                    "in the last hour; not sent (raise WA_RECIPIENT_HOURLY_CAP if that is intended)",
                )
                mlog.warning("not sent: the recipient's hourly cap is reached")
                return Outcome.FAILED
            # What identifies the send to WhatsApp is chosen now and stored with the claim, before
            # anything goes out: if this host dies during the send, a receipt for it still proves
            # whether the message arrived (see wa_tasks.pipeline.lifecycle).
            tag = self.transport.new_tag()
            attempts = lifecycle.claim_attempts(
                db, message_id, self.session_id, wa_message_id=tag.wa_message_id, send_secret=tag.secret
            )
            if attempts is None:
                return Outcome.SKIPPED
            try:
                db.commit()
            except Exception:
                # The connection dropped at the commit (which may have happened) or right after:
                # nothing was sent, so the claim is taken back and the redelivered task sends it.
                self._unclaim(message_id)
                raise
            to_jid = f"{message.to_number}@{USER_SERVER}"
            content = message.content or ""
            priority, max_attempts = message.priority, message.max_attempts
            media = of_message(message)

        try:  # a media URL is fetched now, bounded in time and size (wa_tasks.pipeline.media)
            payload = payload_of(media) if media is not None else None
        except MediaError as exc:
            error = f"media_download_failed: {exc}"
            self._record(lambda db: lifecycle.mark_failed(db, message_id, error))
            fallback.maybe_queue(self.app, self.settings, message_id)
            mlog.warning("not sent: the media could not be fetched: %s", exc)
            return Outcome.FAILED
        # The shared pace slot is taken last, right before the send, so that the sends themselves
        # (not the database writes before them) are spaced by the pace across every host.
        try:
            granted = self.gate.take_slot()
        except Exception:
            # Redis unreachable before anything went out: the claim is taken back, so that the
            # redelivered task sends it instead of finding an "ambiguous" send that never began.
            self._unclaim(message_id)
            raise
        if not granted:
            self._unclaim(message_id)
            return Outcome.DEFERRED
        try:
            if payload is None:
                result = self.transport.send_text(to_jid, content, tag=tag)
            else:
                result = self.transport.send_media(
                    to_jid, payload.data, payload.mimetype, content, payload.filename, tag=tag
                )
        except SessionError as exc:
            if isinstance(exc, (RestrictedError, BannedError)):
                until = exc.until.timestamp() if isinstance(exc, BannedError) and exc.until else None
                self.gate.restricted(str(exc), until)
            reason = str(exc)
            self._record(
                lambda db: lifecycle.requeue(
                    db, message_id, error=f"session {self.session_id}: {reason}", refund_attempt=True
                )
            )
            self._record(lambda db: lifecycle.session_error(db, self.session_id, reason))
            submit.publish_dispatch(self.app, message_id, priority, exclude=[self.session_id])
            mlog.warning("session could not send (%s): moved to another session", exc)
            return Outcome.REROUTED
        except AmbiguousSendError as exc:
            error = f"{lifecycle.AMBIGUOUS_SEND} ({exc})"
            self._record(lambda db: lifecycle.mark_failed(db, message_id, error))
            mlog.error("ambiguous send: %s; marked failed, not resent", exc)
            return Outcome.AMBIGUOUS
        except RecipientError as exc:
            error = f"recipient: {exc}"
            self._record(lambda db: lifecycle.mark_failed(db, message_id, error))
            fallback.maybe_queue(self.app, self.settings, message_id)
            mlog.warning("failed for this recipient, not retried: %s", exc)
            return Outcome.FAILED
        except Exception as exc:  # TransientSendError and anything unexpected: retry with backoff
            reason = str(exc) if isinstance(exc, TransientSendError) else f"{type(exc).__name__}: {exc}"
            self._record(lambda db: lifecycle.session_error(db, self.session_id, reason))
            if attempts >= max_attempts:
                self._record(lambda db: lifecycle.mark_failed(db, message_id, f"{reason} (after {attempts} attempts)"))
                fallback.maybe_queue(self.app, self.settings, message_id)
                mlog.error("failed after %d attempts: %s", attempts, reason)
                return Outcome.FAILED
            delay = retry_delay(attempts)
            self._record(lambda db: lifecycle.requeue(db, message_id, error=reason))
            submit.publish_dispatch(self.app, message_id, priority, countdown=delay)
            mlog.warning("attempt %d failed (%s); retrying in %.1fs", attempts, reason, delay)
            return Outcome.RETRY

        # The send is recorded first, through a dropped database connection if need be: it
        # happened, and a sent message left "sending" would later be failed as ambiguous. Ban
        # safety's counters live in Redis; if Redis is unreachable now, one send goes uncounted.
        self._record(
            lambda db: lifecycle.mark_sent(db, message_id, result.wa_message_id, result.sent_at, self.session_id)
        )
        try:
            self.gate.safety_sent(to_jid.split("@", 1)[0], is_new)
        except Exception as exc:
            mlog.warning("sent, but not counted for ban safety: %s", exc)
        mlog.info("sent (attempt %d)", attempts)
        return Outcome.SENT

    def _record(self, write: Callable[[Session], object]) -> None:
        """Write what became of a claimed message, through a dropped database connection if need
        be: a message left ``sending`` is failed as an ambiguous send when its task comes back, so
        losing this write would turn a sent message, a retry or a reroute into a failure. Each
        such write is a conditional update, safe to run twice (``write_through_disconnects``);
        a session's error count alone may count one error twice."""
        write_through_disconnects(self.settings.database, write)

    def _unclaim(self, message_id: str) -> None:
        """Take back a claim before anything was sent (see :func:`lifecycle.unclaim`)."""
        self._record(lambda db: lifecycle.unclaim(db, message_id, self.session_id))
