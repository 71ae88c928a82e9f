"""Template rendering: Jinja2 in a sandbox with the seed's ``{{variable}}`` syntax.

A missing variable is an error raised to the caller before anything is queued: a customer must
never receive ``{{customer_name}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wa_tasks.errors import TemplateRenderError

#: WhatsApp's text limit the seed enforces (§11).
MAX_LENGTH = 4096

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def variables_of(content: str, *, name: str = "template") -> list[str]:
    """The variable names ``content`` uses, sorted."""
    try:
        return sorted(meta.find_undeclared_variables(_env.parse(content)))
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{name} has a syntax error on line {exc.lineno}: {exc.message}") from None


def render(content: str, data: Mapping[str, Any] | None, *, name: str = "template") -> str:
    """Render ``content`` with ``data``; every variable must be given."""
    data = dict(data or {})
    missing = [v for v in variables_of(content, name=name) if v not in data]
    if missing:
        raise TemplateRenderError(f"{name} needs data for: {', '.join(missing)}")
    try:
        text = _env.from_string(content).render(data)
    except (UndefinedError, SecurityError) as exc:
        raise TemplateRenderError(f"{name} could not be rendered: {exc}") from None
    except Exception as exc:  # bad data in an expression: 1/0, "a" + 1, a sandbox limit
        raise TemplateRenderError(f"{name} could not be rendered: {type(exc).__name__}: {exc}") from None
    if len(text) > MAX_LENGTH:
        raise TemplateRenderError(f"{name} renders to {len(text)} characters; the limit is {MAX_LENGTH}")
    return text
