"""wa_tasks.core.priorities: names and steps 0..9 → the Redis step (0 is the highest on Redis)."""

import pytest

from wa_tasks.core.priorities import DEFAULT, LEVELS, name_of, resolve
from wa_tasks.errors import InvalidPriority, InvalidRequest


def test_named_levels_order_urgent_before_high_before_normal_before_low():
    # Redis serves the lowest step first, so a more urgent name has a smaller number.
    assert resolve("urgent") < resolve("high") < resolve("normal") < resolve("low")


def test_named_levels_are_real_redis_steps():
    assert all(0 <= step <= 9 for step in LEVELS.values())
    assert resolve("urgent") == 0


def test_no_priority_means_the_default_level():
    assert DEFAULT == "normal"
    assert resolve(None) == LEVELS["normal"]


@pytest.mark.parametrize("step", range(10))
def test_every_step_from_0_to_9_passes_through(step):
    assert resolve(step) == step


@pytest.mark.parametrize("raw", ["URGENT ", " Urgent", "urgent", "\turgent\n"])
def test_names_are_case_and_space_tolerant(raw):
    assert resolve(raw) == LEVELS["urgent"]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (10, ["0..9", "10"]),
        (-1, ["0..9", "-1"]),
        (True, ["urgent", "0..9", "True"]),
        (False, ["0..9", "False"]),
        ("soon", ["urgent", "high", "normal", "low", "'soon'"]),
        ("", ["urgent", "''"]),
        ("5", ["0..9", "'5'"]),
        (3.5, ["0..9", "3.5"]),
    ],
)
def test_anything_else_is_refused_naming_the_value_and_the_choices(raw, words):
    with pytest.raises(InvalidPriority) as info:
        resolve(raw)

    message = str(info.value)
    for word in words:
        assert word in message
    assert isinstance(info.value, InvalidRequest)


@pytest.mark.parametrize(
    ("step", "name"),
    [(0, "urgent"), (1, "urgent"), (2, "high"), (4, "high"), (5, "normal"), (7, "normal"), (8, "low"), (9, "low")],
)
def test_name_of_gives_the_closest_named_level_at_or_below_a_step(step, name):
    assert name_of(step) == name


@pytest.mark.parametrize("name", list(LEVELS))
def test_name_of_inverts_resolve_for_named_levels(name):
    assert name_of(resolve(name)) == name
