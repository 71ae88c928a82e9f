"""The beat scheduler of wa-tasks: Celery's own, made safe to run in more than one process.

Before a beat sends a due job it claims the job in Redis (``SET NX`` on ``wa:beat:<entry>`` with a
TTL of 90 % of the job's period). Only the beat that wins the claim sends it, so however many beats
run (a standby on a second machine, two ``wa-tasks up`` by mistake), each job is sent at most once
in any 90 % of its period, and at least once per period while any beat runs. The schedule itself
stays Celery's file-based one (``-s <data_dir>/celerybeat-schedule``), one file per beat process.
A beat that cannot reach Redis sends nothing: the broker is the same Redis, so nothing could be
sent anyway, and the job runs in its next period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import BaseSchedule

from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import get_settings

log = logging.getLogger(__name__)

#: Share of a job's period during which a sent run blocks every other beat.
CLAIM_SHARE = 0.9


def claim_ttl(schedule: BaseSchedule, now: dt.datetime) -> dt.timedelta:
    """How long a run sent ``now`` blocks the other beats: ``CLAIM_SHARE`` of the time to the next
    run (an interval's length; for a crontab, the time to its next occurrence)."""
    return schedule.remaining_estimate(now) * CLAIM_SHARE


class Scheduler(PersistentScheduler):
    """``PersistentScheduler`` that sends a due job only after winning its claim in Redis."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.beat_id = f"{socket.gethostname()}:{os.getpid()}"

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        if self.claim(entry):
            super().apply_entry(entry, producer=producer)
        else:
            log.info("beat: %s already sent by another beat this period", entry.name)

    def claim(self, entry: ScheduleEntry) -> bool:
        """True when this beat may send ``entry`` now (no other beat sent it this period)."""
        ttl_ms = max(1, int(claim_ttl(entry.schedule, self.app.now()).total_seconds() * 1000))
        try:
            redis = client_for(get_settings().redis)
            return bool(redis.set(redis_keys.beat_claim(entry.name), self.beat_id, nx=True, px=ttl_ms))
        except Exception as exc:
            log.error("beat: cannot claim %s in Redis, not sending it this period: %s", entry.name, exc)
            return False
