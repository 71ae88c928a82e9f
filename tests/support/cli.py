"""``wa-tasks`` commands run inside the test process: the command group that ``python -m wa_tasks``
runs, with the ``WA_*`` environment of a child process, without paying for a new interpreter that
imports wa_tasks (seconds on a busy machine) at every call."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from click.testing import CliRunner, Result

from wa_tasks import client as client_module
from wa_tasks.cli import main as cli_main
from wa_tasks.settings import get_settings


@contextlib.contextmanager
def _as_a_new_process() -> Iterator[None]:
    """Settings and the default client read afresh from the environment, as a new process does;
    this process' logging given back afterwards (every command configures its own)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    get_settings.cache_clear()
    client_module._default = None
    try:
        yield
    finally:
        get_settings.cache_clear()
        client_module._default = None
        root.handlers[:] = handlers
        root.setLevel(level)


def _wa_env(env: Mapping[str, str]) -> dict[str, str | None]:
    """``env``'s ``WA_*`` variables, and this process' other ``WA_*`` ones unset."""
    changes: dict[str, str | None] = dict.fromkeys((name for name in os.environ if name.startswith("WA_")), None)
    changes.update((k, v) for k, v in env.items() if k.startswith("WA_"))
    return changes


def invoke(env: Mapping[str, str], args: list[str]) -> Result:
    """``wa-tasks ARGS`` with ``env``'s ``WA_*`` variables. An exception that escaped the command
    (a traceback, in a process of its own) fails the test."""
    with _as_a_new_process():
        result = CliRunner().invoke(cli_main.cli, args, env=_wa_env(env), prog_name="wa-tasks")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"wa-tasks {args} raised {result.exception!r}\n{result.output}") from result.exception
    return result


def exec_argv(env: Mapping[str, str], args: list[str]) -> list[str]:
    """The command line that ``wa-tasks ARGS`` hands its process to (``worker``, ``beat`` and
    ``flower`` exec Celery's own command), found by running the command with the exec caught."""
    caught: list[list[str]] = []

    def catch(argv: list[str]) -> Any:
        caught.append(argv)

    original = cli_main._exec
    cli_main._exec = catch
    try:
        result = invoke(env, args)
    finally:
        cli_main._exec = original
    if len(caught) != 1:
        raise AssertionError(f"wa-tasks {args} did not exec a command (exit {result.exit_code}):\n{result.output}")
    return caught[0]
