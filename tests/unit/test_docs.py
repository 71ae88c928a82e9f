"""The docs stay true: the settings, commands, benchmarks, files and links that README.md and docs/
name exist, and docs/settings.md documents every setting with its real default.

A new ``Settings`` field fails ``test_every_setting_is_documented`` until it has a row in
docs/settings.md; a renamed setting or command fails the tests that read the docs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import click
import pytest

from wa_tasks.cli.main import cli
from wa_tasks.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS_DOC = ROOT / "docs" / "settings.md"

#: ``WA_*`` variables read outside ``Settings``: by the tests, the benchmarks and ``./dev``, never by
#: the running system. Each is checked to be read by the file named here.
OUTSIDE_SETTINGS = {
    "WA_TEST_POSTGRES_URL": ("tests/conftest.py", "the tests' PostgreSQL database"),
    "WA_TEST_REDIS_URL": ("tests/conftest.py", "an existing Redis for the tests instead of a private one"),
    "WA_TEST_CHROMIUM": ("tests/integration/test_pages.py", "the chromium binary of the browser tests"),
    "WA_DRILL_SOAK": ("tests/integration/test_drills.py", "the fault drills as a longer soak"),
    "WA_UPDATE_SCREENSHOTS": ("tests/integration/test_pages.py", "refreshes docs/screenshots/"),
    "WA_BENCH_DATABASE_URL": ("bench/harness.py", "the database the benchmarks drop and create again"),
    "WA_VENV": ("dev", "the virtual environment of ./dev"),
}

#: ``WA_NAME``, or ``WA_PREFIX_*`` standing for every setting that starts with ``WA_PREFIX_``.
VARIABLE = re.compile(r"\bWA_[A-Z0-9_]+(\*)?")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`([^`\n]+)`")
#: Where a command line starts inside code: ``wa-tasks ...``, ``./dev ...``, ``python -m bench ...``.
COMMAND = re.compile(r"(?:(?<![\w/.@'-])wa-tasks|\./dev|python -m bench)(?=\s|$)[^\n]*")


def setting_variables() -> dict[str, str]:
    """Environment variable → field name, as pydantic-settings reads them."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = {}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias or info.alias
        names[(alias if isinstance(alias, str) else prefix + name).upper()] = name
    return names


def doc_text() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in DOCS}


def code_of(text: str) -> list[str]:
    """The code of a markdown text: each line of its fenced blocks and each inline code span."""
    fenced = [line for block in FENCE.findall(text) for line in block.splitlines()]
    prose = FENCE.sub("", text)
    return fenced + INLINE.findall(prose)


def commands_in(text: str) -> list[str]:
    """Every command line shown in the code of ``text``, up to a ``#`` comment."""
    found = []
    for code in code_of(text):
        for match in COMMAND.finditer(code):
            found.append(match.group(0).split(" #")[0].strip())
    return found


def test_the_docs_are_found() -> None:
    names = set(doc_text())
    for page in ("sending-and-templates", "sessions", "guarantees", "operations", "http-api", "settings"):
        assert f"docs/{page}.md" in names
    assert {"README.md", "docs/benchmarks.md", "docs/development.md"} <= names


@pytest.mark.parametrize("name", sorted(OUTSIDE_SETTINGS))
def test_each_variable_outside_settings_is_read_where_the_list_says(name: str) -> None:
    path, _reason = OUTSIDE_SETTINGS[name]
    assert name in (ROOT / path).read_text(encoding="utf-8"), f"{name} is no longer read by {path}"
    assert name not in setting_variables(), f"{name} is a setting now: remove it from OUTSIDE_SETTINGS"


def test_every_variable_named_in_the_docs_exists() -> None:
    known = setting_variables()
    wrong = []
    for page, text in doc_text().items():
        for match in VARIABLE.finditer(text):
            name, is_prefix = match.group(0).rstrip("*"), match.group(1) is not None
            if is_prefix:
                if not any(v.startswith(name) for v in known):
                    wrong.append(f"{page}: {match.group(0)} matches no setting")
            elif name not in known and name not in OUTSIDE_SETTINGS:
                wrong.append(f"{page}: {name} is not a setting of wa_tasks.settings.Settings")
    assert not wrong, "\n".join(wrong)


def settings_rows() -> dict[str, list[str]]:
    """The rows of docs/settings.md's tables by variable: the cells after the name."""
    rows = {}
    for line in SETTINGS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\|\s*`(WA_[A-Z0-9_]+)`\s*\|(.*)\|\s*$", line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} has two rows in docs/settings.md"
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_every_setting_is_documented() -> None:
    rows = settings_rows()
    missing = sorted(set(setting_variables()) - set(rows))
    assert not missing, f"settings without a row (variable | default | meaning) in docs/settings.md: {missing}"
    empty = sorted(name for name, cells in rows.items() if len(cells) < 2 or not all(cells[:2]))
    assert not empty, f"rows of docs/settings.md without a default or a meaning: {empty}"


def _same_default(written: str, default: Any) -> bool:
    if isinstance(default, bool):
        return written == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(written) == float(default)
        except ValueError:
            return False
    return written == str(default)


def test_the_documented_defaults_are_the_real_ones() -> None:
    rows = settings_rows()
    wrong = []
    for variable, field in setting_variables().items():
        default = Settings.model_fields[field].default
        if default is None or variable not in rows:
            continue  # unset, or derived from other settings: described in words
        shown = re.match(r"`([^`]*)`", rows[variable][0])
        if shown is None or not _same_default(shown.group(1), default):
            wrong.append(f"{variable}: docs/settings.md says {rows[variable][0]!r}, the default is {default!r}")
    assert not wrong, "\n".join(wrong)


def _words(segment: str) -> list[str]:
    return segment.split()


def _option(token: str) -> str | None:
    """``--name`` of a token such as ``[--pace``, ``--data=...`` or ``--json]``; None for other words."""
    token = token.strip("[](),;")
    if not token.startswith("-") or token in ("-", "--") or token[1:2].isdigit():
        return None
    return token.split("=", 1)[0]


def _options_of(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


def _placeholder(word: str) -> bool:
    return word.startswith(("<", "ID", "NAME", "..."))


def check_wa_tasks(line: str) -> list[str]:
    """What of ``wa-tasks A [B] [--options] | C ...`` does not exist in the click command tree.

    Alternatives after `` | `` are commands of the same group as the first one; a part that starts
    with an option (``[--pace S | --default-pace]``) continues the command before it.
    """
    problems: list[str] = []
    parent: click.Group = cli
    leaf: click.Command = cli
    for number, segment in enumerate(line.split(" | ")):
        words = _words(segment)
        if not words:
            continue
        if number > 0 and _option(words[0]) is not None:
            command, rest = leaf, words  # continues the previous command
        else:
            command, group, rest = parent, parent, words
            while isinstance(command, click.Group) and rest and _option(rest[0]) is None:
                if _placeholder(rest[0]):
                    return problems
                sub = command.get_command(click.Context(command), rest[0])
                if sub is None:
                    problems.append(f"`wa-tasks {line}`: {command.name or 'wa-tasks'} has no command {rest[0]!r}")
                    return problems
                group, command, rest = command, sub, rest[1:]
            parent, leaf = group, command
        for word in rest:
            option = _option(word)
            if option is not None and option not in _options_of(command):
                problems.append(f"`wa-tasks {line}`: {command.name} has no option {option}")
    return problems


def bench_names_and_options() -> tuple[set[str], set[str]]:
    source = (ROOT / "bench" / "__main__.py").read_text(encoding="utf-8")
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "BENCHMARKS" for t in node.targets):
            names = set(ast.literal_eval(node.value))
    return names, {*re.findall(r"add_argument\(\s*\"(--[a-z-]+)\"", source), "--help"}


def test_every_command_in_the_docs_exists() -> None:
    bench_names, bench_options = bench_names_and_options()
    problems, seen = [], 0
    for page, text in doc_text().items():
        for command in commands_in(text):
            seen += 1
            if command.startswith("python -m bench"):
                words = command.split()[3:]
                if words and not _placeholder(words[0]) and words[0] not in bench_names:
                    problems.append(f"{page}: `{command}`: no benchmark {words[0]!r}")
                unknown = {o for o in map(_option, words) if o is not None} - bench_options
                problems += [f"{page}: `{command}`: no option {o}" for o in sorted(unknown)]
                continue
            if command.startswith("./dev"):
                rest = command.removeprefix("./dev").strip()
                if rest.split()[:1] == ["test"]:
                    # ./dev test runs pytest with any arguments; the test files it names must exist.
                    paths = [w for w in rest.split() if w.startswith("tests/")]
                    problems += [f"{page}: `{command}`: no {p}" for p in paths if not (ROOT / p).exists()]
                    continue
                if not rest or _placeholder(rest):
                    continue  # ./dev alone runs `up`
            else:
                rest = command.removeprefix("wa-tasks").strip()
            problems += [f"{page}: {problem}" for problem in check_wa_tasks(rest)]
    assert seen > 50, f"only {seen} commands found in the docs: is the parsing broken?"
    assert not problems, "\n".join(problems)


def test_the_command_check_finds_what_does_not_exist() -> None:
    assert check_wa_tasks("sessions list [--json] | add --device WA-1 --priority 1 | remove ID") == []
    assert check_wa_tasks("sessions set ID [--pace S | --default-pace] [--number-since D | --new-number]") == []
    assert check_wa_tasks("sessions frobnicate ID")
    assert check_wa_tasks("sessions add --colour blue")
    assert check_wa_tasks("templates list | vanish NAME")
    assert check_wa_tasks("sessions set ID [--pace S | --no-such-option]")
    assert check_wa_tasks("deploy")


#: A path in the repository, as the docs cite files and folders.
REPOSITORY_PATH = re.compile(r"(?:wa_tasks|sessions_host|models|migrations|tests|bench|docs|\.ci)/[\w./-]*")
#: Made by a test run, not kept in git.
GENERATED = {"tests/artifacts/pages/"}


def test_every_file_the_docs_cite_exists() -> None:
    missing, seen = [], 0
    for page, text in doc_text().items():
        for code in code_of(text):
            for match in REPOSITORY_PATH.finditer(code):
                path = match.group(0).rstrip(".")
                if "<" in code[match.end() : match.end() + 1] or path in GENERATED:
                    continue
                seen += 1
                if not (ROOT / path).exists():
                    missing.append(f"{page}: {path}")
    assert seen > 30, f"only {seen} paths found in the docs: is the parsing broken?"
    assert not missing, "files the docs cite that do not exist:\n" + "\n".join(missing)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors_of(text: str) -> set[str]:
    """GitHub's anchors of a markdown text's headings: lower case, punctuation dropped, spaces → ``-``."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", text), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_link_between_the_docs_resolves() -> None:
    broken, seen = [], 0
    for path in DOCS:
        for target in LINK.findall(path.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            seen += 1
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and anchor not in anchors_of(linked.read_text(encoding="utf-8")):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert seen > 30, f"only {seen} links found in the docs: is the parsing broken?"
    assert not broken, "\n".join(broken)
