"""wa_tasks.core.phone refuses a number written with anything but digits, spaces, dashes, dots,
parentheses and one leading "+" (or a JID): nothing is skipped, so no input is ever read as a
different valid number. Its errors quote the caller's input; their log form masks it."""

import random
import time

import pytest

from wa_tasks.core.phone import MAX_LENGTH, mask, normalize
from wa_tasks.errors import InvalidPhoneNumber

NUMBER = "6281234567890"


@pytest.mark.parametrize(
    "raw",
    [
        "+62 812 3456 789a",  # phonenumbers alone: 628123456789, another valid number
        "0812 3456 789x",  # phonenumbers alone: 628123456789
        "0812-3456-7890x",
        "0812-3456-7890 ext 5",
        "0812-3456-7890 ext. 5",
        "0812 3456 7890;ext=5",
        "0812 3456 7890#5",
        "0812/3456/7890",
        "0812-3456-7890 / 0813-1111-2222",
        "0812 FLOWERS",
        "tel:+6281234567890",
        "+62 812 3456 7890,",
        "0812\x003456 7890",
        "0812\n3456 7890",
        "0812_3456_7890",
        "++62 812 3456 7890",
        "62+812 3456 7890",
        "+62 812 3456 7890+",
        "０８１２ー３４５６",  # a katakana long vowel mark, not a dash
        "0812-3456-7890@s.whatsapp.net",
        "62812 3456 7890@s.whatsapp.net",
        "6281234567890x@s.whatsapp.net",
        "6281234567890@s.whatsapp.net.evil",
    ],
)
def test_a_number_holding_anything_but_digits_and_separators_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize(raw)


#: Every ASCII character a number may not be written with, and a few others.
FORBIDDEN = [chr(c) for c in range(128) if not chr(c).isdigit() and chr(c) not in " -.()+"] + [
    "\u200b",  # zero-width space (format, not a space)
    "\u00ad",  # soft hyphen (format, not a dash)
    "é",
    "Ø",
    "²",  # a digit to isdigit(), not a decimal digit
    "\ufeff",
]


@pytest.mark.parametrize("char", FORBIDDEN, ids=[f"U+{ord(c):04X}" for c in FORBIDDEN])
def test_any_other_character_anywhere_in_a_valid_number_is_refused(char: str) -> None:
    # Given valid numbers of every shape, with one forbidden character put at the end, the
    # start or between two digits
    for number in ("0812-3456-7890", "+62 812 3456 7890", NUMBER, "081234567890"):
        for raw in (number + char, char + number, number[:4] + char + number[4:]):
            if not raw.strip() or raw.strip() == number:  # whitespace at the ends is trimmed
                continue
            # Then the number is refused: the character is not skipped
            with pytest.raises(InvalidPhoneNumber) as info:
                normalize(raw)
            assert "@" in raw or "is not a phone number" in str(info.value) or "too long" in str(info.value), raw


@pytest.mark.parametrize(
    "raw",
    [
        "0812-3456-7890",
        "0812.3456.7890",
        "(0812) 3456 7890",
        "+62 (812) 3456-7890",
        "(+62) 812 3456 7890",
        "+62 812\u00a03456\u20097890",  # no-break space, thin space
        "0812\u20133456\u20137890",  # en dashes
        "0812\u20103456\u20117890",  # hyphen, non-breaking hyphen
        "٠٨١٢٣٤٥٦٧٨٩٠",  # Arabic-Indic digits
        "０８１２３４５６７８９０",  # fullwidth digits
        "6281234567890@s.whatsapp.net",
        "+6281234567890@s.whatsapp.net",
        "6281234567890:12@s.whatsapp.net",
        "6281234567890.0:12@s.whatsapp.net",
        "6281234567890@c.us",
    ],
)
def test_digits_with_spaces_dashes_dots_parentheses_and_a_leading_plus_are_read(raw: str) -> None:
    assert normalize(raw).number == NUMBER


def _read(text: str) -> str | None:
    try:
        return normalize(text).number
    except InvalidPhoneNumber:
        return None


def test_whatever_separators_a_number_is_written_with_it_stays_that_number() -> None:
    # Given numbers written with random separators between their digits, seeded
    rng = random.Random(20261202)
    separators = [" ", "-", ".", "(", ")", "\u00a0", "\u2013", ""]
    read = 0
    for _ in range(2_000):
        significant = "8" + rng.choice("1235789") + "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 10)))
        digits = rng.choice(["0", "62", "+62"]) + significant
        written = "".join(d + rng.choice(separators) for d in digits)
        # Then each is read as the same digits without separators are, or refused with them
        expected = _read(digits)
        assert _read(written) == expected, written
        if expected is not None:
            read += 1
            # And a number written with its trunk "0" or its "+" is exactly the digits written
            if digits[0] in "0+":
                assert expected == "62" + significant, written
    assert read > 1_000


@pytest.mark.parametrize(
    ("raw", "starts"),
    [
        ("54321", "'54321' is not a valid phone number (region ID)"),
        ("+62 812 3456 789a", "'+62 812 3456 789a' is not a phone number: it holds 'a'"),
        ("0812-3456-7890 ext 5", "'0812-3456-7890 ext 5' is not a phone number: it holds 'e'"),
        ("62+812", "'62+812' is not a phone number: it holds a second '+' or a '+' after a digit"),
        ("abc", "'abc' is not a phone number"),
        ("1234567-890@g.us", "'1234567-890@g.us' is not a personal WhatsApp address (server 'g.us')"),
        ("0812-34@s.whatsapp.net", "'0812-34@s.whatsapp.net' is not a WhatsApp user address"),
        (" 0999123456789 ", "'0999123456789' is not a valid phone number"),
    ],
)
def test_the_error_says_what_the_caller_sent_and_its_log_form_masks_it(raw: str, starts: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize(raw)

    assert str(info.value).startswith(starts), str(info.value)
    shown = raw.strip()
    assert shown not in info.value.loggable
    assert info.value.loggable.startswith(repr(mask(shown))), info.value.loggable
    assert info.value.loggable.replace(repr(mask(shown)), repr(shown), 1) == str(info.value)


def test_an_error_quoting_nothing_of_the_callers_is_its_own_log_form() -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize(123)
    assert info.value.loggable == str(info.value) == "phone number must be a string, got int"


def test_a_long_input_is_refused_at_once_without_being_quoted() -> None:
    # Given inputs far over the length limit, of forbidden and of allowed characters
    for raw in ("x" * 1_000_000, "1" * 1_000_000, "(" * 1_000_000, " " * 1_000_000 + "1" * (MAX_LENGTH + 1)):
        started = time.perf_counter()
        with pytest.raises(InvalidPhoneNumber) as info:
            normalize(raw)
        # Then the refusal is quick and short: the input is neither parsed nor echoed
        assert time.perf_counter() - started < 0.5
        assert "too long" in str(info.value) and len(str(info.value)) < 100
