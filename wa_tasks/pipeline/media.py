"""Images and documents that messages carry: limits, checks when a message is queued, and the
bounded download the session host does at send time.

A media message stores either a URL or the bytes themselves (``models.Message.media_*``). A URL is
fetched by the session host just before the send, never without a timeout and never beyond
:data:`MAX_BYTES`; a fetch that fails makes the message ``failed`` with ``media_download_failed: …``
(it is not retried: a wrong or expired link does not heal by itself, and the operator can retry the
message once it is fixed).
"""

from __future__ import annotations

import mimetypes
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message as HeaderMessage
from http.client import HTTPMessage
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from wa_tasks.errors import InvalidMessage, MediaError

#: Largest image or document accepted, as bytes given by the caller or downloaded (WhatsApp's own
#: limit for images is 16 MB).
MAX_BYTES = 16 * 1024 * 1024
#: Seconds a download may take in total, and the socket timeout of each connect/read within it.
DOWNLOAD_TIMEOUT_SECONDS = 30.0
SOCKET_TIMEOUT_SECONDS = 10.0
#: Longest URL accepted.
MAX_URL_LENGTH = 2000

_CHUNK = 64 * 1024
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)


@dataclass(frozen=True)
class Media:
    """What a media message carries: a URL to fetch at send time, or the bytes."""

    url: str | None = None
    data: bytes | None = None
    mimetype: str | None = None
    filename: str | None = None

    def columns(self) -> dict[str, Any]:
        """The ``Message`` columns that store it."""
        return {
            "media_url": self.url,
            "media_data": self.data,
            "media_mimetype": self.mimetype,
            "media_filename": self.filename,
        }


@dataclass(frozen=True)
class Payload:
    """Bytes ready for ``Transport.send_media``."""

    data: bytes
    mimetype: str
    filename: str | None


def sniff(data: bytes) -> str | None:
    """The mimetype of common image and document bytes, from their first bytes."""
    for signature, mimetype in _SIGNATURES:
        if data.startswith(signature):
            return mimetype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_url(url: object, *, what: str = "media_url") -> str:
    """An http(s) URL with a host, or :class:`InvalidMessage` saying what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidMessage(f"{what} must be the http(s) URL of the image, got {url!r}")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidMessage(f"{what} is {len(url)} characters long; the limit is {MAX_URL_LENGTH}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidMessage(f"{what} must be an http:// or https:// URL, got {shown(url)}")
    return url


def given(media: object, mimetype: str | None = None, filename: str | None = None) -> Media:
    """What a caller passes as a message's media: an http(s) URL (fetched at send time) or bytes."""
    if isinstance(media, bytes | bytearray | memoryview):
        return from_bytes(bytes(media), mimetype, filename)
    if isinstance(media, str):
        return Media(url=check_url(media, what="media"), mimetype=mimetype, filename=filename)
    raise InvalidMessage(f"media must be an http(s) URL or bytes, got {type(media).__name__}")


def from_bytes(data: bytes, mimetype: str | None = None, filename: str | None = None) -> Media:
    """Bytes given by the caller, checked for size and type."""
    if not data:
        raise InvalidMessage("the media is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise InvalidMessage(f"the media is {_mb(len(data))}; the limit is {_mb(MAX_BYTES)}")
    found = mimetype or sniff(data) or (mimetypes.guess_type(filename)[0] if filename else None)
    if not found or "/" not in found:
        raise InvalidMessage("the media's file type is not recognised: pass mimetype='image/png' (or the right type)")
    return Media(data=bytes(data), mimetype=found, filename=filename)


def _mb(size: int) -> str:
    """Bytes as MB (2**20 bytes, as phones count them)."""
    return f"{size / 2**20:.1f}".removesuffix(".0") + " MB"


def shown(url: str) -> str:
    """A URL for errors and logs, without its query (signed links carry tokens there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib would also follow ftp://)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise MediaError(f"redirected to a non-http(s) URL ({shown(newurl)})")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpOnlyRedirects)


def download(
    url: str,
    *,
    max_bytes: int = MAX_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT_SECONDS,
    socket_timeout: float = SOCKET_TIMEOUT_SECONDS,
) -> Payload:
    """Fetch ``url``; raise :class:`MediaError` on any failure, over ``max_bytes`` or after ``timeout``."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "wa-tasks media fetch"})
    try:
        with _opener.open(request, timeout=min(socket_timeout, timeout)) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise MediaError(f"{shown(url)} is {_mb(int(length))}; the limit is {_mb(max_bytes)}")
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise MediaError(f"{shown(url)} took longer than {timeout:.0f}s to download")
                chunk = response.read1(_CHUNK)  # returns what arrived: a slow drip cannot outlive the deadline
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise MediaError(f"{shown(url)} is larger than the limit of {_mb(max_bytes)}")
                chunks.append(chunk)
            headers: HeaderMessage = response.headers
    except MediaError:
        raise
    except urllib.error.HTTPError as exc:
        raise MediaError(f"{shown(url)} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise MediaError(f"{shown(url)} could not be reached: {exc.reason}") from None
    except (TimeoutError, OSError, ValueError) as exc:
        raise MediaError(f"{shown(url)} could not be downloaded: {type(exc).__name__}: {exc}") from None
    data = b"".join(chunks)
    if not data:
        raise MediaError(f"{shown(url)} is empty")
    filename = PurePosixPath(unquote(urlsplit(url).path)).name or None
    declared = headers.get_content_type() if headers.get("Content-Type") else None
    if declared in (None, "application/octet-stream", "binary/octet-stream"):
        declared = sniff(data) or (mimetypes.guess_type(filename)[0] if filename else None) or declared
    return Payload(data=data, mimetype=declared or "application/octet-stream", filename=filename)


def payload_of(media: Media) -> Payload:
    """The bytes to send: downloaded for a URL (see :func:`download`), else the stored bytes."""
    if media.data is not None:
        return Payload(data=media.data, mimetype=media.mimetype or "application/octet-stream", filename=media.filename)
    if media.url is None:
        raise MediaError("the message has neither a media URL nor media bytes")
    payload = download(media.url)
    if media.mimetype or media.filename:  # what the caller said wins over what the server said
        payload = Payload(payload.data, media.mimetype or payload.mimetype, media.filename or payload.filename)
    return payload


def of_message(message: Any) -> Media | None:
    """The media a stored ``models.Message`` carries (None unless it is a ``media`` message)."""
    if message.message_type != "media":
        return None
    return Media(
        url=message.media_url,
        data=message.media_data,
        mimetype=message.media_mimetype,
        filename=message.media_filename,
    )
