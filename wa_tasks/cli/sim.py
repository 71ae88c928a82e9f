"""``wa-tasks sim``: look into and steer the simulated WhatsApp network."""

from __future__ import annotations

import json
from dataclasses import asdict

import click
from rich.console import Console
from rich.table import Table

from sessions_host.transports.simnet import SimNet
from wa_tasks.core.phone import normalize
from wa_tasks.infra.redis_client import client_for
from wa_tasks.settings import get_settings


def _simnet() -> SimNet:
    return SimNet(client_for(get_settings().sim_redis))


@click.group()
def sim() -> None:
    """The simulated WhatsApp network (recipient-side ledger, pairing, faults)."""


@sim.command()
@click.argument("number", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inbox(number: str | None, as_json: bool) -> None:
    """What the simulated network delivered (to NUMBER, or to everyone)."""
    wanted = normalize(number, get_settings().default_region).number if number else None
    entries = _simnet().ledger(wanted)
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], indent=2, ensure_ascii=False))
        return
    table = Table("at", "to", "from session", "text")
    for e in entries:
        table.add_row(e.at, e.to, e.session, e.text.splitlines()[0][:60] if e.text else "")
    Console().print(table)
    click.echo(f"{len(entries)} message(s)")


@sim.command()
@click.argument("session_id")
def scan(session_id: str) -> None:
    """Play a phone scanning SESSION_ID's QR code (pairs it)."""
    _simnet().scan(session_id)
    click.echo(f"scanned the QR code of {session_id}")


@sim.command()
@click.argument("session_id")
def drop(session_id: str) -> None:
    """Cut SESSION_ID's connection (until `restore`)."""
    _simnet().drop(session_id)
    click.echo(f"connection of {session_id} dropped")


@sim.command()
@click.argument("session_id")
def restore(session_id: str) -> None:
    """Let SESSION_ID connect again."""
    _simnet().restore(session_id)
    click.echo(f"connection of {session_id} restored")


@sim.command()
@click.argument("session_id")
@click.argument("number")
@click.argument("text")
def reply(session_id: str, number: str, text: str) -> None:
    """Play customer NUMBER sending TEXT to SESSION_ID's number (e.g. STOP to opt out)."""
    sender = normalize(number, get_settings().default_region).number
    wa_id = _simnet().reply(session_id, sender, text)
    click.echo(f"{sender} sent {text!r} to {session_id} ({wa_id})")
