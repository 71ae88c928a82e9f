"""wa_tasks.core.phone's fast path (no ``phonenumbers.parse`` for plain E.164 or national digits) gives
exactly what the full parse gives, on many numbers of every shape it takes and around them."""

import random

import phonenumbers
import pytest

from wa_tasks.core.phone import _fast, _parse, normalize
from wa_tasks.errors import InvalidPhoneNumber

#: Leading digits of the significant number: real Indonesian mobile and fixed-line prefixes, and
#: every other digit, so valid and invalid numbers both come up.
PREFIXES = ["81", "82", "83", "85", "87", "88", "89", "21", "22", "24", "31", "61", "62", "64", "9", "1", "5", "7"]


def _significant(rng: random.Random) -> str:
    prefix = rng.choice(PREFIXES)
    return prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(4, 13)))


def _shapes(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        n = _significant(rng)
        out += ["0" + n, "62" + n, "+62" + n, f"62{n}@s.whatsapp.net", "6262" + n, "0" + "62" + n]
    return out


def _full(text: str, region: str = "ID") -> str | None:
    try:
        return _parse(text, region).number
    except InvalidPhoneNumber:
        return None


def test_fast_path_agrees_with_the_full_parse_on_many_numbers() -> None:
    # Given numbers of every shape the fast path takes (and near misses), seeded
    rng = random.Random(20261201)
    taken = 0
    for text in _shapes(rng, 4_000):
        # When the fast path answers, Then the full parse gives the same recipient
        fast = _fast(text, "ID")
        if fast is not None:
            taken += 1
            assert fast == _full(text), text
    # And the fast path does answer for most of them (it is a fast path, not a no-op)
    assert taken > 8_000


@pytest.mark.parametrize("text", ["081234567890", "6281234567890", "+6281234567890", "6281234567890@s.whatsapp.net"])
def test_the_usual_forms_take_the_fast_path(text: str) -> None:
    assert _fast(text, "ID") == "6281234567890" == normalize(text).number


@pytest.mark.parametrize(
    "text", ["0812-3456-7890", "+62 812 3456 7890", "0000000", "+6281234567890@s.whatsapp.net", "٠٨١٢٣٤٥٦٧٨٩٠"]
)
def test_other_forms_take_the_full_parse(text: str) -> None:
    assert _fast(text, "ID") is None


def test_invalid_numbers_are_still_refused() -> None:
    for text in ["0812", "08123456789012345", "62000", "+62 000 000"]:
        with pytest.raises(InvalidPhoneNumber):
            normalize(text)


@pytest.mark.parametrize("region", ["US", "GB", "DE", "SG", "MY"])
def test_fast_path_agrees_in_other_regions(region: str) -> None:
    # Given the region's own numbers in national and international forms, When the fast path answers, Then it agrees
    rng = random.Random(region)
    code = str(phonenumbers.country_code_for_region(region))
    for _ in range(1_000):
        n = rng.choice("123456789") + "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 11)))
        for text in ("0" + n, code + n, "+" + code + n, code + code + n):
            fast = _fast(text, region)
            if fast is not None:
                assert fast == _full(text, region), (region, text)
