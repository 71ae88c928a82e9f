"""The session host: the long-running process (``wa-tasks sessions``) that owns WhatsApp sessions.

It loads the sessions configured in the database, runs one ``SessionRunner`` per session (their
messages taken by one ``Scheduler`` for the whole host), writes each session's live state to Redis
when it changes (what ``dispatch`` routes by), renews on every heartbeat the two keys that keep its
leases and live states valid (one each, whatever its sessions), reloads the session list so that
sessions added or removed reach it without a restart, and shows itself in Flower. SIGTERM/SIGINT
stop it cleanly: sends in flight finish, unacknowledged messages go back to their queues.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import String, cast, select

from models import SessionStatus, WhatsAppSession
from models.db import engine_for
from sessions_host import transports
from sessions_host.commands import CommandListener
from sessions_host.events import EventProcessor
from sessions_host.leases import Lease, Leases
from sessions_host.limits import Limits
from sessions_host.monitor import Monitor
from sessions_host.runner import SessionRunner
from sessions_host.safety import RedisSafetyStore, SafetyRules, SessionSafety
from sessions_host.scheduler import Scheduler
from sessions_host.transports.base import Incoming, QRCode, StateChanged
from sessions_host.transports.simnet import SimNet
from sessions_host.transports.simulated import SimHub
from wa_tasks.core import redis_keys
from wa_tasks.infra import redis_client
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Connections of the host's own Redis client (see ``SessionHost.__init__``). With the scheduler's
#: blocking read and kombu channel and Flower's remote control (its subscription, and its publishing
#: that the events share), a host holds seven, and one more once it publishes a task (a reroute).
REDIS_CONNECTIONS = 3


@dataclass(frozen=True)
class _Config:
    """What, in a session's row, the runner is started with. A new transport or new options
    restart the runner; a new pace (from its next slot) or number age is applied to the running
    one, so that pacing a number differently does not reconnect it."""

    transport: str
    options: str
    pace_seconds: float
    #: The day the number started using WhatsApp (unix time of its midnight UTC); None: unknown,
    #: the day the session was added counts.
    number_since: float | None = None

    def same_connection(self, other: _Config) -> bool:
        return (self.transport, self.options) == (other.transport, other.options)


class SessionHost:
    #: What runs each session. The in-process tests (``tests/support/inproc.py``) put a runner here
    #: that hands its deliveries to the test instead of consuming them from the broker.
    runner_class: type[SessionRunner] = SessionRunner
    #: Connections of the host's Redis client (None: the process's usual client, as the in-process
    #: tests' fake Redis is).
    redis_connections: int | None = REDIS_CONNECTIONS

    def __init__(self, app: Celery, settings: Settings, hostname: str | None = None) -> None:
        self.app = app
        self.settings = settings
        self.hostname = hostname or f"sessions@{socket.gethostname()}.{os.getpid()}"
        # Every Redis command of this process but the broker's and the scheduler's blocking read
        # goes over these few connections (operator commands' subscription included), whatever the
        # number of sessions and send threads: each command holds one for well under a millisecond.
        self.redis = (
            redis_client.bounded(settings.redis, self.redis_connections)
            if self.redis_connections
            else client_for(settings.redis)
        )
        self.hub = SimHub(SimNet(client_for(settings.sim_redis)))
        self.limits = Limits(self.redis)
        self.safety_store = RedisSafetyStore(
            self.redis,
            SafetyRules(
                enabled=settings.safety_enabled,
                restriction_pause_seconds=settings.restriction_pause_seconds,
                ban_margin_seconds=settings.ban_margin_seconds,
            ),
        )
        self.runners: dict[str, SessionRunner] = {}
        self._configs: dict[str, _Config] = {}
        #: Sessions whose transport could not be built, with the config that failed (logged once).
        self._failed: dict[str, _Config] = {}
        #: Each session's row as last read (the columns of its configuration) and its configuration.
        self._stored: dict[str, tuple[object, _Config]] = {}
        #: Each session's transport options, parsed from the row last read.
        self._options: dict[str, dict[str, object]] = {}
        #: When each session was added (unix time), read once.
        self._added: dict[str, float] = {}
        self.leases = Leases(self.redis, self.hostname, settings.lease_ttl_seconds)
        #: When the leases were last renewed (monotonic), to tell how an expired one came to expire.
        self._renewed_at = time.monotonic()
        self.monitor = Monitor(
            app, self.hostname, lambda: [r.queue_name for r in list(self.runners.values())], settings.heartbeat_seconds
        )
        self.events = EventProcessor(settings, self._on_state, self._on_qr, self._mark_read)
        self.commands = CommandListener(
            self.redis, lambda: dict(self.runners), self._stop_runner, settings.default_region
        )
        #: Serialises the writes of live states (see ``_publish``).
        self._publish_lock = threading.Lock()
        #: Sessions whose live state could not be written (written on the next heartbeat).
        self._unpublished: set[str] = set()
        self.scheduler = Scheduler(app, settings.redis, self.redis, self.hostname, settings.host_send_threads)
        self._stop = threading.Event()

    # Running -------------------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or :meth:`request_stop`)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())
        self.start()
        try:
            while not self._stop.is_set():
                self.tick()
                self._stop.wait(self.settings.heartbeat_seconds)
        finally:
            self.shutdown()

    def start(self) -> None:
        log.info("session host %s starting (database %s)", self.hostname, self.settings.describe()["database"])
        if not self.settings.encryption_keys:
            log.warning("WA_ENCRYPTION_KEY is not set: message texts are stored unencrypted")
        self.events.start()
        self.monitor.start()
        self.commands.start()
        self.scheduler.start()

    def request_stop(self) -> None:
        self._stop.set()

    def tick(self) -> None:
        """One heartbeat: renew the leases, report the live states, reload the session list, tell
        Flower we are alive."""
        started = time.monotonic()
        try:
            self.renew_leases()
        except Exception as exc:
            log.warning("could not renew session leases: %s", exc)
        try:
            # Before the reload, so that the sessions it starts write states that count at once.
            self.report_live_states()
        except Exception as exc:
            log.warning("could not report live session state to Redis: %s", exc)
        try:
            self.reload()
        except Exception as exc:
            log.warning("could not reload sessions from the database: %s", exc)
        self.monitor.heartbeat()
        took = time.monotonic() - started
        if took > self.settings.lease_ttl_seconds / 2:
            log.warning(
                "heartbeat took %.1fs (lease TTL %.0fs): sessions may be lost to other hosts",
                took,
                self.settings.lease_ttl_seconds,
            )

    def shutdown(self) -> None:
        log.info("session host %s stopping", self.hostname)
        runners = list(self.runners.values())
        for runner in runners:
            runner.request_stop()  # stop taking messages everywhere at once, then wait for each
        for runner in runners:
            self.scheduler.remove(runner.session_id)
            runner.stop()
            self._forget(runner.session_id)
        self.scheduler.stop()
        self.commands.stop()
        try:
            self.leases.leave()
        except Exception as exc:
            log.warning("could not leave the host registry: %s", exc)
        self.events.drain()
        self.events.stop()
        self.monitor.stop()
        self.hub.close()

    # Sessions ------------------------------------------------------------------------------------

    def renew_leases(self) -> None:
        """Renew the host lease that every session lease held lives by (before anything that may be
        slow, such as the database); stop the sessions whose lease another host took or that
        expired. The session leases are only read when the host lease had expired (another host
        may have taken any of them) or a runner found its lease gone when it sent (``lost``)."""
        runners = list(self.runners.items())
        expired = not self.leases.renew()
        suspects = [r.lease for _, r in runners if r.lease is not None and (expired or r.lost)]
        lost = {lease.session_id: holder for lease, holder in self.leases.lost(suspects, expired).items()}
        since = time.monotonic() - self._renewed_at
        self._renewed_at = time.monotonic()
        gone = [(session_id, runner) for session_id, runner in runners if runner.lost or session_id in lost]
        for session_id, runner in gone:
            if session_id in lost and lost[session_id] is None:
                # Nobody else took it: this host renewed too late (Redis was unreachable, or the
                # host paused). It starts the session again on this heartbeat if it is still its turn.
                log.warning(
                    "session %s: lease expired, not renewed for %.1fs (TTL %.0fs: Redis unreachable or this "
                    "host paused); stopping it here",
                    session_id,
                    since,
                    self.settings.lease_ttl_seconds,
                    extra={"session_id": session_id},
                )
            else:
                log.warning(
                    "session %s: lease lost to another host (%s); stopping it here",
                    session_id,
                    lost.get(session_id) or "its fencing token changed",
                    extra={"session_id": session_id},
                )
            # All stop taking messages at once, then each is waited for (its send in flight).
            runner.request_stop()
        for session_id, _ in gone:
            self._stop_runner(session_id, lost=True)

    def reload(self) -> None:
        """Read the session list and bring the runners in line with it: start (up to a fair share),
        stop the removed ones, give a running one its new pace, restart one whose transport or
        options changed."""
        wanted = self._read_configs()
        for session_id in list(self.runners):
            new, old = wanted.get(session_id), self._configs.get(session_id)
            if new is not None and old is not None and new != old and new.same_connection(old):
                self._apply_in_place(self.runners[session_id], old, new)
            elif new is None or new != old:
                self._stop_runner(session_id)
        share = self.leases.fair_share(len(wanted)) if self.settings.session_leases else len(wanted)
        if self.settings.session_leases and len(self.runners) > share:
            self._hand_over_one(list(wanted), share)
        renew_at = time.monotonic() + self.settings.heartbeat_seconds
        missing = [s for s in wanted if s not in self.runners] if len(self.runners) < share else []
        if self.settings.session_leases:
            missing = self.leases.takeable(missing)
        for session_id in missing:
            config = wanted[session_id]
            if len(self.runners) >= share:
                break
            if self.settings.session_leases and time.monotonic() >= renew_at:
                # Starting thousands of sessions can outlast the lease TTL on a loaded machine:
                # renew the host lease now, rather than lose the sessions already started before
                # the next heartbeat and start over.
                self.renew_leases()
                self.report_live_states()
                renew_at = time.monotonic() + self.settings.heartbeat_seconds
            lease = None
            if self.settings.session_leases:
                lease = self.leases.acquire(session_id)
                if lease is None:
                    continue  # another host owns it
            self._start_runner(
                session_id, config, self._options[session_id], self._number_since(session_id, config), lease
            )

    def _apply_in_place(self, runner: SessionRunner, old: _Config, new: _Config) -> None:
        """Give a running session its new pace and number age (no reconnect)."""
        session_id = runner.session_id
        self._configs[session_id] = new
        if new.pace_seconds != old.pace_seconds:
            runner.pace_seconds = new.pace_seconds
            log.info(
                "session %s: now %.2fs between sends", session_id, new.pace_seconds, extra={"session_id": session_id}
            )
        if new.number_since != old.number_since:
            runner.safety.number_since = self._number_since(session_id, new)
            runner.reconsider_caps()
            log.info(
                "session %s: number %.0f days old for ban safety's warm-up",
                session_id,
                runner.safety.age_days(),
                extra={"session_id": session_id},
            )

    def _read_configs(self) -> dict[str, _Config]:
        """Every session's configuration, read from the database on every heartbeat so that a
        session added, removed or changed in any way (by hand in ``psql`` too, which no
        ``updated_at`` would show) reaches the host within one heartbeat. Cheaply, as it runs every
        2 s on every host: only the columns a configuration is made of, the options as their stored
        text (parsed again only when it changed), on a plain connection rather than ORM objects;
        loading every row as an object would cost a fifth of an idle host's CPU with a thousand sessions."""
        table = WhatsAppSession
        query = select(
            table.session_id,
            table.transport,
            cast(table.transport_options, String),
            table.pace_seconds,
            table.number_since,
        )
        with engine_for(self.settings.database).connect() as conn:
            rows = conn.execute(query).all()
        seen: dict[str, tuple[object, _Config]] = {}
        for session_id, transport, options_text, pace_seconds, number_since in rows:
            stored = (transport, options_text, pace_seconds, number_since)
            known = self._stored.get(session_id)
            if known is None or known[0] != stored:
                options = dict(json.loads(options_text) or {}) if options_text else {}
                pace = pace_seconds if pace_seconds is not None else self.settings.pace_seconds
                since = None
                if number_since is not None:
                    since = dt.datetime.combine(number_since, dt.time(), dt.UTC).timestamp()
                known = (stored, _Config(transport, repr(sorted(options.items())), pace, since))
                self._options[session_id] = options
            seen[session_id] = known
        self._stored = seen
        for session_id in set(self._options) - set(seen):
            self._options.pop(session_id, None)
            self._added.pop(session_id, None)
        return {session_id: config for session_id, (_, config) in seen.items()}

    def _number_since(self, session_id: str, config: _Config) -> float:
        """Since when the session's number is in use (unix time): its age drives ban safety's
        warm-up. The day the operator gave, else the day the session was added: read once per
        session, for every session not yet known in one query, when one starts."""
        if config.number_since is not None:
            return config.number_since
        if session_id not in self._added:
            missing = [s for s in self._stored if s not in self._added]
            table = WhatsAppSession
            with engine_for(self.settings.database).connect() as conn:
                for sid, created_at in conn.execute(
                    select(table.session_id, table.created_at).where(table.session_id.in_(missing))
                ):
                    self._added[sid] = created_at.timestamp()
        return self._added.get(session_id, time.time())

    def _hand_over_one(self, sessions: list[str], share: int) -> None:
        """Owning more than a fair share while another live host owns less (it started later, or came
        back): release one session per heartbeat so that host can take it. No flapping: a host at or
        above its share never receives."""
        owners = [o for o in self.leases.owners(sessions) if o]
        counts = Counter(owners)
        hosts = self.leases.hosts()
        if not any(counts.get(h, 0) < share for h in hosts if h != self.hostname):
            return
        session_id = sorted(self.runners)[-1]
        log.info("session %s handed over to a host with fewer sessions", session_id, extra={"session_id": session_id})
        self._stop_runner(session_id)

    def _start_runner(
        self, session_id: str, config: _Config, options: dict[str, object], number_since: float, lease: Lease | None
    ) -> None:
        try:
            transport = transports.build(config.transport, session_id, options, self.settings, self.hub)
        except ValueError as exc:
            if lease is not None:
                self.leases.release(lease)
            if self._failed.get(session_id) != config:
                log.error("session %s not started: %s", session_id, exc, extra={"session_id": session_id})
                self._failed[session_id] = config
            return
        safety = SessionSafety(session_id, self.safety_store, self.safety_store.rules, number_since)
        runner = self.runner_class(
            self.app,
            self.settings,
            session_id,
            transport,
            config.pace_seconds,
            self.monitor,
            self.limits,
            safety,
            lease,
        )
        runner.on_availability = self._publish_quietly
        self.runners[session_id] = runner
        self._configs[session_id] = config
        self._publish_quietly(runner)
        runner.start(self.events.sink_for(session_id))
        self.scheduler.add(runner)
        log.info(
            "session %s started (%s, %.2fs between sends)",
            session_id,
            config.transport,
            config.pace_seconds,
            extra={"session_id": session_id},
        )

    def _stop_runner(self, session_id: str, lost: bool = False) -> None:
        runner = self.runners.get(session_id)
        self.scheduler.remove(session_id)
        if runner is not None:
            runner.stop()
        self._forget(session_id, lost=lost)
        log.info("session %s stopped", session_id, extra={"session_id": session_id})

    def _forget(self, session_id: str, lost: bool = False) -> None:
        """Drop a stopped runner; release its lease and its live state unless another host owns them."""
        runner = self.runners.pop(session_id, None)
        self._configs.pop(session_id, None)
        if lost:
            return
        try:
            with self._publish_lock:
                self._unpublished.discard(session_id)
                live_state.clear(self.redis, session_id)
            if runner is not None and runner.lease is not None:
                self.leases.release(runner.lease)
        except Exception as exc:
            log.warning("could not release session %s: %s", session_id, exc)

    def _on_state(self, session_id: str, event: StateChanged) -> None:
        runner = self.runners.get(session_id)
        if runner is None:
            return
        runner.set_status(event.status)
        if event.phone_number:
            runner.phone_number = event.phone_number
        if event.status != SessionStatus.QR:
            self.redis.delete(redis_keys.session_qr(session_id))  # a QR code is only shown while waiting
        if event.status == SessionStatus.BANNED:
            runner.restricted(event.detail or "temporarily banned", event.until.timestamp() if event.until else None)
        self._publish_quietly(runner)

    def _mark_read(self, session_id: str, message: Incoming) -> None:
        """Send the customer a read receipt (``WA_MARK_INCOMING_READ``)."""
        runner = self.runners.get(session_id)
        mark = getattr(runner.transport, "mark_read", None) if runner is not None else None
        if mark is None:
            return
        try:
            mark(message.wa_message_id, message.sender)
        except Exception as exc:
            log.warning("read receipt not sent: %s", exc, extra={"session_id": session_id})

    def _on_qr(self, session_id: str, qr: QRCode) -> None:
        """Keep the code a session shows in Redis while it is valid (for `sessions qr` and the API)."""
        key = redis_keys.session_qr(session_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"code": qr.code, "expires_at": time.time() + qr.expires_in})
        pipe.pexpire(key, int(qr.expires_in * 1000))
        pipe.execute()

    def _publish_quietly(self, runner: SessionRunner) -> None:
        try:
            self._publish(runner)
        except Exception as exc:
            # Written again on the next heartbeat: nothing else would, as a state is written when
            # it changes.
            self._unpublished.add(runner.session_id)
            log.warning("could not publish live state of %s: %s", runner.session_id, exc)

    def report_live_states(self) -> None:
        """Keep this host's live states counting; write them all again if they had stopped counting
        (this host paused past the TTL, or Redis lost them in a restart), and those whose write
        failed. Otherwise each is written when it changes, not on every heartbeat."""
        with self._publish_lock:
            if not live_state.report_host(self.redis, self.hostname, self.settings.live_state_ttl_seconds):
                self._unpublished.update(self.runners)
            runners = [r for r in (self.runners.get(s) for s in self._unpublished) if r is not None]
            live_state.publish_many(self.redis, [self._live_state(r) for r in runners])
            self._unpublished.clear()

    def _publish(self, runner: SessionRunner) -> None:
        # Under the lock, reading the runner's state inside it: a write of all states that read a
        # status before a change must not land after the change's own write (the older status
        # would stay, as nothing writes it again).
        with self._publish_lock:
            if self.runners.get(runner.session_id) is runner:
                live_state.publish(self.redis, self._live_state(runner))

    def _live_state(self, runner: SessionRunner) -> live_state.LiveState:
        return live_state.LiveState(
            session_id=runner.session_id,
            status=runner.status,
            host=self.hostname,
            reported_at=time.time(),
            since=runner.status_since,
            available_until=runner.available_until,
            new_contacts_until=runner.new_contacts_until,
        )
