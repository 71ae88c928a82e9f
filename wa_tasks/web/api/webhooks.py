"""``/webhooks``: the status events of the status callbacks, and a dead one sent again."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from wa_tasks.admin import queue_view
from wa_tasks.pipeline import webhooks
from wa_tasks.web import schemas
from wa_tasks.web.api.deps import NOT_FOUND, settings
from wa_tasks.web.schemas import Plain

router = APIRouter()

EventId = Annotated[Plain, Path(max_length=40, description="Status event id (evt_…)")]


@router.get("/webhooks", response_model=schemas.WebhookEvents)
def list_events(
    state: Annotated[
        Literal["pending", "delivered", "dead"] | None,
        Query(description="Only events in this state; dead: the ones given up on"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queue_view.MAX_LIMIT)] = 50,
) -> dict[str, Any]:
    """Status events newest first, with how many are in each state."""
    current = settings()
    return {"events": webhooks.list_events(current, state, limit), "counts": webhooks.counts(current)}


@router.post("/webhooks/{event_id}/retry", responses=NOT_FOUND, response_model=schemas.WebhookEvent)
def retry_event(event_id: EventId) -> dict[str, Any]:
    """Send a dead status event again: due now, with a new retry window (an event not dead is left as it is)."""
    return webhooks.retry(settings(), event_id)
