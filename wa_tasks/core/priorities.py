"""Named message priorities and their Redis priority steps (0 is the highest on Redis)."""

from __future__ import annotations

from wa_tasks.errors import InvalidPriority

#: Name → Redis priority step. ``celeryconfig`` sets ten real steps (0..9).
LEVELS: dict[str, int] = {
    "urgent": 0,  # payment confirmation, voucher activation, OTP
    "high": 2,  # bulk notifications: ahead of routine messages, behind urgent ones
    "normal": 5,  # everything else; also task_default_priority
    "low": 8,
}
DEFAULT = "normal"


def resolve(priority: str | int | None) -> int:
    """A priority name or a step 0..9 → the Redis step."""
    if priority is None:
        return LEVELS[DEFAULT]
    if isinstance(priority, bool):
        raise InvalidPriority(f"priority must be one of {', '.join(LEVELS)} or 0..9, got {priority!r}")
    if isinstance(priority, int):
        if 0 <= priority <= 9:
            return priority
        raise InvalidPriority(f"priority step must be 0..9 (0 is the highest), got {priority}")
    if isinstance(priority, str) and priority.strip().lower() in LEVELS:
        return LEVELS[priority.strip().lower()]
    raise InvalidPriority(f"priority must be one of {', '.join(LEVELS)} or 0..9, got {priority!r}")


def name_of(step: int) -> str:
    """The closest named level at or below ``step`` (for display)."""
    best = "urgent"
    for name, value in LEVELS.items():
        if value <= step:
            best = name
    return best
