"""wa_tasks.pipeline.media.download against a real local HTTP server: what the session host does with a media
URL at send time. It never waits without a limit and never reads more than the cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.billing_samples import PNG_1PX
from wa_tasks.errors import MediaError
from wa_tasks.pipeline.media import download

pytestmark = pytest.mark.integration


class _Server(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path
        if path == "/ok.png":
            self._send(PNG_1PX, "image/png")
        elif path == "/untyped":  # no useful Content-Type: the bytes tell
            self._send(PNG_1PX, "application/octet-stream")
        elif path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 2**20))
            self.end_headers()
        elif path == "/big-streamed":  # no Content-Length: the cap is enforced while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"\0" * 65536)
        elif path == "/silent":  # headers, then nothing
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.flush()
            time.sleep(5)
        elif path == "/drip":  # a byte at a time: each read is quick, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        elif path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://files.example/a.png")
            self.end_headers()
        else:
            self.send_error(404, "Not Found")

    def _send(self, body: bytes, mimetype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hanging up on purpose (cap, timeout) is expected here


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_image_is_downloaded_with_its_type_and_name(base: str) -> None:
    payload = download(f"{base}/ok.png")

    assert (payload.data, payload.mimetype, payload.filename) == (PNG_1PX, "image/png", "ok.png")
    assert download(f"{base}/untyped").mimetype == "image/png"


@pytest.mark.parametrize(
    ("path", "kwargs", "words"),
    [
        ("/missing.png?token=secret", {}, "/missing.png?… answered HTTP 404"),
        ("/big-declared", {}, "is 50 MB; the limit is 16 MB"),
        ("/big-streamed", {"max_bytes": 2**20}, "larger than the limit of 1 MB"),
        ("/silent", {"socket_timeout": 0.5}, "could not be downloaded: TimeoutError"),
        ("/drip", {"timeout": 1.0}, "took longer than 1s"),
        ("/to-ftp", {}, "redirected to a non-http(s) URL (ftp://files.example/a.png)"),
    ],
)
def test_a_failed_download_is_a_clear_error_within_its_limits(
    base: str, path: str, kwargs: dict[str, float], words: str
) -> None:
    started = time.monotonic()
    with pytest.raises(MediaError) as info:
        download(f"{base}{path}", **kwargs)  # type: ignore[arg-type]

    assert words in str(info.value)
    assert "secret" not in str(info.value)  # a signed link's query is not repeated in errors
    assert time.monotonic() - started < 4.0


def test_an_unreachable_host_is_a_clear_error() -> None:
    with pytest.raises(MediaError, match="could not be reached"):
        download("http://127.0.0.1:9/a.png", socket_timeout=1.0)
