"""Who may use the web process: the API key (header or bearer token) for programs, a login with
the same key for the pages (a signed session cookie), and the refusal to serve an unauthenticated
API beyond this machine.

Keys are compared in constant time. Without ``WA_API_KEY`` everything is open, which is why the
server then only listens on loopback. Besides the full key, stored keys with a scope
(``admin/api_keys``): a ``send`` key is accepted by ``require_send`` (``POST /send`` and the drop-in
endpoints, where it may also come in the query string) and refused with a 403 everywhere else; its
requests count against its rate limit (``rate_limit``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from wa_tasks.admin import api_keys
from wa_tasks.settings import Settings, get_settings, is_loopback
from wa_tasks.web import rate_limit

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
    candidate = x_api_key if x_api_key is not None else (authorization.credentials if authorization else None)
    if key_matches(candidate):
        return
    if request.session.get(SESSION_FLAG) is True:
        return
    if candidate is not None and api_keys.scope_of(get_settings(), candidate) is not None:
        raise HTTPException(
            status_code=403, detail="this API key may only send messages (scope send); this route needs WA_API_KEY"
        )
    raise HTTPException(status_code=401, detail="missing or wrong API key: send it as the X-API-Key header")


#: The key in the query string, for the drop-in endpoints only (callers that cannot set a header).
api_key_query = APIKeyQuery(name="key", auto_error=False, description="WA_API_KEY or a send-scoped key")
#: Query parameter names a drop-in caller may put its key under: ``key``, and ``token`` as some gateways name it.
QUERY_KEY_NAMES = ("key", "token")


def _header_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization`` (``Bearer KEY``, or the bare key as Fonnte's
    clients send it)."""
    if (value := request.headers.get("x-api-key")) is not None:
        return value
    value = request.headers.get("authorization")
    if value is None:
        return None
    scheme, _, rest = value.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" and rest.strip() else value.strip()


def _may_send(request: Request, candidate: str | None) -> bool:
    """Whether ``candidate`` (or the page session) may send; a stored key's request is counted
    against its rate limit here, once it is known to be valid (``rate_limit``: 429 past it)."""
    if key_matches(candidate) or request.session.get(SESSION_FLAG) is True:
        return True
    if candidate is None:
        return False
    settings = get_settings()
    found = api_keys.identify(settings, candidate)
    if found is None or found[1] != "send":
        return False
    rate_limit.enforce(settings, found[0])
    return True


def require_send(
    request: Request,
    _x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    _authorization: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> None:
    """Dependency of ``POST /send``: what ``require_key`` accepts, or a ``send``-scoped key."""
    if not _may_send(request, _header_key(request)):
        raise HTTPException(
            status_code=401, detail="missing, wrong or revoked API key: send it as the X-API-Key header"
        )


def require_send_url(
    request: Request,
    _x_api_key: Annotated[str | None, Security(api_key_header)] = None,
    _key: Annotated[str | None, Security(api_key_query)] = None,
) -> None:
    """Dependency of the drop-in endpoints: as ``require_send``, and the key may also be the
    ``key`` (or ``token``) query parameter, the only place URL-template callers can put it."""
    candidate = _header_key(request)
    if candidate is None:
        candidate = next((request.query_params[n] for n in QUERY_KEY_NAMES if n in request.query_params), None)
    if not _may_send(request, candidate):
        raise HTTPException(
            status_code=401,
            detail="token invalid: missing, wrong or revoked API key (put it in the URL as ?key=..., "
            "or in the Authorization header)",
        )


def require_login(request: Request) -> None:
    """Dependency of every page: a browser that has not logged in is sent to the login page."""
    if not logged_in(request):
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
