"""What one template render may use, and the measuring and checks that keep it within that.

Render limits
-------------
Anyone holding the API key writes templates, so no render may tie up a thread's CPU or the
process's memory. Every render (sending, each recipient of a bulk job, a preview, the trial render
of a template being saved) runs within a budget (:func:`budgeted`); going over it raises
:class:`RenderLimitExceeded`, which :mod:`wa_tasks.core.rendering` reports as a
:class:`~wa_tasks.errors.TemplateRenderError` that names the limit:

- size: no value the template makes (a string, a list written out, a number's digits) and no
  output is over :data:`MAX_VALUE_SIZE` characters, and everything one render makes adds up to at
  most :data:`MAX_MADE_SIZE`;
- steps: at most :data:`MAX_STEPS` loop iterations, calls, filters and ``* ** + %`` operations;
- CPU: at most :data:`MAX_CPU_SECONDS` of the rendering thread's CPU time (garbage collections
  that happen to run during the render excepted).

The budget is kept in process, rather than by rendering in a child process with resource limits:
renders are many and short (every send, every keystroke of the live preview) so a process per render
costs more than the render, and a pool of renderer processes would have to live inside the web,
worker and CLI processes alike. In process, a render can only escape the budget through one Python
operation that runs long or allocates much before control comes back to Jinja, so the sandbox
(:mod:`wa_tasks.core.sandbox`) calls this module's checks *before* such an operation runs (from the
size its result would have), measures every value passed to or returned from a call or filter with
:func:`size_of` (a walk that stops as soon as it is over the limit), and counts every loop iteration,
call, filter and operator as a :func:`step`, each of which checks the CPU limit.
"""

from __future__ import annotations

import contextlib
import gc
import math
import re
import time
from collections import deque
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

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
    #: The CPU time the render may use (its limit, for the error that names it).
    cpu_seconds: float = MAX_CPU_SECONDS
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


@contextlib.contextmanager
def budgeted(cpu_seconds: float = MAX_CPU_SECONDS) -> Iterator[None]:
    """Runs what is inside (one template's compiling and rendering) within the render limits, with
    ``cpu_seconds`` of the thread's CPU time."""
    budget = _Budget(
        deadline=time.thread_time() + cpu_seconds,
        not_before=time.perf_counter() + cpu_seconds,
        cpu_seconds=cpu_seconds,
    )
    token = _budget.set(budget)
    try:
        yield
    finally:
        _budget.reset(token)


def over_size(what: str, size: float | None = None) -> RenderLimitExceeded:
    """The size limit's error: ``size`` is an estimate made before the value is, None when ``what``
    was measured (and the measuring stopped once it was over)."""
    if size is None:
        return RenderLimitExceeded(f"over the size limit: {what} is longer than {MAX_VALUE_SIZE} characters")
    shown = f"{size:.0f}" if size < 10**15 else f"{size:.3g}"
    return RenderLimitExceeded(
        f"over the size limit: {what} would be about {shown} characters long (the limit is {MAX_VALUE_SIZE})"
    )


def step() -> None:
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
        raise RenderLimitExceeded(f"over the CPU limit: more than {budget.cpu_seconds * 1000:.0f} ms of CPU time")


def made(value: Any, what: str = "a value") -> Any:
    """``value`` (just made by the template), checked against the size limits and counted."""
    size = size_of(value)
    if size > MAX_VALUE_SIZE:
        raise over_size(what)
    budget = _budget.get()
    if budget is not None:
        budget.made += size
        if budget.made > MAX_MADE_SIZE:
            raise RenderLimitExceeded(
                f"over the size limit: the values it makes add up to more than {MAX_MADE_SIZE} characters"
            )
    return value


def checked(value: Any, what: str = "a value") -> Any:
    """``value`` (given to a call or filter), checked against the size limit."""
    if size_of(value) > MAX_VALUE_SIZE:
        raise over_size(what)
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


def size_of(value: Any) -> int:
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


def size_argument(value: Any, what: str) -> int:
    """An integer argument that sets how big a result is (a width, a count), as a non-negative int."""
    if isinstance(value, Undefined):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0  # the operation itself reports a bad argument
    if number > MAX_VALUE_SIZE:
        raise over_size(what, number)
    return max(number, 0)


def as_text(value: Any) -> str:
    """``value`` as the string a filter would make of it (its size was checked before)."""
    return value if isinstance(value, str) else str(value)


# Checks made before an operation runs ---------------------------------------------------------------


def check_repeat(left: Any, right: Any) -> None:
    """``left * right``."""
    if isinstance(left, int) and not isinstance(right, int):
        left, right = right, left
    if not isinstance(right, int):
        return
    if isinstance(left, int):
        size = _digits(left) + _digits(right)
        if size > MAX_VALUE_SIZE:
            raise over_size(f"{_shown(left)} * {_shown(right)}", size)
    elif isinstance(left, str | bytes | list | tuple) and right > 0:
        size = size_of(left) * right
        if size > MAX_VALUE_SIZE:
            raise over_size(f"{_shown(left)} * {right}", size)


def check_power(base: Any, exponent: Any) -> None:
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
        raise over_size(f"{_shown(base)} ** {_shown(exponent)}", digits)


def check_add(left: Any, right: Any) -> None:
    """``left + right``."""
    if isinstance(left, str | bytes | list | tuple) and isinstance(right, str | bytes | list | tuple):
        size = size_of(left) + size_of(right)
        if size > MAX_VALUE_SIZE:
            raise over_size(f"{_shown(left)} + {_shown(right)}", size)


#: One printf conversion: ``%s``, ``%(name)-10.2f``, ``%*d``.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?(.?)", re.DOTALL)


def check_printf(template: Any, values: Any) -> None:
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
        size += sum(size_of(v) for v in values)
        if stars:  # the widths come from the values
            size += sum(abs(v) for v in values if isinstance(v, int))
    elif isinstance(values, Mapping):
        size += conversions * size_of(values)  # each conversion may write any of the values
    else:
        size += size_of(values)
    size += conversions * _SCALAR
    if size > MAX_VALUE_SIZE:
        raise over_size(f"{_shown(template)} % ...", size)


def materialized(items: Iterable[Any], separator: int, what: str) -> list[Any]:
    """``items`` as a list, refused as soon as writing them out (with separators) would be too long."""
    collected, size = [], 0
    for item in items:
        size += size_of(item) + separator
        if size > MAX_VALUE_SIZE:
            raise over_size(what)
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
