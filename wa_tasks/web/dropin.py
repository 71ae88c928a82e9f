"""What a drop-in request means in wa-tasks terms: the fields of a URL-template gateway call or a
Fonnte ``/send`` call, checked and mapped onto the thin client's ``send`` (the same path as
``POST /api/whatsapp/send``, so a bad number, a NUL or an oversized text gets the same error).

Kept apart from the routes (``api/compat``) so that the mapping is one small module: everything the
drop-ins know about sending is in ``queue_texts``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wa_tasks.client import Client
from wa_tasks.core import rendering
from wa_tasks.core.phone import normalize
from wa_tasks.errors import InvalidMessage, InvalidPhoneNumber, InvalidRequest, InvalidSchedule
from wa_tasks.pipeline import schedule
from wa_tasks.pipeline.request import refuse_nul
from wa_tasks.settings import Settings

#: The field names each drop-in takes, first found wins (the names those gateways use).
NUMBER_FIELDS = ("number", "phone", "target", "to")
TEXT_FIELDS = ("text", "message", "msg")
#: Most targets one Fonnte-style request may name (each is its own message, queued in the request).
MAX_TARGETS = 1000
#: Longest accepted ``target`` field: every target at its longest with a name and a few variables.
MAX_TARGET_FIELD = 200_000
#: Longest ``delay`` in seconds Fonnte's range syntax may ask for.
MAX_DELAY_SECONDS = 3600.0
DEFAULT_COUNTRY_CODE = "62"

_DELAY = re.compile(r"\s*(\d{1,6}(?:\.\d+)?)\s*(?:-\s*(\d{1,6}(?:\.\d+)?)\s*)?")
_COUNTRY_CODE = re.compile(r"\d{1,4}")
_PLACEHOLDER = re.compile(r"\{(name|var\d{1,2})\}")


@dataclass(frozen=True)
class Target:
    """One Fonnte target: ``number|name|var1|var2...``."""

    number: str
    name: str | None = None
    variables: tuple[str, ...] = ()
    #: The number as the caller wrote it (``number`` has the country code put in).
    given: str = ""

    def render(self, message: str) -> str:
        """``message`` with ``{name}`` and ``{var1}``, ``{var2}``… of this target put in; a placeholder
        the target has no value for stays as written, as Fonnte leaves it."""

        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "name":
                return self.name if self.name is not None else match.group(0)
            index = int(key[3:]) - 1
            return self.variables[index] if 0 <= index < len(self.variables) else match.group(0)

        return _PLACEHOLDER.sub(value, message)


def first(fields: Mapping[str, str], names: Sequence[str]) -> str | None:
    """The first of ``names`` present and not blank in ``fields``."""
    for name in names:
        value = fields.get(name)
        if value is not None and value.strip():
            return value
    return None


def required_text(fields: Mapping[str, str]) -> str:
    text = first(fields, TEXT_FIELDS)
    if text is None:
        raise InvalidRequest(f"missing text: give it as one of {', '.join(TEXT_FIELDS)}")
    if len(text) > rendering.MAX_LENGTH:
        raise InvalidRequest(f"text must be at most {rendering.MAX_LENGTH} characters, got {len(text)}")
    return text


def parse_country_code(raw: str | None) -> str | None:
    """Fonnte's ``countryCode``: the digits that replace a number's leading 0 (default 62); ``0``
    turns the replacement off (the number is then read as written, a leading 0 as Indonesian)."""
    if raw is None or not raw.strip():
        return DEFAULT_COUNTRY_CODE
    value = raw.strip().lstrip("+")
    if not _COUNTRY_CODE.fullmatch(value):
        raise InvalidRequest(f"countryCode must be 1-4 digits (e.g. 62), or 0 for none, got {raw[:40]!r}")
    return None if int(value) == 0 else value


def with_country_code(number: str, country_code: str | None) -> str:
    """``0812…`` → ``+62812…`` (Fonnte's replacement of the first zero); anything else as written."""
    stripped = number.strip()
    if country_code and stripped.startswith("0") and not stripped.startswith("00"):
        return f"+{country_code}{stripped[1:]}"
    return stripped


def parse_targets(raw: str, country_code: str | None) -> list[Target]:
    """Fonnte's ``target``: numbers separated by commas, each optionally ``number|name|var1|...``."""
    if len(raw) > MAX_TARGET_FIELD:
        raise InvalidRequest(f"target is too long ({len(raw)} characters, at most {MAX_TARGET_FIELD})")
    targets = []
    for part in raw.split(","):
        if not part.strip():
            continue
        number, *rest = part.split("|")
        if not number.strip():
            raise InvalidRequest(f"target {part.strip()[:80]!r} has no number before its '|'")
        target = Target(
            number=with_country_code(number, country_code),
            name=rest[0] if rest else None,
            variables=tuple(rest[1:]),
            given=number.strip(),
        )
        try:
            normalize(target.number)
        except InvalidPhoneNumber as exc:
            raise InvalidPhoneNumber(f"target {target.given[:80]!r}: {exc}") from None
        targets.append(target)
    if not targets:
        raise InvalidRequest("missing target: give one number, or several separated by commas")
    if len(targets) > MAX_TARGETS:
        raise InvalidRequest(f"too many targets ({len(targets)}): at most {MAX_TARGETS} per request")
    return targets


def parse_delay(raw: str | None) -> tuple[float, float] | None:
    """Fonnte's ``delay``: seconds between the targets of one request, ``"5"`` or a range ``"5-10"``.

    wa-tasks never sends faster than a session's pace (``WA_PACE_SECONDS`` or the session's own,
    plus up to ``WA_PACE_JITTER_SECONDS`` at random) and ban safety's caps, whatever the caller asks;
    the delay is checked here and answered back, and the session's pace is what spaces the sends.
    """
    if raw is None or not raw.strip():
        return None
    match = _DELAY.fullmatch(raw)
    if match is None:
        raise InvalidRequest(f'delay must be seconds like "5" or a range like "5-10", got {raw[:40]!r}')
    low = float(match.group(1))
    high = float(match.group(2)) if match.group(2) is not None else low
    if low > high or high > MAX_DELAY_SECONDS:
        raise InvalidRequest(
            f"delay range must go from low to high, at most {MAX_DELAY_SECONDS:.0f} seconds, got {raw[:40]!r}"
        )
    return low, high


def parse_schedule(raw: str | None, settings: Settings) -> dt.datetime | None:
    """Fonnte's ``schedule``: a unix time in seconds at which to send (a scheduled send, as
    ``sendAt`` on the API); empty or 0 sends now. Checked as ``send_at`` is: a time a little in the
    past (``WA_SCHEDULE_GRACE_SECONDS``) sends now, an older one is refused."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if not value.isdigit() or len(value) > 12:
        hint = " (seconds, not milliseconds)" if value.isdigit() and len(value) == 13 else ""
        raise InvalidRequest(f"schedule must be a unix time in seconds{hint}, or 0 for now, got {raw[:40]!r}")
    if int(value) == 0:
        return None
    try:
        timing = schedule.check(
            send_at=int(value), grace_seconds=settings.schedule_grace_seconds, now=dt.datetime.now(dt.UTC)
        )
    except InvalidSchedule as exc:
        raise InvalidRequest(f"schedule {value}: {exc}") from None
    return timing.send_at


def queue_texts(client: Client, messages: Sequence[tuple[str, str]], send_at: dt.datetime | None = None) -> list[str]:
    """Queue each ``(number, text)`` as one message (``send_at``: scheduled for then); returns
    their ids in order.

    Every number and text is checked before the first is queued, so a bad one anywhere queues
    nothing; each message then goes through ``Client.send`` like ``POST /send``, which checks again.
    """
    for number, text in messages:
        normalize(number)
        refuse_nul(text, "text")
        if not text.strip() or len(text) > rendering.MAX_LENGTH:
            raise InvalidMessage(f"text must be non-empty and at most {rendering.MAX_LENGTH} characters")
    return [client.send(number, text=text, send_at=send_at) for number, text in messages]
