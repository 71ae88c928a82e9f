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


#: Pub/Sub channel on which session changes (added/removed) are announced to hosts.
SESSIONS_CHANGED = f"{PREFIX}sessions:changed"

# Simulated WhatsApp network -----------------------------------------------------------------

#: List: every message the simulated network accepted (JSON), in order.
SIM_LEDGER = f"{PREFIX}sim:ledger"
#: Hash: session id → phone number of its simulated device (a paired session).
SIM_DEVICES = f"{PREFIX}sim:devices"
#: Set: session ids whose simulated connection is dropped (``wa-tasks sim drop``).
SIM_DROPPED = f"{PREFIX}sim:dropped"
#: Hash: session id → the QR string it currently shows (unpaired sessions).
SIM_QR = f"{PREFIX}sim:qr"
#: Set: session ids whose QR was "scanned" (``wa-tasks sim scan``).
SIM_SCANNED = f"{PREFIX}sim:scanned"
