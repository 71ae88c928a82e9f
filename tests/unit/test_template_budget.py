"""The render limits of wa_tasks.core.rendering: templates written to exhaust CPU or memory fail fast with a
TemplateRenderError naming the limit, through render() (sending) and preview() alike, while ordinary
templates render as before.

The timeout markers only guard against a hang: each adversarial render ends in milliseconds."""

import gc
import math
import time

import pytest

from wa_tasks.core import rendering
from wa_tasks.errors import TemplateRenderError

BIG = "{% set big = 'x' * 60000 %}"

ADVERSARIAL = [
    # Loops each under the range() bound, nested: 10**8 and 10**12 iterations.
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}", "step"),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{% for k in range(9999) %}" + "{% endfor %}" * 3, "step"),
    ("{% for i in range(10000) %}{% for j in range(10000) %}{{ '' }}{% endfor %}{% endfor %}", "step"),
    # One operation allocating far more than the limit.
    ("{{ 'x' * 10**9 }}", "size"),
    ("{{ ('x' ~ 'x') * 10**8 }}", "size"),
    ("{{ 10**8 * 'x' }}", "size"),
    ("{{ [1] * 10**8 }}", "size"),
    ("{{ ([1] * 10000) * 10000 }}", "size"),
    ("{{ 2 ** (10**8) }}", "size"),
    ("{{ (10**40000) * (10**40000) }}", "size"),
    ("{{ 'x'|center(10**9) }}", "size"),
    ("{{ 'x'|center(1000000000) }}", "size"),  # a literal: folded when the template is compiled
    ("{{ 'x'.ljust(10**9) }}", "size"),
    ("{{ '7'.zfill(10**9) }}", "size"),
    ("{{ 'a\tb'.expandtabs(10**9) }}", "size"),
    ("{{ (5).to_bytes(10**9, 'big') }}", "size"),
    ("{{ 'a\nb\nc'|indent(10**9) }}", "size"),
    ("{{ 'a b c'|wordwrap(1, wrapstring='x' * 60000) }}", "size"),
    ("{{ ('x' * 60000)|replace('', 'yy') }}", "size"),
    ("{{ 'aaaa'.translate({97: 'x' * 60000}) }}", "size"),
    ("{{ '%0999999999d' % 1 }}", "size"),
    ("{{ '%*d' % (10**9, 1) }}", "size"),
    ("{{ '%0999999999d'|format(1) }}", "size"),
    ("{{ '{:>1000000000}'.format(1) }}", "size"),
    ("{{ '{0:{1}}'.format(1, 10**9) }}", "size"),
    ("{{ ('{0}' * 16000).format('x' * 60000) }}", "size"),
    ("{{ lipsum(n=10**6) }}", "size"),
    ("{{ [1]|batch(10**9, 'x')|list }}", "size"),
    ("{{ [1]|slice(10**9)|list }}", "size"),
    # Values that are small in memory (references to one string) but huge written out.
    (BIG + "{{ [big, big, big, big] }}", "size"),
    (BIG + "{{ [big, big, big, big]|join }}", "size"),
    (BIG + "{{ [big, big, big, big]|string }}", "size"),
    (BIG + "{{ ', '.join([big, big]) }}", "size"),
    (BIG + "{{ [[big], [big]]|sum(start=[]) }}", "size"),
    (BIG + "{{ '%s' % ([big, big],) }}", "size"),
    (BIG + "{{ big ~ big }}", "size"),
    (BIG + "{{ big + big }}", "size"),
    (BIG + "{% set ns = namespace(a=big, b=big) %}{{ ns }}", "size"),
    # Output grown a piece at a time.
    (BIG + "{% for i in range(9000) %}{{ big }}{% endfor %}", "size"),
    ("{% for i in range(9000) %}" + "y" * 4000 + "{% endfor %}", "size"),
    (BIG + "{% set out %}{% for i in range(9000) %}{{ big }}{% endfor %}{% endset %}", "size"),
    # Many values each under the limit.
    (BIG + "{{ range(5000)|map('center', 60000)|list|length }}", "size"),
    (BIG + "{% for i in range(200) %}{% set y = big ~ i %}{% endfor %}", "size"),
    # range() itself, and calls growing without end.
    ("{{ range(10**9)|length }}", "step"),
    ("{% macro m(n) %}{{ m(n) }}{{ m(n) }}{% endmacro %}{{ m(1) }}", "nesting"),
    ("{% macro m(n) %}{% if n < 40 %}{{ m(n + 1) }}{{ m(n + 1) }}{% endif %}{% endmacro %}{{ m(0) }}", "step"),
    ("{% for x in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", "nesting"),
    ("{% for x in range(9000) %}{{ range(10)|map('string')|join }}{% endfor %}", "step"),
]


@pytest.mark.timeout(2)
@pytest.mark.parametrize(("content", "limit"), ADVERSARIAL)
@pytest.mark.parametrize("how", ["render", "preview"])
def test_a_template_built_to_exhaust_cpu_or_memory_fails_fast_naming_the_limit(content, limit, how, monkeypatch):
    # Each of these ends at its own limit within the CPU budget on an idle machine; on a loaded one
    # a step costs more CPU, and the CPU limit (tested on its own below) could end it first.
    monkeypatch.setattr(rendering, "MAX_CPU_SECONDS", 1.0)
    started = time.thread_time()
    with pytest.raises(TemplateRenderError, match=f"over the {limit} limit") as info:
        if how == "render":
            rendering.render(content, {}, name="template 'bomb'")
        else:
            rendering.preview(content, {}, name="template 'bomb'")

    assert str(info.value).startswith("template 'bomb' could not be rendered: over the")
    assert time.thread_time() - started < 1.5


@pytest.mark.timeout(2)
def test_work_that_stays_small_step_by_step_ends_at_the_cpu_limit():
    # |max over 60,000 characters takes milliseconds and makes one character: 4,000 of them make
    # 8,000 steps and little output, but seconds of CPU.
    content = BIG + "{% for i in range(4000) %}{{ big|max }}{% endfor %}"

    started = time.thread_time()
    with pytest.raises(TemplateRenderError, match=r"over the CPU limit: more than 100 ms of CPU time"):
        rendering.render(content, {})

    assert time.thread_time() - started < 1.0


@pytest.mark.timeout(20)
def test_garbage_collections_during_a_render_do_not_count_against_its_cpu_limit():
    # A full collection of a big web or worker process can take longer than a render's whole CPU
    # budget; it runs in the thread whose allocation set it off, here the rendering one.
    heap = [[] for _ in range(500_000)]
    started = time.thread_time()
    gc.collect()
    runs = math.ceil(3 * rendering.MAX_CPU_SECONDS / max(time.thread_time() - started, 0.001))

    def collect() -> str:
        gc.collect()
        return "."

    text = rendering.render("{% for i in range(runs) %}{{ collect() }}{% endfor %}", {"runs": runs, "collect": collect})

    assert text == "." * runs and len(heap) == 500_000


@pytest.mark.timeout(2)
def test_data_that_drives_a_loop_is_bounded_too():
    content = "{% for i in range(n) %}{% for j in range(n) %}{{ j }}{% endfor %}{% endfor %}"

    assert rendering.render(content, {"n": 3}) == "012012012"
    with pytest.raises(TemplateRenderError, match="over the step limit"):
        rendering.render(content, {"n": 9000})
    with pytest.raises(TemplateRenderError, match="over the step limit"):
        rendering.render("{% for x in items %}{% for y in items %}{% endfor %}{% endfor %}", {"items": [0] * 9000})


def test_the_size_error_says_how_big_and_what_the_limit_is():
    with pytest.raises(TemplateRenderError) as info:
        rendering.render("{{ 'x' * 10**9 }}", {}, name="template 'promo'")

    assert str(info.value) == (
        "template 'promo' could not be rendered: over the size limit: 'x' * 1000000000 would be about "
        "1000000000 characters long (the limit is 65536)"
    )


def test_data_over_the_size_limit_is_refused_where_it_is_used():
    with pytest.raises(TemplateRenderError, match="over the size limit: an output is longer than 65536"):
        rendering.render("{{ x }}", {"x": "a" * 70000})
    with pytest.raises(TemplateRenderError, match="over the size limit: a value given to |length"):
        rendering.render("{{ x|length }}", {"x": ["a" * 40000, "b" * 40000]})
    assert rendering.render("{{ x|length }}", {"x": "a" * 60000}) == "60000"


def test_html_and_javascript_filters_are_not_offered():
    for name in ("tojson", "urlize", "xmlattr", "pprint"):
        with pytest.raises(TemplateRenderError, match=f"No filter named '{name}'"):
            rendering.render(f"{{{{ x|{name} }}}}", {"x": "a"})


def test_ordinary_templates_render_as_before():
    items = [{"name": f"Paket {i}", "price": 1000 * i} for i in range(1, 301)]
    content = (
        "{{ '-' * 20 }}\n"
        "{% for item in items %}{{ loop.index }}. {{ item.name|upper }} {{ item.price|rupiah }}"
        "{% if not loop.last %}, {% endif %}{% endfor %}\n"
        "Total: {{ items|sum(attribute='price')|rupiah }} ({{ items|length }} item)\n"
        "{{ '%05d'|format(42) }} {{ '%s-%s' % ('a', 'b') }} {{ '{:>6}|{:.2f}'.format('ab', 2.5) }}\n"
        "{{ range(1, 6)|join(', ') }} {{ 'a-b'|replace('-', '+') }} {{ ['x', 'y']|join('/') }} {{ 'ab' ~ 3 }}\n"
        "{{ 'Halo'|center(10) }}|{{ 'Halo'.ljust(6) }}|{{ 2 ** 10 }}|{{ 7 * 6 }}|{{ [1] + [2] }}|{{ 'x' + 'y' }}\n"
        "{{ 'satu dua tiga'|wordwrap(5) }}\n{{ 'a\nb'|indent(2) }}\n"
        "{{ [3, 1, 2]|sort|join }}{{ [1, 2, 3]|batch(2)|list }}"
        "{% macro greet(name) %}Hai {{ name }}{% endmacro %} {{ greet('Ani') }}"
        "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %} {{ ns.n }}"
    )

    text = rendering.preview(content, {"items": items}).text

    lines = text.split("\n")
    assert lines[0] == "-" * 20
    assert lines[1].startswith("1. PAKET 1 Rp1.000, 2. PAKET 2 Rp2.000, ")
    assert lines[1].endswith(", 300. PAKET 300 Rp300.000")
    assert lines[2] == "Total: Rp45.150.000 (300 item)"
    assert lines[3] == "00042 a-b     ab|2.50"
    assert lines[4] == "1, 2, 3, 4, 5 a+b x/y ab3"
    assert lines[5] == "   Halo   |Halo  |1024|42|[1, 2]|xy"
    assert lines[6:] == ["satu", "dua", "tiga", "a", "  b", "123[[1, 2], [3]] Hai Ani 10"]


def test_a_loop_of_thousands_of_iterations_is_still_allowed():
    assert len(rendering.render("{% for i in range(4000) %}x{% endfor %}", {})) == 4000
    assert rendering.render("{{ range(n)|list|length }}", {"n": rendering.MAX_STEPS}) == "10000"


def test_check_limits_refuses_only_what_no_data_could_save():
    with pytest.raises(TemplateRenderError, match="template 'bomb' could not be rendered: over the size limit"):
        rendering.check_limits("Halo {{ name }} {{ 'x' * 10**9 }}", name="template 'bomb'")
    with pytest.raises(TemplateRenderError, match="over the step limit"):
        rendering.check_limits("{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}")

    # Data decides: these render fine with ordinary data, so saving them is not refused.
    rendering.check_limits("{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}")
    rendering.check_limits("{{ total / count }} {{ amount|rupiah }} {{ x.y.z }}")
    rendering.check_limits("{{ 'x' * n }}")
