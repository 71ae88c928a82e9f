"""Migration 0010 on SQLite and PostgreSQL: the billing day's templates go in on a database that
already has the first defaults, never over an operator's template of the same name, and come out
again only where untouched."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from models.db import create
from models.migrate import downgrade, upgrade
from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0002, INSTALLED_BY_0010

pytestmark = pytest.mark.integration

OWN_ISOLIR = "Halo {{customer_name}}, layanan diisolir. Hubungi kantor kami."


def _templates(url: str) -> dict[str, tuple[str, bool]]:
    engine = create(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, content, is_active FROM whatsapp_templates")).all()
    engine.dispose()
    return {r.name: (r.content, bool(r.is_active)) for r in rows}


def test_0010_installs_the_missing_billing_day_templates_and_keeps_an_operators(empty_database: str) -> None:
    url = empty_database
    # Given a database at 0009 (the first defaults in it) where the operator wrote their own isolir_notice
    upgrade(url, "0009")
    assert set(_templates(url)) == set(INSTALLED_BY_0002)
    engine = create(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO whatsapp_templates (name, category, type, content, variables, language, is_active,"
                " created_at, updated_at) VALUES ('isolir_notice', 'notification', 'text', :content,"
                " '[\"customer_name\"]', 'id', :active, :now, :now)"
            ),
            {"content": OWN_ISOLIR, "active": True, "now": dt.datetime(2025, 1, 1)},
        )
    engine.dispose()

    # When `wa-tasks migrate` brings it to the latest schema
    upgrade(url)

    # Then the three others are installed as shipped and the operator's isolir_notice is untouched
    installed = _templates(url)
    assert set(installed) == set(DEFAULTS) == set(INSTALLED_BY_0002) | set(INSTALLED_BY_0010)
    assert installed["isolir_notice"] == (OWN_ISOLIR, True)
    for name in set(INSTALLED_BY_0010) - {"isolir_notice"}:
        assert installed[name] == (DEFAULTS[name].content, True)

    # When it is undone, only the untouched new defaults go; and it runs again cleanly
    downgrade(url, "0009")
    assert set(_templates(url)) == set(INSTALLED_BY_0002) | {"isolir_notice"}
    upgrade(url)
    assert set(_templates(url)) == set(DEFAULTS)
    assert _templates(url)["isolir_notice"] == (OWN_ISOLIR, True)
