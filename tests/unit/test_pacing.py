"""sessions_host.pacing: one send per interval, measured from the start of the previous send."""

import threading

import pytest

from sessions_host.pacing import Pacer


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_the_first_slot_is_open(clock):
    pacer = Pacer(1.0, clock=clock)

    assert pacer.delay() == 0.0


def test_after_a_send_the_next_slot_is_one_interval_later(clock):
    pacer = Pacer(1.5, clock=clock)

    pacer.used(at=clock.now)

    assert pacer.delay() == pytest.approx(1.5)
    clock.now += 0.5
    assert pacer.delay() == pytest.approx(1.0)
    clock.now += 1.0
    assert pacer.delay() == 0.0


def test_the_interval_is_measured_from_the_start_of_the_send(clock):
    pacer = Pacer(1.0, clock=clock)
    started = clock.now

    clock.now += 0.75  # the send itself took 0.75 s
    pacer.used(at=started)

    assert pacer.delay() == pytest.approx(0.25)


def test_used_without_a_time_means_now(clock):
    pacer = Pacer(2.0, clock=clock)

    pacer.used()

    assert pacer.delay() == pytest.approx(2.0)


def test_delay_is_never_negative(clock):
    pacer = Pacer(1.0, clock=clock)
    pacer.used(at=clock.now)

    clock.now += 3600

    assert pacer.delay() == 0.0


def test_a_zero_interval_never_delays(clock):
    pacer = Pacer(0.0, clock=clock)
    pacer.used()

    assert pacer.delay() == 0.0


def test_now_is_the_injected_clock(clock):
    assert Pacer(1.0, clock=clock).now() == clock.now


def test_wait_on_an_open_slot_returns_true_at_once(clock):
    assert Pacer(1.0, clock=clock).wait(threading.Event()) is True


def test_wait_returns_false_when_stopped_with_the_slot_open(clock):
    stop = threading.Event()
    stop.set()

    assert Pacer(1.0, clock=clock).wait(stop) is False


def test_wait_returns_false_at_once_when_stopped_during_a_long_delay(clock):
    # Given a slot an hour away and a stop already requested
    pacer = Pacer(3600.0, clock=clock)
    pacer.used(at=clock.now)
    stop = threading.Event()
    stop.set()

    # Then wait() gives up (it would otherwise block for an hour)
    assert pacer.wait(stop) is False


def test_wait_returns_false_when_stopped_from_another_thread(clock):
    pacer = Pacer(3600.0, clock=clock)
    pacer.used(at=clock.now)
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    try:
        assert pacer.wait(stop) is False
    finally:
        timer.cancel()


def test_wait_sleeps_out_a_short_delay_and_returns_true(clock):
    pacer = Pacer(0.05, clock=clock)
    pacer.used(at=clock.now)

    assert pacer.wait(threading.Event()) is True
