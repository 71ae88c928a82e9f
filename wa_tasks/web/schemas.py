"""The shapes the HTTP API answers with, for its OpenAPI schema (clients generate code from it,
and the fuzz test checks every answer against it).

Each model allows extra fields, so that a field a domain module adds reaches callers at once
instead of being dropped here; the schema lists the fields callers can rely on.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class Template(Out):
    id: int
    name: str
    category: str
    type: str
    content: str
    variables: list[str]
    language: str
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
