"""The sessions page: add, change and remove sessions, link their devices (QR code or pairing code)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

from fastapi import Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from wa_tasks.admin import session_config as manage
from wa_tasks.core import qr, transports
from wa_tasks.errors import WaTasksError
from wa_tasks.infra import session_control
from wa_tasks.settings import get_settings
from wa_tasks.web.pages.common import attempt, back, fault, pages, render


def session_rows() -> tuple[list[dict[str, Any]], str | None]:
    try:
        return manage.listing(get_settings()), None
    except Exception as exc:  # the database is down: say so instead of a 500
        return [], "cannot read the sessions: " + fault(exc, "sessions")


@pages.get("/sessions")
def sessions_page(request: Request) -> HTMLResponse:
    rows, error = session_rows()
    return render(request, "sessions.html", sessions=rows, error=error, transports=transports.AVAILABLE)


@pages.get("/sessions/table")
def sessions_table(request: Request) -> HTMLResponse:
    rows, error = session_rows()
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
