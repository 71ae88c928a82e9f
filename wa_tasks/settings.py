"""Every setting of wa-tasks, read from ``WA_*`` environment variables with documented defaults.

This is the one place settings live. Each process reads them once at start (``get_settings()``);
tests and the thin client may build a ``Settings`` explicitly instead.
"""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed settings. Environment variable = ``WA_`` + field name in upper case."""

    model_config = SettingsConfigDict(env_prefix="WA_", extra="ignore")

    #: Where the embedded defaults keep their files: the SQLite database, the private Redis
    #: (socket, AOF), the beat schedule, the simulated devices' state.
    data_dir: Path = Path("var")

    #: SQLAlchemy URL of the database. Default: a SQLite file ``<data_dir>/wa-tasks.db``.
    #: Production: ``postgresql://user:pass@host:5432/db``.
    database_url: str | None = None

    #: Redis URL used as Celery broker and for live session state. Default (unset): a private
    #: redis-server that ``wa-tasks up`` starts under ``<data_dir>`` on a Unix socket, with AOF on.
    redis_url: str | None = None

    #: Key(s) for encrypting customer data at rest (message texts and template data, incoming
    #: texts): comma-separated Fernet keys, newest first (`wa-tasks keys generate`). `wa-tasks up`
    #: creates one under the data directory when none is set.
    encryption_key: SecretStr | None = None

    #: API key required by the HTTP API. Without one the web process only binds to loopback.
    api_key: SecretStr | None = None

    #: Requests a stored (send-scoped) API key may make in any 60 seconds; the next is answered 429
    #: (wa_tasks/web/rate_limit.py). 0 = no limit. The full ``api_key`` is not limited.
    api_rate_limit_per_minute: int = Field(default=300, ge=0)

    #: Default region for phone numbers written without a country code (``0812...``).
    default_region: str = "ID"

    #: Replies that opt a customer out of promotions (comma-separated, case-insensitive, the whole
    #: message). Transactional messages still go to them.
    optout_words: str = "STOP,BERHENTI,UNSUBSCRIBE"

    #: Seconds between two sends of one WhatsApp session (1 message a second by default).
    #: A session's own ``pace_seconds`` overrides it.
    pace_seconds: float = Field(default=1.0, ge=0.0)

    #: Where incoming messages go besides the database: ``celery:<task name>`` or
    #: ``python:<module>:<function>`` (see wa_tasks/pipeline/incoming.py). Unset: stored only.
    incoming_hook: str | None = None

    #: Send customers read receipts (blue ticks) for the messages they send to the sessions.
    mark_incoming_read: bool = False

    #: Up to this many seconds added at random to every pacing interval (ban safety: sends at exact
    #: one-second ticks look automated). The Redis guard still never allows less than the pace.
    pace_jitter_seconds: float = Field(default=0.3, ge=0.0)

    #: The most messages one recipient gets in an hour, whatever the callers do (0 = no cap).
    recipient_hourly_cap: int = Field(default=10, ge=0)

    #: Ban safety (sessions_host/safety.py): warm-up daily caps, an hourly cap, a new-contact budget
    #: and a pause after WhatsApp restrictions. On by default; switch off only for numbers you can lose.
    safety_enabled: bool = True

    #: Ban safety: how long a number leaves rotation after an error 463, and how long after a
    #: temporary ban ends it stays out.
    restriction_pause_seconds: float = Field(default=6 * 3600.0, ge=0)
    ban_margin_seconds: float = Field(default=1800.0, ge=0)

    #: The installation's time zone: send windows and reminder ladders are in its wall-clock hours
    #: (``Asia/Jakarta`` WIB; ``Asia/Makassar`` WITA, ``Asia/Jayapura`` WIT). A message's own ``tz`` overrides it.
    timezone: str = "Asia/Jakarta"

    #: Send windows per window class (wa_tasks/core/windows.py): ``HH:MM-HH:MM`` (ranges
    #: comma-separated) or ``always``. Promotions, reminders, and transactional notifications.
    window_promotion: str = "09:00-20:00"
    window_reminder: str = "08:00-20:00"
    window_transactional: str = "always"

    #: Attempts per message before it is marked ``failed``.
    max_attempts: int = Field(default=3, ge=1)

    #: Longest a dispatch waits between two tries when no session is usable (seconds).
    dispatch_retry_max_seconds: float = Field(default=30.0, gt=0)

    #: How dispatch chooses a session: failover (the default), spillover or balanced.
    routing_policy: Literal["failover", "spillover", "balanced"] = "failover"

    #: spillover: the longest a new message may wait on a session's backlog before the next one is used.
    spillover_wait_seconds: float = Field(default=60.0, gt=0)

    #: Seconds a session may be down before the messages queued on it move to other sessions.
    failover_grace_seconds: float = Field(default=5.0, ge=0.0)

    #: Broker visibility timeout: an unacknowledged message is redelivered after this long.
    #: No countdown may be longer than this: on Redis a task held past it is delivered again.
    visibility_timeout: int = Field(default=3600, gt=60)

    #: Each session is owned by one session host at a time through a Redis lease (with a fencing
    #: token checked before every send). Switch off only to test what an overlap would do.
    session_leases: bool = True

    #: How long a host's lease (which its session leases live by) lasts without renewal: a dead
    #: host's sessions move within this time.
    lease_ttl_seconds: float = Field(default=10.0, gt=0)

    #: Threads of a session host that deliver messages (each holds one send of one session at a
    #: time): how many of its sessions can be sending at the same moment.
    host_send_threads: int = Field(default=8, ge=1, le=256)

    #: How often a session host renews its lease and live report and reloads the sessions (seconds).
    heartbeat_seconds: float = Field(default=2.0, gt=0)

    #: How long the live states a host wrote stay valid without its heartbeat (seconds). After that the
    #: session counts as down for routing.
    live_state_ttl_seconds: float = Field(default=10.0, gt=0)

    #: A message still ``queued`` this long after its last dispatch is published again by the
    #: sweeper (covers a crash between the database commit and the broker publish).
    sweep_after_seconds: float = Field(default=120.0, gt=0)

    #: Scheduled messages (wa_tasks/pipeline/schedule.py): how often beat runs the releaser, which
    #: queues the ``scheduled`` messages that are due.
    release_interval_seconds: float = Field(default=1.0, ge=0.1)

    #: The releaser queues at most this many messages per transaction (and per publish round).
    release_batch: int = Field(default=1000, ge=1)

    #: A due backlog is released at the pace the usable sessions can send: at most this many
    #: seconds of their sending ahead waits queued or routed (0 = no limit).
    release_ahead_seconds: float = Field(default=60.0, ge=0)

    #: A ``send_at`` up to this many seconds in the past sends at once; further in the past it is refused.
    schedule_grace_seconds: float = Field(default=300.0, ge=0)

    #: A send interrupted by the host's death (``ambiguous_send``) is resolved by a delivery or
    #: read receipt for it; after this many seconds without one it is shown as "no receipt seen".
    ambiguous_receipt_window_seconds: float = Field(default=900.0, gt=0)

    #: How often beat runs the session health check.
    health_check_seconds: float = Field(default=30.0, ge=1.0)

    #: Retention (beat, daily): messages are deleted this many days after they were created.
    retention_messages_days: int = Field(default=15, ge=1)

    #: Retention: bulk jobs that ended (completed, failed or cancelled) are deleted after this many days.
    retention_jobs_days: int = Field(default=30, ge=1)

    #: Retention: sessions left ``disconnected`` and not updated for this many days are deleted.
    retention_sessions_days: int = Field(default=90, ge=1)

    #: Email fallback: a message that finally fails on WhatsApp (or whose recipient is
    #: not on WhatsApp) is sent by email when it carries the customer's address (wa_tasks/pipeline/fallback.py).
    email_fallback: bool = False

    #: SMTP server of the email fallback. ``smtp_ssl``: TLS from the first byte (port 465);
    #: ``smtp_starttls``: upgrade a plain connection (port 587). Login only when ``smtp_user`` is set.
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    #: The From address of fallback emails.
    smtp_from: str = "wa-tasks@localhost"
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    #: Seconds an SMTP connection or command may take before the email counts as failed.
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)

    #: Contact sync: an answer of ``is_on_whatsapp`` is trusted this many days; older
    #: ones are refreshed by the daily ``wa.contacts_refresh`` and ignored when sending.
    contact_max_age_days: int = Field(default=7, ge=1)

    #: Status callbacks (wa_tasks/pipeline/webhooks.py): every status change of every message is
    #: POSTed here as a signed JSON event. Unset: only to a message's own ``callback_url``.
    status_webhook_url: str | None = None
    #: Status events as a task of the billing codebase on the same broker:
    #: ``celery:<task name>[@<queue>]`` (default queue ``celery``), called with ``event=<the JSON event>``.
    status_hook: str | None = None
    #: Key of the events' HMAC-SHA256 signature (``webhook-signature``); ``whsec_<base64>`` is
    #: read as the Standard Webhooks form. Unset: events go unsigned.
    webhook_secret: SecretStr | None = None
    #: Let callers' callback URLs reach loopback, private, link-local and other non-public addresses
    #: (refused by default: a caller could make the deliverer probe the internal network).
    #: ``status_webhook_url``, the operator's own, may always.
    webhook_allow_private: bool = False
    #: Seconds to connect to a receiver, and to wait for its answer, before the attempt counts as failed.
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    #: A failing event is retried with exponential backoff (with jitter, at most an hour apart)
    #: for this many hours, then it is dead: listed on the queue page with Retry.
    webhook_retry_hours: float = Field(default=24.0, gt=0)
    #: Seconds between the beat's runs of the deliverer (each run keeps delivering for about 20 s).
    webhook_interval_seconds: float = Field(default=5.0, ge=0.5)
    #: Events sent at once by the deliverer (to different messages; one message's go one by one).
    webhook_concurrency: int = Field(default=8, ge=1, le=64)

    #: Celery worker concurrency for the ``worker`` process.
    worker_concurrency: int = Field(default=2, ge=1)

    web_host: str = "127.0.0.1"
    web_port: int = 8000
    flower_port: int = 5555
    #: Flower listens here; anything but loopback requires ``flower_basic_auth``.
    flower_host: str = "127.0.0.1"
    #: ``user:password`` for Flower's basic auth (comma-separate several pairs).
    flower_basic_auth: SecretStr | None = None

    log_level: str = "INFO"

    #: Simulated transport defaults (a session's ``transport_options`` override them).
    sim_seed: int = 0
    sim_latency_ms: float = Field(default=150.0, ge=0)
    sim_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    sim_delivered_after_seconds: float = Field(default=1.0, ge=0)
    sim_read_after_seconds: float = Field(default=3.0, ge=0)
    #: Redis of the simulated WhatsApp network (its recipient-side ledger, paired devices, replies).
    #: Default: wa-tasks' own Redis. The fault drills restart wa-tasks' Redis and keep the network
    #: on another one, as WhatsApp's servers do not restart with it.
    sim_redis_url: str | None = None

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()

    @field_validator("status_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        # A typo here would otherwise surface only as every status event failing for a day.
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"WA_STATUS_WEBHOOK_URL must be an http:// or https:// URL, got {value!r}")
        return value.strip()

    @field_validator("status_hook")
    @classmethod
    def _status_hook(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        kind, _, target = value.strip().partition(":")
        if kind != "celery" or not target.partition("@")[0]:
            raise ValueError(f"WA_STATUS_HOOK must be celery:<task name>[@<queue>], got {value!r}")
        return value.strip()

    # Derived values -------------------------------------------------------------------------

    @property
    def encryption_keys(self) -> list[str]:
        """The Fernet keys of ``encryption_key``, newest first (empty: no encryption)."""
        if not self.encryption_key:
            return []
        return [k.strip() for k in self.encryption_key.get_secret_value().split(",") if k.strip()]

    @property
    def data_path(self) -> Path:
        return self.data_dir.resolve()

    @property
    def database(self) -> str:
        """The database URL in force."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_path / 'wa-tasks.db'}"

    @property
    def embedded_redis(self) -> bool:
        """True when no Redis is configured and the project's private one is used."""
        return not self.redis_url

    @property
    def redis_socket(self) -> Path:
        return self.data_path / "redis.sock"

    def _socket(self) -> tuple[str, str] | None:
        """(path, db) when Redis is reached over a Unix socket, written either way."""
        url = self.redis_url or f"unix://{self.redis_socket}?db=0"
        for scheme, db_param in (("unix://", "db"), ("redis+socket://", "virtual_host")):
            if url.startswith(scheme):
                path, _, query = url.removeprefix(scheme).partition("?")
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                return path, params.get(db_param, "0")
        return None

    @property
    def redis(self) -> str:
        """URL for redis-py (``unix://`` for a Unix socket, such as the embedded Redis)."""
        socket = self._socket()
        return f"unix://{socket[0]}?db={socket[1]}" if socket else str(self.redis_url)

    @property
    def sim_redis(self) -> str:
        """URL for redis-py of the simulated network's state (``sim_redis_url``, else :attr:`redis`)."""
        return self.sim_redis_url or self.redis

    @property
    def broker_url(self) -> str:
        """URL for kombu/Celery/Flower (``redis+socket://`` for a Unix socket)."""
        socket = self._socket()
        return f"redis+socket://{socket[0]}?virtual_host={socket[1]}" if socket else str(self.redis_url)

    def describe(self) -> dict[str, str]:
        """Settings for display, with secrets and passwords hidden."""
        return {
            "database": mask_url(self.database),
            "redis": mask_url(self.redis) + (" (embedded)" if self.embedded_redis else ""),
            "data_dir": str(self.data_path),
            "pace_seconds": str(self.pace_seconds),
            "encryption_key": "set" if self.encryption_key else f"from {self.data_path / 'encryption.key'}",
            "api_key": "set" if self.api_key else "not set",
        }


def mask_url(url: str) -> str:
    """A URL with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is only reachable from this machine."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
