"""``wa-tasks up``: every process of the Procfile at once, on the embedded defaults when nothing
is configured (a private Redis under the data directory, SQLite). Ctrl-C stops them all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from wa_tasks.settings import Settings, get_settings

#: The Procfile beside the packages; the same processes if it is missing (a non-editable install).
PROCFILE = Path(__file__).resolve().parents[2] / "Procfile"
DEFAULT_PROCESSES = {
    "web": "wa-tasks web",
    "worker": "wa-tasks worker",
    "urgent": "wa-tasks worker --queues wa.urgent --concurrency 1 --name urgent",
    "webhooks": "wa-tasks worker --queues wa.webhooks --concurrency 1 --name webhooks",
    "beat": "wa-tasks beat",
    "sessions": "wa-tasks sessions",
    "flower": "wa-tasks flower",
}


def procfile_processes() -> dict[str, str]:
    if not PROCFILE.exists():
        return dict(DEFAULT_PROCESSES)
    from honcho.environ import parse_procfile

    return dict(parse_procfile(PROCFILE.read_text()).processes)


def web_url(settings: Settings) -> str:
    """The address to open the pages at: a wildcard bind (``0.0.0.0``, ``::``) is reached on
    loopback from this machine; an IPv6 address is written in brackets."""
    host = settings.web_host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.web_port}/"


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of child processes: absolute data dir, this interpreter's scripts first on PATH,
    and the encryption key."""
    env = dict(os.environ)
    env["WA_DATA_DIR"] = str(settings.data_path)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    if not settings.encryption_keys:
        # The embedded default encrypts too: a key file under the data directory, shared with the
        # children (and used by this process).
        from models import encryption
        from wa_tasks.ops.encryption_keys import ensure_key_file

        key = ensure_key_file(settings.data_path)
        env["WA_ENCRYPTION_KEY"] = key
        encryption.configure([key])
    env.update(extra or {})
    return env


@click.command()
@click.option("--only", help="Comma-separated processes to run (default: all of the Procfile).")
def up(only: str | None) -> None:
    """Run the whole system: web, worker, beat, sessions and flower (Ctrl-C stops everything)."""
    from honcho.manager import Manager
    from honcho.printer import Printer

    from models.migrate import upgrade
    from wa_tasks.infra.redis_server import EmbeddedRedis

    settings = get_settings()
    processes = procfile_processes()
    if only:
        wanted = {p.strip() for p in only.split(",") if p.strip()}
        unknown = wanted - set(processes)
        if unknown:
            raise click.BadParameter(
                f"unknown process(es) {', '.join(sorted(unknown))}; the Procfile has {', '.join(processes)}",
                param_hint="--only",
            )
        processes = {k: v for k, v in processes.items() if k in wanted}
    settings.data_path.mkdir(parents=True, exist_ok=True)
    redis = EmbeddedRedis(settings.data_path) if settings.embedded_redis else None
    if redis is not None:
        redis.start()
    try:
        upgrade(settings.database)
        for key, value in settings.describe().items():
            click.echo(f"  {key:15} {value}")
        if "web" in processes:
            login = " (log in with WA_API_KEY)" if settings.api_key else ""
            click.echo(f"  web            {web_url(settings)}{login}")
        if "flower" in processes:
            click.echo(f"  flower         http://127.0.0.1:{settings.flower_port}/")
        click.echo("  Ctrl-C stops every process")
        manager = Manager(Printer(sys.stdout))
        env = child_env(settings)
        for name, command in processes.items():
            manager.add_process(name, command, env=env)
        manager.loop()
    finally:
        if redis is not None:
            redis.stop()
    sys.exit(manager.returncode or 0)
