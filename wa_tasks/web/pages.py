"""The management pages: server-rendered HTML for operators.

Dashboard, sessions (QR and pairing code), templates (live preview) and queue (messages, depths,
bulk jobs). Live parts are partial templates (``templates/_*.html``) that htmx polls every couple
of seconds; every form also works without JavaScript (POST, then a redirect with a notice).

Every page needs a login with the API key when one is configured (see ``auth``). A state-changing
POST must come from these pages: its ``Origin`` (or ``Referer``) must be this server, which stops
another site from driving an operator's browser even when no key is set (loopback installs).
Errors are shown as notices in words, never as JSON or a 500.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from models import MessageStatus
from wa_tasks.admin import dashboard, template_store
from wa_tasks.admin import session_config as manage
from wa_tasks.client import Client
from wa_tasks.core import qr, transports
from wa_tasks.errors import WaTasksError
from wa_tasks.infra import session_control
from wa_tasks.ops import metrics
from wa_tasks.pipeline import compose
from wa_tasks.settings import get_settings
from wa_tasks.web import auth

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
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
    "queued": "off",
    "routed": "wait",
    "sending": "wait",
    "sent": "info",
    "delivered": "ok",
    "read": "ok",
    "failed": "bad",
    "cancelled": "off",
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


# Login ------------------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): an open redirect is a phishing aid."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if get_settings().api_key is None or request.session.get(auth.SESSION_FLAG) is True:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
def login_submit(request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    same_origin(request)
    if auth.login(request, key):
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", status_code=401, next=_safe_next(next), error="That is not the API key.")


@router.post("/logout")
def logout_submit(request: Request) -> Response:
    same_origin(request)
    auth.logout(request)
    return RedirectResponse("/login", status_code=303)


@pages.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


# Sessions ---------------------------------------------------------------------------------------


def _sessions() -> tuple[list[dict[str, Any]], str | None]:
    try:
        return manage.listing(get_settings()), None
    except Exception as exc:  # the database is down: say so instead of a 500
        return [], "cannot read the sessions: " + fault(exc, "sessions")


@pages.get("/sessions")
def sessions_page(request: Request) -> HTMLResponse:
    rows, error = _sessions()
    return render(request, "sessions.html", sessions=rows, error=error, transports=transports.AVAILABLE)


@pages.get("/sessions/table")
def sessions_table(request: Request) -> HTMLResponse:
    rows, error = _sessions()
    return render(request, "_sessions_table.html", sessions=rows, error=error)


#: What a session form's fields must be, when one cannot be read.
SESSION_FIELDS_ERROR = "priority must be a whole number, pace a number of seconds and the date YYYY-MM-DD"


def _date(value: str) -> dt.date | None:
    """A form's date field (``YYYY-MM-DD``, as browsers send it); None when empty."""
    return dt.date.fromisoformat(value.strip()) if value.strip() else None


@pages.post("/sessions")
def sessions_add(
    request: Request,
    device_id: Annotated[str, Form()] = "",
    priority: Annotated[str, Form()] = "999",
    session_id: Annotated[str, Form()] = "",
    transport: Annotated[str, Form()] = "simulated",
    pairing: Annotated[str, Form()] = "auto",
    pace_seconds: Annotated[str, Form()] = "",
    number_since: Annotated[str, Form()] = "",
) -> Response:
    try:
        step = int(priority)
        pace = float(pace_seconds) if pace_seconds.strip() else None
        since = _date(number_since)
    except ValueError:
        return back(request, "/sessions", SESSION_FIELDS_ERROR, "bad")
    options = {"auto_pair": False} if transport == "simulated" and pairing == "qr" else None
    try:
        new_id = manage.add(
            get_settings(),
            device_id=device_id,
            priority=step,
            session_id=session_id.strip() or None,
            transport=transport,
            options=options,
            pace_seconds=pace,
            number_since=since,
        )
    except WaTasksError as exc:
        return back(request, "/sessions", str(exc), "bad")
    if options is not None or transport != "simulated":
        return back(request, f"/sessions/{new_id}/link", f"session {new_id} added: link it to a phone below")
    return back(request, "/sessions", f"session {new_id} added; it pairs automatically (simulated)")


@pages.post("/sessions/update")
def sessions_update(
    request: Request,
    session_id: Annotated[str, Form()] = "",
    priority: Annotated[str, Form()] = "",
    pace_seconds: Annotated[str, Form()] = "",
    default_pace: Annotated[str, Form()] = "",
    number_since: Annotated[str, Form()] = "",
    new_number: Annotated[str, Form()] = "",
) -> Response:
    try:
        step = int(priority) if priority.strip() else None
        pace: object = float(pace_seconds) if pace_seconds.strip() else manage.KEEP
        since: object = _date(number_since) or manage.KEEP
    except ValueError:
        return back(request, "/sessions", SESSION_FIELDS_ERROR, "bad")
    if default_pace:
        if pace is not manage.KEEP:
            return back(request, "/sessions", "give a pace or tick 'back to the default pace', not both", "bad")
        pace = None
    if new_number:
        if since is not manage.KEEP:
            return back(request, "/sessions", "give a date or tick 'count it as a new number', not both", "bad")
        since = None

    def run() -> str:
        manage.update(get_settings(), session_id, priority=step, pace_seconds=pace, number_since=since)
        row = manage.view(get_settings(), session_id)
        shown = "the default" if row["paceSeconds"] is None else f"{row['paceSeconds']:g} s"
        age = f", on WhatsApp since {row['numberSince']}" if row["numberSince"] else ", a new number"
        return f"session {session_id}: priority {row['priority']}, pace {shown}{age}"

    return attempt(request, run, "/sessions")


def _link_state(session_id: str) -> dict[str, Any]:
    settings = get_settings()
    row = next((s for s in manage.listing(settings) if s["id"] == session_id), None)
    if row is None:
        raise HTTPException(status_code=404, detail=f"there is no session {session_id!r}: it may have been removed")
    found = session_control.current_qr(settings, session_id) if row["status"] == "qr" else None
    return {
        "session": row,
        "qr_image": qr.png_data_url(found[0]) if found else None,
        "qr_left": max(0, int(found[1] - time.time())) if found else None,
    }


@pages.get("/sessions/{session_id}/link")
def link_page(request: Request, session_id: str) -> HTMLResponse:
    return render(request, "link.html", **_link_state(session_id))


@pages.get("/sessions/{session_id}/qr")
def link_qr(request: Request, session_id: str) -> HTMLResponse:
    return render(request, "_qr.html", **_link_state(session_id))


@pages.post("/sessions/{session_id}/pair")
def link_pair(request: Request, session_id: str, phone: Annotated[str, Form()] = "") -> Response:
    state = _link_state(session_id)
    try:
        answer = session_control.request(
            get_settings(), session_id, "pair", {"phone": phone}, timeout=session_control.COMMAND_TIMEOUT
        )
    except WaTasksError as exc:
        return render(request, "link.html", status_code=422, pair_error=str(exc), phone=phone, **state)
    return render(request, "link.html", pair_code=answer.get("code"), phone=phone, **state)


@pages.post("/sessions/{session_id}/logout")
def session_logout(request: Request, session_id: str) -> RedirectResponse:
    def run() -> str:
        session_control.request(get_settings(), session_id, "logout", timeout=session_control.COMMAND_TIMEOUT)
        return f"session {session_id} logged out: link it again with a new QR code (Reconnect)"

    return attempt(request, run, "/sessions")


@pages.post("/sessions/{session_id}/reconnect")
def session_reconnect(request: Request, session_id: str) -> RedirectResponse:
    def run() -> str:
        session_control.request(get_settings(), session_id, "reconnect", timeout=session_control.COMMAND_TIMEOUT)
        return f"session {session_id} is reconnecting"

    return attempt(request, run, "/sessions")


@pages.post("/sessions/{session_id}/remove")
def session_remove(request: Request, session_id: str) -> RedirectResponse:
    def run() -> str:
        # As `wa-tasks sessions remove`: unlink the device from the phone first.
        removal = manage.unlink_and_remove(get_settings(), session_id, timeout=session_control.COMMAND_TIMEOUT)
        note = (
            " (its device could not be unlinked: remove it on the phone under Linked devices)"
            if removal.unlink_error
            else ""
        )
        return f"session {session_id} removed; {removal.moved} waiting message(s) moved to other sessions{note}"

    return attempt(request, run, "/sessions")


# Templates --------------------------------------------------------------------------------------


def _sample_data(text: str) -> dict[str, str]:
    """``name: value`` (or ``name=value``) per line, as typed in the preview's sample box."""
    data = {}
    for line in text.splitlines():
        for sep in (":", "="):
            name, found, value = line.partition(sep)
            if found and name.strip():
                data[name.strip()] = value.strip()
                break
    return data


def _template_form(request: Request, template: dict[str, Any] | None, status_code: int = 200, **extra: Any) -> Any:
    return render(
        request,
        "template_edit.html",
        status_code=status_code,
        template=template,
        categories=compose.CATEGORIES,
        types=compose.TYPES,
        **extra,
    )


@pages.get("/templates")
def templates_page(request: Request) -> HTMLResponse:
    return render(request, "templates.html", templates=template_store.listing(get_settings()))


@pages.get("/templates/new")
def template_new(request: Request) -> HTMLResponse:
    return _template_form(request, None)


@pages.get("/templates/{name}")
def template_edit(request: Request, name: str) -> Response:
    try:
        template = template_store.get(get_settings(), name)
    except WaTasksError as exc:
        return back(request, "/templates", str(exc), "bad")
    return _template_form(request, template)


@pages.post("/templates/preview")
def template_preview(
    request: Request,
    content: Annotated[str, Form()] = "",
    type: Annotated[str, Form()] = "text",
    sample: Annotated[str, Form()] = "",
) -> HTMLResponse:
    if not content.strip():
        return render(request, "_preview.html", empty=True)
    try:
        result = template_store.preview(get_settings(), content=content, type=type, data=_sample_data(sample))
    except WaTasksError as exc:
        return render(request, "_preview.html", error=str(exc))
    return render(request, "_preview.html", preview=result)


@pages.post("/templates")
def template_create(
    request: Request,
    name: Annotated[str, Form()] = "",
    content: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "notification",
    type: Annotated[str, Form()] = "text",
    language: Annotated[str, Form()] = "id",
    sample: Annotated[str, Form()] = "",
) -> Response:
    try:
        template_store.create(get_settings(), name.strip(), content, category=category, type=type, language=language)
    except WaTasksError as exc:
        draft = {"name": name, "content": content, "category": category, "type": type, "language": language}
        return _template_form(request, None, 422, draft=draft, error=str(exc), sample=sample)
    return back(request, f"/templates/{name.strip()}", f"template {name.strip()} saved")


@pages.post("/templates/{name}")
def template_update(
    request: Request,
    name: str,
    content: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "notification",
    type: Annotated[str, Form()] = "text",
    language: Annotated[str, Form()] = "id",
    sample: Annotated[str, Form()] = "",
) -> Response:
    settings = get_settings()
    try:
        template_store.update(settings, name, content=content, category=category, type=type, language=language)
    except WaTasksError as exc:
        try:
            current = template_store.get(settings, name)
        except WaTasksError:
            return back(request, "/templates", str(exc), "bad")
        draft = {**current, "content": content, "category": category, "type": type, "language": language}
        return _template_form(request, current, 422, draft=draft, error=str(exc), sample=sample)
    return back(request, f"/templates/{name}", f"template {name} saved")


@pages.post("/templates/{name}/deactivate")
def template_deactivate(request: Request, name: str) -> RedirectResponse:
    def run() -> str:
        template_store.deactivate(get_settings(), name)
        return f"template {name} deactivated: new messages can no longer use it"

    return attempt(request, run, "/templates")


@pages.post("/templates/{name}/activate")
def template_activate(request: Request, name: str) -> RedirectResponse:
    def run() -> str:
        template_store.update(get_settings(), name, is_active=True)
        return f"template {name} is active again"

    return attempt(request, run, "/templates")


# Dashboard --------------------------------------------------------------------------------------


@pages.get("/dashboard")
def dashboard_page(request: Request) -> HTMLResponse:
    settings = get_settings()
    error = None
    try:
        charts = dashboard.charts(settings)
        today = metrics.stats(settings)
    except Exception as exc:
        charts, today, error = None, None, "cannot read the figures: " + fault(exc, "dashboard")
    return render(request, "dashboard.html", charts=charts, today=today, error=error)


# Queue ------------------------------------------------------------------------------------------


def queue_filters(request: Request) -> dict[str, str | None]:
    query = request.query_params
    return {name: (query.get(name) or "").strip() or None for name in ("status", "session", "to", "job")}


@pages.get("/queue")
def queue_page(request: Request) -> HTMLResponse:
    rows, _ = _sessions()
    return render(
        request,
        "queue.html",
        filters=queue_filters(request),
        statuses=[s.value for s in MessageStatus],
        session_ids=[s["id"] for s in rows],
        **_queue_parts(request),
    )


@pages.get("/queue/live")
def queue_live(request: Request) -> HTMLResponse:
    return render(request, "_queue_live.html", filters=queue_filters(request), **_queue_parts(request))


def _queue_parts(request: Request) -> dict[str, Any]:
    from wa_tasks.admin import queue_view

    settings = get_settings()
    filters = queue_filters(request)
    try:
        messages = queue_view.list_messages(
            settings, status=filters["status"], session=filters["session"], to=filters["to"], job=filters["job"]
        )
        depths = queue_view.queue_depths(settings)
        jobs = queue_view.list_jobs(settings)
        error = None
    except WaTasksError as exc:
        messages, depths, jobs, error = [], {}, [], str(exc)
    except Exception as exc:  # Redis or the database down
        messages, depths, jobs, error = [], {}, [], "cannot read the queue: " + fault(exc, "queue")
    chosen = {k: v for k, v in filters.items() if v}
    return {
        "messages": messages,
        "depths": depths,
        "jobs": jobs,
        "queue_error": error,
        "live_query": f"?{urlencode(chosen)}" if chosen else "",
    }


@pages.post("/queue/messages/{message_id}/retry")
def message_retry(request: Request, message_id: str) -> RedirectResponse:
    def run() -> str:
        if Client(get_settings()).retry(message_id):
            return f"message {message_id} queued again"
        return f"message {message_id} is not failed (any more): nothing to retry"

    return attempt(request, run, _referer_path(request, "/queue"))


@pages.post("/queue/messages/{message_id}/cancel")
def message_cancel(request: Request, message_id: str) -> RedirectResponse:
    def run() -> str:
        if Client(get_settings()).cancel(message_id):
            return f"message {message_id} cancelled"
        return f"message {message_id} is already being sent or done: it cannot be cancelled"

    return attempt(request, run, _referer_path(request, "/queue"))


@pages.post("/queue/jobs/{job_id}/cancel")
def job_cancel(request: Request, job_id: str) -> RedirectResponse:
    def run() -> str:
        cancelled = Client(get_settings()).cancel_bulk(job_id)
        return f"bulk job {job_id} cancelled; {cancelled} unsent message(s) will not be sent"

    return attempt(request, run, _referer_path(request, "/queue"))


def _referer_path(request: Request, default: str) -> str:
    """Back to the page (with its filters) the form was on."""
    referer = request.headers.get("referer")
    if not referer:
        return default
    try:
        parts = urlsplit(referer)
    except ValueError:  # not a URL
        return default
    return _safe_next(parts.path + (f"?{parts.query}" if parts.query else "")) if parts.path else default


router.include_router(pages)
