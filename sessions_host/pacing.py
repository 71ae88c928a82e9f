"""Pacing: at most one send per interval on a session (1 message/second by default).

The session host waits for the next slot *before* it takes the next message from the queue, so a
message that arrives with a higher priority during the wait is the one sent in that slot.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


class Pacer:
    """Slots ``interval`` (plus up to ``jitter``) seconds apart, from the start of the previous send."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        self.interval = interval
        #: Up to this many seconds are added to each interval at random: a number that sends at
        #: exact one-second ticks looks like the machine it is.
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._clock = clock
        self._next = 0.0

    def delay(self) -> float:
        """Seconds until the next slot (0 when it is open)."""
        return max(0.0, self._next - self._clock())

    def wait(self, stop: threading.Event) -> bool:
        """Wait for the next slot; False if ``stop`` was set meanwhile."""
        delay = self.delay()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()

    def used(self, at: float | None = None) -> None:
        """A send started at ``at`` (default: now): the next slot is one interval later."""
        extra = self._rng.uniform(0.0, self.jitter) if self.jitter > 0 else 0.0
        self._next = (self._clock() if at is None else at) + self.interval + extra

    def now(self) -> float:
        return self._clock()
