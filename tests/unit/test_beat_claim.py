"""How long a beat's claim on a job lasts: 90 % of the time to the job's next run.

Celery's schedules measure from their own clock (``nowfun``), the scheduler's clock in production."""

from __future__ import annotations

import datetime as dt

from celery.schedules import crontab, schedule

from wa_tasks.ops.beat import claim_ttl


def test_an_interval_job_is_claimed_for_most_of_its_interval() -> None:
    now = dt.datetime(2026, 11, 25, 10, 0, 0, tzinfo=dt.UTC)
    assert claim_ttl(schedule(30.0, nowfun=lambda: now), now) == dt.timedelta(seconds=27)


def test_a_daily_job_is_claimed_for_most_of_the_day() -> None:
    # Sent at 19:00 UTC (02:00 WIB); the next run is tomorrow at 19:00
    now = dt.datetime(2026, 11, 25, 19, 0, 0, 500, tzinfo=dt.UTC)
    ttl = claim_ttl(crontab(hour=19, minute=0, nowfun=lambda: now), now)
    assert dt.timedelta(hours=21, minutes=35) < ttl <= dt.timedelta(hours=21, minutes=36)
