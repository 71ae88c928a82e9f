"""``python -m bench <name> [--n N] [--json-out PATH]``: run one benchmark, print and save its figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import harness

BENCHMARKS = (
    "enqueue",
    "pipeline",
    "pacing",
    "priority",
    "failover",
    "takeover",
    "memory",
    "scale",
    "schedule",
    "webhooks",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", choices=BENCHMARKS)
    parser.add_argument("--n", type=int, default=None, help="messages (or sessions, drills) of the benchmark")
    parser.add_argument("--seconds", type=float, default=None, help="duration (pacing, priority; scale: idle)")
    parser.add_argument("--json-out", type=Path, default=None, help="default: bench/results/<name>.json")
    parser.add_argument("--profile", action="store_true", help="enqueue: also profile send_bulk")
    parser.add_argument("--urgent", type=int, default=None, help="priority: urgent messages (default 100)")
    parser.add_argument("--no-urgent-worker", action="store_true", help="priority: without the urgent worker")
    parser.add_argument("--in-process", action="store_true", help="memory, neonize: clients in this process")
    parser.add_argument("--hosts", type=int, default=None, help="pipeline, scale: session host processes")
    parser.add_argument("--noop-n", type=int, default=None, help="pipeline: no-op tasks (default N)")
    parser.add_argument(
        "--transport", choices=("simulated", "neonize"), default="simulated", help="memory: which sessions"
    )
    parser.add_argument("--plain", action="store_true", help="enqueue: without encryption at rest")
    parser.add_argument(
        "--spread", action="store_true", help="schedule: release at the sessions' pace (default: no limit)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) afterwards")
    args = parser.parse_args(argv)

    with harness.environment(keep=args.keep) as env:
        described = harness.machine(env)
        report = _run(args, env)
    report.machine = described
    report.print()
    json_out = args.json_out
    if json_out is None and args.name == "scale":
        # One file per shape: one host with 1,000 sessions and four with 10,000 are both current figures.
        json_out = harness.RESULTS / f"scale-{report.parameters['hosts']}x{report.parameters['sessions']}.json"
    if json_out is None and report.name == "memory_neonize" and not report.parameters["isolate"]:
        json_out = harness.RESULTS / "memory_neonize_in_process.json"
    path = report.write(json_out)
    print(f"  written to {path}")
    return 0


def _run(args: argparse.Namespace, env: harness.Environment) -> harness.Report:
    if args.name == "enqueue":
        from bench import enqueue

        return enqueue.run(env, args.n or 100_000, args.profile, encrypted=not args.plain)
    if args.name == "pipeline":
        from bench import pipeline

        return pipeline.run(env, args.n or 50_000, hosts=args.hosts or 1, noop_n=args.noop_n)
    if args.name == "pacing":
        from bench import pacing

        return pacing.run(env, args.seconds or 120.0, args.n or 5)
    if args.name == "priority":
        from bench import priority

        urgent = args.urgent or 100
        return priority.run(
            env, args.n or 10_000, args.seconds or 3.0 * urgent, urgent, urgent_worker=not args.no_urgent_worker
        )
    if args.name == "failover":
        from bench import failover

        return failover.run(env, args.n or 20)
    if args.name == "takeover":
        from bench import takeover

        return takeover.run(env, args.n or 5)
    if args.name == "webhooks":
        from bench import webhooks

        return webhooks.run(env, args.n or 10_000)
    if args.name == "schedule":
        from bench import schedule

        return schedule.run(env, args.n or 100_000, spread=args.spread, observe_seconds=args.seconds or 60.0)
    if args.name == "scale":
        from bench import scale

        return scale.run(env, args.n or 1000, args.hosts or 4, idle_seconds=args.seconds or scale.IDLE_SECONDS)
    from bench import memory

    if args.transport == "neonize":
        return memory.run_neonize(env, args.n or 3, isolate=not args.in_process)
    return memory.run(env, args.n or 100)


if __name__ == "__main__":
    sys.exit(main())
