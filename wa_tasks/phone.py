"""Phone numbers and WhatsApp JIDs: every way a customer's number is written, normalised with ``phonenumbers``.

``0812-3456-7890``, ``+62 812 3456 7890``, ``6281234567890`` and ``6281234567890@s.whatsapp.net``
all mean the recipient ``6281234567890`` (default region Indonesia).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def normalize(raw: object, region: str = "ID") -> Recipient:
    """Parse ``raw`` as a phone number or a user JID; raise :class:`InvalidPhoneNumber` if it is not one."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(f"phone number must be a string, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("phone number is empty")
    if len(text) > 64:
        raise InvalidPhoneNumber("phone number is too long to be one (over 64 characters)")
    if "@" in text:
        user, _, server = text.partition("@")
        if server not in _ACCEPTED_SERVERS:
            raise InvalidPhoneNumber(
                f"{mask(text)} is not a personal WhatsApp address (server {server!r}); "
                f"expected a number or NUMBER@{USER_SERVER}"
            )
        # A JID's user part is the full international number; a device suffix (":12") is dropped.
        text = "+" + user.split(":", 1)[0].split(".", 1)[0]
    elif text.isdigit() and not text.startswith("0") and not _valid_in_region(text, region):
        # "6281234567890": international digits without "+".
        text = "+" + text
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{mask(text)} is not a phone number: {exc._msg}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(
            f"{mask(text)} is not a valid phone number (region {region}); "
            "write it as 0812-3456-7890, +62 812 3456 7890 or 6281234567890"
        )
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return Recipient(number=e164.lstrip("+"))


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
