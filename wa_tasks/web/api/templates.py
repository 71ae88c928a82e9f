"""``/templates``: the message templates (content with ``{{variables}}``) and their preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from wa_tasks.admin import template_store
from wa_tasks.errors import Conflict, InvalidRequest, NotFound, UnknownTemplate
from wa_tasks.web import schemas
from wa_tasks.web.api.deps import CONFLICT, NOT_FOUND, TemplateName, settings
from wa_tasks.web.schemas import CreateTemplate, PreviewBody, UpdateTemplate

router = APIRouter()


@router.get("/templates", response_model=schemas.Templates)
def list_templates(
    active: Annotated[bool, Query(description="Only the templates that can be used")] = False,
) -> dict[str, Any]:
    return {"templates": template_store.listing(settings(), include_inactive=not active)}


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
        send_window=body.sendWindow,
    )


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


@router.put("/templates/{name}", responses=NOT_FOUND, response_model=schemas.Template)
def update_template(name: TemplateName, body: UpdateTemplate) -> dict[str, Any]:
    """Change the given fields (the others stay); the variables are extracted again. ``sendWindow``
    null or ``"category"``: back to the category's window."""
    _template(name)
    return template_store.update(
        settings(),
        name,
        content=body.content,
        category=body.category,
        type=body.type,
        language=body.language,
        is_active=body.isActive,
        send_window=body.sendWindow if "sendWindow" in body.model_fields_set else template_store.KEEP,
    )


@router.delete("/templates/{name}", responses=NOT_FOUND, response_model=schemas.Template)
def deactivate_template(name: TemplateName) -> dict[str, Any]:
    """Deactivate: no new messages use it; sent ones keep their record (templates are never deleted)."""
    _template(name)
    return template_store.deactivate(settings(), name)
