"""Every Redis key and queue name wa-tasks uses, in one place."""

from __future__ import annotations

#: Prefix of every key wa-tasks writes itself (Celery/kombu keys are named by them).
PREFIX = "wa:"

#: The Celery queue of the worker (dispatch, public tasks, beat jobs).
DEFAULT_QUEUE = "wa.default"

#: The Celery queue of urgent single dispatches (``wa.dispatch`` at priority 0): consumed by the
#: worker and by a worker kept for it alone (Procfile ``urgent``), so that an urgent message is
#: routed at once even while every thread of the main worker routes a bulk's batches.
URGENT_QUEUE = "wa.urgent"

#: The Celery queue of the status-event deliverer (``wa.deliver_webhooks``): consumed by a worker of
#: its own (Procfile ``webhooks``), so that a slow or dead receiver never holds a thread that routes messages.
WEBHOOK_QUEUE = "wa.webhooks"

#: Prefix of the per-session queues consumed by the session hosts.
SESSION_QUEUE_PREFIX = "wa.session."


def session_queue(session_id: str) -> str:
    """The Celery queue of one WhatsApp session."""
    return f"{SESSION_QUEUE_PREFIX}{session_id}"


def live_state(session_id: str) -> str:
    """Hash: a session's live state as its host last wrote it (valid while ``host_live`` of that
    host exists)."""
    return f"{PREFIX}session:{session_id}:live"


def lease(session_id: str) -> str:
    """String ``host|token``: the session host that owns the session (while ``host_lease`` of that
    host exists)."""
    return f"{PREFIX}lease:{session_id}"


def lease_fence(session_id: str) -> str:
    """Counter: the session's last fencing token (only grows)."""
    return f"{PREFIX}lease:{session_id}:fence"


#: Sorted set: live session hosts, scored by their last heartbeat (unix time).
HOSTS = f"{PREFIX}hosts"


def pace_slot(session_id: str) -> str:
    """String: the earliest time (ms, Redis clock) the session may send again (all hosts)."""
    return f"{PREFIX}pace:{session_id}"


def recipient_window(number: str) -> str:
    """Sorted set: send times (ms) to one recipient over the last hour, for the per-recipient cap."""
    return f"{PREFIX}recipient:{number}:sends"


def safety_day(session_id: str, day: int) -> str:
    """Hash ``sent``/``new``: a session's sends and new contacts on one (local) day."""
    return f"{PREFIX}safety:{session_id}:day:{day}"


def safety_hour(session_id: str, hour: int) -> str:
    """Counter: a session's sends in one clock hour."""
    return f"{PREFIX}safety:{session_id}:hour:{hour}"


def safety_state(session_id: str) -> str:
    """Hash ``paused_until``/``slow_until``/``reason``: a session taken out of rotation by WhatsApp."""
    return f"{PREFIX}safety:{session_id}:state"


def session_contacts(session_id: str) -> str:
    """Set: every number the session has messaged (they are no longer new contacts to it)."""
    return f"{PREFIX}session:{session_id}:contacts"


def api_rate(key_id: str) -> str:
    """Sorted set: the request times (ms) of a stored API key in the last minute, for its rate limit
    (``wa_tasks/web/rate_limit.py``). Named by the key's id, never by the key."""
    return f"{PREFIX}api-rate:{key_id}"


def commands(db: int) -> str:
    """Pub/Sub channel of operator commands to the host that owns a session (pair, logout, probe, …),
    for the installation on Redis database ``db``: channels, unlike keys, are shared by every
    database of a server, and a logout meant for one installation's wa-1 must not reach another's."""
    return f"{PREFIX}commands:{db}"


def command_reply(request_id: str) -> str:
    """String (JSON, short TTL): a session host's answer to one command."""
    return f"{PREFIX}reply:{request_id}"


def session_qr(session_id: str) -> str:
    """Hash ``code``/``expires_at``: the QR code a session shows now (expires with it)."""
    return f"{PREFIX}session:{session_id}:qr"


def session_health(session_id: str) -> str:
    """Hash: the last health probe of a session (latency, error) as its host measured it."""
    return f"{PREFIX}session:{session_id}:health"


def host_lease(hostname: str) -> str:
    """String with a TTL (``WA_LEASE_TTL_SECONDS``) that the host's heartbeat renews: every session
    lease the host holds is valid while it exists."""
    return f"{PREFIX}host:{hostname}:lease"


def host_live(hostname: str) -> str:
    """String with a TTL (``WA_LIVE_STATE_TTL_SECONDS``) that the host's heartbeat renews: the live
    states the host wrote count while it exists."""
    return f"{PREFIX}host:{hostname}:live"


def host_wake(hostname: str) -> str:
    """List: wake-ups of one session host's scheduler, which waits in a BRPOP on this list and on its
    ready sessions' queues (``sessions_host.scheduler``)."""
    return f"{PREFIX}host:{hostname}:wake"


def beat_claim(entry_name: str) -> str:
    """String with a TTL just under the entry's period: the beat process that sent its last run."""
    return f"{PREFIX}beat:{entry_name}"


#: String with a TTL: the releaser of scheduled messages running now (one at a time; ``wa.release``).
RELEASE_LOCK = f"{PREFIX}release:lock"

#: String with a TTL: the deliverer of status events running now (one at a time, so a message's
#: events go out in order; ``wa.deliver_webhooks``).
WEBHOOK_LOCK = f"{PREFIX}webhooks:lock"

#: Counter: scheduled messages the releaser has queued, all runs together (monitoring; the
#: scheduling benchmark checks that it equals what was scheduled: nothing released twice).
RELEASED_TOTAL = f"{PREFIX}release:total"

#: Sorted set: queue depth of every session over the last 24 h, one JSON member
#: ``{"t": unix time, "d": {session: depth}}`` per sample, scored by time (``wa.sample_depth``).
DEPTH_SAMPLES = f"{PREFIX}depth:samples"

#: String: the broker Redis' ``run_id`` as the sweeper last saw it (a new one means a restart).
BROKER_RUN_ID = f"{PREFIX}broker:run-id"

#: Hash: delivery tag → id of the worker process that received that task message and has not run
#: it yet (``wa_tasks.infra.worker_lost``).
WORKER_HELD = f"{PREFIX}worker:held"

#: String with a short TTL: the worker process putting back the messages of dead workers now.
WORKER_RESTORING = f"{PREFIX}worker:restoring"


def worker_alive(worker_id: str) -> str:
    """String with a TTL that a running worker process renews: it is alive while the key exists."""
    return f"{PREFIX}worker:{worker_id}:alive"


# Simulated WhatsApp network -----------------------------------------------------------------

#: List: every message the simulated network accepted (JSON), in order.
SIM_LEDGER = f"{PREFIX}sim:ledger"
#: Hash: session id → phone number of its simulated device (a paired session).
SIM_DEVICES = f"{PREFIX}sim:devices"
#: Set: session ids whose simulated connection is dropped (``wa-tasks sim drop``).
SIM_DROPPED = f"{PREFIX}sim:dropped"
#: List: read receipts the simulated sessions sent to customers (JSON).
SIM_READ_RECEIPTS = f"{PREFIX}sim:read-receipts"
#: Set: numbers that are not on WhatsApp in the simulated network (sends to them fail permanently).
SIM_NOT_ON_WHATSAPP = f"{PREFIX}sim:not-on-whatsapp"
#: Hash: session id → the QR string it currently shows (unpaired sessions).
SIM_QR = f"{PREFIX}sim:qr"
#: Sorted set: session id → the earliest time something waits for it on the simulated network (a
#: reply now, a receipt when it is due): the hubs read this one key per tick rather than every
#: session's lists.
SIM_DUE = f"{PREFIX}sim:due"
#: Counter: bumped whenever a device is paired or unpaired or a connection dropped or restored, so
#: that the hubs read the devices and drops again only when they changed.
SIM_VERSION = f"{PREFIX}sim:version"
#: Set: session ids whose QR was "scanned" (``wa-tasks sim scan``).
SIM_SCANNED = f"{PREFIX}sim:scanned"


def sim_receipts(session_id: str) -> str:
    """Sorted set: delivery and read receipts (JSON) the simulated network holds for a session's
    device until it is connected, scored by the time each is due (it outlives the host that sent)."""
    return f"{PREFIX}sim:receipts:{session_id}"


def sim_replies(session_id: str) -> str:
    """List: customers' replies (JSON) waiting to reach a simulated session as incoming messages."""
    return f"{PREFIX}sim:replies:{session_id}"
