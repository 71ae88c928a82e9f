"""The ``Transport`` interface between a session host and WhatsApp, and what crosses it.

A transport owns one WhatsApp connection. The host calls ``start``/``stop``/``send_text``; the
transport reports what happens (state changes, receipts, incoming messages) through the
``on_event`` callback, which must return quickly (the host queues the work).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

# Events reported by a transport ---------------------------------------------------------------


@dataclass(frozen=True)
class StateChanged:
    """The connection changed state (a ``models.SessionStatus`` value)."""

    status: str
    detail: str | None = None
    #: The device's own phone number once known (after pairing).
    phone_number: str | None = None
    #: For ``banned``: when the ban ends (UTC), if WhatsApp said.
    until: dt.datetime | None = None


@dataclass(frozen=True)
class QRCode:
    """A new QR code to show (raw string, rendered by the project)."""

    code: str
    #: Seconds until it rotates.
    expires_in: float


@dataclass(frozen=True)
class Receipt:
    """A delivery or read receipt for one or more sent messages."""

    wa_message_ids: tuple[str, ...]
    kind: str  #: "delivered" or "read"
    at: dt.datetime


@dataclass(frozen=True)
class Incoming:
    """A message received by the session."""

    sender: str  #: E.164 digits of the sender
    text: str
    wa_message_id: str
    at: dt.datetime


Event = StateChanged | QRCode | Receipt | Incoming
EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class SendTag:
    """What a transport chooses for a send before it goes out; stored with the claim, so that a
    receipt can resolve the send if the host dies during it (``wa_tasks.pipeline.lifecycle``, the ambiguous
    send). Empty: the transport can choose nothing, and its ambiguous sends stay with the operator."""

    #: The WhatsApp message id the send carries (a transport that can choose it).
    wa_message_id: str | None = None
    #: Hex of the 32-byte ``messageSecret`` the send carries: whatsmeow stores it with the id it
    #: generates before the message leaves, so the id can be found from it (neonize).
    secret: str | None = None


@dataclass(frozen=True)
class SendResult:
    wa_message_id: str
    #: Server acknowledgement time.
    sent_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


# Send errors, by what the host should do about them --------------------------------------------


class SendError(Exception):
    """A send did not go through."""


class TransientSendError(SendError):
    """Retry later, possibly on another session (timeouts, server 5xx, rate-overlimit)."""


class RecipientError(SendError):
    """Permanent for this recipient (not on WhatsApp, blocked): do not retry."""


class SessionError(SendError):
    """The session itself cannot send now (disconnected, logged out, banned): move the message."""


class AmbiguousSendError(SendError):
    """The send may or may not have reached WhatsApp (the transport died or stopped answering while
    it was in flight). It is never sent again (see ``wa_tasks.pipeline.lifecycle``, the ambiguous send)."""


class RestrictedError(SessionError):
    """WhatsApp restricts the number from contacting new numbers (error 463): take it out of
    rotation for a while; the message itself was not sent and may go through another number."""


class BannedError(SessionError):
    """The number is temporarily banned until ``until`` (UTC): nothing can be sent through it."""

    def __init__(self, message: str, until: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.until = until


class Transport(Protocol):
    """One WhatsApp connection."""

    session_id: str

    def start(self, on_event: EventSink) -> None:
        """Begin connecting (returns at once); report progress through ``on_event``."""

    def stop(self) -> None:
        """Close the connection; the device stays linked."""

    def new_tag(self) -> SendTag:
        """What the next send will carry to identify it (see ``SendTag``)."""
        ...

    def send_text(self, jid: str, text: str, tag: SendTag | None = None) -> SendResult:
        """Send a text message carrying ``tag`` (from ``new_tag``); blocks until WhatsApp's server
        acknowledges it."""
        ...

    def send_media(
        self,
        jid: str,
        data: bytes,
        mimetype: str,
        caption: str = "",
        filename: str | None = None,
        tag: SendTag | None = None,
    ) -> SendResult:
        """Send an image (``image/*``) or a document (anything else) with a caption."""
        ...

    @property
    def connected(self) -> bool: ...
