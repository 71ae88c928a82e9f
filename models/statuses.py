"""Every status name of wa-tasks in one place: messages, sessions and bulk jobs."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """A message's life: ``[scheduled →] queued → routed → sending → sent → delivered → read``.

    ``failed`` (with error and attempts), ``cancelled`` and ``expired`` end it early.
    """

    SCHEDULED = "scheduled"  #: persisted with a later ``send_at`` (or held for its send window); the releaser queues it
    QUEUED = "queued"  #: persisted, waiting for ``dispatch`` to choose a session
    ROUTED = "routed"  #: published on a session's queue (``wa.session.<id>``)
    SENDING = "sending"  #: claimed by a session host, the send is in flight
    SENT = "sent"  #: WhatsApp's server acknowledged it (has a WhatsApp message id)
    DELIVERED = "delivered"  #: the recipient's phone received it
    READ = "read"  #: the recipient opened it
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  #: not sent by its ``expires_at``: never sent late


#: Statuses after which a message is never sent again.
SENT_OR_FINAL: frozenset[MessageStatus] = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.READ,
        MessageStatus.FAILED,
        MessageStatus.CANCELLED,
        MessageStatus.EXPIRED,
    }
)
#: Statuses of a message that is waiting and may still be cancelled or expire: nothing of it is in flight.
PENDING: frozenset[MessageStatus] = frozenset({MessageStatus.SCHEDULED, MessageStatus.QUEUED, MessageStatus.ROUTED})


class SessionStatus(StrEnum):
    """A WhatsApp session's connection state, as its session host reports it."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    QR = "qr"  #: waiting for a QR scan or a pairing code
    CONNECTED = "connected"
    LOGGED_OUT = "logged_out"  #: unlinked from the phone: needs a new QR
    BANNED = "banned"  #: temporarily banned until ``banned_until``
    FAILED = "failed"  #: reconnect attempts exhausted


class JobStatus(StrEnum):
    """A bulk job's state (``whatsapp_queue_jobs.status``)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
