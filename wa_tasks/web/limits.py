"""The size limit of a request body, enforced as the body arrives.

A body that declares its length (``Content-Length``) over the limit is refused before any of it is
read. A body that does not (``Transfer-Encoding: chunked``) is counted chunk by chunk: the moment
it passes the limit the client gets 413 and the connection is closed, so neither the rest of the
body nor the part already read is ever held whole in memory.

A pure ASGI middleware (no ``BaseHTTPMiddleware``): it wraps ``receive`` and ``send`` and sits
outside every other layer, so the pages' form parser and the API's JSON decoder never see more
than the limit.
"""

from __future__ import annotations

import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

#: The largest request body accepted (a 10,000-recipient bulk request is about 2 MB).
MAX_BODY_BYTES = 8 * 1024 * 1024


def too_large_text(limit: int) -> str:
    return f"request body over {_mb(limit)} MB; split a bulk send into several"


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):g}"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit: it stops whatever was reading the
    body (the 413 has already been sent by then). An HTTP error, so that a layer that turns
    exceptions into answers turns this one into a quiet 4xx (which is dropped), not a logged 500."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_text(limit))


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 ``payload_too_large``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (
            not declared.isascii() or not declared.isdigit() or int(declared) > self.max_bytes
        ):
            # Refused on the declaration alone: nothing of the body is read
            await self.refuse(scope, send)
            return

        received = 0
        started = False
        refused = False
        # Whether a body may still be on its way (none comes without a length or chunked encoding)
        unread = (declared not in (None, "0")) or _header(scope, b"transfer-encoding") is not None

        async def counting_receive() -> Message:
            nonlocal received, refused, unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started:
                        refused = True
                        log.info(
                            "refused a request body over %d bytes (%s %s)",
                            self.max_bytes,
                            scope["method"],
                            scope["path"],
                        )
                        await self.refuse(scope, send)
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; what the app makes of the cut-off body is dropped
            if message["type"] == "http.response.start":
                started = True
                if unread:
                    # An answer before the end of the body (a refused form field, a route that
                    # takes no body): the server closes the connection after it rather than
                    # read the rest of the body, only to throw it away.
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # Once refused, whatever the app raised is the cut-off body's doing and already answered.
            # Otherwise (the app had begun its answer) closing the connection is all that is left.
            if not refused:
                raise

    async def refuse(self, scope: Scope, send: Send) -> None:
        """413 as the API's errors are (JSON), or as a sentence for a browser (a page's form)."""
        if "text/html" in (_header(scope, b"accept") or "") and not scope["path"].startswith("/api/"):
            sentence = f"Refused: what the form sent is over {_mb(self.max_bytes)} MB; nothing was changed.\n"
            kind, body = b"text/plain; charset=utf-8", sentence.encode()
        else:
            kind = b"application/json"
            body = json.dumps({"error": "payload_too_large", "detail": too_large_text(self.max_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", kind),
                    (b"content-length", str(len(body)).encode()),
                    # The unread rest of the body is still on its way: the server closes the
                    # connection after this answer instead of reading it to reuse the connection.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1").strip())
    return None
