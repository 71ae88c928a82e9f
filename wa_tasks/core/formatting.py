"""Indonesian formatting of what billing messages carry: rupiah amounts, dates and remaining time.

Templates use these as filters (``{{ amount|rupiah }}``) or functions (``{{ rupiah(amount) }}``):

==============  ============================================  ==================================
template name   input                                         output
==============  ============================================  ==================================
``rupiah``      150000, ``"150000"``, ``"150.000"``, Decimal   ``Rp150.000`` (``Rp1.500,50``)
``tanggal``     date, datetime, ISO or ``dd-mm-yyyy`` string   ``9 Januari 2025``
``tanggal_jam`` datetime or ISO string                         ``9 Januari 2025 17.30 WIB``
``sisa_waktu``  timedelta, seconds, or an end datetime         ``3 hari``, ``5 jam``, ``2 hari 5 jam``
``durasi``      the same as ``sisa_waktu``, for durations      ``30 hari``
==============  ============================================  ==================================

Aware datetimes are shown in Western Indonesian Time (WIB, UTC+7) unless another Indonesian zone
(``WITA``, ``WIT``) is asked for; naive datetimes are taken as already being local time. Indonesia has
no daylight saving time, so fixed offsets are exact and no time zone database is needed.

A string that is not a date (``"30 November 2026"``) is shown as given by the date and time helpers,
so data that billing code already wrote out in words still works; amounts are never guessed: a
value that is not a number is an error (:class:`FormattingError`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

#: Month names, January first.
MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)

#: Indonesia's three time zones (no daylight saving time).
ZONES = {
    "WIB": dt.timezone(dt.timedelta(hours=7), "WIB"),
    "WITA": dt.timezone(dt.timedelta(hours=8), "WITA"),
    "WIT": dt.timezone(dt.timedelta(hours=9), "WIT"),
}
DEFAULT_ZONE = "WIB"

_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?")  # 150.000 or 1.500,50 (Indonesian)
_COMMA_DECIMAL = re.compile(r"\d+,\d{1,2}")  # 1500,50
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # 150000 or 1500.50
_DAY_FIRST = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")  # 09-01-2025, 9/1/2025
_YEAR_FIRST_SLASH = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")  # 2025/01/09


class FormattingError(ValueError):
    """A value could not be formatted (e.g. an amount that is not a number)."""


# Rupiah ---------------------------------------------------------------------------------------


def rupiah(amount: Any) -> str:
    """``150000`` → ``Rp150.000``; sen are shown only when there are any (``Rp1.500,50``).

    Accepts int, Decimal, float, or a string: ``"150000"``, ``"1500.50"``, or Indonesian writing
    ``"150.000"``, ``"Rp 1.500,50"`` (dots group thousands, a comma starts the sen).
    """
    value = _amount(amount)
    with localcontext() as exact:  # enough digits that no amount is rounded to 28 significant ones
        exact.prec = max(28, len(value.as_tuple().digits) + 4)
        cents = int((abs(value) * 100).to_integral_value(rounding=ROUND_HALF_UP))
    whole, fraction = divmod(cents, 100)
    text = f"{whole:,}".replace(",", ".") + (f",{fraction:02d}" if fraction else "")
    return f"{'-' if value < 0 and cents else ''}Rp{text}"


def _amount(amount: Any) -> Decimal:
    if isinstance(amount, bool):
        raise FormattingError(f"rupiah: {amount!r} is not an amount")
    if isinstance(amount, int | Decimal):
        value = Decimal(amount)
    elif isinstance(amount, float):
        value = Decimal(repr(amount))
    elif isinstance(amount, str):
        value = _parse_amount(amount)
    else:
        raise FormattingError(f"rupiah: a {type(amount).__name__} is not an amount; give a number such as 150000")
    if not value.is_finite():
        raise FormattingError(f"rupiah: {amount!r} is not an amount")
    return value


def _parse_amount(raw: str) -> Decimal:
    text = raw.strip()
    sign = ""
    if text.startswith("-"):
        sign, text = "-", text[1:].strip()
    if text[:2].lower() == "rp":
        text = text[2:].strip()
    if _THOUSANDS.fullmatch(text):
        text = text.replace(".", "").replace(",", ".")
    elif _COMMA_DECIMAL.fullmatch(text):
        text = text.replace(",", ".")
    elif not _PLAIN_NUMBER.fullmatch(text):
        raise FormattingError(f"rupiah: {raw!r} is not an amount; give a number such as 150000 or '150.000'")
    try:
        return Decimal(sign + text)
    except InvalidOperation:  # pragma: no cover - the patterns above only let numbers through
        raise FormattingError(f"rupiah: {raw!r} is not an amount") from None


# Dates ----------------------------------------------------------------------------------------


def long_date(value: Any, zone: str = DEFAULT_ZONE) -> str:
    """``2025-01-09`` → ``9 Januari 2025``. A string that is not a date is returned as given."""
    moment = _moment(value, zone, "tanggal")
    if isinstance(moment, str):
        return moment
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def long_datetime(value: Any, zone: str = DEFAULT_ZONE) -> str:
    """``2025-01-09T10:30:00Z`` → ``9 Januari 2025 17.30 WIB`` (a date alone gives the date only)."""
    moment = _moment(value, zone, "tanggal_jam")
    if isinstance(moment, str):
        return moment
    day = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"
    if not isinstance(moment, dt.datetime):
        return day
    label = moment.tzname() if moment.tzinfo is not None else _zone(zone).tzname(None)
    return f"{day} {moment.hour:02d}.{moment.minute:02d} {label}"


def _zone(name: str) -> dt.timezone:
    try:
        return ZONES[name.upper()]
    except (KeyError, AttributeError):
        raise FormattingError(f"unknown time zone {name!r}; use one of {', '.join(ZONES)}") from None


def _moment(value: Any, zone: str, helper: str) -> dt.date | dt.datetime | str:
    """A date, a datetime in ``zone``, or the string itself when it is not a date."""
    if isinstance(value, dt.datetime):
        return value.astimezone(_zone(zone)) if value.tzinfo is not None else value
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        parsed = parse_date(value)
        if parsed is None:
            return value
        return _moment(parsed, zone, helper)
    raise FormattingError(f"{helper}: a {type(value).__name__} is not a date; give a date or an ISO string")


def parse_date(text: str) -> dt.date | dt.datetime | None:
    """An ISO date or datetime (``Z`` allowed), ``dd-mm-yyyy``/``dd/mm/yyyy`` or ``yyyy/mm/dd``; else None."""
    text = text.strip()
    try:
        if len(text) == 10 and text[4] == "-":
            return dt.date.fromisoformat(text)
        if len(text) > 10 and text[4] == "-" and text[10] in "T ":
            return dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    found = _DAY_FIRST.fullmatch(text)
    day_month_year = (int(found[1]), int(found[2]), int(found[3])) if found else None
    if day_month_year is None and (found := _YEAR_FIRST_SLASH.fullmatch(text)):
        day_month_year = (int(found[3]), int(found[2]), int(found[1]))
    if day_month_year is None:
        return None
    day, month, year = day_month_year
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


# Remaining time -------------------------------------------------------------------------------


def remaining_time(value: Any, *, now: dt.datetime | None = None) -> str:
    """How long until something ends: ``3 hari``, ``5 jam``, ``2 hari 5 jam``, ``45 menit``.

    ``value``: a timedelta, seconds (int, float or a numeric string), or the end as a datetime, a
    date (its midnight, WIB) or an ISO string; ``now`` defaults to the current time. A string that
    is neither (``"3 hari"``) is returned as given. The two largest units are shown, to the minute.
    """
    seconds = _seconds(value, now)
    if isinstance(seconds, str):
        return seconds
    if seconds <= 0:
        return "0 menit"
    minutes = round(seconds / 60)
    if minutes == 0:
        return "kurang dari 1 menit"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} hari" + (f" {hours} jam" if hours else "")
    if hours:
        return f"{hours} jam" + (f" {minutes} menit" if minutes else "")
    return f"{minutes} menit"


def _seconds(value: Any, now: dt.datetime | None) -> float | str:
    if isinstance(value, bool):
        raise FormattingError(f"sisa_waktu: {value!r} is not a time span")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _PLAIN_NUMBER.fullmatch(text):
            return float(text)
        parsed = parse_date(text)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, dt.date):
        end = value if isinstance(value, dt.datetime) else dt.datetime(value.year, value.month, value.day)
        if end.tzinfo is None:
            end = end.replace(tzinfo=ZONES[DEFAULT_ZONE])
        current = now or dt.datetime.now(dt.UTC)
        if current.tzinfo is None:
            current = current.replace(tzinfo=ZONES[DEFAULT_ZONE])
        return (end - current).total_seconds()
    raise FormattingError(
        f"sisa_waktu: a {type(value).__name__} is not a time span; give a timedelta, seconds or an end datetime"
    )


#: What templates can call, by the name they use (filters and functions alike).
HELPERS: dict[str, Callable[..., str]] = {
    "rupiah": rupiah,
    "tanggal": long_date,
    "tanggal_jam": long_datetime,
    "sisa_waktu": remaining_time,
    "durasi": remaining_time,
}
