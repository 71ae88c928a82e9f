"""Status callbacks, the delivering side: the outbox's due events sent to their receivers (a
signed HTTP POST, or a Celery task on the same broker), in order per message, at least once.

``run`` is the task ``wa.deliver_webhooks``, sent by beat every ``WA_WEBHOOK_INTERVAL_SECONDS`` to
its own queue (``wa.webhooks``), which a worker of its own consumes: a receiver that is slow or
down holds none of the threads that route messages, and the session hosts never wait for it. One
run at a time (a Redis lock) keeps delivering for about ``RUN_SECONDS``, batch by batch:

- **Claim.** The due ``pending`` events that have no earlier ``pending`` event of the same message
  and target (so ``delivered`` never overtakes ``sent``), oldest first, are leased in one short
  transaction (``next_attempt_at`` moved ``LEASE_SECONDS`` ahead; ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL): a deliverer killed mid-send leaves them due again after the lease, and they are sent
  again with the same id — at least once, never lost.
- **Send.** Up to ``WA_WEBHOOK_CONCURRENCY`` at once (events of different messages), each
  target's first event of the batch before its others. A URL's host
  is resolved and every address checked (no loopback, private or link-local address unless
  ``WA_WEBHOOK_ALLOW_PRIVATE``), then the request goes to the checked address (the name kept for
  ``Host`` and TLS, and one connection pool per name: ``HostClients``), so a name cannot resolve
  to a public address for the check and a private one for the send. httpx with connect and read
  timeouts, redirects not followed; 2xx is success.
- **Settle.** A success is ``delivered``. A failure waits ``webhook_rules.backoff_seconds`` (5 s
  doubling to an hour, with jitter) in ``next_attempt_at``, or becomes ``dead`` past its
  ``give_up_at`` (``WA_WEBHOOK_RETRY_HOURS``). A target that failed is held: its other due events
  (those written since included) wait as long as the failed one, at most ``HOLD_SECONDS``, without
  an attempt counted. A dead receiver with a long backlog costs an attempt every few seconds to
  ``HOLD_SECONDS``, not one per event; a receiver back from an outage gets the backlog within
  ``HOLD_SECONDS``; other receivers' events are not held behind its.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import exists, select, update
from sqlalchemy.orm import aliased

from models import DEAD_EVENT, DELIVERED_EVENT, PENDING_EVENT, WebhookEvent, utcnow
from models.db import session_scope
from wa_tasks.core import redis_keys, webhook_rules
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline.webhooks import mask_target
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Longest one run keeps delivering (seconds); beat's next run continues.
RUN_SECONDS = 20.0
#: How long the run's lock lives if its holder dies (seconds): more than a run and one timeout.
LOCK_SECONDS = 120
#: How long a claimed event is not claimed again: longer than one attempt can take.
LEASE_SECONDS = 120.0
#: Events claimed per batch.
BATCH = 200
#: Longest a failed target holds its other events (seconds): the failed event itself keeps its
#: exponential backoff, but a receiver back from a long outage gets the rest within this.
HOLD_SECONDS = 30.0
#: Wait between two looks at an empty outbox within a run (seconds).
IDLE_SECONDS = 0.1


@dataclass
class Delivery:
    """What one run did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0  #: not tried: their target failed earlier in the run

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "dead": self.dead, "deferred": self.deferred}


@dataclass(frozen=True)
class Claimed:
    id: int
    event_id: str
    target: str
    payload: str
    attempts: int
    give_up_at: dt.datetime


class Refused(Exception):
    """The target may not be reached (SSRF guard) or is not a valid target."""


def claim(settings: Settings, now: dt.datetime, limit: int = BATCH) -> list[Claimed]:
    """Lease up to ``limit`` due events that no earlier pending event of their message and target holds back."""
    earlier = aliased(WebhookEvent)
    blocked = exists().where(
        earlier.message_id == WebhookEvent.message_id,
        earlier.target == WebhookEvent.target,
        earlier.state == PENDING_EVENT,
        earlier.id < WebhookEvent.id,
    )
    with session_scope(settings.database) as db:
        rows = db.execute(
            select(
                WebhookEvent.id,
                WebhookEvent.event_id,
                WebhookEvent.target,
                WebhookEvent.payload,
                WebhookEvent.attempts,
                WebhookEvent.give_up_at,
            )
            .where(WebhookEvent.state == PENDING_EVENT, WebhookEvent.next_attempt_at <= now, ~blocked)
            .order_by(WebhookEvent.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookEvent)
        ).all()
        if rows:
            db.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + dt.timedelta(seconds=LEASE_SECONDS)),
                execution_options={"synchronize_session": False},
            )
    return [Claimed(r.id, r.event_id, r.target, r.payload, r.attempts, r.give_up_at) for r in rows]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class HostClients:
    """One httpx client per receiver host name. Requests go to the checked address, so httpx pools
    connections by address: two names on one address sharing a pooled TLS connection would send
    the second name's events over a connection whose certificate was checked for the first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients: dict[str, httpx.Client] = {}

    def get(self, host: str) -> httpx.Client:
        if host not in self.clients:
            self.clients[host] = make_client(self.settings)
        return self.clients[host]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def post(
    client: httpx.Client | HostClients,
    settings: Settings,
    event: Claimed,
    *,
    resolver: Callable[[str, int], list[str]] = resolve,
    clock: Callable[[], float] = time.time,
) -> None:
    """POST one event to its URL, signed; raises on anything but a 2xx answer."""
    url = httpx.URL(event.target)
    if url.scheme not in ("http", "https") or not url.host:
        raise Refused(f"not an http(s) URL: {mask_target(event.target)}")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = resolver(url.host, port)
    except OSError as exc:
        raise ConnectionError(f"cannot resolve {url.host}: {exc}") from None
    if not addresses:
        raise ConnectionError(f"{url.host} resolves to no address")
    # The installation's own URL is the operator's choice (often a billing server on the LAN); the
    # guard is for the URLs callers name.
    if not settings.webhook_allow_private and event.target != settings.status_webhook_url:
        barred = [a for a in addresses if not webhook_rules.is_public(a)]
        if barred:
            raise Refused(
                f"{url.host} resolves to a loopback, private or link-local address ({barred[0]}); "
                "refused (WA_WEBHOOK_ALLOW_PRIVATE allows it)"
            )
    body = event.payload.encode()
    stamp = int(clock())
    headers = {
        "content-type": "application/json",
        "user-agent": "wa-tasks-webhooks",
        "host": url.netloc.decode("ascii").rpartition("@")[2],
        "webhook-id": event.event_id,
        "webhook-timestamp": str(stamp),
    }
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value()
        headers["webhook-signature"] = webhook_rules.signature(secret, event.event_id, stamp, body)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    if isinstance(client, HostClients):
        client = client.get(url.host)
    response = client.post(url.copy_with(host=addresses[0]), content=body, headers=headers, extensions=extensions)
    if not 200 <= response.status_code < 300:
        raise ConnectionError(
            f"answered {response.status_code}" + (" (redirects are not followed)" if response.is_redirect else "")
        )


def publish(app: Celery, event: Claimed) -> None:
    """The Celery hook (``celery:<task>[@<queue>]``): the event as the task's ``event`` argument."""
    task, _, queue = event.target.removeprefix("celery:").partition("@")
    if not task:
        raise Refused(f"WA_STATUS_HOOK names no task: {event.target!r}")
    app.send_task(task, kwargs={"event": json.loads(event.payload)}, queue=queue or "celery", retry=False)


def make_client(settings: Settings) -> httpx.Client:
    timeout = httpx.Timeout(settings.webhook_timeout_seconds, connect=settings.webhook_connect_timeout_seconds)
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def deliver_batch(
    settings: Settings,
    app: Celery,
    client: httpx.Client | HostClients,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    limit: int = BATCH,
    resolver: Callable[[str, int], list[str]] = resolve,
    held: dict[str, dt.datetime] | None = None,
) -> Delivery | None:
    """Claim, send and settle one batch; None when nothing was due. ``held``: targets that failed
    earlier in the run, and until when their events wait (updated with this batch's failures)."""
    held = {} if held is None else held
    started = now()
    events = claim(settings, started, limit)
    if not events:
        return None
    broken: dict[str, str] = {t: "held" for t, until in held.items() if until > started}
    outcome: dict[int, str | None] = {}

    def send(event: Claimed) -> None:
        if event.target in broken:
            return
        try:
            if event.target.startswith("celery:"):
                publish(app, event)
            else:
                post(client, settings, event, resolver=resolver)
            outcome[event.id] = None
        except Exception as exc:  # any failure of one attempt is retried; the reason is kept on the row
            reason = f"{type(exc).__name__}: {exc}"[:1000]
            outcome[event.id] = reason
            broken.setdefault(event.target, reason)

    # Each target's first event goes alone (targets side by side), the rest only to the targets
    # that answered it: a dead receiver costs one attempt, not one per event in flight.
    firsts: dict[str, Claimed] = {}
    for event in events:
        firsts.setdefault(event.target, event)
    with concurrent.futures.ThreadPoolExecutor(max_workers=settings.webhook_concurrency) as pool:
        list(pool.map(send, firsts.values()))
        list(pool.map(send, [e for e in events if e.id not in outcome]))
    return settle(settings, events, outcome, now(), held)


def settle(
    settings: Settings,
    events: list[Claimed],
    outcome: dict[int, str | None],
    now: dt.datetime,
    held: dict[str, dt.datetime] | None = None,
) -> Delivery:
    """Write what became of each attempt (see the module docstring); returns the counts. A target
    that failed goes into ``held`` with the time its events wait until."""
    result = Delivery()
    held = {} if held is None else held
    until: dict[str, dt.datetime] = {t: u for t, u in held.items() if u > now}
    with session_scope(settings.database) as db:
        delivered = [e.id for e in events if e.id in outcome and outcome[e.id] is None]
        if delivered:  # the usual case, in one statement
            db.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_(delivered))
                .values(state=DELIVERED_EVENT, delivered_at=now, last_error=None, attempts=WebhookEvent.attempts + 1),
                execution_options={"synchronize_session": False},
            )
            result.delivered = len(delivered)
        for event in events:
            error = outcome.get(event.id)
            if error is None:
                continue
            attempts = event.attempts + 1
            values: dict[str, Any]
            if now >= event.give_up_at:
                values = {"state": DEAD_EVENT, "last_error": error}
                result.dead += 1
                log.warning("status event %s to %s is dead: %s", event.event_id, mask_target(event.target), error)
            else:
                retry_at = now + dt.timedelta(seconds=webhook_rules.backoff_seconds(attempts))
                values = {"next_attempt_at": retry_at, "last_error": error}
                hold = min(retry_at, now + dt.timedelta(seconds=HOLD_SECONDS))
                until[event.target] = max(until.get(event.target, hold), hold)
                result.failed += 1
                log.info(
                    "status event %s to %s failed (attempt %d), again in %.0f s: %s",
                    event.event_id,
                    mask_target(event.target),
                    attempts,
                    (retry_at - now).total_seconds(),
                    error,
                )
            db.execute(update(WebhookEvent).where(WebhookEvent.id == event.id).values(attempts=attempts, **values))
        held.update({t: u for t, u in until.items() if u > now})
        for event in events:
            if event.id not in outcome:  # not tried: its target failed earlier in this batch
                retry_at = until.get(event.target, now)
                db.execute(update(WebhookEvent).where(WebhookEvent.id == event.id).values(next_attempt_at=retry_at))
                result.deferred += 1
        for target, retry_at in until.items():
            if target not in {e.target for e in events if outcome.get(e.id) is not None}:
                continue  # held from an earlier batch: its other events were moved then
            # The failed target's other due events (the untried ones of this batch among them) wait
            # as long as the failed one, without an attempt counted.
            moved = db.execute(
                update(WebhookEvent)
                .where(
                    WebhookEvent.state == PENDING_EVENT,
                    WebhookEvent.target == target,
                    WebhookEvent.next_attempt_at < retry_at,
                    WebhookEvent.id.not_in([e.id for e in events]),
                )
                .values(next_attempt_at=retry_at),
                execution_options={"synchronize_session": False},
            )
            result.deferred += int(getattr(moved, "rowcount", 0) or 0)
    return result


def run(
    settings: Settings,
    app: Celery,
    *,
    run_seconds: float = RUN_SECONDS,
    now: Callable[[], dt.datetime] = utcnow,
    resolver: Callable[[str, int], list[str]] = resolve,
) -> Delivery:
    """One run of the deliverer (see the module docstring): batches until ``run_seconds`` passed."""
    redis = client_for(settings.redis)
    token = uuid.uuid4().hex
    total = Delivery()
    if not redis.set(redis_keys.WEBHOOK_LOCK, token, nx=True, ex=LOCK_SECONDS):
        log.debug("status-event deliverer already running elsewhere")
        return total
    started = time.monotonic()
    held: dict[str, dt.datetime] = {}
    clients = HostClients(settings)
    try:
        while time.monotonic() - started < run_seconds:
            batch = deliver_batch(settings, app, clients, now=now, resolver=resolver, held=held)
            if batch is None:
                time.sleep(IDLE_SECONDS)
                continue
            for name, value in batch.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
            redis.expire(redis_keys.WEBHOOK_LOCK, LOCK_SECONDS)
    finally:
        clients.close()
        redis.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
            1,
            redis_keys.WEBHOOK_LOCK,
            token,
        )
    if total.delivered or total.failed or total.dead:
        log.info("status events: %s", total.as_dict())
    return total
