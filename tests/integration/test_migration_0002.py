"""Migration 0002 on SQLite and PostgreSQL: media columns, the opt-out table and the default
templates go in and come out again, and an operator's own template survives both ways."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, text

from models.db import create
from models.migrate import downgrade, upgrade
from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0002

pytestmark = pytest.mark.integration

MEDIA_COLUMNS = {"media_url", "media_data", "media_mimetype", "media_filename"}
EDITED = "Halo {{customer_name}}, tagihan {{invoice_number}} belum dibayar."


def _templates(url: str) -> dict[str, tuple[str, bool]]:
    engine = create(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, content, is_active FROM whatsapp_templates")).all()
    engine.dispose()
    return {r.name: (r.content, bool(r.is_active)) for r in rows}


def _schema(url: str) -> tuple[set[str], set[str]]:
    engine = create(url)
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    columns = {c["name"] for c in inspector.get_columns("whatsapp_messages")}
    engine.dispose()
    return tables, columns


def test_0002_up_down_up_installs_the_defaults_and_keeps_an_operators_template(empty_database: str) -> None:
    url = empty_database
    # Given a database at 0001 where the operator already wrote their own payment_reminder, and a message
    upgrade(url, "0001")
    now = dt.datetime(2025, 1, 1, 0, 0)
    engine = create(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO whatsapp_templates (name, category, type, content, variables, language, is_active,"
                " created_at, updated_at) VALUES ('payment_reminder', 'reminder', 'text', :content,"
                " '[\"customer_name\", \"invoice_number\"]', 'id', :active, :now, :now)"
            ),
            {"content": EDITED, "active": False, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO whatsapp_messages (id, to_number, message_type, content, status, priority, attempts,"
                " max_attempts, created_at, updated_at) VALUES ('msg_old', '6281234567890', 'text', 'Halo',"
                " 'read', 5, 1, 3, :now, :now)"
            ),
            {"now": now},
        )
    engine.dispose()

    # When 0002 runs
    upgrade(url, "0002")

    # Then the media columns and the opt-out table exist, the message is intact, the missing defaults
    # are installed and the operator's template is untouched (content and inactive state)
    tables, columns = _schema(url)
    assert "whatsapp_opt_outs" in tables and columns >= MEDIA_COLUMNS
    engine = create(url)
    with engine.connect() as conn:
        old = conn.execute(text("SELECT content, media_url, media_data FROM whatsapp_messages")).one()
    engine.dispose()
    assert tuple(old) == ("Halo", None, None)
    installed = _templates(url)
    assert set(installed) == set(INSTALLED_BY_0002)  # later defaults come with later migrations
    assert installed["payment_reminder"] == (EDITED, False)
    for name in set(INSTALLED_BY_0002) - {"payment_reminder"}:
        assert installed[name] == (DEFAULTS[name].content, True)

    # When it is undone, the schema is 0001's again and only the untouched defaults are removed
    downgrade(url, "0001")
    tables, columns = _schema(url)
    assert "whatsapp_opt_outs" not in tables and not MEDIA_COLUMNS & columns
    assert _templates(url) == {"payment_reminder": (EDITED, False)}

    # And it runs again cleanly
    upgrade(url)
    assert set(_templates(url)) == set(DEFAULTS)
    assert _templates(url)["payment_reminder"] == (EDITED, False)
