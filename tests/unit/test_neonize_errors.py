"""sessions_host.transports.errors: whatsmeow error texts → what the host does about them."""

from __future__ import annotations

import pytest

from sessions_host.transports.base import RecipientError, RestrictedError, SendError, SessionError, TransientSendError
from sessions_host.transports.errors import AmbiguousSendError, classify, to_send_error

# Texts as whatsmeow/neonize 0.5.2 word them (the dial error and "client is nil" were read from
# this machine; the others from whatsmeow's sources).
TRANSIENT = [
    "websocket not connected",
    "failed to send usync query: websocket not connected",
    "websocket disconnected before info query (usync) returned response",
    "info query timed out",
    "failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "
    '"https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: no such host',
    "info query returned status 429: rate-overlimit",
    "server returned error 429",
    "server returned error 500",
    "info query returned status 503: service-unavailable",
    "failed to upload media: context deadline exceeded",
    # The LID lookup's own query failed: nothing is known about the recipient yet.
    "failed to get user info for 6281234567890@s.whatsapp.net to fill LID cache: info query timed out",
    "SendMessage: Error sending message: failed to get user info for 6281234567890@s.whatsapp.net to fill LID "
    "cache: failed to send usync query: websocket not connected",
]
RECIPIENT = [
    "server returned error 403",
    "info query returned status 403: forbidden",
    "server returned error 405",
    "6281234567890 is not on WhatsApp",
    "server returned error 479",
    # The server's answer to whatsmeow's LID lookup for the number had no LID in it.
    "no LID found for 6281234567890@s.whatsapp.net from server",
    "SendMessage: Error sending message: no LID found for 6281234567890@s.whatsapp.net from server",
]
SESSION = [
    "the store doesn't contain a device JID",
    "client is nil",
    "client is nil: ensure client is connected before calling PairPhone, or pass pairphone to connect()",
    "logged out from another device",
    "the neonize process is not running",
]


@pytest.mark.parametrize("text", TRANSIENT)
def test_transient_errors_are_retried(text: str) -> None:
    assert classify(text) is TransientSendError


@pytest.mark.parametrize("text", RECIPIENT)
def test_recipient_errors_fail_the_message(text: str) -> None:
    assert classify(text) is RecipientError


@pytest.mark.parametrize("text", SESSION)
def test_session_errors_move_the_message(text: str) -> None:
    assert classify(text) is SessionError


@pytest.mark.parametrize("text", ["server returned error 463", "info query returned status 463: restricted"])
def test_a_463_restriction_moves_the_message_and_rests_the_number(text: str) -> None:
    assert classify(text) is RestrictedError
    assert issubclass(RestrictedError, SessionError)


@pytest.mark.parametrize("text", ["", "something nobody has seen before", "EOF", "unexpected end of JSON input"])
def test_unknown_texts_are_transient(text: str) -> None:
    assert classify(text) is TransientSendError


def test_case_does_not_matter() -> None:
    assert classify("WEBSOCKET NOT CONNECTED") is TransientSendError
    assert classify("The Store Doesn't Contain A Device JID") is SessionError
    assert classify("Server Returned Error 463") is RestrictedError


def test_digits_inside_numbers_or_addresses_are_not_error_codes() -> None:
    # 463 and 403 appear here only inside a phone number and an address, never as a code.
    assert classify("failed to dial 10.4.63.1:403x for 6281463403555") is TransientSendError
    assert classify("usync for 6281240312345: info query timed out") is TransientSendError


@pytest.mark.parametrize(
    "message",
    ["timed out waiting for message send response", "websocket disconnected before message send returned response"],
)
def test_a_send_that_went_out_without_an_acknowledgement_is_ambiguous(message: str) -> None:
    # WhatsApp may have the message: resending could duplicate it (the ambiguous-send rule).
    assert classify(message) is AmbiguousSendError


def test_to_send_error_keeps_the_text_and_class() -> None:
    error = to_send_error("server returned error 463")
    assert isinstance(error, RestrictedError)
    assert str(error) == "server returned error 463"
    assert isinstance(to_send_error("websocket not connected"), TransientSendError)


def test_an_ambiguous_send_is_neither_retried_nor_moved() -> None:
    # delivery.py retries TransientSendError and moves SessionError to another session; an ambiguous
    # send must do neither (it has its own outcome there: failed with ambiguous_send).
    error = AmbiguousSendError("the neonize process was killed during the send")
    assert isinstance(error, SendError)
    assert not isinstance(error, TransientSendError | SessionError | RecipientError)
