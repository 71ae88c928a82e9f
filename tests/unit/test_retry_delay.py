"""sessions_host.delivery: the pure part, retry_delay()."""

import random

import pytest

from sessions_host.delivery import retry_delay

SAMPLES = 500


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(1234)


@pytest.mark.parametrize("attempt", range(0, 12))
@pytest.mark.parametrize("cap", [60.0, 10.0])
def test_delay_stays_within_25_percent_of_the_capped_exponential(attempt, cap):
    base = min(cap, 2.0**attempt)

    for _ in range(SAMPLES):
        delay = retry_delay(attempt, cap)
        assert 0.75 * base <= delay <= 1.25 * base
        assert delay <= 1.25 * cap


def test_default_cap_is_60_seconds():
    assert max(retry_delay(20) for _ in range(SAMPLES)) <= 1.25 * 60.0
    assert min(retry_delay(20) for _ in range(SAMPLES)) >= 0.75 * 60.0


def test_delay_grows_with_the_attempt_until_the_cap():
    # The jitter ranges of consecutive attempts do not overlap (1.25 * 2**n < 0.75 * 2**(n+1)).
    for attempt in range(1, 5):
        assert max(retry_delay(attempt) for _ in range(SAMPLES)) < min(retry_delay(attempt + 1) for _ in range(SAMPLES))


def test_the_first_retries_wait_about_2_4_8_seconds():
    for attempt, seconds in ((1, 2.0), (2, 4.0), (3, 8.0)):
        mean = sum(retry_delay(attempt) for _ in range(2000)) / 2000
        assert mean == pytest.approx(seconds, rel=0.05)


def test_the_jitter_actually_varies():
    assert len({retry_delay(3) for _ in range(20)}) > 1


@pytest.mark.parametrize("attempt", [1024, 5000])
def test_a_huge_attempt_number_is_still_capped(attempt):
    # Reachable with a large max_attempts setting; 2.0 ** 1024 overflows a float.
    assert 0.75 * 60.0 <= retry_delay(attempt, 60.0) <= 1.25 * 60.0
