"""What a neonize/whatsmeow error string means for the host: retry, give up on the recipient, or
move the message off the session.

neonize raises ``NeonizeError`` subclasses whose only content is whatsmeow's error text; the library
has no retryable/permanent split, so the text is classified here.
:func:`classify` is pure so the table can be tested without a network.

- ``TransientSendError`` (retry with backoff; routing picks a connected session): websocket not
  connected / disconnected, timed out waiting for the send response, info query timed out, failed to
  dial, 429 rate-overlimit, 500, 503, and any text not recognised.
- ``RecipientError`` (fail the message, no retry): 403, 405, not on WhatsApp, 479 (invalid
  stanza: this message would fail on any session, so moving it would only bounce it between them),
  and "no LID found for <number>@s.whatsapp.net from server". WhatsApp addresses one-to-one chats
  by LID: for a phone number it has no LID for, whatsmeow asks the server (a usync user-info
  query, like the one ``is_on_whatsapp`` makes) and gets this when the answer has none: the
  server's answer for a number without WhatsApp or written in a form WhatsApp does not know. The
  same query gives the same answer later and from any session. When the query itself fails
  ("failed to get user info for … to fill LID cache: <cause>") the cause decides, usually transient.
- ``SessionError`` (move the message to another session): logged out, "the store doesn't contain a
  device JID" (not paired), "client is nil" (not started), the neonize process not running; and
  its subclass ``RestrictedError`` for 463 (restriction on contacting new numbers, can last days),
  which also takes the number out of rotation.
"""

from __future__ import annotations

import re

from sessions_host.transports.base import (
    AmbiguousSendError,
    RecipientError,
    RestrictedError,
    SendError,
    SessionError,
    TransientSendError,
)

__all__ = ["AmbiguousSendError", "classify", "to_send_error"]


#: whatsmeow's numeric server/IQ errors: "server returned error 463", "info query returned status 429: rate-overlimit".
_CODE = re.compile(r"(?:error|status|code)\D{0,3}(\d{3})\b")

_TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})
_RECIPIENT_CODES = frozenset({403, 404, 405, 479})
_SESSION_CODES = frozenset({401})
_RESTRICTED_CODES = frozenset({463})

#: Checked in this order; the first match wins.
_SESSION_TEXTS = (
    "the store doesn't contain a device jid",
    "client is nil",
    "logged out",
    "not logged in",
    "neonize process",
)
_RECIPIENT_TEXTS = (
    "not on whatsapp",
    "not registered on whatsapp",
    "forbidden",
    "no lid found for",
)
#: The message went out on the socket but no server acknowledgement came back: WhatsApp may have
#: it, so it is an ambiguous send (never resent; see wa_tasks.pipeline.lifecycle), not a transient error.
_AMBIGUOUS_TEXTS = (
    "timed out waiting for message send response",
    "disconnected before message send returned response",
)
_TRANSIENT_TEXTS = (
    "websocket not connected",
    "websocket disconnected",
    "info query timed out",
    "failed to dial",
    "rate-overlimit",
    "internal-server-error",
    "service-unavailable",
    "context deadline exceeded",
    "connection reset",
    "broken pipe",
)


def classify(message: str) -> type[SendError]:
    """The send error class for a neonize/whatsmeow error text (unknown texts are transient)."""
    text = message.lower()
    for found in _CODE.finditer(text):
        code = int(found.group(1))
        if code in _RESTRICTED_CODES:
            return RestrictedError
        if code in _SESSION_CODES:
            return SessionError
        if code in _RECIPIENT_CODES:
            return RecipientError
        if code in _TRANSIENT_CODES:
            return TransientSendError
    if any(t in text for t in _AMBIGUOUS_TEXTS):
        return AmbiguousSendError
    if any(t in text for t in _SESSION_TEXTS):
        return SessionError
    if any(t in text for t in _TRANSIENT_TEXTS):
        return TransientSendError
    if any(t in text for t in _RECIPIENT_TEXTS):
        return RecipientError
    return TransientSendError


def to_send_error(message: str) -> SendError:
    """An exception instance of the class :func:`classify` picks, carrying the original text."""
    return classify(message)(message)
