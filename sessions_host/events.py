"""Turns what transports report (state changes, receipts, QR codes) into records, on one thread
of its own so that a transport's callback only ever enqueues (neonize's event thread must never
block)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update

from models import WhatsAppSession, utcnow
from models.db import session_scope
from sessions_host.transports.base import Event, Incoming, QRCode, Receipt, StateChanged
from wa_tasks.pipeline import incoming, lifecycle
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: A receipt can overtake the ``sent`` write of its own message; it is retried this long.
RECEIPT_PATIENCE_SECONDS = 30.0


@dataclass
class _Pending:
    session_id: str
    event: Event
    first_seen: float
    not_before: float = 0.0
    #: A receipt's unknown ids were looked up in the session's device store (once is enough).
    looked_up: bool = False


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        on_state: Callable[[str, StateChanged], None],
        on_qr: Callable[[str, QRCode], None] = lambda session_id, qr: None,
        on_incoming: Callable[[str, Incoming], None] = lambda session_id, message: None,
    ) -> None:
        self.on_qr = on_qr
        #: Called for a newly stored incoming message when read receipts are on.
        self.on_incoming = on_incoming
        self.settings = settings
        self.on_state = on_state
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._waiting: list[_Pending] = []
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def sink_for(self, session_id: str) -> Callable[[Event], None]:
        def sink(event: Event) -> None:
            self._queue.put(_Pending(session_id, event, time.monotonic()))

        return sink

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until queued events are handled (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._waiting) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                self._retry_waiting()
                continue
            if item is None:
                return
            self._handle(item)
            self._retry_waiting()

    def _retry_waiting(self) -> None:
        now = time.monotonic()
        waiting, self._waiting = self._waiting, []
        for item in waiting:
            if item.not_before > now:
                self._waiting.append(item)
            else:
                self._handle(item)

    def _handle(self, item: _Pending) -> None:
        try:
            event = item.event
            if isinstance(event, StateChanged):
                self._state(item.session_id, event)
            elif isinstance(event, Receipt):
                self._receipt(item, event)
            elif isinstance(event, QRCode):
                self.on_qr(item.session_id, event)
                log.info(
                    "session %s shows a new QR code (valid %.0fs)",
                    item.session_id,
                    event.expires_in,
                    extra={"session_id": item.session_id},
                )
            elif isinstance(event, Incoming):
                stored = incoming.receive(
                    self.settings, item.session_id, event.sender, event.text, event.wa_message_id, event.at
                )
                if stored is not None and self.settings.mark_incoming_read:
                    self.on_incoming(item.session_id, event)
        except Exception:
            log.exception(
                "event %r of session %s could not be recorded; retrying", type(item.event).__name__, item.session_id
            )
            item.not_before = time.monotonic() + 2.0
            self._waiting.append(item)

    def _state(self, session_id: str, event: StateChanged) -> None:
        self.on_state(session_id, event)
        values = {"status": event.status, "status_changed_at": utcnow()}
        if event.phone_number:
            values["phone_number"] = event.phone_number
        if event.until is not None:
            values["banned_until"] = event.until
        if event.detail and event.status != "connected":
            values["last_error"] = event.detail[:500]
        with session_scope(self.settings.database) as db:
            db.execute(update(WhatsAppSession).where(WhatsAppSession.session_id == session_id).values(**values))
        log.info(
            "session %s is %s%s",
            session_id,
            event.status,
            f" ({event.detail})" if event.detail else "",
            extra={"session_id": session_id},
        )

    def _receipt(self, item: _Pending, event: Receipt) -> None:
        missing = self._apply(event, event.wa_message_ids)
        if missing and not item.looked_up:
            item.looked_up = True
            if self._adopt(item.session_id, missing):
                missing = self._apply(event, missing)
        if missing:
            if time.monotonic() - item.first_seen < RECEIPT_PATIENCE_SECONDS:
                item.event = Receipt(wa_message_ids=tuple(missing), kind=event.kind, at=event.at)
                item.not_before = time.monotonic() + 0.5
                self._waiting.append(item)
            else:
                log.warning(
                    "%s receipt for unknown WhatsApp message(s) %s dropped",
                    event.kind,
                    ", ".join(missing),
                    extra={"session_id": item.session_id},
                )

    def _apply(self, event: Receipt, wa_ids: Sequence[str]) -> list[str]:
        """Apply ``event`` to each of ``wa_ids``; returns those no message has."""
        missing = []
        with session_scope(self.settings.database) as db:
            for wa_id in wa_ids:
                if not lifecycle.apply_receipt(db, wa_id, event.kind, event.at) and not lifecycle.has_wa_id(db, wa_id):
                    missing.append(wa_id)
        return missing

    def _adopt(self, session_id: str, wa_ids: list[str]) -> bool:
        """Receipts for ids no message has. On a neonize session the id may be that of a send
        whose host died before WhatsApp's answer (with the id) came back: whatsmeow stored the
        secret the send carried with the id, and the message with that secret takes the id
        (``lifecycle.adopt_id``). True if one did."""
        with session_scope(self.settings.database) as db:
            transport = db.scalar(select(WhatsAppSession.transport).where(WhatsAppSession.session_id == session_id))
        if transport != "neonize":
            return False
        from sessions_host.transports.neonize.store import NeonizeStore
        from sessions_host.transports.neonize.transport import sent_secrets

        store = NeonizeStore.for_session(self.settings.database, self.settings.data_path, session_id)
        adopted = False
        for wa_id in wa_ids:
            found = sent_secrets(store, wa_id)
            if found:
                with session_scope(self.settings.database) as db:
                    adopted = lifecycle.adopt_id(db, found, wa_id) or adopted
        return adopted
