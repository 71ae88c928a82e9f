"""``wa-tasks stats``: one day's figures, overall and per session."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from wa_tasks.client import Client


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


@click.command()
@click.option("--day", help="Local day (WIB) as YYYY-MM-DD; default today.")
@click.option("--session", help="Only this session's figures.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(day: str | None, session: str | None, as_json: bool) -> None:
    """Sent, delivered, read, failed, expired, average delivery time and active sessions of one day."""
    figures: dict[str, Any] = Client().stats(day, session)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    table = Table(
        "session", "sent", "delivered", "read", "failed", "expired", "avg delivery", title=f"{figures['day']} (WIB)"
    )
    for sid, per in figures["sessions"].items():
        table.add_row(
            sid,
            str(per["sent"]),
            str(per["delivered"]),
            str(per["read"]),
            str(per["failed"]),
            str(per["expired"]),
            _seconds(per["avg_delivery_seconds"]),
        )
    table.add_row(
        "all",
        str(figures["sent"]),
        str(figures["delivered"]),
        str(figures["read"]),
        str(figures["failed"]),
        str(figures["expired"]),
        _seconds(figures["avg_delivery_seconds"]),
        style="bold",
    )
    Console().print(table)
    click.echo(f"active sessions: {figures['active_sessions']}")
