"""``wa-tasks keys``: encryption keys for customer data at rest."""

from __future__ import annotations

import click

from wa_tasks.settings import get_settings


@click.group()
def keys() -> None:
    """Keys that encrypt message texts, template data and incoming texts at rest."""


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
