"""Alembic migrations on SQLite and PostgreSQL: up, down, up again, and the models match them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from conftest import postgres_url
from models import Base
from models.db import create
from models.migrate import downgrade, upgrade

pytestmark = pytest.mark.integration

TABLES = {"whatsapp_sessions", "whatsapp_templates", "whatsapp_messages", "whatsapp_queue_jobs"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = postgres_url()
    name = f"wa_migrations_{uuid.uuid4().hex[:8]}"
    admin = create(base).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    engine = create(empty_database)
    upgrade(empty_database)
    assert set(inspect(engine).get_table_names()) >= TABLES

    downgrade(empty_database, "base")
    engine.dispose()
    assert not TABLES & set(inspect(engine).get_table_names())

    upgrade(empty_database)
    engine.dispose()
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_the_models_match_the_migrations(empty_database: str) -> None:
    upgrade(empty_database)
    engine = create(empty_database)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; write a migration: {diff}"
