"""Template rendering: Jinja2 in a sandbox with the seed's ``{{variable}}`` syntax.

A missing variable is an error raised to the caller before anything is queued: a customer must
never receive ``{{customer_name}}``. Templates can use the Indonesian formatting helpers of
:mod:`wa_tasks.formatting` (``{{ amount|rupiah }}``, ``{{ due_date|tanggal }}``, ...). ``preview``
renders for an operator instead: missing variables are listed and shown as ``{{name}}``, and the
content warnings of seed §11 (long runs of one character, links) are reported, not refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from wa_tasks.errors import TemplateRenderError
from wa_tasks.formatting import HELPERS, FormattingError

#: WhatsApp's text limit the seed enforces (§11).
MAX_LENGTH = 4096

#: Seed §11 spam patterns, reported as warnings: one character 11 or more times in a row, and links.
REPEATED_RUN = re.compile(r"(.)\1{10,}", re.DOTALL)
LINK = re.compile(r"https?://\S+", re.IGNORECASE)


class _ShownMissing(ChainableUndefined):
    """Preview only: a missing variable prints as ``{{name}}`` so the operator sees where it goes.

    What the sandbox refused (``''.__class__``) still fails: only missing data is shown."""

    __slots__ = ()

    def __str__(self) -> str:
        if self._undefined_exception is not UndefinedError or self._undefined_hint:
            self._fail_with_undefined_error()
        return "{{" + (self._undefined_name or "?") + "}}"


def _passing_missing(helper: Callable[..., str]) -> Callable[..., Any]:
    """A helper that hands a preview's missing variable through unchanged; any other undefined
    value fails with its own message (not as "not an amount")."""

    @functools.wraps(helper)
    def wrapped(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, _ShownMissing):
            return value
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return helper(value, *args, **kwargs)

    return wrapped


def _environment(undefined: type[Undefined]) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=undefined, autoescape=False, keep_trailing_newline=True)
    helpers = {name: _passing_missing(helper) for name, helper in HELPERS.items()}
    env.filters.update(helpers)
    env.globals.update(helpers)
    return env


_env = _environment(StrictUndefined)
_preview_env = _environment(_ShownMissing)


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
    text = _render_with(_env, content, data, name)
    if len(text) > MAX_LENGTH:
        raise TemplateRenderError(f"{name} renders to {len(text)} characters; the limit is {MAX_LENGTH}")
    return text


def _render_with(env: ImmutableSandboxedEnvironment, content: str, data: dict[str, Any], name: str) -> str:
    try:
        return env.from_string(content).render(data)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{name} has a syntax error on line {exc.lineno}: {exc.message}") from None
    except (UndefinedError, SecurityError, FormattingError) as exc:
        raise TemplateRenderError(f"{name} could not be rendered: {exc}") from None
    except Exception as exc:  # bad data in an expression: 1/0, "a" + 1, a sandbox limit
        raise TemplateRenderError(f"{name} could not be rendered: {type(exc).__name__}: {exc}") from None


def content_warnings(text: str) -> list[str]:
    """Seed §11's spam checks, as advice for the operator (sending is not refused for them)."""
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
    #: Content advice (seed §11) and anything that would make the send fail (length).
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
