"""wa_tasks.core.rendering: sandboxed Jinja2 with the {{variable}} syntax; every failure is a TemplateRenderError."""

import pytest

from wa_tasks.core.rendering import MAX_LENGTH, render, variables_of
from wa_tasks.errors import InvalidRequest, TemplateRenderError

REMINDER = "Halo {{customer_name}}, tagihan {{ invoice_no }} sebesar Rp{{amount}} jatuh tempo {{due_date}}."


def test_a_template_renders_with_complete_data():
    text = render(REMINDER, {"customer_name": "Budi", "invoice_no": "INV-7", "amount": "150.000", "due_date": "1 Mei"})

    assert text == "Halo Budi, tagihan INV-7 sebesar Rp150.000 jatuh tempo 1 Mei."


def test_extra_data_is_ignored():
    assert render("Hi {{name}}", {"name": "Ani", "unused": 1}) == "Hi Ani"


def test_a_template_without_variables_needs_no_data():
    assert render("Pembayaran diterima.", None) == "Pembayaran diterima."


def test_a_trailing_newline_is_kept():
    assert render("Hi {{name}}\n", {"name": "Ani"}) == "Hi Ani\n"


def test_text_is_not_html_escaped():
    assert render("{{x}}", {"x": "<b>&'\"</b>"}) == "<b>&'\"</b>"


def test_loops_and_locals_work():
    content = (
        "{% set sep = ', ' %}{% for i in items %}{{ i.name }}{% if not loop.last %}{{ sep }}{% endif %}{% endfor %}"
    )

    assert render(content, {"items": [{"name": "a"}, {"name": "b"}]}) == "a, b"


def test_a_missing_variable_is_refused_naming_every_missing_variable():
    with pytest.raises(TemplateRenderError) as info:
        render(REMINDER, {"customer_name": "Budi"}, name="template 'reminder'")

    message = str(info.value)
    assert "template 'reminder'" in message
    for variable in ("amount", "due_date", "invoice_no"):
        assert variable in message
    assert "customer_name" not in message


def test_no_data_at_all_names_every_variable():
    with pytest.raises(TemplateRenderError) as info:
        render("{{b}} {{a}}", None)

    assert "a, b" in str(info.value)


def test_a_template_error_is_an_invalid_request():
    with pytest.raises(InvalidRequest) as info:
        render("{{x}}", {})

    assert info.value.code == "template_error"


@pytest.mark.parametrize(
    ("content", "data"),
    [
        ('{{ "".__class__.__mro__ }}', {}),
        ("{{ cycler.__init__.__globals__ }}", {}),
        ("{{ lipsum.__globals__ }}", {}),
        ("{{ x.__class__.__mro__ }}", {"x": "a"}),
        ('{{ x|attr("__class__") }}', {"x": 1}),
        ("{{ f.__globals__ }}", {"f": render}),
        ("{{ items.append(1) }}", {"items": []}),  # immutable sandbox: no mutating the caller's data
    ],
)
def test_sandbox_escapes_are_refused(content, data):
    with pytest.raises(TemplateRenderError) as info:
        render(content, data)

    assert "unsafe" in str(info.value)


def test_the_immutable_sandbox_leaves_the_callers_data_untouched():
    items: list[int] = []
    with pytest.raises(TemplateRenderError):
        render("{{ items.append(1) }}", {"items": items})

    assert items == []


def test_output_at_the_limit_is_accepted():
    assert len(render("{{x}}", {"x": "a" * MAX_LENGTH})) == MAX_LENGTH == 4096


def test_output_over_the_limit_is_refused_with_both_lengths():
    with pytest.raises(TemplateRenderError) as info:
        render("{{x}}!", {"x": "a" * MAX_LENGTH}, name="promo")

    message = str(info.value)
    assert "promo" in message
    assert "4097" in message
    assert "4096" in message


def test_output_grown_by_the_template_itself_is_refused():
    with pytest.raises(TemplateRenderError):
        render('{{ "a" * 5000 }}', {})


@pytest.mark.parametrize(
    ("content", "data"),
    [
        # The sandbox's own limit on range() sizes.
        ("{{ range(200000)|length }}", {}),
        # Errors that depend on the data a caller gives.
        ("{{ total / count }}", {"total": 10, "count": 0}),
        ('{{ amount + " IDR" }}', {"amount": 1}),
    ],
)
def test_a_runtime_error_while_rendering_is_a_template_render_error(content, data):
    # submit.prepare() promises an InvalidRequest subclass for a bad request; the wa.send task records
    # only InvalidRequest as a refusal, so any other exception escaping render() crashes the task.
    with pytest.raises(TemplateRenderError):
        render(content, data)


def test_variables_of_returns_sorted_unique_names():
    assert variables_of("{{ b }}{{ a }}{{ a }}{{ c.d }}") == ["a", "b", "c"]


def test_variables_of_leaves_out_locals_and_jinja_globals():
    content = "{% set a = 1 %}{{ a }}{% for i in items %}{{ i }}{{ loop.index }}{% endfor %}{{ range(2)|list }}{{ x }}"

    assert variables_of(content) == ["items", "x"]


def test_variables_of_a_plain_text_is_empty():
    assert variables_of("no variables here") == []


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("Halo {{ name ", 1),
        ("Halo\n\n{% if %}", 3),
        ("{% for x in y %}\n{{ x }}", 2),
    ],
)
def test_a_syntax_error_is_refused_with_its_line(content, line):
    for call in (lambda: render(content, {}), lambda: variables_of(content)):
        with pytest.raises(TemplateRenderError) as info:
            call()

        message = str(info.value)
        assert "syntax error" in message
        assert f"line {line}" in message
