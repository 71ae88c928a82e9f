"""The pages' address that ``wa-tasks up`` prints is one a browser on this machine can open."""

from __future__ import annotations

import pytest

from wa_tasks.cli.up import web_url
from wa_tasks.settings import Settings


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000/"),
        ("0.0.0.0", "http://127.0.0.1:8000/"),
        ("::", "http://[::1]:8000/"),
        ("::1", "http://[::1]:8000/"),
        ("billing.local", "http://billing.local:8000/"),
    ],
)
def test_the_printed_address_opens_the_pages(host: str, url: str) -> None:
    assert web_url(Settings(web_host=host, web_port=8000)) == url
