"""``wa-tasks templates``: list, show, create, update, deactivate and preview message templates, and
install the shipped defaults."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from wa_tasks.pipeline.compose import CATEGORIES, TYPES

if TYPE_CHECKING:
    from wa_tasks.client import Client


def _client() -> Client:
    from wa_tasks.client import Client

    return Client()


def _content(content: str | None, path: str | None, *, required: bool) -> str | None:
    if content is not None and path is not None:
        raise click.UsageError("give the content with --content or --file, not both")
    if path is not None:
        try:
            return sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--file") from None
    if content is None and required:
        raise click.UsageError("give the content with --content TEXT or --file PATH (- for stdin)")
    return content


def _data(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object of template variables", param_hint="--data")
    return data


def _show(template: dict[str, Any]) -> None:
    state = "active" if template["isActive"] else "inactive"
    click.echo(f"{template['name']}  ({template['category']}, {template['type']}, {template['language']}, {state})")
    click.echo(f"variables: {', '.join(template['variables']) or '-'}")
    click.echo(f"send window: {template.get('sendWindow') or 'the category' + chr(39) + 's'}")
    click.echo("")
    click.echo(template["content"])


WINDOW_HELP = (
    "Its own send window instead of its category's: hours such as 08:00-20:00 (ranges comma-separated) or 'always'."
)


@click.group()
def templates() -> None:
    """Message templates (Jinja2, {{variable}}; filters rupiah, tanggal, tanggal_jam, sisa_waktu, durasi)."""


@templates.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--active", "active_only", is_flag=True, help="Only the active templates.")
def list_(as_json: bool, active_only: bool) -> None:
    """List templates by name."""
    rows = _client().list_templates(include_inactive=not active_only)
    if as_json:
        click.echo(json.dumps({"templates": rows}, indent=2, ensure_ascii=False))
        return
    table = Table()
    table.add_column("name", no_wrap=True)
    for column in ("category", "type", "active", "variables"):
        table.add_column(column)
    for t in rows:
        table.add_row(t["name"], t["category"], t["type"], "yes" if t["isActive"] else "no", ", ".join(t["variables"]))
    Console().print(table)


@templates.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(name: str, as_json: bool) -> None:
    """Show one template with its content."""
    template = _client().get_template(name)
    if as_json:
        click.echo(json.dumps(template, indent=2, ensure_ascii=False))
    else:
        _show(template)


@templates.command()
@click.argument("name")
@click.option("--content", help="The template text.")
@click.option("--file", "path", help="Read the template text from this file (- for stdin).")
@click.option("--category", type=click.Choice(CATEGORIES), default="notification", show_default=True)
@click.option("--type", "type_", type=click.Choice(TYPES), default="text", show_default=True)
@click.option("--language", default="id", show_default=True)
@click.option("--inactive", is_flag=True, help="Save it inactive (not usable until activated).")
@click.option("--window", help=WINDOW_HELP)
def create(
    name: str,
    content: str | None,
    path: str | None,
    category: str,
    type_: str,
    language: str,
    inactive: bool,
    window: str | None,
) -> None:
    """Create template NAME."""
    text = _content(content, path, required=True)
    assert text is not None
    created = _client().create_template(
        name, text, category=category, type=type_, language=language, is_active=not inactive, send_window=window
    )
    click.echo(f"created template {created['name']} (variables: {', '.join(created['variables']) or '-'})")


@templates.command()
@click.argument("name")
@click.option("--content", help="New template text.")
@click.option("--file", "path", help="Read the new text from this file (- for stdin).")
@click.option("--category", type=click.Choice(CATEGORIES))
@click.option("--type", "type_", type=click.Choice(TYPES))
@click.option("--language")
@click.option("--activate", "is_active", flag_value=True, default=None, help="Make it usable again.")
@click.option("--window", help=WINDOW_HELP + " 'category': back to the category's window.")
def update(
    name: str,
    content: str | None,
    path: str | None,
    category: str | None,
    type_: str | None,
    language: str | None,
    is_active: bool | None,
    window: str | None,
) -> None:
    """Change template NAME (only the options given)."""
    text = _content(content, path, required=False)
    updated = _client().update_template(
        name,
        content=text,
        category=category,
        type=type_,
        language=language,
        is_active=is_active,
        **({} if window is None else {"send_window": window}),
    )
    click.echo(f"updated template {updated['name']} (variables: {', '.join(updated['variables']) or '-'})")


@templates.command()
@click.argument("name")
def deactivate(name: str) -> None:
    """Stop template NAME from being used for new messages."""
    _client().deactivate_template(name)
    click.echo(f"template {name} is inactive; `wa-tasks templates update {name} --activate` brings it back")


@templates.command()
@click.argument("name", required=False)
@click.option("--data", "data_json", help="Sample data as a JSON object.")
@click.option("--content", help="Preview this text instead of a saved template.")
@click.option("--type", "type_", type=click.Choice(TYPES), default="text", show_default=True, help="With --content.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preview(name: str | None, data_json: str | None, content: str | None, type_: str, as_json: bool) -> None:
    """Show what template NAME sends with sample data; nothing is queued."""
    if (name is None) == (content is None):
        raise click.UsageError("give a template NAME or --content TEXT")
    result = _client().preview_template(name, _data(data_json), content=content, type=type_)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo(result["text"])
    click.echo("")
    click.echo(f"missing: {', '.join(result['missing']) or '-'}")
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}")


@templates.command("install-defaults")
def install_defaults() -> None:
    """Add the shipped templates that are missing (an existing one is never overwritten)."""
    result = _client().install_default_templates()
    for name in result["installed"]:
        click.echo(f"installed {name}")
    for name in result["kept"]:
        click.echo(f"kept {name} (already present)")
