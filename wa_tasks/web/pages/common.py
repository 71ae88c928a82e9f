"""What every page shares: the HTML rendering (templates, notices, the Content-Security-Policy),
the checks every form passes (text without NUL, same origin) and the route class that turns any
failure into a page that says what happened."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from wa_tasks.errors import WaTasksError
from wa_tasks.ops import metrics
from wa_tasks.settings import get_settings
from wa_tasks.web import auth

log = logging.getLogger(__name__)
#: ``wa_tasks/web``: the pages' ``templates/`` and ``static/`` are there.
HERE = Path(__file__).parent.parent
#: Jinja2 environment of the pages (``templates/``, autoescaped); assets are served from ``static/``.
templates = Jinja2Templates(directory=HERE / "templates")

#: Scripts only from /static (no inline code, no eval); QR codes are data: images; inline styles
#: are the progress bars' widths and Chart.js' canvas sizing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
#: Session statuses by colour class (the stylesheet's ``.st-*``).
SESSION_TONE = {
    "connected": "ok",
    "qr": "wait",
    "connecting": "wait",
    "disconnected": "off",
    "offline": "off",
    "failed": "bad",
    "banned": "bad",
    "logged_out": "bad",
}
#: How a session status reads on the pages (the others read as they are).
SESSION_LABEL = {"qr": "waiting for scan", "logged_out": "logged out"}
MESSAGE_TONE = {
    "scheduled": "off",
    "queued": "off",
    "routed": "wait",
    "sending": "wait",
    "sent": "info",
    "delivered": "ok",
    "read": "ok",
    "failed": "bad",
    "cancelled": "off",
    "expired": "bad",
}


def same_origin(request: Request) -> None:
    """A POST from another site is refused (its Origin/Referer names another host)."""
    if request.method != "POST":
        return
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return  # not a browser (curl, a test client): the login or the loopback bind protects
    try:
        netloc = urlsplit(source).netloc
    except ValueError:  # not a URL at all ("http://[")
        netloc = None
    if netloc != request.headers.get("host"):
        raise HTTPException(status_code=403, detail="this form must be sent from the wa-tasks pages")


async def text_input(request: Request) -> None:
    """Every field of a form, query and path is text without NUL characters: no operator types
    one, and PostgreSQL cannot store it (the database would refuse it as an error, not as a
    mistake in the form). Refused with 422 naming the field."""
    fields: list[tuple[str, Any]] = [*request.path_params.items(), *request.query_params.multi_items()]
    if request.method == "POST":
        fields += (await request.form()).multi_items()
    for name, value in fields:
        if not isinstance(value, str):
            raise HTTPException(status_code=422, detail=f"{_shown(name)}: a file was sent where the form has text")
        if "\x00" in name or "\x00" in value:
            raise HTTPException(status_code=422, detail=f"{_shown(name)}: contains a NUL character")


def _shown(name: str) -> str:
    """A field's name as the error shows it (it may be anything the client sent)."""
    return repr(name[:40].replace("\x00", "\\0"))


def form_refusal(exc: StarletteHTTPException) -> tuple[int, str]:
    """A request the pages refuse, as a status and a sentence: Starlette's and FastAPI's terse
    refusals of a body they cannot read as a form get words an operator can act on."""
    detail = str(exc.detail)
    if "exceeded maximum size" in detail:
        return 413, f"a field of the form is too long ({detail.rstrip('.')}): nothing was changed"
    if detail.startswith(("Too many fields", "Too many files")):
        return 413, f"the form has too many fields ({detail.rstrip('.')}): nothing was changed"
    if exc.status_code == 400 and (detail == UNREADABLE_BODY or "multipart" in detail.lower()):
        return 400, f"the form could not be read ({detail.rstrip('.')}): nothing was changed"
    return exc.status_code, detail


#: FastAPI's detail when a body cannot be parsed at all (a broken form, a multipart that is not).
UNREADABLE_BODY = "There was an error parsing the body"


class PageRoute(APIRoute):
    """A page route whose failures are pages too: a refused or unknown request, or anything
    unexpected (the database down), is an HTML page that says what happened, never JSON or a bare
    500. The login redirect passes through (the app turns it into a redirect)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except auth.LoginRequired:
                raise
            except StarletteHTTPException as exc:  # also Starlette's own, from its form parser
                return error_page(request, *form_refusal(exc))
            except RequestValidationError as exc:  # a field that does not validate (every one is text)
                return error_page(request, 422, readable(exc.errors()))
            except Exception as exc:
                return error_page(request, 500, fault(exc, request.url.path))

        return handle


def readable(errors: Any) -> str:
    """Validation errors as one line: ``body.key: Input should be a valid string``."""
    return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors)


def fault(exc: Exception, where: str) -> str:
    """An unexpected failure in words for the operator; the details (which may name hosts or SQL)
    go to the web process's log only."""
    log.error("page %s failed", where, exc_info=exc)
    return (
        f"the web process could not do that ({exc.__class__.__name__}: is the database or Redis down?); "
        "its log has the details"
    )


def error_page(request: Request, status_code: int, text: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status_code, code=status_code, text=text)


# The page modules add their routes to these two (``__init__`` includes ``pages`` in ``router``).
#: Pages and forms that need no login.
router = APIRouter(dependencies=[Depends(text_input)], include_in_schema=False, route_class=PageRoute)
#: Everything else.
pages = APIRouter(
    dependencies=[Depends(auth.require_login), Depends(same_origin)], include_in_schema=False, route_class=PageRoute
)


# Rendering helpers ----------------------------------------------------------------------------------


def _when(value: str | None) -> str:
    """An ISO time as operators read it: local time (WIB), and how long ago."""
    if not value:
        return "–"
    at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    local = at.astimezone(metrics.DAY_ZONE)
    seconds = (dt.datetime.now(dt.UTC) - at).total_seconds()
    if abs(seconds) < 60:
        ago = "just now" if seconds >= 0 else "in a moment"
    elif abs(seconds) < 3600:
        ago = f"{int(abs(seconds) // 60)} min {'ago' if seconds >= 0 else 'from now'}"
    elif abs(seconds) < 86400:
        ago = f"{int(abs(seconds) // 3600)} h {'ago' if seconds >= 0 else 'from now'}"
    else:
        return local.strftime("%d %b %Y %H:%M WIB")
    return f"{local.strftime('%H:%M:%S')} WIB ({ago})"


templates.env.filters["when"] = _when
templates.env.globals["session_tone"] = lambda status: SESSION_TONE.get(status, "off")
templates.env.globals["session_label"] = lambda status: SESSION_LABEL.get(status, status)
templates.env.globals["message_tone"] = lambda status: MESSAGE_TONE.get(status, "off")


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A notice shown once on the next page."""
    request.session.setdefault("flash", []).append({"kind": kind, "text": text})


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    settings = get_settings()
    notices = request.session.pop("flash", []) if name[0] != "_" else []
    host = request.url.hostname or "127.0.0.1"
    response = templates.TemplateResponse(
        request,
        name,
        {
            "notices": notices,
            "login_enabled": settings.api_key is not None,
            "flower_url": f"http://{host}:{settings.flower_port}/",
            **context,
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = CSP
    return response


def back(request: Request, path: str, text: str | None = None, kind: str = "ok") -> RedirectResponse:
    if text:
        flash(request, text, kind)
    return RedirectResponse(path, status_code=303)


def attempt(request: Request, action: Callable[[], str], path: str) -> RedirectResponse:
    """Run an operator's action; back to ``path`` with its result or its error in words."""
    try:
        return back(request, path, action())
    except WaTasksError as exc:
        return back(request, path, str(exc), "bad")
    except Exception as exc:  # Redis or the database down: the operator still gets words, not a 500
        return back(request, path, fault(exc, path), "bad")


def safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): an open redirect is a phishing aid."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
