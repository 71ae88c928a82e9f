"""Which session sends a message: the routing choice as a pure function over live session state.

Policies (``WA_ROUTING_POLICY``):
- ``failover`` (the default): everything to the primary, the connected session with the
  lowest priority number; the others only when it is down.
- ``spillover``: the primary until its backlog would make a new message wait longer than a bound,
  then the next session by priority (and so on).
- ``balanced``: the session where a new message would wait least (backlog × pace): sessions share
  the load in proportion to their speed. Sessions that tie (idle ones, typically) are picked at
  random: picked by priority or id, a stream slower than the sessions' pace would go mostly to the
  first of them.

Under any policy, the number that knows the customer comes first (:func:`prefer_known`): WhatsApp
trusts per contact (trusted-contact tokens, reach-out timelocks, error 463 on cold contacts), so a
customer moved to another of the operator's numbers is a stranger to it again and spends that
number's new-contact budget. The session that last sent to or heard from the recipient takes the
message while it is connected, within its ban-safety caps and not excluded; otherwise the policy
routes as it would have (failover still moves messages off a number that is down).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

POLICIES = ("failover", "spillover", "balanced")
#: Waits this close count as equal (float sums of backlog × pace).
TIE_SECONDS = 1e-6


@dataclass(frozen=True)
class Candidate:
    session_id: str
    priority: int
    connected: bool
    #: Messages waiting on the session's queue.
    backlog: int = 0
    #: Seconds between sends on the session.
    pace_seconds: float = 1.0
    #: Seconds until the session's pace slot opens (the send in progress); 0 when unknown.
    ready_in_seconds: float = 0.0
    #: Whether its ban-safety caps (daily, hourly, pause after a restriction) allow it another send
    #: now; True when unknown. Only affinity looks at it: the policies leave caps to the session host.
    within_caps: bool = True

    @property
    def wait_seconds(self) -> float:
        """How long a message queued now would wait."""
        return self.ready_in_seconds + self.backlog * self.pace_seconds


def primary(candidates: Iterable[Candidate]) -> Candidate | None:
    """The connected candidate with the lowest priority number (ties: session id)."""
    usable = [c for c in candidates if c.connected]
    if not usable:
        return None
    return min(usable, key=lambda c: (c.priority, c.session_id))


def prefer_known(
    candidates: Iterable[Candidate],
    known: str | None,
    *,
    exclude: Iterable[str] = (),
    max_wait_seconds: float | None = None,
) -> str | None:
    """``known`` (the session that last sent to or heard from the recipient) when it can take the
    message: connected, within its caps, not excluded, and, with ``max_wait_seconds``, not so
    backed up that the message would wait longer. None: route as if the recipient were new."""
    if known is None or known in set(exclude):
        return None
    for c in candidates:
        if c.session_id != known:
            continue
        if not (c.connected and c.within_caps):
            return None
        if max_wait_seconds is not None and c.wait_seconds > max_wait_seconds:
            return None
        return known
    return None  # the session was removed: it knows nobody any more


def choose(
    candidates: Sequence[Candidate],
    *,
    requested: str | None = None,
    exclude: Iterable[str] = (),
    policy: str = "failover",
    spillover_wait_seconds: float = 60.0,
    rng: random.Random | None = None,
    known: str | None = None,
) -> str | None:
    """The session to route to, or None when no session is usable now (the message waits).
    ``rng``: what picks among tied sessions under ``balanced`` (the module's generator by default).
    ``known``: the session that last sent to or heard from the recipient, preferred by
    :func:`prefer_known` (a ``requested`` session still wins)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown routing policy {policy!r}; use one of {', '.join(POLICIES)}")
    excluded = set(exclude)
    usable = [c for c in candidates if c.connected and c.session_id not in excluded]
    if requested is not None:
        return requested if any(c.session_id == requested for c in usable) else None
    if not usable:
        return None
    affine = prefer_known(usable, known, max_wait_seconds=spillover_wait_seconds if policy == "spillover" else None)
    if affine is not None:
        return affine
    by_priority = sorted(usable, key=lambda c: (c.priority, c.session_id))
    if policy == "failover":
        return by_priority[0].session_id
    if policy == "spillover":
        for c in by_priority:
            if c.wait_seconds < spillover_wait_seconds:
                return c.session_id
        return min(by_priority, key=lambda c: (c.wait_seconds, c.priority, c.session_id)).session_id
    shortest = min(c.wait_seconds for c in by_priority)
    tied = [c for c in by_priority if c.wait_seconds <= shortest + TIE_SECONDS]
    return (rng or random).choice(tied).session_id
