"""The Jinja sandbox templates render in, keeping every render within the render limits of
:mod:`wa_tasks.core.render_budget`.

:class:`BudgetedEnvironment` is Jinja's immutable sandbox with ``{{variable}}`` syntax and the
Indonesian formatting helpers of :mod:`wa_tasks.core.formatting` as filters and functions, where:

- every operation that can make a big value out of small ones is checked *before* it runs, from the
  size its result would have: ``*``, ``**``, ``+``, ``%`` and ``format`` widths, ``~``, padding
  (``center``, ``ljust``, ...), ``join``, ``replace``, ``indent``, ``wordwrap``, ``batch``, ``slice``,
  ``sum``, ``range``, ``lipsum``, ``str.translate``, ``int.to_bytes``;
- every value passed to or returned from a call or a filter, and every value output, is measured
  (containers written out included, so a list of a thousand references to one long string counts as
  what ``str()`` of it would make);
- every loop iteration (the compiled template iterates through :meth:`BudgetedEnvironment.counted_loop`),
  call, filter and operator counts as a step, and each step checks the CPU limit, so work that stays
  small step by step (nested loops) still ends at the step or the CPU limit.

Filters that write HTML, JavaScript or debugging dumps (``tojson``, ``urlize``, ``xmlattr``,
``pprint``) are not offered: a WhatsApp message has no use for them, and their options can grow a
value by factors the checks would have to model. A preview's environment shows a missing variable
as ``{{name}}`` (:class:`ShownMissing`) instead of refusing it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from jinja2 import ChainableUndefined, Undefined, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import LoopContext, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup

from wa_tasks.core import render_budget as budget
from wa_tasks.core.formatting import HELPERS

# Filters: each is wrapped to count a step, measure its arguments and its result; these also check the
# size the result would have before it is made.


def _filter_center(value: Any, width: Any = 80) -> Any:
    budget.size_argument(width, "center's width")
    return value


def _filter_indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
    text = budget.as_text(s)
    indent = len(width) if isinstance(width, str) else budget.size_argument(width, "indent's width")
    size = len(text) + (text.count("\n") + 2) * indent
    if size > budget.MAX_VALUE_SIZE:
        raise budget.over_size("the indented text", size)
    return s


def _filter_wordwrap(
    s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, break_on_hyphens: Any = True
) -> Any:
    text = budget.as_text(s)
    lines = len(text) // max(budget.size_argument(width, "wordwrap's width"), 1) + text.count("\n") + 1
    size = len(text) + lines * len(budget.as_text(wrapstring) if wrapstring is not None else "\n")
    if size > budget.MAX_VALUE_SIZE:
        raise budget.over_size("the wrapped text", size)
    return s


def _replaced_size(text: Any, old: Any, new: Any, count: Any) -> int:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _filter_replace(s: Any, old: Any, new: Any, count: Any = None) -> Any:
    size = _replaced_size(budget.as_text(s), budget.as_text(old), budget.as_text(new), count)
    if size > budget.MAX_VALUE_SIZE:
        raise budget.over_size("the replaced text", size)
    return s


def _filter_join(value: Any, d: Any = "", attribute: Any = None) -> Any:
    return budget.materialized(value, len(budget.as_text(d)), "the joined text")


def _filter_sum(iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(iterable)
    if not all(isinstance(v, int | float | Decimal) for v in [start, *items]):  # lists or strings
        size = budget.size_of(start) + sum(budget.size_of(v) for v in items)  # items whole: at least their attributes
        if size > budget.MAX_VALUE_SIZE:
            raise budget.over_size("the sum", size)
    return items


def _filter_format(value: Any, *args: Any, **kwargs: Any) -> Any:
    budget.check_printf(budget.as_text(value), kwargs or args)
    return value


def _filter_batch(value: Any, linecount: Any, fill_with: Any = None) -> Any:
    budget.size_argument(linecount, "batch's size")
    return value


def _filter_slice(value: Any, slices: Any, fill_with: Any = None) -> Any:
    budget.size_argument(slices, "the number of slices")
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
        budget.step()
        for value in args[passed:]:
            budget.checked(value, f"a value given to |{name}")
        for value in kwargs.values():
            budget.checked(value, f"a value given to |{name}")
        if check is not None and len(args) > passed:
            args = (*args[:passed], check(*args[passed:], **kwargs), *args[passed + 1 :])
        return budget.made(function(*args, **kwargs), what)

    return filter_


# Methods of strings and numbers a template may call: the size of what they would make.


def _method_pad(text: Any, width: Any = 0, *_: Any, **__: Any) -> int:
    return max(len(text), budget.size_argument(width, "the padded width"))


def _method_expandtabs(text: Any, tabsize: Any = 8) -> int:
    return len(text) + text.count("\t" if isinstance(text, str) else b"\t") * budget.size_argument(
        tabsize, "the tab size"
    )


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
    return budget.size_argument(length, "the byte string")


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
        size = self._written + budget.size_of(value) + len(format_spec)
        for number in re.findall(r"\d+", format_spec):
            size += int(number) if len(number) < 8 else budget.MAX_VALUE_SIZE + 1
        if size > budget.MAX_VALUE_SIZE:
            raise budget.over_size("the formatted text", size)
        written = super().format_field(value, format_spec)  # type: ignore[misc]
        self._written += len(written)
        if self._written > budget.MAX_VALUE_SIZE:
            raise budget.over_size("the formatted text")
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
    if len(numbers) > budget.MAX_STEPS:
        raise budget.RenderLimitExceeded(
            f"over the step limit: range() of {len(numbers)} numbers (the limit is {budget.MAX_STEPS})"
        )
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    size = (
        budget.size_argument(n, "lipsum") * budget.size_argument(max, "lipsum") * 12
    )  # a word and its space or comma, at most
    if size > budget.MAX_VALUE_SIZE:
        raise budget.over_size("lipsum()", size)
    return generate_lorem_ipsum(n, html, min, max)


class BudgetedEnvironment(ImmutableSandboxedEnvironment):
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
        budget.step()
        if operator == "*":
            budget.check_repeat(left, right)
        elif operator == "**":
            budget.check_power(left, right)
        elif operator == "+":
            budget.check_add(left, right)
        elif operator == "%":
            budget.check_printf(left, right)
        return budget.made(self.binop_table[operator](left, right))

    # Named like the sandbox's own call(): a template may pass keyword arguments named self, context or obj.
    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget.step()
        for value in args:
            budget.checked(value, "a value given to a call")
        for key, value in kwargs.items():
            if key not in ("_loop_vars", "_block_vars"):  # the template's own variables, handed on
                budget.checked(value, "a value given to a call")
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes) and args:
            name = getattr(__obj, "__name__", "")
            if name == "join":
                args = (budget.materialized(args[0], len(owner), "the joined text"), *args[1:])
            elif name in _STRING_METHODS:
                size = _STRING_METHODS[name](owner, *args, **kwargs)
                if size > budget.MAX_VALUE_SIZE:
                    raise budget.over_size(f"{name}()", size)
        elif isinstance(owner, int) and getattr(__obj, "__name__", "") == "to_bytes":
            _method_to_bytes(owner, *args, **kwargs)
        elif isinstance(__obj, LoopContext) and args:  # a recursive loop's inner level
            args = (__self.counted_loop(args[0]), *args[1:])
        return budget.made(super().call(__context, __obj, *args, **kwargs), "the result of a call")

    def getitem(self, obj: Any, argument: Any) -> Any:
        value = super().getitem(obj, argument)
        return budget.made(value) if isinstance(argument, slice) else value

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
            budget.step()
            yield item

    def concat_values(self, eval_ctx: EvalContext, values: tuple[Any, ...]) -> str:
        """``a ~ b``: what both are written out must fit before they are."""
        size = 0
        for value in values:
            size += budget.size_of(value)
            if size > budget.MAX_VALUE_SIZE:
                raise budget.over_size("a ~ concatenation")
        return budget.made(markup_join(values) if eval_ctx.autoescape else str_join(values))

    @staticmethod
    def concat(pieces: Iterable[str]) -> str:
        """The output of a template, a macro or a block, refused as soon as it is too long."""
        collected, size = [], 0
        for piece in pieces:
            size += len(piece)
            if size > budget.MAX_VALUE_SIZE:
                raise budget.over_size("the output")
            collected.append(piece)
        return "".join(collected)

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Each ``{{ ... }}`` output: measured (and counted) before it is written out."""
        return budget.made(value, "an output")


class ShownMissing(ChainableUndefined):
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
        if isinstance(value, ShownMissing):
            return value
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return helper(value, *args, **kwargs)

    return wrapped


def environment(undefined: type[Undefined]) -> BudgetedEnvironment:
    helpers = {name: _passing_missing(helper) for name, helper in HELPERS.items()}
    return BudgetedEnvironment(helpers, undefined=undefined, autoescape=False, keep_trailing_newline=True)
