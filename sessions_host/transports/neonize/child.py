"""The child process that runs one session's neonize client, so that a Go panic kills one session,
not the host: its entry point and the loop that serves the parent's calls."""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from sessions_host.transports.neonize.reconnect import Backoff
from sessions_host.transports.neonize.session import NeonizeSession
from sessions_host.transports.neonize.store import NeonizeStore
from sessions_host.transports.neonize.translate import BOT_TAG_ENV

# The child process -------------------------------------------------------------------------------

SEND_CALLS = frozenset({"send_text", "send_media"})
#: What the child runs (the session id in its arguments only names it in ``ps``).
CHILD_BOOT = "import sys; from sessions_host.transports.neonize.child import child_entry; child_entry(int(sys.argv[1]))"
_CALLS = SEND_CALLS | {"is_on_whatsapp", "send_typing", "mark_read", "pair_phone", "logout"}


@dataclass(frozen=True)
class ChildConfig:
    session_id: str
    store: NeonizeStore
    backoff: Backoff
    bot_tag: str
    log_level: int


class _PipeLogHandler(logging.Handler):
    """In the child: log records go to the parent, which logs them with its own configuration."""

    def __init__(self, out: queue.SimpleQueue[Any]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.out.put(("log", record.name, record.levelno, text))
        except Exception:
            self.handleError(record)


def _portable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def child_entry(fd: int) -> None:
    """Entry point of a session's child process (``python -c``): the parent's end of the socket pair
    is ``fd``; the first message is the :class:`ChildConfig`."""
    conn = Connection(fd)
    _child_main(conn, conn.recv())


def _child_main(conn: Connection, config: ChildConfig) -> None:
    """One neonize client, driven through ``conn``."""
    # The parent decides when to stop (it finishes sends in flight first); Ctrl-C and SIGTERM to
    # the process group must not cut the child off before that. A dead parent closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ[BOT_TAG_ENV] = config.bot_tag  # before neonize loads
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_PipeLogHandler(out))  # installed first, so neonize's basicConfig does nothing
    root.setLevel(config.log_level)

    def write() -> None:
        while True:
            item = out.get()
            if item is None:
                return
            try:
                conn.send(item)
            except (OSError, EOFError):
                continue  # the parent is gone; the main loop notices and ends
            except Exception as exc:  # unpicklable
                if item[0] == "reply":
                    with contextlib.suppress(Exception):
                        conn.send(("reply", item[1], False, RuntimeError(f"unpicklable result: {exc}")))

    writer = threading.Thread(target=write, name="to-parent", daemon=True)
    writer.start()
    session = NeonizeSession(
        config.session_id, config.store, lambda event: out.put(("event", event)), config.backoff, bot_tag=config.bot_tag
    )
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="neonize-call")

    def serve(req_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            if method not in _CALLS:
                raise ValueError(f"unknown call {method!r}")
            out.put(("reply", req_id, True, getattr(session, method)(*args)))
        except BaseException as exc:
            out.put(("reply", req_id, False, _portable(exc)))

    try:
        session.start()
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            if message[0] == "stop":
                break
            if message[0] == "call":
                pool.submit(serve, message[1], message[2], tuple(message[3]))
    finally:
        session.stop()
        pool.shutdown(wait=False, cancel_futures=True)
        out.put(None)
        writer.join(timeout=5)
        conn.close()
        # neonize's connect() runs Go on a non-daemon thread that may outlive us: leave now.
        os._exit(0)
