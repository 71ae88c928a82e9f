"""The neonize transport's reconnect schedule (base 2 s, cap 60 s, 10 attempts, jitter),
as a pure function and as the tenacity loop the transport runs."""

from __future__ import annotations

import random
import threading

import pytest
import tenacity

from sessions_host.transports.neonize import Backoff, ConnectAttemptFailed, NeonizeOptions

SAMPLES = 300


def test_the_defaults_are_the_seeds() -> None:
    backoff = Backoff()
    assert (backoff.base, backoff.cap, backoff.attempts) == (2.0, 60.0, 10)
    options = NeonizeOptions.build({})
    assert options.backoff() == backoff
    assert options.isolate is True


@pytest.mark.parametrize("attempt", range(1, 12))
def test_each_delay_is_the_capped_exponential_minus_up_to_a_quarter(attempt: int) -> None:
    backoff = Backoff()
    nominal = min(60.0, 2.0 * 2 ** (attempt - 1))
    rng = random.Random(attempt)
    for _ in range(SAMPLES):
        assert 0.75 * nominal <= backoff.delay(attempt, rng) <= nominal


def test_delays_grow_until_the_cap_and_never_pass_it() -> None:
    backoff = Backoff()
    rng = random.Random(7)
    for _ in range(SAMPLES):
        delays = backoff.schedule(rng)
        assert len(delays) == 9  # 10 attempts, 9 waits between them
        growing = [d for d in delays if d < 0.75 * 60.0]
        assert growing == sorted(growing) and len(set(growing)) == len(growing)
        assert delays[:5] == growing  # 2, 4, 8, 16, 32 s (jittered), then the cap
        assert all(45.0 <= d <= 60.0 for d in delays[5:])
        assert max(delays) <= 60.0


def test_the_jitter_varies() -> None:
    backoff = Backoff()
    assert len({backoff.delay(3) for _ in range(20)}) > 1
    assert Backoff(jitter=0.0).delay(3) == 8.0


def test_a_huge_attempt_number_is_still_capped() -> None:
    assert 45.0 <= Backoff().delay(5000) <= 60.0


@pytest.mark.parametrize(
    "kwargs", [{"base": -1.0}, {"base": 10.0, "cap": 5.0}, {"attempts": 0}, {"jitter": 0.5}, {"jitter": -0.1}]
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_the_tenacity_loop_tries_attempts_times_sleeping_on_the_schedule_then_reraises() -> None:
    backoff = Backoff(base=2.0, cap=10.0, attempts=5)
    sleeps: list[float] = []
    calls: list[int] = []

    def connect() -> None:
        calls.append(1)
        raise ConnectAttemptFailed(f"dial failed #{len(calls)}")

    retrying = backoff.retrying(stop_event=threading.Event(), sleep=sleeps.append, rng=random.Random(1))
    with pytest.raises(ConnectAttemptFailed, match="dial failed #5"):
        retrying(connect)
    assert len(calls) == 5
    assert len(sleeps) == 4
    for n, slept in enumerate(sleeps, start=1):
        nominal = min(10.0, 2.0 * 2 ** (n - 1))
        assert 0.75 * nominal <= slept <= nominal
    assert sleeps == sorted(sleeps)


def test_the_loop_returns_as_soon_as_an_attempt_succeeds() -> None:
    sleeps: list[float] = []
    outcomes = iter([ConnectAttemptFailed("a"), ConnectAttemptFailed("b"), "connected"])

    def connect() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert Backoff().retrying(stop_event=threading.Event(), sleep=sleeps.append)(connect) == "connected"
    assert len(sleeps) == 2


def test_the_loop_stops_when_the_transport_stops() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def connect() -> None:
        calls.append(1)
        stop.set()
        raise ConnectAttemptFailed("dial failed")

    with pytest.raises(ConnectAttemptFailed):
        Backoff().retrying(stop_event=stop, sleep=lambda s: None)(connect)
    assert len(calls) == 1


def test_only_connect_failures_are_retried() -> None:
    calls: list[int] = []

    def connect() -> None:
        calls.append(1)
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        Backoff().retrying(stop_event=threading.Event(), sleep=lambda s: None)(connect)
    assert len(calls) == 1


def test_the_wait_strategy_is_a_tenacity_wait() -> None:
    retrying = Backoff().retrying(stop_event=threading.Event())
    assert isinstance(retrying.wait, tenacity.wait.wait_base)


def test_options_take_tiny_values_and_refuse_unknown_or_mistyped_ones() -> None:
    options = NeonizeOptions.build({"reconnect_base": 0.01, "reconnect_cap": 0.05, "reconnect_attempts": 3})
    assert options.backoff() == Backoff(base=0.01, cap=0.05, attempts=3)
    assert NeonizeOptions.build({"isolate": False}).isolate is False
    with pytest.raises(ValueError, match="unknown neonize transport option"):
        NeonizeOptions.build({"latency_ms": 5})
    with pytest.raises(ValueError, match="true or false"):
        NeonizeOptions.build({"isolate": "no"})
    with pytest.raises(ValueError, match="whole number"):
        NeonizeOptions.build({"reconnect_attempts": 2.5})
    with pytest.raises(ValueError, match="a number"):
        NeonizeOptions.build({"reconnect_cap": "60"})
    with pytest.raises(ValueError, match="base <= cap"):
        NeonizeOptions.build({"reconnect_base": 10, "reconnect_cap": 1})
