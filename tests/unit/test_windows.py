"""Send windows: parsing, open/closed, the next opening and closing, on a fixed clock, in DST-free
Indonesian zones and in a zone that changes its offset."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from wa_tasks.core import windows
from wa_tasks.core.windows import Window, Windows, parse_window
from wa_tasks.errors import InvalidRequest, InvalidSchedule
from wa_tasks.settings import Settings

WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
WIT = ZoneInfo("Asia/Jayapura")
NEW_YORK = ZoneInfo("America/New_York")


def wib(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=WIB)


def test_defaults_match_the_settings() -> None:
    settings = Settings()
    assert settings.timezone == windows.DEFAULT_TIMEZONE == "Asia/Jakarta"
    assert settings.window_promotion == windows.DEFAULT_WINDOWS["promotion"] == "09:00-20:00"
    assert settings.window_reminder == windows.DEFAULT_WINDOWS["reminder"] == "08:00-20:00"
    assert settings.window_transactional == windows.DEFAULT_WINDOWS["transactional"] == "always"
    installed = Windows.from_settings(settings)
    assert installed == Windows.of()
    assert installed.timezone == WIB


def test_every_template_category_has_a_window_class() -> None:
    from wa_tasks.pipeline.compose import CATEGORIES

    assert set(windows.CATEGORY_CLASS) == set(CATEGORIES)
    assert set(windows.CATEGORY_CLASS.values()) == set(windows.CLASSES) == set(windows.DEFAULT_WINDOWS)
    assert windows.window_class("notification") == "transactional"
    with pytest.raises(InvalidSchedule, match="'marketing'"):
        windows.window_class("marketing")


def test_shipped_templates_fall_into_the_documented_classes() -> None:
    from wa_tasks.core.default_templates import DEFAULTS

    classes = {name: windows.window_class(t.category) for name, t in DEFAULTS.items()}
    assert classes["payment_confirmation"] == classes["voucher_activated"] == "transactional"
    assert classes["payment_reminder"] == classes["expiry_warning"] == "reminder"


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("08:00-20:00", ((8 * 3600, 20 * 3600),)),
        (" 8:30 - 21:15 ", ((8 * 3600 + 1800, 21 * 3600 + 900),)),
        ("13:00-20:00,08:00-12:00", ((8 * 3600, 12 * 3600), (13 * 3600, 20 * 3600))),
        ("20:00-02:00", ((20 * 3600, 2 * 3600),)),
        ("18:00-24:00", ((18 * 3600, 24 * 3600),)),
        ("always", ()),
        ("ALWAYS", ()),
        ("00:00-24:00", ()),
    ],
)
def test_parse_window(text: str, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_window(text).ranges == ranges


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("8-20", "'8-20'"),
        ("08:00", "'08:00'"),
        ("25:00-26:00", "'25:00-26:00'"),
        ("08:60-20:00", "'08:60-20:00'"),
        ("08:00-24:30", "'08:00-24:30'"),
        ("08:00-08:00", "starts where it ends"),
        ("08:00-20:00,", "''"),
        ("", "''"),
        (None, "None"),
        (800, "800"),
    ],
)
def test_bad_windows_are_refused_quoting_the_input(text: object, quoted: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_window(text, field="WA_WINDOW_REMINDER")
    assert quoted in str(caught.value)
    assert "WA_WINDOW_REMINDER" in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)


def test_zones_by_name_and_indonesian_abbreviation() -> None:
    assert windows.zone("Asia/Makassar") == WITA
    assert windows.zone("WIB") == WIB
    assert windows.zone("wita") == WITA
    assert windows.zone("WIT") == WIT
    assert windows.zone(WIT) is WIT


@pytest.mark.parametrize("name", ["Asia/Bandung", "asia/jakarta", "Asia", "../etc/passwd", "", " ", None, 7])
def test_unknown_zones_are_refused_quoting_the_input(name: object) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        windows.zone(name)
    assert repr(name) in str(caught.value)
    assert str(caught.value).startswith("tz")


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2026, 12, 2, 9, 0)
    window = parse_window("08:00-20:00")
    for call in (window.is_open, window.next_opening, window.next_closing):
        with pytest.raises(InvalidSchedule, match=r"'2026-12-02T09:00:00' has no time zone"):
            call(naive, WIB)
    with pytest.raises(InvalidSchedule, match="must be a datetime"):
        window.is_open("2026-12-02 09:00", WIB)  # type: ignore[arg-type]


def test_open_and_closed_on_the_wall_clock() -> None:
    reminders = parse_window("08:00-20:00")
    assert not reminders.is_open(wib(2, 7, 59), WIB)
    assert reminders.is_open(wib(2, 8, 0), WIB)
    assert reminders.is_open(wib(2, 19, 59), WIB)
    assert not reminders.is_open(wib(2, 20, 0), WIB)  # the end is not in the window
    # 07:30 WIB is 08:30 WITA and 09:30 WIT: the customer's zone decides.
    assert reminders.is_open(wib(2, 7, 30), WITA)
    # The same instant given in UTC.
    assert not reminders.is_open(dt.datetime(2026, 12, 2, 0, 30, tzinfo=dt.UTC), WIB)
    assert parse_window("always").is_open(wib(2, 2, 0), WIB)


def test_next_opening_is_the_instant_itself_when_open() -> None:
    when = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)  # 10:00 WIB
    assert parse_window("08:00-20:00").next_opening(when, WIB) is when


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (wib(2, 2, 0), wib(2, 8, 0)),  # night: this morning
        (wib(2, 20, 0), wib(3, 8, 0)),  # closed at 20:00: tomorrow
        (wib(2, 23, 59), wib(3, 8, 0)),
        (wib(31, 21, 0), dt.datetime(2027, 1, 1, 8, 0, tzinfo=WIB)),  # across a year
    ],
)
def test_next_opening_of_a_closed_window(now: dt.datetime, expected: dt.datetime) -> None:
    opening = parse_window("08:00-20:00").next_opening(now, WIB)
    assert opening == expected
    assert opening.tzinfo == WIB


def test_next_opening_in_the_customers_zone() -> None:
    # 22:00 WIB = 00:00 WIT next day; the reminder opens at 08:00 WIT = 06:00 WIB.
    assert parse_window("08:00-20:00").next_opening(wib(2, 22, 0), WIT) == wib(3, 6, 0)


def test_next_opening_of_several_ranges_and_one_past_midnight() -> None:
    split = parse_window("08:00-12:00,13:00-20:00")
    assert split.next_opening(wib(2, 12, 30), WIB) == wib(2, 13, 0)
    assert split.next_opening(wib(2, 21, 0), WIB) == wib(3, 8, 0)
    night = parse_window("20:00-02:00")
    assert night.is_open(wib(3, 1, 0), WIB)
    assert night.next_opening(wib(3, 2, 0), WIB) == wib(3, 20, 0)


def test_next_closing() -> None:
    reminders = parse_window("08:00-20:00")
    assert reminders.next_closing(wib(2, 19, 0), WIB) == wib(2, 20, 0)
    assert reminders.next_closing(wib(2, 21, 0), WIB) is None  # closed already
    assert parse_window("always").next_closing(wib(2, 21, 0), WIB) is None
    assert parse_window("08:00-12:00,12:00-20:00").next_closing(wib(2, 9, 0), WIB) == wib(2, 20, 0)
    assert parse_window("20:00-02:00").next_closing(wib(2, 23, 0), WIB) == wib(3, 2, 0)
    assert parse_window("18:00-24:00").next_closing(wib(2, 23, 0), WIB) == wib(3, 0, 0)


def test_a_zone_that_skips_an_hour() -> None:
    # New York springs forward on 2026-03-08: 02:00 EST is 03:00 EDT; 02:30 does not exist.
    window = parse_window("02:30-05:00")
    before = dt.datetime(2026, 3, 8, 1, 0, tzinfo=NEW_YORK)
    opening = window.next_opening(before, NEW_YORK)
    assert opening.astimezone(dt.UTC) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)  # 03:30 EDT
    assert (opening.hour, opening.minute) == (3, 30)  # shown as the wall time that exists, not 02:30
    assert window.is_open(opening, NEW_YORK)
    # An ordinary 08:00 opening is 08:00 local either side of the change: 13:00 UTC, then 12:00 UTC.
    reminders = parse_window("08:00-20:00")
    saturday = reminders.next_opening(dt.datetime(2026, 3, 7, 21, 0, tzinfo=NEW_YORK), NEW_YORK)
    sunday = reminders.next_opening(dt.datetime(2026, 3, 8, 21, 0, tzinfo=NEW_YORK), NEW_YORK)
    assert saturday.astimezone(dt.UTC).hour == 12  # Sunday 08:00 EDT
    assert sunday.astimezone(dt.UTC).hour == 12
    assert (
        reminders.next_opening(dt.datetime(2026, 3, 6, 21, 0, tzinfo=NEW_YORK), NEW_YORK).astimezone(dt.UTC).hour == 13
    )  # Saturday 08:00 EST


def test_a_zone_that_repeats_an_hour() -> None:
    # New York falls back on 2026-11-01: 01:00-02:00 happens twice; the window opens at the first.
    window = parse_window("01:30-03:00")
    opening = window.next_opening(dt.datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK), NEW_YORK)
    assert opening.astimezone(dt.UTC) == dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)  # 01:30 EDT


def test_category_helpers_use_the_template_override_and_the_message_zone() -> None:
    installed = Windows.of()
    night = wib(2, 22, 0)
    assert windows.is_open("notification", night, windows=installed)
    assert not windows.is_open("reminder", night, windows=installed)
    assert windows.next_opening("reminder", night, windows=installed) == wib(3, 8, 0)
    assert windows.next_opening("promotion", night, windows=installed) == wib(3, 9, 0)
    assert windows.next_opening("reminder", night, windows=installed, override="21:00-23:00") is night
    assert windows.next_opening("reminder", night, windows=installed, override="always") is night
    assert windows.next_opening("reminder", night, windows=installed, tz="WIT") == wib(3, 6, 0)
    configured = Windows.of(reminder="09:00-17:00", timezone="Asia/Makassar")
    assert windows.next_opening("reminder", night, windows=configured) == wib(3, 8, 0)  # 09:00 WITA
    with pytest.raises(InvalidSchedule, match="template window: cannot read 'nine'"):
        windows.next_opening("reminder", night, windows=installed, override="nine")


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(InvalidSchedule, match="WA_TIMEZONE: unknown time zone 'Jakarta'"):
        Windows.from_settings(Settings(timezone="Jakarta"))
    with pytest.raises(InvalidSchedule, match="WA_WINDOW_PROMOTION"):
        Windows.from_settings(Settings(window_promotion="9-5"))


def test_window_value_object() -> None:
    assert Window().always
    assert parse_window(Window()) == Window()
