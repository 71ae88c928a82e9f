"""Transports: how a session host talks to WhatsApp (``simulated`` now; ``neonize`` for real numbers)."""

from __future__ import annotations

from typing import Any

from sessions_host.transports.base import Transport
from sessions_host.transports.simulated import SimHub, SimOptions, SimulatedTransport
from wa_tasks.settings import Settings

#: Transport names a session may use.
AVAILABLE = ("simulated",)


def build(
    transport: str, session_id: str, options: dict[str, Any] | None, settings: Settings, hub: SimHub
) -> Transport:
    """The transport for one session, or a ValueError naming what is wrong."""
    if transport == "simulated":
        return SimulatedTransport(session_id, SimOptions.build(settings, options), hub)
    raise ValueError(f"session {session_id}: transport {transport!r} is not available; use one of {AVAILABLE}")
