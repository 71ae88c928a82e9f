"""``wa-tasks sessions``: run the session host, or manage the configured sessions."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from wa_tasks.settings import get_settings


@click.group(invoke_without_command=True)
@click.option("--hostname", help="Name shown in Flower (default sessions@HOST.PID).")
@click.pass_context
def sessions(ctx: click.Context, hostname: str | None) -> None:
    """Without a subcommand: run the session host (keeps the sessions connected and sends)."""
    if ctx.invoked_subcommand is not None:
        return
    from sessions_host.host import SessionHost
    from wa_tasks.celery_app import app
    from wa_tasks.cli.main import _require_redis

    _require_redis()
    SessionHost(app, get_settings(), hostname=hostname).run()


@sessions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (seed §8.1 shape).")
def list_(as_json: bool) -> None:
    """List sessions with live status; the primary is marked."""
    from wa_tasks import sessions as manage

    rows = manage.listing(get_settings())
    if as_json:
        click.echo(json.dumps({"sessions": rows}, indent=2))
        return
    table = Table("id", "device", "priority", "status", "primary", "sent", "last activity", "transport")
    for r in rows:
        table.add_row(
            r["id"],
            r["deviceId"],
            str(r["priority"]),
            r["status"],
            "★" if r["isPrimary"] else "",
            str(r["messageCount"]),
            r["lastActivity"] or "-",
            r["transport"],
        )
    Console().print(table)


@sessions.command()
@click.option("--device", "device_id", required=True, help="Device name, e.g. WA-1.")
@click.option("--priority", type=int, default=999, show_default=True, help="Lower = preferred (1 = primary).")
@click.option("--id", "session_id", help="Session id (default: from the device name).")
@click.option("--transport", type=click.Choice(["simulated", "neonize"]), default="simulated", show_default=True)
@click.option("--pace", "pace_seconds", type=float, help="Seconds between sends (default WA_PACE_SECONDS).")
@click.option("--option", "options", multiple=True, help="Transport option KEY=VALUE (JSON value), repeatable.")
def add(
    device_id: str,
    priority: int,
    session_id: str | None,
    transport: str,
    pace_seconds: float | None,
    options: tuple[str, ...],
) -> None:
    """Configure a new session; running session hosts start it within a heartbeat."""
    from wa_tasks import sessions as manage

    parsed = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--option")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    click.echo(
        manage.add(
            get_settings(),
            device_id=device_id,
            priority=priority,
            session_id=session_id,
            transport=transport,
            options=parsed,
            pace_seconds=pace_seconds,
        )
    )


@sessions.command()
@click.argument("session_id")
def remove(session_id: str) -> None:
    """Delete a session; its unsent messages move to other sessions."""
    from wa_tasks import sessions as manage

    moved = manage.remove(get_settings(), session_id)
    click.echo(f"removed {session_id}; {moved} queued message(s) moved to other sessions")
