"""Comments and docstrings cite only what is in the repository: a reader has no access to design
notes, specifications or style guides kept elsewhere, so a comment says its reason itself.

The patterns are citation forms only: ``WA_SIM_SEED``, random seeds and "seeded" stay legitimate.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The project's own code and tests (not the vendored minified scripts, not measured results).
SOURCES = ["wa_tasks", "sessions_host", "models", "migrations", "bench", "celeryconfig.py", "tests"]
SUFFIXES = {".py", ".mako", ".html", ".css", ".js", ".md"}

#: Citations of documents that are not in the repository.
CITATIONS = re.compile(
    r"design\.md"
    r"|style\.md"
    r"|seed\s*§"  # "seed §8.2", "Seed §10.2"
    r"|§\s*\d"  # a numbered section of some document: "(§11)"
    r"|\bthe seed's"
    r"|\(seed[: ]"  # "(seed: maxAttempts 3)", "(seed default)"
    r"|shared[ /]notes"
    r"|notes/neonize"
    r"|notes/celery-redis|celery-redis notes",
    re.IGNORECASE,
)


def source_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [
            f
            for f in candidates
            if f.is_file()
            and f.suffix in SUFFIXES
            and not f.name.endswith(".min.js")
            and "__pycache__" not in f.parts
            and f.resolve() != Path(__file__).resolve()
        ]
    return files


def test_the_scan_covers_the_source() -> None:
    scanned = {f.relative_to(ROOT).as_posix() for f in source_files()}
    for expected in ("celeryconfig.py", "wa_tasks/client.py", "sessions_host/host.py", "models/message.py"):
        assert expected in scanned
    assert "tests/unit/test_source_comments.py" not in scanned


def test_the_patterns_match_citations_only() -> None:
    citations = ["(seed §8.2)", "Seed §10.2: every 30 s", "limit (§11)", "the seed's shape", "(seed: retry_count)"]
    legitimate = ["WA_SIM_SEED", "random.seed(1234)", "random.Random(seed)", "seeded random times", "seed: int = 0"]
    assert [c for c in citations if not CITATIONS.search(c)] == []
    assert [text for text in legitimate if CITATIONS.search(text)] == []


def test_no_source_file_cites_a_document_outside_the_repository() -> None:
    hits = [
        f"{f.relative_to(ROOT).as_posix()}:{n}: {line.strip()}"
        for f in source_files()
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1)
        if CITATIONS.search(line)
    ]
    assert not hits, "say the reason instead of citing a document outside the repository:\n" + "\n".join(hits)
