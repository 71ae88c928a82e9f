"""The reconnect schedule of a neonize session: exponential backoff with jitter, 2 s base,
60 s cap, 10 attempts, then ``failed``; driven by tenacity."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from wa_tasks.core.transports import check_backoff

# Reconnect schedule ----------------------------------------------------------------------------------


class ConnectAttemptFailed(Exception):
    """One connect attempt failed; retried on the :class:`Backoff` schedule."""


@dataclass(frozen=True)
class Backoff:
    """The reconnect schedule: exponential from ``base`` seconds, capped at ``cap``, with
    jitter, ``attempts`` tries in all.

    The delay after failed attempt *n* is ``min(cap, base·2^(n-1))`` minus a random share of up to
    ``jitter`` of it. With ``jitter < 0.5`` the delays strictly grow until the cap (the lowest
    possible next delay, ``(1-jitter)·2d``, is above ``d``) and never exceed it.
    """

    base: float = 2.0
    cap: float = 60.0
    attempts: int = 10
    jitter: float = 0.25

    def __post_init__(self) -> None:
        check_backoff(self.base, self.cap, self.attempts, self.jitter)

    def delay(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after connect attempt ``failed_attempt`` (1-based) failed."""
        exponent = min(max(failed_attempt - 1, 0), 64)
        nominal = min(self.cap, self.base * 2.0**exponent)
        return nominal * (rng or random).uniform(1.0 - self.jitter, 1.0)

    def schedule(self, rng: random.Random | None = None) -> list[float]:
        """The waits between the attempts of one series (``attempts - 1`` of them)."""
        return [self.delay(n, rng) for n in range(1, self.attempts)]

    def retrying(
        self,
        *,
        stop_event: threading.Event,
        sleep: Callable[[float], None] = time.sleep,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
        rng: random.Random | None = None,
    ) -> tenacity.Retrying:
        """tenacity's loop for one series: retries :class:`ConnectAttemptFailed` on this schedule,
        stops after ``attempts`` or when ``stop_event`` is set, then re-raises the last failure."""
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts) | tenacity.stop_when_event_set(stop_event),
            wait=BackoffWait(self, rng),
            retry=tenacity.retry_if_exception_type(ConnectAttemptFailed),
            sleep=sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


class BackoffWait(tenacity.wait.wait_base):
    """A tenacity wait strategy following :meth:`Backoff.delay`."""

    def __init__(self, backoff: Backoff, rng: random.Random | None = None) -> None:
        self.backoff = backoff
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.backoff.delay(retry_state.attempt_number, self.rng)
