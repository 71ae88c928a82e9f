"""Which session sends a message: the routing choice as a pure function over live session state.

Policy ``failover`` (the seed's default): every message goes to the primary, the connected session
with the lowest priority number; the others only when it is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    session_id: str
    priority: int
    connected: bool


def primary(candidates: Iterable[Candidate]) -> Candidate | None:
    """The connected candidate with the lowest priority number (ties: session id)."""
    usable = [c for c in candidates if c.connected]
    if not usable:
        return None
    return min(usable, key=lambda c: (c.priority, c.session_id))


def choose(candidates: Sequence[Candidate], *, requested: str | None = None, exclude: Iterable[str] = ()) -> str | None:
    """The session to route to, or None when no session is usable now (the message waits)."""
    excluded = set(exclude)
    if requested is not None:
        for c in candidates:
            if c.session_id == requested and c.connected and c.session_id not in excluded:
                return c.session_id
        return None
    chosen = primary(c for c in candidates if c.session_id not in excluded)
    return chosen.session_id if chosen else None
