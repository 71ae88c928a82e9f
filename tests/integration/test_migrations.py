"""Alembic migrations on SQLite and PostgreSQL: up, down, up again, and the models match them."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from models import Base
from models.db import create
from models.migrate import downgrade, upgrade

pytestmark = pytest.mark.integration

TABLES = {"whatsapp_sessions", "whatsapp_templates", "whatsapp_messages", "whatsapp_queue_jobs"}


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
