"""``/sessions``: configure the WhatsApp numbers, link their devices (QR code or pairing code) and
command the session host that runs them."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query

from wa_tasks.admin import session_config as manage
from wa_tasks.core import qr as qr_codes
from wa_tasks.core.phone import normalize
from wa_tasks.errors import Conflict, HostUnavailable, NotFound, UnknownSession
from wa_tasks.infra import session_control
from wa_tasks.web import schemas
from wa_tasks.web.api.deps import CONFLICT, HOST, NOT_FOUND, SessionId, settings
from wa_tasks.web.schemas import CreateSession, PairBody, UpdateSession

router = APIRouter()

#: Seconds to wait for the device to be unlinked before a session is deleted.
UNLINK_TIMEOUT = 10.0


@router.get("/sessions", response_model=schemas.Sessions)
def list_sessions() -> dict[str, Any]:
    """Every session with its live status; the primary has ``isPrimary``."""
    return {"sessions": manage.listing(settings())}


@router.post("/sessions", status_code=201, response_model=schemas.SessionDetail)
def create_session(body: CreateSession) -> dict[str, Any]:
    """Configure a new session; running session hosts start it within a heartbeat."""
    session_id = manage.add(
        settings(),
        device_id=body.deviceId,
        priority=body.priority,
        session_id=body.sessionId,
        transport=body.transport,
        options=body.options,
        pace_seconds=body.paceSeconds,
        number_since=body.numberSince,
    )
    return manage.view(settings(), session_id)


def _session(session_id: str) -> dict[str, Any]:
    try:
        return manage.view(settings(), session_id)
    except UnknownSession as exc:
        raise NotFound(str(exc)) from None


@router.get("/sessions/{session_id}", responses=NOT_FOUND, response_model=schemas.SessionDetail)
def get_session(session_id: SessionId) -> dict[str, Any]:
    return _session(session_id)


@router.patch("/sessions/{session_id}", responses=NOT_FOUND, response_model=schemas.SessionDetail)
def update_session(session_id: SessionId, body: UpdateSession) -> dict[str, Any]:
    """Change a session's priority (make another number the primary), pace or number age, keeping
    its device linked. Routing uses the new priority at once; a new pace or number age takes effect
    within a heartbeat."""
    given = body.model_fields_set
    try:  # nothing given at all is manage.update's 422 ("nothing to change")
        manage.update(
            settings(),
            session_id,
            priority=body.priority,
            pace_seconds=body.paceSeconds if "paceSeconds" in given else manage.KEEP,
            number_since=body.numberSince if "numberSince" in given else manage.KEEP,
        )
    except UnknownSession as exc:
        raise NotFound(str(exc)) from None
    return _session(session_id)


@router.delete("/sessions/{session_id}", responses=NOT_FOUND, response_model=schemas.SessionDeleted)
def delete_session(
    session_id: SessionId,
    keepDevice: Annotated[bool, Query(description="Do not unlink the device from the phone first")] = False,
) -> dict[str, Any]:
    """Unlink the session's device (unless ``keepDevice``), delete the session; its unsent
    messages move to other sessions."""
    session = _session(session_id)
    try:
        removal = manage.unlink_and_remove(
            settings(), session_id, unlink=not keepDevice and session["status"] != "offline", timeout=UNLINK_TIMEOUT
        )
    except UnknownSession as exc:  # removed meanwhile by someone else
        raise NotFound(str(exc)) from None
    unlinked, moved = removal.unlinked, removal.moved
    warning = (
        f"the device was not unlinked ({removal.unlink_error}); remove it on the phone (Linked devices)"
        if removal.unlink_error
        else None
    )
    return {"id": session_id, "deleted": True, "deviceUnlinked": unlinked, "movedMessages": moved, "warning": warning}


@router.get("/sessions/{session_id}/qr", responses={**NOT_FOUND, **CONFLICT}, response_model=schemas.QRCode)
def session_qr(session_id: SessionId) -> dict[str, Any]:
    """The QR code the session shows now, to scan with WhatsApp (Linked devices → Link a device),
    and the seconds until it rotates. 409 when there is none to scan (linked, or not shown yet)."""
    session = _session(session_id)
    found = session_control.current_qr(settings(), session_id)
    if found is None:
        status = session["status"]
        if status == "connected":
            why = "it is linked and connected: there is nothing to scan"
        elif status == "offline":
            why = "no session host runs it (start one with `wa-tasks sessions`)"
        else:
            why = f"it is {status} and shows no QR code right now; ask again in a few seconds"
        raise Conflict(f"session {session_id} has no QR code: {why}", code="no_qr")
    code, expires_at = found
    return {
        "qr": qr_codes.png_data_url(code),
        "expires": max(0, round(expires_at - time.time())),
        "sessionId": session_id,
    }


def _command(session_id: str, action: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    session = _session(session_id)
    if session["status"] == "offline":
        raise HostUnavailable(f"no session host runs session {session_id}: start one with `wa-tasks sessions`")
    answer = session_control.request(settings(), session_id, action, args, timeout=session_control.COMMAND_TIMEOUT)
    answer.pop("ok", None)
    return answer


@router.post("/sessions/{session_id}/pair", responses={**NOT_FOUND, **HOST}, response_model=schemas.PairingCode)
def pair_session(session_id: SessionId, body: PairBody) -> dict[str, Any]:
    """Link by phone number instead of a QR scan: returns the 8-character code to type on the
    phone (Linked devices → Link with phone number)."""
    phone = normalize(body.phone, settings().default_region).number
    return {"code": _command(session_id, "pair", {"phone": phone})["code"], "sessionId": session_id}


@router.post("/sessions/{session_id}/logout", responses={**NOT_FOUND, **HOST})
def logout_session(session_id: SessionId) -> dict[str, Any]:
    """Unlink the device: the session needs a new QR scan (after a reconnect) to send again."""
    _command(session_id, "logout")
    return {"sessionId": session_id, "loggedOut": True}


@router.post("/sessions/{session_id}/reconnect", responses={**NOT_FOUND, **HOST})
def reconnect_session(session_id: SessionId) -> dict[str, Any]:
    """Restart the session's connection (after a logout, or when it is stuck)."""
    _command(session_id, "reconnect")
    return {"sessionId": session_id, "reconnecting": True}


@router.post("/sessions/{session_id}/probe", responses={**NOT_FOUND, **HOST})
def probe_session(session_id: SessionId) -> dict[str, Any]:
    """Time one round trip to WhatsApp; messages nobody."""
    return {"sessionId": session_id, "latencyMs": _command(session_id, "probe")["latency_ms"]}
