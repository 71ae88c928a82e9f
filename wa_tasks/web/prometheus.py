"""The Prometheus ``/metrics`` of the web process: a collector that computes every value when it is
scraped, from the database and Redis, so no other process has to push or keep counters.

Series:
- ``wa_messages{status}``: messages stored, by status (a ``COUNT … GROUP BY status``);
- ``wa_queue_depth{session,priority}``: messages waiting on each session's queue, per Redis
  priority step (``LLEN`` of ``wa.session.<id>`` and ``wa.session.<id>:<p>``);
- ``wa_session_state{session,status}``: 1 for each session's status in its live state, 0 for the
  others (``offline``: no session host reports it);
- ``wa_send_latency_seconds``: a histogram of ``sent_at - created_at``, observed from the messages
  sent since the previous scrape of this process. Rows are observed once ``SETTLE`` has passed
  after their ``sent_at``, which leaves time for their commit; the histogram starts empty when the
  process starts, as Prometheus counters do.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import Message, MessageStatus, SessionStatus, WhatsAppSession, utcnow
from models.db import session_scope
from wa_tasks.core import redis_keys
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import live_state
from wa_tasks.settings import Settings

#: Upper bounds (seconds) of the send latency buckets: from an idle session's instant send to a
#: message that waited behind a paced backlog or a failover.
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
#: A message is observed this long after its ``sent_at``, once its row is surely committed.
SETTLE = dt.timedelta(seconds=2)
#: The status shown for a session that no session host reports.
OFFLINE = "offline"


class WaCollector(Collector):
    """Computes the series at scrape time; keeps only the send latency histogram between scrapes."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._observed_until = utcnow() - SETTLE
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self._sum = 0.0

    def collect(self) -> Iterator[Metric]:
        settings = self._settings()
        with session_scope(settings.database) as db:
            by_status = dict(db.execute(select(Message.status, func.count()).group_by(Message.status)).all())
            session_ids = list(db.scalars(select(WhatsAppSession.session_id).order_by(WhatsAppSession.session_id)))
            self._observe_sent(db)
        messages = GaugeMetricFamily("wa_messages", "Messages stored, by status.", labels=["status"])
        for status in MessageStatus:
            messages.add_metric([status.value], float(by_status.get(status.value, 0)))
        yield messages

        redis = client_for(settings.redis)
        depth = GaugeMetricFamily(
            "wa_queue_depth",
            "Messages waiting on a session's queue, per Redis priority step.",
            labels=["session", "priority"],
        )
        lengths = live_state.step_lengths(redis, [redis_keys.session_queue(sid) for sid in session_ids])
        for sid in session_ids:
            for step, length in enumerate(lengths[redis_keys.session_queue(sid)]):
                depth.add_metric([sid, str(step)], float(length))
        yield depth

        states = live_state.read(redis, session_ids)
        state = GaugeMetricFamily(
            "wa_session_state",
            "1 for a session's current status (live state), 0 for the others.",
            labels=["session", "status"],
        )
        for sid in session_ids:
            current = states[sid].status if sid in states else OFFLINE
            for name in [*(s.value for s in SessionStatus), OFFLINE]:
                state.add_metric([sid, name], 1.0 if name == current else 0.0)
        yield state

        with self._lock:
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, LATENCY_BUCKETS), "+Inf"], self._bucket_counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            yield HistogramMetricFamily(
                "wa_send_latency_seconds",
                "From storing a message to WhatsApp accepting it (sent_at - created_at).",
                buckets=buckets,
                sum_value=self._sum,
            )

    def _observe_sent(self, db: Session) -> None:
        with self._lock:
            until = utcnow() - SETTLE
            rows = db.execute(
                select(Message.created_at, Message.sent_at).where(
                    Message.sent_at > self._observed_until, Message.sent_at <= until
                )
            ).all()
            for created_at, sent_at in rows:
                if sent_at is None:  # excluded by the query; for the type checker
                    continue
                seconds = max(0.0, (sent_at - created_at).total_seconds())
                self._bucket_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
                self._sum += seconds
            self._observed_until = max(self._observed_until, until)
