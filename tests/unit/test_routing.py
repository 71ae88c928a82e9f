"""wa_tasks.core.routing: failover routing over live session state."""

import random
from collections import Counter

import pytest

from wa_tasks.core.routing import Candidate, choose, prefer_known, primary


def up(session_id, priority):
    return Candidate(session_id=session_id, priority=priority, connected=True)


def down(session_id, priority):
    return Candidate(session_id=session_id, priority=priority, connected=False)


def test_the_connected_session_with_the_lowest_priority_number_is_chosen():
    sessions = [up("b", 2), up("a", 5), up("c", 1)]

    assert choose(sessions) == "c"


def test_a_tie_on_priority_is_broken_by_session_id():
    sessions = [up("zeta", 1), up("alpha", 1), up("mid", 1)]

    assert choose(sessions) == "alpha"
    assert choose(list(reversed(sessions))) == "alpha"


@pytest.mark.parametrize("sessions", [[], [down("a", 0), down("b", 1)]])
def test_nothing_is_chosen_when_no_session_is_connected(sessions):
    assert choose(sessions) is None
    assert primary(sessions) is None


def test_a_disconnected_primary_fails_over_to_the_next_by_priority():
    sessions = [down("main", 0), up("backup2", 3), up("backup1", 2)]

    assert choose(sessions) == "backup1"


def test_a_requested_session_is_used_when_connected_even_if_it_is_not_the_primary():
    sessions = [up("main", 0), up("other", 9)]

    assert choose(sessions, requested="other") == "other"


@pytest.mark.parametrize("requested", ["other", "unknown"])
def test_a_requested_session_that_is_down_or_unknown_gives_none_not_another_session(requested):
    sessions = [up("main", 0), down("other", 1)]

    assert choose(sessions, requested=requested) is None


def test_a_requested_session_that_is_excluded_gives_none():
    sessions = [up("main", 0), up("other", 1)]

    assert choose(sessions, requested="other", exclude=["other"]) is None


def test_excluded_sessions_are_skipped():
    sessions = [up("main", 0), up("second", 1), up("third", 2)]

    assert choose(sessions, exclude=["main"]) == "second"
    assert choose(sessions, exclude={"main", "second"}) == "third"
    assert choose(sessions, exclude=("main", "second", "third")) is None


def test_exclude_may_be_a_one_shot_iterator():
    sessions = [up("main", 0), up("second", 1)]

    assert choose(sessions, exclude=iter(["main"])) == "second"


def test_primary_returns_the_candidate_itself():
    best = up("a", 0)

    assert primary([up("b", 0), best, down("c", -1)]) is best


def test_primary_accepts_a_generator():
    assert primary(c for c in [down("a", 0), up("b", 4)]) == up("b", 4)


# Policies ---------------------------------------------------------------------------------------

A_BUSY = Candidate("a", 1, True, backlog=100, pace_seconds=1.0)
B_IDLE = Candidate("b", 2, True, backlog=0, pace_seconds=1.0)
C_SLOW = Candidate("c", 3, True, backlog=5, pace_seconds=10.0)


def test_failover_ignores_backlog_and_keeps_the_primary():
    assert choose([A_BUSY, B_IDLE], policy="failover") == "a"


def test_spillover_moves_on_when_the_primary_wait_passes_the_bound():
    assert choose([A_BUSY, B_IDLE], policy="spillover", spillover_wait_seconds=60) == "b"
    assert choose([A_BUSY, B_IDLE], policy="spillover", spillover_wait_seconds=500) == "a"


def test_spillover_with_every_session_over_the_bound_takes_the_shortest_wait():
    busy_b = Candidate("b", 2, True, backlog=80, pace_seconds=1.0)
    assert choose([A_BUSY, busy_b], policy="spillover", spillover_wait_seconds=10) == "b"


def test_balanced_takes_the_shortest_wait_counting_each_sessions_pace():
    # c has fewer messages waiting than a, but at 10 s per send its wait (50 s) is longer than b's (0 s)
    assert choose([A_BUSY, B_IDLE, C_SLOW], policy="balanced") == "b"
    assert choose([A_BUSY, C_SLOW], policy="balanced") == "c"


def test_balanced_shares_a_stream_among_idle_sessions_whatever_their_priority():
    # Given four idle sessions (nothing waiting, pace slots open) of different priorities and paces
    idle = [
        Candidate(sid, priority, True, pace_seconds=pace)
        for sid, priority, pace in [("a", 1, 1.0), ("b", 2, 1.0), ("c", 3, 2.0), ("d", 4, 0.5)]
    ]
    rng = random.Random(12)

    # When a stream is routed one message at a time (each finds them idle again)
    picks = Counter(choose(idle, policy="balanced", rng=rng) for _ in range(4000))

    # Then each gets about a quarter, not the first by priority nearly all
    assert set(picks) == {"a", "b", "c", "d"}
    assert min(picks.values()) > 900


def test_balanced_shares_only_among_the_sessions_that_tie_on_the_shortest_wait():
    a = Candidate("a", 2, True, backlog=3)
    b = Candidate("b", 1, True, backlog=3)
    c = Candidate("c", 0, True, backlog=4)
    rng = random.Random(5)
    picks = Counter(choose([a, b, c], policy="balanced", rng=rng) for _ in range(200))
    assert set(picks) == {"a", "b"} and min(picks.values()) > 60


def test_an_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown routing policy 'random'"):
        choose([B_IDLE], policy="random")


def test_balanced_counts_the_time_until_a_sessions_pace_slot_opens():
    # Given two idle sessions, one of which has just sent (its slot opens in 0.9 s)
    just_sent = Candidate("a", priority=1, connected=True, backlog=0, ready_in_seconds=0.9)
    idle = Candidate("b", priority=2, connected=True, backlog=0)
    # Then the other one sends a new message sooner, whatever the priority tie-break says
    assert choose([just_sent, idle], policy="balanced") == "b"
    assert just_sent.wait_seconds == pytest.approx(0.9)


# Affinity: the number that knows the customer ------------------------------------------------


def test_the_session_that_knows_the_recipient_is_preferred_while_it_can_send():
    sessions = [up("wa-1", 1), up("wa-2", 2), up("wa-3", 3)]

    assert prefer_known(sessions, "wa-2") == "wa-2"
    assert choose(sessions, known="wa-2") == "wa-2"
    assert choose(sessions, known="wa-3", policy="balanced") == "wa-3"
    assert choose(sessions) == "wa-1"  # a recipient nobody knows: the policy as before


@pytest.mark.parametrize(
    ("sessions", "exclude", "why"),
    [
        ([up("wa-1", 1), down("wa-2", 2)], (), "down"),
        ([up("wa-1", 1), Candidate("wa-2", 2, connected=True, within_caps=False)], (), "over its caps"),
        ([up("wa-1", 1), up("wa-2", 2)], ("wa-2",), "excluded (it failed this message)"),
        ([up("wa-1", 1)], (), "removed"),
    ],
)
def test_a_known_session_that_cannot_send_gives_way_to_the_policy(sessions, exclude, why):
    assert prefer_known(sessions, "wa-2", exclude=exclude) is None, why
    assert choose(sessions, known="wa-2", exclude=exclude) == "wa-1", why


def test_a_requested_session_wins_over_affinity():
    sessions = [up("wa-1", 1), up("wa-2", 2)]
    assert choose(sessions, known="wa-2", requested="wa-1") == "wa-1"


def test_under_spillover_a_known_session_too_backed_up_gives_way():
    sessions = [up("wa-1", 1), Candidate("wa-2", 2, connected=True, backlog=100, pace_seconds=1.0)]
    assert choose(sessions, known="wa-2", policy="spillover", spillover_wait_seconds=60) == "wa-1"
    assert choose(sessions, known="wa-2", policy="spillover", spillover_wait_seconds=200) == "wa-2"
    assert prefer_known(sessions, "wa-2", max_wait_seconds=99.0) is None
    assert prefer_known(sessions, "wa-2") == "wa-2"
