"""The in-process harness (``tests/support/inproc.py``) as fixtures (a plugin of ``tests/conftest.py``):
each test gets its own installation, on a copy of one migrated database. A test using them stays in
the fast tier: none of them is a real service (``TIER_RULES`` in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the harness loads fakeredis, FastAPI's test client ...: only for the tests that use it
    from support.inproc import InProcess


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One database made by the migrations, copied for each test (migrating takes half a second)."""
    from support.inproc import migrated_database

    return migrated_database(tmp_path_factory.mktemp("inproc-template") / "template.db")


@pytest.fixture
def make_inproc(tmp_path: Path, migrated_template: Path) -> Iterator[Callable[..., InProcess]]:
    """``make_inproc(**settings)``: an in-process installation with these settings (names of
    ``wa_tasks.settings.Settings`` fields) and no session yet."""
    from support.inproc import in_process

    with ExitStack() as stack:
        made = iter(range(1000))

        def make(**settings: object) -> InProcess:
            return stack.enter_context(in_process(tmp_path / f"inproc-{next(made)}", migrated_template, **settings))

        yield make


@pytest.fixture
def inproc(make_inproc: Callable[..., InProcess]) -> InProcess:
    """An in-process installation with one connected simulated session, ``wa-1``."""
    running = make_inproc()
    running.add_session("WA-1", priority=1)
    return running
