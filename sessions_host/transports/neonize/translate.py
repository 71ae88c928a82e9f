"""Pure translations of neonize protobuf events and responses into the transport's events, and the
import of neonize with ``NEONIZE_BOT_TAG`` decided first."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
from typing import TYPE_CHECKING

from models.statuses import SessionStatus
from sessions_host.transports.base import (
    Incoming,
    QRCode,
    Receipt,
    RecipientError,
    SendResult,
    StateChanged,
    TransientSendError,
)

if TYPE_CHECKING:
    # Types only: importing neonize loads its Go library (see load_neonize).
    from google.protobuf.message import Message
    from neonize.events import LoggedOutEv, MessageEv, ReceiptEv, TemporaryBanEv
    from neonize.proto.Neonize_pb2 import JID, SendResponse

log = logging.getLogger(__name__)

#: neonize labels 1:1 messages as a bot's unless this variable is "off" (see the package docstring).
BOT_TAG_ENV = "NEONIZE_BOT_TAG"
DEFAULT_BOT_TAG = "off"

#: The ``detail`` of the state reported when another client took the device's stream over.
STREAM_REPLACED = "stream replaced: the session was opened elsewhere"
#: Seconds the first QR code of a connection is valid, and each later one (WhatsApp's rotation).
FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0

_USER_SERVERS = ("s.whatsapp.net", "c.us")

# Translating neonize events (pure) ---------------------------------------------------------------

_RECEIPT_KINDS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "read"}


def epoch_to_datetime(value: float) -> dt.datetime:
    """A protobuf timestamp as an aware UTC datetime. Unix seconds or milliseconds (neonize uses
    both: receipts and send responses in seconds, message infos in milliseconds) are told apart by
    size; 0 (unset) means now."""
    if not value or value <= 0:
        return dt.datetime.now(dt.UTC)
    seconds = value / 1000.0 if value > 1e11 else float(value)
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def enum_name(message: Message, field: str) -> str:
    """The name of an enum field's value (``LoggedOut.Reason`` → ``"LOGGED_OUT"``); the value itself
    for a number the enum does not name, or a field that is not an enum."""
    value = getattr(message, field)
    enum_type = message.DESCRIPTOR.fields_by_name[field].enum_type
    found = enum_type.values_by_number.get(value) if enum_type is not None else None
    return found.name if found is not None else str(value)


def phone_of(jid: JID | None) -> str | None:
    """The phone number (digits) of a user JID, or None for a LID, group, or empty JID."""
    if jid is None or jid.Server not in _USER_SERVERS:
        return None
    digits = re.sub(r"\D", "", jid.User)
    return digits or None


def qr_code(data: bytes | str, first: bool) -> QRCode:
    """The QR callback's payload as a ``QRCode`` (the first code of a connection lives longer)."""
    code = data.decode() if isinstance(data, bytes) else data
    return QRCode(code=code, expires_in=FIRST_QR_SECONDS if first else NEXT_QR_SECONDS)


def logged_out_state(event: LoggedOutEv) -> StateChanged:
    """``LoggedOutEv`` → ``logged_out`` with the reason's name."""
    when = ", while connecting" if event.OnConnect else ""
    return StateChanged(
        status=SessionStatus.LOGGED_OUT,
        detail=f"logged out ({enum_name(event, 'Reason')}{when}): link the device again",
    )


def temporary_ban_state(event: TemporaryBanEv, now: dt.datetime | None = None) -> StateChanged:
    """``TemporaryBanEv`` → ``banned`` until ``now + Expire`` seconds."""
    expire = int(event.Expire)
    now = now or dt.datetime.now(dt.UTC)
    until = now + dt.timedelta(seconds=expire) if expire > 0 else None
    return StateChanged(
        status=SessionStatus.BANNED,
        detail=f"temporary ban {enum_name(event, 'Code')} (code {int(event.Code)}), expires in {expire} s",
        until=until,
    )


def receipt_event(event: ReceiptEv) -> Receipt | None:
    """``ReceiptEv`` → one ``Receipt`` for all its message ids; None for receipts that say nothing
    about delivery to the recipient (SENDER, RETRY, READ_SELF: one of our own devices read a
    message we *received*, …)."""
    kind = _RECEIPT_KINDS.get(enum_name(event, "Type"))
    ids = tuple(i for i in event.MessageIDs if i)
    if kind is None or not ids:
        return None
    return Receipt(wa_message_ids=ids, kind=kind, at=epoch_to_datetime(event.Timestamp))


def incoming_event(event: MessageEv) -> Incoming | None:
    """``MessageEv`` → ``Incoming`` for a 1:1 message from someone else; None for our own messages,
    groups, status broadcasts, newsletters, protocol messages without content, and senders whose
    phone number is unknown."""
    from neonize.utils.message import extract_text

    info = event.Info
    source = info.MessageSource
    if source.IsFromMe or source.IsGroup or source.Chat.Server in ("g.us", "broadcast", "newsletter"):
        return None
    if source.Sender.Server == "lid":
        sender = phone_of(source.SenderAlt)
    else:
        sender = phone_of(source.Sender) or phone_of(source.SenderAlt)
    if not sender:
        return None
    text = extract_text(event.Message)
    if not text and not info.MediaType:
        return None
    return Incoming(sender=sender, text=text, wa_message_id=info.ID, at=epoch_to_datetime(info.Timestamp))


def to_jid(jid: str) -> JID:
    from neonize.utils.jid import build_jid

    user, _, server = jid.partition("@")
    user = re.sub(r"\D", "", user)
    if not user:
        raise RecipientError(f"no phone number in recipient {jid!r}")
    return build_jid(user, server or "s.whatsapp.net")


def send_result(response: SendResponse) -> SendResult:
    if not response.ID:
        raise TransientSendError("WhatsApp acknowledged the send without a message id")
    return SendResult(wa_message_id=response.ID, sent_at=epoch_to_datetime(response.Timestamp))


def load_neonize(bot_tag: str | None = None) -> None:
    """Import neonize with ``NEONIZE_BOT_TAG`` decided first (the Go runtime reads it at load)."""
    loaded = "neonize._binder" in sys.modules
    if bot_tag is not None:
        os.environ[BOT_TAG_ENV] = bot_tag
    elif BOT_TAG_ENV not in os.environ:
        if loaded:
            log.warning("neonize was imported before %s was decided: its default (tag on) may apply", BOT_TAG_ENV)
        os.environ[BOT_TAG_ENV] = DEFAULT_BOT_TAG
    try:
        import neonize.client  # noqa: F401
    except RuntimeError as exc:
        # neonize's loader found a Go library of another version than the package's and could not
        # download the right one (offline, or a read-only site-packages): the installation needs
        # fixing, so this is a load failure, not a connect attempt to retry.
        raise ImportError(f"neonize's Go library cannot be loaded: {exc}") from exc
