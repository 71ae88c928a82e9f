"""The rules of status callbacks that need no I/O: the signature of an event, the backoff between
attempts, and which callback URLs and addresses are acceptable.

The signature is the Standard Webhooks scheme (the one Svix uses; Stripe's is the same idea):
``HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")``, base64, sent as
``webhook-signature: v1,<base64>``. The receiver recomputes it over the raw body and refuses a
timestamp far from its clock, which is what makes a replayed request useless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import random
from urllib.parse import urlsplit

from wa_tasks.errors import InvalidCallbackUrl

#: Longest callback URL (the ``callback_url`` column).
MAX_URL_LENGTH = 2000
#: Longest wait between two attempts of one event (seconds).
MAX_BACKOFF_SECONDS = 3600.0
#: Wait after the first failed attempt (seconds); doubled after each further one.
FIRST_BACKOFF_SECONDS = 5.0
#: Names that always mean this machine.
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def secret_key(secret: str) -> bytes:
    """The HMAC key of ``WA_WEBHOOK_SECRET``: the bytes after ``whsec_`` base64-decoded (the
    Standard Webhooks form), else the secret's own UTF-8 bytes."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            pass
    return secret.encode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of one request: ``v1,<base64 of the HMAC>``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str, event_id: str, timestamp: str, body: bytes, header: str, now: float, tolerance: float = 300
) -> bool:
    """What a receiver does (docs/webhooks.md): the timestamp within ``tolerance`` seconds of ``now``
    and one of the header's space-separated ``v1,`` signatures equal to the expected one."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(now - stamp) > tolerance:
        return False
    expected = signature(secret, event_id, stamp, body)
    return any(hmac.compare_digest(expected, given) for given in header.split())


def backoff_seconds(attempts: int, rng: random.Random | None = None) -> float:
    """Wait after the ``attempts``-th failed attempt: exponential (5 s, 10 s, 20 s, ... at most an
    hour) with jitter, drawn from the upper half of it so that receivers coming back are not hit
    by every waiting event at once, and a wait never collapses to nothing."""
    ceiling = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def is_public(address: str) -> bool:
    """Whether an IP address is one the internet routes: not loopback, private, link-local,
    shared (100.64/10), multicast, reserved or unspecified (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_callback_url(url: object, allow_private: bool) -> str | None:
    """A request's ``callback_url`` checked before anything is stored: None, or an ``http://`` or
    ``https://`` URL with a host, of at most 2,000 characters, whose host is not a loopback or
    private address written out (names are resolved and checked at each delivery). Raises
    :class:`InvalidCallbackUrl` naming the field and quoting the caller's value."""
    if url is None:
        return None
    if not isinstance(url, str):
        raise InvalidCallbackUrl(f"callbackUrl (callback_url) must be a string URL, got {type(url).__name__}")
    value = url.strip()
    shown = repr(url[:100] + ("..." if len(url) > 100 else ""))
    if len(value) > MAX_URL_LENGTH:
        raise InvalidCallbackUrl(
            f"callbackUrl (callback_url) is {len(value)} characters; the limit is {MAX_URL_LENGTH}"
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise InvalidCallbackUrl(f"callbackUrl (callback_url) contains whitespace or a control character: {shown}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise InvalidCallbackUrl(f"callbackUrl (callback_url) is not a valid URL ({exc}): {shown}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidCallbackUrl(f"callbackUrl (callback_url) must be an http:// or https:// URL, got {shown}")
    if not host:
        raise InvalidCallbackUrl(f"callbackUrl (callback_url) has no host: {shown}")
    if not allow_private:
        if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
            raise InvalidCallbackUrl(
                f"callbackUrl (callback_url) points at this machine ({host}): {shown}; "
                "status events go only to public addresses unless WA_WEBHOOK_ALLOW_PRIVATE is set"
            )
        try:
            public = is_public(host)
        except ValueError:
            public = True  # a name: checked once resolved, at delivery
        if not public:
            raise InvalidCallbackUrl(
                f"callbackUrl (callback_url) points at a loopback, private or link-local address ({host}): {shown}; "
                "status events go only to public addresses unless WA_WEBHOOK_ALLOW_PRIVATE is set"
            )
    return value
