"""wa_tasks.core.formatting: rupiah amounts, Indonesian dates and remaining time, as customers read them."""

import datetime as dt
from decimal import Decimal

import pytest

from wa_tasks.core.formatting import FormattingError, long_date, long_datetime, parse_date, remaining_time, rupiah

UTC = dt.UTC
WIB = dt.timezone(dt.timedelta(hours=7))


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        (150000, "Rp150.000"),
        (0, "Rp0"),
        (999, "Rp999"),
        (1000, "Rp1.000"),
        (1500000, "Rp1.500.000"),
        (-25000, "-Rp25.000"),
        (Decimal("1500.50"), "Rp1.500,50"),
        (Decimal("1500.00"), "Rp1.500"),
        (150000.0, "Rp150.000"),
        (0.1 + 0.2, "Rp0,30"),  # no binary float artefacts
        ("150000", "Rp150.000"),
        ("150.000", "Rp150.000"),  # Indonesian thousands dots, not a decimal point
        ("Rp 1.500.000", "Rp1.500.000"),
        ("rp150.000,50", "Rp150.000,50"),
        ("1500,5", "Rp1.500,50"),
        ("1500.50", "Rp1.500,50"),  # two decimals: a decimal point, as a database writes it
        (" 75000 ", "Rp75.000"),
    ],
)
def test_rupiah(amount, shown):
    assert rupiah(amount) == shown


@pytest.mark.parametrize("amount", ["gratis", "", "1,5,0", "12.34.5", True, None, [150000], float("nan"), "Rp"])
def test_rupiah_refuses_what_is_not_an_amount(amount):
    with pytest.raises(FormattingError, match="rupiah"):
        rupiah(amount)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (dt.date(2025, 1, 9), "9 Januari 2025"),
        (dt.date(2025, 12, 31), "31 Desember 2025"),
        ("2025-01-09", "9 Januari 2025"),
        ("2025-03-01T08:00:00+07:00", "1 Maret 2025"),
        ("09-01-2025", "9 Januari 2025"),  # Indonesian day-month-year
        ("9/1/2025", "9 Januari 2025"),
        ("2025/01/09", "9 Januari 2025"),
        (dt.datetime(2025, 1, 9, 16, 59, tzinfo=UTC), "9 Januari 2025"),
        # 17:00 UTC is already the next day in Jakarta (WIB, UTC+7)
        (dt.datetime(2025, 1, 9, 17, 0, tzinfo=UTC), "10 Januari 2025"),
        ("2025-01-09T17:00:00Z", "10 Januari 2025"),
        (dt.datetime(2025, 1, 9, 23, 0), "9 Januari 2025"),  # naive: already local time
        # written out already, or not a date at all: shown as given
        ("30 November 2026", "30 November 2026"),
        ("31-02-2025", "31-02-2025"),
    ],
)
def test_long_date(value, shown):
    assert long_date(value) == shown


def test_every_month_has_its_indonesian_name():
    names = [long_date(dt.date(2025, m, 1)).split()[1] for m in range(1, 13)]

    assert names == [
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
    ]


def test_long_datetime_is_shown_in_wib_with_indonesian_time_notation():
    assert long_datetime("2025-01-09T10:30:00Z") == "9 Januari 2025 17.30 WIB"
    assert long_datetime(dt.datetime(2025, 8, 17, 1, 5, tzinfo=UTC), "WITA") == "17 Agustus 2025 09.05 WITA"
    assert long_datetime(dt.datetime(2025, 8, 17, 1, 5, tzinfo=UTC), "wit") == "17 Agustus 2025 10.05 WIT"
    assert long_datetime(dt.datetime(2025, 8, 17, 8, 0)) == "17 Agustus 2025 08.00 WIB"
    assert long_datetime(dt.date(2025, 8, 17)) == "17 Agustus 2025"


def test_an_unknown_zone_or_a_non_date_is_an_error():
    with pytest.raises(FormattingError, match="WIB, WITA, WIT"):
        long_datetime(dt.datetime(2025, 1, 1, tzinfo=UTC), "CET")
    with pytest.raises(FormattingError, match="not a date"):
        long_date(20250109)


def test_parse_date():
    assert parse_date("2025-01-09") == dt.date(2025, 1, 9)
    assert parse_date("2025-01-09T10:30:00Z") == dt.datetime(2025, 1, 9, 10, 30, tzinfo=UTC)
    assert parse_date("besok") is None
    assert parse_date("2025-13-01") is None


NOW = dt.datetime(2025, 1, 9, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (dt.timedelta(days=3), "3 hari"),
        (dt.timedelta(hours=5), "5 jam"),
        (dt.timedelta(days=2, hours=5, minutes=40), "2 hari 5 jam"),
        (dt.timedelta(hours=1, minutes=30), "1 jam 30 menit"),
        (dt.timedelta(minutes=45), "45 menit"),
        (dt.timedelta(seconds=20), "kurang dari 1 menit"),
        (dt.timedelta(days=3) - dt.timedelta(seconds=1), "3 hari"),  # computed a moment late: still 3 days
        (dt.timedelta(0), "0 menit"),
        (dt.timedelta(hours=-2), "0 menit"),  # already over
        (259200, "3 hari"),
        (18000.0, "5 jam"),
        ("259200", "3 hari"),
        (Decimal("3600"), "1 jam"),
        (dt.timedelta(days=30), "30 hari"),
        # an end time
        (NOW + dt.timedelta(days=3), "3 hari"),
        ("2025-01-09T15:00:00Z", "5 jam"),
        (dt.datetime(2025, 1, 9, 22, 0), "5 jam"),  # naive end: WIB wall time (15:00 UTC)
        (dt.date(2025, 1, 12), "2 hari 7 jam"),  # midnight WIB of that day (now is 17.00 WIB)
        ("3 hari", "3 hari"),  # already written out: shown as given
    ],
)
def test_remaining_time(value, shown):
    assert remaining_time(value, now=NOW) == shown


@pytest.mark.parametrize("value", [True, [3], object()])
def test_remaining_time_refuses_what_is_not_a_time_span(value):
    with pytest.raises(FormattingError, match="sisa_waktu"):
        remaining_time(value, now=NOW)


def test_rupiah_keeps_every_digit_of_a_large_amount():
    assert rupiah(12345678901234567890123456789012) == "Rp12.345.678.901.234.567.890.123.456.789.012"
    assert rupiah(Decimal("-0.001")) == "Rp0"  # rounds to nothing: no "-Rp0"
