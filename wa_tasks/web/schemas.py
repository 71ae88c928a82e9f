"""The shapes the HTTP API takes and answers with, for its OpenAPI schema (clients generate code
from it, and the fuzz test checks every answer against it).

Each answer model allows extra fields, so that a field a domain module adds reaches callers at once
instead of being dropped here; the schema lists the fields callers can rely on. Each request model
forbids them, so that a misspelt field is a 422 that names it instead of being ignored.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from wa_tasks.admin import session_config as manage
from wa_tasks.core import priorities, rendering
from wa_tasks.pipeline import bulk


class ErrorBody(BaseModel):
    """Every error answer: a machine-readable ``error`` and a ``detail`` for people."""

    error: str
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors only: each with `loc` (where), `msg` (why) and `type`"
    )


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class Session(Out):
    """A session with its live state: the fields billing systems read (``id`` to ``lastActivity``)
    first, then what operators need."""

    id: str
    deviceId: str
    status: str
    isPrimary: bool
    priority: int
    messageCount: int
    lastActivity: str | None
    phoneNumber: str | None
    transport: str
    host: str | None
    lastStatus: str
    lastError: str | None
    health: str | None
    healthDetail: str | None
    lastProbeMs: float | None
    pausedUntil: str | None


class SessionDetail(Session):
    paceSeconds: float | None
    #: The day the number started using WhatsApp (ISO date); null: the day the session was added.
    numberSince: str | None
    options: dict[str, Any]


class Sessions(Out):
    sessions: list[Session]


class SessionDeleted(Out):
    id: str
    deleted: bool
    deviceUnlinked: bool
    movedMessages: int
    warning: str | None


class QRCode(Out):
    qr: str
    expires: int
    sessionId: str


class PairingCode(Out):
    code: str
    sessionId: str


class Queued(Out):
    id: str
    status: str


class MessageStatus(Out):
    """A message's status in the fields billing systems poll (``id`` to ``sessionId``), and what an
    operator needs to act on it."""

    id: str
    status: str
    sentAt: str | None
    deliveredAt: str | None
    readAt: str | None
    sessionId: str | None
    error: str | None
    attempts: int
    to: str
    createdAt: str | None
    failedAt: str | None
    waMessageId: str | None
    sendAt: str | None = Field(default=None, description="When a scheduled message is due (ISO 8601, UTC)")
    expiresAt: str | None = Field(default=None, description="Not sent by then: expired")
    expiredAt: str | None = None
    noticeKey: str | None = Field(default=None, description="At most one message per notice key")
    ref: str | None = Field(default=None, description="What the message is about, e.g. an invoice number")


class MessageRow(Out):
    id: str
    to: str
    status: str
    priority: int
    sessionId: str | None
    template: str | None
    error: str | None
    attempts: int
    createdAt: str | None
    sentAt: str | None
    deliveredAt: str | None
    readAt: str | None
    bulkJobId: str | None
    sendAt: str | None = None
    expiresAt: str | None = None
    noticeKey: str | None = None
    ref: str | None = None
    category: str | None = None


class Messages(Out):
    messages: list[MessageRow]
    #: The ``before`` of the next page; null on the last one.
    next: str | None


class JobProgress(Out):
    id: str
    status: str
    total: int
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    cancelled: int
    scheduled: int = 0
    expired: int = 0
    byStatus: dict[str, int]


class BulkQueued(JobProgress):
    jobId: str


class JobCancelled(JobProgress):
    cancelledNow: int


class JobRow(JobProgress):
    template: str | None
    createdAt: str | None


class Jobs(Out):
    jobs: list[JobRow]


class SessionQueue(Out):
    byPriority: dict[str, int]
    total: int


class Queue(Out):
    sessions: dict[str, SessionQueue]
    total: int
    dispatch: int


class WebhookEvent(Out):
    id: str = Field(description="The event id the receiver deduplicates by")
    messageId: str
    status: str
    target: str = Field(description="Where it goes (a URL without its query string, or celery:task@queue)")
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    lastError: str | None
    createdAt: str | None
    nextAttemptAt: str | None
    deliveredAt: str | None


class WebhookEvents(Out):
    events: list[WebhookEvent]
    counts: dict[str, int] = Field(description="How many events are in each state")


class Template(Out):
    id: int
    name: str
    category: str
    type: str
    content: str
    variables: list[str]
    language: str
    #: Its own send window; null: its category's.
    sendWindow: str | None = None
    isActive: bool
    createdAt: str | None
    updatedAt: str | None


class Templates(Out):
    templates: list[Template]


class Preview(Out):
    text: str
    variables: list[str]
    missing: list[str]
    warnings: list[str]
    type: str


# Requests -----------------------------------------------------------------------------------------

#: Most recipients one ``send-bulk`` request may carry (split larger sends into several jobs).
MAX_RECIPIENTS = 10_000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; nothing a caller sends needs one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\u0000)")
    return value


#: Plain text that is stored or looked up as it is.
Plain = Annotated[str, AfterValidator(_no_nul)]


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
Category = Literal["notification", "reminder", "promotion"]
TemplateType = Literal["text", "media", "button", "list"]
Language = Annotated[str, Field(pattern=r"^([a-z]{2}(-[A-Za-z]{2})?|[a-z]{3})$", description="e.g. id, en")]
Content = Annotated[Plain, Field(min_length=1, max_length=rendering.MAX_LENGTH)]
SendWindow = Annotated[
    Plain,
    Field(
        max_length=100,
        description="The template's own send window instead of its category's: hours such as "
        "'08:00-20:00' (ranges comma-separated) or 'always'; 'category': the category's",
        examples=["08:00-20:00"],
    ),
]


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


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class PairBody(Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"phone": "0812-3456-7890"}]})

    phone: Plain = Field(max_length=64, description="Phone number of the WhatsApp account to link")


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
    sendAt: dt.datetime | None = Field(
        default=None, description="Send at this time (ISO 8601 with its offset); later than now: stored scheduled"
    )
    expiresAt: dt.datetime | None = Field(
        default=None, description="Not sent by this time (ISO 8601 with its offset): expired, never sent late"
    )
    noticeKey: Plain | None = Field(
        default=None, min_length=1, max_length=200, description="At most one message per key; a repeat returns its id"
    )
    ref: Plain | None = Field(default=None, min_length=1, max_length=100, description="What it is about (an invoice)")
    tz: Plain | None = Field(default=None, max_length=64, description="The customer's time zone for the send window")
    callbackUrl: Plain | None = Field(
        default=None, max_length=2000, description="An http(s) URL that receives this message's signed status events"
    )


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
    sendAt: dt.datetime | None = Field(default=None, description="Every message scheduled for this time")
    expiresAt: dt.datetime | None = Field(default=None, description="Not sent by this time: expired")


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
    sendWindow: SendWindow | None = None


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


class UpdateTemplate(Body):
    content: Content | None = None
    category: Category | None = None
    type: TemplateType | None = None
    language: Language | None = None
    isActive: bool | None = None
    #: null or "category": back to the category's window; left out: unchanged.
    sendWindow: SendWindow | None = None


# The drop-in endpoints (``/compat``) -------------------------------------------------------------


class DropinError(Out):
    """Every error of a drop-in endpoint, in the shape Fonnte's clients read (``status``/``reason``)."""

    status: bool
    reason: str
    error: str


class GatewayQueued(Out):
    status: bool
    detail: str
    id: str
    #: The number as stored: E.164 digits without "+".
    target: str


class FonnteQueued(Out):
    status: bool
    detail: str
    #: One message id per target, in the order of ``target``.
    id: list[str]
    #: ``pending``, or ``scheduled`` with a ``schedule`` (then ``sendAt`` says when).
    process: str
    target: list[str]
    sendAt: str | None = None
