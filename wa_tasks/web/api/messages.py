"""``/send``, ``/send-bulk``, ``/message/{id}`` and ``/messages``: queue messages and follow them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from wa_tasks.admin import queue_view
from wa_tasks.errors import Conflict
from wa_tasks.pipeline.request import SendRequest
from wa_tasks.web import schemas
from wa_tasks.web.api.deps import CONFLICT, NOT_FOUND, RATE_LIMITED, MessageId, client, settings
from wa_tasks.web.schemas import BulkBody, Plain, SendBody

router = APIRouter()
#: ``POST /send`` alone: it also takes a send-scoped key (``auth.require_send``).
send_router = APIRouter()


@send_router.post("/send", status_code=202, response_model=schemas.Queued, responses=RATE_LIMITED)
def send(body: SendBody) -> dict[str, Any]:
    """Queue one message (exactly one of ``text`` or ``template``); returns its id and status."""
    request = SendRequest(
        body.to,
        text=body.text,
        template=body.template,
        data=body.data,
        priority=body.priority,
        idempotency_key=body.idempotencyKey,
        session=body.sessionId,
        email=body.email,
        send_at=body.sendAt,
        expires_at=body.expiresAt,
        notice_key=body.noticeKey,
        ref=body.ref,
        tz=body.tz,
        callback_url=body.callbackUrl,
    )
    wa = client()
    message_id = wa.send_request(request)
    return {"id": message_id, "status": wa.status(message_id)["status"]}


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
        send_at=body.sendAt,
        expires_at=body.expiresAt,
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
    """Cancel a message that is not being sent yet (scheduled, queued or routed)."""
    wa = client()
    if not wa.cancel(message_id):
        status = wa.status(message_id)["status"]
        raise Conflict(
            f"message {message_id} is {status}; only a scheduled, queued or routed message can be cancelled",
            "not_cancellable",
        )
    return wa.status(message_id)


StatusFilter = Literal[
    "scheduled", "queued", "routed", "sending", "sent", "delivered", "read", "failed", "cancelled", "expired"
]


@router.get("/messages", response_model=schemas.Messages)
def list_messages(
    status: Annotated[StatusFilter | None, Query(description="Only messages in this status")] = None,
    session: Annotated[Plain | None, Query(max_length=100, description="Only messages routed to this session")] = None,
    to: Annotated[Plain | None, Query(max_length=64, description="Only messages to this number (any form)")] = None,
    job: Annotated[Plain | None, Query(max_length=100, description="Only messages of this bulk job")] = None,
    ref: Annotated[
        Plain | None, Query(max_length=100, description="Only messages about this ref (e.g. an invoice number)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queue_view.MAX_LIMIT)] = 50,
    before: Annotated[
        Plain | None, Query(max_length=100, description="The `next` of the previous page: continue after it")
    ] = None,
) -> dict[str, Any]:
    """Messages newest first (no text), ``limit`` per page; ``next`` is the ``before`` of the next
    page (null on the last one). Numbers are shown as stored (E.164 digits)."""
    rows = queue_view.list_messages(
        settings(), status=status, session=session, to=to, job=job, ref=ref, limit=limit, before=before
    )
    return {"messages": rows, "next": rows[-1]["id"] if len(rows) == limit else None}
