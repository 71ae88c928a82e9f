"""The drop-in endpoints under ``/compat``: wa-tasks called the way billing apps already call "a
WhatsApp gateway", so switching to it means changing a URL.

- ``GET|POST /compat/gateway/send``: URL-template gateways (phpnuxbill and its kind), where the
  operator pastes ``…?key=KEY&number=[number]&text=[text]`` and the app fills in the placeholders.
- ``GET|POST /compat/fonnte/send``: the request shape of Fonnte's ``/send`` (``target`` with one or
  several numbers, ``message``, ``delay``, ``schedule``, ``countryCode``), answering as Fonnte does.

Both take their fields from the query string, a form (URL-encoded or multipart, as PHP's curl sends an
array) or a JSON object, and their key as ``?key=``, ``X-API-Key`` or ``Authorization`` (bare, as
Fonnte's clients send it, or ``Bearer``): the full ``WA_API_KEY`` or a send-scoped key. Errors answer
``{"status": false, "reason": ...}`` with a 4xx status (the app's exception handlers shape them).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from wa_tasks.core import timefmt
from wa_tasks.core.phone import normalize
from wa_tasks.errors import InvalidRequest
from wa_tasks.web import dropin, schemas
from wa_tasks.web.api.deps import client, settings
from wa_tasks.web.auth import QUERY_KEY_NAMES, require_send_url

PREFIX = "/compat"

router = APIRouter(prefix=PREFIX, tags=["drop-in"], dependencies=[Depends(require_send_url)])

#: Fields a caller may send that would change the message if they were dropped: refused, not ignored.
MEDIA_FIELDS = ("url", "file")

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.DropinError, "description": "Missing, wrong or revoked key"},
    422: {"model": schemas.DropinError, "description": "Invalid input: `reason` says what and quotes it"},
    429: {"model": schemas.DropinError, "description": "A send-scoped key over WA_API_RATE_LIMIT_PER_MINUTE"},
    503: {"model": schemas.DropinError, "description": "Redis or the database is out of reach"},
}


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": description}


def _openapi(fields: dict[str, str], *, body: bool) -> dict[str, Any]:
    """The fields, documented as query parameters and (``body``) as a form or JSON body too."""
    parameters = {"parameters": [_query(name, text) for name, text in fields.items()]}
    if not body:
        return parameters
    properties = {name: {"type": "string", "description": text} for name, text in fields.items()}
    schema = {"type": "object", "properties": properties}
    return {
        **parameters,
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {"schema": schema},
                "multipart/form-data": {"schema": schema},
                "application/json": {"schema": schema},
            },
        },
    }


GATEWAY_FIELDS = {
    "number": "Phone number (also accepted as phone, target or to): 0812…, 62812…, +62 812…",
    "text": "Message text (also accepted as message or msg)",
}
FONNTE_FIELDS = {
    "target": "One number or several separated by commas, each optionally number|name|var1|var2…",
    "message": "Message text; {name} and {var1}… take the values of each target",
    "delay": 'Seconds between targets, "5" or "5-10": sends are never faster than the session\'s pace',
    "schedule": "Unix time (seconds) to send at: a scheduled send; 0 or empty sends now",
    "countryCode": "Replaces a number's leading 0 (default 62); 0 for no replacement",
}


#: The fields the endpoints read; any other is ignored, as the imitated gateways ignore it.
KNOWN_FIELDS = frozenset((*dropin.NUMBER_FIELDS, *dropin.TEXT_FIELDS, *FONNTE_FIELDS))


def _scalar(name: str, value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if name in KNOWN_FIELDS and value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"body.{name} must be a string or a number, got {type(value).__name__}")
    return None


async def fields_of(request: Request) -> dict[str, str]:
    """The request's fields: the query string, then the body's (a form or a JSON object) over them.
    The key is not a field. A media field (``url``, ``file``) is refused: text is all these send."""
    fields = {k: v for k, v in request.query_params.items() if k not in QUERY_KEY_NAMES}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise InvalidRequest("body: malformed JSON") from None
            if not isinstance(body, dict):
                raise InvalidRequest(f"body must be a JSON object, got {type(body).__name__}")
            for name, value in body.items():
                if (text := _scalar(name, value)) is not None:
                    fields[name] = text
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except StarletteHTTPException as exc:  # Starlette's 400 for a multipart body it cannot parse
            raise InvalidRequest(f"body: the form cannot be read ({exc.detail})") from None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name in MEDIA_FIELDS:  # refused below; a file anywhere else is ignored, never read as text
                    fields[name] = value.filename or "(a file)"
            elif name not in QUERY_KEY_NAMES:
                fields[name] = value
    for name in MEDIA_FIELDS:
        if (fields.get(name) or "").strip():
            raise InvalidRequest(f"{name}: media is not supported here, only text; use the API's send-media")
    return fields


@router.get(
    "/gateway/send",
    response_model=schemas.GatewayQueued,
    responses=_ERRORS,
    openapi_extra=_openapi(GATEWAY_FIELDS, body=False),
)
@router.post(
    "/gateway/send",
    response_model=schemas.GatewayQueued,
    responses=_ERRORS,
    openapi_extra=_openapi(GATEWAY_FIELDS, body=True),
)
async def gateway_send(request: Request) -> dict[str, Any]:
    """Queue one text message, for billing apps with a URL-template gateway setting (phpnuxbill:
    `…/compat/gateway/send?key=KEY&number=[number]&text=[text]`). Answers 200 `{"status": true, "id": …}`."""
    fields = await fields_of(request)
    number = dropin.first(fields, dropin.NUMBER_FIELDS)
    if number is None:
        raise InvalidRequest(f"missing number: give it as one of {', '.join(dropin.NUMBER_FIELDS)}")
    text = dropin.required_text(fields)
    (message_id,) = await run_in_threadpool(dropin.queue_texts, client(), [(number, text)])
    return {"status": True, "detail": "queued", "id": message_id, "target": normalize(number).e164.lstrip("+")}


@router.get(
    "/fonnte/send",
    response_model=schemas.FonnteQueued,
    response_model_exclude_none=True,
    responses=_ERRORS,
    openapi_extra=_openapi(FONNTE_FIELDS, body=False),
)
@router.post(
    "/fonnte/send",
    response_model=schemas.FonnteQueued,
    response_model_exclude_none=True,
    responses=_ERRORS,
    openapi_extra=_openapi(FONNTE_FIELDS, body=True),
)
async def fonnte_send(request: Request) -> dict[str, Any]:
    """Queue a text message to one or several targets in the request shape of Fonnte's `/send`
    (Authorization header or `?key=`); answers `{"status": true, "detail": "success! message in queue",
    "id": [...], "target": [...]}` as Fonnte does."""
    fields = await fields_of(request)
    send_at = dropin.parse_schedule(fields.get("schedule"), settings())
    delay = dropin.parse_delay(fields.get("delay"))
    country_code = dropin.parse_country_code(fields.get("countryCode"))
    raw_target = dropin.first(fields, ("target",))
    if raw_target is None:
        raise InvalidRequest("missing target: give one number, or several separated by commas")
    message = dropin.required_text(fields)
    targets = dropin.parse_targets(raw_target, country_code)
    ids = await run_in_threadpool(
        dropin.queue_texts, client(), [(t.number, t.render(message)) for t in targets], send_at
    )
    answer: dict[str, Any] = {
        "status": True,
        "detail": "success! message in queue",
        "id": ids,
        "process": "pending",
        "target": [normalize(t.number).e164.lstrip("+") for t in targets],
    }
    if send_at is not None:
        answer["process"] = "scheduled"
        answer["sendAt"] = timefmt.iso(send_at)
    if delay is not None:
        answer["delay"] = "paced by the sending session (never faster than its pace and ban safety allow)"
    return answer
