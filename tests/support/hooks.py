"""An incoming-message hook for the tests (``WA_INCOMING_HOOK=python:support.hooks:record``): it
appends each call's keyword arguments as a JSON line to the file named by ``WA_TEST_HOOK_FILE``."""

from __future__ import annotations

import json
import os
from typing import Any


def record(**payload: Any) -> None:
    with open(os.environ["WA_TEST_HOOK_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(payload) + "\n")
