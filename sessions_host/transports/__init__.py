"""Transports: how a session host talks to WhatsApp (``simulated`` for tests and demos, ``neonize``
for real numbers).

Imports stay inside :func:`build` so that importing one transport module (as each neonize child
process does) does not load the others and their dependencies.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sessions_host.transports.base import Transport
    from sessions_host.transports.simulated import SimHub
    from wa_tasks.settings import Settings

#: Transport names a session may use.
AVAILABLE = ("simulated", "neonize")


def build(
    transport: str, session_id: str, options: dict[str, Any] | None, settings: Settings, hub: SimHub
) -> Transport:
    """The transport for one session, or a ValueError naming what is wrong."""
    if transport == "simulated":
        from sessions_host.transports.simulated import SimOptions, SimulatedTransport

        return SimulatedTransport(session_id, SimOptions.build(settings, options), hub)
    if transport == "neonize":
        # neonize itself is only loaded where the client runs (a child process by default), so the
        # project works without it installed until a neonize session is configured.
        if importlib.util.find_spec("neonize") is None:
            raise ValueError(
                f"session {session_id}: transport 'neonize' needs the neonize package (pip install 'wa-tasks[neonize]')"
            )
        from sessions_host.transports.neonize import NeonizeOptions, NeonizeStore, NeonizeTransport

        opts = NeonizeOptions.build(options)
        return NeonizeTransport(
            session_id,
            NeonizeStore.for_session(settings.database, settings.data_path, session_id),
            isolate=opts.isolate,
            reconnect_base=opts.reconnect_base,
            reconnect_cap=opts.reconnect_cap,
            reconnect_attempts=opts.reconnect_attempts,
        )
    raise ValueError(f"session {session_id}: transport {transport!r} is not available; use one of {AVAILABLE}")
