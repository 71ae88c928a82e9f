"""``wa-tasks sessions``: run the session host, or manage the configured sessions."""

from __future__ import annotations

import datetime as dt
import json

import click
from rich.console import Console
from rich.table import Table

from wa_tasks.cli.helpers import require_redis
from wa_tasks.settings import get_settings

#: A day on the command line.
DATE = click.DateTime(formats=["%Y-%m-%d"])
NUMBER_SINCE_HELP = "Day the number started using WhatsApp: ban safety's warm-up caps grow with its age"


@click.group(invoke_without_command=True)
@click.option("--hostname", help="Name shown in Flower (default sessions@HOST.PID).")
@click.pass_context
def sessions(ctx: click.Context, hostname: str | None) -> None:
    """Without a subcommand: run the session host (keeps the sessions connected and sends)."""
    if ctx.invoked_subcommand is not None:
        return
    from sessions_host.host import SessionHost
    from wa_tasks.infra.celery_app import app

    require_redis()
    SessionHost(app, get_settings(), hostname=hostname).run()


@sessions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the fields of GET /api/whatsapp/sessions).")
def list_(as_json: bool) -> None:
    """List sessions with live status; the primary is marked."""
    from wa_tasks.admin import session_config as manage

    rows = manage.listing(get_settings())
    if as_json:
        click.echo(json.dumps({"sessions": rows}, indent=2))
        return
    table = Table("id", "device", "priority", "status", "primary", "sent", "last activity", "health", "transport")
    for r in rows:
        status = r["status"] + (f" (paused until {r['pausedUntil']})" if r["pausedUntil"] else "")
        table.add_row(
            r["id"],
            r["deviceId"],
            str(r["priority"]),
            status,
            "★" if r["isPrimary"] else "",
            str(r["messageCount"]),
            r["lastActivity"] or "-",
            # A pending check's detail (when it is due) is in --json; the table stays narrow.
            f"{r['health'] or '-'}" + (f": {r['healthDetail']}" if r["health"] not in (None, "ok", "pending") else ""),
            r["transport"],
        )
    Console().print(table)


@sessions.command()
@click.option("--device", "device_id", required=True, help="Device name, e.g. WA-1.")
@click.option("--priority", type=int, default=999, show_default=True, help="Lower = preferred (1 = primary).")
@click.option("--id", "session_id", help="Session id (default: from the device name).")
@click.option("--transport", type=click.Choice(["simulated", "neonize"]), default="simulated", show_default=True)
@click.option("--pace", "pace_seconds", type=float, help="Seconds between sends (default WA_PACE_SECONDS).")
@click.option(
    "--number-since", type=DATE, metavar="YYYY-MM-DD", help=NUMBER_SINCE_HELP + " (default: today, a new number)."
)
@click.option("--option", "options", multiple=True, help="Transport option KEY=VALUE (JSON value), repeatable.")
def add(
    device_id: str,
    priority: int,
    session_id: str | None,
    transport: str,
    pace_seconds: float | None,
    number_since: dt.datetime | None,
    options: tuple[str, ...],
) -> None:
    """Configure a new session; running session hosts start it within a heartbeat."""
    from wa_tasks.admin import session_config as manage

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
            number_since=number_since.date() if number_since else None,
        )
    )


@sessions.command("set")
@click.argument("session_id")
@click.option("--priority", type=int, help="Lower = preferred: the lowest connected one is the primary.")
@click.option("--pace", "pace_seconds", type=float, help="Seconds between sends.")
@click.option("--default-pace", is_flag=True, help="Back to WA_PACE_SECONDS.")
@click.option("--number-since", type=DATE, metavar="YYYY-MM-DD", help=NUMBER_SINCE_HELP + ".")
@click.option(
    "--new-number", is_flag=True, help="Forget --number-since: the number's age counts from when it was added."
)
def set_(
    session_id: str,
    priority: int | None,
    pace_seconds: float | None,
    default_pace: bool,
    number_since: dt.datetime | None,
    new_number: bool,
) -> None:
    """Change SESSION_ID's priority, pace or number age, keeping its device linked (no new QR scan)."""
    from wa_tasks.admin import session_config as manage

    if pace_seconds is not None and default_pace:
        raise click.UsageError("give --pace or --default-pace, not both")
    if number_since is not None and new_number:
        raise click.UsageError("give --number-since or --new-number, not both")
    pace: object = None if default_pace else manage.KEEP if pace_seconds is None else pace_seconds
    since: object = None if new_number else manage.KEEP if number_since is None else number_since.date()
    manage.update(get_settings(), session_id, priority=priority, pace_seconds=pace, number_since=since)
    row = manage.view(get_settings(), session_id)
    shown = "WA_PACE_SECONDS" if row["paceSeconds"] is None else f"{row['paceSeconds']:g}s"
    age = f", number in use since {row['numberSince']}" if row["numberSince"] else ""
    click.echo(f"session {session_id}: priority {row['priority']}, pace {shown}{age}")


@sessions.command()
@click.argument("session_id")
@click.option("--keep-device", is_flag=True, help="Do not unlink the device from the phone first.")
def remove(session_id: str, keep_device: bool) -> None:
    """Unlink SESSION_ID's device, delete the session; its unsent messages move to other sessions."""
    from wa_tasks.admin import session_config as manage

    removal = manage.unlink_and_remove(get_settings(), session_id, unlink=not keep_device, timeout=20)
    if removal.unlinked:
        click.echo(f"device of {session_id} unlinked")
    elif removal.unlink_error:
        click.echo(
            f"warning: could not unlink the device ({removal.unlink_error}); remove it on the phone "
            "(Linked devices) if it is still listed",
            err=True,
        )
    moved = removal.moved
    click.echo(f"removed {session_id}; {moved} queued message(s) moved to other sessions")


@sessions.command()
@click.argument("session_id")
@click.option("--timeout", default=300.0, show_default=True, help="Give up after this many seconds.")
@click.option("--once", is_flag=True, help="Print the current code and exit.")
def qr(session_id: str, timeout: float, once: bool) -> None:
    """Show SESSION_ID's QR code in the terminal, refreshed as it rotates, until it is linked."""
    import time

    from wa_tasks.core import qr as render
    from wa_tasks.infra.redis_client import client_for
    from wa_tasks.infra.session_control import current_qr
    from wa_tasks.pipeline import live_state

    settings = get_settings()
    redis = client_for(settings.redis)
    shown = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = live_state.read(redis, [session_id]).get(session_id)
        if state is not None and state.connected:
            click.echo(f"session {session_id} is linked and connected")
            return
        found = current_qr(settings, session_id)
        if found and found[0] != shown:
            shown = found[0]
            if not once:
                click.clear()
            click.echo(render.terminal(shown))
            left = max(0, found[1] - time.time())
            click.echo(f"Scan with WhatsApp on the phone: Linked devices → Link a device ({left:.0f}s left)")
            if once:
                return
        elif once and not found:
            raise click.ClickException(
                f"session {session_id} shows no QR code (status: {state.status if state else 'offline'})"
            )
        time.sleep(0.5)
    raise click.ClickException(f"session {session_id} was not linked within {timeout:.0f}s")


@sessions.command()
@click.argument("session_id")
@click.option("--phone", required=True, help="The phone number of the WhatsApp account to link.")
def pair(session_id: str, phone: str) -> None:
    """Link SESSION_ID by phone number: prints the 8-character code to type on the phone."""
    from wa_tasks.infra.session_control import request

    answer = request(get_settings(), session_id, "pair", {"phone": phone})
    click.echo(f"On the phone: Linked devices → Link with phone number → enter {answer['code']}")


@sessions.command()
@click.argument("session_id")
def logout(session_id: str) -> None:
    """Unlink SESSION_ID's device (it needs a new QR scan afterwards)."""
    from wa_tasks.infra.session_control import request

    request(get_settings(), session_id, "logout")
    click.echo(f"session {session_id} logged out")


@sessions.command()
@click.argument("session_id")
def reconnect(session_id: str) -> None:
    """Restart SESSION_ID's connection (after a logout, or when it is stuck)."""
    from wa_tasks.infra.session_control import request

    request(get_settings(), session_id, "reconnect")
    click.echo(f"session {session_id} is reconnecting")


@sessions.command()
@click.argument("session_id")
def probe(session_id: str) -> None:
    """Time one round trip of SESSION_ID to WhatsApp (messages nobody)."""
    from wa_tasks.infra.session_control import request

    answer = request(get_settings(), session_id, "probe")
    click.echo(f"session {session_id} answered in {answer['latency_ms']} ms")
