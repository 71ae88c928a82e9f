"""wa_tasks.pipeline.schedule.check: a send's timing, notice key, ref and time zone, validated with a
fixed clock; each bad input is an error naming its field."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from wa_tasks.errors import InvalidRequest, InvalidSchedule
from wa_tasks.pipeline.schedule import check

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
WIB = ZoneInfo("Asia/Jakarta")


def test_a_later_send_at_is_kept_in_utc_and_a_time_within_the_grace_sends_at_once():
    later = dt.datetime(2026, 12, 3, 9, 0, tzinfo=WIB)

    assert check(send_at=later, now=NOW).send_at == dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    assert check(send_at=NOW - dt.timedelta(seconds=30), grace_seconds=60, now=NOW).send_at is None
    assert check(send_at=NOW, now=NOW).send_at is None
    assert not check(now=NOW).scheduled


def test_iso_strings_with_an_offset_and_unix_times_are_accepted():
    timing = check(send_at="2026-12-03T09:00:00+07:00", expires_at=NOW.timestamp() + 86400 * 2, now=NOW)

    assert timing.send_at == dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)
    assert timing.expires_at == NOW + dt.timedelta(days=2)
    assert check(send_at="2026-12-03T02:00:00Z", now=NOW).send_at == dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"send_at": dt.datetime(2026, 12, 3, 9, 0)}, "send_at is a naive datetime (2026-12-03T09:00:00)"),
        ({"send_at": "2026-12-03T09:00:00"}, "send_at is a naive datetime"),
        ({"expires_at": dt.datetime(2026, 12, 3, 9, 0)}, "expires_at is a naive datetime"),
        ({"send_at": "tomorrow"}, "send_at must be an ISO 8601 time"),
        ({"send_at": True}, "send_at must be a datetime"),
        ({"send_at": NOW - dt.timedelta(hours=1)}, "send_at 2026-12-02T09:00:00+00:00 is in the past"),
        (
            {"send_at": NOW + dt.timedelta(hours=2), "expires_at": NOW + dt.timedelta(hours=1)},
            "expires_at 2026-12-02T11:00:00+00:00 is not after send_at",
        ),
        ({"expires_at": NOW - dt.timedelta(minutes=1)}, "expires_at 2026-12-02T09:59:00+00:00 is not after now"),
        ({"tz": "Asia/Bandung"}, "tz: unknown time zone 'Asia/Bandung'"),
        ({"tz": ""}, "tz must be a time zone name"),
        ({"notice_key": "k" * 201}, "notice_key is 201 characters; the limit is 200"),
        ({"notice_key": ""}, "notice_key must be a non-empty string"),
        ({"ref": 7}, "ref must be a non-empty string, got 7"),
        ({"ref": "INV\x007"}, "ref contains a NUL character"),
    ],
)
def test_bad_timing_is_an_error_naming_the_field(kwargs: dict[str, object], named: str):
    with pytest.raises(InvalidSchedule) as caught:
        check(now=NOW, **kwargs)  # type: ignore[arg-type]

    assert named in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)  # a ValueError: refused, nothing stored


def test_a_notice_key_of_200_characters_and_known_zones_pass():
    timing = check(notice_key="k" * 200, ref="INV-7", tz="Asia/Jayapura", now=NOW)

    assert (timing.notice_key, timing.ref, timing.tz) == ("k" * 200, "INV-7", "Asia/Jayapura")


def test_the_send_window_holds_reminders_and_promotions_outside_their_hours_but_never_urgent_ones():
    from wa_tasks.pipeline.schedule import window_hold
    from wa_tasks.settings import Settings

    settings = Settings(timezone="Asia/Jakarta", window_reminder="08:00-20:00", window_promotion="09:00-20:00")
    night = dt.datetime(2026, 12, 2, 21, 30, tzinfo=WIB)
    morning = dt.datetime(2026, 12, 3, 8, 0, tzinfo=WIB)

    assert window_hold(settings, "reminder", None, 5, night) == morning
    assert window_hold(settings, "promotion", None, 5, night) == morning + dt.timedelta(hours=1)
    assert window_hold(settings, "reminder", None, 0, night) is None  # urgent: never held
    assert window_hold(settings, "notification", None, 5, night) is None  # transactional: any hour
    assert window_hold(settings, None, None, 5, night) is None  # a plain text
    assert window_hold(settings, "reminder", None, 5, morning) is None
    # A customer in WIT (two hours ahead): 21:30 WIB is 23:30 there; its 08:00 is 06:00 WIB
    assert window_hold(settings, "reminder", "Asia/Jayapura", 5, night) == dt.datetime(2026, 12, 3, 6, 0, tzinfo=WIB)


def test_a_templates_own_window_comes_before_its_categorys():
    from wa_tasks.pipeline.schedule import window_hold
    from wa_tasks.settings import Settings

    settings = Settings(timezone="Asia/Jakarta", window_reminder="08:00-20:00", window_transactional="always")
    night = dt.datetime(2026, 12, 2, 21, 30, tzinfo=WIB)
    noon = dt.datetime(2026, 12, 3, 12, 0, tzinfo=WIB)

    # A reminder template that may go at night too: not held where its category would hold it
    assert window_hold(settings, "reminder", None, 5, night, override="always") is None
    assert window_hold(settings, "reminder", None, 5, night, override="07:00-22:00") is None
    # A notification template kept to the evening: held where its category (any hour) would send
    evening = dt.datetime(2026, 12, 3, 18, 0, tzinfo=WIB)
    assert window_hold(settings, "notification", None, 5, noon, override="18:00-21:00") == evening
    # Its hours are the customer's wall clock, as the category's are
    assert window_hold(settings, "notification", "Asia/Jayapura", 5, noon, override="18:00-21:00") == evening - (
        dt.timedelta(hours=2)
    )
    # Urgent messages and plain texts are still never held
    assert window_hold(settings, "notification", None, 0, noon, override="18:00-21:00") is None
    assert window_hold(settings, None, None, 5, noon, override="18:00-21:00") is None
    # No override: the category's
    assert window_hold(settings, "notification", None, 5, noon, override=None) is None


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("08:00-20:00", "08:00-20:00"),
        (" 08:00-12:00, 13:00-20:00 ", "08:00-12:00, 13:00-20:00"),
        ("20:00-02:00", "20:00-02:00"),
        ("always", "always"),
        ("ALWAYS", "always"),
        ("category", None),
        ("", None),
        (None, None),
    ],
)
def test_a_templates_window_is_read_with_the_settings_parser(given, stored):
    from wa_tasks.admin.template_store import check_window

    assert check_window(given, "promo") == stored


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("8-20", "template 'promo': send_window: cannot read '8-20' of '8-20' as hours"),
        ("08:00-25:00", "is not a time of day"),
        ("08:00-08:00", "starts where it ends"),
        (8, "send_window must be hours such as '08:00-20:00'"),
        ("08:00-20:00," * 10, "send_window is 120 characters; the limit is 100"),
    ],
)
def test_a_bad_template_window_is_refused_naming_the_field_and_the_value(given, named):
    from wa_tasks.admin.template_store import check_window
    from wa_tasks.errors import InvalidTemplate

    with pytest.raises(InvalidTemplate) as caught:
        check_window(given, "promo")

    assert named in str(caught.value)
    assert isinstance(caught.value, InvalidRequest)
