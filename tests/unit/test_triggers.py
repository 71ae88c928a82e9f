"""wa_tasks.core.triggers and wa_tasks.pipeline.optout: which template and priority an event sends, where the
customer's number comes from, and which replies opt a customer out."""

from collections.abc import Iterator

import pytest

from wa_tasks.core import priorities, triggers
from wa_tasks.errors import InvalidRequest, MissingRecipient, UnknownEvent
from wa_tasks.pipeline import optout
from wa_tasks.settings import Settings


@pytest.fixture(autouse=True)
def _no_registered_triggers() -> Iterator[None]:
    yield
    for event in list(triggers.mapping()):
        triggers.unregister(event)


def test_the_builtin_events_map_to_their_template_and_priority():
    mapped = {event: (t.template, priorities.resolve(t.priority)) for event, t in triggers.mapping().items()}

    assert mapped == {
        "invoice.created": ("new_invoice", priorities.LEVELS["normal"]),
        "payment.completed": ("payment_confirmation", priorities.LEVELS["urgent"]),
        "service.expiring": ("expiry_warning", priorities.LEVELS["normal"]),
        "voucher.activated": ("voucher_activated", priorities.LEVELS["urgent"]),
        "service.suspended": ("isolir_notice", priorities.LEVELS["high"]),
        "service.reactivated": ("reactivation_notice", priorities.LEVELS["urgent"]),
    }
    assert priorities.resolve(triggers.BULK_PRIORITY) == priorities.LEVELS["high"]


def test_an_unknown_event_is_an_invalid_request_listing_the_known_ones():
    with pytest.raises(UnknownEvent) as info:
        triggers.resolve("invoice.paid")

    message = str(info.value)
    assert "no trigger for event 'invoice.paid'" in message
    assert (
        "bulk.send, invoice.created, payment.completed, service.expiring, service.reactivated, service.suspended, "
        "voucher.activated" in message
    )
    assert "register" in message
    assert isinstance(info.value, InvalidRequest) and info.value.code == "unknown_event"


def test_billing_code_can_register_its_own_event_and_replace_a_builtin():
    triggers.register("isolir.warning", "isolir_notice", priority="high")
    triggers.register("invoice.created", "tagihan_custom")

    assert triggers.resolve("isolir.warning") == triggers.Trigger("isolir_notice", "high")
    assert triggers.resolve("invoice.created") == triggers.Trigger("tagihan_custom", "normal")

    triggers.unregister("invoice.created")
    assert triggers.resolve("invoice.created") == triggers.Trigger("new_invoice", "normal")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("", "t"), {}, UnknownEvent, "non-empty string"),
        ((" a.b", "t"), {}, UnknownEvent, "surrounding spaces"),
        (("bulk.send", "t"), {}, UnknownEvent, "built in"),
        (("a.b", ""), {}, InvalidRequest, "template must be a template name"),
        (("a.b", "t"), {"priority": "asap"}, InvalidRequest, "priority must be one of"),
    ],
)
def test_a_bad_registration_is_refused_at_once(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        triggers.register(*args, **kwargs)


def test_the_customer_number_comes_from_customer_whatsapp_or_to():
    assert triggers.recipient_of({"customer_whatsapp": "0812-3456-7890", "to": "x"}) == "0812-3456-7890"
    assert triggers.recipient_of({"to": "6281234567890@s.whatsapp.net"}) == "6281234567890@s.whatsapp.net"
    with pytest.raises(MissingRecipient, match=r"data\['customer_whatsapp'\]") as info:
        triggers.recipient_of({"customer_name": "Budi"})
    assert info.value.code == "missing_recipient"
    with pytest.raises(MissingRecipient, match="must be a string"):
        triggers.recipient_of({"customer_whatsapp": 6281234567890})


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("STOP", True),
        ("stop", True),
        ("  Berhenti  ", True),
        ("STOP.", True),
        ("berhenti!", True),
        ("Unsubscribe", True),
        ("\nSTOP\n", True),
        ("jangan stop internet saya", False),  # the whole message must be the word
        ("STOP promo", False),
        ("STOPP", False),
        ("", False),
        ("!", False),
    ],
)
def test_only_a_whole_message_of_an_opt_out_word_opts_out(text, opts_out):
    assert optout.matches(text, optout.words(Settings())) is opts_out


def test_the_opt_out_words_are_configurable():
    words = optout.words(Settings(optout_words=" Henti , KELUAR,,"))

    assert words == {"henti", "keluar"}
    assert optout.matches("keluar", words)
    assert not optout.matches("STOP", words)
