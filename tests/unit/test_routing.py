"""wa_tasks.routing: failover routing over live session state."""

import pytest

from wa_tasks.routing import Candidate, choose, primary


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
