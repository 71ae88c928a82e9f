"""Transports: how a session host talks to WhatsApp (``simulated`` for tests and demos, ``neonize``
for real numbers).

Imports stay inside :func:`build` so that importing one transport module (as each neonize child
process does) does not load the others and their dependencies.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wa_tasks.core.transports import AVAILABLE, NEONIZE, SIMULATED, NeonizeOptions, SimOptions

if TYPE_CHECKING:
    from sessions_host.transports.base import Transport
    from sessions_host.transports.simulated import SimHub
    from wa_tasks.settings import Settings

__all__ = ["AVAILABLE", "REGISTRY", "Registered", "build", "check_options"]


@dataclass(frozen=True)
class Registered:
    """One transport: how its ``transport_options`` are checked, and how it is built."""

    #: The options of a session, checked (a ValueError or TypeError that says what is wrong).
    options: Callable[[Settings, dict[str, Any] | None], object]
    #: The transport of one session: ``(session_id, options, settings, hub)``.
    factory: Callable[[str, dict[str, Any] | None, Settings, SimHub], Transport]


def _simulated_options(settings: Settings, options: dict[str, Any] | None) -> object:
    return SimOptions.build(settings, options)


def _simulated(session_id: str, options: dict[str, Any] | None, settings: Settings, hub: SimHub) -> Transport:
    from sessions_host.transports.simulated import SimulatedTransport

    return SimulatedTransport(session_id, SimOptions.build(settings, options), hub)


def _neonize_options(settings: Settings, options: dict[str, Any] | None) -> object:
    return NeonizeOptions.build(options)


def _neonize(session_id: str, options: dict[str, Any] | None, settings: Settings, hub: SimHub) -> Transport:
    # neonize itself is only loaded where the client runs (a child process by default), so the
    # project works without it installed until a neonize session is configured.
    if importlib.util.find_spec("neonize") is None:
        raise ValueError(
            f"session {session_id}: transport 'neonize' needs the neonize package (pip install 'wa-tasks[neonize]')"
        )
    from sessions_host.transports.neonize import NeonizeStore, NeonizeTransport

    opts = NeonizeOptions.build(options)
    return NeonizeTransport(
        session_id,
        NeonizeStore.for_session(settings.database, settings.data_path, session_id),
        isolate=opts.isolate,
        reconnect_base=opts.reconnect_base,
        reconnect_cap=opts.reconnect_cap,
        reconnect_attempts=opts.reconnect_attempts,
    )


#: Every transport by name (the names are ``wa_tasks.core.transports.AVAILABLE``).
REGISTRY: dict[str, Registered] = {
    SIMULATED: Registered(_simulated_options, _simulated),
    NEONIZE: Registered(_neonize_options, _neonize),
}


def check_options(transport: str, settings: Settings, options: dict[str, Any] | None) -> None:
    """Refuse ``options`` that ``transport`` does not take (a ValueError or TypeError saying why)."""
    REGISTRY[transport].options(settings, options)


def build(
    transport: str, session_id: str, options: dict[str, Any] | None, settings: Settings, hub: SimHub
) -> Transport:
    """The transport for one session, or a ValueError naming what is wrong."""
    registered = REGISTRY.get(transport)
    if registered is None:
        raise ValueError(f"session {session_id}: transport {transport!r} is not available; use one of {AVAILABLE}")
    return registered.factory(session_id, options, settings, hub)
