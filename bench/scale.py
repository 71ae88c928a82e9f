"""Scale: many simulated sessions shared by several session host processes on one machine, through
the leases. Measured: the time until every session is connected and owned by exactly one host (a
fair share each), then, idle for a minute, what keeping them costs: CPU seconds per host process
per minute (leases, heartbeats, live state, one broker consumer per session) and Redis commands
per second; and how many leases each host lost on the way (a heartbeat late past the TTL)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

from bench.harness import Environment, Report, running, wait_until
from bench.memory import _status
from bench.pipeline import cpu_seconds
from sessions_host.leases import Leases
from support.stack import Stack
from wa_tasks.pipeline import live_state

IDLE_SECONDS = 60.0


def redis_connections(pid: int, redis_url: str) -> int:
    """How many TCP connections process ``pid`` holds to the Redis of ``redis_url`` (its sockets,
    matched by inode against the kernel's table of TCP connections to that port)."""
    port = urlparse(redis_url).port or 6379
    return sum(1 for _, remote_port in _tcp_connections(pid) if remote_port == port)


def _tcp_connections(pid: int) -> list[tuple[int, int]]:
    """``(local port, remote port)`` of each TCP connection process ``pid`` holds (its sockets,
    matched by inode against the kernel's tables of TCP connections)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    found.append((int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)))
    return found


def _command_counts(env: Environment) -> Counter[str]:
    """Redis' count of calls per command (commands run by scripts included), server-wide."""
    stats = env.redis.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()})


def _connections_by_command(env: Environment, pid: int) -> dict[str, int]:
    """The Redis connections of process ``pid``, by the last command each ran (what holds them)."""
    ports = {local_port for local_port, _ in _tcp_connections(pid)}
    by_command: Counter[str] = Counter()
    for client in env.redis.client_list():
        if int(client["addr"].rsplit(":", 1)[1]) in ports:
            by_command[f"db{client['db']} {client['cmd']}"] += 1
    return dict(by_command)


def _ownership(stack: Stack, leases: Leases, sessions: list[str]) -> dict[str, object]:
    """Who owns each session (its lease) and who reports it connected (its live state)."""
    owners = dict(zip(sessions, leases.owners(sessions), strict=True))
    states = live_state.read(stack.redis, sessions)
    connected = {s: st.host for s, st in states.items() if st.connected}
    return {
        "unowned": sum(1 for o in owners.values() if not o),
        "connected": len(connected),
        # A session served by a host other than its lease holder would be owned twice.
        "served_by_other_than_owner": sum(1 for s, h in connected.items() if owners.get(s) != h),
        "per_host": dict(Counter(o for o in owners.values() if o)),
    }


def run(env: Environment, count: int, hosts: int, idle_seconds: float = IDLE_SECONDS) -> Report:
    settings = env.settings(safety_enabled=False, sim_latency_ms=20, log_level="WARNING")
    stack = env.stack(settings, "scale")
    names = tuple(f"sessions-{chr(ord('a') + i)}" for i in range(hosts))
    sessions = [f"x{i:04d}" for i in range(count)]
    leases = Leases(stack.redis, "bench", settings.lease_ttl_seconds)  # decodes replies
    share = math.ceil(count / hosts)
    with running(stack, *names):
        # Every host registered first, so that each takes a fair share from the start.
        wait_until(lambda: len(leases.hosts()) == hosts, 60, 0.2, f"{hosts} session hosts registered")
        first_added = time.monotonic()
        for session_id in sessions:
            stack.add_session(session_id, priority=1)
        started = time.monotonic()
        adding_seconds = started - first_added

        def settled() -> bool:
            stack.check_alive()
            o = _ownership(stack, leases, sessions)
            per_host = o["per_host"]
            assert isinstance(per_host, dict)
            return (
                o["unowned"] == 0
                and o["connected"] == count
                and o["served_by_other_than_owner"] == 0
                and len(per_host) == hosts
                and max(per_host.values()) <= share
            )

        wait_until(settled, 600, 1.0, f"{count} sessions connected, each owned once, over {hosts} hosts")
        settle_seconds = time.monotonic() - started
        from_first_added = time.monotonic() - first_added
        pids = {name: stack.processes[name].pid for name in names}
        info = env.redis.info("stats")
        cpu = env.redis.info("cpu")
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        calls_before = _command_counts(env)
        commands_before, redis_cpu_before = (
            int(info["total_commands_processed"]),
            cpu["used_cpu_sys"] + cpu["used_cpu_user"],
        )
        idle_started = time.monotonic()
        time.sleep(idle_seconds)
        elapsed = time.monotonic() - idle_started
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        info, cpu = env.redis.info("stats"), env.redis.info("cpu")
        commands = int(info["total_commands_processed"]) - commands_before
        calls = _command_counts(env) - calls_before
        redis_cpu = cpu["used_cpu_sys"] + cpu["used_cpu_user"] - redis_cpu_before
        final = _ownership(stack, leases, sessions)
        memory = {name: _status(pid) for name, pid in pids.items()}
        clients = int(env.redis.info("clients")["connected_clients"])
        connections = {name: redis_connections(pid, env.redis_url) for name, pid in pids.items()}
        held_by = {name: _connections_by_command(env, pid) for name, pid in pids.items()}
        # Sessions a host stopped because its lease was gone (it renewed too late: expired, or
        # already taken by another host): each is a restart of that session, here or elsewhere,
        # the churn a slow heartbeat causes under load.
        logs = {name: (stack.logdir / f"{name}.log").read_text(errors="replace") for name in names}
    per_minute = {name: (after[name] - before[name]) * 60.0 / elapsed for name in names}
    report = Report("scale", {"sessions": count, "hosts": hosts, "transport": "simulated", "idle_seconds": elapsed})
    report.figures = {
        # Sessions are added one by one (one database transaction each); the hosts pick them up
        # on their heartbeats meanwhile.
        "seconds_adding_sessions": adding_seconds,
        "seconds_from_first_added_until_all_connected_and_owned_once": from_first_added,
        "seconds_after_last_added_until_all_connected_and_owned_once": settle_seconds,
        "cpu_seconds_per_host_per_minute": per_minute,
        "cpu_seconds_per_minute_all_hosts": sum(per_minute.values()),
        "redis_commands_per_second": commands / elapsed,
        # Scripts' own commands are counted too (as themselves): what the idle cost is made of.
        "redis_commands_per_second_by_command": {name: round(n / elapsed, 1) for name, n in calls.most_common(10)},
        "redis_cpu_seconds_per_minute": redis_cpu * 60.0 / elapsed,
        "redis_connected_clients": clients,
        "redis_connections_per_host": connections,
        "redis_connections_per_host_by_last_command": held_by,
        "rss_mib_per_host": {name: m["VmRSS"] / 1024 for name, m in memory.items()},
        "threads_per_host": {name: m["Threads"] for name, m in memory.items()},
        "ownership_after_idle": final,
        "leases_lost_per_host": {
            name: log.count("lease lost to another host") + log.count(": lease expired, not renewed")
            for name, log in logs.items()
        },
        "heartbeats_longer_than_half_the_lease_ttl_per_host": {
            name: log.count("heartbeat took") for name, log in logs.items()
        },
    }
    ok = (
        final["unowned"] == 0
        and final["connected"] == count
        and final["served_by_other_than_owner"] == 0
        and len(final["per_host"]) == hosts  # type: ignore[arg-type]
    )

    def met(value: bool) -> str:
        return "met" if value else "missed"

    report.targets = {
        "every session connected and owned exactly once": met(ok),
        "each owned once and connected within 60 s of the last one added": met(ok and settle_seconds <= 60),
        "no lease lost while idle": met(not any(report.figures["leases_lost_per_host"].values())),  # type: ignore[attr-defined]
        "≤ 8 Redis connections per host": met(max(connections.values()) <= 8),
        "idle: ≤ 1 CPU-s a minute per 1,000 sessions of a host": met(
            all(cpu <= count / hosts / 1000 for cpu in per_minute.values())
        ),
        "idle: ≤ 500 Redis commands a second per 1,000 sessions": met(commands / elapsed <= count / 2),
    }
    return report
