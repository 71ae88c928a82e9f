"""The queue page: messages (filtered), the broker queues' depths, the bulk jobs and the dead status
events (webhooks given up on); retry and cancel."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from models import DEAD_EVENT, MessageStatus
from wa_tasks.client import Client
from wa_tasks.errors import WaTasksError
from wa_tasks.pipeline import webhooks
from wa_tasks.settings import get_settings
from wa_tasks.web.pages.common import attempt, fault, pages, render, safe_next
from wa_tasks.web.pages.sessions import session_rows


def queue_filters(request: Request) -> dict[str, str | None]:
    query = request.query_params
    return {name: (query.get(name) or "").strip() or None for name in ("status", "session", "to", "job")}


@pages.get("/queue")
def queue_page(request: Request) -> HTMLResponse:
    rows, _ = session_rows()
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
        dead_events = webhooks.list_events(settings, DEAD_EVENT, limit=20)
        error = None
    except WaTasksError as exc:
        messages, depths, jobs, dead_events, error = [], {}, [], [], str(exc)
    except Exception as exc:  # Redis or the database down
        messages, depths, jobs, dead_events, error = [], {}, [], [], "cannot read the queue: " + fault(exc, "queue")
    chosen = {k: v for k, v in filters.items() if v}
    return {
        "messages": messages,
        "depths": depths,
        "jobs": jobs,
        "dead_events": dead_events,
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


@pages.post("/queue/webhooks/{event_id}/retry")
def webhook_retry(request: Request, event_id: str) -> RedirectResponse:
    def run() -> str:
        event = Client(get_settings()).retry_webhook(event_id)
        if event["state"] == "pending":
            return f"status event {event_id} will be sent again now"
        return f"status event {event_id} is {event['state']}: nothing to retry"

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
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else "")) if parts.path else default
