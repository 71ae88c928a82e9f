"""Reminder ladders: the notices an invoice gets around its due date, as pure arithmetic.

A ladder is a list of steps counted in days from the due date, written as Indonesian billing
writes them (*H* for *hari*): ``H-7``, ``H-3``, ``H-1`` before it, ``H0`` on the day, ``H+1`` after
it. Each step becomes one scheduled message at ``at`` (wall clock of ``tz``) on its day, with a
*notice key* (``invoice:INV-7:reminder:H-3``) that makes it at most one message however often
billing's daily cron asks for the ladder: the key names the invoice and the step, not the date, so
a moved due date moves the step instead of adding one.

Which template a step sends (``templates`` overrides any of them, by kind or by step):

========  ===========  ======================
step      kind         template
========  ===========  ======================
``H-x``   ``reminder`` ``payment_reminder``
``H0``    ``due``      ``due_today_reminder``
``H+x``   ``overdue``  ``overdue_reminder``
========  ===========  ======================

The send window (``wa_tasks/core/windows.py``) still applies when the step is sent: a step at
07:00 of a reminder waits for 08:00.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wa_tasks.core import windows
from wa_tasks.errors import InvalidSchedule

#: The ladder of ``schedule_reminders`` when the caller gives none.
DEFAULT_LADDER = ("H-3", "H-1", "H0", "H+1")
#: The time of day of every step when the caller gives none.
DEFAULT_AT = "09:00"
#: The longest notice key (the column the pipeline stores it in).
NOTICE_KEY_MAX = 200
#: The farthest a step may be from the due date, in days.
MAX_DAYS = 366

KINDS = ("reminder", "due", "overdue")
#: The template each kind of step sends.
STEP_TEMPLATES: Mapping[str, str] = {
    "reminder": "payment_reminder",
    "due": "due_today_reminder",
    "overdue": "overdue_reminder",
}

_STEP = re.compile(r"H\s*(?:([+-]?)\s*(\d{1,3}))?", re.IGNORECASE)
_TIME = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True, order=True)
class Step:
    """A step of a ladder: ``days`` from the due date (negative: before it)."""

    days: int

    @property
    def label(self) -> str:
        """``H-3``, ``H0``, ``H+1``: how the step is written, and the last part of its notice key."""
        return "H0" if self.days == 0 else f"H{self.days:+d}"

    @property
    def kind(self) -> str:
        """``reminder`` before the due date, ``due`` on it, ``overdue`` after it."""
        return "reminder" if self.days < 0 else "due" if self.days == 0 else "overdue"

    def __str__(self) -> str:
        return self.label


def parse_step(text: object) -> Step:
    """A step from ``"H-3"``, ``"H0"``, ``"H+1"`` (any case; ``H-0`` is ``H0``)."""
    if isinstance(text, Step):
        return text
    match = _STEP.fullmatch(text.strip()) if isinstance(text, str) else None
    # ``H3`` without a sign could mean either side of the due date: only ``H0`` may go without one.
    if match is None or (not match[1] and match[2] and int(match[2]) != 0):
        raise InvalidSchedule(
            f"ladder step {text!r} does not parse; write days from the due date as 'H-3' (3 days before), "
            "'H0' (the due date) or 'H+1' (1 day after)"
        )
    sign, digits = match.groups()
    days = 0 if digits is None else int(digits) * (-1 if sign == "-" else 1)
    if abs(days) > MAX_DAYS:
        raise InvalidSchedule(f"ladder step {text!r} is more than {MAX_DAYS} days from the due date")
    return Step(days)


def parse_ladder(steps: object) -> tuple[Step, ...]:
    """The steps of a ladder, in time order, from a sequence of steps or one comma-separated string."""
    if isinstance(steps, str):
        items: list[object] = [s for s in steps.split(",")]
    elif isinstance(steps, Iterable) and not isinstance(steps, Mapping | bytes):
        items = list(steps)
    else:
        raise InvalidSchedule(f"ladder must be a list of steps such as ['H-3', 'H-1', 'H0', 'H+1'], got {steps!r}")
    if not items:
        raise InvalidSchedule("ladder has no steps; give some, such as ['H-3', 'H-1', 'H0', 'H+1']")
    parsed: dict[Step, object] = {}
    for item in items:
        step = parse_step(item)
        if step in parsed:
            raise InvalidSchedule(f"ladder step {item!r} repeats {parsed[step]!r} (both are {step.label})")
        parsed[step] = item
    return tuple(sorted(parsed))


def parse_time_of_day(text: object, *, field: str = "at") -> dt.time:
    """``"09:00"`` (or a :class:`datetime.time`) as a time of day."""
    if isinstance(text, dt.time):
        if text.tzinfo is not None:
            raise InvalidSchedule(f"{field} is a wall-clock time in the zone of tz; give it without tzinfo, got {text}")
        return text
    match = _TIME.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise InvalidSchedule(f"{field} must be a time of day 'HH:MM' such as '09:00', got {text!r}")
    return dt.time(int(match[1]), int(match[2]))


def parse_due_date(value: object, tz: object, *, field: str = "due_date") -> dt.date:
    """A due date from a date, an ISO date ``"2026-12-10"``, or an aware datetime (its date in ``tz``)."""
    if isinstance(value, dt.datetime):
        return windows.aware(value, field=field).astimezone(windows.zone(tz)).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InvalidSchedule(f"{field} must be a date such as '2026-12-10', got {value!r}")


def notice_key(invoice_number: object, kind: str, step: Step | str | None = None) -> str:
    """The notice key of an invoice's notice: ``invoice:INV-7:reminder:H-3``, ``invoice:INV-7:isolir``.
    Ladder steps all use the kind ``reminder``, so one key per invoice and step whatever the template."""
    if not isinstance(invoice_number, str) or not invoice_number.strip() or invoice_number != invoice_number.strip():
        raise InvalidSchedule(
            f"invoice_number must be a non-empty string without surrounding spaces, got {invoice_number!r}"
        )
    parts = ["invoice", invoice_number, kind]
    if step is not None:
        parts.append(parse_step(step).label)
    return check_notice_key(":".join(parts))


def check_notice_key(key: object, *, field: str = "notice_key") -> str:
    """``key`` if it can be a notice key: a non-empty printable string of at most 200 characters."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidSchedule(f"{field} must be a non-empty string such as 'invoice:INV-7:reminder:H-3', got {key!r}")
    if len(key) > NOTICE_KEY_MAX:
        raise InvalidSchedule(
            f"{field} is {len(key)} characters, more than {NOTICE_KEY_MAX}: {key[:40]!r}... "
            "(shorten the invoice number)"
        )
    if not key.isprintable() or key != key.strip():
        raise InvalidSchedule(f"{field} must be printable, without surrounding spaces, got {key!r}")
    return key


@dataclass(frozen=True)
class PlannedStep:
    """One step of a ladder as a message to schedule."""

    step: Step
    send_at: dt.datetime
    notice_key: str
    template: str


def templates_for(templates: Mapping[str, str] | None) -> dict[str, str]:
    """The template of each kind and step: the defaults with ``templates`` over them (keys: a kind
    of :data:`KINDS` or a step such as ``H-7``; the step wins)."""
    chosen: dict[str, str] = dict(STEP_TEMPLATES)
    for key, name in (templates or {}).items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidSchedule(f"templates[{key!r}] must be a template name, got {name!r}")
        if key in KINDS:
            chosen[key] = name
            continue
        try:
            chosen[parse_step(key).label] = name
        except InvalidSchedule:
            raise InvalidSchedule(
                f"templates key {key!r} is neither a kind ({', '.join(KINDS)}) nor a step such as 'H-3'"
            ) from None
    return chosen


def ladder_plan(
    invoice_number: str,
    due_date: dt.date | dt.datetime | str,
    steps: Iterable[str | Step] | str = DEFAULT_LADDER,
    *,
    now: dt.datetime,
    at: str | dt.time = DEFAULT_AT,
    tz: object = windows.DEFAULT_TIMEZONE,
    templates: Mapping[str, str] | None = None,
    grace: dt.timedelta = dt.timedelta(0),
) -> list[PlannedStep]:
    """The messages a ladder sends, in time order: each step at ``at`` on due date + its days, in ``tz``.

    Steps whose time is more than ``grace`` before ``now`` are left out (a ladder created late
    never sends its past steps at once)."""
    now = windows.aware(now, field="now")
    zone = windows.zone(tz)
    due = parse_due_date(due_date, zone)
    time_of_day = parse_time_of_day(at)
    chosen = templates_for(templates)
    plan = []
    for step in parse_ladder(steps):
        day = due + dt.timedelta(days=step.days)
        local = dt.datetime.combine(day, time_of_day, tzinfo=zone)
        # Through UTC so a wall time skipped by a change of offset becomes the instant after the gap.
        send_at = local.astimezone(dt.UTC).astimezone(zone)
        if send_at < now - grace:
            continue
        template = chosen.get(step.label, chosen[step.kind])
        plan.append(PlannedStep(step, send_at, notice_key(invoice_number, "reminder", step), template))
    return plan
