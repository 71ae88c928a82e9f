"""``wa-tasks webhooks``: the status events of the status callbacks: list them, send a dead one again."""

from __future__ import annotations

import json

import click


@click.group()
def webhooks() -> None:
    """Status events (status callbacks): list them, retry a dead one."""


@webhooks.command("list")
@click.option("--dead", is_flag=True, help="Only the events given up on (dead letters).")
@click.option("--pending", is_flag=True, help="Only the events waiting to be delivered.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def listing(dead: bool, pending: bool, limit: int, as_json: bool) -> None:
    """The latest status events, newest first: id, message, status, state, attempts, last error."""
    from wa_tasks import client

    if dead and pending:
        raise click.UsageError("give --dead or --pending, not both")
    state = "dead" if dead else "pending" if pending else None
    rows = client.webhook_events(state=state, limit=limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        error = f"  {row['lastError']}" if row["lastError"] else ""
        click.echo(
            f"{row['id']}  {row['messageId']}  {row['status']:<9}  {row['state']:<9}  "
            f"{row['attempts']} attempt(s)  {row['target']}{error}"
        )
    if not rows:
        click.echo("no dead status events" if dead else "no status events")


@webhooks.command("retry")
@click.argument("event_id")
def retry(event_id: str) -> None:
    """Send the dead status event EVENT_ID again (due now, with a new retry window)."""
    from wa_tasks import client

    row = client.retry_webhook(event_id)
    click.echo(f"{row['id']} is {row['state']}" + (", due now" if row["state"] == "pending" else ""))
