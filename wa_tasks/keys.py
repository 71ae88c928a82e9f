"""Every Redis key and queue name wa-tasks uses, in one place."""

from __future__ import annotations

#: Prefix of every key wa-tasks writes itself (Celery/kombu keys are named by them).
PREFIX = "wa:"

#: The Celery queue of the worker (dispatch, public tasks, beat jobs).
DEFAULT_QUEUE = "wa.default"

#: Prefix of the per-session queues consumed by the session hosts.
SESSION_QUEUE_PREFIX = "wa.session."


def session_queue(session_id: str) -> str:
    """The Celery queue of one WhatsApp session."""
    return f"{SESSION_QUEUE_PREFIX}{session_id}"


def live_state(session_id: str) -> str:
    """Hash: a session's live state as its host last reported it (expires without heartbeat)."""
    return f"{PREFIX}session:{session_id}:live"


def pace_slot(session_id: str) -> str:
    """String: the earliest time (ms, Redis clock) the session may send again (all hosts)."""
    return f"{PREFIX}pace:{session_id}"


def recipient_window(number: str) -> str:
    """Sorted set: send times (ms) to one recipient over the last hour, for the per-recipient cap."""
    return f"{PREFIX}recipient:{number}:sends"


#: Pub/Sub channel on which session changes (added/removed) are announced to hosts.
SESSIONS_CHANGED = f"{PREFIX}sessions:changed"

# Simulated WhatsApp network -----------------------------------------------------------------

#: List: every message the simulated network accepted (JSON), in order.
SIM_LEDGER = f"{PREFIX}sim:ledger"
#: Hash: session id → phone number of its simulated device (a paired session).
SIM_DEVICES = f"{PREFIX}sim:devices"
#: Set: session ids whose simulated connection is dropped (``wa-tasks sim drop``).
SIM_DROPPED = f"{PREFIX}sim:dropped"
#: Set: numbers that are not on WhatsApp in the simulated network (sends to them fail permanently).
SIM_NOT_ON_WHATSAPP = f"{PREFIX}sim:not-on-whatsapp"
#: Hash: session id → the QR string it currently shows (unpaired sessions).
SIM_QR = f"{PREFIX}sim:qr"
#: Set: session ids whose QR was "scanned" (``wa-tasks sim scan``).
SIM_SCANNED = f"{PREFIX}sim:scanned"
