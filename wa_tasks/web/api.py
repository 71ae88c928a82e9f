"""The HTTP API under ``/api/whatsapp`` (the paths and JSON shapes billing systems call, plus what operators need).

Every route needs the API key (see ``auth``). Bad input is a 422 that names the field and says why;
an unknown id in the path is a 404; a session host that does not answer is a 503; none of them is
ever a 500. The work is done by the domain modules (``client``, ``sessions``, ``session_control``,
``bulk``, ``template_store``, ``queue_view``); this module only maps HTTP onto them.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from wa_tasks.admin import queue_view, template_store
from wa_tasks.admin import session_config as manage
from wa_tasks.client import Client
from wa_tasks.core import priorities, rendering
from wa_tasks.core import qr as qr_codes
from wa_tasks.core.phone import normalize
from wa_tasks.core.redis_keys import DEFAULT_QUEUE
from wa_tasks.errors import (
    Conflict,
    HostUnavailable,
    InvalidRequest,
    NotFound,
    UnknownJob,
    UnknownSession,
    UnknownTemplate,
)
from wa_tasks.infra import session_control
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import bulk, live_state
from wa_tasks.settings import Settings, get_settings
from wa_tasks.web import schemas
from wa_tasks.web.auth import require_key

#: The error answers every route may give (documented in the OpenAPI schema).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorBody, "description": "Missing or wrong API key"},
    422: {"model": schemas.ErrorBody, "description": "Invalid input: `detail` names the field and says why"},
    503: {"model": schemas.ErrorBody, "description": "Redis or the database is out of reach"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": schemas.ErrorBody, "description": "Unknown id"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.ErrorBody, "description": "Not possible in the current state"}
}
HOST: dict[int | str, dict[str, Any]] = {
    **CONFLICT,
    503: {"model": schemas.ErrorBody, "description": "No session host runs the session, or none answered in time"},
}

router = APIRouter(prefix="/api/whatsapp", dependencies=[Depends(require_key)], tags=["whatsapp"], responses=ERRORS)

#: Most recipients one ``send-bulk`` request may carry (split larger sends into several jobs).
MAX_RECIPIENTS = 10_000
#: Seconds to wait for the device to be unlinked before a session is deleted.
UNLINK_TIMEOUT = 10.0


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; nothing a caller sends needs one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


#: Plain text that is stored or looked up as it is.
Plain = Annotated[str, AfterValidator(_no_nul)]
SessionId = Annotated[Plain, Path(max_length=100, description="Session id, e.g. wa-1")]
MessageId = Annotated[Plain, Path(max_length=100, description="Message id returned by send")]
JobId = Annotated[Plain, Path(max_length=100, description="Bulk job id returned by send-bulk")]
TemplateName = Annotated[Plain, Path(max_length=100, description="Template name, e.g. payment_reminder")]


def _priority(value: object) -> str | int:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError(f"priority must be one of {', '.join(priorities.LEVELS)} or 0..9, got {value!r}")
    priorities.resolve(value)  # an InvalidPriority (a ValueError) that says what is accepted
    return value


Priority = Annotated[
    str | int,
    PlainValidator(_priority),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(priorities.LEVELS)},
                {"type": "integer", "minimum": 0, "maximum": 9},
            ],
            "description": "urgent, high, normal, low, or a Redis priority step 0 (highest) .. 9",
        }
    ),
]
TemplateData = Annotated[dict[str, Any], Field(description="Template variables")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def settings() -> Settings:
    return get_settings()


def client() -> Client:
    return Client(get_settings())


# Sessions -----------------------------------------------------------------------------------------


@router.get("/sessions", response_model=schemas.Sessions)
def list_sessions() -> dict[str, Any]:
    """Every session with its live status; the primary has ``isPrimary``."""
    return {"sessions": manage.listing(settings())}


class CreateSession(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"deviceId": "WA-2", "priority": 2}]})

    deviceId: Plain = Field(min_length=1, max_length=manage.MAX_DEVICE_ID, description="Device name, e.g. WA-2")
    priority: int = Field(default=999, ge=0, le=manage.MAX_PRIORITY, description="Lower = preferred")
    sessionId: Plain | None = Field(
        default=None, max_length=63, description="Session id (default: from the device name)"
    )
    transport: Literal["simulated", "neonize"] = "simulated"
    paceSeconds: float | None = Field(
        default=None, ge=0, le=manage.MAX_PACE_SECONDS, allow_inf_nan=False, description="Seconds between sends"
    )
    numberSince: dt.date | None = Field(
        default=None,
        description="The day the number started using WhatsApp (YYYY-MM-DD): ban safety's warm-up caps grow with "
        "its age. Default: the day it is added here, i.e. a new number",
    )
    options: dict[str, Any] | None = Field(default=None, description="Transport options, e.g. {auto_pair: false}")


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


class UpdateSession(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"priority": 1}, {"paceSeconds": 1.5}, {"paceSeconds": None}, {"numberSince": "2019-05-01"}]
        },
    )

    priority: int | None = Field(
        default=None, ge=0, le=manage.MAX_PRIORITY, description="Lower = preferred: the lowest connected is the primary"
    )
    paceSeconds: float | None = Field(
        default=None,
        ge=0,
        le=manage.MAX_PACE_SECONDS,
        allow_inf_nan=False,
        description="Seconds between sends; null: back to WA_PACE_SECONDS",
    )
    numberSince: dt.date | None = Field(
        default=None,
        description="The day the number started using WhatsApp (YYYY-MM-DD), for ban safety's warm-up; "
        "null: the day the session was added",
    )


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


class PairBody(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phone": "0812-3456-7890"}]})

    phone: Plain = Field(max_length=64, description="Phone number of the WhatsApp account to link")


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


# Messages -----------------------------------------------------------------------------------------


class SendBody(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "to": "6281234567890@s.whatsapp.net",
                    "template": "payment_reminder",
                    "data": {"customer_name": "John Doe", "invoice_number": "INV-001", "amount": "150000"},
                }
            ]
        },
    )

    to: Plain = Field(max_length=64, description="Phone number (0812-3456-7890, +62…, 62…) or WhatsApp JID")
    text: str | None = Field(default=None, min_length=1, max_length=rendering.MAX_LENGTH)
    template: Plain | None = Field(default=None, max_length=100, description="Template name")
    data: TemplateData | None = None
    priority: Priority = "normal"
    idempotencyKey: Plain | None = Field(default=None, min_length=1, max_length=200)
    sessionId: Plain | None = Field(default=None, max_length=100, description="Send only through this session")
    email: Plain | None = Field(default=None, max_length=320, description="Address for the email fallback")


@router.post("/send", status_code=202, response_model=schemas.Queued)
def send(body: SendBody) -> dict[str, Any]:
    """Queue one message (exactly one of ``text`` or ``template``); returns its id and status."""
    wa = client()
    message_id = wa.send(
        body.to,
        text=body.text,
        template=body.template,
        data=body.data,
        priority=body.priority,
        idempotency_key=body.idempotencyKey,
        session=body.sessionId,
        email=body.email,
    )
    return {"id": message_id, "status": wa.status(message_id)["status"]}


class Recipient(Body):
    whatsapp: Plain = Field(max_length=64, description="Phone number or WhatsApp JID")
    data: TemplateData | None = None


class BulkBody(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "recipients": [
                        {"whatsapp": "6281234567890@s.whatsapp.net", "data": {"customer_name": "Budi"}},
                        {"whatsapp": "6289876543210@s.whatsapp.net", "data": {"customer_name": "Sari"}},
                    ],
                    "template": "expiry_warning",
                    "templateData": {"remaining_time": 86400, "renewal_url": "https://billing.example/renew"},
                }
            ]
        },
    )

    recipients: list[Recipient] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    template: Plain | None = Field(default=None, max_length=100)
    text: str | None = Field(default=None, min_length=1, max_length=rendering.MAX_LENGTH)
    templateData: TemplateData | None = Field(default=None, description="Shared data; a recipient's own wins")
    priority: Priority = "high"
    idempotencyKey: Plain | None = Field(default=None, min_length=1, max_length=bulk.MAX_KEY_LENGTH)


@router.post("/send-bulk", status_code=202, response_model=schemas.BulkQueued)
def send_bulk(body: BulkBody) -> dict[str, Any]:
    """Queue one message per recipient as one bulk job (default priority high); returns the job
    id and its counts. Any invalid recipient queues nothing and is named in the 422."""
    wa = client()
    job_id = wa.send_bulk(
        [r.model_dump(exclude_none=True) for r in body.recipients],
        template=body.template,
        text=body.text,
        template_data=body.templateData,
        priority=body.priority,
        idempotency_key=body.idempotencyKey,
    )
    return {"jobId": job_id, **wa.bulk_status(job_id)}


@router.get("/message/{message_id}/status", responses=NOT_FOUND, response_model=schemas.MessageStatus)
def message_status(message_id: MessageId) -> dict[str, Any]:
    """id, status, sentAt, deliveredAt, readAt, sessionId (what billing systems poll), error and attempts."""
    return client().status(message_id)


@router.post("/message/{message_id}/retry", responses={**NOT_FOUND, **CONFLICT}, response_model=schemas.MessageStatus)
def retry_message(message_id: MessageId) -> dict[str, Any]:
    """Send a ``failed`` message again (its attempts start over)."""
    wa = client()
    if not wa.retry(message_id):
        status = wa.status(message_id)["status"]
        raise Conflict(f"message {message_id} is {status}; only a failed message can be retried", "not_failed")
    return wa.status(message_id)


@router.post("/message/{message_id}/cancel", responses={**NOT_FOUND, **CONFLICT}, response_model=schemas.MessageStatus)
def cancel_message(message_id: MessageId) -> dict[str, Any]:
    """Cancel a message that is not being sent yet (queued or routed)."""
    wa = client()
    if not wa.cancel(message_id):
        status = wa.status(message_id)["status"]
        raise Conflict(
            f"message {message_id} is {status}; only a queued or routed message can be cancelled", "not_cancellable"
        )
    return wa.status(message_id)


StatusFilter = Literal["queued", "routed", "sending", "sent", "delivered", "read", "failed", "cancelled"]


@router.get("/messages", response_model=schemas.Messages)
def list_messages(
    status: Annotated[StatusFilter | None, Query(description="Only messages in this status")] = None,
    session: Annotated[Plain | None, Query(max_length=100, description="Only messages routed to this session")] = None,
    to: Annotated[Plain | None, Query(max_length=64, description="Only messages to this number (any form)")] = None,
    job: Annotated[Plain | None, Query(max_length=100, description="Only messages of this bulk job")] = None,
    limit: Annotated[int, Query(ge=1, le=queue_view.MAX_LIMIT)] = 50,
    before: Annotated[
        Plain | None, Query(max_length=100, description="The `next` of the previous page: continue after it")
    ] = None,
) -> dict[str, Any]:
    """Messages newest first (no text), ``limit`` per page; ``next`` is the ``before`` of the next
    page (null on the last one). Numbers are shown as stored (E.164 digits)."""
    rows = queue_view.list_messages(
        settings(), status=status, session=session, to=to, job=job, limit=limit, before=before
    )
    return {"messages": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


# Bulk jobs ------------------------------------------------------------------------------------


def _job(job_id: str) -> dict[str, Any]:
    try:
        return bulk.progress(settings(), job_id)
    except UnknownJob as exc:
        raise NotFound(str(exc)) from None


@router.get("/jobs", response_model=schemas.Jobs)
def list_jobs(limit: Annotated[int, Query(ge=1, le=queue_view.MAX_LIMIT)] = 20) -> dict[str, Any]:
    """Bulk jobs newest first, with their counts."""
    return {"jobs": queue_view.list_jobs(settings(), limit=limit)}


@router.get("/jobs/{job_id}", responses=NOT_FOUND, response_model=schemas.JobProgress)
def get_job(job_id: JobId) -> dict[str, Any]:
    """A bulk job's progress: total, queued, sent, delivered, read, failed, cancelled."""
    return _job(job_id)


@router.post("/jobs/{job_id}/cancel", responses=NOT_FOUND, response_model=schemas.JobCancelled)
def cancel_job(job_id: JobId) -> dict[str, Any]:
    """Cancel what of the job was not sent yet; ``cancelledNow``: how many messages this stopped."""
    _job(job_id)
    try:
        cancelled = bulk.cancel(settings(), job_id)
    except UnknownJob as exc:
        raise NotFound(str(exc)) from None
    return {**_job(job_id), "cancelledNow": cancelled}


# Queue ----------------------------------------------------------------------------------------


@router.get("/queue", response_model=schemas.Queue)
def queue() -> dict[str, Any]:
    """Messages waiting on each session's broker queue per Redis priority step (0 = highest), and
    the dispatch tasks waiting for the worker."""
    depths = queue_view.queue_depths(settings())
    dispatch = live_state.backlogs(client_for(settings().redis), [DEFAULT_QUEUE])[DEFAULT_QUEUE]
    return {
        "sessions": {
            sid: {"byPriority": {str(step): n for step, n in steps.items()}, "total": sum(steps.values())}
            for sid, steps in depths.items()
        },
        "total": sum(sum(steps.values()) for steps in depths.values()),
        "dispatch": dispatch,
    }


# Metrics --------------------------------------------------------------------------------------


@router.get("/metrics")
def daily_metrics(
    day: Annotated[Plain | None, Query(max_length=10, description="YYYY-MM-DD, default today (WIB)")] = None,
    session: Annotated[Plain | None, Query(max_length=100)] = None,
) -> dict[str, Any]:
    """One local day's figures: sent, delivered, read, failed, average delivery time."""
    return client().stats(day, session)


# Templates ------------------------------------------------------------------------------------

Category = Literal["notification", "reminder", "promotion"]
TemplateType = Literal["text", "media", "button", "list"]
Language = Annotated[str, Field(pattern=r"^([a-z]{2}(-[A-Za-z]{2})?|[a-z]{3})$", description="e.g. id, en")]
Content = Annotated[Plain, Field(min_length=1, max_length=rendering.MAX_LENGTH)]


@router.get("/templates", response_model=schemas.Templates)
def list_templates(
    active: Annotated[bool, Query(description="Only the templates that can be used")] = False,
) -> dict[str, Any]:
    return {"templates": template_store.listing(settings(), include_inactive=not active)}


class CreateTemplate(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "custom_template",
                    "category": "notification",
                    "type": "text",
                    "content": "Hello {{name}}, your order {{order_id}} is ready!",
                }
            ]
        },
    )

    name: Plain = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    content: Content = Field(description="Text with {{variables}}")
    category: Category = "notification"
    type: TemplateType = "text"
    language: Language = "id"
    isActive: bool = True


@router.post("/templates", status_code=201, responses=CONFLICT, response_model=schemas.Template)
def create_template(body: CreateTemplate) -> dict[str, Any]:
    """Save a new template; its variables are extracted from the content. 409 if the name is taken."""
    s = settings()
    try:
        template_store.get(s, body.name)
    except UnknownTemplate:
        pass
    else:
        raise Conflict(f"template {body.name!r} already exists; change it with PUT", "template_exists")
    return template_store.create(
        s,
        body.name,
        body.content,
        category=body.category,
        type=body.type,
        language=body.language,
        is_active=body.isActive,
    )


def _template_ref(value: object) -> str | int:
    if isinstance(value, str) and 0 < len(value) <= 100 and "\x00" not in value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**31:
        return value
    raise ValueError(f"templateId must be a template name (1-100 characters) or a numeric id, got {value!r}")


#: ``templateId`` as billing systems send it: a template's name, or its numeric database id.
TemplateRef = Annotated[
    str | int,
    PlainValidator(_template_ref),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": 100},
                {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            ],
            "description": "Template name (or its numeric id)",
        }
    ),
]


class PreviewBody(Body):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"templateId": "payment_reminder", "data": {"customer_name": "John Doe", "amount": "150000"}}]
        },
    )

    templateId: TemplateRef | None = None
    name: Plain | None = Field(default=None, max_length=100, description="Template name (same as templateId)")
    content: Content | None = Field(default=None, description="Unsaved content to try instead of a template")
    type: TemplateType = "text"
    data: TemplateData | None = None


@router.post("/templates/preview", response_model=schemas.Preview)
def preview_template(body: PreviewBody) -> dict[str, Any]:
    """What a template sends with ``data``: text, variables, missing and warnings. Queues nothing."""
    s = settings()
    name = body.name
    if body.templateId is not None:
        if name is not None:
            raise InvalidRequest("give templateId or name, not both")
        name = template_store.name_of(s, body.templateId) if isinstance(body.templateId, int) else body.templateId
    if (name is None) == (body.content is None):
        raise InvalidRequest("give a template (templateId or name) or content to preview, not both")
    return template_store.preview(s, name, body.data, content=body.content, type=body.type)


def _template(name: str) -> dict[str, Any]:
    try:
        return template_store.get(settings(), name)
    except UnknownTemplate as exc:
        raise NotFound(str(exc)) from None


@router.get("/templates/{name}", responses=NOT_FOUND, response_model=schemas.Template)
def get_template(name: TemplateName) -> dict[str, Any]:
    return _template(name)


class UpdateTemplate(Body):
    content: Content | None = None
    category: Category | None = None
    type: TemplateType | None = None
    language: Language | None = None
    isActive: bool | None = None


@router.put("/templates/{name}", responses=NOT_FOUND, response_model=schemas.Template)
def update_template(name: TemplateName, body: UpdateTemplate) -> dict[str, Any]:
    """Change the given fields (the others stay); the variables are extracted again."""
    _template(name)
    return template_store.update(
        settings(),
        name,
        content=body.content,
        category=body.category,
        type=body.type,
        language=body.language,
        is_active=body.isActive,
    )


@router.delete("/templates/{name}", responses=NOT_FOUND, response_model=schemas.Template)
def deactivate_template(name: TemplateName) -> dict[str, Any]:
    """Deactivate: no new messages use it; sent ones keep their record (templates are never deleted)."""
    _template(name)
    return template_store.deactivate(settings(), name)
