"""What every resource of the HTTP API shares: the error answers it documents, the path
parameters, and the settings and client its routes work with."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from wa_tasks.client import Client
from wa_tasks.settings import Settings, get_settings
from wa_tasks.web import schemas
from wa_tasks.web.schemas import Plain

#: The error answers every route may give (documented in the OpenAPI schema).
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorBody, "description": "Missing or wrong API key"},
    403: {"model": schemas.ErrorBody, "description": "A send-scoped key on a route that needs WA_API_KEY"},
    422: {"model": schemas.ErrorBody, "description": "Invalid input: `detail` names the field and says why"},
    503: {"model": schemas.ErrorBody, "description": "Redis or the database is out of reach"},
}
#: ``POST /send`` with a send-scoped key past its rate limit (``wa_tasks/web/rate_limit.py``).
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": schemas.ErrorBody, "description": "A send-scoped key over WA_API_RATE_LIMIT_PER_MINUTE"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": schemas.ErrorBody, "description": "Unknown id"}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.ErrorBody, "description": "Not possible in the current state"}
}
HOST: dict[int | str, dict[str, Any]] = {
    **CONFLICT,
    503: {"model": schemas.ErrorBody, "description": "No session host runs the session, or none answered in time"},
}

SessionId = Annotated[Plain, Path(max_length=100, description="Session id, e.g. wa-1")]
MessageId = Annotated[Plain, Path(max_length=100, description="Message id returned by send")]
JobId = Annotated[Plain, Path(max_length=100, description="Bulk job id returned by send-bulk")]
TemplateName = Annotated[Plain, Path(max_length=100, description="Template name, e.g. payment_reminder")]


def settings() -> Settings:
    return get_settings()


def client() -> Client:
    return Client(get_settings())
