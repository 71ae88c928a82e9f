"""wa_tasks.core.timefmt: every time a caller reads is UTC ISO 8601 with a Z."""

import datetime as dt

from wa_tasks.core import timefmt

WIB = dt.timezone(dt.timedelta(hours=7))


def test_an_aware_time_is_written_in_utc_with_a_z() -> None:
    assert timefmt.iso(dt.datetime(2026, 1, 31, 16, 0, tzinfo=WIB)) == "2026-01-31T09:00:00Z"
    assert timefmt.iso(dt.datetime(2026, 1, 31, 9, 0, 0, 123456, tzinfo=dt.UTC)) == "2026-01-31T09:00:00.123456Z"


def test_a_naive_time_is_taken_as_utc() -> None:
    assert timefmt.iso(dt.datetime(2026, 1, 31, 9, 0)) == "2026-01-31T09:00:00Z"


def test_no_time_and_unix_times() -> None:
    assert timefmt.iso_or_none(None) is None
    assert timefmt.iso_timestamp(0) == "1970-01-01T00:00:00Z"
