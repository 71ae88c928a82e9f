"""The in-process harness (``tests/support/inproc.py``) as a fixture: each test gets its own
installation on a copy of one migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.inproc import InProcess, migrated_database


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database made by the migrations, copied for each test (migrating takes half a second)."""
    return migrated_database(tmp_path_factory.mktemp("inproc-template") / "template.db")


@pytest.fixture
def inproc(tmp_path: Path, migrated_template: Path) -> Iterator[InProcess]:
    """An in-process installation with one connected simulated session, ``wa-1``."""
    with InProcess(tmp_path / "inproc", migrated_template) as running:
        running.add_session("WA-1", priority=1)
        yield running
