"""Logging in one configured place: a message id, a session id and a masked phone number on
every line about a message, and nothing secret."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

from wa_tasks.core.phone import mask

FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s%(context)s"

_CONTEXT_FIELDS = ("message_id", "session_id", "to")


class _ContextFilter(logging.Filter):
    """Renders ``message_id``/``session_id``/``to`` given in ``extra=`` as ``[msg=… session=… to=…]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        parts = []
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value:
                label = "msg" if field == "message_id" else ("session" if field == "session_id" else field)
                parts.append(f"{label}={value}")
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger once per process (replacing handlers a library installed)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_ContextFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("kombu", "amqp", "urllib3", "alembic", "sqlalchemy.engine", "tornado.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def context_filter() -> logging.Filter:
    return _ContextFilter()


class MessageLog(logging.LoggerAdapter):
    """A logger for one message: adds its id, session and masked recipient to every line."""

    def __init__(
        self, logger: logging.Logger, message_id: str, to: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(logger, {"message_id": message_id, "to": mask(to) if to else None, "session_id": session_id})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs
