"""Host takeover: two session hosts share 4 sessions through leases; one is killed with SIGKILL and
the time until the other owns (and serves, connected) all of its sessions is measured, K times (the
killed host is started again, and gets its share back, between drills). Lease TTL and heartbeat are
the defaults."""

from __future__ import annotations

import signal
import time
from collections import Counter

from bench.harness import Environment, Report, running, summary, wait_until
from sessions_host.leases import Leases
from wa_tasks.pipeline import live_state

HOSTS = ("sessions-a", "sessions-b")
SESSIONS = ("t1", "t2", "t3", "t4")


def run(env: Environment, drills: int) -> Report:
    settings = env.settings(safety_enabled=False, sim_latency_ms=20)
    stack = env.stack(settings, "takeover")
    for i, session_id in enumerate(SESSIONS, 1):
        stack.add_session(session_id, priority=i)
    leases = Leases(stack.redis, "bench", settings.lease_ttl_seconds)

    def owners() -> Counter[str]:
        return Counter(str(leases.owner(s)).split("@", 1)[0] for s in SESSIONS)

    def balanced() -> bool:
        stack.check_alive()
        return owners() == Counter({HOSTS[0]: 2, HOSTS[1]: 2})

    owned: list[float] = []
    serving: list[float] = []
    with running(stack, *HOSTS):
        wait_until(balanced, 120, 0.2, "both hosts owning two sessions")
        for drill in range(drills):
            victim, survivor = HOSTS[drill % 2], HOSTS[(drill + 1) % 2]
            killed_at = time.monotonic()
            stack.stop_process(victim, signal.SIGKILL)
            wait_until(lambda s=survivor: owners() == Counter({s: 4}), 120, 0.05, f"{survivor} owning every session")
            owned.append(time.monotonic() - killed_at)

            def served(s: str = survivor) -> bool:
                states = live_state.read(stack.redis, SESSIONS)
                return all(
                    states.get(x) is not None and states[x].connected and states[x].host.startswith(s) for x in SESSIONS
                )

            wait_until(served, 60, 0.05, f"{survivor} serving every session")
            serving.append(time.monotonic() - killed_at)
            stack.start_process(victim)
            wait_until(balanced, 120, 0.2, "the sessions shared again")
    stats = summary(owned)
    target = settings.lease_ttl_seconds + 2.0
    report = Report(
        "takeover",
        {
            "drills": drills,
            "hosts": len(HOSTS),
            "sessions": len(SESSIONS),
            "lease_ttl_seconds": settings.lease_ttl_seconds,
            "heartbeat_seconds": settings.heartbeat_seconds,
        },
    )
    report.figures = {
        "kill_to_all_leases_owned_seconds": stats,
        "kill_to_all_sessions_connected_on_survivor_seconds": summary(serving),
    }
    report.targets = {f"≤ lease TTL + 2 s ({target:.0f} s)": "met" if stats["max"] <= target else "missed"}
    return report
