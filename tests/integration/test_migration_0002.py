"""Migration 0002 on SQLite and PostgreSQL: media columns, the opt-out table and the default
templates go in and come out again, and an operator's own template survives both ways."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from conftest import postgres_url
from models.db import create
from models.migrate import downgrade, upgrade
from wa_tasks.default_templates import DEFAULTS

pytestmark = pytest.mark.integration

MEDIA_COLUMNS = {"media_url", "media_data", "media_mimetype", "media_filename"}
EDITED = "Halo {{customer_name}}, tagihan {{invoice_number}} belum dibayar."


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgres_url()
    name = f"wa_m0002_{uuid.uuid4().hex[:8]}"
    admin = create(base).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


def test_0002_up_down_up_installs_the_defaults_and_keeps_an_operators_template(fresh_database: str) -> None:
    url = fresh_database
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
    assert installed["payment_reminder"] == (EDITED, False)
    for name in set(DEFAULTS) - {"payment_reminder"}:
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
