"""How the simulated network restricts a number, modelled on what users of other WhatsApp gateways
report about WhatsApp's anti-spam:

- a young number that messages more than a few tens of strangers a day is restricted: WhatsApp
  answers ``server returned error 463`` for new contacts, for a day or more;
- a few hundred messages in a short time (even spaced at 2 s) earn a temporary ban;
- parallel bursts (many sends within seconds) earn a temporary ban;
- the same text to many recipients earns a temporary ban (``SENT_TOO_MANY_SAME_MESSAGE``);
- sends at machine-exact intervals look automated and count as a burst.

Trust is per contact: a number's contacts are the people it sent to or heard from; anyone else is
new to it, even when another of the operator's numbers knows them.

The model is pure: every call takes ``now`` (seconds), so tests can run a month on a virtual clock.
It is not WhatsApp's real algorithm (nobody outside knows it); it is a conservative stand-in that
makes wa-tasks' protections testable.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from wa_tasks.core.transports import DAY, BanRules


class Verdict(StrEnum):
    OK = "ok"
    RESTRICTED = "restricted"  #: error 463: the recipient is a new contact and the number is restricted
    BANNED = "banned"  #: temporarily banned: nothing can be sent until it expires


@dataclass
class Device:
    """What the network remembers about one sending number."""

    linked_at: float
    contacts: set[str] = field(default_factory=set)
    sends: deque[float] = field(default_factory=deque)
    new_today: dict[int, int] = field(default_factory=dict)
    texts_today: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    restricted_until: float = 0.0
    banned_until: float = 0.0
    #: What got it restricted or banned last (for reports).
    reason: str = ""

    def heard_from(self, who: str) -> None:
        """``who`` wrote to the number: from now on they are a contact of it, not a stranger
        (WhatsApp trusts per contact, and a customer who wrote first is not a cold contact)."""
        self.contacts.add(who)


@dataclass
class BanModel:
    rules: BanRules = field(default_factory=BanRules)

    def verdict(self, device: Device, now: float, to: str, text: str) -> tuple[Verdict, float]:
        """Decide one send; returns the verdict and, when not OK, until when (seconds)."""
        r = self.rules
        if now < device.banned_until:
            return Verdict.BANNED, device.banned_until
        is_new = to not in device.contacts
        if is_new and now < device.restricted_until:
            return Verdict.RESTRICTED, device.restricted_until
        day = int(now // DAY)
        young = (now - device.linked_at) < r.young_days * DAY
        allowed_new = r.young_new_contacts_per_day if young else r.new_contacts_per_day
        if is_new and device.new_today.get(day, 0) >= allowed_new:
            device.restricted_until = now + r.restriction_seconds
            device.reason = "too many new contacts in a day"
            return Verdict.RESTRICTED, device.restricted_until

        # The send goes through; then the patterns it completes are judged.
        device.sends.append(now)
        while device.sends and device.sends[0] < now - max(r.volume_seconds, r.burst_seconds, 3600.0):
            device.sends.popleft()
        if day not in device.new_today:  # a new day: forget the old days' counters
            device.new_today = {day: 0}
            device.texts_today = {k: v for k, v in device.texts_today.items() if k[0] == day}
        if is_new:
            device.new_today[day] = device.new_today.get(day, 0) + 1
            device.contacts.add(to)
        same = device.texts_today.setdefault((day, text), set())
        same.add(to)
        reason = self._ban_reason(device, now, len(same))
        if reason:
            device.banned_until = now + r.ban_seconds
            device.reason = reason
        return Verdict.OK, 0.0

    def _ban_reason(self, device: Device, now: float, same_text: int) -> str:
        r = self.rules
        sends = device.sends
        if sum(1 for t in sends if t > now - r.burst_seconds) > r.burst_sends:
            return "burst of sends"
        if sum(1 for t in sends if t > now - r.volume_seconds) > r.volume_sends:
            return "too many messages in a short time"
        if same_text > r.same_text_recipients:
            return "the same text to many recipients"
        if len(sends) > r.regular_gaps:
            recent = list(sends)[-(r.regular_gaps + 1) :]
            gaps = [b - a for a, b in zip(recent, recent[1:], strict=False)]
            mean = statistics.fmean(gaps)
            if mean > 0 and all(abs(g - mean) <= 0.02 * mean for g in gaps):
                return "machine-regular sending"
        return ""
