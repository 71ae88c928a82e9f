"""Ban safety: what keeps a WhatsApp number alive, on by default.

WhatsApp restricts numbers that behave like spam (see ``transports.banmodel`` for the model the
tests run against). Before each send the session host asks :func:`decide`:

- a **daily cap that grows with the number's age** (warm-up): a new number sends little, an old
  one more; the day starts at local midnight (WIB by default);
- an **hourly cap**, so a large backlog is spread out rather than sent as "a few hundred messages
  at 2 s spacing";
- a **budget of new contacts per day**, also by age (a young number that messages more than a few
  tens of strangers a day gets error 463);
- after a **463** or a **temporary ban**, the number leaves rotation (its backlog fails over to
  the other numbers) and comes back later at a **reduced rate**.

Pacing jitter and the per-recipient cap live in ``pacing`` and ``limits``. The decision is a pure
function over counters, so the same code runs in the live host (counters in Redis) and in a
simulated billing month (counters in memory).

Switched off (``WA_SAFETY_ENABLED=false``), a session reads and counts nothing per message: its
counters cost two Redis round trips a send, ≈10 % of the host at high rates, for caps that are
not applied. Switched on again, a number's day and hour count from zero and every recipient
counts as new to it. A restriction WhatsApp reports is still recorded (``restricted``): routing
takes the session out of rotation whatever the setting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import redis

from wa_tasks.core import redis_keys

DAY = 86400.0
HOUR = 3600.0


@dataclass(frozen=True)
class SafetyRules:
    """The defaults, and why: a young number gets restricted after ~20-30 messages a day to
    strangers (reports from whatsmeow users), so for its first two weeks it takes at most 12 new
    contacts a day (two of our local days can fall in one of WhatsApp's: 24 stays under 25) and
    starts at 20 sends a day, growing over a month; no number sends more than 100 an hour (a few
    hundred at 2 s spacing is reported to get banned); a restriction takes it out of rotation for
    6 hours and it then sends at half speed for a day."""

    enabled: bool = True
    #: (age in days, sends per day): the last step whose age is reached applies.
    warmup: tuple[tuple[int, int], ...] = ((0, 20), (3, 40), (7, 80), (14, 200), (30, 500))
    #: (age in days, new contacts per day).
    new_contacts: tuple[tuple[int, int], ...] = ((0, 12), (14, 60), (30, 150))
    hourly_cap: int = 100
    #: After a 463: out of rotation this long.
    restriction_pause_seconds: float = 6 * HOUR
    #: After a temporary ban: out of rotation until it ends, plus this.
    ban_margin_seconds: float = 30 * 60
    #: Back in rotation: the pace is multiplied by this for ``slowdown_seconds``.
    slowdown_factor: float = 2.0
    slowdown_seconds: float = DAY
    #: Days start at local midnight: UTC+7 (WIB) by default.
    utc_offset_hours: float = 7.0


def step(schedule: tuple[tuple[int, int], ...], age_days: float) -> int:
    value = schedule[0][1]
    for from_day, amount in schedule:
        if age_days >= from_day:
            value = amount
    return value


def day_index(now: float, rules: SafetyRules) -> int:
    return math.floor((now + rules.utc_offset_hours * HOUR) / DAY)


def next_day_start(now: float, rules: SafetyRules) -> float:
    return (day_index(now, rules) + 1) * DAY - rules.utc_offset_hours * HOUR


@dataclass(frozen=True)
class Counters:
    sent_today: int
    new_today: int
    sent_this_hour: int
    #: Whether the recipient is new to this number (never messaged by it).
    is_new: bool
    paused_until: float = 0.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    #: When to try this session again for such a message (seconds, unix time).
    until: float = 0.0
    #: True when only messages to new contacts are refused (known contacts may still go).
    new_contacts_only: bool = False


#: The decision of switched-off safety (one instance: it is asked for every message).
ALLOWED = Decision(True)


def decide(rules: SafetyRules, age_days: float, c: Counters, now: float) -> Decision:
    """May this number send one more message now?"""
    if not rules.enabled:
        return ALLOWED
    if now < c.paused_until:
        return Decision(False, "out of rotation after a WhatsApp restriction", c.paused_until)
    daily = step(rules.warmup, age_days)
    if c.sent_today >= daily:
        return Decision(
            False, f"daily cap of {daily} reached (number {age_days:.0f} days old)", next_day_start(now, rules)
        )
    if c.sent_this_hour >= rules.hourly_cap:
        return Decision(False, f"hourly cap of {rules.hourly_cap} reached", (math.floor(now / HOUR) + 1) * HOUR)
    budget = step(rules.new_contacts, age_days)
    if c.is_new and c.new_today >= budget:
        return Decision(False, f"new-contact budget of {budget} a day reached", next_day_start(now, rules), True)
    return ALLOWED


class SafetyStore(Protocol):
    def counters(self, session_id: str, number: str, now: float) -> Counters: ...

    def record(self, session_id: str, number: str, now: float, is_new: bool) -> None: ...

    def pause(self, session_id: str, until: float, slow_until: float, reason: str) -> None: ...

    def slow_until(self, session_id: str) -> float: ...


@dataclass
class MemorySafetyStore:
    """Counters in memory (simulations and unit tests)."""

    rules: SafetyRules = field(default_factory=SafetyRules)
    contacts: dict[str, set[str]] = field(default_factory=dict)
    sent: dict[tuple[str, int], int] = field(default_factory=dict)
    new: dict[tuple[str, int], int] = field(default_factory=dict)
    hourly: dict[tuple[str, int], int] = field(default_factory=dict)
    paused: dict[str, tuple[float, float]] = field(default_factory=dict)

    def counters(self, session_id: str, number: str, now: float) -> Counters:
        day, hour = day_index(now, self.rules), math.floor(now / HOUR)
        return Counters(
            sent_today=self.sent.get((session_id, day), 0),
            new_today=self.new.get((session_id, day), 0),
            sent_this_hour=self.hourly.get((session_id, hour), 0),
            is_new=number not in self.contacts.get(session_id, set()),
            paused_until=self.paused.get(session_id, (0.0, 0.0))[0],
        )

    def record(self, session_id: str, number: str, now: float, is_new: bool) -> None:
        day, hour = day_index(now, self.rules), math.floor(now / HOUR)
        self.sent[(session_id, day)] = self.sent.get((session_id, day), 0) + 1
        self.hourly[(session_id, hour)] = self.hourly.get((session_id, hour), 0) + 1
        if is_new:
            self.new[(session_id, day)] = self.new.get((session_id, day), 0) + 1
        self.contacts.setdefault(session_id, set()).add(number)

    def pause(self, session_id: str, until: float, slow_until: float, reason: str) -> None:
        self.paused[session_id] = (until, slow_until)

    def slow_until(self, session_id: str) -> float:
        return self.paused.get(session_id, (0.0, 0.0))[1]


@dataclass
class RedisSafetyStore:
    """Counters in Redis, shared by every host (keys in ``wa_tasks.core.redis_keys``)."""

    client: redis.Redis
    rules: SafetyRules = field(default_factory=SafetyRules)

    def counters(self, session_id: str, number: str, now: float) -> Counters:
        day, hour = day_index(now, self.rules), math.floor(now / HOUR)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(redis_keys.safety_day(session_id, day), "sent", "new")
        pipe.get(redis_keys.safety_hour(session_id, hour))
        pipe.sismember(redis_keys.session_contacts(session_id), number)
        pipe.hget(redis_keys.safety_state(session_id), "paused_until")
        (sent, new), hourly, known, paused = pipe.execute()
        return Counters(
            sent_today=int(sent or 0),
            new_today=int(new or 0),
            sent_this_hour=int(hourly or 0),
            is_new=not known,
            paused_until=float(paused or 0),
        )

    def record(self, session_id: str, number: str, now: float, is_new: bool) -> None:
        day, hour = day_index(now, self.rules), math.floor(now / HOUR)
        day_key, hour_key = redis_keys.safety_day(session_id, day), redis_keys.safety_hour(session_id, hour)
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(day_key, "sent", 1)
        if is_new:
            pipe.hincrby(day_key, "new", 1)
        pipe.expire(day_key, int(2 * DAY))
        pipe.incr(hour_key)
        pipe.expire(hour_key, int(2 * HOUR))
        pipe.sadd(redis_keys.session_contacts(session_id), number)
        pipe.execute()

    def pause(self, session_id: str, until: float, slow_until: float, reason: str) -> None:
        self.client.hset(
            redis_keys.safety_state(session_id),
            mapping={"paused_until": until, "slow_until": slow_until, "reason": reason},
        )

    def slow_until(self, session_id: str) -> float:
        return float(self.client.hget(redis_keys.safety_state(session_id), "slow_until") or 0)

    def knows(self, session_id: str, number: str) -> bool:
        return bool(self.client.sismember(redis_keys.session_contacts(session_id), number))


@dataclass
class SessionSafety:
    """The protections of one session, as the host uses them."""

    session_id: str
    store: SafetyStore
    rules: SafetyRules
    #: When the number was linked (unix time): its age drives the warm-up.
    number_since: float
    clock: "Clock" = time.time  # noqa: UP037

    def age_days(self, now: float | None = None) -> float:
        return max(0.0, ((self.clock() if now is None else now) - self.number_since) / DAY)

    def check(self, number: str) -> tuple[Decision, bool]:
        """The decision for one message to ``number`` and whether it is a new contact (False when
        safety is off: nothing is looked up)."""
        if not self.rules.enabled:
            return ALLOWED, False
        now = self.clock()
        counters = self.store.counters(self.session_id, number, now)
        return decide(self.rules, self.age_days(now), counters, now), counters.is_new

    def sent(self, number: str, is_new: bool) -> None:
        """Count a send (nothing when safety is off)."""
        if not self.rules.enabled:
            return
        self.store.record(self.session_id, number, self.clock(), is_new)

    def restricted(self, reason: str, until: float | None = None) -> float:
        """WhatsApp restricted or banned the number: out of rotation, then slower. Returns until when."""
        now = self.clock()
        if until is not None:
            pause_end = max(until + self.rules.ban_margin_seconds, now)
        else:
            pause_end = now + self.rules.restriction_pause_seconds
        self.store.pause(self.session_id, pause_end, pause_end + self.rules.slowdown_seconds, reason)
        return pause_end

    def pace_factor(self) -> float:
        """The pace multiplier in force (slower for a while after a restriction)."""
        if not self.rules.enabled:
            return 1.0
        return self.rules.slowdown_factor if self.clock() < self.store.slow_until(self.session_id) else 1.0


class Clock(Protocol):
    def __call__(self) -> float: ...
