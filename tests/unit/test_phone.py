"""wa_tasks.core.phone: every way a customer's number is written → one Recipient; anything else is refused."""

import pytest

from wa_tasks.core.phone import Recipient, mask, normalize
from wa_tasks.errors import InvalidPhoneNumber, InvalidRequest

INDONESIAN = "6281234567890"


@pytest.mark.parametrize(
    "raw",
    [
        "0812-3456-7890",
        "+62 812 3456 7890",
        "6281234567890",
        "6281234567890@s.whatsapp.net",
        "081234567890",
        " 0812 3456 7890 ",
        "6281234567890@c.us",
        "6281234567890:12@s.whatsapp.net",  # a device suffix on a JID is dropped
    ],
)
def test_every_spelling_of_one_indonesian_number_gives_the_same_recipient(raw):
    recipient = normalize(raw)

    assert recipient == Recipient(number=INDONESIAN)
    assert recipient.jid == "6281234567890@s.whatsapp.net"
    assert recipient.e164 == "+6281234567890"


def test_a_valid_number_from_another_country_keeps_its_country_code():
    recipient = normalize("+44 20 7946 0958")

    assert recipient.number == "442079460958"
    assert recipient.jid == "442079460958@s.whatsapp.net"


def test_the_region_decides_how_a_national_number_is_read():
    assert normalize("020 7946 0958", region="GB").number == "442079460958"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", ["empty"]),
        ("   ", ["empty"]),
        ("abc", ["not a phone number"]),
        ("123", ["not a valid phone number", "region ID"]),
        ("0812", ["not a valid phone number", "region ID"]),
        ("+1 555", ["not a valid phone number"]),
        ("12345-678@g.us", ["not a personal WhatsApp address", "'g.us'", "@s.whatsapp.net"]),
        ("1" * 100, ["too long", "64"]),
        ("x" * 100, ["too long"]),
        (12345, ["must be a string", "int"]),
        (None, ["must be a string", "NoneType"]),
    ],
)
def test_anything_that_is_not_a_personal_number_is_refused_with_a_clear_message(raw, words):
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize(raw)

    message = str(info.value)
    for word in words:
        assert word in message


def test_an_invalid_number_is_an_invalid_request_and_a_value_error():
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize("0812")

    assert isinstance(info.value, InvalidRequest)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "invalid_phone_number"


def test_the_refusal_message_quotes_the_callers_input_and_its_log_form_masks_it():
    # A 13-digit number that is not valid in Indonesia (unassigned prefix).
    raw = "0999123456789"
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize(raw)

    assert str(info.value).startswith(f"{raw!r} is not a valid phone number")
    assert raw not in info.value.loggable
    assert info.value.loggable.startswith(f"{mask(raw)!r} is not a valid phone number")


def test_mask_hides_the_middle_digits():
    assert mask(INDONESIAN) == "62812*****890"


@pytest.mark.parametrize("number", [INDONESIAN, "442079460958", "+6281234567890", "1234567", "12345678"])
def test_mask_never_contains_the_full_number_and_keeps_its_length(number):
    masked = mask(number)

    assert number not in masked
    assert "*" in masked
    assert len(masked) == len(number)
    assert masked.endswith(number[-3:])


def test_mask_works_on_a_jid_and_keeps_its_server():
    masked = mask("6281234567890@s.whatsapp.net")

    assert masked == "62812*****890@s.whatsapp.net"
    assert INDONESIAN not in masked


@pytest.mark.parametrize("short", ["", "1", "123456"])
def test_mask_hides_a_short_value_completely(short):
    assert mask(short) == "*" * len(short)


def test_a_recipient_masks_itself():
    assert normalize("0812-3456-7890").masked == "62812*****890"
