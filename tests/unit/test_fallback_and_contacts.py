"""Pure parts of the email fallback and contact sync: address checks, subjects, the email's two
parts, batching."""

from __future__ import annotations

import pytest

from wa_tasks.errors import InvalidMessage
from wa_tasks.pipeline import contacts, fallback
from wa_tasks.settings import Settings


@pytest.mark.parametrize("value", [None, "", "  "])
def test_no_address_is_none(value: object) -> None:
    assert fallback.check_address(value) is None


@pytest.mark.parametrize("value", ["budi", "budi@", "a b@c.id", 42, "x@y"])
def test_a_bad_address_is_refused_with_an_example(value: object) -> None:
    with pytest.raises(InvalidMessage, match="budi@example.com"):
        fallback.check_address(value)


def test_an_address_is_trimmed() -> None:
    assert fallback.check_address(" budi@example.co.id ") == "budi@example.co.id"


def test_the_subject_comes_from_the_template_name_else_the_first_line() -> None:
    assert fallback.subject_of("x", "payment_reminder") == "[WhatsApp Backup] Payment reminder"
    assert fallback.subject_of("\n*Tagihan Baru*\nRp150.000", None) == "[WhatsApp Backup] Tagihan Baru"
    long = fallback.subject_of("a" * 200, None)
    assert len(long) <= len("[WhatsApp Backup] ") + 78 and long.endswith("...")


def test_the_email_has_the_text_and_escaped_html() -> None:
    email = fallback.compose(Settings(), to="budi@example.com", content="Halo <b>Budi</b>\nRp1 & 2", template_name=None)
    text, html = email.get_body(("plain",)), email.get_body(("html",))
    assert text is not None and html is not None
    assert "Halo <b>Budi</b>\nRp1 & 2" in text.get_content()
    assert "Halo &lt;b&gt;Budi&lt;/b&gt;<br>\nRp1 &amp; 2" in html.get_content()


def test_batches_split_in_order() -> None:
    items = [str(i) for i in range(120)]
    chunks = list(contacts.batches(items, 50))
    assert [len(c) for c in chunks] == [50, 50, 20] and sum(chunks, []) == items
    assert list(contacts.batches([], 50)) == []
    with pytest.raises(ValueError):
        list(contacts.batches(items, 0))
