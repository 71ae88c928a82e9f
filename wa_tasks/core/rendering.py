"""Template rendering: Jinja2 in a sandbox with ``{{variable}}`` syntax.

A missing variable is an error raised to the caller before anything is queued: a customer must
never receive ``{{customer_name}}``. Templates can use the Indonesian formatting helpers of
:mod:`wa_tasks.core.formatting` (``{{ amount|rupiah }}``, ``{{ due_date|tanggal }}``, ...). ``preview``
renders for an operator instead: missing variables are listed and shown as ``{{name}}``, and the
content warnings (long runs of one character, links: patterns that spam filters flag) are reported, not refused.

Render limits
-------------
Anyone holding the API key writes templates, so no render may tie up a thread's CPU or the
process's memory. Every render (sending, each recipient of a bulk job, a preview, the trial render
of a template being saved) runs within a budget; going over it is a :class:`TemplateRenderError`
that names the limit:

- size: no value the template makes (a string, a list written out, a number's digits) and no
  output is over :data:`MAX_VALUE_SIZE` characters, and everything one render makes adds up to at
  most :data:`MAX_MADE_SIZE`;
- steps: at most :data:`MAX_STEPS` loop iterations, calls, filters and ``* ** + %`` operations;
- CPU: at most :data:`MAX_CPU_SECONDS` of the rendering thread's CPU time (garbage collections
  that happen to run during the render excepted).

The sandbox keeps the budget itself, rather than rendering in a child process with resource limits:
renders are many and short (every send, every keystroke of the live preview) so a process per render
costs more than the render, and a pool of renderer processes would have to live inside the web,
worker and CLI processes alike. In process, a render can only escape the budget through one Python
operation that runs long or allocates much before control comes back to Jinja, so:

- every operation that can make a big value out of small ones is checked *before* it runs, from the
  size its result would have: ``*``, ``**``, ``+``, ``%`` and ``format`` widths, ``~``, padding
  (``center``, ``ljust``, ...), ``join``, ``replace``, ``indent``, ``wordwrap``, ``batch``, ``slice``,
  ``sum``, ``range``, ``lipsum``, ``str.translate``, ``int.to_bytes``;
- every value passed to or returned from a call or a filter, and every value output, is measured
  (containers written out included, so a list of a thousand references to one long string counts as
  what ``str()`` of it would make), with a walk that stops as soon as it is over the limit;
- every loop iteration (the compiled template iterates through :meth:`_BudgetedEnvironment.counted_loop`),
  call, filter and operator counts as a step, and each step checks the CPU limit, so work that stays
  small step by step (nested loops) still ends at the step or the CPU limit.

Filters that write HTML, JavaScript or debugging dumps (``tojson``, ``urlize``, ``xmlattr``,
``pprint``) are not offered: a WhatsApp message has no use for them, and their options can grow a
value by factors the checks would have to model.
"""

from __future__ import annotations

import functools
import gc
import math
import re
import time
from collections import deque
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from typing import Any

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import Markup

from wa_tasks.core.formatting import HELPERS, FormattingError
from wa_tasks.errors import TemplateRenderError

#: The longest text a message may have, in characters.
MAX_LENGTH = 4096

#: Spam patterns, reported as warnings: one character 11 or more times in a row, and links.
REPEATED_RUN = re.compile(r"(.)\1{10,}", re.DOTALL)
LINK = re.compile(r"https?://\S+", re.IGNORECASE)

#: The most characters any value a template makes, and its output, may have (items of a list count
#: as they would be written out; a number counts its digits).
MAX_VALUE_SIZE = 64 * 1024
#: The most characters all the values one render makes (outputs included) may add up to.
MAX_MADE_SIZE = 64 * MAX_VALUE_SIZE
#: The most steps one render may take: loop iterations, calls, filters and ``* ** + %`` operations.
#: Also the most numbers ``range()`` may give.
MAX_STEPS = 10_000
#: The most CPU time (of the rendering thread) one render may use, compiling included and garbage
#: collections left out.
MAX_CPU_SECONDS = 0.1


class RenderLimitExceeded(SecurityError):
    """A render went over one of the render limits (reported to callers as TemplateRenderError).

    A :class:`SecurityError` rather than a ``ValueError``: filters such as ``int`` and ``float``
    swallow ``ValueError`` and ``TypeError`` and would turn a limit into a default value."""


@dataclass(slots=True)
class _Budget:
    """What one render has used so far."""

    #: The thread's CPU time (time.thread_time) at which the render is over its CPU limit.
    deadline: float
    #: The wall-clock time (time.perf_counter) before which it cannot be: a thread uses at most one
    #: second of CPU a second, and the wall clock is much cheaper to read than the thread's CPU clock.
    not_before: float
    steps: int = 0
    made: int = 0
    #: When a garbage collection in this render's thread started (CPU time), 0 when none is running.
    collecting_since: float = 0.0


#: The budget of the render running in this thread (or task); None outside renders.
_budget: ContextVar[_Budget | None] = ContextVar("template_render_budget", default=None)


def _collecting(phase: str, info: dict[str, Any]) -> None:
    """Moves a render's CPU deadline past a garbage collection that happens during it: a full
    collection of a big process's heap can take more than the whole budget, and it is not the
    template's work (it runs in the thread whose allocation set it off)."""
    budget = _budget.get()
    if budget is None:
        return
    if phase == "start":
        budget.collecting_since = time.thread_time()
    elif budget.collecting_since:
        spent = time.thread_time() - budget.collecting_since
        budget.deadline += spent
        budget.not_before += spent
        budget.collecting_since = 0.0


gc.callbacks.append(_collecting)


def _over_size(what: str, size: float | None = None) -> RenderLimitExceeded:
    """The size limit's error: ``size`` is an estimate made before the value is, None when ``what``
    was measured (and the measuring stopped once it was over)."""
    if size is None:
        return RenderLimitExceeded(f"over the size limit: {what} is longer than {MAX_VALUE_SIZE} characters")
    shown = f"{size:.0f}" if size < 10**15 else f"{size:.3g}"
    return RenderLimitExceeded(
        f"over the size limit: {what} would be about {shown} characters long (the limit is {MAX_VALUE_SIZE})"
    )


def _step() -> None:
    """Count one step of the running render and read the CPU clock."""
    budget = _budget.get()
    if budget is None:
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise RenderLimitExceeded(
            f"over the step limit: more than {MAX_STEPS} loop iterations, calls, filters and operations"
        )
    if time.perf_counter() > budget.not_before and time.thread_time() > budget.deadline:
        raise RenderLimitExceeded(f"over the CPU limit: more than {MAX_CPU_SECONDS * 1000:.0f} ms of CPU time")


def _made(value: Any, what: str = "a value") -> Any:
    """``value`` (just made by the template), checked against the size limits and counted."""
    size = _size(value)
    if size > MAX_VALUE_SIZE:
        raise _over_size(what)
    budget = _budget.get()
    if budget is not None:
        budget.made += size
        if budget.made > MAX_MADE_SIZE:
            raise RenderLimitExceeded(
                f"over the size limit: the values it makes add up to more than {MAX_MADE_SIZE} characters"
            )
    return value


def _checked(value: Any, what: str = "a value") -> Any:
    """``value`` (given to a call or filter), checked against the size limit."""
    if _size(value) > MAX_VALUE_SIZE:
        raise _over_size(what)
    return value


# Measuring values ---------------------------------------------------------------------------------

#: What a value that is not a string, number or container takes written out, at most (a float, a
#: date, None, an undefined value...).
_SCALAR = 32


def _digits(number: int) -> int:
    """The length of ``number`` written out (for a long one, a bound that never falls short)."""
    if number.bit_length() <= 64:
        return len(str(number))
    return number.bit_length() * 30103 // 100000 + 2


def _scalar_size(value: Any) -> int:
    if isinstance(value, Decimal) and value.is_finite():
        # Written out in full ("{:f}", int()), 1E+999999 is a million digits.
        return len(value.as_tuple().digits) + abs(int(value.as_tuple().exponent)) + 2
    return _SCALAR


def _children(value: Any) -> Iterator[Any] | None:
    """The items ``str(value)`` writes out, for the containers a template can reach; None for others."""
    if isinstance(value, Mapping):
        return chain.from_iterable(value.items())
    if isinstance(value, list | tuple | set | frozenset | deque | KeysView | ValuesView | ItemsView):
        return iter(value)
    if isinstance(value, Namespace):  # its repr shows every attribute
        return chain.from_iterable(value._Namespace__attrs.items())
    return None


def _size(value: Any) -> int:
    """About how many characters ``value`` takes written out. Containers are walked item by item and
    the walk stops as soon as the total is over :data:`MAX_VALUE_SIZE`, so measuring costs at most
    that many items even for a list holding one long string many times, or itself."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int):
        return _digits(value)
    top = _children(value)
    if top is None:
        return _scalar_size(value)
    total = 2
    stack = [top]
    while stack:
        for item in stack[-1]:
            if isinstance(item, str | bytes):
                total += len(item) + 4  # quotes and ", "
            elif isinstance(item, int):
                total += _digits(item) + 2
            else:
                inner = _children(item)
                if inner is None:
                    total += _scalar_size(item) + 2
                else:
                    total += 4
                    stack.append(inner)
                    if total > MAX_VALUE_SIZE:
                        return total
                    break
            if total > MAX_VALUE_SIZE:
                return total
        else:
            stack.pop()
    return total


def _count(value: Any, what: str) -> int:
    """An integer argument that sets how big a result is (a width, a count), as a non-negative int."""
    if isinstance(value, Undefined):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0  # the operation itself reports a bad argument
    if number > MAX_VALUE_SIZE:
        raise _over_size(what, number)
    return max(number, 0)


def _text(value: Any) -> str:
    """``value`` as the string a filter would make of it (its size was checked before)."""
    return value if isinstance(value, str) else str(value)


# Checks made before an operation runs ---------------------------------------------------------------


def _check_repeat(left: Any, right: Any) -> None:
    """``left * right``."""
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left
    if not isinstance(right, int):
        return
    if isinstance(left, int):
        size = _digits(left) + _digits(right)
        if size > MAX_VALUE_SIZE:
            raise _over_size(f"{_shown(left)} * {_shown(right)}", size)
    elif isinstance(left, str | bytes | list | tuple) and right > 0:
        size = _size(left) * right
        if size > MAX_VALUE_SIZE:
            raise _over_size(f"{_shown(left)} * {right}", size)


def _check_power(base: Any, exponent: Any) -> None:
    """``base ** exponent``: an integer, or a Decimal written out, of too many digits."""
    if isinstance(base, int):
        if not isinstance(exponent, int) or exponent <= 0 or abs(base) <= 1:
            return  # a float (2 ** -3, 2 ** 0.5), or 0, 1, -1
        digits = exponent * math.log10(abs(base))
    elif isinstance(base, Decimal) and base.is_finite() and base and isinstance(exponent, int | float | Decimal):
        # Decimal keeps 28 significant digits but not the exponent: 0.1 ** 10**6 written out is a
        # million digits.
        digits = abs(float(exponent)) * abs(float(abs(base).log10()))
    else:
        return
    if digits > MAX_VALUE_SIZE:
        raise _over_size(f"{_shown(base)} ** {_shown(exponent)}", digits)


def _check_add(left: Any, right: Any) -> None:
    """``left + right``."""
    if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
        size = _size(left) + _size(right)
        if size > MAX_VALUE_SIZE:
            raise _over_size(f"{_shown(left)} + {_shown(right)}", size)


#: One printf conversion: ``%s``, ``%(name)-10.2f``, ``%*d``.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.?)", re.DOTALL)


def _check_printf(template: Any, values: Any) -> None:
    """``template % values`` (and the ``format`` filter): widths, precisions and the values."""
    if not isinstance(template, str | bytes):
        return
    pattern = template if isinstance(template, str) else template.decode("latin-1")
    size, conversions, stars = len(template), 0, False
    for width, precision, kind in _PRINTF.findall(pattern):
        if kind == "%":
            continue
        conversions += 1
        for number in (width, precision):
            if number == "*":
                stars = True
            elif number:
                size += int(number) if len(number) < 8 else MAX_VALUE_SIZE + 1
    if isinstance(values, tuple):
        size += sum(_size(v) for v in values)
        if stars:  # the widths come from the values
            size += sum(abs(v) for v in values if isinstance(v, int))
    elif isinstance(values, Mapping):
        size += conversions * _size(values)  # each conversion may write any of the values
    else:
        size += _size(values)
    size += conversions * _SCALAR
    if size > MAX_VALUE_SIZE:
        raise _over_size(f"{_shown(template)} % ...", size)


def _materialized(items: Iterable[Any], separator: int, what: str) -> list[Any]:
    """``items`` as a list, refused as soon as writing them out (with separators) would be too long."""
    collected, size = [], 0
    for item in items:
        size += _size(item) + separator
        if size > MAX_VALUE_SIZE:
            raise _over_size(what)
        collected.append(item)
    return collected


def _shown(value: Any) -> str:
    """A short description of an operand for an error message."""
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"a number of about {_digits(value)} digits"
    if isinstance(value, str | bytes) and len(value) <= 12:
        return repr(value)
    if isinstance(value, str | bytes | list | tuple):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


# Filters: each is wrapped to count a step, measure its arguments and its result; these also check the
# size the result would have before it is made.


def _filter_center(value: Any, width: Any = 80) -> Any:
    _count(width, "center's width")
    return value


def _filter_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
    text = _text(s)
    indent = len(width) if isinstance(width, str) else _count(width, "indent's width")
    size = len(text) + (text.count("\n") + 2) * indent
    if size > MAX_VALUE_SIZE:
        raise _over_size("the indented text", size)
    return s


def _filter_wordwrap(
    s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, break_on_hyphens: Any = True
) -> Any:
    text = _text(s)
    lines = len(text) // max(_count(width, "wordwrap's width"), 1) + text.count("\n") + 1
    size = len(text) + lines * len(_text(wrapstring) if wrapstring is not None else "\n")
    if size > MAX_VALUE_SIZE:
        raise _over_size("the wrapped text", size)
    return s


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _filter_replace(s: Any, old: Any, new: Any, count: Any = None) -> Any:
    size = _replaced_size(_text(s), _text(old), _text(new), count)
    if size > MAX_VALUE_SIZE:
        raise _over_size("the replaced text", size)
    return s


def _filter_join(value: Any, d: Any = "", attribute: Any = None) -> Any:
    return _materialized(value, len(_text(d)), "the joined text")


def _filter_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(iterable)
    if not all(isinstance(v, int | float | Decimal) for v in [start, *items]):  # lists or strings
        size = _size(start) + sum(_size(v) for v in items)  # items whole: at least their attributes
        if size > MAX_VALUE_SIZE:
            raise _over_size("the sum", size)
    return items


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    _check_printf(_text(value), kwargs or args)
    return value


def _filter_batch(value: Any, linecount: Any, fill_with: Any = None) -> Any:
    _count(linecount, "batch's size")
    return value


def _filter_slice(value: Any, slices: Any, fill_with: Any = None) -> Any:
    _count(slices, "the number of slices")
    return value


#: Checks made before a filter runs: they take the filter's arguments and give back the value to
#: filter (``join`` and ``sum`` read an iterator once, so they hand on the list they read).
_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "wordwrap": _filter_wordwrap,
    "replace": _filter_replace,
    "join": _filter_join,
    "sum": _filter_sum,
    "format": _filter_format,
    "batch": _filter_batch,
    "slice": _filter_slice,
}

#: Filters left out (see the module docstring).
_LEFT_OUT_FILTERS = ("tojson", "urlize", "xmlattr", "pprint")


def _budgeted_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    # A filter marked with pass_context/pass_environment/... gets that object first.
    passed = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    what = f"the result of |{name}"

    @functools.wraps(function)
    def filter_(*args: Any, **kwargs: Any) -> Any:
        _step()
        for value in args[passed:]:
            _checked(value, f"a value given to |{name}")
        for value in kwargs.values():
            _checked(value, f"a value given to |{name}")
        if check is not None and len(args) > passed:
            args = (*args[:passed], check(*args[passed:], **kwargs), *args[passed + 1 :])
        return _made(function(*args, **kwargs), what)

    return filter_


# Methods of strings and numbers a template may call: the size of what they would make.


def _method_pad(text: Any, width: Any = 0, *_: Any, **__: Any) -> int:
    return max(len(text), _count(width, "the padded width"))


def _method_expandtabs(text: Any, tabsize: Any = 8) -> int:
    return len(text) + text.count("\t" if isinstance(text, str) else b"\t") * _count(tabsize, "the tab size")


def _method_replace(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    return _replaced_size(text, old, new, count)


def _method_translate(text: Any, table: Any, *_: Any) -> int:
    if not isinstance(table, Mapping):
        return len(text)
    longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
    return len(text) * max(longest, 1)


def _method_to_bytes(number: Any, length: Any = 1, *_: Any, **__: Any) -> int:
    return _count(length, "the byte string")


_STRING_METHODS: dict[str, Callable[..., int]] = {
    "center": _method_pad,
    "ljust": _method_pad,
    "rjust": _method_pad,
    "zfill": _method_pad,
    "expandtabs": _method_expandtabs,
    "replace": _method_replace,
    "translate": _method_translate,
}


class _BoundedFormatting:
    """``str.format`` in templates: each field's width and precision, and the whole result, are
    checked before they are written."""

    _written = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._written = len(format_string)
        return super().vformat(format_string, args, kwargs)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        # Every number in the spec (fill, width, precision) counts: an over-estimate that never misses.
        size = self._written + _size(value) + len(format_spec)
        for number in re.findall(r"\d+", format_spec):
            size += int(number) if len(number) < 8 else MAX_VALUE_SIZE + 1
        if size > MAX_VALUE_SIZE:
            raise _over_size("the formatted text", size)
        written = super().format_field(value, format_spec)  # type: ignore[misc]
        self._written += len(written)
        if self._written > MAX_VALUE_SIZE:
            raise _over_size("the formatted text")
        return written


class _Formatter(_BoundedFormatting, SandboxedFormatter):
    pass


class _EscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass


class _BudgetedCodeGenerator(CodeGenerator):
    """Compiles ``for`` loops to count their iterations and ``~`` to check what it joins."""

    #: Marks the iterable of a ``for`` loop (Jinja allows no node types of one's own; templates cannot
    #: write environment attributes, so this call only comes from visit_For).
    COUNTED = "counted_loop"

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        counted = nodes.Call(nodes.EnvironmentAttribute(self.COUNTED), [node.iter], [], None, None)
        counted.set_lineno(node.iter.lineno)
        loop = nodes.For(node.target, counted, node.body, node.else_, node.test, node.recursive, lineno=node.lineno)
        super().visit_For(loop, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == self.COUNTED:
            self.write(f"environment.{self.COUNTED}(")
            self.visit(node.args[0], frame)
            self.write(")")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_values(context.eval_ctx, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_STEPS:
        raise RenderLimitExceeded(f"over the step limit: range() of {len(numbers)} numbers (the limit is {MAX_STEPS})")
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    size = _count(n, "lipsum") * _count(max, "lipsum") * 12  # a word and its space or comma, at most
    if size > MAX_VALUE_SIZE:
        raise _over_size("lipsum()", size)
    return generate_lorem_ipsum(n, html, min, max)


class _BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, keeping every render within the render limits (module docstring)."""

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, helpers: Mapping[str, Callable[..., Any]], **options: Any) -> None:
        """An environment offering ``helpers`` as filters and functions, besides Jinja's own."""
        super().__init__(finalize=self._finalize, **options)
        self.globals.update(helpers)  # called through call(), within the budget
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum
        self.filters.update(helpers)
        for name in _LEFT_OUT_FILTERS:
            del self.filters[name]
        self.filters = {name: _budgeted_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _step()
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+":
            _check_add(left, right)
        elif operator == "%":
            _check_printf(left, right)
        return _made(self.binop_table[operator](left, right))

    # Named like the sandbox's own call(): a template may pass keyword arguments named self, context or obj.
    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        for value in args:
            _checked(value, "a value given to a call")
        for key, value in kwargs.items():
            if key not in ("_loop_vars", "_block_vars"):  # the template's own variables, handed on
                _checked(value, "a value given to a call")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes) and args:
            name = getattr(__obj, "__name__", "")
            if name == "join":
                args = (_materialized(args[0], len(owner), "the joined text"), *args[1:])
            elif name in _STRING_METHODS:
                size = _STRING_METHODS[name](owner, *args, **kwargs)
                if size > MAX_VALUE_SIZE:
                    raise _over_size(f"{name}()", size)
        elif isinstance(owner, int) and getattr(__obj, "__name__", "") == "to_bytes":
            _method_to_bytes(owner, *args, **kwargs)
        elif isinstance(__obj, LoopContext) and args:  # a recursive loop's inner level
            args = (__self.counted_loop(args[0]), *args[1:])
        return _made(super().call(__context, __obj, *args, **kwargs), "the result of a call")

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return _made(value) if isinstance(argument, slice) else value

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        # The sandbox's own wrapper, with its formatter replaced by one that checks sizes.
        text: str = value.__self__
        formatter = _EscapeFormatter(self, escape=text.escape) if isinstance(text, Markup) else _Formatter(self)
        is_format_map = value.__name__ == "format_map"

        def format_(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument and no keyword arguments")
                kwargs = args[0]
                args = ()
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(format_, value)

    def counted_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """What a ``for`` loop iterates: ``iterable``, one step per item."""
        for item in iterable:
            _step()
            yield item

    def concat_values(self, eval_ctx: EvalContext, values: tuple[Any, ...]) -> str:
        """``a ~ b``: what both are written out must fit before they are."""
        size = 0
        for value in values:
            size += _size(value)
            if size > MAX_VALUE_SIZE:
                raise _over_size("a ~ concatenation")
        return _made(markup_join(values) if eval_ctx.autoescape else str_join(values))

    @staticmethod
    def concat(pieces: Iterable[str]) -> str:
        """The output of a template, a macro or a block, refused as soon as it is too long."""
        collected, size = [], 0
        for piece in pieces:
            size += len(piece)
            if size > MAX_VALUE_SIZE:
                raise _over_size("the output")
            collected.append(piece)
        return "".join(collected)

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Each ``{{ ... }}`` output: measured (and counted) before it is written out."""
        return _made(value, "an output")


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


def _environment(undefined: type[Undefined]) -> _BudgetedEnvironment:
    helpers = {name: _passing_missing(helper) for name, helper in HELPERS.items()}
    return _BudgetedEnvironment(helpers, undefined=undefined, autoescape=False, keep_trailing_newline=True)


_env = _environment(StrictUndefined)
_preview_env = _environment(_ShownMissing)


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
def _compiled(env: _BudgetedEnvironment, content: str) -> Template:
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
    except RenderLimitExceeded as exc:
        raise TemplateRenderError(f"{name} could not be rendered: {exc}") from None
    except Exception:
        pass


def _budgeted_render(env: _BudgetedEnvironment, content: str, data: dict[str, Any]) -> str:
    """Compile (or reuse) and render ``content`` within the render limits."""
    budget = _Budget(deadline=time.thread_time() + MAX_CPU_SECONDS, not_before=time.perf_counter() + MAX_CPU_SECONDS)
    token = _budget.set(budget)
    try:
        return _compiled(env, content).render(data)
    finally:
        _budget.reset(token)


def _render_with(env: _BudgetedEnvironment, content: str, data: dict[str, Any], name: str) -> str:
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
