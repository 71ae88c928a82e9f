"""wa_tasks.infra.logs: a message id, a session and a masked number on every line about a message."""

import io
import logging

import pytest

from wa_tasks.infra.logs import FORMAT, MessageLog, context_filter
from wa_tasks.settings import mask_url

NUMBER = "6281234567890"
MASKED = "62812*****890"


@pytest.fixture
def captured():
    """A private logger writing FORMAT lines through the context filter into a StringIO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(context_filter())
    logger = logging.getLogger("test_logs.captured")
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers = []


def test_a_message_log_line_names_the_message_session_and_masked_number(captured):
    logger, stream = captured

    MessageLog(logger, "m-42", NUMBER, "sess-1").info("sent (attempt %d)", 1)

    line = stream.getvalue()
    assert "sent (attempt 1)" in line
    assert "msg=m-42" in line
    assert "session=sess-1" in line
    assert f"to={MASKED}" in line
    assert NUMBER not in line


def test_a_jid_recipient_is_masked_too(captured):
    logger, stream = captured

    MessageLog(logger, "m-1", f"{NUMBER}@s.whatsapp.net").warning("retrying")

    line = stream.getvalue()
    assert "msg=m-1" in line
    assert f"to={MASKED}@s.whatsapp.net" in line
    assert NUMBER not in line


def test_only_the_known_context_is_shown(captured):
    logger, stream = captured

    MessageLog(logger, "m-7").error("failed")

    line = stream.getvalue()
    assert line.rstrip().endswith("failed [msg=m-7]")
    assert "session=" not in line
    assert "to=" not in line


def test_a_line_about_no_message_has_no_context(captured):
    logger, stream = captured

    logger.info("worker ready")

    assert stream.getvalue().rstrip().endswith("worker ready")
    assert "[" not in stream.getvalue()


def test_extra_given_per_call_is_kept_alongside_the_message_context(captured):
    logger, stream = captured

    MessageLog(logger, "m-9", NUMBER).info("rerouted", extra={"session_id": "backup"})

    line = stream.getvalue()
    assert "msg=m-9" in line
    assert "session=backup" in line
    assert NUMBER not in line


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:secretpw@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:secretpw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("redis://:secretpw@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://u:p@secretpw@h/db", "postgresql://u:***@h/db"),  # "@" inside the password
    ],
)
def test_mask_url_hides_the_password(url, masked):
    assert mask_url(url) == masked
    assert "secretpw" not in mask_url(url)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "sqlite:////data/wa-tasks.db", "redis://h:1/2", "unix:///x/y.sock?db=3"]
)
def test_mask_url_leaves_a_url_without_password_unchanged(url):
    assert mask_url(url) == url


def test_mask_url_does_not_echo_an_unparseable_url():
    assert mask_url("postgresql://u:secretpw@[::1/db") == "<unparseable url>"
