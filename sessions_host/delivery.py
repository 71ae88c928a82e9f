"""Delivering one message on one session: claim (the checks before the send, then the claim),
send, settle. Each way a delivery ends is one call into ``wa_tasks.pipeline.outcomes``, which writes the
outcome and publishes what must follow; see ``wa_tasks.pipeline.lifecycle`` for the delivery semantics.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from celery import Celery
from sqlalchemy import bindparam, select

from models import SENT_OR_FINAL, Message, MessageStatus, Template, utcnow
from models.db import engine_for
from sessions_host.safety import Decision
from sessions_host.transports.base import (
    AmbiguousSendError,
    BannedError,
    RecipientError,
    RestrictedError,
    SendResult,
    SendTag,
    SessionError,
    TransientSendError,
    Transport,
)
from wa_tasks.core import timefmt
from wa_tasks.core.phone import USER_SERVER
from wa_tasks.infra.logs import MessageLog
from wa_tasks.pipeline import lifecycle, outcomes, schedule
from wa_tasks.pipeline.media import Media, MediaError, Payload, of_message, payload_of
from wa_tasks.pipeline.outcomes import Outcome
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Claim:
    """A message this session claimed, with what its send needs."""

    message_id: str
    log: MessageLog
    to_number: str
    content: str
    priority: int
    max_attempts: int
    media: Media | None
    tag: SendTag
    attempts: int  #: counted so far, this one included
    is_new: bool  #: a new contact, for ban safety
    expires_at: dt.datetime | None  #: not sent by then: expired


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
READ_MESSAGE = (
    select(
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
        Message.expires_at,
        Message.category,
        Message.tz,
        # The template's own send window, in preference to its category's (NULL: the category's).
        Template.send_window,
    )
    .select_from(Message)
    .outerjoin(Template, Template.id == Message.template_id)
    .where(Message.id == bindparam("message_id"))
)


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
        #: The checks and the claim run on a Core connection (they load no ORM object, and an ORM
        #: session's bookkeeping would cost a tenth of the host's CPU a message), each statement
        #: committed on its own: the read needs no transaction, the claim is one guarded UPDATE, and
        #: a BEGIN and a COMMIT would be two more round trips to the database a message.
        self._engine = engine_for(settings.database, autocommit=True)

    def deliver(self, message_id: str) -> Outcome:
        claim = self._claim(message_id)
        if isinstance(claim, Outcome):
            return claim
        try:  # a media URL is fetched now, bounded in time and size (wa_tasks.pipeline.media)
            payload = payload_of(claim.media) if claim.media is not None else None
        except MediaError as exc:
            claim.log.warning("not sent: the media could not be fetched: %s", exc)
            return outcomes.fail(self.app, self.settings, message_id, f"media_download_failed: {exc}")
        if not self._take_slot(claim):
            return outcomes.put_back(self.settings, message_id, self.session_id)
        if claim.expires_at is not None and claim.expires_at <= utcnow():
            # The pace slot came after the expiry: nothing went out, and nothing goes out late.
            claim.log.info("expired while waiting for its pace slot: not sent")
            return outcomes.expire(self.settings, message_id, self.session_id)
        try:
            result = self._send(claim, payload)
        except Exception as exc:
            return self._settle_unsent(claim, exc)
        # The send is recorded first, through a dropped database connection if need be: it
        # happened, and a sent message left "sending" would later be failed as ambiguous. Ban
        # safety's counters live in Redis; if Redis is unreachable now, one send goes uncounted.
        outcome = outcomes.sent(self.settings, message_id, result.wa_message_id, result.sent_at, self.session_id)
        try:
            self.gate.safety_sent(claim.to_number, claim.is_new)
        except Exception as exc:
            claim.log.warning("sent, but not counted for ban safety: %s", exc)
        claim.log.info("sent (attempt %d)", claim.attempts)
        return outcome

    def _claim(self, message_id: str) -> _Claim | Outcome:
        """The checks before a send, then the claim (``routed``/``queued → sending``). A message
        this session is not to send is settled instead, once the read's transaction is over."""
        with self._engine.connect() as db:
            message = db.execute(READ_MESSAGE, {"message_id": message_id}).one_or_none()
            if message is None:
                log.warning("deliver: unknown message %s", message_id)
                return Outcome.SKIPPED
            mlog = MessageLog(log, message_id, message.to_number, self.session_id)
            if message.status in SENT_OR_FINAL:
                mlog.info("duplicate deliver ignored (message is %s)", message.status)
                return Outcome.SKIPPED
            mine = message.session_id == self.session_id
            found_sending = message.status == MessageStatus.SENDING and mine
            routed_here = message.status == MessageStatus.ROUTED and mine
            if not found_sending and not routed_here and message.status != MessageStatus.QUEUED:
                mlog.info("stale deliver ignored (message is %s on %s)", message.status, message.session_id)
                return Outcome.SKIPPED
            settle: Callable[[], Outcome] | None = None
            is_new = False
            now = utcnow()
            if found_sending:
                mlog.error("ambiguous send found after a restart: marked failed, not resent (a receipt may resolve it)")
                settle = partial(outcomes.ambiguous, self.settings, message_id)
            elif message.expires_at is not None and message.expires_at <= now:
                mlog.info("expired before its send (expires_at %s): not sent", timefmt.iso(message.expires_at))
                settle = partial(outcomes.expire, self.settings, message_id)
            elif (
                until := schedule.window_hold(
                    self.settings, message.category, message.tz, message.priority, now, override=message.send_window
                )
            ) is not None:
                # Checked here, at the send, and not only at release: a paced bulk that runs past
                # the window's end stops there and the rest waits for the next opening.
                mlog.info("outside its send window: held until %s", timefmt.iso(until))
                settle = partial(outcomes.hold, self.settings, message_id, until)
            elif not self.transport.connected:
                mlog.warning("session not connected: message moved to another session")
                settle = partial(self._reroute, message_id, message.priority)
            else:
                decision, is_new = self.gate.safety_check(message.to_number)
                if not decision.allowed:
                    mlog.info("ban safety: %s; message moved to another session", decision.reason)
                    settle = partial(self._reroute, message_id, message.priority)
                elif self.gate.recipient_wait(message.to_number, message_id) > 0:
                    mlog.warning("not sent: the recipient's hourly cap is reached")
                    cap = self.settings.recipient_hourly_cap
                    error = (
                        f"recipient_cap: this number already got {cap} messages in the last hour; "
                        "not sent (raise WA_RECIPIENT_HOURLY_CAP if that is intended)"
                    )
                    settle = partial(outcomes.fail, self.app, self.settings, message_id, error, email_fallback=False)
            if settle is None:
                # What identifies the send to WhatsApp is chosen now and stored with the claim, before
                # anything goes out: if this host dies during the send, a receipt for it still proves
                # whether the message arrived (see wa_tasks.pipeline.lifecycle).
                tag = self.transport.new_tag()
                try:
                    attempts = lifecycle.claim_attempts(
                        db, message_id, self.session_id, wa_message_id=tag.wa_message_id, send_secret=tag.secret
                    )
                except Exception:
                    # The connection dropped during the claim (which may have been committed): nothing
                    # was sent, so the claim is taken back and the redelivered task sends it.
                    self._unclaim(message_id)
                    raise
                if attempts is None:
                    return Outcome.SKIPPED
                return _Claim(
                    message_id=message_id,
                    log=mlog,
                    to_number=message.to_number,
                    content=message.content or "",
                    priority=message.priority,
                    max_attempts=message.max_attempts,
                    media=of_message(message),
                    tag=tag,
                    attempts=attempts,
                    is_new=is_new,
                    expires_at=message.expires_at,
                )
        return settle()

    def _take_slot(self, claim: _Claim) -> bool:
        """The shared pace slot, taken last, right before the send, so that the sends themselves
        (not the database writes before them) are spaced by the pace across every host. False if
        the host is stopping."""
        try:
            return self.gate.take_slot()
        except Exception:
            # Redis unreachable before anything went out: the claim is taken back, so that the
            # redelivered task sends it instead of finding an "ambiguous" send that never began.
            self._unclaim(claim.message_id)
            raise

    def _send(self, claim: _Claim, payload: Payload | None) -> SendResult:
        to_jid = f"{claim.to_number}@{USER_SERVER}"
        if payload is None:
            return self.transport.send_text(to_jid, claim.content, tag=claim.tag)
        return self.transport.send_media(
            to_jid, payload.data, payload.mimetype, claim.content, payload.filename, tag=claim.tag
        )

    def _settle_unsent(self, claim: _Claim, exc: Exception) -> Outcome:
        """What a claimed message that was not sent becomes, by what stopped it."""
        mlog, message_id = claim.log, claim.message_id
        if isinstance(exc, SessionError):
            if isinstance(exc, (RestrictedError, BannedError)):
                until = exc.until.timestamp() if isinstance(exc, BannedError) and exc.until else None
                self.gate.restricted(str(exc), until)
            mlog.warning("session could not send (%s): moved to another session", exc)
            return self._reroute(message_id, claim.priority, session_error=str(exc))
        if isinstance(exc, AmbiguousSendError):
            mlog.error("ambiguous send: %s; marked failed, not resent", exc)
            return outcomes.ambiguous(self.settings, message_id, str(exc))
        if isinstance(exc, RecipientError):
            mlog.warning("failed for this recipient, not retried: %s", exc)
            return outcomes.fail(self.app, self.settings, message_id, f"recipient: {exc}")
        # TransientSendError and anything unexpected: retry with backoff
        reason = str(exc) if isinstance(exc, TransientSendError) else f"{type(exc).__name__}: {exc}"
        if claim.attempts >= claim.max_attempts:
            mlog.error("failed after %d attempts: %s", claim.attempts, reason)
            error = f"{reason} (after {claim.attempts} attempts)"
            return outcomes.fail(self.app, self.settings, message_id, error, session_error=(self.session_id, reason))
        delay = retry_delay(claim.attempts)
        mlog.warning("attempt %d failed (%s); retrying in %.1fs", claim.attempts, reason, delay)
        return outcomes.retry_later(
            self.app, self.settings, message_id, claim.priority, session_id=self.session_id, error=reason, delay=delay
        )

    def _reroute(self, message_id: str, priority: int, session_error: str | None = None) -> Outcome:
        return outcomes.reroute(
            self.app, self.settings, message_id, priority, session_id=self.session_id, session_error=session_error
        )

    def _unclaim(self, message_id: str) -> None:
        """Take back a claim before anything was sent (see :func:`lifecycle.unclaim`)."""
        outcomes.put_back(self.settings, message_id, self.session_id)
