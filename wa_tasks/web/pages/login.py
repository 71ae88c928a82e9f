"""The login with the API key, and the logout: the pages that need no login."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from wa_tasks.settings import get_settings
from wa_tasks.web import auth
from wa_tasks.web.pages.common import render, router, safe_next, same_origin


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if get_settings().api_key is None or request.session.get(auth.SESSION_FLAG) is True:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", next=safe_next(next))


@router.post("/login")
def login_submit(request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/") -> Response:
    same_origin(request)
    if auth.login(request, key):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", status_code=401, next=safe_next(next), error="That is not the API key.")


@router.post("/logout")
def logout_submit(request: Request) -> Response:
    same_origin(request)
    auth.logout(request)
    return RedirectResponse("/login", status_code=303)
