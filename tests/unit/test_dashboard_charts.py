"""The dashboard's aggregations (``wa_tasks.admin.dashboard``) over plain rows: hour slots, outcomes per
session and hour, percentiles, delivery latency per hour, the depth series."""

from __future__ import annotations

import datetime as dt
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wa_tasks.admin import dashboard
from wa_tasks.admin.dashboard import SendRow

NOW = dt.datetime(2026, 12, 1, 14, 37, 12, tzinfo=dt.UTC)
SLOTS = dashboard.hour_slots(NOW)


def at(hours_ago: float, minute: int = 5) -> dt.datetime:
    return SLOTS[-1] - dt.timedelta(hours=hours_ago) + dt.timedelta(minutes=minute)


def test_the_window_is_24_clock_hours_ending_with_the_current_one() -> None:
    assert len(SLOTS) == 24
    assert SLOTS[-1] == dt.datetime(2026, 12, 1, 14, tzinfo=dt.UTC)
    assert SLOTS[0] == dt.datetime(2026, 11, 30, 15, tzinfo=dt.UTC)
    assert all(b - a == dt.timedelta(hours=1) for a, b in zip(SLOTS, SLOTS[1:], strict=False))


def test_each_message_counts_once_under_its_furthest_outcome_in_the_hour_it_was_sent() -> None:
    # Given messages of two sessions in various states
    rows = [
        SendRow("wa-1", "sent", at(0), None, None),
        SendRow("wa-1", "delivered", at(0), at(0, 6), None),
        SendRow("wa-1", "read", at(2), at(2, 6), None),  # read: counts as read, not also as delivered
        SendRow("wa-2", "failed", None, None, at(1)),  # failed by the hour it failed
        SendRow("wa-2", "queued", None, None, None),  # not sent: not on the chart
        SendRow(None, "failed", None, None, at(3)),  # refused before routing
        SendRow("wa-1", "sent", at(30), None, None),  # before the window
        # Delivered late, into the next hour: still counted in the hour it was sent
        SendRow("wa-1", "delivered", at(1, 59), at(0, 10), None),
    ]

    # When aggregated
    result = dashboard.hourly_outcomes(rows, SLOTS)

    # Then every row counts in exactly one cell
    assert list(result) == [dashboard.NO_SESSION, "wa-1", "wa-2"]
    wa1 = result["wa-1"]
    assert wa1["sent"][-1] == 1 and wa1["delivered"][-1] == 1 and wa1["read"][-3] == 1
    assert wa1["delivered"][-2] == 1
    assert sum(map(sum, wa1.values())) == 4
    assert result["wa-2"]["failed"][-2] == 1 and sum(map(sum, result["wa-2"].values())) == 1
    assert result[dashboard.NO_SESSION]["failed"][-4] == 1


def test_a_message_with_a_delivery_time_but_sent_status_counts_as_delivered() -> None:
    # A receipt can set delivered_at on a row whose status a later read moved on; a status that
    # lags its timestamps is still shown by how far it got.
    row = SendRow("wa-1", "sent", at(0), at(0, 6), None)
    assert dashboard.outcome(row) == ("delivered", at(0))


@given(st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=50))
def test_percentiles_agree_with_the_standard_library(values: list[float]) -> None:
    expected = statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 else values[0]
    assert dashboard.percentile(values, 0.95) == pytest.approx(expected, abs=1e-6)
    assert dashboard.percentile(values, 0.5) == pytest.approx(statistics.median(values), abs=1e-6)


def test_latency_per_hour_is_the_median_and_95th_percentile_of_sent_to_delivered() -> None:
    # Given 20 deliveries in the current hour taking 1..20 s, and one 3 s delivery two hours ago
    pairs = [(at(0) - dt.timedelta(seconds=s), at(0)) for s in range(1, 21)]
    pairs.append((at(2) - dt.timedelta(seconds=3), at(2)))

    latency = dashboard.hourly_latency(pairs, SLOTS)

    assert latency["p50"][-1] == 10.5
    assert latency["p95"][-1] == pytest.approx(19.05)
    assert latency["p50"][-3] == 3.0 and latency["p95"][-3] == 3.0
    # An hour without deliveries is a gap, not a zero
    assert latency["p50"][-2] is None and latency["count"][-2] == 0
    assert latency["count"][-1] == 20


def test_the_depth_series_has_a_gap_where_a_session_was_not_sampled() -> None:
    samples = [(1000.0, {"wa-1": 3}), (1030.0, {"wa-1": 5, "wa-2": 1})]
    series = dashboard.depth_series(samples)
    assert series["times"] == ["1970-01-01T00:16:40Z", "1970-01-01T00:17:10Z"]
    assert series["sessions"] == {"wa-1": [3, 5], "wa-2": [None, 1]}


def test_a_day_of_samples_is_merged_into_at_most_720_points_keeping_the_peaks() -> None:
    # Given 24 h of 30 s samples with one spike of a single sample
    samples = [(float(i * 30), {"wa-1": 1}) for i in range(2880)]
    samples[1001] = (1001 * 30.0, {"wa-1": 50, "wa-2": 2})

    merged = dashboard.downsample(samples)

    assert len(merged) == 720
    assert merged[-1][0] == samples[-1][0]
    assert max(p["wa-1"] for _, p in merged) == 50
    assert sum(1 for _, p in merged if "wa-2" in p) == 1
    assert dashboard.downsample(samples[:10]) == [(t, dict(p)) for t, p in samples[:10]]
