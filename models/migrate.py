"""Run the Alembic migrations in ``migrations/`` against a database URL (``wa-tasks migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: The migrations folder beside the packages (installed with ``pip install -e .``).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    if not (MIGRATIONS_DIR / "env.py").exists():
        raise RuntimeError(
            f"Alembic migrations not found at {MIGRATIONS_DIR}; install wa-tasks from its source tree "
            "(pip install -e .)"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
