"""The rules of status callbacks that need no I/O (``wa_tasks.core.webhook_rules``): the signature,
the backoff, the callback URL check and which addresses are public."""

from __future__ import annotations

import random

import pytest

from wa_tasks.core import webhook_rules
from wa_tasks.errors import InvalidCallbackUrl, InvalidRequest

# The Standard Webhooks specification's own example: a receiver using its libraries (or Svix's)
# verifies what wa-tasks signs.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_standard_webhooks_one() -> None:
    assert webhook_rules.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_a_plain_secret_is_its_own_key_and_verifies() -> None:
    header = webhook_rules.signature("s3cret", "evt_1", 1000, b"{}")
    assert webhook_rules.verify("s3cret", "evt_1", "1000", b"{}", header, now=1010)
    assert header != webhook_rules.signature("s3cret!", "evt_1", 1000, b"{}")


@pytest.mark.parametrize(
    ("event_id", "timestamp", "body", "now"),
    [
        ("evt_2", "1000", b"{}", 1000),  # another event's id
        ("evt_1", "1001", b"{}", 1001),  # another time
        ("evt_1", "1000", b"{ }", 1000),  # a body changed by one byte
        ("evt_1", "1000", b"{}", 1000 + 301),  # replayed after the tolerance
        ("evt_1", "soon", b"{}", 1000),
    ],
)
def test_verification_refuses_what_was_not_signed_or_is_replayed(
    event_id: str, timestamp: str, body: bytes, now: float
) -> None:
    header = webhook_rules.signature("s3cret", "evt_1", 1000, b"{}")
    assert not webhook_rules.verify("s3cret", event_id, timestamp, body, header, now=now)


def test_backoff_doubles_with_jitter_up_to_an_hour() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 5), (2, 10), (3, 20), (6, 160), (11, 3600), (40, 3600)]:
        waits = [webhook_rules.backoff_seconds(attempts, rng) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), attempts
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not one value


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.88.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1", "fe80::1%eth0"],
)  # fmt: skip
def test_loopback_private_link_local_and_shared_addresses_are_not_public(address: str) -> None:
    assert not webhook_rules.is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "203.0.114.1", "2606:4700:4700::1111"])
def test_internet_addresses_are_public(address: str) -> None:
    assert webhook_rules.is_public(address)


@pytest.mark.parametrize(
    "url",
    ["https://billing.example.com/wa/status", "http://billing.example.com:8080/hook?key=1", "https://8.8.8.8/x"],
)
def test_http_and_https_urls_are_accepted(url: str) -> None:
    assert webhook_rules.check_callback_url(f"  {url} ", allow_private=False) == url
    assert webhook_rules.check_callback_url(None, allow_private=False) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://billing.example.com/x", "must be an http:// or https:// URL"),
        ("billing.example.com/hook", "must be an http:// or https:// URL"),
        ("javascript:alert(1)", "must be an http:// or https:// URL"),
        ("http:///nohost", "has no host"),
        ("http://billing.example.com:port/", "is not a valid URL"),
        ("http://bill ing.example.com/", "whitespace"),
        ("http://127.0.0.1:8000/hook", "loopback, private or link-local"),
        ("http://[::1]/hook", "loopback, private or link-local"),
        ("http://169.254.169.254/latest/meta-data", "loopback, private or link-local"),
        ("http://192.168.88.1/", "loopback, private or link-local"),
        ("http://localhost:8000/hook", "points at this machine"),
        ("https://" + "a" * 2000 + ".com/", "the limit is 2000"),
    ],
)
def test_a_bad_callback_url_is_refused_naming_the_field_and_quoting_it(url: str, says: str) -> None:
    with pytest.raises(InvalidCallbackUrl) as caught:
        webhook_rules.check_callback_url(url, allow_private=False)
    assert isinstance(caught.value, InvalidRequest)
    message = str(caught.value)
    assert message.startswith("callbackUrl (callback_url)") and says in message
    if len(url) < 100:
        assert repr(url) in message or repr(url.strip()) in message or "limit" in message or "no host" in message


def test_private_addresses_pass_when_the_setting_allows_them() -> None:
    assert webhook_rules.check_callback_url("http://127.0.0.1:8000/hook", allow_private=True)
    assert webhook_rules.check_callback_url("http://localhost/hook", allow_private=True)


def test_a_callback_url_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidCallbackUrl, match="must be a string URL, got int"):
        webhook_rules.check_callback_url(42, allow_private=True)
