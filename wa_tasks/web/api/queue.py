"""``/jobs``, ``/queue`` and ``/metrics``: what operators watch (bulk jobs, the broker queues'
depths, one day's figures)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wa_tasks.admin import queue_view
from wa_tasks.core.redis_keys import DEFAULT_QUEUE
from wa_tasks.errors import NotFound, UnknownJob
from wa_tasks.infra.redis_client import client_for
from wa_tasks.pipeline import bulk, live_state
from wa_tasks.web import schemas
from wa_tasks.web.api.deps import NOT_FOUND, JobId, client, settings
from wa_tasks.web.schemas import Plain

router = APIRouter()


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
