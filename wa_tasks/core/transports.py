"""The transports a session may use, by name: what wa-tasks' sessions, API and pages know of them.

How each one is configured and built is the session host's (``sessions_host.transports``).
"""

from __future__ import annotations

SIMULATED = "simulated"
NEONIZE = "neonize"

#: Transport names a session may use.
AVAILABLE = (SIMULATED, NEONIZE)
