"""Send windows: the hours of the day at which a message of a template category may go out.

A reminder at 2 a.m. is what customers complain about, so each *window class* has hours, in the
installation's zone (``WA_TIMEZONE``, default ``Asia/Jakarta``) or a message's own ``tz``:

===================  ======================================  ====================  =========================
window class         template categories                     default               setting
===================  ======================================  ====================  =========================
``promotion``        ``promotion``                           09:00–20:00           ``WA_WINDOW_PROMOTION``
``reminder``         ``reminder``                            08:00–20:00           ``WA_WINDOW_REMINDER``
``transactional``    ``notification``                        any hour              ``WA_WINDOW_TRANSACTIONAL``
===================  ======================================  ====================  =========================

Template categories are the three of ``wa_tasks/pipeline/compose.py`` (``CATEGORIES``); the
shipped templates (``wa_tasks/core/default_templates.py``) use ``notification`` for what answers
the customer's own act or the state of their service (new invoice, payment confirmation, voucher,
isolir, reactivation) and ``reminder`` for nudges (payment reminder, expiry warning, overdue).

A window is written ``"08:00-20:00"``; several ranges are comma-separated (``"08:00-12:00,13:00-20:00"``),
a range may run past midnight (``"20:00-02:00"``), ``24:00`` ends at midnight, and ``"always"``
means any hour. A template may override its category's window with such a string (``None``: the
category's). Windows are wall-clock times: on a day a zone changes its offset they keep their
local hours (a start inside a skipped hour opens at the first instant after the gap), so the
arithmetic holds for any zone, not only the DST-free Indonesian ones.

Every function takes aware datetimes only: a naive one is refused, since which instant it means
depends on a zone the caller did not say.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from wa_tasks.errors import InvalidSchedule
from wa_tasks.settings import Settings

#: The window classes, in the order the docs list them.
CLASSES = ("promotion", "reminder", "transactional")

#: Template category → window class (categories are ``wa_tasks.pipeline.compose.CATEGORIES``).
CATEGORY_CLASS: Mapping[str, str] = {
    "promotion": "promotion",
    "reminder": "reminder",
    "notification": "transactional",
}

#: The default hours of each class (the defaults of the ``WA_WINDOW_*`` settings).
DEFAULT_WINDOWS: Mapping[str, str] = {
    "promotion": "09:00-20:00",
    "reminder": "08:00-20:00",
    "transactional": "always",
}

#: The installation zone's default (``WA_TIMEZONE``).
DEFAULT_TIMEZONE = "Asia/Jakarta"

#: The Indonesian zone abbreviations operators write, and the IANA zone each means.
ZONE_ALIASES: Mapping[str, str] = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}

ALWAYS = "always"
_DAY = 24 * 3600
_RANGE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def zone(name: object, *, field: str = "tz") -> zoneinfo.ZoneInfo:
    """The time zone named ``name`` (an IANA name such as ``Asia/Makassar``, or ``WIB``/``WITA``/``WIT``)."""
    if isinstance(name, zoneinfo.ZoneInfo):
        return name
    if not isinstance(name, str) or not name.strip():
        raise InvalidSchedule(f"{field} must be a time zone name such as 'Asia/Jakarta', got {name!r}")
    key = ZONE_ALIASES.get(name.strip().upper(), name.strip())
    try:
        return zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(
            f"{field}: unknown time zone {name!r}; use an IANA name such as 'Asia/Jakarta' (WIB), "
            "'Asia/Makassar' (WITA) or 'Asia/Jayapura' (WIT)"
        ) from None


def aware(when: object, *, field: str = "when") -> dt.datetime:
    """``when`` if it is an aware datetime; a naive one (or anything else) is refused."""
    if not isinstance(when, dt.datetime):
        raise InvalidSchedule(f"{field} must be a datetime with a time zone, got {when!r}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidSchedule(
            f"{field} {when.isoformat()!r} has no time zone; give an aware datetime "
            "(e.g. datetime(..., tzinfo=ZoneInfo('Asia/Jakarta')) or with tzinfo=UTC)"
        )
    return when


@dataclass(frozen=True)
class Window:
    """Hours of the day, as ranges of seconds since local midnight: ``[start, end)``; a range with
    ``end <= start`` runs past midnight. No ranges: any hour."""

    ranges: tuple[tuple[int, int], ...] = ()
    text: str = ALWAYS

    @property
    def always(self) -> bool:
        return not self.ranges

    def is_open(self, when: dt.datetime, tz: object) -> bool:
        """Whether ``when`` falls inside the window, on the wall clock of ``tz``."""
        when = aware(when)
        if self.always:
            return True
        local = when.astimezone(zone(tz))
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return any(_contains(r, second) for r in self.ranges)

    def next_opening(self, when: dt.datetime, tz: object) -> dt.datetime:
        """The earliest instant at or after ``when`` inside the window: ``when`` itself when the
        window is open, else the next start of a range (an aware datetime in ``tz``)."""
        when = aware(when)
        if self.is_open(when, tz):
            return when
        zone_ = zone(tz)
        day = when.astimezone(zone_).date()
        starts = sorted(
            _at(day + dt.timedelta(days=offset), start, zone_) for offset in (0, 1, 2) for start, _ in self.ranges
        )
        for start in starts:
            if start >= when and self.is_open(start, zone_):
                return start
        # A window whose every start falls into skipped hours for two days running: not a real zone.
        raise InvalidSchedule(f"send window {self.text!r} does not open in the two days after {when.isoformat()}")

    def next_closing(self, when: dt.datetime, tz: object) -> dt.datetime | None:
        """When the window that is open at ``when`` closes (None: it never does, or it is closed now).
        A send that runs past it waits for :meth:`next_opening`."""
        when = aware(when)
        if self.always or not self.is_open(when, tz):
            return None
        zone_ = zone(tz)
        day = when.astimezone(zone_).date()
        ends = sorted(
            _at(day + dt.timedelta(days=offset), end, zone_) for offset in (0, 1, 2) for _, end in self.ranges
        )
        for end in ends:
            if end > when and not self.is_open(end, zone_):
                return end
        return None  # ranges that together cover every hour


def _contains(span: tuple[int, int], second: float) -> bool:
    start, end = span
    if start < end:
        return start <= second < end
    return second >= start or second < end


def _at(day: dt.date, second: int, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant of ``second`` after midnight on ``day`` in ``tz`` (``24:00`` is the next midnight).
    A local time skipped by a change of offset is taken at the offset before it (``fold=0``), which
    lands just after the gap; a repeated one is its first occurrence."""
    day_ = day + dt.timedelta(days=second // _DAY)
    rest = second % _DAY
    local = dt.datetime(day_.year, day_.month, day_.day, rest // 3600, rest % 3600 // 60, tzinfo=tz)
    # Round-trip through UTC so a skipped wall time becomes the real instant it names.
    return local.astimezone(dt.UTC).astimezone(tz)


def parse_window(text: object, *, field: str = "window") -> Window:
    """A window from ``"08:00-20:00"`` (ranges comma-separated) or ``"always"``."""
    if isinstance(text, Window):
        return text
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchedule(f"{field} must be hours such as '08:00-20:00' or 'always', got {text!r}")
    if text.strip().lower() in (ALWAYS, "any", "24h"):
        return Window()
    ranges = []
    for part in text.split(","):
        match = _RANGE.fullmatch(part)
        if not match:
            raise InvalidSchedule(
                f"{field}: cannot read {part.strip()!r} of {text!r} as hours; write 'HH:MM-HH:MM' "
                "(e.g. '08:00-20:00', ranges comma-separated) or 'always'"
            )
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise InvalidSchedule(f"{field}: {part.strip()!r} of {text!r} is not a time of day (00:00 to 24:00)")
        start, end = h1 * 3600 + m1 * 60, h2 * 3600 + m2 * 60
        if start == end:
            raise InvalidSchedule(
                f"{field}: {part.strip()!r} of {text!r} starts where it ends; write 'always' for any hour"
            )
        ranges.append((start, end if end < _DAY else _DAY))
    if len(ranges) == 1 and ranges[0] == (0, _DAY):
        return Window(text=text.strip())
    return Window(tuple(sorted(ranges)), text=text.strip())


def window_class(category: object) -> str:
    """The window class of a template category (``notification`` → ``transactional``)."""
    if isinstance(category, str) and category in CATEGORY_CLASS:
        return CATEGORY_CLASS[category]
    raise InvalidSchedule(
        f"unknown template category {category!r}; use one of {', '.join(CATEGORY_CLASS)} "
        f"(window classes: {', '.join(f'{k} → {v}' for k, v in CATEGORY_CLASS.items())})"
    )


@dataclass(frozen=True)
class Windows:
    """The installation's windows, one per class, and its zone."""

    promotion: Window
    reminder: Window
    transactional: Window
    timezone: zoneinfo.ZoneInfo

    @classmethod
    def of(
        cls,
        *,
        promotion: str = DEFAULT_WINDOWS["promotion"],
        reminder: str = DEFAULT_WINDOWS["reminder"],
        transactional: str = DEFAULT_WINDOWS["transactional"],
        timezone: str = DEFAULT_TIMEZONE,
    ) -> Windows:
        return cls(
            promotion=parse_window(promotion, field="WA_WINDOW_PROMOTION"),
            reminder=parse_window(reminder, field="WA_WINDOW_REMINDER"),
            transactional=parse_window(transactional, field="WA_WINDOW_TRANSACTIONAL"),
            timezone=zone(timezone, field="WA_TIMEZONE"),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Windows:
        """The windows of a :class:`wa_tasks.settings.Settings` (``WA_TIMEZONE``, ``WA_WINDOW_*``)."""
        return cls.of(
            promotion=settings.window_promotion,
            reminder=settings.window_reminder,
            transactional=settings.window_transactional,
            timezone=settings.timezone,
        )

    def for_category(self, category: str, override: str | None = None) -> Window:
        """The window of a template: its own ``override`` when it has one, else its category's."""
        if override is not None:
            return parse_window(override, field="template window")
        window: Window = getattr(self, window_class(category))
        return window

    def zone_of(self, tz: object | None = None) -> zoneinfo.ZoneInfo:
        """A message's zone: its own ``tz`` when given, else the installation's."""
        return self.timezone if tz is None else zone(tz)


def is_open(
    category: str, when: dt.datetime, *, windows: Windows, tz: object | None = None, override: str | None = None
) -> bool:
    """Whether a message of ``category`` may go out at ``when`` (in ``tz``, default the installation's)."""
    return windows.for_category(category, override).is_open(when, windows.zone_of(tz))


def next_opening(
    category: str, when: dt.datetime, *, windows: Windows, tz: object | None = None, override: str | None = None
) -> dt.datetime:
    """The earliest instant at or after ``when`` at which a message of ``category`` may go out."""
    return windows.for_category(category, override).next_opening(when, windows.zone_of(tz))
