"""Who may use the web process: the API key (header or bearer token) for programs, a login with
the same key for the pages (a signed session cookie), and the refusal to serve an unauthenticated
API beyond this machine.

Keys are compared in constant time. Without ``WA_API_KEY`` everything is open, which is why the
server then only listens on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from wa_tasks.settings import Settings, get_settings, is_loopback

#: Key of the session cookie entry that marks a logged-in operator.
SESSION_FLAG = "wa_auth"


class LoginRequired(Exception):
    """A page was asked for without a login: the app answers with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.location = f"/login?next={quote(next_path, safe='/')}"


def check_bind_allowed(settings: Settings) -> None:
    """Refuse to serve an unauthenticated API beyond this machine."""
    if not settings.api_key and not is_loopback(settings.web_host):
        raise SystemExit(
            f"refusing to listen on {settings.web_host} without an API key: set WA_API_KEY, or WA_WEB_HOST=127.0.0.1"
        )


def key_matches(candidate: str | None, settings: Settings | None = None) -> bool:
    """Whether ``candidate`` is the configured API key (always true when none is configured)."""
    expected = (settings or get_settings()).api_key
    if expected is None:
        return True
    if candidate is None:
        return False
    return hmac.compare_digest(candidate.encode(), expected.get_secret_value().encode())


def session_secret(settings: Settings) -> str:
    """The secret that signs the pages' session cookie: derived from the API key, so that changing
    the key logs every browser out; random per process when there is no key (nothing to protect)."""
    if settings.api_key is None:
        return secrets.token_hex(32)
    return hmac.new(
        settings.api_key.get_secret_value().encode(), b"wa-tasks session cookie", hashlib.sha256
    ).hexdigest()


def logged_in(request: Request) -> bool:
    return get_settings().api_key is None or request.session.get(SESSION_FLAG) is True


def login(request: Request, key: str) -> bool:
    """Log the browser in when ``key`` is the API key."""
    if not key_matches(key):
        return False
    request.session[SESSION_FLAG] = True
    return True


def logout(request: Request) -> None:
    request.session.clear()


#: How programs send the key; declared as OpenAPI security schemes (Swagger UI's "Authorize").
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The WA_API_KEY")
bearer = HTTPBearer(auto_error=False, description="The WA_API_KEY as a bearer token (Prometheus)")


def require_key(
    request: Request,
    x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> None:
    """Dependency of every API route: ``X-API-Key``, a bearer token (what Prometheus' scrape
    configuration sends), or a logged-in page session (the pages' own scripts call the API)."""
    if key_matches(x_api_key if x_api_key is not None else (authorization.credentials if authorization else None)):
        return
    if request.session.get(SESSION_FLAG) is True:
        return
    raise HTTPException(status_code=401, detail="missing or wrong API key: send it as the X-API-Key header")


def require_login(request: Request) -> None:
    """Dependency of every page: a browser that has not logged in is sent to the login page."""
    if not logged_in(request):
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
