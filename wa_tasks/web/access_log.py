"""Keys never reach the web process's log: the drop-in endpoints take their key in the query string
(``?key=…``), and uvicorn's access log writes every request line with its query string. A filter on
that logger masks the value of every key-like query parameter before the line is written.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

#: Query parameters whose values are secrets (compared in lower case, after URL-decoding the name).
SECRET_PARAMETERS = frozenset({"key", "token", "api_key", "apikey", "api-key", "access_token", "x-api-key"})
MASK = "***"
#: The logger uvicorn writes request lines to.
ACCESS_LOGGER = "uvicorn.access"


def mask_query(text: str) -> str:
    """``text`` with the value of each secret query parameter replaced by ``***``; the rest as it was."""
    path, sep, query = text.partition("?")
    if not sep:
        return text
    # A request line's path ends at the first blank ("GET /x?key=1 HTTP/1.1"); keep what follows.
    query, blank, rest = query.partition(" ")
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        if eq and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            part = f"{name}={MASK}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}{blank}{rest}"


class MaskKeys(logging.Filter):
    """Masks secret query parameters in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = mask_query(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_query(a) if isinstance(a, str) and "?" in a else a for a in record.args)
        return True


def install() -> None:
    """Put the filter on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, MaskKeys) for f in logger.filters):
        logger.addFilter(MaskKeys())
