"""Template rendering: Jinja2 in a sandbox with ``{{variable}}`` syntax.

A missing variable is an error raised to the caller before anything is queued: a customer must
never receive ``{{customer_name}}``. Templates can use the Indonesian formatting helpers of
:mod:`wa_tasks.core.formatting` (``{{ amount|rupiah }}``, ``{{ due_date|tanggal }}``, ...). ``preview``
renders for an operator instead: missing variables are listed and shown as ``{{name}}``, and the
content warnings (long runs of one character, links: patterns that spam filters flag) are reported, not refused.

Every render runs in the sandbox of :mod:`wa_tasks.core.sandbox`, within the render limits of
:mod:`wa_tasks.core.render_budget` (size, steps, CPU); going over one is a :class:`TemplateRenderError`
that names the limit. Parsed and compiled templates are kept (per process) for the next render.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError

from wa_tasks.core import render_budget, sandbox
from wa_tasks.core.formatting import FormattingError

# The CPU time each render started here is given (the budget's limit, named where renders start).
from wa_tasks.core.render_budget import MAX_CPU_SECONDS as MAX_CPU_SECONDS
from wa_tasks.core.render_budget import MAX_STEPS as MAX_STEPS  # read by callers beside the API
from wa_tasks.errors import TemplateRenderError

#: The longest text a message may have, in characters.
MAX_LENGTH = 4096

#: Spam patterns, reported as warnings: one character 11 or more times in a row, and links.
REPEATED_RUN = re.compile(r"(.)\1{10,}", re.DOTALL)
LINK = re.compile(r"https?://\S+", re.IGNORECASE)

_env = sandbox.environment(StrictUndefined)
_preview_env = sandbox.environment(sandbox.ShownMissing)


def variables_of(content: str, *, name: str = "template") -> list[str]:
    """The variable names ``content`` uses, sorted."""
    try:
        return list(_variables(content))
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{name} has a syntax error on line {exc.lineno}: {exc.message}") from None


# A bulk job renders one template for every recipient: parsing and compiling it once (per process)
# leaves only the render itself to each. Compiled templates are shared by threads safely; a syntax
# error is raised again each time (exceptions are not cached). The compiled ones are kept fewer: a
# live preview compiles every draft typed, and a long template's code takes some memory.
@functools.lru_cache(maxsize=256)
def _variables(content: str) -> tuple[str, ...]:
    return tuple(sorted(meta.find_undeclared_variables(_env.parse(content))))


@functools.lru_cache(maxsize=64)
def _compiled(env: sandbox.BudgetedEnvironment, content: str) -> Template:
    return env.from_string(content)


def render(content: str, data: Mapping[str, Any] | None, *, name: str = "template") -> str:
    """Render ``content`` with ``data``; every variable must be given."""
    data = dict(data or {})
    missing = [v for v in variables_of(content, name=name) if v not in data]
    if missing:
        raise TemplateRenderError(f"{name} needs data for: {', '.join(missing)}")
    text = _render_with(_env, content, data, name)
    if len(text) > MAX_LENGTH:
        raise TemplateRenderError(f"{name} renders to {len(text)} characters; the limit is {MAX_LENGTH}")
    return text


def check_limits(content: str, *, name: str = "template") -> None:
    """Refuse ``content`` if it goes over the render limits before any data is given (rendered as a
    preview: missing variables shown, loops over them empty): it could never be sent. Other errors
    are left to the renders that have the data."""
    try:
        _budgeted_render(_preview_env, content, {})
    except render_budget.RenderLimitExceeded as exc:
        raise TemplateRenderError(f"{name} could not be rendered: {exc}") from None
    except Exception:
        pass


def _budgeted_render(env: sandbox.BudgetedEnvironment, content: str, data: dict[str, Any]) -> str:
    """Compile (or reuse) and render ``content`` within the render limits."""
    with render_budget.budgeted(MAX_CPU_SECONDS):
        return _compiled(env, content).render(data)


def _render_with(env: sandbox.BudgetedEnvironment, content: str, data: dict[str, Any], name: str) -> str:
    try:
        return _budgeted_render(env, content, data)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{name} has a syntax error on line {exc.lineno}: {exc.message}") from None
    except (UndefinedError, SecurityError, FormattingError) as exc:  # SecurityError: RenderLimitExceeded too
        raise TemplateRenderError(f"{name} could not be rendered: {exc}") from None
    except RecursionError:  # a macro calling itself without end
        raise TemplateRenderError(
            f"{name} could not be rendered: over the nesting limit: macros, calls or recursive loops "
            "nested more deeply than Python allows"
        ) from None
    except Exception as exc:  # bad data in an expression: 1/0, "a" + 1
        raise TemplateRenderError(f"{name} could not be rendered: {type(exc).__name__}: {exc}") from None


def content_warnings(text: str) -> list[str]:
    """Spam checks, as advice for the operator (sending is not refused for them)."""
    warnings = []
    for found in REPEATED_RUN.finditer(text):
        char = found.group(1)
        shown = repr(char) if char.strip() else {"\n": "line break", " ": "space"}.get(char, repr(char))
        warnings.append(
            f"{len(found.group(0))} × {shown} in a row: long runs of one character look like spam to "
            "WhatsApp and to customers; shorten it"
        )
    links = LINK.findall(text)
    if links:
        listed = ", ".join(link.rstrip(".,!?)") for link in links[:3]) + (" …" if len(links) > 3 else "")
        warnings.append(
            f"contains {len(links)} link(s) ({listed}): messages with links are reported as spam more "
            "often; send them only to customers who expect them"
        )
    return warnings


@dataclass(frozen=True)
class Preview:
    """What a template would send with some sample data (nothing is stored or queued)."""

    #: The rendered text; a missing variable shows as ``{{name}}``.
    text: str
    #: Variables the template uses, sorted.
    variables: list[str]
    #: Variables the sample data lacks (sending would be refused until they are given).
    missing: list[str]
    #: Content advice and anything that would make the send fail (length).
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "variables": self.variables, "missing": self.missing, "warnings": self.warnings}


def preview(
    content: str,
    data: Mapping[str, Any] | None,
    *,
    name: str = "template",
    finish: Callable[[str], str] = lambda text: text,
) -> Preview:
    """Render ``content`` for an operator: missing variables are listed instead of refused.

    ``finish`` turns the rendered text into what the customer would see (e.g. the plain-text
    fallback of a button message). Syntax errors and bad data still raise TemplateRenderError.
    """
    values = dict(data or {})
    variables = variables_of(content, name=name)
    missing = [v for v in variables if v not in values]
    text = finish(_render_with(_preview_env, content, values, name))
    warnings = content_warnings(text)
    if len(text) > MAX_LENGTH:
        warnings.append(f"renders to {len(text)} characters; sending is refused over {MAX_LENGTH}")
    return Preview(text=text, variables=variables, missing=missing, warnings=warnings)
