"""The templates pages: the list, and the editor with its live preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from wa_tasks.admin import template_store
from wa_tasks.errors import WaTasksError
from wa_tasks.pipeline import compose
from wa_tasks.settings import get_settings
from wa_tasks.web.pages.common import attempt, back, pages, render


def _sample_data(text: str) -> dict[str, str]:
    """``name: value`` (or ``name=value``) per line, as typed in the preview's sample box."""
    data = {}
    for line in text.splitlines():
        for sep in (":", "="):
            name, found, value = line.partition(sep)
            if found and name.strip():
                data[name.strip()] = value.strip()
                break
    return data


def _template_form(request: Request, template: dict[str, Any] | None, status_code: int = 200, **extra: Any) -> Any:
    return render(
        request,
        "template_edit.html",
        status_code=status_code,
        template=template,
        categories=compose.CATEGORIES,
        types=compose.TYPES,
        **extra,
    )


@pages.get("/templates")
def templates_page(request: Request) -> HTMLResponse:
    return render(request, "templates.html", templates=template_store.listing(get_settings()))


@pages.get("/templates/new")
def template_new(request: Request) -> HTMLResponse:
    return _template_form(request, None)


@pages.get("/templates/{name}")
def template_edit(request: Request, name: str) -> Response:
    try:
        template = template_store.get(get_settings(), name)
    except WaTasksError as exc:
        return back(request, "/templates", str(exc), "bad")
    return _template_form(request, template)


@pages.post("/templates/preview")
def template_preview(
    request: Request,
    content: Annotated[str, Form()] = "",
    type: Annotated[str, Form()] = "text",
    sample: Annotated[str, Form()] = "",
) -> HTMLResponse:
    if not content.strip():
        return render(request, "_preview.html", empty=True)
    try:
        result = template_store.preview(get_settings(), content=content, type=type, data=_sample_data(sample))
    except WaTasksError as exc:
        return render(request, "_preview.html", error=str(exc))
    return render(request, "_preview.html", preview=result)


@pages.post("/templates")
def template_create(
    request: Request,
    name: Annotated[str, Form()] = "",
    content: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "notification",
    type: Annotated[str, Form()] = "text",
    language: Annotated[str, Form()] = "id",
    send_window: Annotated[str, Form()] = "",
    sample: Annotated[str, Form()] = "",
) -> Response:
    try:
        template_store.create(
            get_settings(),
            name.strip(),
            content,
            category=category,
            type=type,
            language=language,
            send_window=send_window,
        )
    except WaTasksError as exc:
        draft = {
            "name": name,
            "content": content,
            "category": category,
            "type": type,
            "language": language,
            "sendWindow": send_window,
        }
        return _template_form(request, None, 422, draft=draft, error=str(exc), sample=sample)
    return back(request, f"/templates/{name.strip()}", f"template {name.strip()} saved")


@pages.post("/templates/{name}")
def template_update(
    request: Request,
    name: str,
    content: Annotated[str, Form()] = "",
    category: Annotated[str, Form()] = "notification",
    type: Annotated[str, Form()] = "text",
    language: Annotated[str, Form()] = "id",
    send_window: Annotated[str, Form()] = "",
    sample: Annotated[str, Form()] = "",
) -> Response:
    settings = get_settings()
    try:
        # An empty send window field: the category's window (the form always sends the field).
        template_store.update(
            settings,
            name,
            content=content,
            category=category,
            type=type,
            language=language,
            send_window=send_window,
        )
    except WaTasksError as exc:
        try:
            current = template_store.get(settings, name)
        except WaTasksError:
            return back(request, "/templates", str(exc), "bad")
        draft = {
            **current,
            "content": content,
            "category": category,
            "type": type,
            "language": language,
            "sendWindow": send_window,
        }
        return _template_form(request, current, 422, draft=draft, error=str(exc), sample=sample)
    return back(request, f"/templates/{name}", f"template {name} saved")


@pages.post("/templates/{name}/deactivate")
def template_deactivate(request: Request, name: str) -> RedirectResponse:
    def run() -> str:
        template_store.deactivate(get_settings(), name)
        return f"template {name} deactivated: new messages can no longer use it"

    return attempt(request, run, "/templates")


@pages.post("/templates/{name}/activate")
def template_activate(request: Request, name: str) -> RedirectResponse:
    def run() -> str:
        template_store.update(get_settings(), name, is_active=True)
        return f"template {name} is active again"

    return attempt(request, run, "/templates")
