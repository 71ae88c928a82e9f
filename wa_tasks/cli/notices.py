"""``wa-tasks notices``: the notices about one ref (an invoice number): list them, cancel the waiting ones."""

from __future__ import annotations

import json

import click


@click.group()
def notices() -> None:
    """Notices that know their invoice: list or cancel the messages about one ref."""


@notices.command("cancel")
@click.option("--ref", required=True, help="What the notices are about, e.g. an invoice number (INV-7).")
@click.option("--category", "categories", multiple=True, help="Only this template category (repeatable).")
def cancel(ref: str, categories: tuple[str, ...]) -> None:
    """Cancel the messages about REF still waiting (scheduled, queued or routed; never one being sent)."""
    from wa_tasks import client

    count = client.cancel_pending(ref, list(categories) or None)
    click.echo(f"{count} waiting message(s) about {ref} cancelled")


@notices.command("list")
@click.option("--ref", required=True, help="What the notices are about, e.g. an invoice number (INV-7).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def listing(ref: str, as_json: bool) -> None:
    """The messages about REF, newest first: status, when due, notice key."""
    from wa_tasks.admin import queue_view
    from wa_tasks.settings import get_settings

    rows = queue_view.list_messages(get_settings(), ref=ref, limit=queue_view.MAX_LIMIT)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        when = row["sendAt"] or row["createdAt"]
        click.echo(f"{row['id']}  {row['status']:<9}  {when}  {row['noticeKey'] or '-'}")
    if not rows:
        click.echo(f"no messages about {ref}")
