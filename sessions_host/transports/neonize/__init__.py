"""The real WhatsApp transport: one linked device per session, on neonize 0.5.2 (whatsmeow inside).

Modules: ``transport`` (``NeonizeTransport`` and its options), ``child`` (the child process a
session's client runs in), ``session`` (one client in the current process and its reconnect loop),
``reconnect`` (the backoff schedule), ``translate`` (neonize events → the transport's events, pure),
``store`` (the device store).

``NeonizeTransport`` implements ``Transport`` (base.py): ``start``/``stop``, ``connected``,
``send_text``, ``send_media``; beyond the protocol it offers ``is_on_whatsapp``, ``send_typing``,
``pair_phone`` (8-character code, valid once the first QR code was shown) and ``logout``.

Decisions
---------
**Process isolation (default on).** A neonize client can abort its whole process: a Go panic
(``get_me()`` before connect, a ``jid`` missing from the store, or a whatsmeow bug) is a SIGABRT,
not a Python exception. So each session's client runs in a child process of its own: a fresh
interpreter started with ``subprocess`` (never a fork: the Go runtime and the host's threads do not
survive one; nor ``multiprocessing``'s spawn, which re-imports the host's main module), talking
over a socket pair with ``multiprocessing.connection``. The parent keeps the ``Transport``
interface: calls go down (``send_text`` …); events, call results and log records come up. A crash
kills one session: the parent reports ``disconnected`` ("the neonize process was killed by
SIGABRT …"), fails the call in flight, and starts a new child after the reconnect backoff; after
``reconnect_attempts`` crashes in a row it reports ``failed``. A send in flight when the child
dies, or one the child does not answer within ``call_timeout``, raises ``AmbiguousSendError``: the
message may have gone out, so it is not resent. The cost is one Python interpreter plus a Go
runtime per neonize session (about 90 MB resident), fine for the handful of numbers an ISP operator runs;
the simulated transport stays in-process. Isolation also confines neonize's import side effects
(``logging.basicConfig``, a log thread, non-daemon connect threads) and its unlocked Go-side client
maps to one client per process. The option ``isolate: false`` runs the client in the host process
instead (cheaper; the tests use it to drive the registered handlers), and then a Go panic takes the
whole host down with every session in it.

**NEONIZE_BOT_TAG.** neonize adds a ``<bot biz_bot="1"/>`` node to 1:1 messages unless
``NEONIZE_BOT_TAG=off``; recipients then see the message labelled as automated ("AI"), and the
account's traffic is flagged as a bot's. Billing notices from an operator's own number should look
like the operator's messages, so the default here is ``off``. An operator who wants the tag sets
``NEONIZE_BOT_TAG`` in the session host's environment; that value is passed on unchanged. The Go
runtime copies the environment when the library loads, so the value must be in place before
``import neonize``: the child process sets it before its first import; in-process mode sets it
(unless already set) before importing and warns when neonize was already loaded.

**Device store.** whatsmeow keeps each device's keys in a database. SQLite (the embedded default):
one file per session, ``<data_dir>/neonize/<session_id>.db``, created with mode 0600 in a 0700
folder before neonize touches it (SQLite gives its journal files the same mode). PostgreSQL: the
project's database, with one schema per session (``neonize_<id>_<hash>``, set through
``search_path``), because neonize without a ``jid`` resumes *the first device in the store*: in one
shared schema every session would resume the same number. No ``jid`` is ever passed to
``NewClient`` (a ``jid`` not in the store makes Go panic, and a ``jid`` replaces the ``uuid`` that
keys the client); the store's device list (``ClientFactory.get_all_devices_from_db``, a plain
database read) gives the session's own number.

**Reconnect.** whatsmeow does not retry a failed first connect, and after a drop it retries on its
own with a linear, uncapped delay. Here every connection ends in the same loop: the client is
stopped on a drop and reconnected on one schedule: exponential backoff with jitter,
2 s base, 60 s cap, 10 attempts, then ``failed`` (:class:`Backoff`, driven by tenacity). A
connection that stayed up for ``cap`` seconds starts a fresh series. States reported on the way:
``connecting`` per attempt, ``disconnected`` with the error and the next delay, ``qr`` while
waiting for a scan (a QR series that runs out without a scan counts as a failed attempt). Never
retried: ``logged_out`` (re-pairing needs a person: restart the session to get a QR), a stream
replaced by another client of the same device, ``client outdated``. A temporary ban waits until it
expires, then connects again.

**Events.** One handler per event type (neonize keeps only the last registration), each only
translating the protobuf event and handing it to the sink, wrapped in try/except + logging:
handlers run on Go's event thread, whose buffer holds 100 events before whatsmeow blocks.
The translations are pure module functions (``receipt_event``, ``incoming_event`` …) so they can be
tested on real ``neonize.proto.Neonize_pb2`` objects.

**Upgrading neonize.** The version is pinned exactly (pyproject's ``neonize`` and ``test`` extras),
because the modules here are type-checked and tested against it. An upgrade, besides WhatsApp's
``client outdated`` (the client version is compiled into the Go library), takes:

- both pins changed together (a test compares them with the installed version); ``./dev``
  reinstalls when pyproject.toml changes;
- the whole wheel for the platform, installed by pip: it carries the Go library
  (``neonize-<os>-<arch>.so``) of its own version. At import neonize compares the library's
  version with its own (``neonize.download.__GONEONIZE_VERSION__``) and, when they differ,
  downloads the matching library from neonize's GitHub releases into its package folder. Offline
  or on a read-only install that fails and the session goes ``failed`` ("neonize cannot be
  loaded"); a missing library fails at once. So no copied libraries and no source installs;
- ``mypy``, which checks every call into neonize against the new signatures and protobuf stubs
  (the ``[tool.mypy]`` override for ``neonize``), and this package's tests;
- a look at what no type check sees: the wording of whatsmeow's errors (matched as text in
  ``transports/errors.py``), ``NEONIZE_BOT_TAG``, one handler per event type, ``NewClient``
  without a ``jid`` resuming the store's first device, the enum field names given as text;
- a copy of the device stores first: whatsmeow upgrades its tables when it opens them, and an
  older version may not read them afterwards.

Remaining hazards: a ``stop()`` during a connect to a peer that never answers waits for Go's dial
timeout (~60 s) in the background; in-process mode keeps the Go panic hazard described above.
"""

from sessions_host.transports.neonize.child import child_entry
from sessions_host.transports.neonize.reconnect import Backoff, BackoffWait, ConnectAttemptFailed
from sessions_host.transports.neonize.session import NeonizeSession
from sessions_host.transports.neonize.store import NeonizeStore, StoreError, libpq_url, schema_for, stored_devices
from sessions_host.transports.neonize.translate import (
    BOT_TAG_ENV,
    DEFAULT_BOT_TAG,
    STREAM_REPLACED,
    epoch_to_datetime,
    incoming_event,
    logged_out_state,
    qr_code,
    receipt_event,
    temporary_ban_state,
)
from sessions_host.transports.neonize.transport import NeonizeOptions, NeonizeTransport

__all__ = [
    "BOT_TAG_ENV",
    "DEFAULT_BOT_TAG",
    "STREAM_REPLACED",
    "Backoff",
    "BackoffWait",
    "ConnectAttemptFailed",
    "NeonizeOptions",
    "NeonizeSession",
    "NeonizeStore",
    "NeonizeTransport",
    "StoreError",
    "child_entry",
    "epoch_to_datetime",
    "incoming_event",
    "libpq_url",
    "logged_out_state",
    "qr_code",
    "receipt_event",
    "schema_for",
    "stored_devices",
    "temporary_ban_state",
]
