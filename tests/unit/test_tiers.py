"""Every test is in exactly one tier, as ``-m`` (and so ``./dev test --tier TIER``) selects them:
pytest's own collection, in a child process, finds no test in no tier and none in two."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("fast", "integration", "system", "slow")
#: What ``--collect-only -q`` says when ``-m`` selects nothing: "no tests collected (940 deselected)".
NONE_SELECTED = re.compile(r"^no tests collected \((\d+) deselected\)", re.MULTILINE)


def not_in_exactly_one_tier() -> str:
    """The ``-m`` expression of a test in no tier or in two."""
    in_none = "not (" + " or ".join(TIERS) + ")"
    in_two = " or ".join(f"({a} and {b})" for a, b in itertools.combinations(TIERS, 2))
    return f"({in_none}) or {in_two}"


def collect(expression: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", expression],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    return done.returncode, done.stdout + done.stderr


# A child pytest that imports every test module: a one-shot child process, the integration tier's.
@pytest.mark.integration
def test_every_test_is_in_exactly_one_tier() -> None:
    code, out = collect(not_in_exactly_one_tier())
    wrong = [line for line in out.splitlines() if "::" in line]
    assert not wrong, f"{len(wrong)} tests in no tier or in two:\n" + "\n".join(wrong)
    summary = NONE_SELECTED.search(out)
    assert code == 5 and summary is not None, f"the collection failed:\n{out}"
    assert int(summary.group(1)) > 0, f"nothing collected:\n{out}"


def test_the_expression_finds_a_test_in_no_tier_and_one_in_two() -> None:
    expression = not_in_exactly_one_tier()
    for markers, selected in [((), True), (("fast",), False), (("slow",), False), (("fast", "system"), True)]:
        names = {tier: tier in markers for tier in TIERS}
        assert eval(expression, {}, names) is selected, markers  # -m: Python's not, and, or, parentheses


def test_the_in_process_tests_cannot_leave_the_fast_tier() -> None:
    from conftest import pinned_violation

    assert pinned_violation("tests/inproc/test_inproc_pipeline.py", "fast") is None
    assert "fast" in (pinned_violation("tests/inproc/test_inproc_pipeline.py", "integration") or "")
    assert pinned_violation("tests/unit/test_transport_contract.py", "integration") is None
