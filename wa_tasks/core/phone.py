"""Phone numbers and WhatsApp JIDs: every way a customer's number is written, normalised with ``phonenumbers``.

``0812-3456-7890``, ``+62 812 3456 7890``, ``6281234567890`` and ``6281234567890@s.whatsapp.net``
all mean the recipient ``6281234567890`` (default region Indonesia). Anything else written in a
number (a letter, an extension, a second number) is refused, never read as another number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

import phonenumbers

from wa_tasks.errors import InvalidPhoneNumber

#: The server part of a WhatsApp user JID.
USER_SERVER = "s.whatsapp.net"
_ACCEPTED_SERVERS = {USER_SERVER, "c.us"}


@dataclass(frozen=True)
class Recipient:
    """A valid recipient: E.164 digits without "+" and its WhatsApp JID."""

    number: str

    @property
    def jid(self) -> str:
        return f"{self.number}@{USER_SERVER}"

    @property
    def e164(self) -> str:
        return f"+{self.number}"

    @property
    def masked(self) -> str:
        return mask(self.number)


#: The longest text read as a phone number (the longest E.164 number has 15 digits): anything
#: longer is refused before it is looked at character by character or parsed.
MAX_LENGTH = 64
#: What a written number may hold besides digits (one "+" may come before them). Anything else is
#: refused, not skipped: ``phonenumbers`` drops characters it does not understand at the end, reads
#: "x", "ext", "#" or ";ext=" as an extension and "/" as the start of a second number, and so would
#: turn "0812-3456-789a" into the valid 0812-3456-789, someone else's number.
SEPARATORS = "spaces, dashes, dots and parentheses"
#: A user JID: the full international number, then an optional agent (".0") and device (":12").
_JID_USER = re.compile(r"\+?[0-9]{1,20}(?:\.[0-9]{1,3})?(?::[0-9]{1,3})?")


def normalize(raw: object, region: str = "ID") -> Recipient:
    """Parse ``raw`` as a phone number or a user JID; raise :class:`InvalidPhoneNumber` if it is not one.

    A number is written with digits, spaces, dashes, dots, parentheses and one "+" before the
    digits; a JID is ``DIGITS@s.whatsapp.net`` (or ``@c.us``). Anything else is refused, never read
    as a different number. The error quotes ``raw`` (the caller's own input); its ``loggable``
    form masks it."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(f"phone number must be a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidPhoneNumber(f"phone number is too long to be one (over {MAX_LENGTH} characters)")
    plain = _check_jid(text) if "@" in text else _plain(text)
    fast = _fast(plain, region)
    if fast is not None:
        return Recipient(number=fast)
    return _parse(plain, region, shown=text)


def _refused(shown: str, why: str) -> InvalidPhoneNumber:
    """The refusal of ``shown``: the message quotes it, the log form masks it."""
    return InvalidPhoneNumber(f"{shown!r} {why}", loggable=f"{mask(shown)!r} {why}")


def _not_personal(shown: str, server: str) -> InvalidPhoneNumber:
    return _refused(
        shown, f"is not a personal WhatsApp address (server {server[:20]!r}); expected a number or NUMBER@{USER_SERVER}"
    )


def _plain(text: str) -> str:
    """``text`` with its digits and separators in ASCII, or :class:`InvalidPhoneNumber` naming the
    first character a phone number is not written with."""
    out = []
    seen_digit = plus = False
    for char in text:
        if char.isdecimal():  # ASCII and other scripts' digits (Arabic-Indic, fullwidth): same value
            out.append(str(unicodedata.decimal(char)))
            seen_digit = True
        elif char in ".()":
            out.append(char)
        elif unicodedata.category(char) == "Pd":  # "-" and the other dashes ("–", "‐")
            out.append("-")
        elif unicodedata.category(char) == "Zs":  # " " and the other spaces (no-break, thin)
            out.append(" ")
        elif char == "+" and not plus and not seen_digit:
            out.append(char)
            plus = True
        else:
            what = "a second '+' or a '+' after a digit" if char == "+" else f"{char!r}"
            raise _refused(
                text,
                f"is not a phone number: it holds {what}; write only digits, {SEPARATORS}, with one + "
                "before the country code (0812-3456-7890, +62 812 3456 7890 or 6281234567890)",
            )
    return "".join(out)


def _check_jid(text: str) -> str:
    """``text`` if it is a personal WhatsApp JID, else :class:`InvalidPhoneNumber` saying why."""
    user, _, server = text.partition("@")
    if server not in _ACCEPTED_SERVERS:
        raise _not_personal(text, server)
    if not _JID_USER.fullmatch(user):
        raise _refused(text, "is not a WhatsApp user address: the part before @ must be the number's digits only")
    return text


def _parse(text: str, region: str, shown: str | None = None) -> Recipient:
    """The full parse (``phonenumbers.parse``) of any form ``normalize`` accepts. ``shown``: the
    caller's input, for the error (default ``text``)."""
    shown = text if shown is None else shown
    if "@" in text:
        user, _, server = text.partition("@")
        if server not in _ACCEPTED_SERVERS:
            raise _not_personal(shown, server)
        # A JID's user part is the full international number; a device suffix (":12") is dropped.
        text = "+" + user.split(":", 1)[0].split(".", 1)[0].lstrip("+")
    elif text.isdigit() and not text.startswith("0") and not _valid_in_region(text, region):
        # "6281234567890": international digits without "+".
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise _refused(shown, f"is not a phone number: {exc._msg}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise _refused(
            shown,
            f"is not a valid phone number (region {region}); "
            "write it as 0812-3456-7890, +62 812 3456 7890 or 6281234567890",
        )
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return Recipient(number=e164.lstrip("+"))


#: The shapes the fast path takes (ASCII digits only, the significant number never starting with 0):
#: "0812…" (national, with the trunk prefix) and "62812…", "+62812…", "62812…@s.whatsapp.net"
#: (international, the default region's own country code).
_NATIONAL = re.compile(r"0([1-9][0-9]{5,16})")
_SIGNIFICANT = re.compile(r"[1-9][0-9]{5,16}")


@cache
def _region_code(region: str) -> str | None:
    """The region's country code when the fast path's reasoning holds for it: its trunk prefix is a
    plain "0" that parsing strips without a transform rule, and its international prefix starts with
    "00" (so "0" followed by 1-9 is never read as one). None: always take the full parse."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.national_prefix_for_parsing != "0" or metadata.national_prefix_transform_rule:
        return None
    if not (metadata.international_prefix or "").startswith("00"):
        return None
    return str(metadata.country_code)


def _valid(country_code: str, significant: str) -> bool:
    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int(significant))
    return bool(phonenumbers.is_valid_number(number))


def _fast(text: str, region: str) -> str | None:
    """The E.164 digits ``normalize`` returns for ``text``, without ``phonenumbers.parse``, when
    ``text`` has one of the plain shapes above and the number is valid; None: take the full parse
    (which also words the error). The same check (``is_valid_number``) decides; only the parsing is
    skipped. Why each shape gives what the full parse gives (region country code C, the rest N,
    N starting with 1-9):

    - "0" + N: no "+", no international prefix ("00…"), not starting with C; parsing strips the
      trunk prefix "0" whenever N is a viable national number, which a valid N is: (C, N).
    - "+" + C + N, or the JID C + N: the country code is read off the front; N does not start with
      the trunk prefix "0", so nothing more is stripped: (C, N).
    - C + N as bare digits: ``normalize`` first tries the whole as a national number, (C, C+N),
      and keeps it when valid (parsing does not strip C from a whole that is itself viable); else
      it parses "+" + digits: (C, N).
    ``tests/unit/test_phone_fast.py`` checks these against the full parse on many numbers.
    """
    code = _region_code(region)
    if code is None:
        return None
    match = _NATIONAL.fullmatch(text)
    if match is not None:
        return f"{code}{match.group(1)}" if _valid(code, match.group(1)) else None
    plus = text.startswith("+")
    digits, at, server = text[1 if plus else 0 :].partition("@")
    if (at and (plus or server != USER_SERVER)) or not digits.startswith(code):
        return None
    rest = digits[len(code) :]
    if not _SIGNIFICANT.fullmatch(rest):
        return None
    if not plus and not at and _valid(code, digits):
        return f"{code}{digits}"
    return f"{code}{rest}" if _valid(code, rest) else None


def _valid_in_region(digits: str, region: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
    except phonenumbers.NumberParseException:
        return False


def mask(number: str) -> str:
    """Mask a phone number or JID for logs: ``6281234567890`` → ``62812*****890``."""
    user, at, server = number.partition("@")
    digits = user.strip()
    if len(digits) <= 6:
        masked = "*" * len(digits)
    else:
        keep_start = min(5, len(digits) - 5)
        masked = digits[:keep_start] + "*" * (len(digits) - keep_start - 3) + digits[-3:]
    return masked + (at + server if at else "")
