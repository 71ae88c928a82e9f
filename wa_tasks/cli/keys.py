"""``wa-tasks keys``: encryption keys for customer data at rest, and scoped API keys."""

from __future__ import annotations

import click

from wa_tasks.settings import get_settings


@click.group()
def keys() -> None:
    """Keys that encrypt customer data at rest (generate, rotate), and scoped API keys (api)."""


@keys.command()
def generate() -> None:
    """Print a new key (put it first in WA_ENCRYPTION_KEY, then run `keys rotate`)."""
    from wa_tasks.ops.encryption_keys import generate as new_key

    click.echo(new_key())


@keys.command()
def rotate() -> None:
    """Re-encrypt all stored data with the first key of WA_ENCRYPTION_KEY (runs online, in batches).
    Afterwards the old keys can be removed from WA_ENCRYPTION_KEY."""
    from wa_tasks.ops.encryption_keys import rotate as run

    try:
        counts = run(get_settings())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for table, count in counts.items():
        click.echo(f"{table}: {count} row(s) re-encrypted with the newest key")


@keys.group("api")
def api() -> None:
    """Scoped API keys: send-only keys for billing apps and routers that can only put a key in a URL."""


@api.command("create")
@click.option(
    "--scope",
    type=click.Choice(["send"]),
    required=True,
    help="send: POST /send and the drop-in endpoints (/compat/...), nothing else",
)
@click.option("--name", default=None, help="Who uses it, e.g. phpnuxbill or router-1")
def api_create(scope: str, name: str | None) -> None:
    """Create a key and print it once (only its hash is stored: copy it now)."""
    from wa_tasks.admin import api_keys

    row, key = api_keys.create(get_settings(), scope, name)
    click.echo(key)
    click.echo(
        f"id {row['id']}, scope {row['scope']}: shown only now; revoke with `wa-tasks keys api revoke {row['id']}`",
        err=True,
    )


@api.command("list")
def api_list() -> None:
    """The keys (never the keys themselves): id, scope, first characters, name, created, revoked."""
    from wa_tasks.admin import api_keys

    rows = api_keys.list_keys(get_settings())
    if not rows:
        click.echo("no API keys (create one with `wa-tasks keys api create --scope send`)")
    for row in rows:
        revoked = f"revoked {row['revokedAt']}" if row["revokedAt"] else "active"
        name = row["name"] or "-"
        click.echo(f"{row['id']}  {row['scope']}  {row['prefix']}…  {name}  created {row['createdAt']}  {revoked}")


@api.command("revoke")
@click.argument("key_id")
def api_revoke(key_id: str) -> None:
    """Revoke a key by its id: its next request is refused."""
    from wa_tasks.admin import api_keys

    row = api_keys.revoke(get_settings(), key_id)
    click.echo(f"{row['id']} revoked at {row['revokedAt']}")
